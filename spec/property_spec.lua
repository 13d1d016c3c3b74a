-- Property: no public function raises, whatever it is given. Every public
-- client method (the rows of qiwi.endpoints and the compositions of
-- client.lua), qiwi.new, qiwi.payment_form_url, qiwi.webhook.verify and
-- qiwi.json.decode/encode are called with many generated argument lists
-- (types, huge numbers, NaN, ±inf, -0, empty and unicode strings, nested,
-- cyclic and hostile tables, functions, coroutines, userdata), directly and
-- inside client:batch. For every call:
--   * nothing raises;
--   * the answer is a value, or nil and a qiwi.error;
--   * an `argument` error left no request at the fake (also for a client
--     that has to learn its wallet from the profile).
-- A generated value that happens to be valid may send a request: that is fine.
--
-- The combinations come from a seeded generator (the same sequence on every
-- interpreter; the pool has math.maxinteger and friends only on 5.3+);
-- QIWI_PROPERTY_SEED and QIWI_PROPERTY_CALLS (random argument lists per
-- method) change them, QIWI_PROPERTY_VERBOSE prints calls per method. A failure names the function, where the
-- raise came from (the innermost line of lua/qiwi/) and an argument list
-- that shows it, once per distinct place.
local qiwi = require "qiwi"
local client_mod = require "qiwi.client"
local endpoints = require "qiwi.endpoints"
local fake = require "qiwi.fake"
local G = require "generators"

local unpack = table.unpack or unpack
local show, show_args = G.show, G.show_args

local SEED = tonumber(os.getenv("QIWI_PROPERTY_SEED")) or 20240611
local RANDOM_CALLS = tonumber(os.getenv("QIWI_PROPERTY_CALLS")) or 120
local BATCH_SHARE = 0.2 -- share of the generated calls also sent as a one-call batch
local VERBOSE = os.getenv("QIWI_PROPERTY_VERBOSE") -- per method: calls made, requests the fake saw

local TOKEN = "property-token-0123456789abcdef"
local WALLET = "79111234567"
local UUID = "d63a8729-f5c8-486f-907d-9fb8758afcfc"

local POOL = G.register(G.pool())
local KEYS = G.keys(POOL)

---------------------------------------------------------------------------
-- Valid values, so that a generated value also reaches the checks behind
-- the first one.

local BY_NAME = {
  alias = "qw_wallet_usd", name = "property keys", account = "+79990001122", query = "mts",
  comment = "hi", passport = "1234567", provider_id = "99", txn_id = "20000000001",
  card_id = "1234", bill_id = "1234", operation_id = UUID, order_id = UUID, hook_id = UUID,
  start_date = "2024-01-01T00:00:00+03:00", end_date = "2024-01-02T00:00:00+03:00",
  from = "2024-01-01T00:00:00+03:00", till = "2024-01-02T00:00:00+03:00",
  next_txn_id = "20000000001", next_txn_date = "2024-01-01T12:00:00+03:00",
  first_name = "Ivan", last_name = "Petrov", middle_name = "", inn = "", snils = "", oms = "",
  url = "https://example.com/hook", notifications_url = "https://example.com/notify",
  min_creation = 1700000000, max_creation = 1700086400, next_creation = 1700000000,
  next_id = "1234", email = "user@example.com", id = "1234567890123",
}

local BY_CHECK = {
  boolean = true, day = "1998-02-11", string = "abc", digits = "1234567", integer = 10,
  date = "2024-01-01T00:00:00+03:00", uuid = UUID, amount = 1, currency = 643,
  fields = { extra = "x" }, phone = "79990001122", card_spaced = "4111111111111111",
  url = "https://example.com/", email = "user@example.com", unix_ms = 1700000000, bill_id = "1234",
}

local function valid_for(p)
  if BY_NAME[p[1]] ~= nil then return BY_NAME[p[1]] end
  if p[4] == "enum" then return p.spec.values[1] end
  if p[4] == "enum_list" then return { p.spec.values[1] } end
  return BY_CHECK[p[4]]
end

local function copy(v)
  if type(v) ~= "table" or getmetatable(v) ~= nil then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return t
end

---------------------------------------------------------------------------
-- What each method takes: a list of slots, each a positional value
-- { name =, valid = } or an options table { opts = { {key, valid}, … },
-- minimal = { key = true } } (the keys a call needs at the least).

