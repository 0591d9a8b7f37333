"""The load-and-fault suite (docs/MONITOR.md, "Load and faults"): many concurrent bots streaming
through the monitor while the active engine is killed (-9) or stopped (SIGSTOP), the standby
restarted, the configuration changed while an engine is down, the monitor itself killed and
restarted — each with no client-visible error, no bar lost or applied twice, no stale answer,
and every session's final state equal to a batch analysis of its bars; plus the abuse cases
(malformed bytes, huge identifiers, a thousand bad bars, thousands of sessions, bursts of
opens, a huge Analyze), each leaving the active engine in service.

Default size: 20 bots x 150 bars; ``slow`` (``make slow``): 200 bots x 1,000 bars.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cluster import Cluster, cluster, columns, wait_for
from load import Bot, Bots, bars_for
from servers import CONFIG

from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc

SIZES = [
    pytest.param(20, 150, id="20x150"),
    pytest.param(200, 1000, marks=pytest.mark.slow, id="200x1000"),
]
QUIET = ["logging.level=warn"]
"""Load runs log only warnings: a JSON line per message of 200 bots would be the test's cost."""
FAST = [
    *QUIET,
    "system.health_check_interval_ms=100",
    "system.hold_down_ms=0",
    "system.max_opens_per_s=100000",
]


def switches(s: pb.StatusResponse) -> list[tuple[int, str, str]]:
    """The switches of a status, for an assertion's message: a switch under load may come from
    the latency verdict (the host busy) or from a failure, and only the reasons tell."""
    return [(w.epoch, w.engine, w.reason) for w in s.switches]


def engines(s: pb.StatusResponse) -> list[tuple[str, str, bool, bool, float, str]]:
    """Each engine's state, eligibility, slowness, p99 and last error, for a message."""
    return [(e.engine, e.state, e.eligible, e.slow, e.p99_ms, e.last_error) for e in s.engines]


def check_run(c: Cluster, bots: list[Bot], n: int, resumed: bool = False) -> None:
    """No client-visible error; every bot's numbers acknowledged in order, each once (with a
    resume a number acknowledged just before the monitor died may be known only from the
    resume); epochs never go back and each answer came from its epoch's engine; every
    session's final state, read through the monitor, equals a batch analysis of its bars."""
    errors = [f"{b.symbol}: {e}" for b in bots for e in b.errors]
    assert not errors, errors[:5]
    history = {s.epoch: s.engine for s in c.status().switches}
    for b in bots:
        seqs = [a[0] for a in b.acks]
        if resumed:
            assert seqs == sorted(set(seqs)) and seqs[-1] == n, b.symbol
        else:
            assert seqs == list(range(1, n + 1)), b.symbol
        epochs = [a[2] for a in b.acks]
        assert epochs == sorted(epochs), f"{b.symbol}: an older epoch after a newer one"
        wrong = [a for a in b.acks if history.get(a[2]) != a[1]]
        assert not wrong, f"{b.symbol}: answers not from their epoch's engine: {wrong[:3]}"
    stub = c.stub()
    for b in bots:
        snap = stub.GetSnapshot(pb.SnapshotRequest(symbol=b.symbol, timeframe="1m"), timeout=60)
        assert snap.last_seq == n, b.symbol
        # With the session's own configuration (a later UpdateConfig does not change it).
        request = pb.AnalyzeRequest(bars=columns(b.bars), config=snap.analysis.config)
        batch = stub.Analyze(request, timeout=60)
        assert snap.analysis.SerializeToString() == batch.analysis.SerializeToString(), b.symbol


