-- The two ways specs reach the fake QIWI: in-process (the fake as a client
-- transport) and over real HTTPS (the fake served by nginx with a test CA).
-- Both expose the same small interface so each spec runs against both.
local qiwi = require "qiwi"

local _M = {}

local function parse_query(q)
  local t = {}
  if not q or q == "" then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unescape(s)
      s = s:gsub("+", " ")
      return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[unescape(k)] = unescape(v)
  end
  return t
end
_M.parse_query = parse_query

-- A logged request in one shape: method, path, query (raw), params (decoded),
-- headers (lower-case names), body (raw), json (decoded body or nil).
local function normalise(r)
  local headers = {}
  for k, v in pairs(r.headers or {}) do headers[string.lower(k)] = v end
  local json
  if r.body and r.body ~= "" then json = qiwi.json.decode(r.body) end
  return {
    method = r.method, path = r.path, query = r.query or "", params = parse_query(r.query),
    headers = headers, body = r.body, json = json, connection = r.connection,
  }
end

local DEFAULT_FAKE = { token = "test-token", wallet = "79111234567" }

local function merged(opts)
  local o = {}
  for k, v in pairs(DEFAULT_FAKE) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

-- In-process backend.
function _M.local_backend()
  local fake = require "qiwi.fake"
  local b = { name = "in-process" }
  function b:reset(opts)
    self.fake = fake.new(merged(opts))
    self.opts = merged(opts)
  end
  function b:client(opts)
    local o = { token = self.opts.token, wallet = self.opts.wallet, transport = self.fake:transport(), retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.wallet == false then o.wallet = nil end
    return assert(qiwi.new(o))
  end
  function b:requests()
    local out = {}
    for i, r in ipairs(self.fake.requests) do out[i] = normalise(r) end
    return out
  end
  function b:last()
    local r = self:requests()
    return r[#r]
  end
  function b:call(method, ...)
    return self.fake[method](self.fake, ...)
  end
  b:reset()
  return b
end

-- HTTPS backend on the shared nginx.
function _M.https_backend()
  local https_fake = require "https_fake"
  local srv = https_fake.shared()
  local b = { name = "https", srv = srv }
  function b:reset(opts)
    self.opts = merged(opts)
    srv:reset(self.opts)
  end
  function b:client(opts)
    local o = { token = self.opts.token, wallet = self.opts.wallet, base_url = srv.base_url,
                ca_file = srv.ca_file, retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.wallet == false then o.wallet = nil end
    return assert(qiwi.new(o))
  end
  function b.requests(_)
    local out = {}
    for i, r in ipairs(srv:requests()) do out[i] = normalise(r) end
    return out
  end
  function b:last()
    local r = self:requests()
    return r[#r]
  end
  function b.call(_, method, ...)
    return srv:call(method, ...)
  end
  b:reset()
  return b
end

-- A client's RUB balance (account qw_wallet_rub), from its accounts().
function _M.rub(c)
  for _, a in ipairs(assert(c:accounts()).accounts) do
    if a.alias == "qw_wallet_rub" then return a.balance.amount end
  end
end

function _M.each(fn)
  for _, make in ipairs { _M.local_backend, _M.https_backend } do
    fn(make)
  end
end

return _M
