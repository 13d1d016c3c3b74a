-- The history rate limit: QIWI blocks a wallet for 5 minutes after more than
-- 100 history requests in a minute, so the client waits instead.
local qiwi = require "qiwi"

local function virtual_time()
  local t = { now = 1700000000, slept = {} }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.slept[#t.slept + 1] = s
    t.now = t.now + s
  end
  return t
end

describe("history rate limit", function()
  it("keeps 150 history calls under the fake's 100-per-minute limit by waiting", function()
    local vt = virtual_time()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", clock = vt.clock, history_pages = 1, history_rows = 5 }
    -- margin = 0: in virtual time, with an in-process transport, a call
    -- reaches the fake the moment it is let through (the default margin is
    -- for connections; its own spec is below)
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport(), retries = 0,
                                history_rate = { clock = vt.clock, sleep = vt.sleep, margin = 0 } })
    for i = 1, 150 do
      local page, err = c:history { rows = 5 }
      assert.is_nil(err, "call " .. i)
      assert.is_table(page.data)
      vt.now = vt.now + 0.01
    end
    assert.is_true(#vt.slept >= 1)
    local total = 0
    for _, s in ipairs(vt.slept) do total = total + s end
    assert.is_true(total >= 55 and total <= 61, "waited " .. total)
  end)

  it("without the limiter the same burst is refused with 423, which is retryable", function()
    local vt = virtual_time()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", clock = vt.clock, history_pages = 1, history_rows = 5 }
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport(), retries = 0,
                                history_rate = false })
    local first_err
    for _ = 1, 150 do
      local page, err = c:history { rows = 5 }
      if not page then
        first_err = err
        break
      end
    end
    assert.is_table(first_err)
    assert.equal(423, first_err.status)
    assert.is_true(first_err.retryable)
  end)

  it("does not slow down calls that are not history calls", function()
    local vt = virtual_time()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", clock = vt.clock }
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport(),
                                history_rate = { limit = 2, clock = vt.clock, sleep = vt.sleep } })
    for _ = 1, 10 do assert.truthy(c:accounts()) end
    assert.equal(0, #vt.slept)
  end)

  it("honours a configured limit and window", function()
    local vt = virtual_time()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", clock = vt.clock }
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport(),
                                history_rate = { limit = 3, window = 10, clock = vt.clock, sleep = vt.sleep,
                                                 margin = 0 } })
    for _ = 1, 4 do assert.truthy(c:history { rows = 1 }) end
    assert.equal(1, #vt.slept)
    assert.is_true(vt.slept[1] > 9.9 and vt.slept[1] < 10.1)
  end)

  it("counts over the window plus twice connect_timeout by default: a call let through reaches QIWI up to"
    .. " a connect and a TLS handshake later", function()
    local vt = virtual_time()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", clock = vt.clock }
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport(),
                                connect_timeout = 3,
                                history_rate = { limit = 3, window = 10, clock = vt.clock, sleep = vt.sleep } })
    for _ = 1, 4 do assert.truthy(c:history { rows = 1 }) end
    assert.equal(1, #vt.slept)
    assert.is_true(vt.slept[1] > 15.9 and vt.slept[1] < 16.1, tostring(vt.slept[1]))
  end)

  it("refuses malformed settings", function()
    for _, hr in ipairs { "fast", { limit = 0 }, { window = -1 }, { speed = 1 }, { clock = os.time } } do
      local c, err = qiwi.new { token = "test-token", history_rate = hr }
      assert.is_nil(c)
      assert.equal("argument", err.kind)
    end
  end)
end)
