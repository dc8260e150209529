#!/usr/bin/env bash
# Runs a load benchmark on SQLite and on a throwaway PostgreSQL with its
# default (durable) settings, and prints the Markdown tables for
# BENCHMARKS.md. The first argument names the run (load, search or
# ledger); the rest go to it. A ledger run then runs the same append
# workload on tessera (bench/tessera, a module of its own) with the same
# -duration, -concurrency and -size.
#
#   ./bench/run.sh load -duration 5s -concurrency 1,4,16
#   ./bench/run.sh search -resources 100000,1000000
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/vault.sh

run="${1:-}"
case "$run" in
  load|search|ledger|peers|accounting|export) shift ;;
  *) echo "usage: $0 load|search|ledger|peers|accounting|export [flags]" >&2; exit 2 ;;
esac
start_postgres durable
if [[ " $* " == *vault* ]]; then # -keys ...,vault: measure through Vault Transit
  start_vault
  trap 'stop_vault; stop_postgres' EXIT
fi
go run "./bench/$run" "$@"

if [ "$run" = ledger ]; then
  args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -duration|-concurrency|-size) args+=("$1" "$2"); shift 2 ;;
      *) shift ;;
    esac
  done
  echo
  go -C bench/tessera run . "${args[@]}"
fi
