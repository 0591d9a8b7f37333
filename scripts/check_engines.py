#!/usr/bin/env python3
"""Runs both engines (the native Rust core and the pure-Python standby) on every CSV file of a
folder (default ``../shared/data``) under several configurations and reports whether they
agree: the same document, field by field and bit for bit, or the same violations when a file
is rejected. Not a test (tests never read ``../shared``); exits 1 on any difference.

Usage: scripts/check_engines.py [DATA_DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from golden import as_json, exact_diff  # noqa: E402

from trading_system import native  # noqa: E402
from trading_system.config import engine_config  # noqa: E402
from trading_system.data import Bars, load_csv  # noqa: E402
from trading_system.engine import analyze  # noqa: E402
from trading_system.errors import InvalidBars  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "traditional": {"pen": {"definition": "traditional"}},
    "repair, sma, macd": {"validation": {"repair": True}, "macd": {"seed": "sma"}},
    "non-strict, peak": {
        "pen": {"strict_validation": False},
        "segment": {"feature_sequence_strict": False},
        "signal": {"strength": "peak"},
    },
}


def _rust(bars: Bars, ov: dict[str, Any], with_macd: bool) -> Any:
    cols = (bars.time, bars.open, bars.high, bars.low, bars.close, bars.volume)
    try:
        return json.loads(native.analyze(*cols, json.dumps(ov), with_macd).to_json())
    except native.InvalidBars as e:
        return {"violations": json.loads(e.args[1])}


def _python(bars: Bars, ov: dict[str, Any], with_macd: bool) -> Any:
    try:
        return as_json(analyze(bars, engine_config(ov), with_macd))
    except InvalidBars as e:
        return {"violations": [v.to_dict() for v in e.violations]}


def main() -> int:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    files = sorted(data.glob("*.csv"))
    if not files:
        print(f"no CSV files in {data}", file=sys.stderr)
        return 2
    bad = 0
    print("| file | bars | configuration | result | pens | segments | signals | python s |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for f in files:
        bars = load_csv(f)
        for name, ov in CONFIGS.items():
            with_macd = "macd" in name
            want = _rust(bars, ov, with_macd)
            t0 = time.perf_counter()
            got = _python(bars, ov, with_macd)
            secs = time.perf_counter() - t0
            d = exact_diff(want, got)
            if d is not None:
                bad += 1
            result = "agree" if d is None else f"DIFFER at {d[:80]}"
            if "violations" in want:
                result += " (rejected)"
            if "violations" in want:
                counts = f"{len(want['violations'])} violations | – | –"
            else:
                counts = f"{len(want['pens'])} | {len(want['segments'])} | {len(want['signals'])}"
            print(f"| {f.name} | {len(bars):,} | {name} | {result} | {counts} | {secs:.2f} |")
    print(f"\n{len(files) * len(CONFIGS) - bad} of {len(files) * len(CONFIGS)} runs agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
