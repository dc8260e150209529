# Sourced by scripts/test.sh and bench/run.sh: start_postgres installs
# PostgreSQL from Debian's packages when it is missing, starts a throwaway
# cluster on a free loopback port, exports EHR_TEST_POSTGRES (a DSN to it)
# and stops and removes it when the calling shell exits.
#
#   start_postgres fast     # durability off: for tests only
#   start_postgres durable  # PostgreSQL's defaults: for measurements

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# PostgreSQL refuses to run as root: run the cluster as the postgres user
# the Debian package creates.
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local mode="${1:-fast}"
  if [ -z "$(pg_bindir)" ]; then
    say "installing PostgreSQL from Debian packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PG_BIN="$(pg_bindir)"
  [ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; return 1; }

  PG_DIR="$(mktemp -d /tmp/ehrledger-pg.XXXXXX)"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DIR"; fi
  trap stop_postgres EXIT

  local opts="-c listen_addresses=127.0.0.1 -k $PG_DIR -c max_connections=300"
  if [ "$mode" = fast ]; then
    # The cluster is thrown away after the tests: durability off for speed.
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  say "starting a throwaway PostgreSQL ($("$PG_BIN/postgres" --version), $mode)"
  run_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
  local port="" candidate
  for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 20000))
    if run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 30 -l "$PG_DIR/log" -o "$opts -p $candidate" start >/dev/null 2>&1; then
      port="$candidate"
      break
    fi
  done
  if [ -z "$port" ]; then
    echo "PostgreSQL did not start:" >&2
    cat "$PG_DIR/log" >&2
    return 1
  fi
  export EHR_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  say "PostgreSQL listening on 127.0.0.1:$port"
}

stop_postgres() {
  if [ -n "${PG_DIR:-}" ]; then
    run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
  fi
}
