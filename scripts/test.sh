#!/usr/bin/env bash
# Runs every test of Latchkey on a fresh machine: formatting and lint gates, the Rust unit and
# integration tests (SQLite and PostgreSQL), and the interop suites that drive the real binary with
# clients nobody here wrote (npm and PyPI packages). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
failures=()
suite() {
  local name=$1; shift
  step "$name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

step "toolchain"
cargo --version
node --version
python3 --version
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

step "PostgreSQL"
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
export LATCHKEY_TEST_POSTGRES_URL=${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

suite "cargo fmt --check" cargo fmt --all -- --check
suite "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "build"
cargo build --workspace --all-targets --locked
export LATCHKEY_BIN="$ROOT/target/debug/latchkey"
suite "rust tests (nextest)" cargo nextest run --workspace --locked --no-fail-fast

for run in interop/*/run.sh; do
  suite "interop: $(basename "$(dirname "$run")")" bash "$run"
done

step "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "suites: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
