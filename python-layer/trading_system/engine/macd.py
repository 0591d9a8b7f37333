"""MACD (指数平滑异同移动平均线, spec §2) per raw bar on the close, with the Chinese
``first_close`` seed or the TA-Lib ``sma`` seed (docs/CHAN_THEORY.md §12.2).

Each value is computed with the spec's expression in the spec's order, so the two engines agree
to the last bit. Absent values (before the TA-Lib lookback) are NaN.
"""

from __future__ import annotations

NAN = float("nan")

MacdSnapshot = tuple[int, float, float, float, float, float, float]
"""The mutable part of :class:`MacdState` (bar count, EMAs, DEA, the seeds' running sums)."""
MacdValue = tuple[float, float, float]
"""One bar's ``(dif, dea, histogram)``; NaN where absent."""


class MacdState:
    """The running state; ``push`` feeds one close and returns ``(dif, dea, histogram)``."""

    __slots__ = (
        "fast",
        "slow",
        "signal",
        "scale",
        "sma",
        "count",
        "ema_fast",
        "ema_slow",
        "dea",
        "sum_fast",
        "sum_slow",
        "sum_dif",
    )

    def __init__(self, fast: int, slow: int, signal: int, scale: float, sma: bool) -> None:
        self.fast, self.slow, self.signal, self.scale, self.sma = fast, slow, signal, scale, sma
        self.count = 0
        self.ema_fast = self.ema_slow = self.dea = 0.0
        self.sum_fast = self.sum_slow = self.sum_dif = 0.0

    def state(self) -> MacdSnapshot:
        """The mutable part, to undo one push."""
        return (
            self.count,
            self.ema_fast,
            self.ema_slow,
            self.dea,
            self.sum_fast,
            self.sum_slow,
            self.sum_dif,
        )

    def set_state(self, s: MacdSnapshot) -> None:
        (
            self.count,
            self.ema_fast,
            self.ema_slow,
            self.dea,
            self.sum_fast,
            self.sum_slow,
            self.sum_dif,
        ) = s

    def push(self, x: float) -> MacdValue:
        i = self.count
        self.count = i + 1
        if self.sma:
            return self._push_sma(i, x)
        if i == 0:
            self.ema_fast = self.ema_slow = x
            self.dea = 0.0
        else:
            f, s, g = self.fast, self.slow, self.signal
            self.ema_fast = (2.0 * x + (f - 1.0) * self.ema_fast) / (f + 1.0)
            self.ema_slow = (2.0 * x + (s - 1.0) * self.ema_slow) / (s + 1.0)
            dif = self.ema_fast - self.ema_slow
            self.dea = (2.0 * dif + (g - 1.0) * self.dea) / (g + 1.0)
        dif = self.ema_fast - self.ema_slow
        return dif, self.dea, self.scale * (dif - self.dea)

    def _push_sma(self, i: int, x: float) -> MacdValue:
        # TA-Lib's TA_MACD: both EMAs start at bar slow-1 (the fast one on the mean of its last
        # `fast` closes), the signal EMA on the mean of the first `signal` dif values.
        fast, slow, signal = self.fast, self.slow, self.signal
        if i < slow:
            self.sum_slow += x
            if i >= slow - fast:
                self.sum_fast += x
            if i + 1 < slow:
                return NAN, NAN, NAN
            self.ema_slow = self.sum_slow / slow
            self.ema_fast = self.sum_fast / fast
        else:
            kf = 2.0 / (fast + 1.0)
            ks = 2.0 / (slow + 1.0)
            self.ema_fast = ((x - self.ema_fast) * kf) + self.ema_fast
            self.ema_slow = ((x - self.ema_slow) * ks) + self.ema_slow
        dif = self.ema_fast - self.ema_slow
        lookback = slow - 1 + signal - 1
        if i < lookback:
            self.sum_dif += dif
            return NAN, NAN, NAN
        if i == lookback:
            self.sum_dif += dif
            self.dea = self.sum_dif / signal
        else:
            kg = 2.0 / (signal + 1.0)
            self.dea = ((dif - self.dea) * kg) + self.dea
        return dif, self.dea, self.scale * (dif - self.dea)
