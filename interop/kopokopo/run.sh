#!/usr/bin/env bash
# Kopo Kopo interop suite: k2-connect (PyPI 2.0.0) + Authlib via pytest, and
# k2-connect-node (npm 1.3.0) via node:test, all against the real latchkey binary.
#
# Needs: python3 (3.11+), node 20+/npm, a built binary at $LATCHKEY_BIN
# (default: ../../target/debug/latchkey relative to this folder).
# Extra arguments are passed to pytest (e.g. ./run.sh -k lifecycle -x).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

LATCHKEY_BIN="${LATCHKEY_BIN:-$HERE/../../target/debug/latchkey}"
if [[ -d "$(dirname "$LATCHKEY_BIN")" ]]; then  # make it absolute (tests cd elsewhere)
  LATCHKEY_BIN="$(cd "$(dirname "$LATCHKEY_BIN")" && pwd)/$(basename "$LATCHKEY_BIN")"
fi
if [[ ! -x "$LATCHKEY_BIN" ]]; then
  echo "run.sh: latchkey binary not found at $LATCHKEY_BIN (cargo build first, or set LATCHKEY_BIN)" >&2
  exit 2
fi
export LATCHKEY_BIN
# Talk to 127.0.0.1 directly even if the environment configures an HTTP proxy.
export NO_PROXY="${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost"
export no_proxy="$NO_PROXY"

echo "== python deps (.venv)"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

echo "== node deps (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

status=0

echo "== pytest (k2-connect, Authlib)"
.venv/bin/python -m pytest "$@" || status=$?

echo "== node --test (k2-connect-node)"
node --test node/k2connect-node.test.js || status=$?

if [[ $status -ne 0 ]]; then
  echo "run.sh: FAILED (server logs under $HERE/artifacts/)" >&2
fi
exit "$status"
