-- Balances: the account list (with the hasBalance=true, balance=null case
-- and its repeat with timeout=1000&alias=…), account creation, offers,
-- default account (docs: balance_en/_ru).

return function(H)
  local json, U, C = H.json, H.U, H.C

  local SVC = "funding-sources"
  local BASE = "/funding-sources/v2/persons/{w}/accounts"

  local BY_CODE = { RUB = 643, USD = 840, EUR = 978, KZT = 398 }
  local ALIAS_CURRENCY = {}
  for cur, c in pairs(C.currencies) do ALIAS_CURRENCY[c.alias] = cur end

  local function wallet_account(currency, kopecks)
    return {
      alias = C.currencies[currency].alias, fs_alias = "qb_wallet", bank_alias = "QIWI", title = "WALLET",
      type_id = "WALLET", type_title = "QIWI Wallet", has_balance = true, currency = currency,
      kopecks = kopecks or 0,
    }
  end

  local function add_account(st, acc)
    if st.by_alias[acc.alias] then return st.by_alias[acc.alias] end
    st.accounts[#st.accounts + 1] = acc
    st.by_alias[acc.alias] = acc
    return acc
  end

  local function seed_amount(v, what)
    local k, err = U.kopecks(v)
    if not k then error("qiwi.fake.new: " .. what .. ": " .. tostring(err), 5) end
    return k
  end

  H.seeders[#H.seeders + 1] = function(f, st)
    st.accounts, st.by_alias = {}, {}
    add_account(st, wallet_account(643, seed_amount(f:_opt("balance"), "balance")))
    local extra = f.opts.accounts
    if type(extra) == "table" then
      local list = {}
      if #extra > 0 then
        for _, a in ipairs(extra) do list[#list + 1] = a end
      else
        local keys = {}
        for alias in pairs(extra) do keys[#keys + 1] = alias end
        table.sort(keys)
        for _, alias in ipairs(keys) do list[#list + 1] = { alias = alias, balance = extra[alias] } end
      end
      for _, a in ipairs(list) do
        local cur = tonumber(a.currency) or ALIAS_CURRENCY[a.alias]
        if not cur or not C.currencies[cur] then
          error("qiwi.fake.new: unknown account " .. tostring(a.alias or a.currency), 4)
        end
        local acc = add_account(st, wallet_account(cur, 0))
        acc.kopecks = seed_amount(a.balance or 0, tostring(acc.alias))
      end
    end
    if f.opts.mobile_account ~= false then
      add_account(st, {
        alias = "mc_beeline_rub", fs_alias = "qb_mc_beeline", bank_alias = "QIWI", title = "MC",
        type_id = "MC", type_title = "Счет мобильного кошелька", has_balance = false, currency = 643,
        kopecks = 0,
      })
    end
    for _, alias in ipairs(type(f.opts.null_balances) == "table" and f.opts.null_balances or {}) do
      local acc = st.by_alias[alias]
      if not acc then error("qiwi.fake.new: null_balances: no account " .. tostring(alias), 4) end
      acc.null_balance = true
    end
    st.default_alias = "qw_wallet_rub"
  end

  local function account_json(acc, reveal)
    local balance = json.null
    if acc.has_balance and (not acc.null_balance or reveal) then
      balance = { amount = U.amount(acc.kopecks), currency = acc.currency }
    end
    return {
      alias = acc.alias, fsAlias = acc.fs_alias, bankAlias = acc.bank_alias, title = acc.title,
      type = { id = acc.type_id, title = acc.type_title }, hasBalance = acc.has_balance,
      balance = balance, currency = acc.currency,
    }
  end

  H.route {
    method = "GET", path = BASE, service = SVC, params = { "timeout", "alias" },
    handler = function(f, ctx)
      local p = ctx.params
      if (p.timeout == nil) ~= (p.alias == nil) then
        return H.bad(f, SVC, "timeout and alias are only used together")
      end
      if p.timeout and (not p.timeout:find("^%d+$") or tonumber(p.timeout) < 1) then
        return H.bad(f, SVC, "timeout must be a positive integer (milliseconds)")
      end
      if p.alias and not f.state.by_alias[p.alias] then
        return H.bad(f, SVC, "no account with alias " .. p.alias)
      end
      local list = json.array()
      for _, acc in ipairs(f.state.accounts) do
        list[#list + 1] = account_json(acc, acc.alias == p.alias)
      end
      return H.ok { accounts = list }
    end,
  }

  local function offers(f)
    local list = {}
    for _, cur in ipairs { 643, 840, 978 } do
      local alias = C.currencies[cur].alias
      if not f.state.by_alias[alias] then list[#list + 1] = { alias = alias, currency = cur } end
    end
    return list
  end

  H.route {
    method = "POST", path = BASE, service = SVC, body = "json",
    handler = function(f, ctx)
      local alias = ctx.json.alias
      if type(alias) ~= "string" or alias == "" then return H.bad(f, SVC, "alias is required (a string)") end
      if f.state.by_alias[alias] then
        return H.err(f, 400, SVC, "account.already.exists", "Такой счет уже есть", "account " .. alias .. " already exists")
      end
      for _, o in ipairs(offers(f)) do
        if o.alias == alias then
          add_account(f.state, wallet_account(o.currency, 0))
          return H.empty(201)
        end
      end
      return H.err(f, 400, SVC, "account.not.offered", "Такой счет создать нельзя",
        alias .. " is not among the offered accounts")
    end,
  }

  H.route {
    method = "GET", path = BASE .. "/offer", service = SVC,
    handler = function(f)
      return H.ok(json.array(offers(f)))
    end,
  }

  H.route {
    method = "PATCH", path = BASE .. "/{alias}", service = SVC, body = "json",
    handler = function(f, ctx)
      local acc = f.state.by_alias[ctx.caps.alias]
      if not acc then
        return H.not_found(f, SVC, "account.not.found", "no account " .. ctx.caps.alias)
      end
      local v = ctx.json.defaultAccount
      if type(v) ~= "boolean" then return H.bad(f, SVC, "defaultAccount is required (a boolean)") end
      if not acc.has_balance then
        return H.bad(f, SVC, acc.alias .. " cannot fund payments")
      end
      if v then
        f.state.default_alias = acc.alias
      elseif f.state.default_alias == acc.alias then
        f.state.default_alias = "qw_wallet_rub"
      end
      return H.empty(204)
    end,
  }

  -- Internal ---------------------------------------------------------------

  -- The wallet account of a currency, or nil.
  function H.account(f, currency)
    local c = C.currencies[tonumber(currency)]
    return c and f.state.by_alias[c.alias]
  end

  -- Adds `delta` kopecks to the currency's account (created when missing).
  function H.credit(f, currency, delta)
    currency = tonumber(currency)
    local acc = H.account(f, currency)
    if not acc then
      if not C.currencies[currency] then error("qiwi.fake: no account in currency " .. tostring(currency)) end
      acc = add_account(f.state, wallet_account(currency, 0))
    end
    acc.kopecks = acc.kopecks + delta
    return acc.kopecks
  end

  -- Helpers ---------------------------------------------------------------

  -- An alias ("qw_wallet_usd"), a currency code (840, "840") or name ("USD").
  local function resolve(f, key)
    if key == nil or key == json.null then key = "qw_wallet_rub" end
    local cur = tonumber(key) or BY_CODE[tostring(key):upper()]
    if cur then
      local c = C.currencies[cur]
      if not c then return nil, nil, "unknown currency " .. tostring(key) end
      return f.state.by_alias[c.alias], cur
    end
    local acc = f.state.by_alias[key]
    return acc, acc and acc.currency or ALIAS_CURRENCY[key], (not acc and not ALIAS_CURRENCY[key])
      and ("unknown account " .. tostring(key)) or nil
  end

  -- Sets an account's balance (number or decimal string); creates wallet
  -- accounts that do not exist yet. Returns true.
  function H.methods.set_balance(f, key, amount)
    local acc, cur, err = resolve(f, key)
    if err then error("qiwi.fake:set_balance: " .. err, 2) end
    local k, aerr = U.kopecks(amount)
    if not k then error("qiwi.fake:set_balance: " .. tostring(aerr), 2) end
    if not acc then acc = add_account(f.state, wallet_account(cur, 0)) end
    acc.kopecks = k
    return true
  end

  -- The balance as a number in currency units (990.5), nil when there is no such account.
  function H.methods.balance(f, key)
    local acc = resolve(f, key)
    return acc and U.amount_number(acc.kopecks) or nil
  end

  -- The balance in integer kopecks/cents, nil when there is no such account.
  function H.methods.balance_kopecks(f, key)
    local acc = resolve(f, key)
    return acc and acc.kopecks or nil
  end

  -- While on, the account list shows this account's balance as null unless
  -- the request names it with timeout=…&alias=….
  function H.methods.set_null_balance(f, alias, on)
    local acc = f.state.by_alias[alias]
    if not acc then error("qiwi.fake:set_null_balance: no account " .. tostring(alias), 2) end
    acc.null_balance = on ~= false
    return true
  end

  function H.methods.default_account(f)
    return f.state.default_alias
  end
end
