#!/usr/bin/env bash
# Builds everything and runs every check and test: formatting, lints, unit, golden, property
# and CLI tests (Rust), then ruff and pytest (Python, against the native module). Exits non-zero
# on the first failure; ends with one line of totals over cargo's and pytest's counts.
# The Python tests start the server that `cargo test --profile ci` builds (target/ci/
# trading-engine), so no separate fat-LTO build is made here, and run on every core
# (pytest-xdist); the timing-sensitive fault and load tests run one at a time (tests/python/
# conftest.py). Arguments go to pytest (`scripts/test.sh -n 0` runs it in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests

log=$(mktemp)
pylog=$(mktemp)
trap 'rm -f "$log" "$pylog"' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets --profile ci -- -D warnings
echo "== cargo test"
cargo test --locked --workspace --profile ci 2>&1 | tee "$log"

echo "== ruff"
.venv/bin/ruff check python-layer tests/python scripts
.venv/bin/ruff format --check python-layer tests/python scripts
echo "== pytest"
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider -n auto --dist loadgroup "$@" 2>&1 |
  tee "$pylog" || status=$?

# Totals in the plain form CI reads: cargo's "test result:" lines plus pytest's summary line
# ("N passed, M failed, K skipped, J deselected ... in Ts"; errors count as failures).
read -r cp cf cs < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i; if ($(i+1) ~ /^ignored;?/) s += $i } }
     END { print p + 0, f + 0, s + 0 }' "$log")
read -r pp pf ps < <(awk '/^=* *[0-9]+ (passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?)(,.*)? in [0-9.]+s/ { line = $0 }
     END { n = split(line, w, /[ ,=]+/); for (i = 1; i < n; i++) { if (w[i] !~ /^[0-9]+$/) continue; if (w[i+1] == "passed") p += w[i]; if (w[i+1] ~ /^(failed|errors?)$/) f += w[i]; if (w[i+1] == "skipped") s += w[i] }
           print p + 0, f + 0, s + 0 }' "$pylog")
passed=$((cp + pp)) failed=$((cf + pf)) skipped=$((cs + ps))
echo "total: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -gt 0 ] || [ "$cp" -eq 0 ] || [ "$pp" -eq 0 ]; then
  exit 1
fi
