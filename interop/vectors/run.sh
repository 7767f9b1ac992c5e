#!/usr/bin/env bash
# HTTP Message Signature interop checks against the official Node package
# (@interledger/http-signature-utils, pinned in package.json / package-lock.json).
#
#  1. `npm ci` the pinned packages.
#  2. Have the Rust test `latchkey_signed_vectors` write requests signed by
#     latchkey_proto::httpsig::sign_request to a temporary file, and check every one with the
#     Node verifiers, lenient (what Rafiki runs) and strict RFC 9421.
#  3. Check the committed Rust SDK (open-payments 0.2.0) and Node vectors with the Node verifier
#     too, so a regenerated vector file that Node itself would refuse is caught.
#
# Needs cargo and node (>= 18) on PATH; run from anywhere. The Rust side of the committed vectors
# is covered by `cargo test -p latchkey-proto`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
vectors="$root/crates/latchkey-proto/tests/vectors"

cd "$here"
npm ci --no-audit --no-fund

out="$(mktemp "${TMPDIR:-/tmp}/latchkey-signed-vectors.XXXXXX.json")"
trap 'rm -f "$out"' EXIT
LATCHKEY_SIGNED_VECTORS_OUT="$out" cargo test --manifest-path "$root/Cargo.toml" \
  -p latchkey-proto --test httpsig_interop -- --exact latchkey_signed_vectors
test -s "$out" || { echo "the Rust test did not write $out" >&2; exit 1; }

echo "== Latchkey-signed requests (strict + Rafiki's verifier)"
node "$here/verify-rust.mjs" --strict "$out"
echo "== committed @interledger/http-signature-utils vectors"
node "$here/verify-rust.mjs" --strict "$vectors/node-http-signature-utils.json"
echo "== committed open-payments 0.2.0 (Rust SDK) vectors (Rafiki's verifier)"
node "$here/verify-rust.mjs" "$vectors/rust-sdk-open-payments-0.2.0.json"
