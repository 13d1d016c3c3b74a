-- The in-nginx half of spec/nginx_spec.lua (runs under nginx's LuaJIT):
-- test locations of the nginx that runs our client, and the raw answers of a
-- test upstream ("shapes") that the fake QIWI never gives (chunked bodies,
-- bodies up to the closing of the connection, interim answers, stalls).
local qiwi = require "qiwi"

local json = qiwi.json
local _M = {}

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

local function now()
  ngx.update_time()
  return ngx.now()
end

local function error_fields(err)
  return { kind = err.kind, message = err.message, status = err.status, code = err.code,
           retryable = err.retryable, text = tostring(err) }
end

local function outcome(res, err, t0)
  return { ok = res ~= nil, result = res, err = err and error_fields(err), elapsed = now() - t0 }
end

-- GET /t/call?base=&resolve=host=ip&token=&method=&arg=&timeout=&max_body=&ca_file=&retries=
-- Makes a client with these options, calls one method and answers the outcome.
function _M.call()
  local a = ngx.req.get_uri_args()
  local opts = {
    token = a.token or "test-token", wallet = a.wallet or "79111234567", base_url = a.base,
    retries = tonumber(a.retries or "0"), timeout = tonumber(a.timeout),
    connect_timeout = tonumber(a.connect_timeout), max_body = tonumber(a.max_body), ca_file = a.ca_file,
  }
  if a.resolve then
    local host, ip = a.resolve:match("^([^=]+)=(.+)$")
    opts.resolve = { [host] = ip }
  end
  local t0 = now()
  local c, err = qiwi.new(opts)
  if not c then return reply(outcome(nil, err, t0)) end
  local res, cerr = c[a.method or "accounts"](c, a.arg)
  return reply(outcome(res, cerr, t0))
end

-- Where phases without cosockets leave what they saw, for GET /t/result?key=.
local function remember(key, res, err, t0)
  ngx.shared.results:set(key, json.encode(outcome(res, err, t0)))
end

local function phase_client(base)
  return assert(qiwi.new { token = "test-token", wallet = "79111234567", base_url = base,
                           resolve = { ["fake.qiwi.test"] = "127.0.0.1" }, retries = 2 })
end

function _M.init_worker(base)
  local t0 = now()
  local res, err = phase_client(base):accounts()
  remember("init_worker", res, err, t0)
end

function _M.log_phase(base)
  local t0 = now()
  local res, err = phase_client(base):accounts()
  remember("log", res, err, t0)
end

function _M.result()
  local v = ngx.shared.results:get(ngx.var.arg_key or "")
  if v == nil then return ngx.exit(404) end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(v)
end

-- on_notification of the webhook test: counts calls, then does what the
-- example does.
function _M.count_notification(note)
  local results = ngx.shared.results
  results:incr("notifications", 1, 0)
  results:set("last_message", json.encode(note.messageId))
  require("shop.qiwi").record_payment(note)
end

-- POST /t/webhook-memory?key=: a receiver without a shared dict, remembering
-- two messageIds, whose key comes from a function (here: the query).
local memory_handler

function _M.webhook_memory()
  if not memory_handler then
    memory_handler = require("qiwi.webhook").handler {
      key = function() return ngx.req.get_uri_args().key end,
      memory = 2,
      on_notification = function(note)
        ngx.shared.results:incr("memory_calls", 1, 0)
        ngx.shared.results:set("memory_last", json.encode(note.messageId))
      end,
    }
  end
  return memory_handler()
end

-- GET /t/blocking: the fake's balance through the libcurl transport, which
-- blocks the worker. The spec's control case: with it, concurrent requests
-- take turns.
function _M.blocking(base, port, ca)
  local transport = require("qiwi.transport.curl").new {
    ca_file = ca, timeout = 10, resolve = { "fake.qiwi.test:" .. port .. ":127.0.0.1" },
  }
  local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", base_url = base,
                              transport = transport, retries = 0 })
  local t0 = now()
  local res, err = c:accounts()
  transport:close()
  return reply(outcome(res, err, t0))
end

---------------------------------------------------------------------------
-- The shapes upstream: the bearer token names the answer, written byte for
-- byte on the raw connection.

local ACCOUNTS = '{"accounts":[{"alias":"qw_wallet_rub","hasBalance":true,'
  .. '"balance":{"amount":42.5,"currency":643}}],"marker":9007199254740993}'

local function big_json(n)
  return '{"pad":"' .. string.rep("x", n) .. '"}'
end

local function head(extra)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" .. (extra or "") .. "\r\n"
end

