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

run="${1:-}"
case "$run" in
  load|search) shift ;;
  *) echo "usage: $0 load|search [flags]" >&2; exit 2 ;;
esac
start_postgres durable
go run "./bench/$run" "$@"
