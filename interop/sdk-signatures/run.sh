#!/usr/bin/env bash
# Cross-check: HTTP Message Signatures made by the latchkey-client SDK verify with the official
# npm package @interledger/http-signature-utils (pinned in package.json / package-lock.json) and
# with a strict RFC 9421 verifier (http-message-signatures).
#
#  1. `npm ci` the pinned packages.
#  2. Run the Rust test `sdk_signatures`, which drives the SDK (grant request, interactive grant
#     request, continue with and without interact_ref, rotate, revoke, cancel) against a local
#     capture server and writes every request exactly as it arrived to a temporary file.
#  3. Verify each captured request with the Node packages.
#
# Needs cargo and node (>= 18) on PATH; run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cd "$here"
npm ci --no-audit --no-fund

out="$(mktemp "${TMPDIR:-/tmp}/latchkey-sdk-signed.XXXXXX.json")"
trap 'rm -f "$out"' EXIT
LATCHKEY_SDK_SIGNED_OUT="$out" cargo test --manifest-path "$root/Cargo.toml" \
  -p latchkey-client --test sdk_signatures -- --exact every_signed_call_verifies_as_sent
test -s "$out" || { echo "the Rust test did not write $out" >&2; exit 1; }

node "$here/verify.mjs" "$out"
