-- Reference data the fake answers from: providers, mobile prefixes, card
-- BINs, currency rates, limits. Small on purpose; ids follow QIWI's docs
-- where the docs name them.

local C = {}

-- Provider id -> short/long name and the kind of requisites it takes.
-- kind: wallet | mobile | card | card_foreign | bank | requisites | conversion |
--       master | master_card | topup | service
C.providers = {
  [7] = { name = "QIWI Wallet", kind = "topup" },
  [99] = { name = "Перевод на QIWI Кошелек", kind = "wallet" },
  [1099] = { name = "Конвертация", kind = "conversion" },
  [1] = { name = "МТС", kind = "mobile" },
  [2] = { name = "Билайн", kind = "mobile" },
  [3] = { name = "МегаФон", kind = "mobile" },
  [42] = { name = "Tele2", kind = "mobile" },
  [2138] = { name = "Kcell", kind = "mobile" },
  [1963] = { name = "Перевод на карту Visa", kind = "card" },
  [21013] = { name = "Перевод на карту MasterCard", kind = "card" },
  [31652] = { name = "Перевод на карту МИР", kind = "card" },
  [22351] = { name = "Виртуальная карта QIWI", kind = "card" },
  [1960] = { name = "Перевод на карту Visa (зарубежные банки)", kind = "card_foreign" },
  [21012] = { name = "Перевод на карту MasterCard (зарубежные банки)", kind = "card_foreign" },
  [313] = { name = "ХоумКредит Банк", kind = "bank" },
  [464] = { name = "Альфа-Банк", kind = "bank" },
  [804] = { name = "АО \"ОТП БАНК\"", kind = "bank" },
  [810] = { name = "АО \"РОССЕЛЬХОЗБАНК\"", kind = "bank" },
  [815] = { name = "Русский Стандарт", kind = "bank" },
  [816] = { name = "ВТБ (ПАО)", kind = "bank" },
  [819] = { name = "АО ЮНИКРЕДИТ БАНК", kind = "bank" },
  [821] = { name = "Промсвязьбанк", kind = "bank" },
  [868] = { name = "КИВИ БАНК (АО)", kind = "bank" },
  [870] = { name = "ПАО Сбербанк", kind = "bank" },
  [881] = { name = "Ренессанс Кредит", kind = "bank" },
  [1134] = { name = "ПАО \"МОСКОВСКИЙ КРЕДИТНЫЙ БАНК\"", kind = "bank" },
  [27324] = { name = "АО \"РАЙФФАЙЗЕНБАНК\"", kind = "bank" },
  [1717] = { name = "Платеж по свободным реквизитам", kind = "requisites" },
  [674] = { name = "OnLime", kind = "service", keys = "интернет онлайм onlime" },
  [1239] = { name = "Фонд \"Подари жизнь\"", kind = "service", keys = "благотворительность фонд" },
  [23729] = { name = "МТС Домашний интернет, ТВ и Телефония РФ", kind = "service",
              keys = "мтс домашний интернет тв телефония" },
  [25549] = { name = "Билайн Домашний интернет", kind = "service", keys = "билайн домашний интернет" },
  [28004] = { name = "Пакет QIWI Мастер", kind = "master" },
  [32064] = { name = "Выпуск карты QIWI Мастер", kind = "master_card" },
  [27292] = { name = "Перевод на карту банка Казахстана", kind = "card_kzt" },
}

