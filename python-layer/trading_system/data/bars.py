"""The loaded bars: :class:`Bars`, columnar numpy arrays, their zone and the loader's notices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from trading_system.data.columns import FIELDS
from trading_system.data.times import check_tz, format_time
from trading_system.errors import DataError

COLUMNS = FIELDS
"""The columns of :class:`Bars`, in the order of a bar row."""


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _column(name: str, values: object) -> np.ndarray:
    a = np.asarray(values)
    if name == "time":
        if a.dtype.kind == "M":
            # Finer than milliseconds is floored, as the engines floor it.
            a = np.floor_divide(a.astype("datetime64[ns]").view(np.int64), 1_000_000)
        elif a.dtype.kind in "iu" or (a.dtype.kind == "f" and a.size == 0):
            a = a.astype(np.int64)
        else:
            raise DataError(
                f"Bars takes epoch milliseconds (integers), not {a.dtype}: read other times "
                "with trading_system.data.to_bars",
                column=name,
                rule="column_type",
                field=name,
            )
    elif a.dtype != np.float64:
        if a.dtype.kind not in "fiu":
            raise DataError(
                f"Bars takes numbers, not {a.dtype}: use to_bars",
                column=name,
                rule="column_type",
                field=name,
            )
        a = a.astype(np.float64)
    if a.ndim != 1:
        raise DataError(
            f"must be 1-dimensional, got shape {a.shape}",
            column=name,
            rule="array_shape",
            field=name,
        )
    return _readonly(np.ascontiguousarray(a))


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """K-line bars (K线) in columns: ``time`` int64 epoch milliseconds (UTC), ``open``, ``high``,
    ``low``, ``close``, ``volume`` float64, all of one length (read-only views). ``tz`` is the
    series' zone (an IANA name), used for every output; ``notices`` are what the loader said
    while reading them (an epoch unit decided by magnitude, a missing volume, a reversed
    newest-first file). Equality compares the columns and the zone."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tz: str = "UTC"
    notices: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = None
        for name in COLUMNS:
            a = _column(name, getattr(self, name))
            if n is not None and len(a) != n:
                raise DataError(
                    f"has {len(a)} values, the time column {n}",
                    column=name,
                    rule="array_shape",
                    field=name,
                )
            n = len(a)
            object.__setattr__(self, name, a)
        try:
            check_tz(self.tz)
        except ValueError as e:
            raise DataError(str(e), column="tz", rule="option") from None
        object.__setattr__(self, "notices", list(self.notices))

    def __len__(self) -> int:
        return len(self.time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bars):
            return NotImplemented
        return (
            self.tz == other.tz
            and bool(np.array_equal(self.time, other.time))
            and all(
                np.array_equal(getattr(self, c), getattr(other, c), equal_nan=True)
                for c in COLUMNS[1:]
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        zone = "" if self.tz == "UTC" else f", {self.tz}"
        if not len(self):
            return f"Bars(0 bars{zone})"
        first, last = format_time(self.time[0]), format_time(self.time[-1])
        return f"Bars({len(self)} bars, {first} .. {last}{zone})"

    def rows(self) -> Iterator[tuple[int, float, float, float, float, float]]:
        """The bars one by one as ``(time, open, high, low, close, volume)`` tuples."""
        return zip(
            self.time.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            strict=True,
        )
