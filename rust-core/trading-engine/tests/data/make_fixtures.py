#!/usr/bin/env python3
"""Writes the loader fixtures of this folder from the project's bundled data (tests/data):
each shape a trader's file comes in, holding the same bars as its canonical CSV, and the bad
files. Run from the repository root: python rust-core/trading-engine/tests/data/make_fixtures.py
(the Parquet file needs pyarrow: .venv/bin/python). See SOURCES.md beside it."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[3] / "tests" / "data"
DAILY = 40  # AAPL daily bars taken
INTRADAY = 48  # BTC/USD 30-minute bars taken


def rows(name: str, n: int) -> list[list[str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        r = list(csv.reader(f))
    assert r[0] == ["time", "open", "high", "low", "close", "volume"], r[0]
    return r[1 : n + 1]


def write(name: str, header: list[str], body: list[list[str]], delimiter: str = ",",
          encoding: str = "utf-8") -> None:
    with (HERE / name).open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)


def instant(t: str) -> dt.datetime:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))


def main() -> None:
    canon = ["time", "open", "high", "low", "close", "volume"]
    aapl = rows("AAPL_1d_head1200.csv", DAILY)
    btc = rows("BTCUSD-BITSTAMP_30m.csv", INTRADAY)
    write("aapl_canonical.csv", canon, aapl)
    write("btc_canonical.csv", canon, btc)

    # Yahoo: Adj Close (a different number, never to be read as close) before Volume.
    write("aapl_yahoo.csv", ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"],
          [[t, o, h, lo, c, f"{float(c) / 2:.4f}", v] for t, o, h, lo, c, v in aapl])
    # akshare (stock_zh_a_hist): Chinese headers, close before high and low, turnover after.
    ak_header = ["日期", "开盘", "收盘", "最高", "最低", "成交量", "成交额"]
    ak_rows = [[t, o, c, h, lo, v, f"{float(c) * float(v):.0f}"] for t, o, h, lo, c, v in aapl]
    write("aapl_akshare.csv", ak_header, ak_rows)
    write("aapl_akshare_gbk.csv", ak_header, ak_rows, encoding="gbk")
    # tushare (pro.daily): trade_date as YYYYMMDD, vol, newest first as tushare returns it.
    write("aapl_tushare.csv",
          ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol", "amount"],
          [["AAPL", t.replace("-", ""), o, h, lo, c, c, v, "0"]
           for t, o, h, lo, c, v in reversed(aapl)])
    write("aapl_semicolon.csv", canon, aapl, delimiter=";")
    write("aapl.tsv", canon, aapl, delimiter="\t")
    write("aapl_slashes.txt", ["Date", "Open", "High", "Low", "Close", "Volume"],
          [[t.replace("-", "/"), *rest] for t, *rest in aapl])
    write("aapl_newest_first.csv", canon, list(reversed(aapl)))
    write("aapl_no_volume.csv", canon[:5], [r[:5] for r in aapl])
    # With a UTF-8 byte-order mark, as Excel writes "CSV UTF-8".
    with (HERE / "aapl_bom.csv").open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(canon)
        w.writerows(aapl)

    write("btc_epoch_s.csv", canon,
          [[str(int(instant(t).timestamp())), *rest] for t, *rest in btc])
    write("btc_epoch_ns.csv", ["open_time", "open", "high", "low", "close", "volume"],
          [[str(int(instant(t).timestamp()) * 10**9), *rest] for t, *rest in btc])
    ny = dt.timezone(dt.timedelta(hours=-4))
    write("btc_offset_0400.csv", canon,
          [[instant(t).astimezone(ny).strftime("%Y-%m-%d %H:%M:%S%z"), *rest]
           for t, *rest in btc])
    shanghai = dt.timezone(dt.timedelta(hours=8))
    write("btc_naive_shanghai.csv", canon,
          [[instant(t).astimezone(shanghai).strftime("%Y-%m-%d %H:%M:%S"), *rest]
           for t, *rest in btc])

    # Bad files: each breaks one rule of docs/DATA.md, at a known line.
    mixed = [[str(int(instant(t).timestamp())), *rest] for t, *rest in btc[:10]]
    mixed[4][0] = str(int(mixed[4][0]) * 1000)  # line 6: milliseconds among seconds
    write("bad_epoch_mixed_units.csv", canon, mixed)
    small = [[str(1_000_000 + 1800 * i), *rest] for i, (_, *rest) in enumerate(btc[:10])]
    write("bad_epoch_no_unit.csv", canon, small)  # line 2: 1970 in seconds, nothing else
    far = [[str(int(instant(t).timestamp())), *rest] for t, *rest in btc[:10]]
    far[6][0] = str(4_200_000_000)  # line 8: 2103 in seconds
    write("bad_epoch_year_2103.csv", canon, far)
    write("bad_duplicate_columns.csv", ["Date", "time", "open", "high", "low", "close", "volume"],
          [[t, t, *rest] for t, *rest in aapl[:10]])
    broken = [list(r) for r in aapl[:10]]
    broken[5][0] = "1998-02-30"  # line 7: no such day
    write("bad_time_row.csv", canon, broken)

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow missing: aapl.parquet not written")
        return
    table = pa.table({
        "time": pa.array([dt.datetime.fromisoformat(t) for t, *_ in aapl], pa.timestamp("ms")),
        **{k: pa.array([float(r[i + 1]) for r in aapl]) for i, k in enumerate(canon[1:])},
    })
    pq.write_table(table, HERE / "aapl.parquet")


if __name__ == "__main__":
    main()
