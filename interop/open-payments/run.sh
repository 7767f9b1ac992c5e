#!/usr/bin/env bash
# Interop tests: the real latchkey binary driven by the official @interledger/open-payments client.
# Needs node >= 20 and an already built binary (default ../../target/debug/latchkey, or $LATCHKEY_BIN).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

export LATCHKEY_BIN="${LATCHKEY_BIN:-$PWD/../../target/debug/latchkey}"
if [[ ! -x "$LATCHKEY_BIN" ]]; then
  echo "run.sh: no executable latchkey at $LATCHKEY_BIN (cargo build -p latchkey, or set LATCHKEY_BIN)" >&2
  exit 2
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "run.sh: node >= 20 required, found $(node --version)" >&2
  exit 2
fi

npm ci --no-audit --no-fund
node --test --test-reporter=spec test/*.test.js
