"""Files as :class:`Bars`: delimited text (CSV, TSV, TXT) through pyarrow's CSV reader, Parquet
through pyarrow. The delimiter (``,`` ``;`` tab ``|``) is the one the header line has most of;
the encoding is UTF-8 (with or without BOM), else GB18030 (which GBK files are). Errors name
the file and the line (text) or the 1-based row (Parquet)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from trading_system.data import columns as cols
from trading_system.data.sources import Loaded, Options, assemble
from trading_system.data.times import Place
from trading_system.errors import DataError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"
DELIMITERS = (",", "\t", ";", "|")
"""Candidates, in the order that breaks a tie."""


def file_format(path: str | os.PathLike[str]) -> str:
    """``"text"`` or ``"parquet"``: Parquet by its magic bytes or its extension (``.parquet``,
    ``.pq``), text by its extension (``.csv``, ``.tsv``, ``.txt``, any case); anything else is
    a :class:`DataError` naming the path and these. A missing file is an OSError."""
    with open(path, "rb") as f:
        magic = f.read(4)
    suffix = Path(path).suffix.lower()
    if magic == PARQUET_MAGIC or suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in TEXT_SUFFIXES:
        return "text"
    what = f"extension {suffix!r}" if suffix else "no extension"
    raise DataError(
        f"unknown file type ({what}): expected .csv, .tsv or .txt (delimited text), .parquet "
        "or .pq (Parquet)",
        source=os.fspath(path),
        rule="file_type",
    )


class Lines(Sequence[int]):
    """Where each bar is in its file (1-based line of a text file, row of a Parquet file),
    worked out only when asked for (an error message needs it; a clean load does not)."""

    def __init__(self, n: int, compute: Any, reverse: bool) -> None:
        self._n, self._compute, self._reverse = n, compute, reverse
        self._at: np.ndarray | None = None

    def _positions(self) -> np.ndarray:
        if self._at is None:
            at = np.asarray(self._compute(), dtype=np.int64)[: self._n]
            self._at = at[::-1] if self._reverse else at
        return self._at

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...
    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            return [int(x) for x in self._positions()[i]]
        return int(self._positions()[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self._positions().tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Lines({list(self)[:5]}…)" if self._n > 5 else f"Lines({list(self)})"


@dataclass
class Read:
    """A file's bars and where each is in the file."""

    bars: Any
    lines: Lines


def read_file(path: str | os.PathLike[str], options: Options, kind: str | None = None) -> Read:
    """The bars of a file and their places; ``kind`` forces ``"text"`` or ``"parquet"``."""
    kind = kind or file_format(path)
    if kind == "parquet":
        return _parquet(path, options)
    return _text(path, options)


# --- Delimited text -----------------------------------------------------------------------------


def _decode(raw: bytes, source: str) -> tuple[bytes, str | None]:
    """UTF-8 bytes of the file (BOM kept: pyarrow skips it) and a notice when it was not UTF-8."""
    try:
        raw.decode("utf-8")
        return raw, None
    except UnicodeDecodeError as utf8:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            # The rule names no line (docs/DATA.md, "Errors"): the message does.
            line = raw.count(b"\n", 0, utf8.start) + 1
            raise DataError(
                f"neither UTF-8 nor GB18030 (GBK) text (first bad byte on line {line}): save it "
                "as UTF-8",
                source=source,
                rule="encoding",
            ) from None
        return text.encode("utf-8"), "encoding: not UTF-8; read as GB18030 (GBK)"


_QUOTED = re.compile(r'"[^"]*"')


def _delimiter(header: str) -> str:
    bare = _QUOTED.sub("", header)
    counts = [bare.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) else ","


def _line_numbers(raw: bytes) -> np.ndarray:
    """The 1-based line of each data row: the non-empty lines after the header (pyarrow skips
    empty lines; a record spans one line)."""
    b = np.frombuffer(raw, dtype=np.uint8)
    nl = np.flatnonzero(b == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(b)]))
    length = ends - starts
    cr = (length > 0) & (b[np.clip(ends - 1, 0, max(len(b) - 1, 0))] == 13) if len(b) else length
    nonempty = (length - cr) > 0
    return (np.flatnonzero(nonempty) + 1)[1:]