def check_standby_level(c: Cluster, bots: list[Bot]) -> None:
    """Both engines end holding every session's full state (the standby caught up)."""
    wait_for(lambda: all(e.lag_bars == 0 for e in c.status().engines), "no engine lagging")
    stubs = {e: c.stub(c.engines[e]) for e in c.engines}
    for b in bots[:: max(1, len(bots) // 10)]:
        req = pb.SnapshotRequest(symbol=b.symbol, timeframe="1m")
        snaps = [stubs[e].GetSnapshot(req, timeout=60) for e in stubs]
        assert snaps[0].last_seq == snaps[1].last_seq == len(b.bars)
        assert snaps[0].analysis.SerializeToString() == snaps[1].analysis.SerializeToString()


def run(
    c: Cluster, count: int, n: int, fault: Callable[[Bots], None], resume: bool = False
) -> list[Bot]:
    bots = Bots(c.monitor.address, count, n, prefix="L", resume=resume)
    bots.start()
    fault(bots)
    return bots.finish()


def at_random_moment(bots: Bots, total: int) -> None:
    """Waits until a random share (a quarter to a half) of all bars were acknowledged."""
    bots.reach(int(total * random.uniform(0.25, 0.5)))


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_no_fault(count: int, n: int) -> None:
    with cluster(FAST, engine_sets=QUIET) as c:
        bots = run(c, count, n, lambda b: None)
        check_run(c, bots, n)
        check_standby_level(c, bots)
        s = c.status()
        assert s.epoch == 1, switches(s)


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_kill_9_of_the_active_under_load(count: int, n: int) -> None:
    with cluster(FAST, engine_sets=QUIET) as c:

        def fault(bots: Bots) -> None:
            at_random_moment(bots, count * n)
            c.kill("rust")

        bots = run(c, count, n, fault)
        check_run(c, bots, n)
        assert c.status().active == "python"
        c.restart("rust")
        check_standby_level(c, bots)


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_sigstop_of_the_active_under_load(count: int, n: int) -> None:
    with cluster(FAST, engine_sets=QUIET) as c:

        def fault(bots: Bots) -> None:
            at_random_moment(bots, count * n)
            c.pause("rust", True)
            time.sleep(2.0)
            c.pause("rust", False)

        bots = run(c, count, n, fault)
        check_run(c, bots, n)
        check_standby_level(c, bots)


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_standby_restarted_under_load(count: int, n: int) -> None:
    with cluster(FAST, engine_sets=QUIET) as c:

        def fault(bots: Bots) -> None:
            at_random_moment(bots, count * n)
            c.kill("python")
            c.restart("python")

        bots = run(c, count, n, fault)
        check_run(c, bots, n)
        check_standby_level(c, bots)
        s = c.status()
        assert s.epoch == 1, switches(s)  # the active was never touched


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_configuration_changed_while_an_engine_is_down(count: int, n: int) -> None:
    """UpdateConfig through the monitor while Python is down: Python gets the new
    configuration before it takes traffic again, and after a failover to it the same Analyze
    gives the same answer as before it."""
    with cluster(FAST, engine_sets=QUIET) as c:
        stub = c.stub()
        probe = pb.AnalyzeRequest(bars=columns(bars_for("CONFIG", 400)))

        def fault(bots: Bots) -> None:
            at_random_moment(bots, count * n)
            c.kill("python")
            new = pb.EngineConfig(
                macd=pb.MacdConfig(fast_period=5, slow_period=13),
                pen=pb.PenConfig(definition="traditional"),
            )
            answer = stub.UpdateConfig(pb.UpdateConfigRequest(config=new), timeout=30)
            assert answer.config.macd.fast_period == 5
            c.restart("python")

        bots = run(c, count, n, fault)
        check_run(c, bots, n)
        wait_for(lambda: all(e.config_synced for e in c.status().engines), "configs synced")
        versions = {e.config_version for e in c.status().engines}
        assert len(versions) == 1, versions
        before = stub.Analyze(probe, timeout=60)
        assert before.engine == "rust"
        c.kill("rust")
        wait_for(lambda: c.status().active == "python", "python active")
        after = stub.Analyze(probe, timeout=60)
        assert after.engine == "python"
        assert after.analysis.SerializeToString() == before.analysis.SerializeToString()
        assert after.analysis.config.macd.fast_period == 5


@pytest.mark.parametrize(("count", "n"), SIZES)
def test_monitor_killed_and_restarted_under_load(count: int, n: int, tmp_path: Path) -> None:
    state = tmp_path / "monitor.sqlite"
    with cluster([*FAST, f"system.state_file={state}"], engine_sets=QUIET) as c:

        def fault(bots: Bots) -> None:
            at_random_moment(bots, count * n)
            c.restart_monitor()

        bots = run(c, count, n, fault, resume=True)
        assert sum(b.reconnects for b in bots) >= 1
        check_run(c, bots, n, resumed=True)
        check_standby_level(c, bots)


# --- Abuse: the active engine stays in service ---------------------------------------------------


def assert_untouched(c: Cluster) -> None:
    s = c.status()
    assert s.epoch == 1 and s.active == "rust", switches(s)
    assert all(e.eligible and not e.slow for e in s.engines), engines(s)


def raw_call(c: Cluster, method: str, data: bytes) -> grpc.RpcError:
    ch = c.monitor.channel()
    call = ch.unary_unary(f"/trading.v1.Trading/{method}", request_serializer=None)
    with pytest.raises(grpc.RpcError) as e:
        call(data, timeout=30)
    ch.close()
    return e.value


def test_malformed_bytes_do_not_flip_the_engines() -> None:
    with cluster(FAST) as c:
        valid = pb.AnalyzeRequest(bars=columns(bars_for("RAW", 50))).SerializeToString()
        for _ in range(20):
            # Field 3 (with_macd, a varint) sent as a length-delimited field.
            err = raw_call(c, "Analyze", valid + bytes([0x1A, 0x01, 0x00]))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert err.details() == "the request is not a valid trading.v1.AnalyzeRequest"  # type: ignore[attr-defined]
            err = raw_call(c, "GetSnapshot", b"\xff\xff\xff")
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert_untouched(c)


def test_huge_identifiers_are_refused_briefly() -> None:
    with cluster(FAST) as c:
        stub = c.stub()
        symbol = "X" * 10_000_000
        calls = stub.Stream(
            iter([pb.StreamRequest(open=pb.OpenSession(symbol=symbol, timeframe="1m"))]),
            timeout=60,
        )
        with pytest.raises(grpc.RpcError) as e:
            list(calls)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert len(e.value.details()) < 1000  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as e:
            stub.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe="1m"), timeout=60)
        assert len(e.value.details()) < 1000  # type: ignore[attr-defined]
        logged = sum(len(line) for line in c.monitor.log)
        assert logged < 1_000_000, f"{logged} bytes of monitor log"
        assert_untouched(c)


