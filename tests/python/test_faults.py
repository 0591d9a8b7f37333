"""The fault-injection suite (docs/MONITOR.md, "Fault injection"): real engine and monitor
processes on loopback, the engines behind FaultProxy where a scenario needs latency; bars
streamed through the monitor while processes are killed (-9), stopped (SIGSTOP), slowed down,
restarted, overridden. Each scenario ends with the checker (``cluster.check``): every sequence
number acknowledged exactly once, no answer from an old epoch (epochs never go back and each
answer came from the engine active in its epoch), the final state equal to a batch analysis of
the recorded input.

Each scenario streams FAULT_BARS bars (1,200 by default) and 10,000 under the ``slow`` marker.
Nothing asserts wall-clock times: conditions are awaited with a generous deadline.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster import (
    Ack,
    Cluster,
    Feeder,
    check,
    check_engines_agree,
    cluster,
    columns,
    series,
    wait_for,
)

from trading_system.client import Client, Retry
from trading_system.monitor.relay import ATTEMPTS
from trading_system.proto import trading_pb2 as pb

SIZES = [1200, pytest.param(10_000, marks=pytest.mark.slow, id="10000")]
"""Bars per scenario: a default run and the full size (``make slow``)."""
FAST = [
    "system.health_check_interval_ms=100",
    "system.call_timeout_ms=500",
    "system.hold_down_ms=0",
]
"""Probes every 100 ms and a 500 ms deadline: faults are found quickly, tests stay short."""
PATIENT = Retry(max_attempts=80, base=0.05, cap=0.5)
"""A bot's retry policy that outlasts an outage of several seconds."""


def client_feed(
    c: Cluster, symbol: str, n: int, during: dict[int, Callable[[], None]]
) -> tuple[list[pb.Bar], list[Ack], int]:
    """Streams ``n`` bars with the client library (which reconnects and resumes by sequence
    number), calling ``during[i]`` after bar ``i`` was acknowledged. The bars, the acks and the
    number of reconnects."""
    bars = series(n, seed=zlib.crc32(symbol.encode()))
    acks = []
    # A resume may wait for the session to be rebuilt on an engine: a patient deadline.
    with Client(c.monitor.address, timeout=30.0, retry=PATIENT) as client:
        with client.stream(symbol, "1m") as s:
            for i, b in enumerate(bars, 1):
                u = s.append((b.time, b.open, b.high, b.low, b.close, b.volume))
                acks.append(Ack(u.seq, u.engine, u.epoch, u.to_dict()))
                if i in during:
                    during[i]()
            reconnects = s.reconnects
    return bars, acks, reconnects


def switches(c: Cluster) -> list[pb.Switch]:
    return list(c.status().switches)


