"""Fractals (分型, spec §4): a merged bar classified once, when the merged bar after it is
created, as a top (顶分型), a bottom (底分型) or neither."""

from __future__ import annotations

from typing import NamedTuple

from trading_system.engine.kline import MergedBars


class Fractal(NamedTuple):
    """A fractal (分型): ``top`` or bottom, at merged bar ``merged``; ``index`` is its extreme raw
    bar (the high bar of a top, the low bar of a bottom) and ``price`` the merged high/low."""

    top: bool
    merged: int
    # The field shadows tuple.index (a method) on purpose: it is the Rust core's and the
    # document's name, and nothing calls tuple.index on a fractal.
    index: int  # pyright: ignore[reportIncompatibleMethodOverride]
    price: float


def classify(m: MergedBars, n: int) -> Fractal | None:
    """Merged bar ``n`` (≥ 1), now that ``n + 1`` exists. Adjacent merged bars are strictly up or
    down from each other, so the two directions decide it."""
    up, up_next = m.up[n], m.up[n + 1]
    if up and not up_next:
        return Fractal(True, n, m.high_bar[n], m.high[n])
    if not up and up_next:
        return Fractal(False, n, m.low_bar[n], m.low[n])
    return None
