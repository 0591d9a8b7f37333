#!/usr/bin/env python3
"""Compare the Rust engine with chan.py's outputs (shared/reference/chanpy), traditional pens.

Prints two tables. Degree 1, per file: final pens equal to chan.py's pens position by position,
and the share of chan.py's confirmed segments that we reproduce as confirmed segments (same pens,
direction). Degree 2 (spec §13), per file: the share of chan.py's sure `segseg` we reproduce as
confirmed degree-2 segments (direction, start and end time) and of its sure `segzs` we reproduce
as confirmed degree-2 pivots (start and end time, ZD, ZG), with the counts of our confirmed ones
that chan.py does not have. Exit status 1 when pens differ anywhere, degree-1 segment agreement
falls under --min-segments, or degree 2 differs anywhere (either way).

    scripts/peer_check.py [--reference DIR] [--data DIR] [--engine PATH] [--details]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


def norm_time(s: str) -> str:
    """chan.py copies CSV times ('1998-01-12', '2015-01-05T01:31:00Z'); we print full ISO."""
    if len(s) == 10:
        return s + "T00:00:00Z"
    return (
        datetime.fromisoformat(s.replace("Z", "+00:00"))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def run_engine(engine: Path, csv: Path, repair: bool) -> dict:
    cmd = [str(engine), "analyze", str(csv), "--set", "pen.definition=traditional"]
    cmd += ["--set", "structure.degrees=2"]
    if repair:
        cmd += ["--set", "validation.repair=true"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def compare(name: str, ours: dict, ref: dict, details: bool) -> tuple[int, int, int, int]:
    final = [p for p in ours["pens"] if p["final"]]
    ref_pens = ref["pens"]
    pen_ok = 0
    first_bad = None
    for i, p in enumerate(final):
        if i >= len(ref_pens):
            first_bad = first_bad if first_bad is not None else i
            break
        r = ref_pens[i]
        same = (
            p["direction"] == r["direction"]
            and p["start"]["time"] == norm_time(r["start_time"])
            and p["end"]["time"] == norm_time(r["end_time"])
            and p["start"]["price"] == r["start_price"]
            and p["end"]["price"] == r["end_price"]
        )
        if same:
            pen_ok += 1
        elif first_bad is None:
            first_bad = i
    if details and first_bad is not None:
        print(f"  {name}: first pen difference at {first_bad}:")
        print("    ours:   ", final[first_bad] if first_bad < len(final) else None)
        print("    chan.py:", ref_pens[first_bad] if first_bad < len(ref_pens) else None)
    ours_seg = {
        (s["first_pen"], s["last_pen"], s["direction"]) for s in ours["segments"] if s["confirmed"]
    }
    ref_seg = [
        (s["start_bi_idx"], s["end_bi_idx"], s["direction"])
        for s in ref["segments"]
        if s["is_sure"]
    ]
    seg_ok = sum(1 for s in ref_seg if s in ours_seg)
    if details:
        for s in ref_seg:
            if s not in ours_seg:
                print(f"  {name}: chan.py confirmed segment {s} not reproduced")
    return pen_ok, len(final), seg_ok, len(ref_seg)


class Degree2(NamedTuple):
    """Degree-2 agreement of one file: chan.py's sure items we reproduce, their number, and our
    confirmed items chan.py does not have, for segments and pivots."""

    seg_ok: int
    seg_ref: int
    seg_extra: int
    piv_ok: int
    piv_ref: int
    piv_extra: int


def compare_degree2(name: str, ours: dict, ref: dict, details: bool) -> Degree2:
    """Our confirmed degree-2 segments against chan.py's sure `segseg` (direction, start and end
    time), our confirmed degree-2 pivots against its sure `segzs` (start and end time, ZD, ZG).
    Times identify items: our degree-1 segment list also holds leading and forming segments, so
    its indices are not chan.py's."""
    deg2 = next(d for d in ours["degrees"] if d["degree"] == 2)
    our_seg = {
        (s["direction"], s["start"]["time"], s["end"]["time"])
        for s in deg2["segments"]
        if s["confirmed"]
    }
    ref_seg = {
        (s["direction"], norm_time(s["start_time"]), norm_time(s["end_time"]))
        for s in ref["segseg"]
        if s["is_sure"]
    }
    our_piv = {
        (z["start"]["time"], z["end"]["time"], z["zd"], z["zg"])
        for z in deg2["pivots"]
        if z["confirmed"]
    }
    ref_piv = {
        (norm_time(z["start_time"]), norm_time(z["end_time"]), z["low"], z["high"])
        for z in ref["segzs"]
        if z["is_sure"]
    }
    if details:
        for what, mine, theirs in (("segment", our_seg, ref_seg), ("pivot", our_piv, ref_piv)):
            for x in sorted(theirs - mine):
                print(f"  {name}: chan.py sure degree-2 {what} {x} not reproduced")
            for x in sorted(mine - theirs):
                print(f"  {name}: our confirmed degree-2 {what} {x} not in chan.py")
    return Degree2(
        len(ref_seg & our_seg),
        len(ref_seg),
        len(our_seg - ref_seg),
        len(ref_piv & our_piv),
        len(ref_piv),
        len(our_piv - ref_piv),
    )


