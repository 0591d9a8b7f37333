#!/usr/bin/env python3
"""Writes tests/data/talib_macd.json: TA-Lib's MACD of real closes, the reference for spec §2
(`macd.seed: sma`, `histogram_scale: 1`). Needs `pip install TA-Lib==0.8.2 numpy`.

    python3 scripts/make_talib_fixture.py
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import talib

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/data/BTCUSD-BITSTAMP_30m.csv"
PARAMS = [(12, 26, 9), (5, 13, 4), (2, 3, 2), (19, 39, 9)]


def main() -> None:
    with SOURCE.open() as f:
        closes = [float(r["close"]) for r in csv.DictReader(f)]
    x = np.array(closes, dtype=np.float64)
    cases = []
    for fast, slow, signal in PARAMS:
        dif, dea, hist = talib.MACD(x, fastperiod=fast, slowperiod=slow, signalperiod=signal)
        clean = lambda a: [None if math.isnan(v) else float(v) for v in a]  # noqa: E731
        cases.append(
            {
                "fast_period": fast,
                "slow_period": slow,
                "signal_period": signal,
                "dif": clean(dif),
                "dea": clean(dea),
                "histogram": clean(hist),
            }
        )
    out = {
        "about": "TA-Lib MACD (talib " + talib.__version__ + ", TA_MACD) of the closes of "
        "tests/data/BTCUSD-BITSTAMP_30m.csv; regenerate with scripts/make_talib_fixture.py",
        "source": "tests/data/BTCUSD-BITSTAMP_30m.csv",
        "cases": cases,
    }
    (ROOT / "tests/data/talib_macd.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
