"""The two loaders on the same files (docs/DATA.md): the Rust CLI (`trading-engine analyze`) and
the Python loader (`trading_system.data.load`) give the same analysis from every good file of
rust-core/trading-engine/tests/data, and refuse every bad one — those fixtures and more built
here — with the same rule, field and file line ("Errors")."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import ROOT, TEST_SERVER_BUILD, rust_binary

from trading_system import analyze
from trading_system.data import load
from trading_system.errors import DataError

FIXTURES = ROOT / "rust-core" / "trading-engine" / "tests" / "data"
HEADER = "time,open,high,low,close,volume\n"
ROW = "1,2,0.5,1.5,10"
"""Prices of a good row (after its time)."""
REFUSAL = re.compile(r"\[(?:field (\w+), )?rule (\w+)\]$")
LINE = re.compile(r": line (\d+): ")
"""The Rust CLI's refusal: `line N: message [field F, rule R]` (line and field when known)."""

Verdict = tuple[str | None, str | None, int | None]
"""(rule, field, line) of a refusal."""


@dataclass(frozen=True)
class Options:
    """The loader options, given to both loaders alike."""

    columns: dict[str, str] = field(default_factory=dict)
    time_unit: str | None = None
    tz: str | None = None

    def argv(self) -> list[str]:
        out = [f"--columns={','.join(f'{k}={v}' for k, v in self.columns.items())}"]
        out = out if self.columns else []
        if self.time_unit:
            out.append(f"--time-unit={self.time_unit}")
        if self.tz:
            out.append(f"--tz={self.tz}")
        return out


