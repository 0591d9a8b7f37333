"""Times in a series' zone: how frames, files, charts and printed text show a bar's time.

The engines work in epoch milliseconds UTC; a series carries its IANA zone (``Bars.tz``,
``Analysis.tz``, default ``UTC``) and every output converts to it here (docs/DATA.md,
"Zones"). A series whose times are all midnight in its zone is a daily series: its times print
as dates (``2025-06-09``), the others as ISO-8601 with the zone's offset
(``2025-06-09T09:31:00+08:00``; ``Z`` in UTC, as the engines write them).

pandas is imported only by the functions that take whole columns (:func:`timestamps`,
:func:`is_daily`): printing one time needs the standard library only.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trading_system.engine.timestamp import format_ms

if TYPE_CHECKING:
    import pandas as pd

UTC = "UTC"
MS_PER_DAY = 86_400_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=64)
def zone(tz: str) -> dt.tzinfo:
    """The zone of an IANA name (``Asia/Shanghai``, ``America/New_York``, ``UTC``). Raises
    ValueError naming it when it is not one: a misspelt zone must not silently mean UTC."""
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"a time zone is an IANA name such as Asia/Shanghai, not {tz!r}")
    if tz == UTC:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"unknown time zone {tz!r}: give an IANA name such as Asia/Shanghai or UTC"
        ) from e


def check_zone(tz: str) -> str:
    """``tz`` itself once :func:`zone` accepts it."""
    zone(tz)
    return tz


def timestamps(ms: Sequence[int] | np.ndarray, tz: str) -> pd.DatetimeIndex:
    """Epoch milliseconds as a tz-aware index (``datetime64[ms, tz]``) in zone ``tz``: the
    exact instants (no float on the way), any year the engines accept."""
    import pandas as pd

    a = np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")
    return pd.DatetimeIndex(a).tz_localize(UTC).tz_convert(check_zone(tz))


def is_daily(ms: Sequence[int] | np.ndarray, tz: str) -> bool:
    """Whether every time is midnight in zone ``tz`` (a daily series; False when empty)."""
    a = np.asarray(ms, dtype=np.int64)
    if len(a) == 0:
        return False
    if tz == UTC:
        return bool(np.all(a % MS_PER_DAY == 0))
    wall = timestamps(a, tz).tz_localize(None).asi8  # wall-clock milliseconds
    return bool(np.all(wall % MS_PER_DAY == 0))


def wall_ms(ms: Sequence[int] | np.ndarray, tz: str) -> np.ndarray:
    """The wall-clock time in zone ``tz`` of each instant, as milliseconds of a naive clock (what
    a chart's axis, which knows no zones, must be given to read as the zone's local time)."""
    a = np.asarray(ms, dtype=np.int64)
    if tz == UTC or len(a) == 0:
        return a.copy()
    wall: np.ndarray = timestamps(a, tz).tz_localize(None).asi8
    return wall


def _datetime(ms: int, tz: str) -> dt.datetime:
    return (_EPOCH + dt.timedelta(milliseconds=int(ms))).astimezone(zone(tz))


def format_zoned(ms: int, tz: str = UTC, dates: bool = False) -> str:
    """One time in zone ``tz``: ``YYYY-MM-DD`` when ``dates``, else ISO-8601 with the offset and
    ``.mmm`` only when the milliseconds are not 0. In UTC exactly the engines' text (``Z``)."""
    if tz == UTC and not dates:
        return format_ms(int(ms))
    try:
        t = _datetime(ms, tz)
    except OverflowError:  # beyond datetime's years 1..9999: the engines' own text
        return format_ms(int(ms))
    if dates:
        return t.date().isoformat()
    return t.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


@dataclass(frozen=True, slots=True)
class TimeFormat:
    """How one series' times print: its zone, and dates only when it is a daily series."""

    tz: str = UTC
    dates: bool = False

    @classmethod
    def of(cls, ms: Sequence[int] | np.ndarray, tz: str = UTC) -> TimeFormat:
        """The format of the series whose bar times are ``ms`` in zone ``tz``."""
        return cls(check_zone(tz), is_daily(ms, tz))

    def __call__(self, ms: Any) -> str:
        return format_zoned(int(ms), self.tz, self.dates)

    def text(self, iso: str) -> str:
        """An engine's ISO-8601 UTC text (a document's ``time``) in this format."""
        if self.tz == UTC and not self.dates:
            return iso
        from trading_system.data import parse_time

        return self(parse_time(iso))
