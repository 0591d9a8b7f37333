#!/usr/bin/env bash
# Builds everything (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Python module (rust-core/chan-py) is built into .venv by setup.sh (maturin), and the server
# binary target/service/trading-engine too; this adds the release binaries (trading-engine for
# the command line, chan-bench).
cargo build --release --locked --workspace --exclude chan-py
