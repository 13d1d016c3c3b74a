std = "max"
globals = { "ngx" }
max_line_length = 130
files["spec/"] = { std = "+busted", max_line_length = false }
-- QIWI's own sample answers, whitespace in their strings included
files["spec/fixtures/"] = { ignore = { "613" } }
files["lua/qiwi/error_codes.lua"] = { max_line_length = false }