def test_a_thousand_bad_bars_give_capped_details() -> None:
    with cluster(FAST) as c:
        bars = bars_for("BAD", 1000)
        for b in bars:
            b.high = b.low - 1.0  # every bar breaks high >= low
        with pytest.raises(grpc.RpcError) as e:
            c.stub().Analyze(pb.AnalyzeRequest(bars=columns(bars)), timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        details = dict(e.value.trailing_metadata())["grpc-status-details-bin"]  # type: ignore[attr-defined]
        assert len(details) < 8192
        assert_untouched(c)


@pytest.mark.parametrize(
    ("sessions", "cap"),
    [pytest.param(1000, 300, id="1000"), pytest.param(10_000, 2000, marks=pytest.mark.slow)],
)
def test_many_sessions_are_capped_on_both_engines(sessions: int, cap: int) -> None:
    """One-bar sessions, in waves, beyond ``system.max_sessions``: the least recently used
    idle ones are closed on both engines, which end holding the same sessions; while every
    session has a stream, one more open is refused (RESOURCE_EXHAUSTED), nothing is cut."""
    sets = [*FAST, f"system.max_sessions={cap}", f"system.max_streams={4 * cap}"]
    with cluster(sets, engine_sets=QUIET) as c:
        wave = cap // 3
        for w in range(sessions // wave):
            bots = Bots(c.monitor.address, wave, 1, prefix=f"S{w}-")
            bots.start()
            errors = [e for b in bots.finish() for e in b.errors]
            assert not errors, errors[:3]

        def counts() -> list[int]:
            return [c.stub(c.engines[e]).GetInfo(pb.InfoRequest()).sessions for e in c.engines]

        seen: list[int] = []

        def level() -> bool:
            seen[:] = counts()
            return seen == [cap, cap]

        wait_for(level, lambda: f"both engines at {cap} sessions (rust, python: {seen})")
        assert c.status().sessions == cap
        # Every session streaming at once, one more than the cap: exactly one refused.
        bots = Bots(c.monitor.address, cap + 1, 2, prefix="FULL", pace=0.5)
        bots.start()
        refused = [e for b in bots.finish() for e in b.errors]
        assert len(refused) == 1 and "system.max_sessions" in refused[0], (
            switches(c.status()),
            [e.split("debug_error_string")[0] for e in refused[:3]],
        )
        assert_untouched(c)


def test_idle_sessions_are_closed_on_both_engines() -> None:
    """Sessions with no stream for ``system.session_idle_ms`` are closed on both engines; one
    still streaming is kept."""
    with cluster([*FAST, "system.session_idle_ms=1000"], engine_sets=QUIET) as c:
        done = Bots(c.monitor.address, 5, 3, prefix="IDLE")
        done.start()
        assert not [e for b in done.finish() for e in b.errors]
        live = Bots(c.monitor.address, 1, 40, prefix="LIVE", pace=0.1)
        live.start()

        def counts() -> list[int]:
            return [c.stub(c.engines[e]).GetInfo(pb.InfoRequest()).sessions for e in c.engines]

        wait_for(lambda: counts() == [1, 1], "only the live session left on both engines")
        assert c.status().sessions == 1
        assert not [e for b in live.finish() for e in b.errors]


def test_bursts_of_opens_do_not_mark_engines_slow() -> None:
    """800 streams opened at once: refused beyond the open rate (RESOURCE_EXHAUSTED), never
    counted against an engine."""
    with cluster(
        [*QUIET, "system.health_check_interval_ms=100", "system.max_opens_per_s=200"]
    ) as c:
        bots = Bots(c.monitor.address, 800, 1, prefix="B")
        bots.start()
        done = bots.finish()
        refused = [e for b in done for e in b.errors]
        assert refused and all("RESOURCE_EXHAUSTED" in e for e in refused), refused[:3]
        assert len(refused) < 800
        time.sleep(1.0)  # a few latency checks after the burst
        assert_untouched(c)


def test_a_huge_analyze_does_not_switch() -> None:
    with cluster([*FAST, "system.latency_budget_ms=100"]) as c:
        bars = columns(bars_for("HUGE", 300_000))
        stub = c.stub()
        for _ in range(3):
            assert stub.Analyze(pb.AnalyzeRequest(bars=bars), timeout=120).engine == "rust"
        time.sleep(1.0)
        assert_untouched(c)


def test_config_digest_is_reported_by_both_engines() -> None:
    with cluster(FAST) as c:
        wait_for(lambda: all(e.config_synced for e in c.status().engines), "configs synced")
        infos = [
            rpc.TradingStub(c.engines[e].channel()).GetInfo(pb.InfoRequest()) for e in c.engines
        ]
        assert infos[0].config_version == infos[1].config_version != ""
        assert {e.config_version for e in c.status().engines} == {infos[0].config_version}
        assert CONFIG.exists()
