#!/usr/bin/env bash
# Browser test: headless Chromium (Debian's `chromium` package) on latchkey's consent page, for an
# interactive grant made with the official @interledger/open-payments client.
# Needs node >= 20, npm, and an already built binary (default ../../target/debug/latchkey, or
# $LATCHKEY_BIN). Installs Debian's chromium with apt-get when it is missing (needs root).
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

# Debian's package is `chromium` (binary /usr/bin/chromium); the tests launch exactly that binary.
if ! command -v chromium >/dev/null || [[ ! -x /usr/bin/chromium ]]; then
  sudo=""
  if (( EUID != 0 )); then
    command -v sudo >/dev/null || { echo "run.sh: chromium missing and not root (apt-get install chromium)" >&2; exit 2; }
    sudo="sudo"
  fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium
fi
chromium --version

npm ci --no-audit --no-fund
mkdir -p artifacts
node --test --test-reporter=spec test/*.test.js
