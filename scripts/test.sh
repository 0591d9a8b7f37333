#!/usr/bin/env bash
# Builds everything and runs every check and test: formatting, lints, unit, golden, property
# and CLI tests. Exits non-zero on the first failure; ends with one line of totals.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets --profile ci -- -D warnings
echo "== cargo test"
cargo test --locked --workspace --profile ci 2>&1 | tee "$log"

# Totals over every test binary, in the plain form CI reads.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i; if ($(i+1) ~ /^ignored;?/) s += $i } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0 || p == 0) }' "$log"
