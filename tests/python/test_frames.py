"""Results as data (trading_system/frames.py, docs/DATA.md "Results out"): frames of real
analyses equal the document element by element, with the documented columns, dtypes and zone;
``trading-system analyze --out`` writes them as CSV and Parquet that read back to the same
values; printed times are in the series' zone, dates for daily series; a chart's time axis
reads the zone's local time in a real browser."""

from __future__ import annotations

import html as html_text
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from browser import headless

from trading_system import Bars, Session, analyze, chart, load_csv
from trading_system.api import EngineChoice
from trading_system.cli import main
from trading_system.cli.analyze import summary
from trading_system.data import COLUMNS
from trading_system.frames import FRAME_COLUMNS, KINDS, file_names
from trading_system.results import Analysis
from trading_system.times import TimeFormat, format_zoned, is_daily, wall_ms

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH_DAILY = DATA / "000001.SH_1d_head1200.csv"
AAPL = DATA / "AAPL_1d_head1200.csv"
SH_1M = DATA / "000001.SH_1m_head960.csv"
SHANGHAI = "Asia/Shanghai"
REPAIR = {"validation": {"repair": True}}

pytestmark = pytest.mark.usefixtures("no_environment_overrides")


# --- Frames equal the document -----------------------------------------------------------------


def _ms(t: pd.Timestamp) -> int:
    return int(t.as_unit("ms").asm8.astype(np.int64))


def _iso(t: pd.Timestamp) -> str:
    """A frame's time as the document writes it: ISO-8601 UTC."""
    from trading_system.data import format_time

    return format_time(_ms(t))


