#!/usr/bin/env python3
"""Compare the Rust engine with chan.py's outputs (shared/reference/chanpy), traditional pens.

Prints, per file: final pens equal to chan.py's pens position by position, and the share of
chan.py's confirmed segments that we reproduce as confirmed segments (same pens, direction).
Exit status 1 when pens differ anywhere or segment agreement falls under --min-segments.

    scripts/peer_check.py [--reference DIR] [--data DIR] [--engine PATH] [--details]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reference", type=Path, default=ROOT.parent / "shared/reference/chanpy")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--engine", type=Path, default=ROOT / "target/release/trading-engine")
    ap.add_argument("--min-segments", type=float, default=0.99)
    ap.add_argument("--details", action="store_true")
    args = ap.parse_args()

    rows = []
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
    pens_ok = all(r[1] == r[2] for r in rows)
    segs_ok = so >= args.min_segments * sn
    return 0 if pens_ok and segs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
