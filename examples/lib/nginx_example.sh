# What the examples' run scripts (examples/openresty/run, examples/shop/run)
# share, sourced by them after they set `here` (their directory), `repo` and
# `example` (their name, for messages): the ports, the nginx binary, the
# temporary prefix, and the lines that keep everything nginx writes inside
# that prefix and serve the fake QIWI on a second loopback port.
#
# Environment: EXAMPLE_PORT (8080), EXAMPLE_FAKE_PORT (EXAMPLE_PORT + 1),
# EXAMPLE_PREFIX (default: a new mktemp -d), NGINX (the binary).

die() { echo "examples/$example/run: $*" >&2; exit 1; }

# Sets port and fake_port.
example_ports() {
  port=${EXAMPLE_PORT:-8080}
  fake_port=${EXAMPLE_FAKE_PORT:-$((port + 1))}
  case "$port$fake_port" in *[!0-9]*) die "EXAMPLE_PORT and EXAMPLE_FAKE_PORT must be port numbers" ;; esac
  [ "$port" != "$fake_port" ] || die "EXAMPLE_PORT and EXAMPLE_FAKE_PORT must differ"
}

# Sets nginx (NGINX, else /usr/sbin/nginx, else the one on PATH) and checks
# the LuaJIT core; then unsets NGINX, which nginx itself reads as the
# sockets inherited on a binary upgrade.
example_nginx() {
  nginx=${NGINX:-}
  if [ -z "$nginx" ]; then
    if [ -x /usr/sbin/nginx ]; then nginx=/usr/sbin/nginx; else nginx=$(command -v nginx || true); fi
  fi
  [ -n "$nginx" ] && [ -x "$nginx" ] || die "no nginx found (Debian: apt-get install nginx libnginx-mod-http-lua; or make deps)"
  unset NGINX
  [ -f "$repo/build/luajit/qiwi/core.so" ] ||
    die "build/luajit/qiwi/core.so is missing: run make all LUA=luajit (or make $example-example)"
}

# Sets prefix (EXAMPLE_PREFIX, made absolute, or a new temporary directory)
# with logs/ and tmp/ in it.
example_prefix() {
  if [ -n "${EXAMPLE_PREFIX:-}" ]; then
    prefix=$EXAMPLE_PREFIX
    mkdir -p "$prefix"
    prefix=$(cd "$prefix" && pwd)
  else
    prefix=$(mktemp -d "${TMPDIR:-/tmp}/qiwi-$example-example.XXXXXX")
  fi
  case "$prefix" in *[\"\;\'\\\ ]*) die "the prefix path must not hold quotes, semicolons, backslashes or spaces: $prefix" ;; esac
  mkdir -p "$prefix/logs" "$prefix/tmp"
}

# The source nginx.conf must have the lines the run script rewrites.
example_check_conf() {
  grep -q '^ *listen 8080;' "$1" || die "nginx.conf has no 'listen 8080;' line to move to 127.0.0.1:$port"
  grep -q '^http {' "$1" || die "nginx.conf has no 'http {' line"
}

# The sed expression that drops lua_ssl_trusted_certificate when the
# system's CA bundle is missing (nginx would refuse to start; the fake is
# plain HTTP and needs none), or nothing.
example_drop_ca() {
  [ -f /etc/ssl/certs/ca-certificates.crt ] || echo '/lua_ssl_trusted_certificate \/etc\/ssl\/certs\/ca-certificates\.crt;/d'
}

# The head of the written configuration: one process in the foreground,
# pid and error log in the prefix.
example_conf_head() {
  cat <<EOF
# Written by examples/$example/run from $1:
# everything nginx writes stays in $prefix.
daemon off;
master_process off;
pid $prefix/logs/nginx.pid;
# No level given: nginx's default, error. The example's success lines use
# ngx.STDERR, which nginx writes at any level; the second log is this terminal.
error_log $prefix/logs/error.log;
error_log stderr;

EOF
}

# The lines that go right after `http {`: the logs and temporary files in
# the prefix, and with $1 = fake a server for the fake QIWI on fake_port.
example_http_lines() {
  cat <<EOF
    # examples/$example/run: what nginx writes stays in the prefix
    access_log $prefix/logs/access.log;
    client_body_temp_path $prefix/tmp/client_body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;

EOF
  [ "$1" = fake ] || return 0
  cat <<EOF
    # examples/$example/run: the fake QIWI (lua/qiwi/fake), plain HTTP on loopback;
    # token test-token, wallet 79111234567, 1000 RUB (see lua/qiwi/fake/README.md)
    server {
        listen 127.0.0.1:$fake_port;
        access_log off;
        location / { content_by_lua_block { require("qiwi.fake.nginx").serve() } }
    }

EOF
}

# Copies stdin to stdout with the file $1 inserted after the first `http {`.
example_insert_http() {
  awk -v f="$1" '{ print } /^http \{/ && !done { done = 1; while ((getline l < f) > 0) print l; close(f) }'
}
