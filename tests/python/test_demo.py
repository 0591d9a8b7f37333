"""The main job (``trading-system demo``, what ``scripts/run.sh`` runs after building): the whole
stack on loopback with a demo bot. Run as a real process: it prints health and the buy/sell
points as they appear, records them through the monitor, writes the chart and stops every
server cleanly, at the end or on Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from servers import ROOT

from trading_system.data import parse_time
from trading_system.signal_store import SignalStore

DATA = ROOT / "tests" / "data" / "BTCUSD-BITSTAMP_30m.csv"


def config(tmp: Path) -> Path:
    """default.yaml with the signals file in ``tmp`` (the default is under the working dir) and
    a 250 ms deadline floor: these tests run beside others on every core, where a CPU stall
    of 50 ms (the default floor) can fail an engine over, and they check the demo's flow,
    not hang detection (the fault suite does)."""
    text = (ROOT / "config" / "default.yaml").read_text(encoding="utf-8")
    path = tmp / "config.yaml"
    signals = tmp / "signals.sqlite"
    changed = text.replace("signals_file: var/signals.sqlite", f"signals_file: {signals}")
    changed = changed.replace("min_deadline_ms: 50 ", "min_deadline_ms: 250 ")
    path.write_text(changed, "utf-8")
    written = path.read_text(encoding="utf-8")
    assert str(signals) in written and "min_deadline_ms: 250 " in written
    return path


def demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "trading_system", "demo", *args]


def closed(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


def addresses(out: str) -> list[str]:
    engines = re.search(r"engines: rust (\S+), python (\S+)", out)
    monitor = re.search(r"monitor: (\S+)", out)
    assert engines and monitor, out
    return [engines.group(1), engines.group(2), monitor.group(1)]


def test_demo_streams_prints_signals_records_them_and_stops(tmp_path: Path) -> None:
    chart = tmp_path / "chart.html"
    cfg = config(tmp_path)
    done = subprocess.run(
        demo("--rate", "0", "--chart", str(chart), "--config", str(cfg)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "demo: 1,968 bars of BTCUSD-BITSTAMP_30m.csv as BTCUSD/30m" in out
    assert out.count("active: rust  epoch 1") == 2  # health before and after
    shown = re.findall(
        r"\] signal: (?:D(\d) ([BS]\d) )?(buy|sell) point type ([123]) at (\S+),", out
    )
    assert shown, out
    # Higher degrees' points are printed too, labelled as the chart labels them: BTC's degree 2
    # has third sell points (non-final ones that come and go as the bars arrive).
    higher = [x for x in shown if x[0]]
    assert higher and all(x[0] == "2" for x in higher), out
    assert all(label == f"{'B' if side == 'buy' else 'S'}{t}" for _, label, side, t, _ in higher)
    assert len(higher) < len(shown) - len(higher), "a higher degree has fewer points"
    for name in ("monitor", "python", "rust"):
        assert f"stopped {name} (exit 0)" in out
    assert all(closed(a) for a in addresses(out))
    assert chart.is_file() and "Plotly" in chart.read_text(encoding="utf-8")[:5_000_000]
    # What the bot printed is what the monitor recorded, degree by degree, row for row (a point
    # that went is kept, marked gone).
    store = SignalStore(tmp_path / "signals.sqlite")
    rows = store.list("BTCUSD", "30m")
    assert {r.degree for r in rows} == {1, 2}
    recorded = {(r.degree, r.side, r.type, r.time_ms) for r in rows}
    store.close()
    printed = {(int(n or 1), side, t, parse_time(when)) for n, _, side, t, when in shown}
    assert recorded == printed
    final = re.search(r"streamed 1,968 bars, (\d+) buy/sell points now", out)
    assert final and int(final.group(1)) > 0


def test_demo_streams_to_a_running_monitor_and_leaves_it_running(tmp_path: Path) -> None:
    """``--monitor HOST:PORT``: the operator's first signal from a stack already running (the
    compose file's published port): only the bot runs, with the client token alone (the
    monitor's status, an operator call, is said not to be shown); the stack keeps serving."""
    import servers

    signals = tmp_path / "signals.sqlite"
    with servers.running("rust") as rust, servers.running("python") as python:
        monitor = servers.start_monitor(
            rust.address,
            python.address,
            [
                f"system.signals_file={signals}",
                "system.min_deadline_ms=250",
                "server.auth_token=client-secret",
                "server.operator_token=operator-secret",
            ],
        )
        try:
            done = subprocess.run(
                demo("--rate", "0", "--no-chart", "--monitor", monitor.address),
                cwd=ROOT,
                env={**os.environ, "TRADING_SYSTEM__SERVER__AUTH_TOKEN": "client-secret"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            out = done.stdout
            assert f"monitor: {monitor.address} (running already)" in out
            assert "engines: rust" not in out and "stopped " not in out
            assert out.count("health: not shown: the monitor's status needs the operator") == 2
            assert re.search(r"\] signal: (buy|sell) point type [123] at ", out), out
            assert re.search(r"streamed 1,968 bars, \d+ buy/sell points now", out), out
            assert monitor.proc.poll() is None and not closed(monitor.address)
            store = SignalStore(signals)
            assert store.list("BTCUSD", "30m")
            store.close()
        finally:
            assert monitor.stop() == 0


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        demo("--rate", "20", "--no-chart", "--config", str(config(tmp_path))),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # wait until the bot is streaming
        lines.append(line)
        if line.startswith("active: "):
            break
    time.sleep(1.0)  # some bars in, not all: 1,968 bars at 20/s take minutes
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert "demo: interrupted, stopping" in out
    for name in ("monitor", "python", "rust"):
        assert f"stopped {name} (exit 0)" in out
    assert all(closed(a) for a in addresses(out))


def test_points_are_labelled_as_the_chart_labels_them() -> None:
    # The demo and the chart share one rule (results.point_label): here, what it says, and
    # that the demo's lines of a higher degree start with it.
    from trading_system.demo import _describe
    from trading_system.results import Signal, point_label

    for degree in (1, 2, 3):
        for side, letter in (("buy", "B"), ("sell", "S")):
            for kind in ("1", "2", "3"):
                expected = f"{letter}{kind}" if degree == 1 else f"D{degree} {letter}{kind}"
                assert point_label(degree, side, kind) == expected
                when = "2024-01-01T00:00:00Z"
                g = Signal(kind, side, 4, 9, when, 1.0, False, 0, 1.0, 2.0, *[None] * 5)
                line = _describe(degree, g)
                assert line.startswith(f"{side} point type {kind}" if degree == 1 else expected)