def _point(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "index": row[f"{prefix}_index"],
        "time": _iso(row[f"{prefix}_time"]),
        "price": row[f"{prefix}_price"],
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values (numpy scalars become ints, floats, bools)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(v: Any) -> Any:
    """A cell as a plain Python value: numpy scalars become ints, floats, bools; NA (nullable
    columns) becomes None."""
    if v is pd.NA:
        return None
    return v.item() if isinstance(v, np.generic) else v


def _null(x: float) -> float | None:
    """A float cell as the document shows it: NaN (absent) is null."""
    return None if math.isnan(x) else x


def _segment(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "direction": r["direction"],
        "start": _point(r, "start"),
        "end": _point(r, "end"),
        "first_pen": r["first_pen"],
        "last_pen": r["last_pen"],
        "confirmed": r["confirmed"],
        "gap": r["gap"],
    }


def _pivot(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "segment": r["segment"],
        "first_pen": r["first_pen"],
        "last_pen": r["last_pen"],
        **{k: r[k] for k in ("zd", "zg", "dd", "gg")},
        "start": _point(r, "start"),
        "end": _point(r, "end"),
        "confirmed": r["confirmed"],
    }


def _signal(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": r["type"],
        "side": r["side"],
        "pen": r["pen"],
        "index": r["index"],
        "time": _iso(r["time"]),
        "price": r["price"],
        "final": r["final"],
        "pivot": r["pivot"],
        "zd": r["zd"],
        "zg": r["zg"],
        **{k: _null(r[k]) for k in ("entering_strength", "leaving_strength", "ratio")},
        "follows": r["follows"],
        "edge": r["edge"],
    }


STRUCTURE = {
    "segments": ("segment", _segment),
    "pivots": ("pivot", _pivot),
    "signals": ("signal", _signal),
}
"""The kinds every degree has: the row-number column and the item of a row."""


def document_of(frames: dict[str, pd.DataFrame], top: int = 1) -> dict[str, Any]:
    """The document's lists rebuilt from the frames (the inverse of frames.py's flattening):
    degree-1 rows are the top-level lists, each higher degree's an entry of ``degrees``, one
    for every degree 2..``top`` or seen in the frames (a degree with no rows has no row to tell
    of it)."""
    doc: dict[str, Any] = {}
    doc["fractals"] = [
        {
            "kind": r["kind"],
            "merged_index": r["merged_index"],
            "index": r["index"],
            "time": _iso(r["time"]),
            "price": r["price"],
        }
        for r in _records(frames["fractals"])
    ]
    doc["pens"] = [
        {
            "direction": r["direction"],
            "start": _point(r, "start"),
            "end": _point(r, "end"),
            "final": r["final"],
        }
        for r in _records(frames["pens"])
    ]
    seen = [int(n) for kind in STRUCTURE for n in frames[kind]["degree"].to_numpy()]
    levels: dict[int, dict[str, Any]] = {
        n: {"degree": n, **{kind: [] for kind in STRUCTURE}}
        for n in range(1, max([top, *seen]) + 1)
    }
    for kind, (number, item) in STRUCTURE.items():
        for r in _records(frames[kind]):
            # Rows come degree by degree, each numbered from 0 as the document's list.
            rows = levels[r["degree"]][kind]
            assert r[number] == len(rows), (kind, r["degree"], r[number])
            rows.append(item(r))
    first = levels.pop(1)
    doc |= {kind: first[kind] for kind in STRUCTURE}
    doc["degrees"] = list(levels.values())
    return doc


def check_shape(frames: dict[str, pd.DataFrame], tz: str) -> None:
    """Every kind, in order, with exactly the documented columns and dtypes."""
    assert list(frames) == list(KINDS) == list(FRAME_COLUMNS)
    for kind, frame in frames.items():
        assert list(frame.columns) == list(FRAME_COLUMNS[kind]), kind
        assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
        for name, column in FRAME_COLUMNS[kind].items():
            dtype = frame[name].dtype
            if column.dtype == "time":
                assert isinstance(dtype, pd.DatetimeTZDtype), (kind, name, dtype)
                assert str(dtype.tz) == tz and dtype.unit == "ms", (kind, name, dtype)
            elif column.dtype == "string":
                assert isinstance(dtype, pd.StringDtype), (kind, name, dtype)
            elif column.dtype == "Int64":
                assert isinstance(dtype, pd.Int64Dtype), (kind, name, dtype)
            else:
                assert dtype == np.dtype(column.dtype), (kind, name, dtype)


@pytest.mark.parametrize("engine", ["rust", "python"])
@pytest.mark.parametrize("path", [BTC, SH_DAILY, AAPL, SH_1M], ids=lambda p: p.name)
def test_frames_equal_the_document(engine: EngineChoice, path: Path) -> None:
    bars = load_csv(path)
    a = analyze(bars, engine=engine, with_macd=True, overrides=REPAIR)
    frames = a.to_frames()
    check_shape(frames, "UTC")
    doc = a.to_dict()
    for kind in KINDS[1:]:
        one = frames[kind] if kind in ("fractals", "pens") else frames[kind].query("degree == 1")
        assert len(one) == len(doc[kind]) > 0, kind
        number = {"fractals": "fractal", "pens": "pen", "segments": "segment"}.get(kind)
        if number is not None:
            assert one[number].tolist() == list(range(len(doc[kind])))
    # The default structure.degrees is 2: degree 2's rows follow degree 1's.
    assert [d["degree"] for d in doc["degrees"]] == [2]
    assert frames["segments"]["degree"].tolist() == [1] * len(doc["segments"]) + [2] * len(
        doc["degrees"][0]["segments"]
    )
    assert document_of(frames, 2) == {k: doc[k] for k in (*KINDS[1:], "degrees")}

    b = frames["bars"]
    assert len(b) == doc["bars"] == len(bars)
    assert b["index"].tolist() == list(range(len(bars)))
    assert [_ms(t) for t in b["time"]] == bars.time.tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(b[name].to_numpy(), getattr(bars, name)), name
    for name in ("dif", "dea", "histogram"):
        want = [math.nan if v is None else v for v in doc["macd"][name]]
        assert np.array_equal(b[name].to_numpy(), np.array(want), equal_nan=True), name
    assert np.flatnonzero(b["repaired"].to_numpy()).tolist() == [r["index"] for r in doc["repairs"]]
    if path == SH_DAILY:
        assert np.count_nonzero(b["repaired"].to_numpy()) == 16  # the bad early bars


def test_frames_in_the_series_zone() -> None:
    """The same instants in the zone the analysis carries; the A-share session reads 09:31 to
    15:00 in Asia/Shanghai (stored as 01:31Z .. 07:00Z)."""
    bars = load_csv(SH_1M)
    utc = analyze(bars, with_macd=True).to_frames()
    a = analyze(bars, with_macd=True).in_zone(SHANGHAI)
    assert a.tz == SHANGHAI
    frames = a.to_frames()
    check_shape(frames, SHANGHAI)
    for kind in KINDS:
        for name, column in FRAME_COLUMNS[kind].items():
            if column.dtype == "time":
                assert frames[kind][name].dt.tz_convert("UTC").equals(utc[kind][name])
    times = frames["bars"]["time"]
    assert times.dt.strftime("%H:%M").min() == "09:31" and times.max().strftime("%H:%M") == "15:00"
    assert str(times.iloc[0]) == "2015-01-05 09:31:00+08:00"
    assert document_of(frames) == document_of(utc)


def test_empty_kinds_are_empty_frames_with_their_columns() -> None:
    bars = load_csv(BTC)
    few = analyze({c: getattr(bars, c)[:4] for c in COLUMNS})
    frames = few.in_zone(SHANGHAI).to_frames()
    check_shape(frames, SHANGHAI)
    assert len(frames["bars"]) == 4
    assert all(len(frames[k]) == 0 for k in KINDS[1:])


def test_frames_of_an_analysis_without_its_bars() -> None:
    """A session's state holds no bars: the bars frame keeps its rows and MACD, times and
    prices are missing until the bars are given."""
    bars = load_csv(BTC)
    s = Session(with_macd=True)
    for row in bars.rows():
        s.append(row)
    a = s.analysis()
    assert a.source_bars is None and a.tz == "UTC"
    alone = a.to_frames()
    check_shape(alone, "UTC")
    assert bool(alone["bars"]["time"].isna().all()) and bool(alone["bars"]["close"].isna().all())
    assert not bool(alone["bars"]["dif"].isna().all())
    given = a.to_frames(bars)
    batch = analyze(bars, with_macd=True).to_frames()
    for kind in KINDS:
        pd.testing.assert_frame_equal(given[kind], batch[kind], check_exact=True)
    with pytest.raises(ValueError, match="1968 bars, the bars given 10"):
        a.to_frames(Bars(*(getattr(bars, c)[:10] for c in COLUMNS)))


def test_a_document_read_back_keeps_no_zone_unless_told() -> None:
    a = analyze(BTC).in_zone(SHANGHAI)
    again = Analysis(text=a.to_json(), tz=SHANGHAI)
    assert again.to_frames()["pens"].equals(a.to_frames()["pens"])
    assert Analysis(text=a.to_json()).tz == "UTC"
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Shangai'"):
        Analysis(text=a.to_json(), tz="Asia/Shangai")


def test_the_documented_columns_are_frame_columns() -> None:
    """docs/DATA.md lists the columns of each kind: the same as FRAME_COLUMNS, in order."""
    text = (ROOT / "docs" / "DATA.md").read_text(encoding="utf-8")
    listed = {
        m.group(1): re.findall(r"`([a-z_]+)`", m.group(2))
        for m in re.finditer(r"^\| `([a-z]+)` \| (`.*`) \|$", text, flags=re.MULTILINE)
    }
    assert listed == {k: list(v) for k, v in FRAME_COLUMNS.items()}


# --- Higher degrees ----------------------------------------------------------------------------

THREE_DEGREES = {"structure": {"degrees": 3}}


def read_frames(directory: Path, fmt: str, tz: str) -> dict[str, pd.DataFrame]:
    """The frames of a directory :func:`write_frames` wrote, read back with their dtypes (a CSV
    cell is text: cast as FRAME_COLUMNS says)."""
    out = {}
    for kind, name in file_names(fmt).items():  # type: ignore[arg-type]
        if fmt == "parquet":
            out[kind] = pd.read_parquet(directory / name)
            continue
        text = pd.read_csv(directory / name, dtype=str, keep_default_na=False)
        columns: dict[str, Any] = {}
        for col, column in FRAME_COLUMNS[kind].items():
            cells = text[col]
            if column.dtype == "time":
                zoned = pd.to_datetime(cells, format="ISO8601", utc=True).dt.tz_convert(tz)
                columns[col] = zoned.astype(f"datetime64[ms, {tz}]")
            elif column.dtype == "bool":
                columns[col] = (cells == "true").astype(bool)
            elif column.dtype == "float64":
                columns[col] = pd.Series([float(x) if x else math.nan for x in cells], dtype=float)
            else:
                nullable = [pd.NA if x == "" else x for x in cells]
                dtype = {"int64": "int64", "Int64": "Int64", "string": "string"}[column.dtype]
                columns[col] = pd.Series(nullable, dtype="object").astype(dtype)
        out[kind] = pd.DataFrame(columns, index=pd.RangeIndex(len(text)))
    return out


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_frames_hold_every_degree(engine: EngineChoice) -> None:
    """BTC with ``structure.degrees: 3`` (degree 2 has segments, pivots and a point, degree 3
    a segment): the segments, pivots and signals frames hold each degree's rows after the
    degree below's, numbered from 0 within the degree, equal to the document's lists and to the
    typed views; the frames give the whole document back, degrees included."""
    a = analyze(BTC, engine=engine, with_macd=True, config=THREE_DEGREES)
    frames = a.to_frames()
    check_shape(frames, "UTC")
    doc = a.to_dict()
    levels = [{"degree": 1, **{k: doc[k] for k in STRUCTURE}}, *doc["degrees"]]
    assert [d["degree"] for d in levels] == [1, 2, 3]
    assert all(doc["degrees"][0][k] for k in STRUCTURE), "degree 2 has every kind"
    assert doc["degrees"][1]["segments"], "degree 3 has segments"
    for kind, (number, item) in STRUCTURE.items():
        frame = frames[kind]
        sizes = [len(d[kind]) for d in levels]
        assert frame["degree"].tolist() == [
            n for n, k in zip((1, 2, 3), sizes, strict=True) for _ in range(k)
        ]
        for level in levels:
            rows = [r for r in _records(frame) if r["degree"] == level["degree"]]
            assert [r[number] for r in rows] == list(range(len(level[kind]))), kind
            assert [item(r) for r in rows] == level[kind], (kind, level["degree"])
            typed = getattr(a.degree(level["degree"]), kind)
            assert [x.to_dict() for x in typed] == level[kind]
    assert document_of(frames, 3) == {k: doc[k] for k in (*KINDS[1:], "degrees")}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_of_every_degree_read_back(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``analyze --out`` with ``structure.degrees=3`` writes every degree's rows; the files read
    back to the same frames, and those to the document, degrees included."""
    out = tmp_path / "results"
    code, _, err = run(
        capsys,
        "analyze",
        str(BTC),
        "--set",
        "structure.degrees=3",
        "--out",
        str(out),
        "--format",
        fmt,
    )
    assert code == 0, err
    a = analyze(BTC, with_macd=True, config=THREE_DEGREES)
    want = a.to_frames()
    got = read_frames(out, fmt, "UTC")
    for kind in KINDS:
        pd.testing.assert_frame_equal(got[kind], want[kind], check_exact=True)
    assert set(got["segments"]["degree"]) == {1, 2, 3}
    doc = a.to_dict()
    assert document_of(got, 3) == {k: doc[k] for k in (*KINDS[1:], "degrees")}


# --- Times in the zone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "tz", "dates", "text"),
    [
        (1_420_421_460_000, "UTC", False, "2015-01-05T01:31:00Z"),
        (1_420_421_460_000, SHANGHAI, False, "2015-01-05T09:31:00+08:00"),
        (1_420_421_460_123, SHANGHAI, False, "2015-01-05T09:31:00.123+08:00"),
        (1_749_398_400_000, SHANGHAI, True, "2025-06-09"),  # 2025-06-08T16:00Z
        (1_749_398_400_000, "UTC", True, "2025-06-08"),
        (1_710_077_400_000, "America/New_York", False, "2024-03-10T09:30:00-04:00"),  # DST
        (1_709_908_200_000, "America/New_York", False, "2024-03-08T09:30:00-05:00"),
    ],
)
def test_format_zoned(ms: int, tz: str, dates: bool, text: str) -> None:
    assert format_zoned(ms, tz, dates) == text


def test_daily_is_midnight_in_the_zone() -> None:
    shanghai_midnights = np.array([1_749_398_400_000, 1_749_484_800_000])  # 16:00Z
    assert is_daily(shanghai_midnights, SHANGHAI)
    assert not is_daily(shanghai_midnights, "UTC")
    assert is_daily(shanghai_midnights + 8 * 3_600_000, "UTC")
    assert not is_daily(np.array([], dtype=np.int64), "UTC")
    assert not is_daily(load_csv(SH_1M).time, SHANGHAI)
    assert TimeFormat.of(shanghai_midnights, SHANGHAI)(shanghai_midnights[0]) == "2025-06-09"
    assert wall_ms(shanghai_midnights, SHANGHAI).tolist() == [1_749_427_200_000, 1_749_513_600_000]


def test_summary_prints_in_the_zone() -> None:
    bars = load_csv(SH_1M)
    a = analyze(bars).in_zone(SHANGHAI)
    text = summary(a, "sh", "rust", clock=TimeFormat.of(bars.time, a.tz))
    times = re.findall(r"\d{4}-\d\d-\d\dT(\d\d:\d\d):00\+08:00", text)
    assert len(times) > 10 and "Z " not in text and not text.count("Z\n")
    assert all("09:30" < t <= "15:00" for t in times), times
    # The same analysis printed in UTC: the session reads 01:31 .. 07:00.
    utc = summary(a, "sh", "rust")
    assert all("01:30" < t <= "07:00" for t in re.findall(r"T(\d\d:\d\d):00Z", utc))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_daily_bars_print_as_dates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "analyze", str(AAPL))
    assert code == 0, err
    assert out.splitlines()[1] == "  1200 bars (1998-01-02 .. 2002-10-10)"
    assert "T00:00:00" not in out
    dates = re.findall(r"\b\d{4}-\d\d-\d\d\b", out)
    assert len(dates) > 20
    # An intraday series keeps its times.
    code, out, err = run(capsys, "analyze", str(BTC))
    assert code == 0 and "(2014-06-23T22:00:00Z .. 2014-08-03T23:00:00Z)" in out


def test_signals_command_prints_in_the_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trading_system.proto import trading_pb2 as pb
    from trading_system.signal_store import SignalBook, SignalStore

    path = tmp_path / "s.sqlite"
    store = SignalStore(path)
    day = 1_749_398_400_000  # 2025-06-09 00:00 in Asia/Shanghai
    for symbol, timeframe, times in (
        ("600000.SH", "1d", [day, day + 86_400_000]),
        ("BTC", "1m", [day + 60_000]),
    ):
        book = SignalBook(store, symbol, timeframe)
        signals = [
            pb.Signal(
                type=1, side=pb.BUY, pen=i, point=pb.Point(index=i, time=t, price=10.0), final=True
            )
            for i, t in enumerate(times)
        ]
        book.reset(signals)
    store.close()

    def listed(*args: str) -> list[str]:
        code, out, err = run(capsys, "signals", "--file", str(path), *args)
        assert code == 0, err
        return out.splitlines()

    zoned = listed("--tz", SHANGHAI)
    daily = [x for x in zoned if "600000.SH/1d" in x]
    assert [x.split()[1] for x in daily] == ["2025-06-09", "2025-06-10"]
    assert [x.split()[1] for x in zoned if "BTC/1m" in x] == ["2025-06-09T00:01:00+08:00"]
    utc = listed()
    assert [x.split()[1] for x in utc if "600000.SH/1d" in x] == [
        "2025-06-08T16:00:00Z",
        "2025-06-09T16:00:00Z",
    ]
    code, out, err = run(capsys, "signals", "--file", str(path), "--tz", "Mars/Olympus")
    assert code == 2 and "unknown time zone 'Mars/Olympus'" in err


# --- Files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_analyze_out_writes_one_file_per_kind(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code, text, err = run(
        capsys,
        "analyze",
        str(SH_DAILY),
        "--set",
        "validation.repair=true",
        "--out",
        str(out),
        "--format",
        fmt,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(file_names(fmt).values())  # type: ignore[arg-type]
    want = analyze(SH_DAILY, with_macd=True, overrides=REPAIR).to_frames()
    for kind, name in file_names(fmt).items():  # type: ignore[arg-type]
        path = out / name
        if fmt == "parquet":
            table = pq.read_table(path)
            for field_name, column in FRAME_COLUMNS[kind].items():
                if column.dtype == "time":
                    t = table.schema.field(field_name).type
                    assert str(t) == "timestamp[ms, tz=UTC]", (kind, field_name, t)
            got = table.to_pandas()
            pd.testing.assert_frame_equal(got, want[kind], check_exact=True)
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            assert lines[0] == ",".join(FRAME_COLUMNS[kind]) and '"' not in "".join(lines)
            # As written: every cell a text (an absent number is an empty cell).
            got = pd.read_csv(path, dtype=str, keep_default_na=False)
            assert list(got.columns) == list(FRAME_COLUMNS[kind]), kind
            assert len(got) == len(want[kind]) > 0, kind
            for name_, column in FRAME_COLUMNS[kind].items():
                w = want[kind][name_]
                g = got[name_]
                if column.dtype == "time":
                    assert g.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all(), (kind, name_)
                    read = pd.to_datetime(g, utc=True).astype("datetime64[ms, UTC]")
                    assert read.equals(w.dt.tz_convert("UTC")), (kind, name_)
                elif column.dtype == "bool":
                    assert set(g) <= {"true", "false"}
                    assert (g == "true").tolist() == w.tolist(), (kind, name_)
                elif column.dtype == "float64":
                    read = np.array([float(x) if x else math.nan for x in g])
                    assert np.array_equal(read, w.to_numpy(), equal_nan=True), (kind, name_)
                    blank = np.count_nonzero((g == "").to_numpy())
                    assert blank == np.count_nonzero(w.isna().to_numpy()) and "nan" not in set(g)
                else:
                    # Integers and texts; NA (nullable columns) is an empty cell.
                    shown = ["" if x is pd.NA else str(x) for x in w.tolist()]
                    assert g.tolist() == shown, (kind, name_)


def test_analyze_out_csv_in_a_zone(tmp_path: Path) -> None:
    """CSV times carry the zone's offset and read back as the same instants."""
    from trading_system.frames import write_frames

    a = analyze(SH_1M, with_macd=True).in_zone(SHANGHAI)
    frames = a.to_frames()
    write_frames(frames, tmp_path, "csv")
    got = pd.read_csv(tmp_path / "bars.csv")
    assert got["time"].iloc[0] == "2015-01-05T09:31:00+08:00"
    assert got["time"].iloc[-1] == "2015-01-08T15:00:00+08:00"
    back = pd.to_datetime(got["time"], format="ISO8601").dt.tz_convert(SHANGHAI)
    assert back.astype("datetime64[ms, Asia/Shanghai]").equals(frames["bars"]["time"])
    write_frames(frames, tmp_path / "pq", "parquet")
    t = pq.read_table(tmp_path / "pq" / "pens.parquet").schema.field("end_time").type
    assert str(t) == "timestamp[ms, tz=Asia/Shanghai]"


def test_analyze_out_refuses_a_non_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    code, text, err = run(capsys, "analyze", str(BTC), "--out", str(out))
    assert code == 1 and "not empty" in err and "--force" in err and text == ""
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    code, text, err = run(capsys, "analyze", str(BTC), "--out", str(out), "--force")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", *file_names("csv").values()]
    )
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    code, text, err = run(capsys, "analyze", str(BTC), "--format", "parquet")
    assert code == 2 and "--out" in err
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    code, text, err = run(capsys, "analyze", str(BTC), "--out", str(file), "--force")
    assert code == 1 and "not a directory" in err


# --- Charts ------------------------------------------------------------------------------------


def test_chart_x_is_the_zones_wall_time() -> None:
    bars = load_csv(SH_1M)
    a = analyze(bars, with_macd=True).in_zone(SHANGHAI)
    fig = chart.figure(bars, a, "sh")
    candles: Any = next(t for t in fig.data if t.type == "candlestick")  # type: ignore[attr-defined]
    x = np.asarray(candles.x, dtype=np.float64).astype(np.int64)
    assert x.tolist() == (bars.time + 8 * 3_600_000).tolist()
    assert fig.layout.xaxis.hoverformat == "%Y-%m-%d %H:%M"
    assert fig.layout.xaxis2.title.text == "time (Asia/Shanghai)"
    daily = chart.figure(load_csv(AAPL), analyze(AAPL, with_macd=True), "aapl")
    assert daily.layout.xaxis.hoverformat == "%Y-%m-%d"
    assert daily.layout.xaxis.tickformat == "%Y-%m-%d"


def axis_labels(page: str, tmp_path: Path, name: str) -> list[str]:
    """The x-axis tick labels headless Chromium draws for ``page`` (its DOM after the scripts
    ran)."""
    done = headless(page, tmp_path, name, "--dump-dom")
    # The shared time axis is drawn under the lower panel (x2); plotly keeps each label's
    # text, lines joined by <br> (the time, then the date under a day's first tick).
    found = re.findall(r'<g class="x2?tick"><text[^>]*data-unformatted="([^"]*)"', done.stdout)
    labels = [html_text.unescape(x).replace("<br>", " ") for x in found]
    assert labels, "no x tick labels drawn"
    return labels


def test_a_browser_draws_the_axis_in_the_zone(tmp_path: Path) -> None:
    """An A-share 1-minute chart in Asia/Shanghai reads 09:31 .. 15:00 on its axis; the same
    chart in UTC reads 01:30 .. 07:00 (the check tells the two apart), a daily chart dates."""
    bars = load_csv(SH_1M)
    a = analyze(bars, with_macd=True)

    def hours(labels: list[str]) -> list[str]:
        return [m for label in labels for m in re.findall(r"\b(\d\d:\d\d)\b", label)]

    zoned = hours(axis_labels(chart.render(bars, a, "sh", tz=SHANGHAI), tmp_path, "zoned"))
    assert len(zoned) >= 3, zoned
    assert all("09:30" <= h <= "15:00" for h in zoned), zoned
    utc = hours(axis_labels(chart.render(bars, a, "sh"), tmp_path, "utc"))
    assert len(utc) >= 3 and all("01:30" <= h <= "07:00" for h in utc), utc

    daily = axis_labels(chart.render(load_csv(AAPL), analyze(AAPL), "aapl"), tmp_path, "daily")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", x) for x in daily), daily