-- Banks of the card-number and account-number transfers. card: the
-- account_type of a card transfer (docs' card table); accounts: the
-- account_type values of an account transfer (English and Russian tables
-- disagree for VTB, both values are accepted); exp: card transfers needing exp_date.
C.banks = {
  [313] = { accounts = { ["6"] = true }, agrnum = true },
  [464] = { card = "1", accounts = { ["2"] = true, ["3"] = true }, exp = true },
  [804] = { card = "1", accounts = { ["2"] = true, ["3"] = true } },
  [810] = { card = "5", accounts = { ["2"] = true, ["3"] = true } },
  [815] = { card = "1", accounts = { ["2"] = true, ["3"] = true } },
  [816] = { card = "5", accounts = { ["2"] = true, ["3"] = true, ["5"] = true } },
  [819] = { accounts = { ["2"] = true, ["3"] = true } },
  [821] = { card = "7", accounts = { ["9"] = true }, exp = true },
  [868] = { accounts = { ["2"] = true, ["3"] = true } },
  [870] = { card = "5", accounts = { ["2"] = true, ["3"] = true } },
  [881] = { card = "1", accounts = { ["2"] = true, ["3"] = true } },
  [1134] = { card = "5", accounts = { ["2"] = true, ["3"] = true } },
  [27324] = { accounts = { ["2"] = true, ["3"] = true } },
}

-- Mobile operators by the first digits of an 11-digit number starting with 7.
C.mobile_prefixes = {
  { "7910", 1 }, { "7911", 1 }, { "7912", 1 }, { "7913", 1 }, { "7914", 1 }, { "7915", 1 },
  { "7916", 1 }, { "7917", 1 }, { "7918", 1 }, { "7919", 1 }, { "798", 1 },
  { "7903", 2 }, { "7905", 2 }, { "7906", 2 }, { "7909", 2 }, { "796", 2 },
  { "792", 3 }, { "793", 3 },
  { "7900", 42 }, { "7901", 42 }, { "7902", 42 }, { "7904", 42 }, { "7908", 42 }, { "795", 42 },
  { "7977", 42 },
  { "7701", 2138 }, { "7702", 2138 }, { "7775", 2138 }, { "7778", 2138 },
}

-- Card BIN ranges -> payment provider (termsId) for the card lookup.
C.card_bins = {
  { "2200", 31652 }, { "2201", 31652 }, { "2202", 31652 }, { "2203", 31652 }, { "2204", 31652 },
  { "4890", 22351 },
  { "4", 1963 },
  { "51", 21013 }, { "52", 21013 }, { "53", 21013 }, { "54", 21013 }, { "55", 21013 },
  { "22", 21013 }, { "23", 21013 }, { "24", 21013 }, { "25", 21013 }, { "26", 21013 }, { "27", 21013 },
}

-- Cross rates: `rate` units of `from` buy one unit of `to` (as in the docs'
-- example: 6.22665 KZT per ruble, 31.47 UAH per euro). Kept as decimal text.
C.rates = {
  { "398", "643", "6.22665" },
  { "643", "398", "0.1535" },
  { "643", "840", "92.5" },
  { "840", "643", "0.0105" },
  { "643", "978", "99.75" },
  { "978", "643", "0.0097" },
  { "840", "978", "1.085" },
  { "978", "840", "0.905" },
  { "398", "756", "412.0174305" },
  { "980", "978", "31.4680914" },
}

C.currencies = {
  [643] = { alias = "qw_wallet_rub", code = "RUB", source = "QW_RUB" },
  [840] = { alias = "qw_wallet_usd", code = "USD", source = "QW_USD" },
  [978] = { alias = "qw_wallet_eur", code = "EUR", source = "QW_EUR" },
  -- Not offered for creation (the docs list 643/840/978 balances only), but
  -- the Kazakh card transfer is funded from a tenge account: seed it with
  -- the `accounts` option or set_balance("KZT", …).
  [398] = { alias = "qw_wallet_kzt", code = "KZT", source = "QW_KZT" },
}

-- Monthly limits (kopecks) by identification level.
C.limit_types = { "REFILL", "TURNOVER", "PAYMENTS_P2P", "PAYMENTS_PROVIDER_INTERNATIONALS",
                  "PAYMENTS_PROVIDER_PAYOUT", "WITHDRAW_CASH" }
C.limits = {
  ANONYMOUS = { REFILL = 1500000, TURNOVER = 4000000, PAYMENTS_P2P = 0,
                PAYMENTS_PROVIDER_INTERNATIONALS = 0, PAYMENTS_PROVIDER_PAYOUT = 0, WITHDRAW_CASH = 0 },
  SIMPLE = { REFILL = 1500000, TURNOVER = 4000000, PAYMENTS_P2P = 0,
             PAYMENTS_PROVIDER_INTERNATIONALS = 0, PAYMENTS_PROVIDER_PAYOUT = 0, WITHDRAW_CASH = 0 },
  VERIFIED = { REFILL = 60000000, TURNOVER = 20000000, PAYMENTS_P2P = 20000000,
               PAYMENTS_PROVIDER_INTERNATIONALS = 20000000, PAYMENTS_PROVIDER_PAYOUT = 20000000,
               WITHDRAW_CASH = 20000000 },
  FULL = { REFILL = 60000000, TURNOVER = 100000000, PAYMENTS_P2P = 100000000,
           PAYMENTS_PROVIDER_INTERNATIONALS = 100000000, PAYMENTS_PROVIDER_PAYOUT = 100000000,
           WITHDRAW_CASH = 100000000 },
}

-- Payment sources of the history filter.
C.sources = {
  QW_RUB = { id = 7, name = "QIWI Wallet" },
  QW_USD = { id = 7, name = "QIWI Wallet" },
  QW_EUR = { id = 7, name = "QIWI Wallet" },
  CARD = { id = 1, name = "Банковская карта" },
  MK = { id = 3, name = "Счет мобильного оператора" },
}

return C
