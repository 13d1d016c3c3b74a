std = "max"
globals = {}
globals = { "ngx" }
max_line_length = 130
files["spec/"] = { std = "+busted" }
files["lua/qiwi/error_codes.lua"] = { max_line_length = false }
