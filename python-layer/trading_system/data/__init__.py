"""Bars in: the one loader of the package (docs/DATA.md is its contract). Every accepted form of
user data becomes :class:`Bars`, columnar numpy arrays (``time`` int64 epoch milliseconds UTC,
``open`` … ``volume`` float64) with the series' zone (``tz``) and the loader's ``notices``.

Accepted: files (:func:`load`) — CSV, TSV or TXT (delimiter and encoding detected) and
Parquet — and in memory (:func:`to_bars`) a pandas DataFrame (columns, or a DatetimeIndex for
the time), a mapping of arrays, a numpy structured array or an ``(n, 6)`` array, and bar rows
``(time, open, high, low, close, volume)`` (ccxt's OHLCV lists). Columns are found through the
alias table (:mod:`trading_system.data.columns`, ``config/columns.yaml``) or ``columns=``;
times are read by the rules of :mod:`trading_system.data.times`, never guessed (``time_unit=``,
``tz=``). Prices are not checked here: the engines check them (spec §1) and name every bad bar.

Notices (an epoch unit decided by magnitude, a missing volume, a newest-first file reversed, a
GB18030 file) are kept on :attr:`Bars.notices` and logged on the ``trading_system.data`` logger
at INFO; the command line prints them on stderr.

The layout: :mod:`~trading_system.data.columns` (alias matching),
:mod:`~trading_system.data.times` (time columns), :mod:`~trading_system.data.files` (files),
:mod:`~trading_system.data.sources` (in-memory forms, the assembly they share),
:mod:`~trading_system.data.bars` (:class:`Bars`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trading_system.data.bars import COLUMNS, Bars
from trading_system.data.files import Lines, file_format, read_file
from trading_system.data.sources import (
    Loaded,
    Options,
    bar_values,
    from_array,
    from_frame,
    from_mapping,
    from_rows,
)
from trading_system.data.times import UNITS, Place, format_time, to_epoch_ms
from trading_system.errors import DataError

__all__ = [
    "COLUMNS",
    "UNITS",
    "Bars",
    "Lines",
    "Options",
    "bar_values",
    "file_format",
    "format_time",
    "load",
    "load_csv",
    "load_with_lines",
    "parse_time",
    "to_bars",
]

log = logging.getLogger("trading_system.data")

ColumnsArg = Mapping[str, str] | str | None


def _options(columns: ColumnsArg, time_unit: str | None, tz: str | None) -> Options:
    try:
        return Options.of(columns, time_unit, tz)
    except ValueError as e:
        raise DataError(str(e), rule="option") from None


def _said(bars: Bars) -> Bars:
    for notice in bars.notices:
        log.info("%s", notice)
    return bars


def load_with_lines(
    path: str | os.PathLike[str],
    columns: ColumnsArg = None,
    time_unit: str | None = None,
    tz: str | None = None,
) -> tuple[Bars, Lines]:
    """:func:`load` and where each bar is in the file: its 1-based line in a text file, its
    1-based row in a Parquet file (errors say "line N" and "row N" likewise)."""
    read = read_file(path, _options(columns, time_unit, tz))
    return _said(read.bars), read.lines


def load(
    path: str | os.PathLike[str],
    columns: ColumnsArg = None,
    time_unit: str | None = None,
    tz: str | None = None,
) -> Bars:
    """Reads bars from a file: delimited text (``.csv``, ``.tsv``, ``.txt``) or Parquet (by
    its magic bytes, ``.parquet``, ``.pq``). ``columns``: field → the file's column name (or
    ``"time=trade_date,volume=vol"``), over the alias table; ``time_unit``: ``s``, ``ms``,
    ``us``, ``ns`` or ``date`` for a number time column; ``tz``: the zone of naive times (IANA,
    default UTC). Raises :class:`DataError` naming the file, the line (text) or row (Parquet),
    the column and, when the loader cannot tell, how to say what the data is. A file that
    cannot be opened is an OSError."""
    return load_with_lines(path, columns, time_unit, tz)[0]


def load_csv(
    path: str | os.PathLike[str],
    columns: ColumnsArg = None,
    time_unit: str | None = None,
    tz: str | None = None,
) -> Bars:
    """:func:`load` reading the file as delimited text whatever its name."""
    return _said(read_file(path, _options(columns, time_unit, tz), "text").bars)


def to_bars(
    data: Any,
    columns: ColumnsArg = None,
    time_unit: str | None = None,
    tz: str | None = None,
) -> Bars:
    """Any accepted form of bars as :class:`Bars` (see the module's documentation); a ``str``
    or path is a file read by :func:`load`. :class:`Bars` are returned as they are (with
    ``tz`` given, in that zone)."""
    if isinstance(data, Bars):
        if tz is not None and tz != data.tz:
            _options(None, None, tz)
            return dataclasses.replace(data, tz=tz)
        return data
    if isinstance(data, (str, os.PathLike)):
        return load(data, columns, time_unit, tz)
    options = _options(columns, time_unit, tz)
    loaded: Loaded
    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns"):
        loaded = from_frame(data, options)
    elif isinstance(data, Mapping):
        loaded = from_mapping(data, options)
    elif isinstance(data, np.ndarray):
        loaded = from_array(data, options)
    elif isinstance(data, Sequence) or hasattr(data, "__iter__"):
        loaded = from_rows(list(data), options)
    else:
        raise TypeError(f"cannot read bars from {type(data).__name__}")
    return _said(loaded.bars)


def parse_time(text: str, tz: str = "UTC") -> int:
    """One time as text, as epoch milliseconds: the engines' own form (ISO-8601 UTC such as
    ``2015-01-05T01:31:00Z``, expanded years such as ``+10000-01-01T00:00:00Z``, or the bare
    number of milliseconds they print beyond that range) or any text form the loader reads
    (naive: wall time in ``tz``). Raises ValueError."""
    s = str(text).strip()
    if s.lstrip("+-").isdigit() and s.isascii():
        return int(s)
    if s.endswith("Z") and s[:1] in "+-":
        return int(np.datetime64(s[:-1], "ms").astype(np.int64))
    import pyarrow as pa

    place = Place(None)
    try:
        ms, _ = to_epoch_ms(pa.array([s]), place, "time", tz)
    except DataError as e:
        raise ValueError(e.reason) from None
    return int(ms[0])
