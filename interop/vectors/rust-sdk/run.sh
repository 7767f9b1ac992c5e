#!/usr/bin/env bash
# Regenerates the Rust SDK (crates.io open-payments 0.2.0) signature vectors. Needs cargo and
# network access to crates.io. Each run makes a new key and new `created` times; commit the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/../../../crates/latchkey-proto/tests/vectors/rust-sdk-open-payments-0.2.0.json"
cargo run --quiet --manifest-path "$here/Cargo.toml" > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
