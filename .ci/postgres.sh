# Sourced by .ci/run: install PostgreSQL from the machine's packages if missing, start a throwaway
# server on loopback (a free port, a temporary data directory, removed on exit), and export
# RAILGRAPH_TEST_POSTGRES_DSN for the test suite. If no server can be started, say so loudly and
# carry on: the PostgreSQL tests then report themselves as skipped (pytest -ra lists the reason).

_rg_pg_start() {
  local pg_bin
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "ci: installing PostgreSQL from the machine's packages"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
    else
      sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
        >/dev/null || return 1
    fi
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || return 1
  fi
  # initdb refuses to run as root: use the packaged postgres user then
  _rg_pg_run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  _rg_pg_dir=$(mktemp -d /tmp/railgraph-pg.XXXXXX) || return 1
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$_rg_pg_dir" || return 1; fi
  local port=${RAILGRAPH_TEST_PG_PORT:-}
  if [ -z "$port" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fi
  _rg_pg_run "$pg_bin/initdb -D $_rg_pg_dir/data -U postgres -A trust >$_rg_pg_dir/initdb.log 2>&1" || return 1
  _rg_pg_run "$pg_bin/pg_ctl -D $_rg_pg_dir/data -o '-k $_rg_pg_dir -p $port -c listen_addresses=127.0.0.1 \
    -c max_connections=200 -c fsync=off' -l $_rg_pg_dir/log -w -t 60 start >/dev/null" || return 1
  _rg_pg_stop="$pg_bin/pg_ctl -D $_rg_pg_dir/data -m immediate stop"
  export RAILGRAPH_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
}

_rg_pg_dir=""
_rg_pg_stop=""
if _rg_pg_start; then
  trap '_rg_pg_run "$_rg_pg_stop" >/dev/null 2>&1 || true; rm -rf "$_rg_pg_dir"' EXIT
  echo "ci: PostgreSQL running at $RAILGRAPH_TEST_POSTGRES_DSN"
else
  echo "ci: WARNING: could not start PostgreSQL; its tests will be SKIPPED" >&2
  if [ -n "$_rg_pg_dir" ]; then
    tail -n 5 "$_rg_pg_dir/log" >&2 2>/dev/null || tail -n 5 "$_rg_pg_dir/initdb.log" >&2 2>/dev/null || true
    rm -rf "$_rg_pg_dir"
  fi
fi