local function opts_slot(keys, minimal)
  local set = {}
  for _, k in ipairs(minimal or {}) do set[k] = true end
  return { opts = keys, minimal = set }
end

local function row_slots(row)
  local slots = {}
  local by = {}
  for _, p in ipairs(row.params or {}) do by[p[1]] = p end
  for _, a in ipairs(row.args or {}) do
    if a == "opts" then
      local keys, minimal, paired = {}, {}, {}
      for _, p in ipairs(row.params or {}) do
        keys[#keys + 1] = { p[1], valid_for(p) }
        if p.required and not (by[p[1]] and p[3] == "path") then minimal[#minimal + 1] = p[1] end
        -- options QIWI takes only together (date ranges, paging cursors)
        if p.with and p[1] < p.with then paired[#paired + 1] = { p[1], p.with } end
      end
      local slot = opts_slot(keys, minimal)
      slot.pairs = paired
      slots[#slots + 1] = slot
    else
      slots[#slots + 1] = { name = a, valid = by[a] and valid_for(by[a]) or "1" }
    end
  end
  return slots
end

local function keys_of(list)
  local out = {}
  for i = 1, #list, 2 do out[#out + 1] = { list[i], list[i + 1] } end
  return out
end

local AMOUNT, ID = 1, "1234567890123"

local COMPOSED = {
  transfer = { opts_slot(keys_of { "to", "79990001122", "amount", AMOUNT, "comment", "c", "id", ID },
                         { "to", "amount" }) },
  convert = { opts_slot(keys_of { "to", "79990001122", "amount", AMOUNT, "currency", 840, "id", ID,
                                  "comment", "c" }, { "amount", "currency" }) },
  pay_mobile = { opts_slot(keys_of { "phone", "79161112233", "amount", AMOUNT, "id", ID }, { "phone", "amount" }) },
  pay_card = { opts_slot(keys_of { "card", "4111111111111111", "amount", AMOUNT, "fields", { extra = "x" },
                                   "id", ID }, { "card", "amount" }) },
  bank_transfer = {
    { name = "provider_id", valid = "464" },
    opts_slot(keys_of { "account", "1234567890", "amount", AMOUNT, "id", ID, "account_type", "1",
                        "exp_date", "0218", "mfo", "044525225", "lname", "A", "fname", "B", "mname", "C",
                        "urgent", false }, { "account", "amount" }),
  },
  pay_by_requisites = {
    opts_slot(keys_of { "name", "Bank", "to_bik", "044525225", "city", "Moscow", "to_name", "OOO",
                        "to_inn", "7707083893", "to_kpp", "773601001", "nds", false, "goal", "goods",
                        "urgent", false, "account", "40702810000000000001", "from_name", "A",
                        "from_name_p", "B", "from_name_f", "C", "amount", AMOUNT, "id", ID },
              { "name", "to_bik", "city", "to_name", "to_inn", "nds", "goal", "account", "amount" }),
  },
  submit_card_order = { { name = "order_id", valid = UUID } },
  buy_card = { { name = "order_id", valid = UUID }, opts_slot(keys_of { "amount", AMOUNT, "id", ID }, { "amount" }) },
  buy_master_package = { opts_slot(keys_of { "amount", AMOUNT, "id", ID, "comment", "c" }) },
  accounts = {},
  payments = row_slots(endpoints.history),
}

-- A composition not described above still gets called: two positional
-- values and an options table with every option name the others know.
local function generic_slots()
  local seen, keys = {}, {}
  for _, slots in pairs(COMPOSED) do
    for _, s in ipairs(slots) do
      for _, kv in ipairs(s.opts or {}) do
        if not seen[kv[1]] then
          seen[kv[1]] = true
          keys[#keys + 1] = kv
        end
      end
    end
  end
  table.sort(keys, function(a, b) return a[1] < b[1] end)
  return { opts_slot(keys), { name = "second", valid = "1" } }
end

local NOT_CALLED = { batch = true, close = true } -- batch has its own specs; close takes nothing

-- Every public client method: name -> slots.
local function public_methods()
  local out = {}
  for name, row in pairs(client_mod.row_methods) do
    if client_mod.Client[name] == row then out[name] = row_slots(endpoints[name]) end
  end
  for name, fn in pairs(client_mod.Client) do
    if type(fn) == "function" and name:sub(1, 1) ~= "_" and not NOT_CALLED[name] and not out[name] then
      out[name] = COMPOSED[name] or generic_slots()
    end
  end
  local names = {}
  for name in pairs(out) do names[#names + 1] = name end
  table.sort(names)
  return names, out
end

---------------------------------------------------------------------------
-- Argument lists

-- The argument list of `slots` on a base: "bare" (nothing but what is
-- replaced), "minimal" (valid required values) or "full" (every slot valid).
local function base_args(slots, base)
  local args = {}
  for i, s in ipairs(slots) do
    if s.opts then
      if base ~= "bare" then
        local t = {}
        for _, kv in ipairs(s.opts) do
          if base == "full" or s.minimal[kv[1]] then t[kv[1]] = copy(kv[2]) end
        end
        args[i] = t
      end
    elseif base ~= "bare" then
      args[i] = copy(s.valid)
    end
  end
  return args
end

local function has_minimal(slots)
  for _, s in ipairs(slots) do
    if not s.opts or next(s.minimal) then return true end
  end
  return false
end

-- A seeded mixture: each slot valid, generated or absent; sometimes an
-- unknown option or one argument too many.
local function random_args(slots, rng)
  local n = #slots
  local args = {}
  for i, s in ipairs(slots) do
    if s.opts and not rng:chance(0.1) then
      local t = {}
      for _, kv in ipairs(s.opts) do
        local r = rng:int(100)
        if r <= 35 then t[kv[1]] = copy(kv[2]) elseif r <= 70 then t[kv[1]] = rng:pick(POOL)[2] end
      end
      if rng:chance(0.15) then t[rng:pick(KEYS)[2]] = rng:pick(POOL)[2] end
      args[i] = t
    else
      local r = rng:int(100)
      if r <= 45 and not s.opts then args[i] = copy(s.valid) elseif r <= 90 then args[i] = rng:pick(POOL)[2] end
    end
  end
  if rng:chance(0.05) then
    n = n + 1
    args[n] = rng:pick(POOL)[2]
  end
  return args, n
end

-- The arguments of `base` with fields k1 = v1 (and k2 = v2) in the option
-- table of slot i.
local function with_opts(slots, base, i, k1, v1, k2, v2)
  local args = base_args(slots, base)
  local t = args[i] or {}
  t[k1] = v1
  if k2 ~= nil then t[k2] = v2 end
  args[i] = t
  return args
end

-- Calls visit(args, n) for every generated argument list of `slots`: each
-- slot and each option replaced by every pool value, on a bare, a minimal
-- and a full base; paired options with every two pool values; one argument
-- too many; then `random` seeded mixtures.
local function each_call(slots, rng, visit, random)
  local n = #slots
  local bases = { "bare", "full" }
  if has_minimal(slots) then bases[#bases + 1] = "minimal" end
  for _, base in ipairs(bases) do
    for i, s in ipairs(slots) do
      for _, e in ipairs(POOL) do
        local args = base_args(slots, base)
        args[i] = e[2]
        visit(args, n)
      end
      for _, kv in ipairs(s.opts or {}) do
        for _, e in ipairs(POOL) do visit(with_opts(slots, base, i, kv[1], e[2]), n) end
      end
    end
  end
  -- paired options: every pool value against every other
  for i, s in ipairs(slots) do
    for _, pair in ipairs(s.pairs or {}) do
      for _, a in ipairs(POOL) do
        for _, b in ipairs(POOL) do visit(with_opts(slots, "minimal", i, pair[1], a[2], pair[2], b[2]), n) end
      end
    end
  end
  for _, e in ipairs(POOL) do
    local args = base_args(slots, "full")
    args[n + 1] = e[2]
    visit(args, n + 1)
  end
  for _ = 1, random or RANDOM_CALLS do visit(random_args(slots, rng)) end
end

---------------------------------------------------------------------------
-- Checking and reporting

-- Failures grouped by where they happen: site -> { count, what, example }.
local function new_report(subject)
  return { subject = subject, sites = {}, order = {}, calls = 0, failed = 0 }
end

local function record(report, site, what, example)
  report.failed = report.failed + 1
  local s = report.sites[site]
  if not s then
    s = { count = 0, what = what, example = example }
    report.sites[site] = s
    report.order[#report.order + 1] = site
  end
  s.count = s.count + 1
end

local function summary(report)
  local lines = { string.format("%s: %d of %d generated calls failed, at %d distinct place(s):",
    report.subject, report.failed, report.calls, #report.order) }
  for _, site in ipairs(report.order) do
    local s = report.sites[site]
    lines[#lines + 1] = string.format("  %s: %s  [%d call(s)]", site, s.what, s.count)
    lines[#lines + 1] = "      e.g. " .. s.example
  end
  return table.concat(lines, "\n")
end

local function assert_clean(report)
  assert.is_true(report.calls > 0, report.subject .. ": no call was generated")
  if #report.order > 0 then error(summary(report), 0) end
end

local function is_error(v) return getmetatable(v) == qiwi.error end

-- Checks one answer r (a G.guard record) of the call `text`; `sent` is how
-- many requests the fake saw meanwhile (nil: no fake involved).
-- `err_ok` judges a second value other than a qiwi.error (the JSON codec
-- returns its reason as a string).
local function judge(report, text, r, sent, err_ok)
  report.calls = report.calls + 1
  if not r.ok then
    record(report, r.site, "raised: " .. r.message, text)
    return
  end
  if r[1] == nil then
    local err = r[2]
    if not is_error(err) and not (err_ok and err_ok(err)) then
      record(report, "returned by " .. report.subject, "nil and " .. show(err) .. " instead of a qiwi.error", text)
    elseif is_error(err) and err.kind == "argument" and sent and sent > 0 then
      record(report, "sent by " .. report.subject,
        string.format("argument error (%s) after %d request(s) reached the fake", tostring(err.message), sent), text)
    end
  end
end

local function new_fake()
  return fake.new { token = TOKEN, wallet = WALLET, rate_limit = 1e9, master = true }
end

local function new_client(f, extra)
  local o = { token = TOKEN, wallet = WALLET, transport = f:transport(), retries = 0, history_rate = false }
  for k, v in pairs(extra or {}) do o[k] = v end
  if o.wallet == false then o.wallet = nil end
  return assert(qiwi.new(o))
end

-- payments is an iterator: drained (at most 100 steps) into result, err.
local function drain_payments(c, ...)
  local iter = c:payments(...)
  for _ = 1, 100 do
    local v, err = iter()
    if v == nil then
      if err ~= nil then return nil, err end
      return true
    end
  end
  return true
end

local function method_fn(name)
  if name == "payments" then return drain_payments end
  return function(c, ...) return c[name](c, ...) end
end

-- Checks a batch answer: a list with one {v1, v2} per call.
local function judge_batch(report, text, r, sent, ncalls, single)
  report.calls = report.calls + 1
  if not r.ok then
    record(report, r.site, "batch raised: " .. r.message, text)
    return
  end
  local results, err = r[1], r[2]
  if results == nil then
    if not is_error(err) then record(report, "batch returned", "nil and " .. show(err), text) end
    return
  end
  if type(results) ~= "table" then
    record(report, "batch returned", "a " .. type(results) .. " instead of a results list", text)
    return
  end
  for i = 1, ncalls do
    local res = results[i]
    if type(res) ~= "table" then
      record(report, "batch result", "results[" .. i .. "] is " .. show(res), text)
      return
    end
    if res[1] == nil and not is_error(res[2]) then
      record(report, "batch result", "results[" .. i .. "] is nil and " .. show(res[2]), text)
      return
    end
    if single and res[1] == nil and res[2].kind == "argument" and sent > 0 then
      record(report, "sent by batch", string.format("argument error (%s) after %d request(s) reached the fake",
        tostring(res[2].message), sent), text)
    end
  end
end

---------------------------------------------------------------------------

local METHOD_NAMES, METHODS = public_methods()

describe("property: no client method raises", function()
  it("enumerates every public method", function()
    -- the rows and the compositions documented in API.md
    for _, name in ipairs { "profile", "history", "transfer", "convert", "pay_mobile", "pay_card",
                            "bank_transfer", "pay_by_requisites", "buy_card", "buy_master_package",
                            "submit_card_order", "accounts", "payments", "bills", "card_statement" } do
      assert.is_table(METHODS[name], name)
    end
    assert.is_true(#METHOD_NAMES >= 50, "only " .. #METHOD_NAMES .. " methods found")
  end)

  for _, name in ipairs(METHOD_NAMES) do
    it(name .. " answers every generated argument list without raising, and sends nothing on an argument error", function()
      local f = new_fake()
      local c = new_client(f)
      local rng = G.rng(SEED + G.hash(name))
      local report = new_report("client:" .. name)
      local call = method_fn(name)
      local who = "client"
      local function visit(args, n)
        local text = who .. ":" .. name .. "(" .. show_args(args, n) .. ")"
        local before = #f.requests
        local r = G.guard(call, { c, unpack(args, 1, n) }, n + 1)
        judge(report, text, r, #f.requests - before)
        if name ~= "payments" and rng:chance(BATCH_SHARE) then
          local item = { name, unpack(args, 1, n) }
          item.n = n + 1
          before = #f.requests
          local br = G.guard(c.batch, { c, { item } }, 2)
          judge_batch(report, who .. ":batch{{" .. show(name) .. (n > 0 and ", " or "") .. show_args(args, n)
            .. ", n = " .. (n + 1) .. "}}", br, #f.requests - before, 1, true)
        end
      end
      each_call(METHODS[name], rng, visit)
      -- and a client that learns its wallet from the profile: a composition
      -- must not ask for it before its arguments are checked (a row checks
      -- them before it looks at the wallet)
      -- (a new client each time: the first lookup is remembered)
      who = "client_without_wallet"
      local function visit_walletless(args, n)
        c = new_client(f, { wallet = false })
        visit(args, n)
      end
      if client_mod.row_methods[name] == client_mod.Client[name] then
        for _ = 1, RANDOM_CALLS / 2 do visit_walletless(random_args(METHODS[name], rng)) end
      else
        each_call(METHODS[name], rng, visit_walletless, RANDOM_CALLS / 2)
      end
      if VERBOSE then
        io.stderr:write(string.format("\n%-36s %6d calls %6d requests", name, report.calls, #f.requests))
      end
      assert_clean(report)
    end)
  end
end)

describe("property: client:batch never raises", function()
  it("takes any calls list, item and option", function()
    local f = new_fake()
    local c = new_client(f)
    local rng = G.rng(SEED + 17)
    local report = new_report("client:batch")
    local function run(text, calls, opts, ncalls, nargs)
      if ncalls and type(calls) == "table" then ncalls = #calls end
      local before = #f.requests
      local r = G.guard(c.batch, { c, calls, opts }, nargs or 3)
      judge_batch(report, text, r, #f.requests - before, ncalls or 0, false)
    end
    for _, e in ipairs(POOL) do
      local v = e[2]
      run("client:batch(" .. show(v) .. ")", v, nil, 0, 2)
      run("client:batch({{\"profile\"}}, " .. show(v) .. ")", { { "profile" } }, v, 1)
      run("client:batch({" .. show(v) .. "})", { v }, nil, 1)
      run("client:batch({{" .. show(v) .. "}})", { { v } }, nil, 1)
      run("client:batch({{\"profile\", n = " .. show(v) .. "}})", { { "profile", n = v } }, nil, 1)
      run("client:batch({{\"history\", " .. show(v) .. "}})", { { "history", v } }, nil, 1)
      run("client:batch({{\"profile\"}}, {concurrency = " .. show(v) .. "})", { { "profile" } }, { concurrency = v }, 1)
    end
    for _, name in ipairs { "payments", "batch", "close", "_call", "_send", "nope", "" } do
      run("client:batch({{" .. show(name) .. "}})", { { name } }, nil, 1)
    end
    -- mixtures of generated calls of every method, ten at a time
    for _ = 1, 30 do
      local calls, texts = {}, {}
      for k = 1, 10 do
        local name = rng:pick(METHOD_NAMES)
        if name == "payments" then name = "profile" end
        local slots = METHODS[name]
        local item = { name }
        for i, s in ipairs(slots) do
          local v = rng:chance(0.5) and rng:pick(POOL)[2] or (s.opts and {} or copy(s.valid))
          item[i + 1] = v
        end
        item.n = #slots + 1
        calls[k] = item
        texts[k] = "{" .. show_args(item, item.n) .. "}"
      end
      run("client:batch{" .. table.concat(texts, ", ") .. "}", calls, nil, #calls)
    end
    assert_clean(report)
  end)
end)

describe("property: qiwi.new never raises", function()
  local OPTIONS = { "token", "wallet", "base_url", "timeout", "connect_timeout", "ca_file", "retries",
                    "user_agent", "transport", "p2p_secret_key", "resolve", "allow_http", "max_body",
                    "history_rate", "proxy", "store" }

  it("takes any value for every option, and the clients it makes answer a call", function()
    local f = new_fake()
    local report = new_report("qiwi.new")
    local function try(text, opts, nargs, uses_fake)
      local r = G.guard(qiwi.new, { opts }, nargs or 1)
      judge(report, text, r)
      if r.ok and r[1] ~= nil and uses_fake then
        -- a client it made must not raise on its first call either
        local c = r[1]
        local cr = G.guard(function() return c:nickname() end, {}, 0)
        judge(report, text .. ":nickname()", cr)
      end
    end
    local function base()
      return { token = TOKEN, wallet = WALLET, transport = f, retries = 0, history_rate = false }
    end
    for _, e in ipairs(POOL) do
      try("qiwi.new(" .. show(e[2]) .. ")", e[2])
    end
    try("qiwi.new()", nil, 0)
    for _, name in ipairs(OPTIONS) do
      for _, e in ipairs(POOL) do
        local o = base()
        o[name] = e[2]
        -- never a libcurl client: the follow-up call must not leave the machine
        local uses_fake = not (name == "transport" and e[2] == nil)
        try("qiwi.new{" .. name .. " = " .. show(e[2]) .. ", …}", o, 1, uses_fake)
        local bare = { [name] = e[2] }
        try("qiwi.new{" .. name .. " = " .. show(e[2]) .. "}", bare, 1, false)
      end
    end
    for _, e in ipairs(POOL) do
      for _, key in ipairs { "limit", "window", "clock", "sleep" } do
        local o = base()
        o.history_rate = { [key] = e[2] }
        try("qiwi.new{history_rate = {" .. key .. " = " .. show(e[2]) .. "}, …}", o, 1, true)
      end
      local o = base()
      o.history_rate = { clock = e[2], sleep = e[2] }
      try("qiwi.new{history_rate = {clock = " .. show(e[2]) .. ", sleep = same}, …}", o, 1, true)
      o = base()
      o.resolve = { ["edge.qiwi.com"] = e[2] }
      try("qiwi.new{resolve = {[\"edge.qiwi.com\"] = " .. show(e[2]) .. "}, …}", o, 1, true)
    end
    for _, e in ipairs(KEYS) do
      local o = base()
      o[e[2]] = true
      try("qiwi.new{[" .. show(e[2]) .. "] = true, …}", o, 1, true)
      o = base()
      o.resolve = { [e[2]] = "127.0.0.1" }
      try("qiwi.new{resolve = {[" .. show(e[2]) .. "] = \"127.0.0.1\"}, …}", o, 1, true)
    end
    local rng = G.rng(SEED + 29)
    for _ = 1, 200 do
      local o, parts = base(), {}
      for _, name in ipairs(OPTIONS) do
        if name ~= "transport" and rng:chance(0.3) then
          local e = rng:pick(POOL)
          o[name] = e[2]
          parts[#parts + 1] = name .. " = " .. show(e[2])
        end
      end
      try("qiwi.new{" .. table.concat(parts, ", ") .. ", …}", o, 1, true)
    end
    assert_clean(report)
  end)
end)

describe("property: the module functions never raise", function()
  it("qiwi.payment_form_url", function()
    local report = new_report("qiwi.payment_form_url")
    local slots = { opts_slot(keys_of { "provider", 99, "account", "79990001122", "amount", AMOUNT,
                                        "comment", "c", "blocked", { "sum" }, "currency", 643,
                                        "account_type", "phone" }) }
    local rng = G.rng(SEED + 31)
    each_call(slots, rng, function(args, n)
      local r = G.guard(qiwi.payment_form_url, args, n)
      judge(report, "qiwi.payment_form_url(" .. show_args(args, n) .. ")", r)
      if r.ok and r[1] ~= nil and type(r[1]) ~= "string" then
        record(report, "payment_form_url returned", "a " .. type(r[1]) .. " instead of a URL",
          "qiwi.payment_form_url(" .. show_args(args, n) .. ")")
      end
    end)
    assert_clean(report)
  end)

  it("qiwi.webhook.verify", function()
    local report = new_report("qiwi.webhook.verify")
    local key = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
    local body = '{"payment":{"txnId":"1","sum":{"amount":1,"currency":643},"type":"IN",'
      .. '"signFields":"sum.amount,type"},"hash":"' .. string.rep("0", 64) .. '"}'
    local bodies = { { "a notification", body } }
    local keys = { { "a key", key } }
    for _, e in ipairs(POOL) do
      bodies[#bodies + 1] = e
      keys[#keys + 1] = e
    end
    for _, b in ipairs(bodies) do
      for _, k in ipairs(keys) do
        local r = G.guard(qiwi.webhook.verify, { b[2], k[2] }, 2)
        judge(report, "qiwi.webhook.verify(" .. show(b[2]) .. ", " .. show(k[2]) .. ")", r)
      end
      local r = G.guard(qiwi.webhook.verify, { b[2], key, "extra" }, 3)
      judge(report, "qiwi.webhook.verify(" .. show(b[2]) .. ", key, \"extra\")", r)
    end
    assert_clean(report)
  end)

  -- The receivers' constructors: every option given each value of the pool
  -- (and the whole options argument too): a function or nil, err, never a raise.
  local function receiver_options(subject, ctor, base)
    local report = new_report(subject)
    local function try(o, text)
      local r = G.guard(ctor, { o }, 1)
      judge(report, text, r)
      if r.ok and r[1] ~= nil and type(r[1]) ~= "function" then
        record(report, subject .. " returned", "a " .. type(r[1]) .. " instead of a handler", text)
      end
    end
    for _, e in ipairs(POOL) do try(e[2], subject .. "(" .. show(e[2]) .. ")") end
    for name in pairs(base) do
      for _, e in ipairs(POOL) do
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        o[name] = e[2]
        try(o, subject .. "{" .. name .. " = " .. show(e[2]) .. ", …}")
      end
    end
    assert_clean(report)
  end

  it("qiwi.webhook.handler", function()
    local fn = function() end
    local key = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
    receiver_options("qiwi.webhook.handler", qiwi.webhook.handler,
      { key = key, on_payment = fn, statuses = { "SUCCESS" }, operation = "IN", ttl = 60, name = "n",
        store = qiwi.store.memory(), claim = 10 })
    receiver_options("qiwi.webhook.handler", qiwi.webhook.handler,
      { key = key, on_notification = fn, memory = 10, ttl = 60, dict = nil })
  end)

  it("qiwi.p2p.handler", function()
    receiver_options("qiwi.p2p.handler", qiwi.p2p.handler,
      { secret_key = "test-merchant-secret-for-signature-check", on_bill = function() end,
        store = qiwi.store.memory(), name = "n", ttl = 60 })
  end)

  -- The codec's reason is a one-line string ("decode: … at byte N").
  local function codec_reason(err) return type(err) == "string" and not err:find("[\r\n]") end

  it("qiwi.json.decode", function()
    local report = new_report("qiwi.json.decode")
    local inputs = {}
    for _, e in ipairs(POOL) do inputs[#inputs + 1] = e[2] end
    for _, s in ipairs { "{", "[1,", '"\\ud800"', "1e999999", "-", "[" .. string.rep("[", 600),
                         '{"a":' .. string.rep("9", 400) .. "}", "nul", "\239\187\191{}" } do
      inputs[#inputs + 1] = s
    end
    for _, v in ipairs(inputs) do
      judge(report, "qiwi.json.decode(" .. show(v) .. ")", G.guard(qiwi.json.decode, { v }, 1), nil, codec_reason)
    end
    judge(report, "qiwi.json.decode()", G.guard(qiwi.json.decode, {}, 0), nil, codec_reason)
    assert_clean(report)
  end)

  it("qiwi.json.encode", function()
    local report = new_report("qiwi.json.encode")
    for _, e in ipairs(POOL) do
      local v = e[2]
      judge(report, "qiwi.json.encode(" .. show(v) .. ")", G.guard(qiwi.json.encode, { v }, 1), nil, codec_reason)
      judge(report, "qiwi.json.encode({x = " .. show(v) .. "})", G.guard(qiwi.json.encode, { { x = v } }, 1), nil, codec_reason)
      judge(report, "qiwi.json.encode({" .. show(v) .. "})", G.guard(qiwi.json.encode, { { v } }, 1), nil, codec_reason)
      if v ~= nil and v == v then
        judge(report, "qiwi.json.encode({[" .. show(v) .. "] = 1})",
          G.guard(qiwi.json.encode, { { [v] = 1 } }, 1), nil, codec_reason)
      end
    end
    judge(report, "qiwi.json.encode()", G.guard(qiwi.json.encode, {}, 0), nil, codec_reason)
    assert_clean(report)
  end)
end)
