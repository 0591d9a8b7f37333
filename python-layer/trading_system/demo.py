"""The main job (``trading-system demo``, README command 1): the whole stack on loopback and a
bot using it.

Starts the Rust engine, the Python engine and the monitor (each on a free port, their logs in
``var/demo/`` of the source checkout, else of the working directory), then a demo bot streams
a real series (the checkout's BTC/USD 30-minute bars, or the one named) through the monitor
with the client library, printing the monitor's health and every buy/sell point, of every
degree (a higher degree's labelled ``D2 B1`` … as in the chart), as it appears (and when one
disappears); at the end it prints the health again, writes a chart of the session and
stops every process. Ctrl-C stops everything cleanly at any time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trading_system import resources
from trading_system.data import Bars, format_time, load
from trading_system.results import Signal, point_label

if TYPE_CHECKING:
    from trading_system.client import Client
    from trading_system.transport import Settings

ROOT = resources.checkout()
"""The source checkout the demo runs in (None for an installed package: the working directory
then holds its files)."""
SERIES = Path("tests") / "data" / "BTCUSD-BITSTAMP_30m.csv"
"""The demo's series, in the checkout (a real one: BTC/USD, 30-minute bars)."""
DATA = ROOT / SERIES if ROOT is not None else None
"""The default series; None outside a checkout (the demo then needs one named)."""
STARTUP_S = 60.0


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[str]
    address: str

    def stop(self, grace: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _spawn(name: str, argv: list[str], logs: Path) -> Process:
    """Starts a server and waits for its ``listening on HOST:PORT`` line."""
    log = (logs / f"{name}.log").open("w")
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        # Its own process group: a Ctrl-C in the terminal reaches the demo, which stops the
        # servers in order (the monitor first), instead of all of them at once.
        start_new_session=True,
    )
    log.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_S
    for line in proc.stdout:
        if line.startswith("listening on "):
            return Process(name, proc, line.split("listening on ", 1)[1].strip())
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"{name} did not start; see {logs / (name + '.log')}")


@contextmanager
def stack(config: Path, rust_binary: Path, logs: Path, out: TextIO) -> Iterator[Process]:
    """Both engines and the monitor, stopped (monitor first) when the block ends."""
    logs.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "trading_system"]
    started: list[Process] = []
    try:
        common = ["--port", "0", "--config", str(config)]
        started.append(_spawn("rust", [str(rust_binary), "serve", *common], logs))
        started.append(_spawn("python", [*py, "serve", "python", *common], logs))
        rust, python = started[0].address, started[1].address
        out.write(f"engines: rust {rust}, python {python}\n")
        monitor = [*py, "serve", "monitor", *common, "--rust", rust, "--python", python]
        started.append(_spawn("monitor", monitor, logs))
        out.write(f"monitor: {started[2].address}\n")
        out.flush()
        yield started[2]
    finally:
        for p in reversed(started):
            code = p.stop()
            out.write(f"stopped {p.name} (exit {code})\n")
        out.flush()


def _key(degree: int, s: Signal) -> tuple[int, str, str, str]:
    return (degree, s.type, s.side, s.time)


def _describe(degree: int, s: Signal) -> str:
    # Degree 1's lines read as they always did; a higher degree's start with its label.
    prefix = "" if degree == 1 else f"{point_label(degree, s.side, s.type)} "
    return f"{prefix}{s.side} point type {s.type} at {s.time}, price {s.price:g}" + (
        "" if s.final else " (not final yet)"
    )


