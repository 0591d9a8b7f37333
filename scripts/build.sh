#!/usr/bin/env bash
# Builds everything (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Python module (rust-core/chan-py) is built into .venv by setup.sh (maturin); setup.sh also
# builds target/release/trading-engine, so this only adds the other binaries (chan-bench).
cargo build --release --locked --workspace --exclude chan-py
