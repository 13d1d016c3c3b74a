-- kill -9 of watching processes at random moments, each restarted on the
-- same qiwi.store.file, while money keeps arriving at the fake QIWI (served
-- over HTTPS by a real nginx). Every payment must reach a handler, and the
-- repeats are counted: at most one per kill (the payment whose handler had
-- returned when the process died, before its delivery was recorded).
local https_fake = require "https_fake"
local children = require "children"
local util = require("pki").util

local TOKEN, WALLET = "watch-kill-token", "79111234567"

local WATCHER = [[
local unpack = table.unpack or unpack
local base_url, ca_file, dir, log, since, duration = unpack(ARGS)
local qiwi = require "qiwi"
io.write("PID ", core.getpid(), "\n")
io.flush()
local c = assert(qiwi.new { token = ]] .. string.format("%q", TOKEN) .. [[, wallet = ]]
  .. string.format("%q", WALLET) .. [[, base_url = base_url, ca_file = ca_file, retries = 1,
                            store = qiwi.store.file(dir),
                            -- polls every 50 ms: a limit to match the fake's below
                            history_rate = { limit = 6000, window = 60 } })
local w = assert(c:watch {
  since = tonumber(since), interval = 0.05, lease = 0.3, claim = 1,
  on_payment = function(p)
    local fh = assert(io.open(log, "a"))
    fh:write(p.txnId, "\n")
    fh:close()
    -- widens the moment between the handler's return and its record
    core.sleep(0.001)
  end,
})
local total, err = w:run { duration = tonumber(duration) }
io.write("DONE ", tostring(total), " ", tostring(err), "\n")
]]

local function lines_of(path)
  local out = {}
  local s = util.read_file(path) or ""
  for l in s:gmatch("[^\n]+") do out[#out + 1] = tonumber(l) end
  return out
end

describe("client:watch across kill -9", function()
  local srv, dir

  setup(function()
    dir = children.tmpdir("watch")
    srv = https_fake.start { fake = { token = TOKEN, wallet = WALLET, history_pages = 0,
                                                  rate_limit = 6000 } }
  end)

  teardown(function()
    if srv then srv:stop() end
    children.cleanup()
  end)

  it("loses no payment and repeats at most one per kill", function()
    local store_dir, log = dir .. "/store", dir .. "/delivered.log"
    util.mkdir_p(store_dir)
    local script = children.script(dir, "watcher", WATCHER)
    local since = os.time() - 5
    local sent = {}
    local function receive(n)
      for _ = 1, n do
        sent[#sent + 1] = assert(srv:call("receive", { from = "79260000000", amount = #sent + 1 }))
      end
    end
    local kills = 0
    math.randomseed(os.time())
    for round = 1, 10 do
      local child = children.spawn { script = script,
        args = { srv.base_url, srv.ca_file, store_dir, log, since, 60 } }
      if not child:pid() then error("the watcher did not start:\n" .. child:wait()) end
      -- payments arrive in bursts while it runs, some over a page at once
      receive(round % 4 == 0 and 60 or 12)
      util.sleep(0.05 + math.random() * 0.4)
      receive(8)
      util.sleep(math.random() * 0.3)
      local killed = child:kill()
      local out = child:wait()
      assert(killed, "the watcher was gone before its kill:\n" .. out)
      kills = kills + 1
    end
    receive(20)
    -- a last watcher catches up with everything
    local last = children.spawn { script = script, args = { srv.base_url, srv.ca_file, store_dir, log, since, 20 } }
    assert(last:pid())
    local ok = util.wait_until(20, function()
      local seen = {}
      for _, id in ipairs(lines_of(log)) do seen[id] = true end
      for _, id in ipairs(sent) do if not seen[id] then return false end end
      return true
    end, 0.1)
    last:kill()
    last:wait()
    local got = lines_of(log)
    local times = {}
    for _, id in ipairs(got) do times[id] = (times[id] or 0) + 1 end
    local missing, repeats = 0, 0
    for _, id in ipairs(sent) do if not times[id] then missing = missing + 1 end end
    for _, n in pairs(times) do repeats = repeats + (n - 1) end
    local unknown = 0
    local sent_set = {}
    for _, id in ipairs(sent) do sent_set[id] = true end
    for id in pairs(times) do if not sent_set[id] then unknown = unknown + 1 end end
    io.stderr:write(("\n[watch kill -9] %d payments sent, %d delivered (%d distinct), %d repeated, %d kills"
      .. " (+1 at the end), %d missing\n"):format(#sent, #got, #got - repeats, repeats, kills, missing))
    assert.is_true(ok, "not every payment was delivered")
    assert.equal(0, missing)
    assert.equal(0, unknown)
    assert.is_true(repeats <= kills + 1, repeats .. " repeats for " .. (kills + 1) .. " kills")
    -- and the fake never had to refuse a history call for the rate
    for _, r in ipairs(srv:requests()) do assert.is_true(r.status ~= 423) end
  end)
end)
