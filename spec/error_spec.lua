-- The error object: QIWI's two error shapes, English texts, retryable rules.
local qerror = require "qiwi.error"
local qiwi = require "qiwi"

local function build(status, data)
  return qerror.new(qerror.from_response(status, data, "POST", "/sinap/api/v2/terms/99/payments"))
end

describe("errors", function()
  it("maps the {serviceName, errorCode, userMessage, description, traceId} shape", function()
    local e = build(400, { serviceName = "payment-history", errorCode = "validation.error",
                           userMessage = "Validation error", description = "rows must be 1..50",
                           traceId = "abc123" })
    assert.equal("api", e.kind)
    assert.equal(400, e.status)
    assert.equal("validation.error", e.code)
    assert.equal("Validation error", e.message)
    assert.equal("rows must be 1..50", e.description)
    assert.equal("abc123", e.trace_id)
    assert.is_false(e.retryable)
    assert.equal(qiwi.error, getmetatable(e))
  end)

  it("maps the {code = QWPRC-NNN, message} shape with the English text of the code", function()
    local e = build(400, { code = "QWPRC-220", message = "Недостаточно средств" })
    assert.equal("api", e.kind)
    assert.equal("QWPRC-220", e.code)
    assert.equal("Not enough funds. Replenish your wallet", e.message)
    assert.equal("Недостаточно средств", e.description)
  end)

  it("keeps QIWI's message for a QWPRC code the docs do not list", function()
    local e = build(400, { code = "QWPRC-999999", message = "Something else" })
    assert.equal("Something else", e.message)
  end)

  it("gives the English text of history errorCodes", function()
    assert.equal("Not enough funds. Replenish your wallet", qerror.text(220))
    assert.equal("Recipient's card expired", qerror.text("548"))
    assert.is_nil(qerror.text(123456))
  end)

  it("an answer without QIWI's shape is an http error", function()
    local e = build(502, "<html>bad gateway</html>")
    assert.equal("http", e.kind)
    assert.equal(502, e.status)
    assert.is_true(e.retryable)
  end)

  it("is retryable for 423, 5xx, network and timeout only", function()
    for status, expected in pairs { [400] = false, [401] = false, [404] = false, [422] = false,
                                    [423] = true, [500] = true, [503] = true, [599] = true } do
      assert.equal(expected, build(status, {}).retryable, status)
    end
    assert.is_true(qerror.new { kind = "network", message = "x" }.retryable)
    assert.is_true(qerror.new { kind = "timeout", message = "x" }.retryable)
    assert.is_false(qerror.new { kind = "tls", message = "x" }.retryable)
    assert.is_false(qerror.new { kind = "decode", message = "x" }.retryable)
    assert.is_false(qerror.argument("x").retryable)
  end)

  it("tostring is one line with kind, status and request", function()
    local e = build(401, { errorCode = "auth", userMessage = "Bad\ntoken\r\n" })
    local s = tostring(e)
    assert.is_nil(s:find("[\r\n]"))
    -- inner line breaks are escaped, never copied into a log line
    assert.matches("^api: Bad\\ntoken", s)
    assert.matches("401, POST /sinap/api/v2/terms/99/payments", s, 1, true)
  end)

  it("scrubs secrets from every text field", function()
    local e = qerror.new({ kind = "network", message = "failed for tok-123 and again tok-123",
                           description = "tok-123", path = "/x/tok-123" }, { "tok-123" })
    for _, k in ipairs { "message", "description", "path" } do
      assert.is_nil(e[k]:find("tok-123", 1, true), k)
    end
    assert.is_nil(tostring(e):find("tok-123", 1, true))
  end)
end)
