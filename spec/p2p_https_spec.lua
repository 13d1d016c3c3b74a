-- qiwi.p2p over real HTTPS: the docs' examples (p2p_docs.lua) against the
-- fake served by nginx with a certificate of the test CA, through the
-- libcurl transport with verification on.
local qiwi = require "qiwi"
local backends = require "backends"
local checks = require "checks"
local p2p_docs = require "p2p_docs"

p2p_docs.run(backends.https_backend, describe, it, before_each)

describe("qiwi.p2p over HTTPS", function()
  local b

  setup(function()
    b = backends.https_backend()
  end)

  before_each(function()
    p2p_docs.reset(b)
  end)

  it("verifies the server: a client without the test CA is refused, nothing created", function()
    local p2p = assert(qiwi.p2p.new { secret_key = p2p_docs.SECRET, base_url = b.srv.base_url,
                                      retries = 0, clock = function() return p2p_docs.NOW end })
    checks.assert_kind("tls", p2p:create_bill { amount = 1, expires = p2p_docs.NOW + 60 })
    assert.equal(0, #b:requests())
  end)

  it("keeps one connection for a bill's calls", function()
    local p2p = p2p_docs.client(b)
    local bill = assert(p2p:create_bill { amount = 1, expires = p2p_docs.NOW + 60 })
    assert.truthy(p2p:bill(bill.billId))
    assert.truthy(p2p:reject_bill(bill.billId))
    local reqs = b:requests()
    assert.equal(3, #reqs)
    assert.equal(reqs[1].connection, reqs[3].connection)
    p2p:close()
  end)
end)
