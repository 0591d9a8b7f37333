#!/usr/bin/env bash
# The main job: builds everything, then runs the whole stack on loopback (Rust engine, Python
# engine, monitor) with a demo bot that streams a bundled real series (BTC/USD, 30-minute bars)
# through the monitor, printing health and each buy/sell point as it appears, and writes a chart
# (var/demo/chart.html). Every process stops at the end or on Ctrl-C.
# Arguments go to `trading-system demo` (--data FILE, --rate N, --chart OUT, --no-chart ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec .venv/bin/python -m trading_system demo "$@"
