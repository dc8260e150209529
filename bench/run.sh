#!/usr/bin/env bash
# Runs the load benchmark on SQLite and on a throwaway PostgreSQL with its
# default (durable) settings, and prints the Markdown table for
# BENCHMARKS.md. Extra arguments go to the load command.
#
#   ./bench/run.sh -duration 10s -concurrency 1,4,16
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

start_postgres durable
go run ./bench/load "$@"
