#!/usr/bin/env bash
# Builds everything (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Python module (rust-core/chan-py) is built into .venv by setup.sh (maturin).
cargo build --release --locked --workspace --exclude chan-py
