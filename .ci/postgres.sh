# Sourced by .ci/run: install (if missing) and start a throwaway PostgreSQL server on loopback,
# then export RAILGRAPH_TEST_POSTGRES_DSN for the test suite.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "ci: installing PostgreSQL from the machine's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
pg_dir=$(mktemp -d /tmp/railgraph-pg.XXXXXX)
chown -R postgres:postgres "$pg_dir" 2>/dev/null || true
pg_port=${RAILGRAPH_TEST_PG_PORT:-55432}
run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
run_pg "$pg_bin/initdb -D $pg_dir/data -U postgres -A trust >/dev/null"
run_pg "$pg_bin/pg_ctl -D $pg_dir/data -o '-k $pg_dir -p $pg_port -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off' -l $pg_dir/log -w start >/dev/null"
trap 'run_pg "$pg_bin/pg_ctl -D $pg_dir/data -m immediate stop" >/dev/null 2>&1 || true' EXIT
export RAILGRAPH_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$pg_port/postgres"
echo "ci: PostgreSQL running at $RAILGRAPH_TEST_POSTGRES_DSN"
