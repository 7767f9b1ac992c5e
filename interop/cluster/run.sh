#!/usr/bin/env bash
# Cluster test: three `latchkey serve` nodes sharing one fresh PostgreSQL database behind a
# round-robin HTTP proxy, driven by the official @interledger/open-payments client.
# Needs node >= 20, psql, a PostgreSQL server (LATCHKEY_TEST_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432/postgres, allowed to CREATE DATABASE) and an already built
# binary (default ../../target/debug/latchkey, or $LATCHKEY_BIN).
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

admin_url="${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! command -v psql >/dev/null; then
  echo "run.sh: psql not found (apt-get install postgresql-client)" >&2
  exit 2
fi
if ! psql -X -q -d "$admin_url" -c 'SELECT 1' >/dev/null; then
  echo "run.sh: PostgreSQL not reachable at $admin_url (set LATCHKEY_TEST_POSTGRES_URL)" >&2
  exit 2
fi

npm ci --no-audit --no-fund
node --test --test-reporter=spec test/*.test.js
