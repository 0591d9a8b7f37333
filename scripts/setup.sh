#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain and Python 3 (idempotent).
# The Rust toolchain itself is pinned in rust-toolchain.toml and comes from rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "setup: cargo not found: install Rust with rustup (toolchain in rust-toolchain.toml)" >&2
  exit 1
fi
if ! need python3; then
  echo "setup: python3 not found" >&2
  exit 1
fi
# rust-toolchain.toml pins 1.95.0. Where that version is installed only as "stable" (and no
# toolchain can be downloaded), name it so rustup finds it.
pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if need rustup && ! rustup toolchain list | grep -q "^$pinned"; then
  if rustup run stable rustc --version 2>/dev/null | grep -q "^rustc $pinned "; then
    rustup toolchain link "$pinned" "$(rustup run stable rustc --print sysroot)"
  fi
fi

# Fetch every locked crate once, so builds and tests run offline afterwards.
cargo fetch --locked
