#!/usr/bin/env bash
# Benchmarks chan-core (release build): batch `analyze`, incremental `Session::append`, and
# append + `replace_last`, in bars/s, plus peak heap per bar beyond the input, on the one-minute
# 000001.SH series (../shared/data/000001.SH_1m.csv) and a 10,000,000-bar synthetic random walk,
# best and median of 5 runs, each mode at structure.degrees 1 and 2 (--degrees). Prints a
# markdown table; also writes bench-out/chan-bench.json unless --json is given. Every argument passes through to chan-bench, e.g.
#   scripts/bench_core.sh --synthetic 1000000 --repeat 3   # quicker
#   scripts/bench_core.sh --degrees 2                      # degree 2 alone
#   scripts/bench_core.sh --help
# Run it on an otherwise idle machine: the figures are single-threaded wall-clock times. The run
# is pinned to the last CPU (the first one takes most of the kernel's housekeeping); set
# BENCH_CPU to another CPU number, or to "none" to leave it unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p chan-bench
args=("$@")
json=bench-out/chan-bench.json
for a in "$@"; do
  case "$a" in
    --json | --json=*) json="" ;;
  esac
done
if [[ -n "$json" ]]; then
  mkdir -p bench-out
  args+=(--json "$json")
fi
cpu="${BENCH_CPU:-$(($(nproc) - 1))}"
pin=()
if [[ "$cpu" != none ]] && command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c "$cpu")
fi
exec "${pin[@]}" ./target/release/chan-bench "${args[@]}"