def pct(ok: int, n: int) -> str:
    share = f"{100 * ok / n:6.2f}%" if n else "    n/a"  # chan.py has none: nothing to match
    return f"{ok:>6}/{n:<6} {share}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reference", type=Path, default=ROOT.parent / "shared/reference/chanpy")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--engine", type=Path, default=ROOT / "target/release/trading-engine")
    ap.add_argument("--min-segments", type=float, default=0.99)
    ap.add_argument("--details", action="store_true")
    args = ap.parse_args()

    if not any(args.reference.glob("*.bi_strict_true.json")):
        print(f"no *.bi_strict_true.json in {args.reference}", file=sys.stderr)
        return 2
    rows = []
    rows2: list[tuple[str, Degree2]] = []
    tot = [0, 0, 0, 0]
    for ref_file in sorted(args.reference.glob("*.bi_strict_true.json")):
        name = ref_file.name.split(".bi_strict")[0]
        ref = json.loads(ref_file.read_text())
        autofix = bool(ref.get("config_effective", {}).get("autofix", name == "000001.SH_1d"))
        ours = run_engine(
            args.engine, args.data / f"{name}.csv", repair=autofix or name == "000001.SH_1d"
        )
        r = compare(name, ours, ref, args.details)
        rows.append((name, *r))
        rows2.append((name, compare_degree2(name, ours, ref, args.details)))
        tot = [a + b for a, b in zip(tot, r, strict=False)]

    print(f"{'file':<22} {'pens equal':>16} {'confirmed segments reproduced':>32}")
    for name, po, pn, so, sn in rows:
        print(
            f"{name:<22} {po:>7}/{pn:<7} {100 * po / max(pn, 1):6.2f}% "
            f"{so:>6}/{sn:<6} {100 * so / max(sn, 1):6.2f}%"
        )
    po, pn, so, sn = tot
    print(
        f"{'total':<22} {po:>7}/{pn:<7} {100 * po / max(pn, 1):6.2f}% "
        f"{so:>6}/{sn:<6} {100 * so / max(sn, 1):6.2f}%"
    )

    print()
    print(
        f"{'degree 2':<22} {'sure segseg reproduced':>22} {'extra':>6} "
        f"{'sure segzs reproduced':>22} {'extra':>6}"
    )
    tot2 = Degree2(*(sum(getattr(r, f) for _, r in rows2) for f in Degree2._fields))
    for name, d in [*rows2, ("total", tot2)]:
        print(
            f"{name:<22} {pct(d.seg_ok, d.seg_ref)} {d.seg_extra:>6} "
            f"{pct(d.piv_ok, d.piv_ref)} {d.piv_extra:>6}"
        )
    pens_ok = all(r[1] == r[2] for r in rows)
    segs_ok = so >= args.min_segments * sn
    deg2_ok = (
        tot2.seg_ok == tot2.seg_ref
        and tot2.piv_ok == tot2.piv_ref
        and tot2.seg_extra == 0
        and tot2.piv_extra == 0
    )
    return 0 if pens_ok and segs_ok and deg2_ok else 1


if __name__ == "__main__":
    sys.exit(main())
