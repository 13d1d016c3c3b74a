-- The request builder: a row of qiwi.endpoints and a call's arguments become
-- the wire request, checked and not sent: method, path, query, body (JSON
-- text) and the complete list of header lines. Every byte a request carries
-- comes from here, except what HTTP itself needs (Host, Content-Length), which
-- the transport adds.
local core = require "qiwi.core"
local args = require "qiwi.args"
local options = require "qiwi.options"

local json_encode = core.json_encode
local type, pairs, ipairs, select, next = type, pairs, ipairs, select, next
local concat, format, find, gsub = table.concat, string.format, string.find, string.gsub
local key_name = options.key_name

local _M = {}

-- Sets a nested field of a JSON body from a dotted wire name.
local function set_path(t, dotted, value)
  local parts = {}
  for part in dotted:gmatch("[^%.]+") do parts[#parts + 1] = part end
  for i = 1, #parts - 1 do
    local child = t[parts[i]]
    if child == nil then
      child = {}
      t[parts[i]] = child
    end
    t = child
  end
  t[parts[#parts]] = value
end

local ids = require "qiwi.ids"

-- Fresh values of a parameter the caller left out: (client) -> value, or
-- nil, err when it cannot be had (a store that is down: nothing is sent).
local random = ids.random
local generators = {
  id = function(client) return ids.fresh(client._store, client.wallet or "?") end,
  -- a version 4 UUID, from 16-bit draws
  uuid = function()
    return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", random(0x10000), random(0x10000), random(0x10000),
                  random(0x1000), 0x8000 + random(0x4000), random(0x10000), random(0x10000), random(0x10000))
  end,
}

-- row -> its parameters by Lua name, built on a row's first call
local known_of = setmetatable({}, { __mode = "k" })

-- The call's arguments by name, taken by value, or nil, reason.
local function named_args(row, name, ...)
  local opts = {}
  local n = select("#", ...)
  local names = row.args or {}
  if n > #names then return nil, format("%s takes %d argument(s), got %d", name, #names, n) end
  local known = known_of[row]
  if not known then
    known = {}
    for _, p in ipairs(row.params or {}) do known[p[1]] = p end
    known_of[row] = known
  end
  for i, argname in ipairs(names) do
    local v = select(i, ...)
    if argname == "opts" then
      if v ~= nil then
        if type(v) ~= "table" then return nil, "options must be a table" end
        -- next, not pairs: no metamethod of the caller's table runs
        for k, val in next, v do
          if not known[k] then return nil, "unknown option '" .. key_name(k) .. "'" end
          if opts[k] == nil then opts[k] = val end
        end
      end
    else
      opts[argname] = v
    end
  end
  return opts
end

-- The id of a payment given an idempotency key: derived from the wallet
-- and the key; with an id as well it is ambiguous. Returns true, or nil,
-- reason (a string) or nil, nil, err (the wallet lookup failed).
local function keyed_id(client, opts)
  local key = opts.idempotency_key
  if key == nil then return true end
  local k, why = args.idempotency_key(key)
  if not k then return nil, "idempotency_key " .. why end
  if opts.id ~= nil then return nil, "give id or idempotency_key, not both" end
  local w, err = client:_wallet()
  if not w then return nil, nil, err end
  opts.id = ids.derived(w, k)
  return true
end

-- Turns the call's arguments into the parts of the wire request of `row`.
-- Returns {path_params=, query=, body=}, or nil, reason (an argument
-- error), or nil, nil, err (an error of its own: the store, the wallet).
local function build(client, row, name, ...)
  local opts, why = named_args(row, name, ...)
  if not opts then return nil, why end
  if row.payment then
    local ok, kwhy, kerr = keyed_id(client, opts)
    if not ok then return nil, kwhy, kerr end
  end

  local req = { path_params = {}, query = {}, body = nil }
  for _, c in ipairs(row.const or {}) do
    local where, wire = c[1]:match("^(%a+)%.(.+)$")
    if where == "body" then
      req.body = req.body or {}
      set_path(req.body, wire, c[2])
    else
      req.query[#req.query + 1] = args.escape(wire) .. "=" .. args.escape(c[2])
    end
  end
  local seconds = {}
  for _, p in ipairs(row.params or {}) do
    local lname, wire, where, check = p[1], p[2], p[3], p[4]
    local v = opts[lname]
    if v == nil then v = p.default end
    if v == nil and p.generate then
      local gerr
      v, gerr = generators[p.generate](client)
      if v == nil then return nil, nil, gerr end
    end
    if where == "none" then -- luacheck: ignore 542
      -- checked above (keyed_id), never sent
    elseif v == nil then
      if p.required then return nil, lname .. " is required" end
    else
      -- a checker gives the wire text and, where JSON takes another type,
      -- the JSON value; a date also gives its seconds, for range checks
      local w, j, secs
      if v == "" and p.empty then
        w = ""
      else
        -- a row of another API (qiwi.p2p) may carry a checker of its own
        w, j, secs = (type(check) == "function" and check or args[check])(v, p.spec)
      end
      if w == nil then return nil, lname .. " " .. j end
      seconds[lname] = secs
      if where == "path" then
        req.path_params[wire] = args.escape(w)
      elseif where == "query" then
        if p.list then
          for i, item in ipairs(w) do
            req.query[#req.query + 1] = args.escape(format("%s[%d]", wire, i - 1)) .. "=" .. args.escape(item)
          end
        else
          req.query[#req.query + 1] = args.escape(wire) .. "=" .. args.escape(w)
        end
      else
        req.body = req.body or {}
        if p.merge then
          for k, fv in pairs(w) do set_path(req.body, wire .. "." .. k, fv) end
        elseif p.as == "string" or j == nil then
          set_path(req.body, wire, w)
        else
          set_path(req.body, wire, j)
        end
      end
    end
  end
  -- Pairs that QIWI only accepts together, and date ranges it refuses.
  for _, p in ipairs(row.params or {}) do
    if p.with and (opts[p[1]] == nil) ~= (opts[p.with] == nil) then
      return nil, p[1] .. " and " .. p.with .. " must be given together"
    end
    if p.max_span and seconds[p[1]] and seconds[p.with] then
      local span = seconds[p.with] - seconds[p[1]]
      if span < 0 then return nil, p.with .. " must not be before " .. p[1] end
      if span > p.max_span then
        return nil, format("the period from %s to %s must be at most %d days", p[1], p.with, math.floor(p.max_span / 86400))
      end
    end
  end
  for _, dotted in ipairs(row.requires or {}) do
    local t = req.body
    for part in dotted:gmatch("[^%.]+") do t = type(t) == "table" and t[part] or nil end
    if t == nil then return nil, dotted:match("[^%.]+$") .. " is required" end
  end
  if row.body == "object" and req.body == nil then req.body = {} end
  return req
end

-- The wire form of a call of `row` on `client`, checked but not sent: path,
-- query, body (encoded JSON or nil) and, for a row without arguments, the
-- whole URL; or nil, err. Single calls and batches send what this returns.
function _M.prepare(client, row, name, ...)
  -- A row that takes nothing (accounts, nickname, …) has one wire form per
  -- wallet: built once, since building costs more than the rest of a call.
  local static = row.args == nil and row.params == nil and row.const == nil and row.body == nil
    and select("#", ...) == 0
  if static then
    local cached = client._static and client._static[row]
    if cached and cached[1] == client.wallet and cached[3] == client.base_url then
      return cached[2], "", nil, cached[4]
    end
  end
  local req, why, berr = build(client, row, name, ...)
  if not req then
    if berr then return nil, berr end
    return nil, client:_error { kind = "argument", message = why, method = row.method, path = row.path, retryable = false }
  end
  local path = row.path
  if find(path, "{w}", 1, true) then
    local w, err = client:_wallet()
    if not w then return nil, err end
    path = gsub(path, "{w}", w)
  end
  path = gsub(path, "{([%w_]+)}", req.path_params)
  local body
  if req.body then
    local encoded, eerr = json_encode(req.body)
    if not encoded then
      return nil, client:_error { kind = "argument", message = eerr, method = row.method, path = path, retryable = false }
    end
    body = encoded
  end
  if static then
    local url = client.base_url .. path
    client._static = client._static or {}
    client._static[row] = { client.wallet, path, client.base_url, url }
    return path, "", nil, url
  end
  return path, concat(req.query, "&"), body
end

-- The complete header lines of every request: built once per client (base)
-- and once per row that changes them (another Accept, lines of its own, a body).
--   base: { token = {lines}, p2p = {lines} or nil }
function _M.base_headers(token, p2p_key, user_agent)
  local function lines(secret)
    return { "Accept: application/json", "Authorization: Bearer " .. secret, "User-Agent: " .. user_agent }
  end
  return { token = lines(token), p2p = p2p_key and lines(p2p_key) or nil }
end

local CONTENT_JSON = "Content-Type: application/json"

-- auth ("token" or "p2p") and the header list of a request of `row`. The
-- list is the same table for every call of that row (transports may cache
-- what they build from it on its identity), and is never changed.
--   headers: private header state of the client {base=, cache=}
function _M.headers(headers, row, has_body)
  local auth = (row.auth == "p2p" and headers.base.p2p) and "p2p" or "token"
  local list = headers.base[auth]
  if not has_body and not row.accept and not row.headers then return auth, list end
  local per_row = headers.cache[row]
  if not per_row then
    per_row = {}
    headers.cache[row] = per_row
  end
  local key = has_body and auth .. "+body" or auth
  local full = per_row[key]
  if not full then
    full = {}
    for _, h in ipairs(list) do
      if row.accept and find(h, "^Accept:") then h = "Accept: " .. row.accept end
      full[#full + 1] = h
    end
    for _, h in ipairs(row.headers or {}) do full[#full + 1] = h end
    if has_body then full[#full + 1] = CONTENT_JSON end
    per_row[key] = full
  end
  return auth, full
end

return _M
