"""Data input (trading_system.data): every input form gives the same Bars; CSV errors name the
line and the column; times are read and written exactly as the Rust engine does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trading_system.data import (
    Bars,
    bar_values,
    format_time,
    load_csv,
    load_csv_with_lines,
    parse_time,
    to_bars,
    to_ms,
)
from trading_system.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
BTC = ROOT / "tests" / "data" / "BTCUSD-BITSTAMP_30m.csv"
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
    bars = to_bars([(1, "NaN", -1, 0, "inf", -5)])
    assert np.isnan(bars.open[0]) and bars.high[0] == -1 and np.isinf(bars.close[0])
    assert len(to_bars([])) == 0, "an empty series is the engines' to reject"


def test_in_memory_errors_name_the_row_and_column() -> None:
    with pytest.raises(DataError) as e:
        to_bars([(1, 1, 1, 1, 1, 1), (2, 1, 1, 1, 1)])
    assert e.value.index == 1
    with pytest.raises(DataError) as e:
        to_bars([(1, 1, 1, 1, 1, 1), (2, "x", 1, 1, 1, 1)])
    assert (e.value.index, e.value.column) == (1, "open")
    assert str(e.value) == 'bars: row 1: open: not a number: "x"'
    with pytest.raises(DataError) as e:
        to_bars([(1, 1, 1, 1, 1, 1), ("2024-13-01", 1, 1, 1, 1, 1)])
    assert (e.value.index, e.value.column) == (1, "time")
    assert "unparsable time" in e.value.reason
    with pytest.raises(DataError) as e:
        to_bars([(1.5, 1, 1, 1, 1, 1)])
    assert e.value.column == "time"
    with pytest.raises(DataError) as e:
        to_bars([(True, 1, 1, 1, 1, 1)])
    assert e.value.column == "time"
    with pytest.raises(DataError) as e:
        to_bars(pd.DataFrame({"time": [1], "open": [1.0]}))
    assert "missing column" in e.value.reason and "high" in e.value.reason
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


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "bars.csv"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("", 1, None, 'missing column "time" (need time,open,high,low,close,volume)'),
        (
            "time,open,high,low,close\n1,1,2,3,4\n",
            1,
            None,
            'missing column "volume" (need time,open,high,low,close,volume)',
        ),
        (
            HEADER + "1,1,2,0.5,1.5,10\nx,1,2,0.5,1.5,10\n",
            3,
            "time",
            'unparsable time "x": expected epoch milliseconds, YYYY-MM-DD or an ISO-8601 date-time',
        ),
        (
            HEADER + "1,1,2,0.5,1.5,10\n2,1,2,0.5,1.5,10\n3,1,abc,0.5,1.5,10\n",
            4,
            "high",
            'not a number: "abc"',
        ),
        (HEADER + "1,1,2,0.5,1.5,10\n2,1,,0.5,1.5,10\n", 3, "high", 'not a number: ""'),
        (HEADER + "1,1_0,2,0.5,1.5,10\n", 2, "open", 'not a number: "1_0"'),
        (
            HEADER + "1,1,2,0.5,1.5\n",
            2,
            None,
            "unreadable CSV row: found 5 fields, the header has 6",
        ),
        (
            HEADER + "2015-02-29,1,2,0.5,1.5,10\n",
            2,
            "time",
            'unparsable time "2015-02-29": expected epoch milliseconds, YYYY-MM-DD or an '
            "ISO-8601 date-time",
        ),
        (
            HEADER + "9223372036854775808,1,2,0.5,1.5,10\n",
            2,
            "time",
            'bad epoch milliseconds "9223372036854775808": number too large to fit in target type',
        ),
        (HEADER + "1,1,2,0.5,1.5,10\n\n\n2,1,2,0.5,x,10\n", 5, "close", 'not a number: "x"'),
    ],
)
def test_bad_csv_names_the_line_and_column(
    tmp_path: Path, text: str, line: int, column: str | None, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        load_csv(path)
    assert (e.value.line, e.value.column, e.value.reason) == (line, column, reason)
    assert e.value.source == str(path)
    assert str(e.value).startswith(f"{path}: line {line}: ")


def test_csv_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode() + b"1,1,2,0.5,1.5,10\n2,\xff,2,0.5,1.5,10\n")
    with pytest.raises(DataError) as e:
        load_csv(path)
    assert e.value.line == 3


def test_csv_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "none.csv")


def test_csv_layout_is_as_lenient_as_the_rust_reader(tmp_path: Path) -> None:
    text = (
        "\ufeff Volume ,CLOSE,low,High,open,TIME,note\r\n"
        '10,1.5,0.5,2,1,2024-01-01,"a, b"\r\n'
        "\r\n"
        "1e3, 1.75 ,0.5,2,1,1704153600000,x\r\n"
    )
    bars, lines = load_csv_with_lines(write(tmp_path, text))
    assert bars.time.tolist() == [1_704_067_200_000, 1_704_153_600_000]
    assert bars.close.tolist() == [1.5, 1.75] and bars.volume.tolist() == [10.0, 1000.0]
    assert lines == [2, 4], "physical line numbers, blank lines counted"
    specials = to_bars(write(tmp_path, HEADER + "1,inf,NaN,-inf,infinity,-0\n"))
    assert np.isinf(specials.open[0]) and np.isnan(specials.high[0])
    assert load_csv(write(tmp_path, HEADER)).time.size == 0


# --- Times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1990-12-19", 661_564_800_000),
        ("2015-01-05T01:31:00Z", 1_420_421_460_000),
        ("2015-01-05 01:31:00", 1_420_421_460_000),
        ("2015-01-05T09:31:00+08:00", 1_420_421_460_000),
        ("2015-01-05T01:31:00-00:00", 1_420_421_460_000),
        ("1420421460000", 1_420_421_460_000),
        ("2015-01-05T01:31:00.005Z", 1_420_421_460_005),
        ("2015-01-05T01:31", 1_420_421_460_000),
        ("2015-01-05t01:31:00z", 1_420_421_460_000),
        ("2015-01-05T01:31:00.123456789123Z", 1_420_421_460_123),
        ("1969-12-31T23:59:59.9999Z", -1),
        ("-5", -5),
        ("00012", 12),
        (" 12 ", 12),
        # chrono's leniencies, as the Rust engine reads them:
        ("2015-01-05T23:59:60Z", 1_420_502_400_000),  # a leap second is one more second
        ("2015-1-5", 1_420_416_000_000),
        ("2015-01-05T1:2:3", 1_420_419_723_000),
        ("2015-01-05  01:31:00", 1_420_421_460_000),
        ("15-01-05", -61_693_488_000_000),  # the year 15
        ("+2015-01-05", 1_420_416_000_000),
        ("-0001-01-01", -62_198_755_200_000),
        ("2015-01-05T01:31:00\u221201:00", 1_420_425_060_000),  # U+2212 MINUS SIGN
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", 'unparsable time "yesterday"'),
        ("2015-13-01", 'unparsable time "2015-13-01"'),
        ("2015-02-29", 'unparsable time "2015-02-29"'),
        ("", 'unparsable time ""'),
        ("2015-01-05 01:31", 'unparsable time "2015-01-05 01:31"'),
        ("2015-01-05T01:31:00.", 'unparsable time "2015-01-05T01:31:00."'),
        ("2015-01-05T01:31:00+0800", 'unparsable time "2015-01-05T01:31:00+0800"'),
        ("2015-01-05T01:31:00+24:00", 'unparsable time "2015-01-05T01:31:00+24:00"'),
        ("2015-01-05T24:00:00", 'unparsable time "2015-01-05T24:00:00"'),
        ("99999-01-01", 'unparsable time "99999-01-01"'),
        ("1e3", 'unparsable time "1e3"'),
        ("+12", 'unparsable time "+12"'),
        ("x\u3000y", 'unparsable time "x\\u{3000}y"'),
        ("-", 'bad epoch milliseconds "-": invalid digit found in string'),
        ("9223372036854775808", 'bad epoch milliseconds "9223372036854775808": number too large'),
    ],
)
def test_parse_time_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_time(text)
    assert str(e.value).startswith(message)


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
    # Years 0..9999: chrono reads a signed year only without an offset, and "Z" is one.
    for ms in rng.integers(-62_167_219_200_000, 253_402_300_800_000, 2000).tolist():
        assert parse_time(format_time(ms)) == ms


def test_to_ms_of_python_numpy_and_pandas_times() -> None:
    want = 1_420_421_460_000
    assert to_ms(dt.datetime(2015, 1, 5, 1, 31)) == want, "naive means UTC"
    tz = dt.timezone(dt.timedelta(hours=8))
    assert to_ms(dt.datetime(2015, 1, 5, 9, 31, tzinfo=tz)) == want
    assert to_ms(dt.date(2015, 1, 5)) == 1_420_416_000_000
    assert to_ms(np.datetime64("2015-01-05T01:31:00.000999")) == want, "floored to ms"
    assert to_ms(np.datetime64("1969-12-31T23:59:59.999999")) == -1, "floor, not truncation"
    assert to_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_999)) == -1
    assert to_ms(pd.Timestamp("2015-01-05 09:31", tz="Asia/Shanghai")) == want
    assert to_ms(float(want)) == want
    for bad in (1.5, float("nan"), True, object()):
        with pytest.raises((ValueError, TypeError)):
            to_ms(bad)