def rust(path: Path, options: Options, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = rust_binary()
    assert binary.is_file(), f"{binary} is missing: build it with `{TEST_SERVER_BUILD}`"
    args = [str(binary), "analyze", str(path), *options.argv(), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def rust_refusal(path: Path, options: Options) -> Verdict:
    got = rust(path, options)
    assert got.returncode == 2, f"the Rust CLI did not refuse {path.name}: {got.stderr}"
    last = got.stderr.strip().splitlines()[-1]
    m = REFUSAL.search(last)
    assert m, f"no [rule …] in the Rust CLI's refusal: {last}"
    line = LINE.search(last)
    return m[2], m[1], None if line is None else int(line[1])


def python_refusal(path: Path, options: Options) -> Verdict:
    with pytest.raises(DataError) as e:
        load(path, columns=options.columns, time_unit=options.time_unit, tz=options.tz)
    return e.value.rule, e.value.field, e.value.line


# --- Bad files --------------------------------------------------------------------------------

BAD_FIXTURES = {
    # file: what docs/DATA.md (SOURCES.md there) says each breaks
    "bad_duplicate_columns.csv": ("column_ambiguous", "time", 1),
    "bad_epoch_mixed_units.csv": ("time_unit", "time", 6),
    "bad_epoch_no_unit.csv": ("time_unit", "time", 2),
    "bad_epoch_year_2103.csv": ("time_unit", "time", 8),
    "bad_time_row.csv": ("time_unparseable", "time", 7),
}


def test_every_bad_fixture_is_listed() -> None:
    assert sorted(p.name for p in FIXTURES.glob("bad_*.csv")) == sorted(BAD_FIXTURES)


@pytest.mark.parametrize("name", sorted(BAD_FIXTURES))
def test_bad_fixtures_are_refused_alike(name: str) -> None:
    path = FIXTURES / name
    assert rust_refusal(path, Options()) == python_refusal(path, Options()) == BAD_FIXTURES[name]


def iso(i: int) -> str:
    return f"2014-06-{2 + i:02d}"


def epoch(i: int) -> str:
    return str(1_403_560_800 + 1800 * i)


def rows(times: list[str], prices: str = ROW) -> str:
    return "".join(f"{t},{prices}\n" for t in times)


EPOCHS = [epoch(i) for i in range(6)]
ISOS = [iso(i) for i in range(6)]

BUILT: dict[str, tuple[bytes, Options, Verdict]] = {
    # id: (file content, options, (rule, field, line) by docs/DATA.md)
    "gbk-undecodable": (
        (HEADER + rows(ISOS[:2])).encode() + b"2014-06-04,\xff\xff,2,0.5,1.5,10\n",
        Options(),
        ("encoding", None, None),
    ),
    "too-many-fields": (
        (HEADER + rows(ISOS[:3]) + f"{ISOS[3]},{ROW},7\n").encode(),
        Options(),
        ("row_shape", None, 5),
    ),
    "too-few-fields": (
        (HEADER + rows(ISOS[:2]) + f"{ISOS[2]},1,2,0.5,1.5\n").encode(),
        Options(),
        ("row_shape", None, 4),
    ),
    "price-not-a-number": (
        (HEADER + rows(ISOS[:3]) + rows(ISOS[3:4], "1,2,abc,1.5,10")).encode(),
        Options(),
        ("number", "low", 5),
    ),
    "price-empty": (
        (HEADER + rows(ISOS[:1]) + rows(ISOS[1:2], "1,2,0.5,,10")).encode(),
        Options(),
        ("number", "close", 3),
    ),
    "column-missing": (
        ("time,open,high,low,volume\n" + rows(ISOS, "1,2,0.5,10")).encode(),
        Options(),
        ("column_missing", "close", 1),
    ),
    "columns-maps-a-missing-name": (
        (HEADER + rows(ISOS)).encode(),
        Options(columns={"close": "last"}),
        ("column_unknown", "close", 1),
    ),
    "ambiguous-first-by-header": (
        (
            "close,Date,time,Close,open,high,low\n" + rows(ISOS, "1.5,2014-06-02,1.5,1,2,0.5")
        ).encode(),
        Options(),
        ("column_ambiguous", "time", 1),
    ),
    "dst-skipped-wall-time": (
        (HEADER + rows(["2014-03-09 01:30", "2014-03-09 02:30", "2014-03-09 03:30"])).encode(),
        Options(tz="America/New_York"),
        ("time_zone", "time", 3),
    ),
    "dst-repeated-wall-time": (
        (HEADER + rows(["2014-11-02 00:30", "2014-11-02 01:30", "2014-11-02 02:30"])).encode(),
        Options(tz="America/New_York"),
        ("time_zone", "time", 3),
    ),
    "text-year-after-9999": (
        (HEADER + rows([*ISOS[:2], "9999-12-31T23:00:00-02:00"])).encode(),
        Options(),
        ("time_range", "time", 4),
    ),
    "text-year-0": (
        (HEADER + rows([*ISOS[:2], "0000-06-01"])).encode(),
        Options(),
        ("time_range", "time", 4),
    ),
    "unit-given-out-of-range": (
        (HEADER + rows([*EPOCHS[:3], "99999999999999"])).encode(),
        Options(time_unit="s"),
        ("time_range", "time", 5),
    ),
    "unit-given-text": (
        (HEADER + rows(ISOS)).encode(),
        Options(time_unit="s"),
        ("time_unparseable", "time", 2),
    ),
    "unit-date-not-a-date": (
        (HEADER + rows(["20140602", "20140230"])).encode(),
        Options(time_unit="date"),
        ("time_range", "time", 3),
    ),
    "epoch-fraction": (
        (HEADER + rows([*EPOCHS[:3], "1403566200.5"])).encode(),
        Options(),
        ("time_unparseable", "time", 5),
    ),
    "epoch-missing-time": (
        (HEADER + rows([*EPOCHS[:3], ""])).encode(),
        Options(),
        ("time_unparseable", "time", 5),
    ),
    "number-among-dates": (
        (HEADER + rows([*ISOS[:3], EPOCHS[3], *ISOS[4:]])).encode(),
        Options(),
        ("time_unparseable", "time", 5),
    ),
    "date8-out-of-range-among-dates": (
        (HEADER + rows([*ISOS[:2], "19500101", *ISOS[3:]])).encode(),
        Options(),
        ("time_unparseable", "time", 4),
    ),
    "unparseable-before-a-number": (
        (HEADER + rows([ISOS[0], "2014-02-30", EPOCHS[2]])).encode(),
        Options(),
        ("time_unparseable", "time", 3),
    ),
    "beyond-64-bits": (
        (HEADER + rows([*EPOCHS[:2], "99999999999999999999"])).encode(),
        Options(),
        ("time_unparseable", "time", 4),
    ),
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_built_bad_files_are_refused_alike(tmp_path: Path, case: str) -> None:
    content, options, expected = BUILT[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content)
    got = {"rust": rust_refusal(path, options), "python": python_refusal(path, options)}
    assert got == {"rust": expected, "python": expected}


def test_parquet_is_refused_by_the_rust_cli_only() -> None:
    path = FIXTURES / "aapl.parquet"
    assert rust_refusal(path, Options()) == ("parquet_unsupported", None, None)
    assert len(load(path)) == 40


# --- Good files -------------------------------------------------------------------------------

GOOD = {
    p.name: Options(tz="Asia/Shanghai") if "shanghai" in p.name else Options()
    for p in FIXTURES.iterdir()
    if p.suffix in (".csv", ".tsv", ".txt") and not p.name.startswith("bad_")
}


def test_good_fixtures_are_found() -> None:
    assert len(GOOD) >= 15


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_fixtures_give_the_same_analysis(name: str) -> None:
    """The analysis document with the MACD of every bar (its closes) and the times of the
    fractals and pens: the same from both loaders, so the same bars in the same order."""
    path, options = FIXTURES / name, GOOD[name]
    got = rust(path, options, "--with-macd")
    assert got.returncode == 0, got.stderr
    bars = load(path, columns=options.columns, time_unit=options.time_unit, tz=options.tz)
    doc = analyze(bars, engine="python", with_macd=True).to_dict()
    assert json.loads(got.stdout) == doc
    assert doc["bars"] == len(bars) > 0


def test_integral_float_epochs_load_alike(tmp_path: Path) -> None:
    """`1403560800.0`: an integral float is an epoch number (docs/DATA.md, "Times")."""
    path = tmp_path / "floats.csv"
    canonical = (FIXTURES / "btc_epoch_s.csv").read_text(encoding="utf-8").splitlines()
    lines = [canonical[0], *(f"{r.split(',', 1)[0]}.0,{r.split(',', 1)[1]}" for r in canonical[1:])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = rust(path, Options(), "--with-macd")
    assert got.returncode == 0, got.stderr
    bars = load(path)
    assert bars == load(FIXTURES / "btc_epoch_s.csv")
    assert json.loads(got.stdout) == analyze(bars, engine="python", with_macd=True).to_dict()