local function chunked(body, pieces)
  local out, step = {}, math.ceil(#body / pieces)
  for i = 1, #body, step do
    local part = body:sub(i, i + step - 1)
    -- a chunk extension, which a reader must skip
    out[#out + 1] = string.format("%x;piece=%d\r\n%s\r\n", #part, #out + 1, part)
  end
  out[#out + 1] = "0\r\nX-Checksum: none\r\n\r\n"
  return out
end

local SHAPES = {
  length = function() return { head("Content-Length: " .. #ACCOUNTS .. "\r\n") .. ACCOUNTS } end,
  chunked = function()
    local parts = chunked(ACCOUNTS, 3)
    table.insert(parts, 1, head("Transfer-Encoding: chunked\r\n"))
    return parts
  end,
  close = function() return { head("Connection: close\r\n"), ACCOUNTS:sub(1, 20), ACCOUNTS:sub(21) } end,
  interim = function()
    return { "HTTP/1.1 100 Continue\r\n\r\n", head("Content-Length: " .. #ACCOUNTS .. "\r\n") .. ACCOUNTS }
  end,
  ["big-length"] = function()
    local b = big_json(8000)
    return { head("Content-Length: " .. #b .. "\r\n"), b }
  end,
  ["big-chunked"] = function()
    local parts = chunked(big_json(8000), 4)
    table.insert(parts, 1, head("Transfer-Encoding: chunked\r\n"))
    return parts
  end,
  ["big-close"] = function() return { head("Connection: close\r\n"), big_json(8000) } end,
  -- headers, then silence past the client's timeout
  slow = function() return { head("Content-Length: " .. #ACCOUNTS .. "\r\n"), 3 } end,
  garbage = function() return { "SPDY/9 what\r\n\r\n" } end,
  -- kept alive, then the next request on the connection is read and
  -- dropped unanswered: what a client meets when it reuses a connection
  -- the server is just closing
  stale = function() return { head("Content-Length: " .. #ACCOUNTS .. "\r\n") .. ACCOUNTS, "drop next" } end,
  -- a redirect, which the client must not follow (the token would go along)
  redirect = function()
    return { "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.invalid/steal\r\nContent-Length: 0\r\n\r\n" }
  end,
  -- every other request is refused as overloaded, the next one answered
  busy = function()
    if ngx.shared.results:incr("busy", 1, 0) % 2 == 1 then
      local body = '{"code":"QWPRC-999","message":"try later"}'
      return { "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 0\r\n"
               .. "Content-Length: " .. #body .. "\r\n\r\n" .. body }
    end
    return { head("Content-Length: " .. #ACCOUNTS .. "\r\n") .. ACCOUNTS }
  end,
  -- QIWI's answer to too many history calls, every time
  locked = function()
    local body = '{"serviceName":"payment-history","errorCode":"request.blocked","userMessage":"blocked",'
      .. '"description":"too many requests","traceId":"t1"}'
    return { "HTTP/1.1 423 Locked\r\nContent-Type: application/json\r\nContent-Length: " .. #body
             .. "\r\n\r\n" .. body }
  end,
  ["short-length"] = function()
    return { head("Content-Length: " .. (#ACCOUNTS + 50) .. "\r\nConnection: close\r\n") .. ACCOUNTS }
  end,
}

function _M.shapes()
  local auth = ngx.var.http_authorization or ""
  local name = auth:match("^Bearer shape%-(.+)$")
  local shape = name and SHAPES[name]
  if not shape then return ngx.exit(404) end
  ngx.shared.results:incr("requests:" .. name, 1, 0)
  ngx.req.read_body()
  local sock = assert(ngx.req.socket(true))
  for _, piece in ipairs(shape()) do
    if type(piece) == "number" then
      ngx.sleep(piece)
    elseif piece == "drop next" then
      sock:settimeout(5000)
      -- counted only when a request came: a client may also just close
      local line = sock:receive("*l")
      if line and line ~= "" then
        repeat line = sock:receive("*l") until not line or line == ""
        ngx.shared.results:incr("dropped", 1, 0)
      end
    else
      assert(sock:send(piece))
      -- separate writes, so the client sees the pieces arrive apart
      ngx.sleep(0.01)
    end
  end
  -- nginx closes a connection whose request used the raw socket.
  return ngx.exit(ngx.HTTP_OK)
end

-- GET /t/batch?base=&n=&concurrency=: a batch of n accounts() calls and a
-- bad one; answers how long it took and what came back.
function _M.batch()
  local a = ngx.req.get_uri_args()
  local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", base_url = a.base,
                              resolve = { ["fake.qiwi.test"] = "127.0.0.1" }, retries = 0 })
  local calls = { { "no_such_method" } }
  for i = 1, tonumber(a.n) do calls[i + 1] = { "accounts" } end
  local t0 = now()
  local out, err = c:batch(calls, { concurrency = tonumber(a.concurrency) })
  local elapsed = now() - t0
  if not out then return reply { ok = false, err = error_fields(err), elapsed = elapsed } end
  local summary = {}
  for i, r in ipairs(out) do
    summary[i] = { ok = r[1] ~= nil, kind = r[2] and r[2].kind,
                   amount = type(r[1]) == "table" and r[1].accounts[1].balance.amount or nil }
  end
  return reply { ok = true, results = summary, elapsed = elapsed }
end

return _M
