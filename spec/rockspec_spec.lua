-- The rockspec installs every module of the tree and builds every C file:
-- a module missing from it makes an installed `require "qiwi"` fail.
local util = require("pki").util

local REPO = util.repo_root()

local function rockspec()
  local path = assert(io.popen("ls " .. util.shq(REPO) .. "/*.rockspec")):read("*l")
  local env = {}
  local chunk
  if setfenv then -- 5.1 and LuaJIT
    chunk = assert(loadfile(path))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(path, "t", env))
  end
  chunk()
  return env
end

local function files(pattern)
  return util.lines("cd " .. util.shq(REPO) .. " && find " .. pattern .. " | sort")
end

describe("the rockspec", function()
  local spec = rockspec()
  local modules = spec.build.modules

  it("lists every Lua module under its require name", function()
    local listed = {}
    for name, file in pairs(modules) do
      if type(file) == "string" then listed[file] = name end
    end
    for _, file in ipairs(files("lua/qiwi -name '*.lua'")) do
      local name = file:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.equal(name, listed[file], file .. " is not in the rockspec")
    end
  end)

  it("builds every C file of src/", function()
    local sources = {}
    for _, f in ipairs(modules["qiwi.core"].sources) do sources[f] = true end
    for _, file in ipairs(files("src -name '*.c'")) do
      assert.is_true(sources[file] == true, file .. " is not among qiwi.core's sources")
    end
  end)
end)
