#!/usr/bin/env bash
# Builds everything and runs every check and test: formatting, lints, unit, golden, property
# and CLI tests. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets --profile ci -- -D warnings
echo "== cargo test"
cargo test --locked --workspace --profile ci
