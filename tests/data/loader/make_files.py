#!/usr/bin/env python3
"""Writes the loader's test files (SOURCES.md beside this file): each a real slice of a
bundled series (the first 40 bars) in the shape some tool exports, so each must load to the same
bars as its canonical slice. Run from the repository root: python tests/data/loader/make_files.py
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
N = 40


def rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))[1 : N + 1]


def write(
    name: str,
    header: list[str],
    body: list[list[str]],
    sep: str = ",",
    enc: str = "utf-8",
    bom: bool = False,
) -> None:
    text = sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in body)
    data = text.encode(enc)
    (HERE / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    canon = ["time", "open", "high", "low", "close", "volume"]
    aapl, sh, btc = (
        rows(DATA / n)
        for n in ("AAPL_1d_head1200.csv", "000001.SH_1d_head1200.csv", "BTCUSD-BITSTAMP_30m.csv")
    )
    spd = rows(HERE / "600000.SH_1d_head40.csv")
    write("aapl_1d.csv", canon, aapl)
    write("sh_1d.csv", canon, sh)
    write("btc_30m.csv", canon, btc)

    # Yahoo Finance's download: Date first, an Adj Close column (the loader must ignore it).
    write(
        "aapl_yahoo.csv",
        ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"],
        [[t, o, h, lo, c, f"{float(c) * 0.25:.6f}", v] for t, o, h, lo, c, v in aapl],
    )
    # akshare's stock_zh_index_daily_em / stock_zh_a_hist: Chinese headers, its column order.
    akshare = ["日期", "开盘", "收盘", "最高", "最低", "成交量"]
    write("sh_akshare.csv", akshare, [[t, o, c, h, lo, v] for t, o, h, lo, c, v in sh], bom=True)
    # The same saved by a Chinese-locale Excel: GBK.
    write(
        "sh_akshare_gbk.csv", akshare, [[t, o, c, h, lo, v] for t, o, h, lo, c, v in sh], enc="gbk"
    )
    # tushare's pro.daily: ts_code, trade_date as YYYYMMDD, vol; newest first.
    write(
        "sh_tushare.csv",
        ["ts_code", "trade_date", "open", "high", "low", "close", "vol"],
        [["000001.SH", t.replace("-", ""), o, h, lo, c, v] for t, o, h, lo, c, v in sh][::-1],
    )
    write("sh_semicolon.csv", canon, sh, sep=";")
    write("sh_1d.tsv", canon, sh, sep="\t")
    write("sh_pipe.txt", canon, sh, sep="|")
    write("sh_newest_first.csv", canon, sh[::-1])
    write("sh_yyyymmdd.csv", canon, [[t.replace("-", ""), *r] for t, *r in sh])
    write("sh_no_volume.csv", canon[:5], [r[:5] for r in sh])
    write("600000_slashes.csv", canon, [[t.replace("-", "/"), *r] for t, *r in spd])
    write("btc_epoch_s.csv", canon, [[str(int(utc(t).timestamp())), *r] for t, *r in btc])
    write("btc_epoch_ms.csv", canon, [[str(int(utc(t).timestamp()) * 1000), *r] for t, *r in btc])
    # New York summer time, written with the offset as ISO 8601's basic form has it (-0400).
    ny = dt.timezone(dt.timedelta(hours=-4))
    write(
        "btc_offset_0400.csv",
        canon,
        [[utc(t).astimezone(ny).strftime("%Y-%m-%dT%H:%M:%S%z"), *r] for t, *r in btc],
    )
    # A zone-aware Parquet file: the daily bars at 00:00 Asia/Shanghai.
    times = pa.array([dt.datetime.fromisoformat(r[0]) for r in sh], pa.timestamp("ms"))
    shanghai = pa.compute.assume_timezone(times, "Asia/Shanghai")
    cols = {
        "time": shanghai,
        **{n: pa.array([float(r[k + 1]) for r in sh]) for k, n in enumerate(canon[1:])},
    }
    pq.write_table(pa.table(cols), HERE / "sh_shanghai.parquet")


if __name__ == "__main__":
    main()
