#!/usr/bin/env bash
# Builds everything (release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --workspace
