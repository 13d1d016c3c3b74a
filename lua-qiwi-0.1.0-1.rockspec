rockspec_format = "3.0"
package = "lua-qiwi"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/lua-qiwi/lua-qiwi.git",
  tag = "v0.1.0",
}
description = {
  summary = "The QIWI Wallet personal API for Lua: a C core over libcurl and a thin Lua layer",
  detailed = [[
    Profile, identification, limits, payment history, receipts, balances, payments and
    transfers, invoices, webhooks (with signature verification) and QIWI Master; incoming
    payments handed over once from a durable watcher and webhooks; QIWI's P2P invoices
    (api.qiwi.com); shared state in Redis, lua_shared_dict or files; a `qiwi` command.
    Exact 64-bit integers from JSON, safe client payment ids, and a stateful fake QIWI
    for tests (in-process, or served over HTTPS by `qiwi fake`).
  ]],
  license = "MIT",
}
-- argparse is for the `qiwi` command only; Debian ships it as lua-argparse
-- (luarocks make --deps-mode=none then uses that one).
dependencies = {
  "lua >= 5.1, < 5.5",
  "argparse >= 0.6",
}
-- Debian keeps curl/curl.h in the multiarch directory
-- (/usr/include/x86_64-linux-gnu), where luarocks does not look for headers:
-- only the library is looked up, and the compiler finds the header through
-- its own search path, which includes the multiarch directory.
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/hmac.h", library = "crypto" },
}
build = {
  type = "builtin",
  -- the LuaLS definitions, for editors (point Lua.workspace.library at them)
  copy_directories = { "types" },
  modules = {
    ["qiwi.core"] = {
      sources = { "src/core.c", "src/json.c", "src/http.c", "src/session.c", "src/crypto.c", "src/batch.c", "src/fs.c" },
      libraries = { "curl", "crypto" },
      defines = { "QIWI_CORE_VERSION=\"0.1.0\"", "_POSIX_C_SOURCE=200809L" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["qiwi"] = "lua/qiwi/init.lua",
    ["qiwi.answer"] = "lua/qiwi/answer.lua",
    ["qiwi.args"] = "lua/qiwi/args.lua",
    ["qiwi.attempt"] = "lua/qiwi/attempt.lua",
    ["qiwi.builder"] = "lua/qiwi/builder.lua",
    ["qiwi.client"] = "lua/qiwi/client.lua",
    ["qiwi.options"] = "lua/qiwi/options.lua",
    ["qiwi.payment_check"] = "lua/qiwi/payment_check.lua",
    ["qiwi.payments"] = "lua/qiwi/payments.lua",
    ["qiwi.version"] = "lua/qiwi/version.lua",
    ["qiwi.store"] = "lua/qiwi/store/init.lua",
    ["qiwi.store.memory"] = "lua/qiwi/store/memory.lua",
    ["qiwi.store.file"] = "lua/qiwi/store/file.lua",
    ["qiwi.store.shdict"] = "lua/qiwi/store/shdict.lua",
    ["qiwi.store.redis"] = "lua/qiwi/store/redis.lua",
    ["qiwi.store.resp"] = "lua/qiwi/store/resp.lua",
    ["qiwi.endpoints"] = "lua/qiwi/endpoints.lua",
    ["qiwi.error"] = "lua/qiwi/error.lua",
    ["qiwi.error_codes"] = "lua/qiwi/error_codes.lua",
    ["qiwi.forms"] = "lua/qiwi/forms.lua",
    ["qiwi.ids"] = "lua/qiwi/ids.lua",
    ["qiwi.ratelimit"] = "lua/qiwi/ratelimit.lua",
    ["qiwi.batch"] = "lua/qiwi/batch.lua",
    ["qiwi.webhook"] = "lua/qiwi/webhook.lua",
    ["qiwi.watch"] = "lua/qiwi/watch.lua",
    ["qiwi.events"] = "lua/qiwi/events.lua",
    ["qiwi.p2p"] = "lua/qiwi/p2p.lua",
    ["qiwi.transport.curl"] = "lua/qiwi/transport/curl.lua",
    ["qiwi.transport.ngx"] = "lua/qiwi/transport/ngx.lua",
    ["qiwi.fake"] = "lua/qiwi/fake/init.lua",
    ["qiwi.fake.json"] = "lua/qiwi/fake/json.lua",
    ["qiwi.fake.outbox"] = "lua/qiwi/fake/outbox.lua",
    ["qiwi.fake.util"] = "lua/qiwi/fake/util.lua",
    ["qiwi.fake.catalog"] = "lua/qiwi/fake/catalog.lua",
    ["qiwi.fake.hmac"] = "lua/qiwi/fake/hmac.lua",
    ["qiwi.fake.profile"] = "lua/qiwi/fake/profile.lua",
    ["qiwi.fake.history"] = "lua/qiwi/fake/history.lua",
    ["qiwi.fake.balance"] = "lua/qiwi/fake/balance.lua",
    ["qiwi.fake.payments"] = "lua/qiwi/fake/payments.lua",
    ["qiwi.fake.invoices"] = "lua/qiwi/fake/invoices.lua",
    ["qiwi.fake.webhooks"] = "lua/qiwi/fake/webhooks.lua",
    ["qiwi.fake.master"] = "lua/qiwi/fake/master.lua",
    ["qiwi.fake.p2p"] = "lua/qiwi/fake/p2p.lua",
    ["qiwi.fake.nginx"] = "lua/qiwi/fake/nginx.lua",
    ["qiwi.fake.server"] = "lua/qiwi/fake/server.lua",
    ["qiwi.fake.state"] = "lua/qiwi/fake/state.lua",
    ["qiwi.cli"] = "lua/qiwi/cli/init.lua",
    ["qiwi.cli.format"] = "lua/qiwi/cli/format.lua",
    ["qiwi.cli.chart"] = "lua/qiwi/cli/chart.lua",
  },
  install = {
    bin = { qiwi = "bin/qiwi" },
  },
}
