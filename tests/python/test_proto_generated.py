"""The committed gRPC code (``python-layer/trading_system/proto/``) is what
``scripts/gen_proto.sh`` makes from ``proto/trading.proto`` now: regenerated into a temporary
directory and compared byte for byte, so an edited contract cannot go unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "python-layer" / "trading_system" / "proto"
GENERATED = ("trading_pb2.py", "trading_pb2.pyi", "trading_pb2_grpc.py")


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=120,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(GENERATED)
    stale = [
        name
        for name in GENERATED
        if (tmp_path / name).read_bytes() != (COMMITTED / name).read_bytes()
    ]
    assert not stale, f"stale generated code {stale}: run scripts/gen_proto.sh"


def test_generated_code_imports_as_part_of_the_package() -> None:
    from trading_system.proto import trading_pb2, trading_pb2_grpc

    assert trading_pb2.DESCRIPTOR.package == "trading.v1"
    assert trading_pb2.DESCRIPTOR.name == "trading.proto"
    assert trading_pb2_grpc.trading__pb2 is trading_pb2
    assert set(trading_pb2.DESCRIPTOR.services_by_name["Trading"].methods_by_name) == {
        "Analyze",
        "Stream",
        "GetSnapshot",
        "GetInfo",
        "GetConfig",
        "UpdateConfig",
    }
