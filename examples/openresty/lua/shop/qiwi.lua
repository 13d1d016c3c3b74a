-- The example shop's QIWI settings and its client, one per nginx worker.
--
-- configure() runs once, from init_by_lua (nginx.conf); the client is made on
-- first use in a worker (a request, or check_at_start's timer), so each
-- worker forked from the master gets its own. A client is safe to share
-- between the requests a worker serves at the same time: its transport
-- keeps no per-request state, and connections go back to the worker's
-- keep-alive pool.
local qiwi = require "qiwi"

local _M = {}

-- nginx's default error_log level is error, which drops notice and warn
-- lines; ngx.STDERR lines are written at every level (they show as "[]").
-- The example's success lines use it so that they are seen out of the box.
local SUCCESS = ngx.STDERR

local settings
local client

-- The options of qiwi.new that configure() passes on.
local CLIENT_OPTIONS = {
  "token", "wallet", "base_url", "resolve", "timeout", "connect_timeout", "retries",
  "allow_http", "max_body", "user_agent",
}

-- s: token, wallet, base_url, resolve, timeout, connect_timeout, retries,
-- allow_http (plain http to a loopback base_url, for a local fake),
-- max_body, user_agent (the options of qiwi.new), plus webhook_key (base64,
-- from client:webhook_key(hook_id)), webhook_dict (lua_shared_dict name),
-- on_notification (fn(note), replaces the example's own) and
-- check_at_start (false: no call to QIWI at start, see check_at_start()).
function _M.configure(s)
  assert(type(s) == "table", "shop.qiwi.configure takes a table")
  assert(type(s.token) == "string" and s.token ~= "", "shop.qiwi: token is required (set QIWI_TOKEN)")
  settings = s
  client = nil
end

function _M.settings()
  return assert(settings, "shop.qiwi.configure was not called from init_by_lua")
end

function _M.client()
  if client then return client end
  local s = _M.settings()
  local opts = {}
  for _, name in ipairs(CLIENT_OPTIONS) do opts[name] = s[name] end
  local c, err = qiwi.new(opts)
  if not c then return nil, err end
  client = c
  return c
end

-- The wallet as logs show it: its last four digits.
local function masked(wallet)
  wallet = tostring(wallet or "")
  if #wallet <= 4 then return wallet end
  return string.rep("*", #wallet - 4) .. wallet:sub(-4)
end

local function check(premature)
  if premature then return end
  local s = _M.settings()
  local base = s.base_url or "https://edge.qiwi.com"
  local c, err = _M.client()
  local res
  if c then res, err = c:accounts() end
  if not res then
    ngx.log(ngx.ERR, "shop.qiwi: QIWI at ", base, " did not answer at start: ", tostring(err))
    return
  end
  local n = 0
  for _ in ipairs(res.accounts or {}) do n = n + 1 end
  ngx.log(SUCCESS, "shop.qiwi: ready, QIWI at ", base, " answered for wallet ",
    s.wallet and masked(s.wallet) or "(from the profile)", " (", n, " accounts);",
    " serving GET /balance and POST /qiwi/webhook")
end

-- From init_worker_by_lua: the first worker asks QIWI for the wallet's
-- accounts as soon as nginx runs (from a timer: init_worker has no
-- cosockets), and logs either "shop.qiwi: ready, …" or why it failed.
function _M.check_at_start()
  local s = _M.settings()
  if s.check_at_start == false then return end
  local id = ngx.worker.id()
  if id and id ~= 0 then return end
  local ok, err = ngx.timer.at(0, check)
  if not ok then ngx.log(ngx.ERR, "shop.qiwi: cannot check QIWI at start: ", err) end
end

-- What the example does with a notification: remember the payment in the
-- qiwi_payments dict, where the rest of the shop would look orders up.
-- configure{ on_notification = … } replaces it.
function _M.record_payment(note)
  local p = note.payment
  local payments = ngx.shared.qiwi_payments
  if payments and type(p) == "table" then
    local sum = type(p.sum) == "table" and p.sum or {}
    payments:set(tostring(p.txnId), string.format("%s %s %s %s", tostring(p.type), tostring(p.status),
      tostring(sum.amount), tostring(sum.currency)))
  end
  ngx.log(SUCCESS, "shop.qiwi: payment ", tostring(p and p.txnId), " ", tostring(p and p.status))
end

return _M