# --- Crashes and hangs --------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_kill_9_of_the_active_engine(n: int) -> None:
    with cluster(FAST) as c:
        f = Feeder(c, "KILL9", n)
        f.start()
        f.reach(n // 3)
        c.kill("rust")
        acks = f.finish()
        check(c, f.symbol, f.bars, acks)
        assert acks[0].engine == "rust" and acks[-1].engine == "python"
        assert "rust failed" in switches(c)[-1].reason


@pytest.mark.parametrize("n", SIZES)
def test_sigstop_for_2_s_then_sigcont(n: int) -> None:
    """The active engine hangs: found by the call deadline, Python takes over; its answers to
    the messages it held are never delivered (the checker: every answer from its epoch's
    engine); after SIGCONT it is rebuilt from the journal and rejoins the mirror."""
    with cluster(FAST) as c:
        f = Feeder(c, "SIGSTOP", n)
        f.start()
        f.reach(n // 3)
        c.pause("rust", True)
        wait_for(lambda: c.status().active == "python", "python active")
        time.sleep(2.0)  # the fault's length, not an assertion
        c.pause("rust", False)
        wait_for(lambda: c.engine_status("rust").eligible, "rust eligible after SIGCONT")
        acks = f.finish()
        check(c, f.symbol, f.bars, acks)
        assert [s.engine for s in switches(c)] == ["rust", "python"]
        assert any(a.engine == "python" for a in acks)


@pytest.mark.parametrize("n", SIZES)
def test_both_engines_down_then_one_back(n: int) -> None:
    """Both engines killed: the stream fails closed (UNAVAILABLE, no stale answer); the bot's
    client retries; Python comes back empty and the monitor rebuilds the session on it from
    its journal when the client resumes."""
    with cluster(FAST) as c:

        def outage() -> None:
            c.kill("rust")
            c.kill("python")
            # Twice as long as the monitor waits for an engine to come back before it fails
            # closed (one call deadline per attempt), so the stream must fail and the client
            # must resume.
            threading.Timer(2 * ATTEMPTS * 0.5, lambda: c.restart("python")).start()

        bars, acks, reconnects = client_feed(c, "BOTHDOWN", n, {n // 2: outage})
        assert reconnects >= 1
        check(c, "BOTHDOWN", bars, acks)
        assert acks[-1].engine == "python"


@pytest.mark.parametrize("n", SIZES)
def test_standby_killed_during_a_failover(n: int) -> None:
    """Rust killed (Python takes over), restarted and being rebuilt from the journal in the
    background; Python killed in the middle of that: the only engine left, still rebuilding,
    is rebuilt on the spot and takes over the stream."""
    with cluster(FAST) as c:
        f = Feeder(c, "STANDBY", n)
        f.start()
        f.reach(n // 4)
        c.kill("rust")
        f.reach(n // 2)
        c.restart("rust")
        # The moment its rebuild starts (it replays about n/2 bars), Python goes.
        wait_for(lambda: c.engine_status("rust").resyncing > 0, "rust being rebuilt")
        c.kill("python")
        acks = f.finish()
        check(c, f.symbol, f.bars, acks)
        assert [s.engine for s in switches(c)] == ["rust", "python", "rust"]


RESTARTS = [
    pytest.param(1200, 5, 1.0, id="1200-5"),
    pytest.param(10_000, 20, 3.0, marks=pytest.mark.slow, id="10000-20-in-60s"),
]


@pytest.mark.parametrize(("n", "restarts", "every"), RESTARTS)
def test_primary_restarted_again_and_again(n: int, restarts: int, every: float) -> None:
    """kill -9 of the primary and a restart on its port, ``restarts`` times, one every
    ``every`` seconds (20 in a minute in the slow run), with automatic failback: the stream
    goes on, no bar lost or doubled."""
    with cluster([*FAST, "system.auto_failback=true"]) as c:
        f = Feeder(c, "RESTARTS", n, rate=n / (restarts * every + 3.0))
        f.start()
        for _ in range(restarts):
            time.sleep(every)
            c.kill("rust")
            c.restart("rust")
        acks = f.finish()
        check(c, f.symbol, f.bars, acks)
        assert len(switches(c)) >= 3  # it failed over and back at least once


# --- Latency -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_latency_failover_without_flapping(n: int) -> None:
    """Rust answers 400 ms late (budget 250): far past its adaptive deadline (a multiple of its
    p99 of about a millisecond), so it is taken for hung and Python takes over. Then Python's
    latency flaps on and off every 150 ms: within the 10 s hold-down the monitor waits for
    Python up to the call deadline instead of switching, so it switches at most once per 10 s,
    never back and forth."""
    sets = [
        "system.health_check_interval_ms=100",
        "system.call_timeout_ms=2000",
        "system.latency_budget_ms=250",
        "system.latency_window_ms=2000",
        "system.hold_down_ms=10000",
        "system.auto_failback=true",
        # Well under the 400 ms fault, well over a CPU stall of a loaded 2-core machine: this
        # test is about flapping, and a spurious failover before the fault would void it.
        "system.min_deadline_ms=150",
    ]
    with cluster(sets, proxies=True) as c:
        f = Feeder(c, "LATENCY", n)
        f.start()
        f.reach(n // 4)
        assert c.status().epoch == 1, switches(c)  # no failover before the fault
        c.proxies["rust"].set_delay(400)
        wait_for(lambda: c.status().active == "python", "latency failover to python")
        assert c.engine_status("rust").state in ("slow", "failing")
        c.proxies["rust"].set_delay(0)
        c.proxies["python"].toggle_delay(400, 150)
        time.sleep(12.0)  # the flapping fault, longer than one hold-down
        c.proxies["python"].stop_toggle()
        acks = f.finish()
        history = switches(c)
        check(c, f.symbol, f.bars, acks)
        assert history[1].reason.startswith(("rust slow", "rust failed: Stream: DEADLINE"))
        apart = [b.at_ms - a.at_ms for a, b in zip(history[1:], history[2:], strict=False)]
        assert all(gap >= 10_000 for gap in apart), history
        assert len(history) <= 3


# --- Operators and the monitor itself -----------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_manual_override_under_load(n: int) -> None:
    """Four streams at 250 bars/s each (1,000 bars/s offered) while an operator flips the
    override between the engines and back to auto; every stream passes the checker and both
    engines end in sync."""
    with cluster(FAST) as c:
        feeders = [Feeder(c, f"LOAD{i}", n // 4, rate=250.0) for i in range(4)]
        for f in feeders:
            f.start()
        for target in ("python", "rust", "python", "auto"):
            feeders[0].reach(feeders[0].done + n // 40)
            out = (
                c.cli("failover", "--to", target) if target != "auto" else c.cli("override", "auto")
            )
            assert out.returncode == 0, out.stderr
        for f in feeders:
            acks = f.finish()
            check(c, f.symbol, f.bars, acks)
            check_engines_agree(c, f.symbol, f.bars)
        assert [s.engine for s in switches(c)][:4] == ["rust", "python", "rust", "python"]


@pytest.mark.parametrize("n", SIZES)
def test_monitor_restarted(n: int, tmp_path: Path) -> None:
    """The monitor is killed (-9) mid-stream and started again on its port with its state
    file: the bot's client resumes by sequence number, epochs keep increasing, and the
    restarted monitor can still rebuild a lagging engine from the saved journal."""
    state = tmp_path / "monitor.sqlite"
    with cluster([*FAST, f"system.state_file={state}"]) as c:

        def restart_monitor() -> None:
            c.restart_monitor()

        def kill_rust() -> None:
            c.kill("rust")

        def back_rust() -> None:
            c.restart("rust")
            wait_for(lambda: c.engine_status("rust").eligible, "rust back")

        plan = {n // 4: kill_rust, n // 2: restart_monitor, n // 2 + 10: back_rust}
        bars, acks, reconnects = client_feed(c, "MONRESTART", n, plan)
        assert reconnects >= 1
        check(c, "MONRESTART", bars, acks)
        wait_for(lambda: c.engine_status("rust").lag_bars == 0, "rust rebuilt")
        check_engines_agree(c, "MONRESTART", bars)
        reasons = [s.reason for s in switches(c)]
        assert "monitor restarted" in reasons


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    yield
    for t in threading.enumerate():
        if isinstance(t, Feeder):
            t.join(1)


def test_hang_during_a_long_call() -> None:
    """An Analyze in flight on an engine that hangs is abandoned as soon as a probe finds the
    hang, and answered by the other engine: the monitor does not wait for the batch deadline
    (120 s here, past the client's own 30 s, which would end the call first)."""
    with cluster([*FAST, "system.batch_timeout_ms=120000"]) as c:
        req = pb.AnalyzeRequest(bars=columns(series(20_000, seed=8)))
        c.pause("rust", True)
        answer = c.stub().Analyze(req, timeout=30)
        assert answer.engine == "python" and answer.analysis.bars == 20_000
        assert c.status().active == "python"
