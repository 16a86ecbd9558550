#!/usr/bin/env bash
# A throwaway PgBouncer in transaction pooling mode in front of the test server, for
# tests/pgbouncer.rs (issue 12). scripts/test sources this file; run directly, it wraps
# a command:
#
#   scripts/pgbouncer.sh cargo test --test pgbouncer   # PgBouncer up while it runs
#   scripts/pgbouncer.sh                               # up until Ctrl-C
#
# It runs as a non-root user (user `zdmpg` when started as root, as scripts/test does for
# PostgreSQL), on the first free port from 6433 up (a system PgBouncer, which Debian's
# package may start on 6432, is left alone), with a pool of 4 server connections per
# database so that clients share backends, and exports
# ZDM_PGBOUNCER_URL=postgres://postgres@127.0.0.1:PORT (no database name; every database
# of the server is reachable under its own name). Needs the `pgbouncer` binary
# (Debian/Ubuntu: apt-get install pgbouncer; .ci/run installs it).

zdm_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

zdm_pgbouncer_bin() {
  command -v pgbouncer 2>/dev/null && return 0
  [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer
}

# zdm_pgbouncer_start PG_HOST PG_PORT
# Starts one, exports ZDM_PGBOUNCER_URL and appends its stop command to the caller's
# `cleanups` array (which the caller's EXIT trap runs). When pgbouncer is not installed
# it says so and returns 0 without the variable: the tests then skip, except under CI,
# where they fail. Returns 1 when an installed pgbouncer does not start.
zdm_pgbouncer_start() {
  local pg_host=$1 pg_port=$2 bin dir port major minor run_as=()
  bin=$(zdm_pgbouncer_bin || true)
  if [ -z "$bin" ]; then
    if [ -n "${CI:-}" ]; then
      echo "pgbouncer.sh: CI: pgbouncer is not installed (.ci/run installs it with apt-get);" \
        "tests/pgbouncer.rs will fail" >&2
    else
      echo "pgbouncer.sh: pgbouncer is not installed, so tests/pgbouncer.rs skips its tests;" \
        "to run them: apt-get install pgbouncer (Debian/Ubuntu), or set ZDM_PGBOUNCER_URL" >&2
    fi
    return 0
  fi
  port=6433
  while zdm_answers 127.0.0.1 "$port"; do port=$((port + 1)); done
  dir=$(mktemp -d /tmp/zdm-pgbouncer.XXXXXX)
  cleanups+=("zdm_pgbouncer_stop '$dir'")
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
; any database name goes to the server's database of that name
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 200
; small on purpose: clients share server connections
default_pool_size = 4
; LIFO reuse of idle server connections (the default, relied on by the sanity test)
server_round_robin = 0
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  # PgBouncer 1.21+ can track protocol-level prepared statements; keep 1.18's behaviour
  # (none), which is what zdm must survive.
  read -r major minor < <("$bin" --version 2>/dev/null | sed -nE '1s/^PgBouncer ([0-9]+)\.([0-9]+).*/\1 \2/p') || true
  if [ "${major:-1}" -gt 1 ] || [ "${minor:-0}" -ge 21 ]; then
    echo "max_prepared_statements = 0" >>"$dir/pgbouncer.ini"
  fi
  if [ "$(id -u)" = 0 ]; then
    # PgBouncer refuses to run as root.
    id zdmpg >/dev/null 2>&1 || useradd --system --no-create-home zdmpg
    chown -R zdmpg "$dir"
    run_as=(runuser -u zdmpg --)
  fi
  echo "pgbouncer.sh: starting a throwaway PgBouncer ($bin, transaction pooling) on 127.0.0.1:$port" \
    "in front of $pg_host:$pg_port, in $dir"
  if ! "${run_as[@]}" "$bin" -d -q "$dir/pgbouncer.ini" </dev/null; then
    echo "pgbouncer.sh: pgbouncer did not start:" >&2
    tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null || true
    return 1
  fi
  local _
  for _ in $(seq 1 100); do
    zdm_answers 127.0.0.1 "$port" && break
    sleep 0.1
  done
  if ! zdm_answers 127.0.0.1 "$port"; then
    echo "pgbouncer.sh: pgbouncer does not answer on 127.0.0.1:$port:" >&2
    tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null || true
    return 1
  fi
  export ZDM_PGBOUNCER_URL=postgres://postgres@127.0.0.1:$port
}

# zdm_pgbouncer_stop DIR: stops the PgBouncer whose files are in DIR and removes DIR.
zdm_pgbouncer_stop() {
  local dir=$1 pid _
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

# Runs the `cleanups` commands, last first.
zdm_run_cleanups() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
    eval "${cleanups[i]}" || true
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  hostport=$(sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#' <<<"$url")
  host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=5432
  cleanups=()
  trap zdm_run_cleanups EXIT
  trap 'exit 130' INT TERM
  zdm_pgbouncer_start "${host:-127.0.0.1}" "$port"
  [ -n "${ZDM_PGBOUNCER_URL:-}" ] || exit 1
  if [ $# -eq 0 ]; then
    echo "ZDM_PGBOUNCER_URL=$ZDM_PGBOUNCER_URL (Ctrl-C stops it)"
    while :; do sleep 3600; done
  fi
  "$@"
fi
