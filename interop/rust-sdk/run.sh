#!/usr/bin/env bash
# Cross-check: the crates.io Open Payments Rust SDK (`open-payments` 0.2.0, a client nobody here
# wrote, with its own signature dialect) drives Latchkey through grant, rotate, revoke, cancel,
# an interactive grant continued with its interact_ref, and a directed-identity grant.
#
#  1. Build `latchkey` from this checkout.
#  2. Start `latchkey serve --dev` on free ports with a temporary SQLite database and data folder,
#     and read the KEY=VALUE lines it prints (PUBLIC_URL, PRIVATE_URL, WALLET_ADDRESS_URL, KEY_ID,
#     PRIVATE_KEY) up to READY=1.
#  3. Run the client program in this folder (its own cargo project, pinned by Cargo.lock).
#  4. Stop the server.
#
# Needs cargo and network access to crates.io on the first run; run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bin="$(cargo build --manifest-path "$root/Cargo.toml" -p latchkey --bin latchkey \
  --message-format=json-render-diagnostics \
  | sed -n 's/.*"executable":"\([^"]*latchkey\)".*/\1/p' | tail -n 1)"
test -x "$bin" || { echo "could not find the latchkey binary" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-rust-sdk.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

LATCHKEY_LOG=warn "$bin" serve --dev --listen 127.0.0.1:0 --private-listen 127.0.0.1:0 \
  --database "sqlite://$tmp/latchkey.db" --data-dir "$tmp/data" >"$tmp/serve.out" 2>"$tmp/serve.err" &
server_pid=$!

for _ in $(seq 1 300); do
  grep -q '^READY=1' "$tmp/serve.out" 2>/dev/null && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "latchkey serve exited early:" >&2; cat "$tmp/serve.err" >&2; exit 1
  fi
  sleep 0.1
done
grep -q '^READY=1' "$tmp/serve.out" || { echo "latchkey serve did not become ready" >&2; cat "$tmp/serve.err" >&2; exit 1; }

value() { sed -n "s/^$1=//p" "$tmp/serve.out" | head -n 1; }
export WALLET_ADDRESS_URL="$(value WALLET_ADDRESS_URL)"
export KEY_ID="$(value KEY_ID)"
export PRIVATE_KEY="$(value PRIVATE_KEY)"
export PRIVATE_URL="$(value PRIVATE_URL)"
echo "latchkey at $(value PUBLIC_URL) (introspection $PRIVATE_URL), client $WALLET_ADDRESS_URL"

cargo run --quiet --manifest-path "$here/Cargo.toml"
