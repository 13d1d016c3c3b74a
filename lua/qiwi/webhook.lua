-- Webhook notifications: signature verification (and, inside nginx, a receiver).
local core = require "qiwi.core"
local qerror = require "qiwi.error"
local events = require "qiwi.events"

local _M = {}

-- A real notification is about 1 KB. The cap bounds the work an unsigned
-- body can cause (decoding, scanning) before anything is checked.
local MAX_BODY = 64 * 1024
_M.MAX_BODY = MAX_BODY

-- The signed text carries values but no names: QIWI joins the values of the
-- fields payment.signFields names, and signFields itself is not signed. Any
-- rule that lets the sender choose the names lets him choose which value a
-- name gets: "sum.amount,sum.currency" with the two values swapped signs
-- the same text as the genuine list, and so does an account "+7…|13353941550"
-- followed by no txnId. So the list must be the documented one, in the
-- documented order, and nothing else: then the signed text has exactly five
-- parts, each bound to its name by its position, and no signed value may
-- contain the separator (checked on the decoded value, so "\u007c" counts).
-- Extra fields after the five are refused rather than tolerated: their names
-- could be relabelled at will, and with them allowed a genuine value holding
-- a '|' would let the parts shift into the five.
local SIGNED = { "sum.currency", "sum.amount", "type", "account", "txnId" }
local SIGNED_LIST = table.concat(SIGNED, ",")
-- Generous room for the documented list with blanks around its names; the
-- cap (and with it the number and length of names) is checked before the
-- list is split, so a hostile list costs nothing.
local MAX_SIGN_FIELDS = 128
-- Keys of the objects the signed values are looked up in (the notification,
-- payment and sum; QIWI's have 6, 13 and 2): each costs Lua work, the values
-- skipped over do not.
local MAX_KEYS = 100

-- code tells a receiver what to answer: "signature" (403) or "format" (400).
local function fail(msg, code)
  return nil, qerror.new { kind = "argument", message = msg, code = code or "format", retryable = false }
end

local function skip_ws(s, i)
  return (s:find("[^ \t\r\n]", i)) or #s + 1
end

-- The body's structure, of the same length: every escape pair becomes "__"
-- and the contents of a string holding a bracket, a brace, a comma or a
-- colon become '_'. In it a quote always delimits a string, and brackets
-- balance, so values are skipped with plain and %b finds, which run in C:
-- a scanner stepping through the body in Lua costs tens of milliseconds on
-- a 64 KiB body dense with brackets. Called only on a body the decoder took,
-- which is JSON: backslashes stand inside strings only.
local function structure_of(s)
  local m = s:gsub("\\.", "__")
  return (m:gsub('"([^"]*)"', function(inner)
    if inner:find("[][{},:]") then return '"' .. string.rep("_", #inner) .. '"' end
  end))
end

local function value_end(m, i) -- index after the value at i, or nil
  local c = m:byte(i)
  local e
  if c == 34 then
    e = m:find('"', i + 1, true)
  elseif c == 123 then
    e = select(2, m:find("^%b{}", i))
  elseif c == 91 then
    e = select(2, m:find("^%b[]", i))
  else
    return (m:find("[,}%] \t\r\n]", i)) or #m + 1
  end
  return e and e + 1
end

-- The raw value spans of the object at i: key → {first, last}, or nil when
-- the text is not an object the scanner and the decoder agree on, or has
-- more than MAX_KEYS keys. Keys come from the body, the structure from its
-- mask m.
local function object_spans(s, m, i)
  if m:sub(i, i) ~= "{" then return nil end
  local spans, n = {}, 0
  i = skip_ws(m, i + 1)
  if m:sub(i, i) == "}" then return spans end
  while i <= #m do
    n = n + 1
    if n > MAX_KEYS then return nil end
    if m:sub(i, i) ~= '"' then return nil end
    local ke = value_end(m, i)
    if not ke then return nil end
    local key = s:sub(i + 1, ke - 2)
    if key:find("\\", 1, true) then
      -- the decoder unescapes keys: "pay\u006dent" is its "payment"
      key = core.json_decode(s:sub(i, ke - 1))
      if type(key) ~= "string" then return nil end
    end
    -- with a key twice, the signed text and the decoded table could each
    -- take another one
    if spans[key] then return nil end
    i = skip_ws(m, ke)
    if m:sub(i, i) ~= ":" then return nil end
    i = skip_ws(m, i + 1)
    local ve = value_end(m, i)
    if not ve or ve == i then return nil end
    spans[key] = { i, ve - 1 }
    i = skip_ws(m, ve)
    local c = m:sub(i, i)
    if c == "}" then return spans end
    if c ~= "," then return nil end
    i = skip_ws(m, i + 1)
  end
  return nil
end

-- Splits signFields (at most MAX_SIGN_FIELDS bytes) into trimmed names;
-- nil, why, code when it is not a list of field paths ("format") or not the
-- documented one ("signature").
local function sign_field_names(list)
  local names = {}
  for piece in (list .. ","):gmatch("([^,]*),") do
    local name = piece:match("^%s*(.-)%s*$")
    if name == "" then return nil, "payment.signFields has an empty name", "format" end
    if name:find("[^%w_%.]") or name:find("^%.") or name:find("%.$") or name:find("..", 1, true) then
      return nil, "payment.signFields has a name that is not a field path", "format"
    end
    names[#names + 1] = name
  end
  if #names ~= #SIGNED then
    return nil, "payment.signFields is not " .. SIGNED_LIST .. " (" .. #names .. " names)", "signature"
  end
  for i, name in ipairs(names) do
    if name ~= SIGNED[i] then
      return nil, "payment.signFields is not " .. SIGNED_LIST .. " (" .. name .. " in place of " .. SIGNED[i] .. ")",
        "signature"
    end
  end
  return names
end

-- What QIWI signed for each of the five, checked against the decoded table:
-- strings signed as their decoded value, numbers as the text QIWI wrote
-- ("1", "1.0" and "1.10" sign differently). The types are the docs': a
-- string in a number's place (or an object anywhere) would let the value's
-- raw JSON text, or a value the receiver does not expect, into the MAC.
local function signed_parts(body, mask, pspans, payment)
  local sspan = pspans.sum
  local sspans = sspan and object_spans(body, mask, sspan[1])
  if not sspans or type(payment.sum) ~= "table" then
    return fail("payment.sum is not an object of at most " .. MAX_KEYS .. " keys, each once")
  end
  local function text(spans, name)
    local span = spans[name]
    return span and body:sub(span[1], span[2])
  end
  local parts = {}

  local currency = text(sspans, "currency")
  if not currency then return fail("signed field 'sum.currency' is missing") end
  if not currency:find("^%d%d?%d?$") or core.json_decode(currency) ~= payment.sum.currency then
    return fail("payment.sum.currency is not a currency code (a number of up to 3 digits)")
  end
  parts[1] = currency

  local amount = text(sspans, "amount")
  if not amount then return fail("signed field 'sum.amount' is missing") end
  local a = payment.sum.amount
  if not amount:find("^%-?%d") or type(a) ~= "number" or core.json_decode(amount) ~= a then
    return fail("payment.sum.amount is not a number")
  end
  parts[2] = amount

  for i = 3, 5 do
    local name = SIGNED[i]
    local raw = text(pspans, name)
    if not raw then return fail("signed field '" .. name .. "' is missing") end
    local v = payment[name]
    if raw:sub(1, 1) ~= '"' or type(v) ~= "string" or core.json_decode(raw) ~= v then
      return fail("payment." .. name .. " is not a string")
    end
    if v == "" and name ~= "account" then return fail("payment." .. name .. " is empty") end
    if v:find("|", 1, true) then
      return fail("payment." .. name .. " contains '|', the separator of the signed text", "signature")
    end
    parts[i] = v
  end
  return parts
end

-- verify(raw_body, key_base64) → notification table, or nil, err.
-- Guarantees, on success: payment.signFields is exactly
-- "sum.currency,sum.amount,type,account,txnId", and those five values (sum
-- a table with numbers amount and currency; type, account, txnId strings)
-- are the ones QIWI signed. Nothing else in the notification is signed.
function _M.verify(raw_body, key_base64)
  if type(raw_body) ~= "string" or raw_body == "" then return fail("webhook body must be a non-empty string") end
  if #raw_body > MAX_BODY then
    return fail("webhook body is longer than " .. MAX_BODY .. " bytes: not a QIWI notification")
  end
  if type(key_base64) ~= "string" or key_base64 == "" then return fail("webhook key must be a base64 string") end
  local key, kerr = core.base64_decode(key_base64)
  if not key or key == "" then return fail("webhook key is not valid base64: " .. tostring(kerr)) end
  local note, derr = core.json_decode(raw_body)
  if type(note) ~= "table" then
    return nil, qerror.new { kind = "decode", code = "format", retryable = false,
                             message = tostring(derr or "notification is not a JSON object") }
  end
  local payment = note.payment
  if type(payment) ~= "table" or type(payment.signFields) ~= "string" or type(note.hash) ~= "string" then
    return fail("not a QIWI notification: payment.signFields or hash missing")
  end
  -- a hostile list fails on its length before any scanning
  if #payment.signFields > MAX_SIGN_FIELDS then
    return fail("payment.signFields is not " .. SIGNED_LIST .. " (longer than " .. MAX_SIGN_FIELDS .. " bytes)",
      "signature")
  end
  -- the spans are found once, so the work is linear in the body
  local mask = structure_of(raw_body)
  local top = object_spans(raw_body, mask, skip_ws(mask, 1))
  local pspan = top and top.payment
  local pspans = pspan and object_spans(raw_body, mask, pspan[1])
  if not pspans then
    return fail("not a QIWI notification: no payment object of at most " .. MAX_KEYS .. " keys, each once")
  end
  local names, why, code = sign_field_names(payment.signFields)
  if not names then return fail(why, code) end
  local parts, perr = signed_parts(raw_body, mask, pspans, payment)
  if not parts then return nil, perr end
  local hash = note.hash
  if #hash ~= 64 or hash:find("[^%x]") then return fail("webhook signature is not 64 hex digits", "signature") end
  local mac = core.hmac_sha256_hex(key, table.concat(parts, "|"))
  if not core.constant_time_equal(mac, hash:lower()) then
    return fail("webhook signature does not match", "signature")
  end
  return note
end

-- Reads the request body inside nginx, from memory or from the temp file
-- nginx spills a large body to; of a file, no more than the cap (max, else
-- MAX_BODY) and a byte: verify refuses a longer body by its length alone.
-- qiwi.p2p's receiver reads its notifications with it too.
function _M.read_body(max)
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()
  if not file then return nil end
  local f = io.open(file, "rb")
  if not f then return nil end
  body = f:read((max or MAX_BODY) + 1)
  f:close()
  return body
end
local read_body = _M.read_body

-- A short plain-text answer. Callers then end with ngx.exit(ngx.HTTP_OK):
-- the status is already on the wire, and ngx.exit with a status >= 300 would
-- make nginx try to send an error page after it.
local function answer(status, text)
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain"
  ngx.header["Content-Length"] = #text + 1
  ngx.say(text)
end

local function usable_key(k)
  if type(k) ~= "string" or k == "" then return false end
  local raw = core.base64_decode(k)
  return raw ~= nil and raw ~= ""
end

-- The names a verified notification is remembered under. messageId is not
-- signed, so on its own it lets anyone replay a genuine notification under
-- a fresh id; txnId and type are signed. QIWI sends one payment twice, with
-- the same txnId, when it goes from WAITING to SUCCESS or ERROR (the docs'
-- examples do), so the payment is remembered per phase: at most one
-- notification while waiting and one final one. status is not signed either,
-- which bounds a replay to those two, the final one only when no final one
-- came before.
local function memory_keys(note)
  local p = note.payment
  -- the length keeps type "IN" with txnId "1:2" apart from type "IN:1" with "2"
  local txn = #p.type .. ":" .. p.type .. ":" .. p.txnId
  local msg = note.messageId
  if type(msg) ~= "string" or msg == "" or #msg > 200 then msg = nil end
  return msg and ("qiwi:msg:" .. msg), "qiwi:txn:w:" .. txn, "qiwi:txn:f:" .. txn, p.status == "WAITING"
end

-- A bad option of handler: nil, err (kind "argument"), like every other
-- public function; no message quotes the key.
local function bad(message)
  return nil, qerror.new { kind = "argument", message = message, retryable = false }
end

-- A content handler for nginx:
--   handler{ key = "base64" or function() -> key, on_notification = fn(note),
--            dict = "lua_shared_dict name" or the dict, ttl = seconds (86400),
--            store = a qiwi.store instead of dict (redis: every nginx host),
--            name = what keeps receivers apart in one store ("default"),
--            memory = notifications remembered without a dict or store (10000) }
-- Build it once per worker (at module level, or in init_by_lua) and call it
-- from content_by_lua*: the duplicate memory lives in the handler, or in the
-- shared dict, which is what all workers share.
-- A valid notification gets 200 at once and fn runs after the answer is sent
-- (QIWI wants an answer within 1-2 s and retries otherwise); a repeat (the
-- same txnId and type in the same phase, see memory_keys, or a messageId
-- seen before) gets 200 without calling fn; a bad signature gets 403 and a
-- body that is not a notification 400, neither calling fn.
-- The memory lasts ttl seconds (or memory notifications, or what the dict
-- holds): a replay older than that is called again, so fn should still
-- treat txnId as the payment's identity.
-- With on_payment = fn(payment, "webhook") instead of on_notification (and
-- operation = "IN", statuses = {"SUCCESS"}, as client:watch takes them;
-- store, default the Lua state's memory store; name; claim and ttl as in
-- qiwi.events) the handler is one end of the event stream: a notification
-- of a wanted payment is claimed in the store's ledger, answered 200, then
-- handed to fn in the history item's shape; a watcher on the same store
-- and name never hands it again. A test notification, another operation or
-- an unwanted status is answered 200 and not handed on.
function _M.handler(opts)
  if type(opts) ~= "table" then return bad("webhook.handler takes an options table") end
  -- taken by value: a table whose __index or __newindex raises cannot make this raise
  local given = opts
  opts = {}
  for k, v in next, given do opts[k] = v end
  local key = opts.key
  if type(key) ~= "string" and type(key) ~= "function" then
    return bad("webhook.handler: key must be a string or a function")
  end
  if type(key) == "string" and not usable_key(key) then return bad("webhook.handler: key is not a base64 key") end
  local fn = opts.on_notification
  -- on_payment: the event stream shared with client:watch (qiwi.events):
  -- fn(payment, "webhook"), the payment in the history item's shape, once
  -- per store, wallet and name whichever of the two sees it first.
  local on_payment = opts.on_payment
  if (fn == nil) == (on_payment == nil) then return bad("webhook.handler: give on_notification or on_payment") end
  if fn ~= nil and type(fn) ~= "function" then return bad("webhook.handler: on_notification must be a function") end
  if on_payment ~= nil and type(on_payment) ~= "function" then
    return bad("webhook.handler: on_payment must be a function")
  end
  local statuses, serr = events.status_set(opts.statuses)
  if not statuses then return bad("webhook.handler: " .. serr) end
  local operation = opts.operation or "IN"
  if not events.OPERATIONS[operation] then
    return bad("webhook.handler: operation must be ALL, IN, OUT or QIWI_CARD")
  end
  local ttl = opts.ttl or 86400
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 then
    return bad("webhook.handler: ttl must be a positive number of seconds")
  end
  local dict = opts.dict
  if type(dict) == "string" then
    -- A misspelt name would silently fall back to per-worker memory.
    if not (type(ngx) == "table" and ngx.shared and ngx.shared[dict]) then
      return bad("webhook.handler: no lua_shared_dict named '" .. dict .. "'")
    end
    dict = ngx.shared[dict]
  end
  if dict ~= nil and type(dict) ~= "table" and type(dict) ~= "userdata" then
    return bad("webhook.handler: dict must be a lua_shared_dict or its name")
  end
  local seen_max = opts.memory or 10000
  if type(seen_max) ~= "number" or seen_max ~= seen_max or seen_max < 1 then
    return bad("webhook.handler: memory must be a positive number")
  end
  -- A store (qiwi.store) shares what was handled between nginx instances
  -- (redis), or between the workers of one (shdict); `name` keeps receivers
  -- of different hooks apart in one store.
  local store = opts.store
  if store ~= nil and not require("qiwi.store").check(store) then
    return bad("webhook.handler: store must be a qiwi.store")
  end
  if store ~= nil and dict ~= nil then return bad("webhook.handler: give dict or store, not both") end
  local name, nerr = events.check_name(opts.name)
  if not name then return bad("webhook.handler: " .. nerr) end
  if on_payment then
    if dict ~= nil then return bad("webhook.handler: on_payment keeps its ledger in a store, not a dict") end
    store = store or require("qiwi.store").default()
  end
  local ledger = { claim = opts.claim, ttl = opts.ttl }
  local prefix = "webhook:" .. name .. ":"

  -- true when the key was there, false when added now, nil, err when the
  -- store could not say: the notification is then not handled, and QIWI,
  -- answered 503, sends it again later.
  local function store_add(k)
    local added, err = store:add(prefix .. k, "1", ttl)
    if added == nil then return nil, err end
    return not added
  end

  -- true when the key was there; adds it otherwise. A dict that cannot take
  -- the key (out of memory) counts as new: losing a genuine notification is
  -- worse than a repeat that fn can still recognise by txnId.
  local function dict_add(k)
    local ok, err = dict:add(k, true, ttl)
    if not ok and err ~= "exists" then ngx.log(ngx.ERR, "qiwi webhook: cannot remember ", k, ": ", tostring(err)) end
    return not ok and err == "exists"
  end

  -- Without a dict: the last seen_max notifications, each slot holding the
  -- keys one notification added; slots[first..last] are the live ones.
  local seen, slots, first, last = {}, {}, 1, 0
  local function memory_remember(keys)
    for _, k in pairs(keys) do seen[k] = true end
    last = last + 1
    slots[last] = keys
    if last - first + 1 > seen_max then
      for _, k in pairs(slots[first]) do seen[k] = nil end
      slots[first] = nil
      first = first + 1
    end
  end

  local function duplicate(note)
    local msg, waiting_key, final_key, waiting = memory_keys(note)
    if store then
      if msg then
        local dup, err = store_add(msg)
        if dup ~= false then return dup, err end
      end
      if waiting then
        local final, err = store:get(prefix .. final_key)
        if err then return nil, err end
        if final then return true end
        return store_add(waiting_key)
      end
      return store_add(final_key)
    end
    if dict then
      -- a repeated messageId adds nothing else: a genuine notification
      -- of another payment sent under a seen id must not mark that payment
      if msg and dict_add(msg) then return true end
      if waiting then
        -- a WAITING that comes after the final one is stale
        if dict:get(final_key) then return true end
        return dict_add(waiting_key)
      end
      return dict_add(final_key)
    end
    if msg and seen[msg] then return true end
    local k = waiting and waiting_key or final_key
    if seen[final_key] or seen[k] then return true end
    -- a repeat takes no slot: it would push out what is worth remembering
    memory_remember { msg, k }
    return false
  end

  return function()
    if ngx.req.get_method() ~= "POST" then
      ngx.header["Allow"] = "POST"
      answer(405, "POST only")
      return ngx.exit(ngx.HTTP_OK)
    end
    local body = read_body()
    local k = key
    if type(k) == "function" then
      local ok, v = pcall(k)
      if not ok or not usable_key(v) then
        -- never the value: a key that is almost right is still a secret
        ngx.log(ngx.ERR, "qiwi webhook: the key function gave no usable base64 key (",
                ok and type(v) or "it raised", ")")
        answer(500, "webhook key unavailable")
        return ngx.exit(ngx.HTTP_OK)
      end
      k = v
    end
    local note, err = _M.verify(body or "", k)
    if not note then
      if err.code == "signature" then
        ngx.log(ngx.WARN, "qiwi webhook: refused a notification: ", err.message)
        answer(403, err.message)
      else
        answer(400, err.message)
      end
      return ngx.exit(ngx.HTTP_OK)
    end
    if on_payment then
      local p = note.payment
      -- QIWI's notifications name a payment IN or OUT only; the history's
      -- QIWI_CARD payments are OUT there
      local op_ok = operation == "ALL" or p.type == operation or (operation == "QIWI_CARD" and p.type == "OUT")
      if note.test == true or not op_ok or not statuses[p.status] then
        answer(200, "OK")
        return ngx.exit(ngx.HTTP_OK)
      end
      local payment = events.from_notification(p)
      local ekey = events.key(tostring(events.integer(p.personId)), name, tostring(payment.txnId), p.type)
      local state, cerr = events.claim(store, ekey, ledger)
      if state == nil then
        ngx.log(ngx.ERR, "qiwi webhook: the store cannot say whether this payment was handled: ", tostring(cerr))
        answer(503, "store unavailable")
        return ngx.exit(ngx.HTTP_OK)
      end
      -- answered at once, as QIWI wants; a handler that fails releases its
      -- claim, and the watcher on the same store and name delivers it later
      answer(200, "OK")
      ngx.eof()
      if state == "claimed" then
        local ok, why = events.run(on_payment, payment, "webhook")
        if not ok then ngx.log(ngx.ERR, "qiwi webhook: on_payment failed: ", tostring(why)) end
        local _, ferr = events.finish(store, ekey, ok, ledger)
        if ferr then ngx.log(ngx.ERR, "qiwi webhook: cannot record a delivery: ", tostring(ferr)) end
      end
      return ngx.exit(ngx.HTTP_OK)
    end
    local dup, derr = duplicate(note)
    if dup == nil then
      ngx.log(ngx.ERR, "qiwi webhook: the store cannot say whether this notification was handled: ",
              tostring(derr))
      answer(503, "store unavailable")
      return ngx.exit(ngx.HTTP_OK)
    end
    answer(200, "OK")
    ngx.eof()
    if not dup then
      local ok, ferr = pcall(fn, note)
      if not ok then ngx.log(ngx.ERR, "qiwi webhook: on_notification failed: ", tostring(ferr)) end
    end
    return ngx.exit(ngx.HTTP_OK)
  end
end

return _M
