# lua-qiwi build, tests, demo and benchmarks.
# `make demo` and `make test` install the Debian packages they need first.

LUA      ?= lua5.4
CC       ?= cc
VERSION  := 0.1.0
BUILD    ?= build/$(LUA)
CORE     := $(BUILD)/qiwi/core.so

ifeq ($(LUA),luajit)
LUA_INC  := /usr/include/luajit-2.1
LUA_BIN  := luajit
else
LUA_INC  := /usr/include/$(LUA)
LUA_BIN  := $(LUA)
endif

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c99 -fPIC -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L \
            -fvisibility=hidden -I$(LUA_INC) -DQIWI_CORE_VERSION='"$(VERSION)"'
LDFLAGS  += -shared
LIBS     := -lcurl -lcrypto

SRCS     := $(wildcard src/*.c)
HDRS     := $(wildcard src/*.h)
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)

# Debian packages: the core and its tests, then the nginx used by the HTTPS fake,
# then the other interpreters. LuaJIT is the luajit2 pair (OpenResty's LuaJIT,
# which libnginx-mod-http-lua links): installing luajit/libluajit-5.1-dev
# instead would make apt remove libnginx-mod-http-lua.
DEB_PKGS := make gcc openssl lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev \
            lua-cjson lua-busted nginx libnginx-mod-http-lua \
            lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev luajit2 libluajit2-5.1-dev \
            lua-check redis-server lua-socket lua-sec lua-ldoc \
            luarocks lua-argparse python3

# Every Lua the core is built and tested for, each into build/<lua>/.
LUAS     := lua5.1 lua5.3 lua5.4 luajit

BUSTED   := $(LUA_BIN) /usr/bin/busted

.PHONY: all deps test demo clean lint sanitize valgrind fuzz ci-extra doc

all: $(CORE)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

# Installs only what is missing, so a second run costs one dpkg-query.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: deps
	@$(MAKE) --no-print-directory all
	$(LUA_BIN) examples/quickstart.lua

# The suite under each interpreter against its own build of the core, then
# the specs tagged nginx once: what they test runs in nginx's LuaJIT (with
# build/luajit's core) whatever Lua drives them; then ci-extra's runs (the
# suite under the sanitizers, a short fuzz run of each target). Every run
# goes to the end, each into build/test/<run>.log and <run>.rc. The summary
# gives one line per run, and its last line, the only one of the form
# "N passed, N failed", is the result of the whole of it; make test fails
# when any run did.
test: deps
	@for l in $(LUAS); do $(MAKE) --no-print-directory all LUA=$$l || exit 1; done
	@rm -rf build/test; mkdir -p build/test; \
	run() { name=$$1; shift; echo "== $$name: $$*"; \
	  { "$$@"; echo $$? >build/test/$$name.rc; } 2>&1 | tee build/test/$$name.log; }; \
	for l in $(LUAS); do \
	  run $$l $$l /usr/bin/busted --run=default --cpath="build/$$l/?.so" --exclude-tags=nginx; \
	done; \
	run nginx lua5.4 /usr/bin/busted --run=default --cpath="build/lua5.4/?.so" --tags=nginx; \
	run lint luacheck --no-color lua spec examples; \
	run rock .ci/rock
	@$(MAKE) --no-print-directory ci-extra CI_SUMMARY=no
	@$(call TEST_SUMMARY,$(LUAS) nginx lint rock sanitize)

# examples/openresty in the foreground against the fake QIWI, from a new
# temporary prefix (pid, logs, temp files); Ctrl-C stops it. Its README says
# more; EXAMPLE_PORT (8080) and EXAMPLE_FAKE_PORT pick the ports.
openresty-example: deps
	@$(MAKE) --no-print-directory all LUA=luajit
	@examples/openresty/run

.PHONY: openresty-example

# examples/shop (orders paid through the webhook and the watcher) the same
# way, against the fake unless QIWI_TOKEN is set; its README says more.
shop-example: deps
	@$(MAKE) --no-print-directory all LUA=luajit
	@examples/shop/run

.PHONY: shop-example

# The rock as users install it (.ci/rock says how): luarocks make, pack and
# install of the packed rock into temporary trees for Lua 5.1 (and LuaJIT),
# 5.3 and 5.4, then the examples and the CLI specs from those trees only.
# Part of make test.
rock: deps
	.ci/rock

.PHONY: rock

# The HTML reference, build/doc/index.html, with Debian's ldoc from the
# LuaLS annotations in types/ (what editors read): docs/luals_to_ldoc.lua
# rewrites their tags as LDoc's into build/doc/src first. Any message of
# ldoc's but its two progress lines fails it. spec/annotations_spec.lua runs the same
# two steps, so make test checks them without writing build/doc.
doc: deps
	@rm -rf build/doc
	@$(LUA_BIN) docs/luals_to_ldoc.lua types build/doc/src
	@ldoc -c config.ld . >build/doc/ldoc.log 2>&1; rc=$$?; \
	if [ $$rc != 0 ] || grep -v '^reading configuration from\|^output written to' build/doc/ldoc.log | grep -q .; then \
	  cat build/doc/ldoc.log; echo "make doc: ldoc failed or warned"; exit 1; fi
	@echo "build/doc/index.html"

# luacheck over the Lua layer, the specs and the examples; part of make test.
lint: deps
	luacheck lua spec examples

# Sanitizers and fuzzing run on Lua 5.4 with clang; the packages come in
# when missing (libclang-rt-dev holds the sanitizer and libFuzzer runtimes).
SAN_PKGS  := clang libclang-rt-dev
SAN_LUA   := lua5.4
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# intercept_tls_get_addr=0: clang 14's LeakSanitizer, on Debian 12's glibc,
# now and then records a dynamic-TLS block of a dlopened library with a bogus
# range (seen: "DTLS 3 at 0x000000000a41-0x001000001b43") and its tracer dies
# scanning it at exit ("Tracer caught signal 11", 5 of 37 runs of the secrets
# child). Without the interception those blocks are not scanned at all, which
# can only add leak reports (pointers held there look unreferenced), never
# hide one; 44 runs after the change, no crash.
SAN_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:intercept_tls_get_addr=0 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The host that runs busted under the sanitizers (see fuzz/lua_host.c).
build/asan/lua: fuzz/lua_host.c
	@mkdir -p $(dir $@)
	clang $(SAN_FLAGS) -std=c99 -I/usr/include/$(SAN_LUA) -o $@ $< -l$(SAN_LUA) -lm

# The whole busted suite against a core built with ASan+UBSan: zero reports
# and zero leaks, or it fails. CFLAGS/LDFLAGS go in through the environment
# so that the Makefile's own += still apply (-fPIC, -shared, includes).
sanitize:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(SAN_PKGS) $(DEB_PKGS)"
	@CC=clang CFLAGS="$(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" \
	  $(MAKE) --no-print-directory all LUA=$(SAN_LUA) BUILD=build/asan
	@$(MAKE) --no-print-directory build/asan/lua
	$(SAN_ENV) build/asan/lua /usr/bin/busted --run=default --cpath='build/asan/?.so' --exclude-tags=nginx

# The whole suite under memcheck: zero errors and zero definite leaks. Only
# the busted process is checked; the nginx and curl it starts are not ours.
valgrind:
	@$(MAKE) --no-print-directory deps DEB_PKGS="valgrind $(DEB_PKGS)"
	@$(MAKE) --no-print-directory all LUA=$(SAN_LUA)
	valgrind --quiet --error-exitcode=3 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite --trace-children=no \
	  $(SAN_LUA) /usr/bin/busted --run=default --cpath='build/$(SAN_LUA)/?.so' --exclude-tags=nginx

# libFuzzer targets for the JSON decoder and webhook verification, each run
# FUZZ_SECONDS (CI: a short run) from the seeds in fuzz/corpus/ plus what
# earlier runs found (build/fuzz/corpus/). A crash leaves its input as
# build/fuzz/crash-*; add it to fuzz/corpus/<target>/ once fixed.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := json webhook
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=c99 -D_POSIX_C_SOURCE=200809L -I/usr/include/$(SAN_LUA) -DQIWI_CORE_VERSION='"$(VERSION)"'
FUZZ_MAX_LEN_json    := 65536
FUZZ_MAX_LEN_webhook := 8192
build/fuzz/%_fuzz: fuzz/%_fuzz.c $(SRCS) $(HDRS)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(SRCS) -l$(SAN_LUA) $(LIBS) -lm
fuzz:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(SAN_PKGS) $(DEB_PKGS)"
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=build/fuzz/%_fuzz)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
	  build/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -timeout=10 \
	    -max_len=$$(case $$t in json) echo $(FUZZ_MAX_LEN_json);; *) echo $(FUZZ_MAX_LEN_webhook);; esac) \
	    -dict=fuzz/$$t.dict -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus/$$t fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' build/fuzz/$$t.log; \
	  if [ $$rc != 0 ]; then tail -40 build/fuzz/$$t.log; echo "fuzz $$t failed (see build/fuzz/$$t.log)"; exit 1; fi; \
	done

# What `make test` adds after the interpreters: the suite under the
# sanitizers and a short fuzz run of each target, each logged into
# build/test/ like make test's runs. On its own it ends with the summary of
# these runs; make test passes CI_SUMMARY=no and gives one summary for all.
CI_FUZZ_SECONDS ?= 25
CI_SUMMARY ?= yes
ci-extra:
	@mkdir -p build/test; rm -f build/test/sanitize.* build/test/fuzz.rc $(FUZZ_TARGETS:%=build/fuzz/%.log); \
	echo "== sanitize: the suite against the ASan+UBSan core"; \
	{ $(MAKE) --no-print-directory sanitize; echo $$? >build/test/sanitize.rc; } 2>&1 | tee build/test/sanitize.log; \
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS); echo $$? >build/test/fuzz.rc
	@$(if $(filter no,$(CI_SUMMARY)),:,$(call TEST_SUMMARY,sanitize))

# The summary of the runs named in $(1) (build/test/<run>.log and .rc) and of
# the fuzz run, then the total and make's exit status. A run's line is
# busted's own count line; a run that failed without counting a failure
# (it crashed, or a sanitizer reported at exit) counts as one failed, and so
# does each fuzz target with a finding (or the fuzz run, when it failed
# otherwise), so that "0 failed" means success. Under the line of a run
# that failed come its first eight failures (busted's "Failure ->" line, the
# test's name, the first line of the message), so that the tail of the output,
# which may be all a CI page keeps, says which tests failed.
# No line but the last starts with a number.
TEST_SUMMARY = echo "== summary"; passed=0; failed=0; bad=; \
	for n in $(1); do \
	  line=$$(grep -aE '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / ' build/test/$$n.log 2>/dev/null | tail -1); \
	  rc=$$(cat build/test/$$n.rc 2>/dev/null || echo unknown); \
	  set -- $$line; p=$${1:-0}; f=$$(( $${4:-0} + $${7:-0} )); \
	  [ -n "$$line" ] || line=$$(grep -a '^Total: ' build/test/$$n.log 2>/dev/null | tail -1); \
	  if [ "$$rc" != 0 ] && [ $$f = 0 ]; then f=1; line="$${line:-no count from busted}; exit status $$rc, counted as 1 failed"; fi; \
	  passed=$$((passed + p)); failed=$$((failed + f)); [ $$f = 0 ] || bad="$$bad $$n"; \
	  printf '%-13s %s\n' $$n "$$line"; \
	done; \
	for n in $$bad; do \
	  awk -v n=$$n '/^(Failure|Error) (->|→) /{ h = $$0; getline t; getline m; \
	    printf "  %s: %s: %s\n    %s\n", n, h, t, m; if (++c == 8) exit }' build/test/$$n.log; \
	done; \
	frc=$$(cat build/test/fuzz.rc 2>/dev/null || echo unknown); found=0; \
	for t in $(FUZZ_TARGETS); do \
	  log=build/fuzz/$$t.log; \
	  if [ ! -f $$log ]; then state="not run"; \
	  elif grep -qa 'ERROR: libFuzzer\|SUMMARY: \|^==[0-9]*==ERROR' $$log; then \
	    state="FINDING, counted as 1 failed (see $$log)"; found=$$((found + 1)); \
	  else state="$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -1) runs, no finding"; fi; \
	  printf '%-13s %s\n' "fuzz $$t" "$$state"; \
	done; \
	if [ "$$frc" != 0 ] && [ $$found = 0 ]; then found=1; printf '%-13s %s\n' fuzz "exit status $$frc, counted as 1 failed"; fi; \
	failed=$$((failed + found)); \
	echo "$$passed passed, $$failed failed"; \
	[ $$failed = 0 ]

clean:
	rm -rf build

# lua-qiwi measured against references on this machine, each several times
# (bench/run.lua says what and how); never part of `make test`. Installs what
# it needs when missing: lua-dkjson, Node.js/npm, and qiwi-sdk (the version
# pinned in bench/package.json) into bench/node_modules. The core is built
# for Lua 5.4 and for LuaJIT (the OpenResty figure runs inside nginx).
# BENCH_QUICK=1 makes a short run for iteration (bench-quick); BENCH_ONLY
# and the other BENCH_* variables of bench/run.lua pass through.
BENCH_PKGS := lua-dkjson
bench: deps
	@$(MAKE) --no-print-directory all LUA=lua5.4
	@$(MAKE) --no-print-directory all LUA=luajit
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(BENCH_PKGS)"
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  $(MAKE) --no-print-directory deps DEB_PKGS="nodejs npm"
	@$(MAKE) --no-print-directory bench-curl-loop
	@[ -f bench/node_modules/qiwi-sdk/package.json ] || \
	  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
	lua5.4 bench/run.lua build/bench/curl_loop bench

# Only make bench's last section, the stores one (bench/stores.lua): what a
# call pays for the shared limiter and fresh id with each store, against the
# memory store; it starts its own redis-server and nginx. BENCH_QUICK and
# BENCH_STORE_* (see bench/stores.lua) pass through.
bench-stores: deps
	@$(MAKE) --no-print-directory all LUA=lua5.4
	@$(MAKE) --no-print-directory all LUA=luajit
	lua5.4 bench/stores.lua

.PHONY: bench-stores

# Only the watcher section (bench/watch.lua): client:watch catching up a
# backlog of 10,000 payments (BENCH_WATCH_PAYMENTS) against the fake over
# HTTPS under QIWI's real history limit; about a minute and a half.
bench-watch: deps
	@$(MAKE) --no-print-directory all LUA=lua5.4
	lua5.4 bench/watch.lua

.PHONY: bench-watch

# The C reference of the per-call and whole-process figures.
bench-curl-loop:
	@mkdir -p build/bench
	$(CC) -O2 -g -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
	  -o build/bench/curl_loop bench/curl_loop.c -lcurl

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_QUICK=1

# An older commit (BENCH_BASE, default the last one before the transport
# rework) measured by this checkout's harness, server and references: it is
# cloned into build/bench-base/<commit>, built there for Lua 5.4 and LuaJIT,
# and its lua/ and build/ are what bench/run.lua measures (BENCH_TREE). Only
# the sections that use nothing but qiwi.new and accounts() by default.
BENCH_BASE ?= a7a6a1b
BENCH_BASE_ONLY ?= percall,process,openresty
bench-base: deps
	@$(MAKE) --no-print-directory bench-curl-loop
	@dir=build/bench-base/$(BENCH_BASE); \
	if [ ! -d $$dir/.git ]; then \
	  rm -rf $$dir && git clone -q . $$dir && git -C $$dir checkout -q $(BENCH_BASE) || exit 1; \
	fi; \
	$(MAKE) --no-print-directory -C $$dir all LUA=lua5.4 >/dev/null && \
	$(MAKE) --no-print-directory -C $$dir all LUA=luajit >/dev/null || exit 1; \
	BENCH_TREE=$$dir BENCH_ONLY=$${BENCH_ONLY:-$(BENCH_BASE_ONLY)} lua5.4 bench/run.lua build/bench/curl_loop bench

.PHONY: bench bench-quick bench-base bench-curl-loop
