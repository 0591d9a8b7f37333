"""The loader on real files of every shape (tests/data/loader, SOURCES.md there): each loads to
the same bars as its canonical slice; each ambiguous or broken file is refused with an error
naming the column, the line, the value and how to say what it is."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_system import analyze, progress
from trading_system.cli import main, parser
from trading_system.cli.analyze import read_and_analyze
from trading_system.data import Bars, load, load_with_lines, to_bars
from trading_system.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "tests" / "data" / "loader"
HEADER = "time,open,high,low,close,volume\n"


def canonical(name: str) -> Path:
    return (
        FILES
        / {
            "aapl": "aapl_1d.csv",
            "sh": "sh_1d.csv",
            "btc": "btc_30m.csv",
            "600000": "600000.SH_1d_head40.csv",
        }[name]
    )


SHAPES = {
    # file: (canonical, notice expected (a fragment) or None)
    "aapl_yahoo.csv": ("aapl", None),
    "sh_akshare.csv": ("sh", None),
    "sh_akshare_gbk.csv": ("sh", "read as GB18030"),
    "sh_tushare.csv": ("sh", "newest first"),
    "sh_semicolon.csv": ("sh", None),
    "sh_1d.tsv": ("sh", None),
    "sh_pipe.txt": ("sh", None),
    "sh_newest_first.csv": ("sh", "newest first"),
    "sh_yyyymmdd.csv": ("sh", None),
    "600000_slashes.csv": ("600000", None),
    "btc_epoch_s.csv": ("btc", "epoch seconds"),
    "btc_epoch_ms.csv": ("btc", "epoch milliseconds"),
    "btc_offset_0400.csv": ("btc", None),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_loads_the_canonical_bars(name: str) -> None:
    base, notice = SHAPES[name]
    want = load(canonical(base))
    got = load(FILES / name)
    assert len(got) == len(want) == 40
    assert got == want, name
    assert want.notices == []
    if notice is None:
        assert got.notices == []
    else:
        assert any(notice in n for n in got.notices), got.notices


def test_a_file_without_volume_has_zero_volume_and_says_so() -> None:
    want = load(canonical("sh"))
    got = load(FILES / "sh_no_volume.csv")
    assert got.time.tolist() == want.time.tolist() and got.close.tolist() == want.close.tolist()
    assert got.volume.tolist() == [0.0] * 40
    assert got.notices == ["volume: the source has no volume column; every volume is 0"]


def test_a_zone_aware_parquet_keeps_its_zone() -> None:
    got = load(FILES / "sh_shanghai.parquet")
    assert got.tz == "Asia/Shanghai", "the column's zone is the output zone"
    assert got == load(canonical("sh"), tz="Asia/Shanghai")
    # The first day, 1990-12-19 00:00 in Shanghai, is 16:00 UTC the day before: not a day early
    # once shown in its zone.
    first = pd.Timestamp(int(got.time[0]), unit="ms", tz="UTC").tz_convert(got.tz)
    assert first.isoformat() == "1990-12-19T00:00:00+08:00"
    assert load(FILES / "sh_shanghai.parquet", tz="UTC").tz == "UTC", "--tz wins"


def test_tz_reads_naive_times_as_wall_times() -> None:
    utc = load(canonical("btc"))
    ny = load(canonical("btc"), tz="America/New_York")
    # The Z times carry their offset: the zone changes only the output.
    assert ny.time.tolist() == utc.time.tolist() and ny.tz == "America/New_York"
    daily = load(canonical("sh"), tz="Asia/Shanghai")
    assert (load(canonical("sh")).time - daily.time).tolist() == [8 * 3_600_000] * 40


def test_the_columns_option_maps_any_name(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    rows = canonical("sh").read_text(encoding="utf-8").splitlines()[1:]
    path.write_text("when,o,h,l,c,turnover\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load(path)
    assert "missing column time" in e.value.reason and "--columns" in e.value.reason
    got = load(path, columns={"time": "when", "volume": "turnover"})
    assert got == load(canonical("sh"))
    assert load(path, columns="time=WHEN,volume=turnover") == got, "names as the table matches"
    with pytest.raises(DataError) as e:
        load(path, columns={"time": "date"})
    assert "no column named 'date' for time" in e.value.reason
    with pytest.raises(DataError) as e:
        load(path, columns={"price": "c"})
    assert "unknown field 'price'" in str(e.value)


def test_adj_close_is_read_only_when_asked_for() -> None:
    yahoo = FILES / "aapl_yahoo.csv"
    want = load(canonical("aapl"))
    assert load(yahoo).close.tolist() == want.close.tolist()
    adjusted = load(yahoo, columns={"close": "Adj Close"})
    assert adjusted.close.tolist() == [round(c * 0.25, 6) for c in want.close.tolist()]


# --- Refused, with the column, the line, the value and the fix ---------------------------------


def text_file(tmp_path: Path, header: str, rows: list[str], name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def sh_rows(times: list[str] | None = None) -> list[str]:
    rows = canonical("sh").read_text(encoding="utf-8").splitlines()[1:]
    if times is None:
        return rows
    return [",".join([t, *r.split(",")[1:]]) for t, r in zip(times, rows, strict=False)]


def refused(path: Path, **options: object) -> DataError:
    with pytest.raises(DataError) as e:
        load(path, **options)  # type: ignore[arg-type]
    assert e.value.source == str(path)
    return e.value


def test_two_time_columns_are_ambiguous(tmp_path: Path) -> None:
    rows = [f"{r.split(',')[0]},09:30,{','.join(r.split(',')[1:])}" for r in sh_rows()]
    path = text_file(tmp_path, "date,time,open,high,low,close,volume\n", rows)
    e = refused(path)
    assert "'date' and 'time' all name time: ambiguous" in e.reason
    assert "--columns time=NAME" in e.reason
    assert len(load(path, columns={"time": "date"})) == 40


def test_epoch_numbers_out_of_range_ask_for_the_unit(tmp_path: Path) -> None:
    # 1960: negative epoch seconds, no unit puts it in 1971..2100.
    times = [str(-315_619_200 + 86_400 * i) for i in range(40)]
    path = text_file(tmp_path, HEADER, sh_rows(times))
    e = refused(path)
    assert (e.line, e.column) == (2, "time")
    assert e.reason.startswith("time -315619200 is no YYYYMMDD date and, read as epoch seconds")
    assert e.hint is not None and "--time-unit" in e.hint
    assert "--time-unit s|ms|us|ns|date" in str(e)
    got = load(path, time_unit="s")
    assert pd.Timestamp(int(got.time[0]), unit="ms").year == 1960 and got.notices == []


def test_mixed_epoch_units_are_refused(tmp_path: Path) -> None:
    times = [str(1_403_560_800 + 1800 * i) for i in range(40)]
    times[7] = str(int(times[7]) * 1000)
    path = text_file(tmp_path, HEADER, sh_rows(times))
    e = refused(path)
    assert (e.line, e.column) == (9, "time")
    assert "reads as epoch milliseconds but row 2" in e.reason and "as epoch seconds" in e.reason
    assert e.hint is not None and "--time-unit" in e.hint


def test_invalid_dates_name_their_line(tmp_path: Path) -> None:
    times = [f"1991{1 + i // 28:02d}{1 + i % 28:02d}" for i in range(40)]
    times[30] = "19910230"
    e = refused(text_file(tmp_path, HEADER, sh_rows(times)))
    assert (e.line, e.column) == (32, "time")
    assert "19910230" in e.reason
    iso = [f"1991-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(40)]
    iso[5] = "1991-02-30"
    e = refused(text_file(tmp_path, HEADER, sh_rows(iso), "iso.csv"))
    assert (e.line, e.column) == (7, "time")
    assert e.reason.startswith("time '1991-02-30' is not a date or date-time")


def test_a_number_among_dates_is_refused(tmp_path: Path) -> None:
    times = [r.split(",")[0] for r in sh_rows()]
    times[3] = "662688000"
    e = refused(text_file(tmp_path, HEADER, sh_rows(times)))
    assert (e.line, e.column) == (5, "time") and "a number among dates" in e.reason


def test_a_wall_time_the_zone_skips_is_refused(tmp_path: Path) -> None:
    # 2014-03-09 02:30 does not exist in New York (clocks went from 02:00 to 03:00).
    times = [f"2014-03-09 0{i // 60}:{i % 60:02d}" for i in range(0, 200, 5)]
    path = text_file(tmp_path, HEADER, sh_rows(times))
    e = refused(path, tz="America/New_York")
    assert e.column == "time" and e.line == 2 + 24
    assert "'2014-03-09 02:00' does not exist or happens twice in America/New_York" in e.reason
    assert e.hint is not None and "--tz" in e.hint
    assert len(load(path)) == 40, "in UTC every wall time exists"


@pytest.mark.parametrize(
    ("row", "line", "column", "reason"),
    [
        ("1991-03-01,1,abc,0.5,1.5,10", 42, "high", "not a number: 'abc'"),
        ("1991-03-01,1,2,,1.5,10", 42, "low", "missing value (empty or null)"),
        ("1991-03-01,1,2,0.5,1.5", 42, None, "found 5 fields, the header has 6"),
        (",1,2,0.5,1.5,10", 42, "time", "missing time (empty or null)"),
    ],
)
def test_broken_rows_name_line_and_column(
    tmp_path: Path, row: str, line: int, column: str | None, reason: str
) -> None:
    e = refused(text_file(tmp_path, HEADER, [*sh_rows(), row]))
    assert (e.line, e.column, e.reason) == (line, column, reason)


def test_neither_utf8_nor_gb18030_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER.encode() + b"1991-01-01,1,2,0.5,1.5,10\n1991-01-02,\xff\xff,2,1,1,1\n")
    e = refused(path)
    assert (e.rule, e.line, e.field) == ("encoding", None, None), "the rule names no line"
    assert "neither UTF-8 nor GB18030" in e.reason and "line 3" in e.reason


def test_missing_columns_list_what_the_file_has(tmp_path: Path) -> None:
    path = text_file(tmp_path, "time,open,high,low,volume\n", ["1991-01-01,1,2,0.5,10"])
    e = refused(path)
    assert e.reason.startswith(
        "missing column close (found: time, open, high, low, volume); the names each field may "
        "have are in config/columns.yaml, or map it with --columns"
    )


# --- The command line and the API -------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("no_environment_overrides")
def test_cli_prints_notices_on_stderr_and_reads_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "analyze", str(FILES / "sh_tushare.csv"), "--engine", "python")
    assert code == 0 and "40 bars" in out
    assert err == "notice: time: the rows are newest first; they were reversed (oldest first)\n"
    code, _, err = cli(capsys, "analyze", str(FILES / "btc_epoch_s.csv"))
    assert code == 0 and "read as epoch seconds" in err
    rows = [f"{r.split(',')[0]},x,{','.join(r.split(',')[1:])}" for r in sh_rows()]
    odd = text_file(tmp_path, "date,time,open,high,low,close,volume\n", rows)
    code, out, err = cli(capsys, "analyze", str(odd))
    assert (code, out) == (2, "") and "--columns" in err
    code, _, err = cli(
        capsys, "analyze", str(odd), "--columns", "time=date", "--tz", "Asia/Shanghai"
    )
    assert (code, err) == (0, "")
    parquet = str(FILES / "sh_shanghai.parquet")
    bars, a = read_and_analyze(parser().parse_args(["analyze", parquet]), False)
    assert bars.tz == "Asia/Shanghai" == a.tz, "no --tz: the column's zone"  # pyright: ignore
    bars, _ = read_and_analyze(parser().parse_args(["analyze", parquet, "--tz", "UTC"]), False)
    assert bars.tz == "UTC"
    code, _, err = cli(capsys, "analyze", str(odd), "--tz", "Mars/Olympus")
    assert code == 2 and "unknown time zone 'Mars/Olympus'" in err
    code, _, err = cli(capsys, "analyze", str(FILES / "btc_epoch_s.csv"), "--time-unit", "date")
    assert code == 2 and "line 2: time: time 1403560800 is not a YYYYMMDD date" in err
    code, out, err = cli(capsys, "analyze", str(FILES / "btc_epoch_s.csv"), "--time-unit", "ms")
    assert (code, err) == (0, ""), "what the user says goes, within years 1..9999"
    assert "1970-01-17" in out


@pytest.mark.usefixtures("no_environment_overrides")
def test_cli_lists_at_most_20_bad_bars(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 25 bars with high below low: 50 violations (high and low each on the wrong side).
    rows = [f"1991-01-{d:02d},1,0.5,2,1,10" for d in range(1, 26)]
    code, out, err = cli(capsys, "analyze", str(text_file(tmp_path, HEADER, rows)))
    assert (code, out) == (2, "")
    listed = [line for line in err.splitlines() if line.startswith("  line ")]
    assert len(listed) == 20 and listed[0].startswith("  line 2: bar 0: ")
    assert "  … and 30 more" in err.splitlines()


def test_disorder_is_left_to_the_engines(tmp_path: Path) -> None:
    rows = sh_rows()
    rows[10], rows[11] = rows[11], rows[10]
    path = text_file(tmp_path, HEADER, rows)
    bars, lines = load_with_lines(path)
    assert bars.notices == [] and lines[11] == 13
    with pytest.raises(Exception, match="not after the previous bar"):
        analyze(bars, engine="python")


def test_api_reads_with_options_and_keeps_the_zone() -> None:
    df = pd.read_csv(FILES / "sh_tushare.csv")
    a = analyze(df, engine="rust", tz="Asia/Shanghai")
    assert a.tz == "Asia/Shanghai" and a.bars == 40  # pyright: ignore[reportAttributeAccessIssue]
    utc = analyze(FILES / "btc_30m.csv", engine="python")
    assert utc.tz == "UTC"  # pyright: ignore[reportAttributeAccessIssue]


def test_yfinance_frames_by_their_index_and_field_level() -> None:
    want = load(canonical("aapl"))
    df = pd.read_csv(FILES / "aapl_yahoo.csv", index_col="Date", parse_dates=True)
    assert to_bars(df) == want, "the Date index is the time"
    df.columns = pd.MultiIndex.from_product([df.columns, ["AAPL"]], names=["Price", "Ticker"])
    assert to_bars(df) == want, "yfinance's (field, ticker) columns of one ticker"
    two = pd.concat([df, df.rename(columns={"AAPL": "MSFT"}, level=1)], axis=1)
    with pytest.raises(DataError, match="one instrument"):
        to_bars(two)


def test_lines_follow_a_reversed_file() -> None:
    bars, lines = load_with_lines(FILES / "sh_newest_first.csv")
    assert lines[0] == 41 and lines[39] == 2, "the oldest bar is on the last line"


def test_progress_is_off_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    items = [1, 2, 3]
    assert progress.iterate(items, 3, "x") is items
    with progress.busy("reading"):
        time.sleep(0.01)
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_after_the_delay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "enabled", lambda: True)
    monkeypatch.setattr(progress, "DELAY_S", 0.05)
    assert list(progress.iterate(iter(range(1000)), 1000, "analysis")) == list(range(1000))
    with progress.busy("reading bars.csv"):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "reading bars.csv: 00:00" in err


# --- Round trips through every format ---------------------------------------------------------

FORMATS = (
    "csv_iso",
    "csv_epoch_ms",
    "tsv_epoch_s",
    "semicolon_gbk",
    "parquet_ts",
    "parquet_int",
    "frame",
    "rows",
    "mapping",
    "newest_first",
)


def write_as(fmt: str, bars: Bars, folder: Path) -> object:
    t = pd.to_datetime(bars.time, unit="ms", utc=True)
    values = {c: getattr(bars, c) for c in ("open", "high", "low", "close", "volume")}
    df = pd.DataFrame({"time": t, **values})
    if fmt == "frame":
        return df
    if fmt == "mapping":
        return {"time": bars.time.copy(), **values}
    if fmt == "rows":
        return [list(r) for r in bars.rows()]
    if fmt.startswith("parquet"):
        path = folder / f"{fmt}.parquet"
        out = df if fmt == "parquet_ts" else df.assign(time=bars.time)
        pq.write_table(pa.Table.from_pandas(out, preserve_index=False), path)
        return path
    times = {
        "csv_iso": t.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z",
        "csv_epoch_ms": pd.Series(bars.time).astype(str),
        "tsv_epoch_s": pd.Series(bars.time // 1000).astype(str),
        "semicolon_gbk": pd.Series(t.strftime("%Y/%m/%d %H:%M:%S")),
        "newest_first": pd.Series(t.strftime("%Y-%m-%d %H:%M:%S")),
    }[fmt]
    frame = pd.DataFrame({"时间" if fmt == "semicolon_gbk" else "time": list(times), **values})
    if fmt == "newest_first":
        frame = frame.iloc[::-1]
    sep = {"tsv_epoch_s": "\t", "semicolon_gbk": ";"}.get(fmt, ",")
    path = folder / f"{fmt}.{'tsv' if sep == chr(9) else 'csv'}"
    frame.to_csv(
        path,
        sep=sep,
        index=False,
        float_format="%.17g",
        encoding="gbk" if fmt == "semicolon_gbk" else "utf-8",
    )
    return path


prices = st.floats(0.01, 1e6, allow_nan=False).map(lambda x: float(f"{x:.6g}"))


@st.composite
def series(draw: st.DrawFn) -> Bars:
    n = draw(st.integers(2, 30))
    start = draw(st.integers(40_000_000, 4_000_000_000)) * 1000  # whole seconds, 1971..2096
    steps = draw(st.lists(st.integers(1, 86_400), min_size=n - 1, max_size=n - 1))
    time = np.cumsum([start, *(s * 1000 for s in steps)]).astype(np.int64)
    o, h, lo, c, v = (np.array(draw(st.lists(prices, min_size=n, max_size=n))) for _ in range(5))
    return Bars(time, o, h, lo, c, v)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bars=series())
def test_random_series_round_trip_through_every_format(bars: Bars, tmp_path: Path) -> None:
    for fmt in FORMATS:
        got = to_bars(write_as(fmt, bars, tmp_path))
        assert got == bars, fmt
        assert got.time.dtype == np.int64 and got.close.dtype == np.float64


def test_datetime_objects_and_dates_in_rows() -> None:
    rows = [(dt.date(2024, 1, d), 1.0, 2.0, 0.5, 1.5, 1.0) for d in (1, 2)]
    bars = to_bars(rows, tz="Asia/Shanghai")
    assert bars.time.tolist() == [1_704_038_400_000, 1_704_124_800_000]
