#!/usr/bin/env bash
# Generates the Python gRPC code from proto/trading.proto into
# python-layer/trading_system/proto/ (or the directory given as $1): trading_pb2.py,
# trading_pb2.pyi and trading_pb2_grpc.py. The generated files are committed;
# tests/python/test_proto_generated.py fails when they are stale. Python: $PYTHON, else .venv's.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-python-layer/trading_system/proto}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
# -I proto: the descriptor's file name stays "trading.proto", as the Rust server's is.
"$python" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" proto/trading.proto
# protoc writes a top-level import; the package imports it as trading_system.proto.trading_pb2.
grpc_py="$out/trading_pb2_grpc.py"
sed 's/^import trading_pb2 as trading__pb2$/from trading_system.proto import trading_pb2 as trading__pb2/' \
  "$grpc_py" >"$grpc_py.tmp"
mv "$grpc_py.tmp" "$grpc_py"
grep -q '^from trading_system.proto import trading_pb2 as trading__pb2$' "$grpc_py"
