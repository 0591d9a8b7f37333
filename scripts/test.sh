#!/usr/bin/env bash
# Builds everything and runs every check and test: formatting, lints, unit, golden, property
# and CLI tests (Rust), then ruff, pyright and pytest (Python, against the native module). Exits
# non-zero on the first failure; ends with one line of totals over cargo's and pytest's counts.
# The Python tests start the server that `cargo test --profile ci` builds (target/ci/
# trading-engine), so no separate fat-LTO build is made here. Then the container test (podman),
# when run as root. pytest runs twice: every test but
# the timing-sensitive fault, load and recovery ones on every core (pytest-xdist), then those
# alone, one at a time (SERIAL_MODULES in tests/python/conftest.py). Arguments go to both runs
# (`scripts/test.sh -n 0` runs the first in one process too).
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
echo "== pyright"
scripts/typecheck.sh
# Exit status 5 is "no test selected" (arguments that select none of one run's tests): the
# totals below still require some test to have passed.
status=0
pytest_run() {
  local rc=0 which=$1
  shift
  SERIAL_TESTS=$which .venv/bin/python -m pytest -q -p no:cacheprovider --dist loadgroup "$@" 2>&1 |
    tee -a "$pylog" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=$rc; fi
}
echo "== pytest (on every core)"
pytest_run exclude -n auto "$@"
echo "== pytest (timing-sensitive tests, one at a time)"
pytest_run only -n 0 "$@"

# The deployment files run for real (issue 18): podman builds both images from the Dockerfiles
# as committed and runs both compose stacks (tests/python/test_containers.py, `make
# containers`; about 13 minutes the first time on 2 cores, 2 once the bases and caches exist).
# It installs Debian's podman, so it needs root; TRADING_SYSTEM_CONTAINERS=0 leaves it out.
echo "== containers (podman)"
if [ "$(id -u)" = 0 ] && [ "${TRADING_SYSTEM_CONTAINERS:-1}" != 0 ]; then
  scripts/containers.sh all
  rc=0
  .venv/bin/python -m pytest -q -p no:cacheprovider -m containers tests/python/test_containers.py \
    2>&1 | tee -a "$pylog" || rc=$?
  if [ "$rc" -ne 0 ]; then status=$rc; fi
else
  echo "containers: not run (podman needs root here; TRADING_SYSTEM_CONTAINERS=0 is set or" \
    "this is not root): make containers runs them"
fi
# Totals in the plain form CI reads: cargo's "test result:" lines plus pytest's summary lines
# ("N passed, M failed, K skipped, J deselected ... in Ts"; errors count as failures).
read -r cp cf cs < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i; if ($(i+1) ~ /^ignored;?/) s += $i } }
     END { print p + 0, f + 0, s + 0 }' "$log")
read -r pp pf ps < <(awk '/^=* *[0-9]+ (passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?)(,.*)? in [0-9.]+s/ {
       n = split($0, w, /[ ,=]+/); for (i = 1; i < n; i++) { if (w[i] !~ /^[0-9]+$/) continue; if (w[i+1] == "passed") p += w[i]; if (w[i+1] ~ /^(failed|errors?)$/) f += w[i]; if (w[i+1] == "skipped") s += w[i] } }
     END { print p + 0, f + 0, s + 0 }' "$pylog")
passed=$((cp + pp)) failed=$((cf + pf)) skipped=$((cs + ps))
echo "total: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -gt 0 ] || [ "$cp" -eq 0 ] || [ "$pp" -eq 0 ]; then
  exit 1
fi
