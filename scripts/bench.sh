#!/usr/bin/env bash
# Regenerates every benchmark figure into docs/BENCHMARKS.md: builds, runs each benchmark (its
# markdown table into bench-out/NAME.md), then replaces each marked block of the document
# (<!-- bench:NAME --> ... <!-- /bench:NAME -->) with the new table, stamped with the date and
# commit. The prose around the blocks is kept; reread it if a figure moved a lot.
#   scripts/bench.sh            # all (about 10 minutes on 2 vCPUs; run on an idle machine)
#   scripts/bench.sh grpc       # only some: core-cold core-warm engines data cli grpc failover load
# The core, engines, data and cli benchmarks read ../shared/data/000001.SH_1m.csv (BENCH_CSV to
# change); cli reads ../shared/data/SPY_1m.csv too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
csv="${BENCH_CSV:-../shared/data/000001.SH_1m.csv}"
all=(core-cold core-warm engines data cli grpc failover load)
wanted=("${@:-${all[@]}}")
mkdir -p bench-out
for name in "${wanted[@]}"; do
  echo "== bench $name" >&2
  case "$name" in
    core-cold) scripts/bench_core.sh --csv "$csv" --json bench-out/core-cold.json ;;
    core-warm) scripts/bench_core.sh --csv "$csv" --heap warm --json bench-out/core-warm.json ;;
    engines) .venv/bin/python scripts/bench_engines.py --csv "$csv" ;;
    data) .venv/bin/python scripts/bench_data.py --csv "$csv" ;;
    cli) .venv/bin/python scripts/bench_cli.py --csv "$csv" --head 68145 --csv "$(dirname "$csv")/SPY_1m.csv" ;;
    grpc) .venv/bin/python scripts/bench_grpc.py ;;
    failover) .venv/bin/python scripts/bench_failover.py ;;
    load) .venv/bin/python scripts/bench_load.py ;;
    *) echo "unknown benchmark $name (one of: ${all[*]})" >&2; exit 2 ;;
  esac >"bench-out/$name.md"
done
.venv/bin/python scripts/bench_doc.py docs/BENCHMARKS.md bench-out "${wanted[@]}"
