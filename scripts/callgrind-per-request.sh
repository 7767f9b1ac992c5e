#!/usr/bin/env bash
# Server instructions per request, counted by valgrind's callgrind (BENCHMARKS.md, round 10).
#
#   scripts/callgrind-per-request.sh BIN SCENARIO N1 N2 [sqlite|postgres] [TOGGLE]
#
# Runs the server BIN under callgrind twice, each time on a fresh database, drives it with
# `BIN bench SCENARIO -c 1` for N1 and then N2 requests, and prints
# (instructions(N2) - instructions(N1)) / (N2 - N1). Startup cancels out, and so does the
# preparation of `introspect` and `oauth-introspect` (a fixed 1,000 tokens); the scenarios that
# prepare one grant or token per request (`rotate`, `revoke`, `cancel`, `oauth-revoke`) count it
# in each request. TOGGLE (a callgrind --toggle-collect pattern, e.g. '*handle_connection*') counts only
# inside matching functions, leaving out the background threads' timed work. Instruction counts
# do not depend on what else the machine runs. Needs valgrind and jq; PostgreSQL at
# 127.0.0.1:5432 (trust) for `postgres`. Not part of the test suite.
set -euo pipefail
BIN=$(realpath "$1"); SCENARIO=$2; N1=$3; N2=$4; STORE=${5:-sqlite}; TOGGLE=${6:-}

count() {
  local n=$1 dir db name pid
  dir=$(mktemp -d)
  name="lk_callgrind_$$_$n"
  if [ "$STORE" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $name" >/dev/null
    db="postgres://postgres@127.0.0.1:5432/$name"
  else
    db="sqlite://$dir/latchkey.db"
  fi
  LATCHKEY_LOG=warn valgrind --tool=callgrind ${TOGGLE:+--toggle-collect="$TOGGLE"} \
    --callgrind-out-file="$dir/cg.out" "$BIN" serve --dev --listen 127.0.0.1:0 \
    --private-listen 127.0.0.1:0 --database "$db" --data-dir "$dir" >"$dir/out" 2>"$dir/err" &
  pid=$!
  for _ in $(seq 600); do grep -q PRIVATE_KEY "$dir/out" 2>/dev/null && break; sleep 0.1; done
  (
    set -a; eval "$(grep = "$dir/out")"; set +a
    eval "$("$BIN" oauth-client create --name callgrind --database "$db" 2>/dev/null |
      jq -r '"export CLIENT_ID=\(.client_id) CLIENT_SECRET=\(.client_secret)"')"
    "$BIN" bench "$SCENARIO" -n "$n" -c 1 --json --quiet >"$dir/bench.json"
  )
  kill -INT "$pid"; wait "$pid" || true
  jq -e '.errors == 0' "$dir/bench.json" >/dev/null || { echo "bench errors: $dir" >&2; exit 1; }
  grep -m1 '^summary:' "$dir/cg.out" | awk '{print $2}'
  if [ "$STORE" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $name WITH (FORCE)" >/dev/null
  fi
  rm -rf "$dir"
}

first=$(count "$N1"); second=$(count "$N2")
echo "$SCENARIO: $(( (second - first) / (N2 - N1) )) instructions per request ($N1: $first, $N2: $second)"
