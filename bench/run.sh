#!/usr/bin/env bash
# Runs a load benchmark on SQLite and on a throwaway PostgreSQL with its
# default (durable) settings, and prints the Markdown tables for
# BENCHMARKS.md. The first argument names the run (load or search); the
# rest go to it.
#
#   ./bench/run.sh load -duration 5s -concurrency 1,4,16
#   ./bench/run.sh search -resources 100000,1000000
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/vault.sh

run="${1:-}"
case "$run" in
  load|search) shift ;;
  *) echo "usage: $0 load|search [flags]" >&2; exit 2 ;;
esac
start_postgres durable
if [[ " $* " == *vault* ]]; then # -keys ...,vault: measure through Vault Transit
  start_vault
  trap 'stop_vault; stop_postgres' EXIT
fi
go run "./bench/$run" "$@"
