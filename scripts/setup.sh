#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain and Python 3 (idempotent), and builds
# the Rust engine's server binary target/service/trading-engine.
# The Rust toolchain itself is pinned in rust-toolchain.toml and comes from rustup.
#
# With --tests (scripts/test.sh): everything but the service build of the server. The tests start
# target/ci/trading-engine, which `cargo test --profile ci` builds anyway, so a cold test run
# skips the fat-LTO build (the longest of all).
set -euo pipefail
cd "$(dirname "$0")/.."

service_server=1
case "${1:-}" in
  --tests) service_server=0 ;;
  "") ;;
  *)
    echo "usage: scripts/setup.sh [--tests]" >&2
    exit 2
    ;;
esac

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

# The Rust engine's binary (`trading-engine serve`, the gRPC server): the Python tests and
# `trading-system serve rust` start it from target/service/trading-engine (the service profile:
# release code that unwinds on a panic, so a bug fails one call, not the server). Cargo rebuilds
# it only when its sources changed (the first build takes a few minutes: fat LTO).
if [ "$service_server" = 1 ]; then
  echo "setup: building target/service/trading-engine (cargo build --profile service)"
  cargo build --profile service --locked --quiet -p trading-engine --bin trading-engine
fi

# Python: .venv with the locked packages (reinstalled only when the lock changed) and the package
# with its native module (trading_system.native), rebuilt only when its inputs changed.
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
lock=python-layer/requirements.lock
if ! cmp -s "$lock" "$venv/.requirements.lock"; then
  echo "setup: installing python-layer/requirements.lock into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$lock"
  cp "$lock" "$venv/.requirements.lock"
fi
# The deployment checkers (kubernetes-validate, checkov: tests/python/test_k8s.py) in a venv of
# their own, .venv-deploy: their dependencies pin versions the project's lock pins differently.
# Reinstalled only when deploy/requirements.lock changed (about 40 s, 400 MB).
deploy_venv=.venv-deploy
deploy_lock=deploy/requirements.lock
if [ ! -x "$deploy_venv/bin/python" ]; then
  python3 -m venv "$deploy_venv"
fi
if ! cmp -s "$deploy_lock" "$deploy_venv/.requirements.lock"; then
  echo "setup: installing $deploy_lock into $deploy_venv"
  "$deploy_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary=:all: -r "$deploy_lock"
  cp "$deploy_lock" "$deploy_venv/.requirements.lock"
fi
# What the module is built from; the build (cargo + pip) runs again only when this changes or
# the module is missing.
inputs=$(find rust-core/chan-core/src rust-core/chan-py/src -type f -name '*.rs' |
  LC_ALL=C sort | xargs cat Cargo.toml Cargo.lock pyproject.toml rust-toolchain.toml \
    rust-core/chan-core/Cargo.toml rust-core/chan-py/Cargo.toml |
  cksum)
if ! compgen -G "python-layer/trading_system/native*.so" >/dev/null ||
  [ "$inputs" != "$(cat "$venv/.native-inputs" 2>/dev/null)" ]; then
  echo "setup: building trading_system.native into $venv (maturin develop)"
  rm -f python-layer/trading_system/native*.so
  build_log="$venv/native-build.log"
  if ! (
    export VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH"
    # --profile service: release code that unwinds on a panic (Cargo.toml).
    maturin develop --locked --profile service
  ) >"$build_log" 2>&1; then
    cat "$build_log" >&2
    echo "setup: building trading_system.native failed (log above)" >&2
    exit 1
  fi
  echo "$inputs" >"$venv/.native-inputs"
fi

# Headless Chromium: tests/python/test_chart.py renders a chart in a real browser and checks the
# screenshot. Debian's package, installed only when no `chromium` is on PATH.
if ! need chromium; then
  echo "setup: installing chromium (apt-get; the chart tests render in headless Chromium)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if need sudo; then
      sudo="sudo"
    else
      echo "setup: chromium is missing and installing it needs root: run as root or install sudo," >&2
      echo "setup: or install Debian's chromium package yourself (apt-get install chromium)" >&2
      exit 1
    fi
  fi
  if ! need apt-get ||
    ! $sudo apt-get update ||
    ! $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends chromium ||
    ! need chromium; then
    echo "setup: could not install chromium with apt-get: install Debian's chromium package" \
      "(or a chromium on PATH) by hand; tests/python/test_chart.py needs it" >&2
    exit 1
  fi
fi
