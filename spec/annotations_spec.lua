-- Editor support: every public function has its LuaLS annotations in
-- types/*.lua (Debian has no lua-language-server and npm no package of it,
-- so this spec stands in for `lua-language-server --check`), and `make
-- doc`'s two steps (docs/luals_to_ldoc.lua, then Debian's ldoc) turn them
-- into the HTML reference without an error or a warning.
--
-- The public functions are found at run time, not listed here: whatever
-- `require "qiwi"` reaches (its lazily loaded submodules included), the
-- methods of a client, of a watcher, of each store, of the fake and of the
-- P2P client (once there is one), so that a function added anywhere without
-- its annotations fails this spec. Names starting with "_" are private.
local qiwi = require "qiwi"
local util = require "util"

local REPO = util.repo_root()
local TYPES = REPO .. "/types"
local TOKEN, WALLET = "annotations-token", "79111234567"

-- The classes of the objects whose methods are public, as types/ names them.
local CLIENT, WATCHER, STORE, FAKE, P2P = "qiwi.Client", "qiwi.Watcher", "qiwi.Store", "qiwi.Fake", "qiwi.P2P"

local function types_files()
  local out = {}
  for _, name in ipairs(util.lines("ls " .. util.shq(TYPES))) do
    if name:match("%.lua$") then out[#out + 1] = TYPES .. "/" .. name end
  end
  return out
end

-- Reads types/: every `function NAME(params) end` with the comment block
-- above it, NAME written with its class ("qiwi.Client:accounts" for
-- "function Client:accounts" under "---@class qiwi.Client" / "local Client = {}"),
-- and every class's fields.
local function read_types()
  local funcs, fields = {}, {}
  for _, path in ipairs(types_files()) do
    local lines = util.lines("cat " .. util.shq(path))
    local alias, class = {}, nil
    local block = {}
    for i, line in ipairs(lines) do
      local c = line:match("^%-%-%-@class%s+([%w_.]+)")
      if c then
        class = c
        fields[c] = fields[c] or {}
      end
      local fname = line:match("^%-%-%-@field%s+([%w_]+)")
      if fname and class then fields[class][fname] = true end
      if line:match("^%s*%-%-") then
        block[#block + 1] = line
      else
        local loc = line:match("^local%s+([%w_]+)%s*=%s*{%s*}")
        if loc and class then alias[loc] = class end
        local name, params = line:match("^function%s+([%w_.:]+)%s*%(([^)]*)%)")
        if name then
          local head, sep, rest = name:match("^([%w_]+)([.:])(.+)$")
          if head and alias[head] then name = alias[head] .. sep .. rest end
          local list = {}
          for p in params:gmatch("[%w_]+") do list[#list + 1] = p end
          funcs[name] = { params = list, block = block, where = path:match("[^/]+$") .. ":" .. i }
        end
        if line ~= "" and not line:match("^local%s") and not line:match("^[%w_.]+%s*=%s*{%s*}") then class = nil end
        block = {}
      end
    end
  end
  return funcs, fields
end

-- Why the annotation of f is incomplete, or nil: a summary line, a
-- ---@param for each parameter (and none for a parameter it does not
-- have), and at least one ---@return.
local function incomplete(f)
  local params, has_return, has_summary = {}, false, false
  for _, line in ipairs(f.block) do
    local p = line:match("^%-%-%-@param%s+([%w_]+)")
    if p then params[p] = true end
    if line:match("^%-%-%-@return%s") then has_return = true end
    if line:match("^%-%-%- %S") then has_summary = true end
  end
  local why = {}
  if not has_summary then why[#why + 1] = "no summary" end
  for _, p in ipairs(f.params) do
    if not params[p] then why[#why + 1] = "no ---@param " .. p end
    params[p] = nil
  end
  for p in pairs(params) do why[#why + 1] = "---@param " .. p .. " is no parameter" end
  if not has_return then why[#why + 1] = "no ---@return" end
  return #why > 0 and table.concat(why, ", ") or nil
end

-- The public functions of t (not "_"-prefixed), as prefix .. name.
local function functions_of(t, prefix, out)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then out[prefix .. k] = true end
  end
end

-- The methods of an object: its metatable's __index table (and the chain
-- of those), as class:name.
local function methods_of(obj, class, out)
  local mt, seen = getmetatable(obj), {}
  while type(mt) == "table" and type(mt.__index) == "table" and not seen[mt.__index] do
    seen[mt.__index] = true
    functions_of(mt.__index, class .. ":", out)
    mt = getmetatable(mt.__index)
  end
end

-- The lazily loaded submodules: the keys of init.lua's `lazy` table.
local function lazy_modules()
  local src = util.read_file(REPO .. "/lua/qiwi/init.lua")
  local body = assert(src:match("local%s+lazy%s*=%s*(%b{})"), "lua/qiwi/init.lua has no lazy table")
  local out = {}
  for k in body:gmatch("([%w_]+)%s*=") do out[#out + 1] = k end
  return out
end

-- Every public function reachable at run time.
local function public_functions()
  local out = {}
  for k, v in pairs(qiwi) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      if type(v) == "function" then out["qiwi." .. k] = true
      elseif type(v) == "table" and k ~= "error" and k ~= "array_mt" then functions_of(v, "qiwi." .. k .. ".", out) end
    end
  end
  for _, m in ipairs(lazy_modules()) do
    local mod = qiwi[m]
    assert(type(mod) == "table", "qiwi." .. m .. " does not load")
    functions_of(mod, "qiwi." .. m .. ".", out)
  end
  local fake = qiwi.fake.new { token = TOKEN, wallet = WALLET }
  methods_of(fake, FAKE, out)
  local client = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = fake })
  methods_of(client, CLIENT, out)
  if client.watch then
    local w = assert(client:watch { on_payment = function() end })
    methods_of(w, WATCHER, out)
  end
  local dir = util.tmpdir("annotations")
  for _, s in ipairs { qiwi.store.memory(), qiwi.store.file(dir), qiwi.store.redis {} } do
    methods_of(s, STORE, out)
  end
  util.exec("rm -rf " .. util.shq(dir))
  local p2p = rawget(qiwi, "p2p") or qiwi.p2p
  if type(p2p) == "table" and type(p2p.new) == "function" then
    local obj = p2p.new { secret_key = "annotations-secret-key", public_key = "annotations-public-key", transport = fake }
    if type(obj) == "table" then methods_of(obj, P2P, out) end
  end
  return out
end

describe("LuaLS annotations (types/)", function()
  local funcs, fields = read_types()

  it("are there for every public function, complete", function()
    local missing = {}
    for name in pairs(public_functions()) do
      local f = funcs[name]
      local why = not f and "no annotation in types/" or incomplete(f)
      if why then missing[#missing + 1] = name .. ": " .. why end
    end
    table.sort(missing)
    assert.same({}, missing, #missing .. " public functions lack annotations:\n" .. table.concat(missing, "\n"))
  end)

  it("name no function that is gone", function()
    local public, stale = public_functions(), {}
    for name, f in pairs(funcs) do
      if not public[name] then stale[#stale + 1] = name .. " (" .. f.where .. ")" end
    end
    table.sort(stale)
    assert.same({}, stale, "annotated but not public: " .. table.concat(stale, ", "))
  end)

  it("give qiwi.Error every field an error carries", function()
    local qerror = require "qiwi.error"
    local samples = {
      select(2, qiwi.new {}),
      qerror.new(qerror.from_response(500, { errorCode = "x", userMessage = "u", description = "d",
                                             traceId = "t", serviceName = "s" }, "GET", "/p", 5)),
      qerror.new { kind = "api", message = "m", payment = {}, code = 1 },
    }
    local fake = qiwi.fake.new { token = TOKEN, wallet = WALLET }
    fake:fail_next { status = 503 }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = fake, retries = 0 })
    samples[#samples + 1] = select(2, c:accounts())
    local documented = assert(fields["qiwi.Error"], "no ---@class qiwi.Error")
    for _, e in ipairs(samples) do
      assert.equal(qiwi.error, getmetatable(e))
      for k in pairs(e) do assert.is_true(documented[k] == true, "qiwi.Error has no ---@field " .. tostring(k)) end
    end
    for _, k in ipairs { "kind", "message", "status", "code", "retryable", "method", "path" } do
      assert.is_true(documented[k] == true, "qiwi.Error has no ---@field " .. k)
    end
  end)

  it("give every qiwi.new option a field of qiwi.NewOptions", function()
    local documented = assert(fields["qiwi.NewOptions"], "no ---@class qiwi.NewOptions")
    local src = util.read_file(REPO .. "/lua/qiwi/options.lua")
    local known = assert(src:match("KNOWN_OPTIONS%s*=%s*(%b{})"))
    local n = 0
    for k in known:gmatch("([%w_]+)%s*=%s*true") do
      n = n + 1
      assert.is_true(documented[k] == true, "qiwi.NewOptions has no ---@field " .. k)
    end
    assert.is_true(n >= 16, "KNOWN_OPTIONS not read")
  end)

  it("build the HTML reference with ldoc, no error, no warning", function()
    local dir = util.tmpdir("doc")
    local log = dir .. "/log"
    local ok = util.exec("cd " .. util.shq(REPO) .. " && " .. util.shq(util.interpreter())
      .. " docs/luals_to_ldoc.lua types " .. util.shq(dir .. "/src") .. " && ldoc -c config.ld -d "
      .. util.shq(dir .. "/out") .. " " .. util.shq(dir .. "/src") .. " >" .. util.shq(log) .. " 2>&1")
    local text = util.read_file(log) or ""
    local index = util.read_file(dir .. "/out/index.html") or ""
    local client_page = util.read_file(dir .. "/out/modules/qiwi.client.html") or ""
    util.exec("rm -rf " .. util.shq(dir))
    assert.is_true(ok, "ldoc failed (is lua-ldoc installed? make deps):\n" .. text)
    for line in text:gmatch("[^\n]+") do
      assert.truthy(line:match("^output written to") or line:match("^reading configuration"), "ldoc: " .. line)
    end
    assert.truthy(index:find("qiwi.client", 1, true))
    -- the types and parameters came through from the LuaLS tags
    assert.truthy(client_page:find("Client:transfer", 1, true))
    assert.truthy(client_page:find("qiwi.Error", 1, true))
  end)
end)