def run_bot(
    address: str,
    bars: Bars,
    symbol: str,
    timeframe: str,
    rate: float,
    out: TextIO,
    settings: Settings | None,
    stop: threading.Event,
) -> int:
    """Streams ``bars`` through the monitor (connecting per ``settings``: TLS, token),
    printing each buy/sell point of every degree (higher degrees labelled ``D2 B1`` …, as in
    the chart) as it appears, changes or goes; the number of points, all degrees, at the
    end. Stops before the next bar once ``stop`` is set."""
    from trading_system.client import Client

    # Per degree: the final points, then the latest tail's (kept from the updates, §12.7).
    final: dict[int, list[Signal]] = {}
    tail: dict[int, list[Signal]] = {}
    shown: dict[tuple[int, str, str, str], Signal] = {}
    started = time.monotonic()
    client = Client(address, settings=settings, timeout=30.0)
    with client, client.stream(symbol, timeframe) as s:
        for i, row in enumerate(bars.rows()):
            delay = max(0.0, started + i / rate - time.monotonic()) if rate > 0 else 0.0
            if stop.wait(delay):
                break
            u = s.append(row)
            for d in (u.degree(1), *u.degrees):
                d.signals.apply(final.setdefault(d.degree, []))
                if d.tail is not None:
                    tail[d.degree] = list(d.tail.signals)
            now = {
                _key(n, x): x for n, points in final.items() for x in (*points, *tail.get(n, ()))
            }
            for k, x in now.items():
                if shown.get(k) != x:
                    verb = "signal" if k not in shown else "update"
                    what = _describe(k[0], x)
                    out.write(f"[bar {i + 1:>5} {format_time(row[0])}] {verb}: {what}\n")
            for k, x in shown.items():
                if k not in now:
                    out.write(f"[bar {i + 1:>5}] gone: {_describe(k[0], x)}\n")
            shown = now
            out.flush()
    return len(shown)


def health(admin: Client) -> str:
    """The monitor's status as ``trading-system health`` prints it; a bot holding only the
    client token may not read it (``Admin.Status`` takes the operator token): then a line that
    says so, and the bot goes on."""
    from trading_system.cli.admin import status_text
    from trading_system.client import ClientError

    try:
        return status_text(admin.status())
    except ClientError as e:
        if e.code.name != "PERMISSION_DENIED":
            raise
        return (
            "health: not shown: the monitor's status needs the operator token "
            "(server.operator_token_file); the client token streams\n"
        )


def main(
    data: Path,
    symbol: str,
    timeframe: str,
    rate: float,
    chart: Path | None,
    config: Path,
    rust_binary: Path,
    out: TextIO,
    load_options: Mapping[str, Any] | None = None,
    err: TextIO | None = None,
    monitor: str | None = None,
) -> int:
    from trading_system import transport
    from trading_system.client import Client
    from trading_system.config import load_config

    # The bot and the status calls connect as the configuration says (TLS, tokens).
    settings = transport.Settings.from_config(load_config(config))
    bars = load(data, **(load_options or {}))
    for notice in bars.notices:
        (err or sys.stderr).write(f"notice: {notice}\n")
    out.write(f"demo: {len(bars):,} bars of {data.name} as {symbol}/{timeframe}\n")

    # Ctrl-C (SIGINT) and SIGTERM only set a flag, looked at between bars and steps: an
    # exception raised by the handler could land in a finalizer and be lost.
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as started:
            if monitor is None:
                # The whole stack on loopback, stopped (monitor first) when the block ends.
                logs = (ROOT or Path()) / "var" / "demo"
                monitor = started.enter_context(stack(config, rust_binary, logs, out)).address
            else:
                # A stack already running (compose, Kubernetes): only the bot, which leaves it
                # running.
                out.write(f"monitor: {monitor} (running already)\n")
            if stop.is_set():
                return _interrupted(out)
            with Client(monitor, settings=settings, timeout=10.0) as admin:
                out.write(health(admin))
                points = run_bot(monitor, bars, symbol, timeframe, rate, out, settings, stop)
                if stop.is_set():
                    return _interrupted(out)
                out.write(f"demo: streamed {len(bars):,} bars, {points} buy/sell points now\n")
                out.write(health(admin))
            if chart is not None:
                with Client(monitor, settings=settings, timeout=60.0) as client:
                    analysis = client.snapshot(symbol, timeframe)
                from trading_system.chart import render

                chart.parent.mkdir(parents=True, exist_ok=True)
                chart.write_text(render(bars, analysis, f"{symbol} {timeframe}"), "utf-8")
                out.write(f"chart: {chart}\n")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.flush()
    return _interrupted(out) if stop.is_set() else 0


def _interrupted(out: TextIO) -> int:
    """Said once the demo saw Ctrl-C or SIGTERM: what remains of the stack is stopped as the
    block that started it ends; the status of a command ended by Ctrl-C."""
    out.write("demo: interrupted, stopping\n")
    out.flush()
    return 130
