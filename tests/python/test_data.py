"""Data input (trading_system.data): every input form gives the same Bars; text-file errors name
the line and the column, Parquet errors the row and the column, in-memory errors the index.
The file shapes other tools export are in test_loader_files.py."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from trading_system import analyze
from trading_system.cli import main
from trading_system.data import (
    COLUMNS,
    Bars,
    bar_values,
    file_format,
    format_time,
    load,
    load_csv,
    load_with_lines,
    parse_time,
    to_bars,
)
from trading_system.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH = DATA / "000001.SH_1d_head1200.csv"
AAPL = DATA / "AAPL_1d_head1200.csv"
HEADER = "time,open,high,low,close,volume\n"

# Three bars, written every way the loader accepts.
MS = [1_704_067_200_000, 1_704_069_000_000, 1_704_070_800_500]
ISO = ["2024-01-01T00:00:00Z", "2024-01-01T00:30:00Z", "2024-01-01T01:00:00.500Z"]
DATETIMES = [
    dt.datetime(2024, 1, 1, 0, 0),
    dt.datetime(2024, 1, 1, 0, 30),
    dt.datetime(2024, 1, 1, 1, 0, 0, 500_000),
]
OHLCV = [
    (10.0, 11.0, 9.5, 10.5, 100.0),
    (10.5, 12.0, 10.25, 11.75, 0.0),
    (11.75, 11.75, 11.0, 11.25, 3.5),
]


def expected() -> Bars:
    cols = np.array(OHLCV).T
    return Bars(np.array(MS, dtype=np.int64), *cols)


def frame(times: object) -> pd.DataFrame:
    return pd.DataFrame({"time": times, **{c: [r[k] for r in OHLCV] for k, c in enumerate(COLS)}})


COLS = ("open", "high", "low", "close", "volume")


def input_forms(tmp_path: Path) -> dict[str, object]:
    csv_path = tmp_path / "bars.csv"
    csv_path.write_text(
        HEADER + "".join(f"{t},{','.join(map(str, r))}\n" for t, r in zip(ISO, OHLCV, strict=True)),
        encoding="utf-8",
    )
    rows = [(t, *r) for t, r in zip(MS, OHLCV, strict=True)]
    structured = np.array(rows, dtype=[("time", "i8"), *((c, "f8") for c in COLS)])
    indexed = frame(MS).drop(columns="time")
    indexed.index = pd.to_datetime(MS, unit="ms")
    upper = frame(ISO).rename(columns=str.upper)
    aware = frame(pd.to_datetime(MS, unit="ms", utc=True).tz_convert("Asia/Shanghai"))
    return {
        "csv": csv_path,
        "csv_str": str(csv_path),
        "frame_ms": frame(MS),
        "frame_iso": frame(ISO),
        "frame_upper_case_columns": upper,
        "frame_datetime64": frame(pd.to_datetime(MS, unit="ms")),
        "frame_tz_aware": aware,
        "frame_datetime_index": indexed,
        "dict_of_arrays": {
            "time": np.array(MS),
            **{c: np.array(v) for c, v in zip(COLS, np.array(OHLCV).T, strict=True)},
        },
        "dict_datetime64": {
            "time": np.array(MS, dtype="datetime64[ms]"),
            **{c: [r[k] for r in OHLCV] for k, c in enumerate(COLS)},
        },
        "structured_array": structured,
        "array_n_by_6": np.array(rows, dtype=np.float64),
        "tuples_ms": rows,
        "tuples_iso": [(t, *r) for t, r in zip(ISO, OHLCV, strict=True)],
        "tuples_datetime": [(t, *r) for t, r in zip(DATETIMES, OHLCV, strict=True)],
        "ccxt_lists": [[t, *r] for t, r in zip(MS, OHLCV, strict=True)],
        "generator": (row for row in rows),
        "bars": expected(),
    }


def test_every_input_form_gives_the_same_bars(tmp_path: Path) -> None:
    want = expected()
    for name, data in input_forms(tmp_path).items():
        got = to_bars(data)
        if name == "frame_tz_aware":
            assert got.tz == "Asia/Shanghai", "a zone-aware column's zone is the output zone"
            got = to_bars(got, tz="UTC")
        assert got == want, name
        assert got.time.dtype == np.int64 and got.close.dtype == np.float64, name
        assert len(got) == 3


def test_real_csv_equals_the_same_file_through_pandas() -> None:
    bars = load_csv(BTC)
    assert len(bars) == 1968
    assert format_time(bars.time[0]) == "2014-06-23T22:00:00Z"
    assert format_time(bars.time[-1]) == "2014-08-03T23:00:00Z"
    assert to_bars(pd.read_csv(BTC)) == bars
    assert to_bars(pd.read_csv(BTC, parse_dates=["time"])) == bars
    assert to_bars(list(bars.rows())) == bars


def test_bars_are_read_only_columns() -> None:
    bars = expected()
    with pytest.raises(ValueError):
        bars.close[0] = 1.0
    with pytest.raises(AttributeError):
        bars.close = np.zeros(3)  # type: ignore[misc]
    source = np.array(MS, dtype=np.int64)
    Bars(source, *np.array(OHLCV).T)
    source[0] = 5  # the caller's array stays writable
    with pytest.raises(DataError) as e:
        Bars(np.array(MS), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    assert e.value.column == "open"
    assert repr(expected()) == "Bars(3 bars, 2024-01-01T00:00:00Z .. 2024-01-01T01:00:00.500Z)"


def test_prices_are_not_validated_here() -> None:
    bars = to_bars([(MS[0], "NaN", -1, 0, "inf", -5)])
    assert np.isnan(bars.open[0]) and bars.high[0] == -1 and np.isinf(bars.close[0])
    assert len(to_bars([])) == 0, "an empty series is the engines' to reject"


def test_in_memory_errors_name_the_row_and_column() -> None:
    t0, t1 = MS[0], MS[1]
    with pytest.raises(DataError) as e:
        to_bars([(t0, 1, 1, 1, 1, 1), (t1, 1, 1, 1, 1)])
    assert e.value.index == 1
    with pytest.raises(DataError) as e:
        to_bars([(t0, 1, 1, 1, 1, 1), (t1, "x", 1, 1, 1, 1)])
    assert (e.value.index, e.value.column) == (1, "open")
    assert str(e.value) == "bars: row 1: open: not a number: 'x'"
    with pytest.raises(DataError) as e:
        to_bars([("2024-01-01", 1, 1, 1, 1, 1), ("2024-13-01", 1, 1, 1, 1, 1)])
    assert (e.value.index, e.value.column) == (1, "time")
    assert "'2024-13-01' is not a date or date-time" in e.value.reason
    with pytest.raises(DataError) as e:
        to_bars([(t0 + 0.5, 1, 1, 1, 1, 1)])
    assert e.value.column == "time" and "not a whole number" in e.value.reason
    with pytest.raises(DataError) as e:
        to_bars([(True, 1, 1, 1, 1, 1)])
    assert e.value.column == "time"
    with pytest.raises(DataError) as e:
        to_bars([(1, 1, 1, 1, 1, 1)])
    assert (e.value.index, e.value.column) == (0, "time"), "epoch 1 is no time: refused"
    assert e.value.hint is not None and "--time-unit" in e.value.hint
    assert to_bars([(1, 1, 1, 1, 1, 1)], time_unit="ms").time.tolist() == [1]
    with pytest.raises(DataError) as e:
        to_bars(pd.DataFrame({"time": [1], "open": [1.0]}))
    assert "missing columns high, low, close" in e.value.reason
    with pytest.raises(DataError) as e:
        to_bars(
            {
                "time": np.array(["2024-01-01", "NaT"], dtype="datetime64[ms]"),
                **{c: [1, 1] for c in COLS},
            }
        )
    assert e.value.index == 1 and "NaT" in e.value.reason
    with pytest.raises(DataError):
        to_bars(np.zeros((3, 5)))


def test_bar_values_for_sessions() -> None:
    assert bar_values(("2024-01-01", 1, 2, 0.5, 1.5, 10)) == (
        1_704_067_200_000,
        1.0,
        2.0,
        0.5,
        1.5,
        10.0,
    )
    assert bar_values({"Time": 5, "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 0}) == (
        5,
        1.0,
        2.0,
        0.5,
        1.5,
        0.0,
    )
    with pytest.raises(DataError) as e:
        bar_values({"time": 5, "open": 1})
    assert "high" in e.value.reason
    with pytest.raises(DataError) as e:
        bar_values((5, 1, "abc", 1, 1, 1))
    assert e.value.column == "high"
    with pytest.raises(DataError):
        bar_values((5, 1, 2))


# --- CSV ---------------------------------------------------------------------------------------


def with_rules(cases: list[tuple[Any, ...]], rules: list[str]) -> list[tuple[Any, ...]]:
    """Each case with its rule (docs/DATA.md, "Errors") as the last value."""
    return [(*case, rule) for case, rule in zip(cases, rules, strict=True)]


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "bars.csv"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "line", "column", "reason", "rule"),
    with_rules(
        [
            ("", 1, None, "empty file: no header line"),
            (
                "time,open,high,low\n2024-01-01,1,2,3\n",
                1,
                None,
                "missing column close (found: time, open, high, low); the names each field may "
                "have are in config/columns.yaml, or map it with --columns FIELD=NAME (Python: "
                "columns={'FIELD': 'NAME'})",
            ),
            (
                HEADER + "2024-01-01,1,2,0.5,1.5,10\nx,1,2,0.5,1.5,10\n",
                3,
                "time",
                "time 'x' is not a date or date-time this loader reads (ISO YYYY-MM-DD[ HH:MM[:SS"
                "[.fff]]] with an optional offset, YYYY/MM/DD, YYYYMMDD, or epoch numbers)",
            ),
            (
                HEADER + "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"
                "2024-01-03,1,abc,0.5,1.5,10\n",
                4,
                "high",
                "not a number: 'abc'",
            ),
            (
                HEADER + "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,,0.5,1.5,10\n",
                3,
                "high",
                "missing value (empty or null)",
            ),
            (HEADER + "2024-01-01,1_0,2,0.5,1.5,10\n", 2, "open", "not a number: '1_0'"),
            (
                HEADER + "2024-01-01,1,2,0.5,1.5\n",
                2,
                None,
                "found 5 fields, the header has 6",
            ),
            (
                HEADER + "2015-02-29,1,2,0.5,1.5,10\n",
                2,
                "time",
                "time '2015-02-29' is not a date or date-time this loader reads (ISO "
                "YYYY-MM-DD[ HH:MM[:SS[.fff]]] with an optional offset, YYYY/MM/DD, YYYYMMDD, or "
                "epoch numbers)",
            ),
            (
                HEADER + "9223372036854775808,1,2,0.5,1.5,10\n",
                2,
                "time",
                "time '9223372036854775808' is beyond the 64-bit range",
            ),
            (
                HEADER + "2024-01-01,1,2,0.5,1.5,10\n\n\n2024-01-02,1,2,0.5,x,10\n",
                5,
                "close",
                "not a number: 'x'",
            ),
        ],
        [
            "column_missing",
            "column_missing",
            "time_unparseable",
            "number",
            "number",
            "number",
            "row_shape",
            "time_unparseable",
            "time_unparseable",
            "number",
        ],
    ),
)
def test_bad_csv_names_the_line_and_column(
    tmp_path: Path, text: str, line: int, column: str | None, reason: str, rule: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        load_csv(path)
    assert (e.value.line, e.value.column, e.value.reason) == (line, column, reason)
    assert e.value.rule == rule
    assert e.value.source == str(path)
    assert str(e.value).startswith(f"{path}: line {line}: " if line else f"{path}: ")


def test_csv_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER.encode() + b"2024-01-01,1,2,0.5,1.5,10\n2024-01-02,\xff,2,0.5,1.5,10\n"
    )
    with pytest.raises(DataError) as e:
        load_csv(path)
    assert (e.value.rule, e.value.line) == ("encoding", None), "the rule names no line"
    assert "line 3" in e.value.reason


def test_csv_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "none.csv")


def test_csv_layout_is_lenient(tmp_path: Path) -> None:
    text = (
        "\ufeff Volume ,CLOSE,low,High,open,TIME,note\r\n"
        '10,1.5,0.5,2,1,2024-01-01,"a, b"\r\n'
        "\r\n"
        "1e3, 1.75 ,0.5,2,1, 2024-01-02T00:00:00Z ,x\r\n"
    )
    bars, lines = load_with_lines(write(tmp_path, text))
    assert bars.time.tolist() == [1_704_067_200_000, 1_704_153_600_000]
    assert bars.close.tolist() == [1.5, 1.75] and bars.volume.tolist() == [10.0, 1000.0]
    assert lines == [2, 4], "physical line numbers, blank lines counted"
    specials = to_bars(write(tmp_path, HEADER + "2024-01-01,inf,NaN,-inf,infinity,-0\n"))
    assert np.isinf(specials.open[0]) and np.isnan(specials.high[0])
    assert load_csv(write(tmp_path, HEADER)).time.size == 0


# --- Times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1990-12-19", 661_564_800_000),
        ("1990/12/19", 661_564_800_000),
        ("2015-01-05T01:31:00Z", 1_420_421_460_000),
        ("2015-01-05 01:31:00", 1_420_421_460_000),
        ("2015-01-05T01:31", 1_420_421_460_000),
        ("2015-01-05T09:31:00+08:00", 1_420_421_460_000),
        ("2015-01-04T21:31:00-0400", 1_420_421_460_000),
        ("2015-01-05T01:31:00-00:00", 1_420_421_460_000),
        ("2015-01-05T01:31:00.005Z", 1_420_421_460_005),
        ("2015-01-05t01:31:00z", 1_420_421_460_000),
        ("2015-01-05T01:31:00.123456789Z", 1_420_421_460_123),
        ("1969-12-31T23:59:59.9999Z", -1),
        # The engines' own forms: expanded years, and the number beyond chrono's range.
        ("+10000-01-01T00:00:00Z", 253_402_300_800_000),
        ("8210266876800000", 8_210_266_876_800_000),
        (" 12 ", 12),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


def test_parse_time_reads_naive_text_in_a_zone() -> None:
    assert parse_time("2015-01-05 09:31", "Asia/Shanghai") == 1_420_421_460_000
    assert parse_time("2015-01-05T09:31:00+08:00", "America/New_York") == 1_420_421_460_000


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2015-13-01", "2015-02-29", "", "2015-01-05T24:00:00", "1e3", "2015-1-5"],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_time(text)
    # "1e3" is a number (1000, as the Rust CLI reads it too), and no epoch time.
    assert repr(text) in str(e.value) or text == "" or (text == "1e3" and "1000" in str(e.value))


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-1000, "1969-12-31T23:59:59Z"),
        (661_564_800_000, "1990-12-19T00:00:00Z"),
        (1_420_421_460_005, "2015-01-05T01:31:00.005Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00Z"),
        (-62_135_596_800_001, "0000-12-31T23:59:59.999Z"),
        (-62_198_755_200_000, "-0001-01-01T00:00:00Z"),
        (253_402_300_800_000, "+10000-01-01T00:00:00Z"),
        (8_210_266_876_799_999, "+262142-12-31T23:59:59.999Z"),
        (8_210_266_876_800_000, "8210266876800000"),  # beyond chrono's range: the number
        (-8_334_601_228_800_000, "-262143-01-01T00:00:00Z"),
        (-8_334_601_228_800_001, "-8334601228800001"),
        (2**63 - 1, str(2**63 - 1)),
    ],
)
def test_format_time(ms: int, text: str) -> None:
    assert format_time(ms) == text


def test_format_and_parse_round_trip() -> None:
    rng = np.random.default_rng(7)
    # Years 1..9999, the range of text times.
    for ms in rng.integers(-62_135_596_800_000, 253_402_300_800_000, 2000).tolist():
        assert parse_time(format_time(ms)) == ms


def test_python_numpy_and_pandas_times() -> None:
    want = 1_420_421_460_000

    def one(t: object, tz: str | None = None) -> int:
        return int(to_bars([(t, 1.0, 2.0, 0.5, 1.5, 1.0)], tz=tz).time[0])

    assert one(dt.datetime(2015, 1, 5, 1, 31)) == want, "naive means UTC by default"
    assert one(dt.datetime(2015, 1, 5, 9, 31), "Asia/Shanghai") == want, "naive: wall time in tz"
    tz = dt.timezone(dt.timedelta(hours=8))
    assert one(dt.datetime(2015, 1, 5, 9, 31, tzinfo=tz)) == want
    assert one(dt.date(2015, 1, 5)) == 1_420_416_000_000
    assert one(np.datetime64("2015-01-05T01:31:00.000999")) == want, "floored to ms"
    assert one(np.datetime64("1969-12-31T23:59:59.999999")) == -1, "floor, not truncation"
    assert one(pd.Timestamp("2015-01-05 09:31", tz="Asia/Shanghai")) == want
    assert one(float(want)) == want
    for bad in (1.5, float("nan"), True, object()):
        with pytest.raises(DataError):
            one(bad)


# --- One loader for files: CSV and Parquet ------------------------------------------------------


def parquet(tmp_path: Path, columns: dict[str, object], name: str = "bars.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def ohlcv() -> dict[str, list[float]]:
    return {c: [r[k] for r in OHLCV] for k, c in enumerate(COLS)}


def same_bits(a: Bars, b: Bars) -> bool:
    return all(getattr(a, c).tobytes() == getattr(b, c).tobytes() for c in COLUMNS)


@pytest.mark.parametrize("csv", [BTC, SH, AAPL], ids=lambda p: p.stem)
@pytest.mark.parametrize("writer", ["pandas", "pyarrow"])
def test_parquet_written_from_a_real_csv_loads_the_same_bars(
    tmp_path: Path, csv: Path, writer: str
) -> None:
    path = tmp_path / f"{csv.stem}.parquet"
    if writer == "pandas":
        pd.read_csv(csv).to_parquet(path)
        time_type = pq.read_schema(path).field("time").type
        assert pa.types.is_string(time_type) or pa.types.is_large_string(time_type)
    else:
        pq.write_table(pyarrow.csv.read_csv(csv), path)
        time_type = pq.read_schema(path).field("time").type
        assert pa.types.is_timestamp(time_type) or pa.types.is_date32(time_type)
    want, lines = load_with_lines(csv)
    got, rows = load_with_lines(path)
    assert len(got) == len(want) > 1000
    assert same_bits(got, want), "every column, bit for bit"
    assert got.time.dtype == np.int64 and got.close.dtype == np.float64
    assert lines == list(range(2, len(want) + 2)), "CSV: the file's line"
    assert rows == list(range(1, len(want) + 1)), "Parquet: the 1-based row"
    assert same_bits(load(path), want) and same_bits(to_bars(str(path)), want)
    assert same_bits(load(csv), want)


def test_analyze_reads_a_parquet_path(tmp_path: Path) -> None:
    path = tmp_path / "btc.pq"
    pq.write_table(pyarrow.csv.read_csv(BTC), path)
    want = analyze(BTC, engine="python").to_dict()
    assert analyze(path, engine="python").to_dict() == want
    assert analyze(str(path), engine="rust").to_dict() == analyze(BTC, engine="rust").to_dict()


def aware(tz: str) -> pd.Series:
    return pd.Series(pd.to_datetime(MS, unit="ms", utc=True).tz_convert(tz))


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Shanghai", "America/New_York"])
def test_parquet_timestamps_of_any_unit_and_zone(tmp_path: Path, unit: str, tz: str | None) -> None:
    if tz is None:
        times = pa.array(np.array(MS, dtype="datetime64[ms]")).cast(pa.timestamp(unit))
    else:
        times = pa.Array.from_pandas(aware(tz)).cast(pa.timestamp(unit, tz))
    path = parquet(tmp_path, {"time": times, **ohlcv()})
    assert pq.read_schema(path).field("time").type == pa.timestamp(unit, tz)
    got = load(path)
    assert got.tz == (tz or "UTC"), "a zone-aware column's zone is the output zone"
    assert to_bars(got, tz="UTC") == expected(), "the same instants, whatever the zone"


@pytest.mark.parametrize(
    ("times", "ms"),
    [
        (pa.array([0, 60], pa.timestamp("s")), [0, 60_000]),
        (pa.array([-1, 1_999_999], pa.timestamp("ns")), [-1, 1]),  # floored, as chrono does
        (pa.array([-1, 1_999], pa.timestamp("us", "Asia/Tokyo")), [-1, 1]),
        # Two dates, newest first: reversed.
        (pa.array([dt.date(2024, 1, 1), dt.date(1969, 12, 31)], pa.date32()), [-86_400_000, MS[0]]),
        (
            pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], pa.date64()),
            [MS[0], MS[0] + 86_400_000],
        ),
        (pa.array(MS[:2], pa.int64()), MS[:2]),
        (pa.array(MS[:2], pa.uint64()), MS[:2]),
        (pa.array([float(t) for t in MS[:2]]), MS[:2]),
        (pa.array(ISO[1:]), MS[1:]),
        (pa.array(ISO[1:], pa.large_string()), MS[1:]),
        (pa.array(["2024-01-01", "2024-01-01"]).dictionary_encode(), [MS[0], MS[0]]),
        (pa.array(["2024-01-01T08:00:00+08:00", "2024-01-01"]), [MS[0], MS[0]]),
    ],
    ids=lambda v: str(v.type) if isinstance(v, pa.Array) else None,
)
def test_parquet_time_types(tmp_path: Path, times: pa.Array, ms: list[int]) -> None:
    cols = {c: [1.0, 2.0] for c in COLS}
    assert load(parquet(tmp_path, {"time": times, **cols})).time.tolist() == ms


@pytest.mark.parametrize(
    "names",
    [
        ("time", "open", "high", "low", "close", "volume"),
        ("Timestamp", "OPEN", "High", "low", "Close", "VOLUME"),
        ("datetime", "open", "high", "low", "close", "volume"),
        ("DATE", "Open", "HIGH", "Low", "cLoSe", "Volume"),
    ],
)
def test_parquet_column_names_any_case_aliases_any_order(
    tmp_path: Path, names: tuple[str, ...]
) -> None:
    values = {names[0]: MS, **dict(zip(names[1:], ohlcv().values(), strict=True))}
    shuffled = {"note": ["a", "b", "c"], **dict(reversed(list(values.items())))}
    assert load(parquet(tmp_path, shuffled)) == expected()


def test_parquet_with_the_datetime_index_pandas_stored(tmp_path: Path) -> None:
    df = pd.DataFrame(ohlcv(), index=pd.to_datetime(MS, unit="ms"))
    path = tmp_path / "indexed.parquet"
    df.to_parquet(path)
    assert "time" not in pq.read_schema(path).names
    assert load(path) == expected() == to_bars(df)


def test_parquet_without_rows_is_an_empty_series(tmp_path: Path) -> None:
    path = parquet(tmp_path, {"time": pa.array([], pa.int64()), **{c: [] for c in COLS}})
    assert len(load(path)) == 0, "as a CSV with only its header: the engines reject it"


@pytest.mark.parametrize(
    ("columns", "row", "column", "reason", "rule"),
    with_rules(
        [
            (
                {"time": MS, "open": [1.0] * 3, "high": [2.0] * 3},
                None,
                None,
                "missing columns low, close (found: time, open, high); the names each field may "
                "have are in config/columns.yaml, or map it with --columns FIELD=NAME (Python: "
                "columns={'FIELD': 'NAME'})",
            ),
            (
                {"when": MS, **ohlcv()},
                None,
                None,
                "missing column time (found: when, open, high, low, close, volume); the names each "
                "field may have are in config/columns.yaml, or map it with --columns FIELD=NAME "
                "(Python: columns={'FIELD': 'NAME'})",
            ),
            (
                {"time": ["2024-01-01", "2024-01-02", "yesterday"], **ohlcv()},
                3,
                "time",
                "time 'yesterday' is not a date or date-time this loader reads (ISO "
                "YYYY-MM-DD[ HH:MM[:SS[.fff]]] with an optional offset, YYYY/MM/DD, YYYYMMDD, or "
                "epoch numbers)",
            ),
            (
                {"time": MS, **ohlcv(), "high": ["11", "12", "abc"]},
                3,
                "high",
                "not a number: 'abc'",
            ),
            (
                {"time": MS, **ohlcv(), "close": [1.0, None, 2.0]},
                2,
                "close",
                "missing value (empty or null)",
            ),
            (
                {"time": pa.array([MS[0], None, MS[2]], pa.timestamp("ms")), **ohlcv()},
                2,
                "time",
                "missing time (empty or null)",
            ),
            (
                {"time": [float(MS[0]), MS[1] + 0.5, float(MS[2])], **ohlcv()},
                2,
                "time",
                f"time {MS[1] + 0.5!r} is not a whole number",
            ),
            (
                {"time": [True, False, True], **ohlcv()},
                None,
                "time",
                "cannot read times from a column of bool",
            ),
        ],
        [
            "column_missing",
            "column_missing",
            "time_unparseable",
            "number",
            "number",
            "time_unparseable",
            "time_unparseable",
            "column_type",
        ],
    ),
    ids=["missing", "no-time", "time", "price", "null-price", "null-time", "fraction", "bool"],
)
def test_bad_parquet_names_the_file_row_and_column(
    tmp_path: Path,
    columns: dict[str, object],
    row: int | None,
    column: str | None,
    reason: str,
    rule: str,
) -> None:
    path = parquet(tmp_path, columns)
    with pytest.raises(DataError) as e:
        load(path)
    assert (e.value.row, e.value.column, e.value.reason, e.value.rule) == (
        row,
        column,
        reason,
        rule,
    )
    assert e.value.source == str(path) and e.value.line is None and e.value.index is None
    where = "".join(f"{p}: " for p in (f"row {row}" if row else None, column) if p)
    hint = f" ({e.value.hint})" if e.value.hint else ""
    assert str(e.value) == f"{path}: {where}{reason}{hint}"
    again = pickle.loads(pickle.dumps(e.value))
    assert (str(again), again.row) == (str(e.value), row)


def test_empty_or_foreign_files_are_not_parquet(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as e:
        load(empty)
    assert str(e.value) == f"{empty}: empty file (0 bytes), not a Parquet file"
    foreign = tmp_path / "bars.parquet"
    foreign.write_bytes(BTC.read_bytes())
    with pytest.raises(DataError) as e:
        load(foreign)
    assert str(e.value).startswith(f"{foreign}: not a Parquet file (Parquet magic bytes not found")
    whole = parquet(tmp_path, {"time": MS, **ohlcv()}, "whole.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as e:
        load(cut)
    assert e.value.source == str(cut) and e.value.reason.startswith("not a Parquet file (")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "none.parquet")


@pytest.mark.parametrize("name", ["bars.json", "bars", "bars.csv.gz", "bars.xlsx"])
def test_unknown_extensions_are_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HEADER + "2024-01-01,1,2,0.5,1.5,10\n", encoding="utf-8")
    suffix = path.suffix
    what = f"extension {suffix!r}" if suffix else "no extension"
    message = (
        f"{path}: unknown file type ({what}): expected .csv, .tsv or .txt (delimited text), "
        ".parquet or .pq (Parquet)"
    )
    for read in (load, load_with_lines, to_bars, file_format):
        with pytest.raises(DataError) as e:
            read(path)
        assert str(e.value) == message
    assert len(load_csv(path)) == 1, "load_csv reads CSV whatever the name"


def test_extensions_in_any_case(tmp_path: Path) -> None:
    text = HEADER + "".join(
        f"{t},{','.join(map(str, r))}\n" for t, r in zip(ISO, OHLCV, strict=True)
    )
    for name in ("bars.txt", "BARS.CSV", "bars.tsv"):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert load_with_lines(tmp_path / name) == (expected(), [2, 3, 4])
        assert file_format(tmp_path / name) == "text"
    path = parquet(tmp_path, {"time": MS, **ohlcv()}, "BARS.PQ")
    assert load(path) == expected() and file_format(str(path)) == "parquet"


def test_in_memory_errors_name_missing_columns_and_short_rows() -> None:
    df = pd.DataFrame({"Time": MS, "open": [1.0] * 3, "Close": [1.0] * 3})
    with pytest.raises(DataError) as e:
        to_bars(df)
    assert str(e.value).startswith(
        "DataFrame: missing columns high, low (found: Time, open, Close); the names each field "
        "may have are in config/columns.yaml"
    )
    indexed = pd.DataFrame(ohlcv(), index=pd.to_datetime(MS, unit="ms")).drop(columns="volume")
    bars = to_bars(indexed)
    assert bars.time.tolist() == MS, "the index is the time"
    assert bars.notices == ["volume: the source has no volume column; every volume is 0"]
    with pytest.raises(DataError) as e:
        to_bars({f"c{i}": [1] for i in range(30)})
    assert (
        "found: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, "
        "c13, c14, c15, c16, c17, c18, c19, … (30 in all))" in e.value.reason
    )
    ccxt = [[t, *r] for t, r in zip(MS, OHLCV, strict=True)]
    short = [*ccxt[:2], ccxt[2][:5]]
    with pytest.raises(DataError) as e:
        to_bars(short)
    assert e.value.index == 2
    assert str(e.value) == (
        "bars: row 2: a bar must be (time, open, high, low, close, volume), got 5 values"
    )
    with pytest.raises(DataError) as e:
        to_bars([ccxt[0], "1,2,3,4,5,6"])
    assert str(e.value) == (
        "bars: row 1: a bar must be (time, open, high, low, close, volume), got a str"
    )


# --- The command line on Parquet files ---------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("no_environment_overrides")
@pytest.mark.parametrize("engine", ["rust", "python"])
def test_cli_analyzes_a_parquet_file_as_its_csv(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "btc.parquet"
    pq.write_table(pyarrow.csv.read_csv(BTC), path)
    code, from_csv, err = cli(capsys, "analyze", str(BTC), "--engine", engine)
    assert (code, err) == (0, "")
    code, from_parquet, err = cli(capsys, "analyze", str(path), "--engine", engine)
    assert (code, err) == (0, "")
    assert from_parquet.splitlines()[0] == f"{path}  ({engine} engine)"
    assert (
        from_parquet.splitlines()[1] == "  1968 bars (2014-06-23T22:00:00Z .. 2014-08-03T23:00:00Z)"
    )
    assert from_parquet.splitlines()[1:] == from_csv.splitlines()[1:]
    assert len(from_csv.splitlines()) > 20


@pytest.mark.usefixtures("no_environment_overrides")
def test_cli_names_the_row_of_a_bad_bar_in_a_parquet_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sh = tmp_path / "sh.parquet"
    pq.write_table(pyarrow.csv.read_csv(SH), sh)
    bars = load(sh)
    assert np.nonzero(bars.high < bars.low)[0].tolist() == [378]
    code, out, err = cli(capsys, "analyze", str(sh), "--engine", "python")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"error: {sh}: 16 bar rule violation(s); nothing was analyzed:"
    assert "  row 379: bar 378: high 1135.6 is below max(open, close) 1171.75 " in err
    assert (
        "  row 98: bar 97: low 109.31 is above min(open, close) 109.29 [field low, rule low_range]"
        in lines
    )
    assert not any(line.lstrip().startswith("line ") for line in lines)
    _, _, from_csv = cli(capsys, "analyze", str(SH), "--engine", "python")
    assert "  line 380: bar 378: high 1135.6 is below max(open, close) 1171.75 " in from_csv

    # A small file with high < low in its third row.
    small = parquet(
        tmp_path,
        {"time": MS, **ohlcv(), "high": [11.0, 12.0, 10.0], "low": [9.5, 10.25, 11.5]},
        "small.parquet",
    )
    code, out, err = cli(capsys, "analyze", str(small), "--engine", "rust")
    assert (code, out) == (2, "")
    bad = [line for line in err.splitlines() if line.startswith("  ")]
    assert bad and all(line.startswith("  row 3: bar 2: ") for line in bad), err


@pytest.mark.usefixtures("no_environment_overrides")
def test_cli_bad_parquet_exits_2_naming_the_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = parquet(tmp_path, {"time": MS, **ohlcv(), "low": ["9.5", "x", "11"]})
    out_file = tmp_path / "out.json"
    code, out, err = cli(
        capsys, "analyze", str(path), "--engine", "python", "--json", str(out_file)
    )
    assert (code, out) == (2, "")
    assert err == f"error: reading {path}: row 2: low: not a number: 'x'\n"
    assert not out_file.exists()
    other = tmp_path / "bars.json"
    other.write_text("[]", encoding="utf-8")
    code, out, err = cli(capsys, "analyze", str(other), "--engine", "python")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: reading {other}: unknown file type (extension '.json')")
