#!/usr/bin/env bash
# Runs every test of ehrledger on a fresh Debian machine: installs PostgreSQL
# from Debian's packages when it is missing, starts a throwaway cluster on a
# free loopback port, runs vet and the whole suite (SQLite and PostgreSQL),
# and stops the cluster whatever happens. Extra arguments go to `go test`.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -run Concurrent ./server/
set -euo pipefail

cd "$(dirname "$0")/.."
export CI="${CI:-true}" # the suite refuses to skip PostgreSQL under CI=true

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bindir)" ]; then
  say "installing PostgreSQL from Debian packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bin="$(pg_bindir)"
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }

# PostgreSQL refuses to run as root: run the cluster as the postgres user
# the Debian package creates.
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pgdir="$(mktemp -d /tmp/ehrledger-pg.XXXXXX)"
[ "$(id -u)" = 0 ] && chown postgres: "$pgdir"
cleanup() {
  run_pg "$bin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
}
trap cleanup EXIT

say "starting a throwaway PostgreSQL ($("$bin/postgres" --version))"
run_pg "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
port=""
for _ in $(seq 1 20); do
  candidate=$((20000 + RANDOM % 20000))
  # The cluster is thrown away: durability settings are off for speed only.
  if run_pg "$bin/pg_ctl" -D "$pgdir/data" -w -t 30 -l "$pgdir/log" \
       -o "-c listen_addresses=127.0.0.1 -p $candidate -k $pgdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
       start >/dev/null 2>&1; then
    port="$candidate"
    break
  fi
done
[ -n "$port" ] || { echo "PostgreSQL did not start:" >&2; cat "$pgdir/log" >&2; exit 1; }
export EHR_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
say "PostgreSQL listening on 127.0.0.1:$port"

say "go vet"
go vet ./...
say "go test"
if [ $# -gt 0 ]; then
  go test -count=1 -timeout 20m "$@"
else
  go test -count=1 -timeout 20m ./...
fi
say "all tests passed"
