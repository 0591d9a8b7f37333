"""Real engine servers on loopback ports, for the gRPC tests: the Rust one
(``target/ci/trading-engine serve``, or ``TRADING_ENGINE_BIN``) and the Python one (``python -m
trading_system serve python``), each started as a process that prints ``listening on HOST:PORT``
once ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "default.yaml"


TEST_SERVER = ROOT / "target" / "ci" / "trading-engine"
"""The Rust server the tests start: the ci profile's build, which `cargo test --profile ci`
(scripts/test.sh) makes anyway. The same code as the service build (target/service, what
scripts/run.sh and the images run) but without fat LTO, and with debug assertions and overflow
checks on, so the tests need no build of their own."""
TEST_SERVER_BUILD = "cargo build --profile ci -p trading-engine --bin trading-engine"


def rust_binary() -> Path:
    """``TRADING_ENGINE_BIN`` when set and not empty (as the CLI reads it), else ``TEST_SERVER``
    (conftest sets the variable to it, for the processes the tests start)."""
    return Path(os.environ.get("TRADING_ENGINE_BIN") or TEST_SERVER)


def command(engine: str, sets: list[str], config: Path = CONFIG) -> list[str]:
    args = ["serve", "--port", "0", "--config", str(config)]
    for s in sets:
        args += ["--set", s]
    if engine == "rust":
        return [str(rust_binary()), *args]
    return [sys.executable, "-m", "trading_system", "serve", "python", *args[1:]]


@dataclass
class Server:
    """A running server process and the address it listens on."""

    engine: str
    proc: subprocess.Popen[str]
    address: str
    log: list[str] = field(default_factory=list)

    def channel(self, **options: object) -> grpc.Channel:
        return grpc.insecure_channel(self.address, **options)  # type: ignore[arg-type]

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start(
    engine: str, sets: list[str] | None = None, config: Path = CONFIG, keep_log: bool = True
) -> Server:
    """Starts an engine server on a free port and waits for its ``listening on`` line. With
    ``keep_log`` its log (stderr) is collected in ``Server.log``; without, it is discarded
    (benchmarks: reading it would compete with the client for this process's time)."""
    return spawn(engine, command(engine, sets or [], config), keep_log)


def monitor_command(
    rust: str, python: str, sets: list[str] | None = None, config: Path = CONFIG
) -> list[str]:
    args = ["--port", "0", "--config", str(config), "--rust", rust, "--python", python]
    sets = list(sets or [])
    if not any(s.startswith("system.signals_file=") for s in sets):
        # The default file is under the working directory: tests keep none unless they ask.
        sets.insert(0, "system.signals_file=")
    for s in sets:
        args += ["--set", s]
    return [sys.executable, "-m", "trading_system", "serve", "monitor", *args]


def start_monitor(rust: str, python: str, sets: list[str] | None = None) -> Server:
    """Starts the monitor (``trading-system serve monitor``) in front of the two engines."""
    return spawn("monitor", monitor_command(rust, python, sets), True)


def spawn(
    engine: str, argv: list[str], keep_log: bool, env: dict[str, str] | None = None
) -> Server:
    """Starts a server process and waits for its ``listening on`` line (``env``: its whole
    environment, else this process's)."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if keep_log else subprocess.DEVNULL,
        text=True,
    )
    log: list[str] = []
    if keep_log:
        # Drained all along, so the server never blocks on a full pipe.
        threading.Thread(target=lambda: log.extend(proc.stderr or []), daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("listening on "):
            address = line.split("listening on ", 1)[1].strip()
            threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
            return Server(engine, proc, address, log)
    proc.wait(10)
    raise RuntimeError(f"{engine} server did not start (exit {proc.returncode}): {''.join(log)}")


@contextmanager
def running(engine: str, sets: list[str] | None = None) -> Iterator[Server]:
    s = start(engine, sets)
    try:
        yield s
    finally:
        s.stop()
