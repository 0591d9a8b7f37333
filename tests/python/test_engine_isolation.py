"""The standby engine is independent of the Rust code: no module of
``trading_system.engine`` imports ``trading_system.native`` (or anything else of the package
beyond the shared errors, configuration types and itself), and running it loads no native
module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import trading_system.engine

ENGINE = Path(trading_system.engine.__file__).parent
ALLOWED = {"trading_system.errors", "trading_system.config"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path.name}: use absolute imports")
            base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def test_engine_modules_import_nothing_native() -> None:
    modules = sorted(ENGINE.glob("*.py"))
    assert {p.stem for p in modules} >= {
        "kline",
        "fractal",
        "pen",
        "segment",
        "pivot",
        "macd",
        "signal",
        "analysis",
    }
    for path in modules:
        for name in _imports(path):
            if name.startswith("trading_system") and not name.startswith("trading_system.engine"):
                root = ".".join(name.split(".")[:2])
                assert root in ALLOWED, f"{path.name} imports {name}"
            assert "native" not in name.split("."), f"{path.name} imports {name}"


def test_running_the_engine_loads_no_native_module() -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from trading_system.engine import analyze\n"
        "from trading_system.config import engine_config\n"
        "from trading_system.data import Bars\n"
        "t = np.arange(50, dtype=np.int64) * 60000\n"
        "p = 100 + np.sin(np.arange(50) / 3)\n"
        "doc = analyze(Bars(t, p, p + 1, p - 1, p, p), engine_config())\n"
        "assert doc['bars'] == 50\n"
        "loaded = [m for m in sys.modules if m.startswith('trading_system.native')]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
