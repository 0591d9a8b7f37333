"""Hypothesis strategies for valid bar series and engine configurations, shared by the
differential and incremental tests.

A series is a walk on a tick grid, so equal highs, equal lows and flat bars (ties) are common;
it is made of regimes (long trends, long ranges, gaps) and scaled to prices from 0.0001 to
100000.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import strategies as st

from trading_system.data import Bars

SCALES = [0.0001, 0.003, 0.25, 1.0, 7.5, 100.0, 2500.0, 100000.0]


# A regime: (drift in ticks per bar, noise in ticks, length in bars, gap in ticks before it).
regimes = st.tuples(
    st.sampled_from([-3, -1, 0, 0, 1, 3]),
    st.integers(0, 4),
    st.integers(1, 80),
    st.sampled_from([0, 0, 0, -25, 25]),
)


@st.composite
def series(draw: st.DrawFn, max_regimes: int = 8) -> Bars:
    """A valid series: positive prices, high ≥ max(open, close), low ≤ min(open, close),
    strictly increasing times."""
    parts = draw(st.lists(regimes, min_size=1, max_size=max_regimes))
    scale = draw(st.sampled_from(SCALES))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    flat_rate = draw(st.sampled_from([0.0, 0.05, 0.3]))
    start = draw(st.integers(0, 4_000_000_000_000))
    ticks = 400
    rows = []
    t = start
    for drift, noise, length, gap in parts:
        ticks = max(4, ticks + gap)
        for _ in range(length):
            o = ticks
            ticks = max(4, ticks + drift + rng.randint(-noise, noise))
            c = ticks
            if rng.random() < flat_rate:
                o = c
                h = lo = c
            else:
                h = max(o, c) + rng.choice((0, 0, 1, 2, 5))
                lo = max(1, min(o, c) - rng.choice((0, 0, 1, 2, 5)))
            rows.append((t, o * scale, h * scale, lo * scale, c * scale, float(rng.randint(0, 9))))
            t += rng.choice((1, 60_000, 60_000, 86_400_000, 1_234))
    t, o, h, lo, c, v = zip(*rows, strict=True)
    o, h, lo, c, v = (np.array(x, dtype=np.float64) for x in (o, h, lo, c, v))
    return Bars(np.array(t, dtype=np.int64), o, h, lo, c, v)


@st.composite
def overrides(draw: st.DrawFn) -> dict[str, dict[str, object]]:
    """A random valid configuration, as override sections."""
    fast = draw(st.integers(1, 15))
    slow = draw(st.integers(fast + 1, 40))
    return {
        "macd": {
            "fast_period": fast,
            "slow_period": slow,
            "signal_period": draw(st.integers(1, 12)),
            "histogram_scale": draw(st.sampled_from([1.0, 2.0, 0.5, 3.7])),
            "seed": draw(st.sampled_from(["first_close", "sma"])),
        },
        "pen": {
            "definition": draw(st.sampled_from(["new_3kline", "traditional"])),
            "strict_validation": draw(st.booleans()),
        },
        "segment": {
            "feature_sequence_strict": draw(st.booleans()),
            "handle_inclusion": draw(st.booleans()),
        },
        "signal": {
            "strength": draw(st.sampled_from(["area", "peak", "slope", "amplitude"])),
            "divergence_rate": draw(st.sampled_from([0.5, 1.0, 1.25, 2.0])),
            "min_pivots": draw(st.integers(0, 3)),
        },
        # Every degree (§13) is compared element by element too, update documents included.
        "structure": {"degrees": draw(st.integers(1, 4))},
    }
