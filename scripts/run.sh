#!/usr/bin/env bash
# The main job: builds everything, then analyzes a bundled real series (BTC/USD, 30-minute bars)
# and prints its Chan structure. Pass another CSV as the first argument to analyze that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
file="${1:-tests/data/BTCUSD-BITSTAMP_30m.csv}"
./target/release/trading-engine analyze "$file" --config config/default.yaml --summary
