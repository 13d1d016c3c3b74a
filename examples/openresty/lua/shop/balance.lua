-- GET /balance: the wallet's balances as JSON, {"balances":{"qw_wallet_rub":
-- {"amount":1000,"currency":643}, …}}. The call to QIWI goes through
-- cosockets, so the worker serves other requests while it waits.
local qiwi = require "qiwi"
local shop = require "shop.qiwi"

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(qiwi.json.encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

return function()
  local client, cerr = shop.client()
  if not client then return reply(500, { error = tostring(cerr) }) end
  local res, err = client:accounts()
  if not res then
    ngx.log(ngx.ERR, "qiwi balance: ", tostring(err))
    -- the token never appears in err; the message is safe to show
    return reply(err.kind == "argument" and 500 or 502, { error = tostring(err), kind = err.kind })
  end
  local balances = {}
  for _, acc in ipairs(res.accounts or {}) do
    if acc.hasBalance and type(acc.balance) == "table" then
      balances[acc.alias] = { amount = acc.balance.amount, currency = acc.balance.currency }
    end
  end
  return reply(200, { balances = balances })
end
