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
            lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev luajit2 libluajit2-5.1-dev

# Every Lua the core is built and tested for, each into build/<lua>/.
LUAS     := lua5.1 lua5.3 lua5.4 luajit

BUSTED   := $(LUA_BIN) /usr/bin/busted

.PHONY: all deps test demo clean lint sanitize valgrind fuzz

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
# build/luajit's core) whatever Lua drives them. Every run goes to the end;
# the summary gives each run's counts and the total.
test: deps
	@for l in $(LUAS); do $(MAKE) --no-print-directory all LUA=$$l || exit 1; done
	@mkdir -p build/test; failed=; \
	run() { name=$$1; shift; echo "== $$name: $$*"; \
	  { "$$@"; echo $$? >build/test/$$name.rc; } 2>&1 | tee build/test/$$name.log; \
	  [ "$$(cat build/test/$$name.rc)" = 0 ] || failed="$$failed $$name"; }; \
	for l in $(LUAS); do \
	  run $$l $$l /usr/bin/busted --run=default --cpath="build/$$l/?.so" --exclude-tags=nginx; \
	done; \
	run nginx lua5.4 /usr/bin/busted --run=default --cpath="build/lua5.4/?.so" --tags=nginx; \
	echo "== summary"; \
	for n in $(LUAS) nginx; do \
	  printf '%-7s %s\n' $$n "$$(grep -E '^[0-9]+ successes /' build/test/$$n.log | tail -1)"; \
	done; \
	awk '/^[0-9]+ successes \// { p += $$1; f += $$4 + $$7 } END { printf "%d passed, %d failed\n", p, f }' \
	  $(LUAS:%=build/test/%.log) build/test/nginx.log; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

lint:
	luacheck lua spec examples

# The whole busted suite against a core built with ASan+UBSan (clang). The
# interpreter is not instrumented, so the ASan runtime is preloaded.
ASAN_RT   = $$(clang -print-file-name=libclang_rt.asan-x86_64.so)
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
sanitize: deps
	@$(MAKE) --no-print-directory all BUILD=build/asan CC=clang CFLAGS="$(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)"
	LD_PRELOAD=$(ASAN_RT) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(BUSTED) --run=default --cpath='build/asan/?.so' --exclude-tags=nginx

# The whole suite under memcheck: zero errors and zero definite leaks.
valgrind: deps
	@$(MAKE) --no-print-directory all
	valgrind --quiet --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite \
	  --show-leak-kinds=definite --trace-children=no $(BUSTED) --run=default --exclude-tags=nginx

# libFuzzer targets; FUZZ_SECONDS per target (CI runs a short one).
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=c99 -D_POSIX_C_SOURCE=200809L -I$(LUA_INC) -DQIWI_CORE_VERSION='"$(VERSION)"'
build/fuzz/%: fuzz/%.c $(SRCS) $(HDRS)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(SRCS) -l$(LUA) $(LIBS) -lm
fuzz: deps build/fuzz/json_fuzz build/fuzz/webhook_fuzz
	@mkdir -p build/fuzz/corpus/json build/fuzz/corpus/webhook
	build/fuzz/json_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	  build/fuzz/corpus/json fuzz/corpus/json
	build/fuzz/webhook_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	  build/fuzz/corpus/webhook fuzz/corpus/webhook

clean:
	rm -rf build
