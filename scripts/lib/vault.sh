# Sourced by scripts/test.sh: start_vault builds the Vault dev harness
# (tools/vaultdev, its own Go module; the first build takes several
# minutes, later ones come from Go's build cache), starts it on loopback
# ports and exports the EHR_TEST_VAULT_* variables it writes. stop_vault
# stops it.

start_vault() {
  VAULT_DIR="$(mktemp -d /tmp/ehrledger-vault.XXXXXX)"
  local bin="$VAULT_DIR/vaultdev"
  say "building the Vault dev harness (tools/vaultdev; the first build takes several minutes)"
  (cd tools/vaultdev && go build -o "$bin" .)
  "$bin" -env "$VAULT_DIR/env" 2>"$VAULT_DIR/log" &
  VAULT_PID=$!
  for _ in $(seq 1 600); do
    [ -f "$VAULT_DIR/env" ] && break
    if ! kill -0 "$VAULT_PID" 2>/dev/null; then
      echo "the Vault dev harness exited:" >&2
      cat "$VAULT_DIR/log" >&2
      return 1
    fi
    sleep 0.1
  done
  [ -f "$VAULT_DIR/env" ] || { echo "the Vault dev harness did not start within a minute" >&2; cat "$VAULT_DIR/log" >&2; return 1; }
  set -a
  . "$VAULT_DIR/env"
  set +a
  say "Vault listening on $EHR_TEST_VAULT_ADDR and $EHR_TEST_VAULT_TLS_ADDR"
}

stop_vault() {
  if [ -n "${VAULT_PID:-}" ]; then
    kill "$VAULT_PID" 2>/dev/null || true
    wait "$VAULT_PID" 2>/dev/null || true
    VAULT_PID=""
  fi
  if [ -n "${VAULT_DIR:-}" ]; then
    rm -rf "$VAULT_DIR"
    VAULT_DIR=""
  fi
}