def _text(path: str | os.PathLike[str], options: Options) -> Read:
    import pyarrow as pa
    import pyarrow.csv as csv

    source = os.fspath(path)
    raw, notice = _decode(Path(path).read_bytes(), source)
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf")
    header_line = raw.removeprefix(b"\xef\xbb\xbf").find(first)
    header_line = raw.count(b"\n", 0, max(header_line, 0)) + 1
    delimiter = _delimiter(first.decode("utf-8"))
    parse = csv.ParseOptions(delimiter=delimiter)
    if not first.strip():
        raise DataError(
            "empty file: no header line", source=source, line=1, rule="column_missing", field="time"
        )
    try:
        names = csv.read_csv(pa.BufferReader(first + b"\n"), parse_options=parse).column_names
    except pa.ArrowInvalid as e:
        raise DataError(
            f"unreadable header: {e}", source=source, line=header_line, rule="row_shape"
        ) from None
    picked = cols.pick(names, options.columns, source, header_line)
    time_name = picked["time"]

    lines_cache: list[np.ndarray] = []

    def lines() -> np.ndarray:
        if not lines_cache:
            lines_cache.append(_line_numbers(raw))
        return lines_cache[0]

    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    wanted = list(dict.fromkeys(picked.values()))

    def read(typed: bool) -> Any:
        types = {n: (pa.float64() if typed else pa.string()) for n in wanted}
        types[time_name] = pa.string()
        return csv.read_csv(
            pa.BufferReader(raw),
            parse_options=csv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            convert_options=csv.ConvertOptions(
                column_types=types,
                include_columns=wanted,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        try:
            table = read(True)
        except pa.ArrowInvalid as e:
            if bad or "conversion error" not in str(e):
                raise
            table = read(False)  # a value that is not a number: found and named below
    except pa.ArrowInvalid as e:
        if bad:
            row = bad[0]
            at = _find_line(raw, row.text, header_line)
            raise DataError(
                f"found {row.actual_columns} fields, the header has {row.expected_columns}",
                source=source,
                line=at,
                rule="row_shape",
            ) from None
        raise DataError(f"unreadable text: {e}", source=source, rule="row_shape") from None

    place = Place(source, "line", lambda i: int(lines()[i]))
    loaded = assemble(table.column, wanted, place, _by_name(options, picked))
    if notice:
        loaded.bars.notices.insert(0, notice)
    return Read(loaded.bars, Lines(len(loaded.bars), lines, loaded.reversed))


def _by_name(options: Options, picked: dict[str, Any]) -> Options:
    """The options with every field mapped to the column already picked (the table read holds
    only those columns)."""
    return Options(dict(picked), options.time_unit, options.tz)


def _find_line(raw: bytes, text: str | None, header_line: int) -> int | None:
    if text is None:
        return None
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if n > header_line and line.rstrip(b"\r") == text.encode("utf-8"):
            return n
    return None


# --- Parquet ------------------------------------------------------------------------------------


def _pandas_index(schema: Any) -> str | None:
    """The column holding the one index pandas stored with the table (None when none)."""
    meta = schema.pandas_metadata or {}
    index = meta.get("index_columns") or []
    first = index[0] if len(index) == 1 else None
    return first if isinstance(first, str) and first in schema.names else None


def _parquet(path: str | os.PathLike[str], options: Options) -> Read:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = os.fspath(path)
    with pa.OSFile(source) as f:  # a file that cannot be opened is an OSError, not bad data
        if f.size() == 0:
            raise DataError(
                "empty file (0 bytes), not a Parquet file",
                source=source,
                rule="parquet_unreadable",
            )
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise DataError(
                f"not a Parquet file ({e})", source=source, rule="parquet_unreadable"
            ) from None
        names = pf.schema_arrow.names
        index = _pandas_index(pf.schema_arrow)
        aliases = cols.table().fields
        if (
            index is not None
            and "time" not in options.columns
            and not any(aliases.get(cols.normalize(n)) == "time" for n in names)
        ):
            options = Options({**options.columns, "time": index}, options.time_unit, options.tz)
        picked = cols.pick(names, options.columns, source)
        try:
            table = pf.read(columns=list(dict.fromkeys(picked.values())))
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"unreadable: {e}", source=source, rule="parquet_unreadable") from None
    place = Place(source, "row")
    loaded: Loaded = assemble(
        table.column, list(table.column_names), place, _by_name(options, picked)
    )
    n = len(loaded.bars)
    return Read(loaded.bars, Lines(n, lambda: np.arange(1, n + 1), loaded.reversed))
