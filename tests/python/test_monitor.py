"""The monitor (docs/MONITOR.md) with real processes on loopback: both engine servers and the
monitor in front of them, all on free ports. Forwarding, the Admin status and the CLI, failover
when the active engine is killed mid-stream, a manual failover under a running stream, both
engines down, and the manual override. No wall-clock assertions: conditions are awaited with a
generous deadline."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from cluster import WAIT, Cluster, Stream, columns, series, wait_for, without_epoch
from cluster import cluster as cluster_of
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from trading_system.proto import trading_pb2 as pb

BARS = int(os.environ.get("MONITOR_BARS", "2400"))
"""Bars per failover stream (at least 2,000 in the default run)."""
MONITOR_SETS = ["system.health_check_interval_ms=100", "system.hold_down_ms=0"]


def _cluster() -> Iterator[Cluster]:
    with cluster_of(MONITOR_SETS) as c:
        assert c.status().epoch == 1
        yield c


@pytest.fixture(scope="module")
def shared() -> Iterator[Cluster]:
    """A cluster nobody kills: forwarding and status."""
    yield from _cluster()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A cluster of its own, for the tests that kill engines."""
    yield from _cluster()


# ---- Forwarding and status --------------------------------------------------------------------


def test_forwarding_gives_the_engines_answers(shared: Cluster) -> None:
    monitor, rust = shared.stub(), shared.stub(shared.engines["rust"])
    req = pb.AnalyzeRequest(bars=columns(series(600)), with_macd=True)
    via = monitor.Analyze(req, timeout=30)
    direct = rust.Analyze(req, timeout=30)
    assert via.epoch >= 1 and direct.epoch == 0
    assert via.engine == "rust"
    # Serialized: NaN in the MACD lookback compares unequal as a float.
    assert without_epoch(via).SerializeToString() == direct.SerializeToString()

    assert monitor.GetConfig(pb.GetConfigRequest()) == rust.GetConfig(pb.GetConfigRequest())
    info = monitor.GetInfo(pb.InfoRequest())
    assert (info.engine, info.protocol) == ("rust", "trading.v1")

    # Errors pass through: code, message and the BadRequest details.
    bad = series(3)
    bad[1].high = bad[1].low - 1
    req = pb.AnalyzeRequest(bars=columns(bad))
    got = []
    for stub in (monitor, rust):
        with pytest.raises(grpc.RpcError) as e:
            stub.Analyze(req, timeout=30)
        status = rpc_status.from_call(e.value)  # type: ignore[arg-type]
        assert status is not None
        br = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(br)
        got.append((e.value.code(), e.value.details(), list(br.field_violations)))  # type: ignore[attr-defined]
    assert got[0] == got[1] and got[0][0] == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.RpcError) as e:
        monitor.GetSnapshot(pb.SnapshotRequest(symbol="NONE", timeframe="1m"), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_stream_reaches_both_engines(shared: Cluster) -> None:
    s = Stream(shared.stub())
    opened = s.open("MIRROR", "1m")
    assert opened.opened.session == "MIRROR/1m" and opened.engine == "rust"
    bars = series(300, seed=11)
    for i, b in enumerate(bars, 1):
        s.bar(i, b)
        assert s.receive().seq == i
    # A duplicate gets the cached answer; a gap is refused in-band.
    s.bar(300, bars[-1])
    assert without_epoch(s.receive()) == without_epoch(s.answers[300])
    s.bar(302, bars[-1])
    gap = s.receive()
    assert gap.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert gap.error.expected_seq == 301
    s.close()
    # The standby gets the journaled bars in batches: level once its lag is 0.
    wait_for(lambda: all(e.lag_bars == 0 for e in shared.status().engines), "python level")
    req = pb.SnapshotRequest(symbol="MIRROR", timeframe="1m")
    snaps = [shared.stub(shared.engines[e]).GetSnapshot(req) for e in ("rust", "python")]

    # The monitor's log names the session of each stream message (one JSON line each; the
    # log is read by a thread, so awaited).
    def logged() -> set[int]:
        lines = [json.loads(x) for x in list(shared.monitor.log) if x.startswith("{")]
        return {
            x["seq"]
            for x in lines
            if x.get("method") == "Stream" and x.get("session") == "MIRROR/1m"
        }

    wait_for(lambda: set(range(1, 301)) <= logged(), "the stream's log lines")
    assert snaps[0].last_seq == snaps[1].last_seq == 300
    assert without_engine(snaps[0].analysis) == without_engine(snaps[1].analysis)


def without_engine(m: Any) -> bytes:
    return bytes(m.SerializeToString())


def test_health_json_shows_both_engines(shared: Cluster) -> None:
    out = shared.cli("health", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["active"] == "rust" and doc["mode"] == "auto"
    engines = {e["engine"]: e for e in doc["engines"]}
    assert set(engines) == {"rust", "python"}
    for name, e in engines.items():
        assert e["address"] == shared.engines[name].address
        assert e["state"] == "serving" and e["eligible"] is True
        assert e["consecutive_ok"] >= 1 and e["consecutive_failed"] == 0
    text = shared.cli("health")
    assert text.returncode == 0 and "active: rust" in text.stdout


# ---- Failover ---------------------------------------------------------------------------------


def stream_through(
    c: Cluster,
    symbol: str,
    during: Callable[[], None],
    at: int = BARS // 2,
    join: Callable[[], None] | None = None,
) -> tuple[Stream, list[pb.Bar]]:
    """Streams ``BARS`` bars through the monitor on one stream, calling ``during`` right after
    sending bar ``at`` (before its answer is read), and ``join`` ten bars before the end."""
    s = Stream(c.stub())
    assert s.open(symbol, "1m").WhichOneof("kind") == "opened"
    bars = series(BARS, seed=len(symbol))
    for i, b in enumerate(bars, 1):
        s.bar(i, b)
        if i == at:
            during()
        if join is not None and i == len(bars) - 10:
            join()
        answer = s.receive()
        assert answer.WhichOneof("kind") == "update", answer
    return s, bars


def check_exactly_once(s: Stream, bars: list[pb.Bar]) -> list[int]:
    acks = [a.seq for a in s.answers[1:]]
    assert acks == list(range(1, len(bars) + 1))
    epochs = [a.epoch for a in s.answers]
    assert epochs == sorted(epochs)
    return epochs


def check_snapshot(c: Cluster, symbol: str, bars: list[pb.Bar], engine: str) -> None:
    monitor = c.stub()
    snap = monitor.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe="1m"), timeout=30)
    assert snap.engine == engine and snap.last_seq == len(bars)
    batch = c.stub(c.engines[engine]).Analyze(pb.AnalyzeRequest(bars=columns(bars)), timeout=60)
    assert snap.analysis.SerializeToString() == batch.analysis.SerializeToString()


def test_kill_active_engine_mid_stream(cluster: Cluster) -> None:
    rust = cluster.engines["rust"]
    s, bars = stream_through(cluster, "KILL", rust.proc.kill)
    s.close()
    epochs = check_exactly_once(s, bars)
    assert epochs[-1] > epochs[0]
    assert s.answers[1].engine == "rust" and s.answers[-1].engine == "python"
    check_snapshot(cluster, "KILL", bars, "python")
    status = cluster.status()
    assert status.active == "python" and status.epoch == epochs[-1]
    assert "rust failed" in status.last_failover_reason and status.last_failover_ms > 0
    health = json.loads(cluster.cli("health", "--json").stdout)
    rust_status = next(e for e in health["engines"] if e["engine"] == "rust")
    assert rust_status["eligible"] is False and int(rust_status["lag_bars"]) > 0


def test_manual_failover_under_a_running_stream(cluster: Cluster) -> None:
    result: list[subprocess.CompletedProcess[str]] = []

    # The CLI runs while bars keep flowing; it has finished before the last ten are sent.
    cli = threading.Thread(target=lambda: result.append(cluster.cli("failover", "--to", "python")))
    s, bars = stream_through(cluster, "MANUAL", cli.start, join=cli.join)
    s.close()
    assert result[0].returncode == 0, result[0].stderr
    epochs = check_exactly_once(s, bars)
    assert epochs[-1] == epochs[0] + 1
    assert s.answers[-1].engine == "python"
    check_snapshot(cluster, "MANUAL", bars, "python")
    # Mirrored: the engine that is now standby has the same state.
    check_snapshot_direct(cluster, "MANUAL", bars)
    status = cluster.status()
    assert (status.active, status.mode) == ("python", "python")


def check_snapshot_direct(c: Cluster, symbol: str, bars: list[pb.Bar]) -> None:
    req = pb.SnapshotRequest(symbol=symbol, timeframe="1m")
    snaps = [c.stub(c.engines[e]).GetSnapshot(req, timeout=30) for e in ("rust", "python")]
    assert snaps[0].last_seq == snaps[1].last_seq == len(bars)
    assert snaps[0].analysis.SerializeToString() == snaps[1].analysis.SerializeToString()


def test_lagging_engine_is_resynced_and_can_take_over(cluster: Cluster) -> None:
    """Rust is killed mid-stream (Python takes over, Rust lags), comes back on its port and is
    rebuilt from the monitor's journal in the background while bars keep coming; once it has
    rejoined the mirror (lag 0), Python is killed and Rust, now in sync, finishes the stream."""
    s = Stream(cluster.stub())
    assert s.open("RESYNC", "1m").WhichOneof("kind") == "opened"
    bars = series(BARS, seed=23)
    third = len(bars) // 3
    rejoined = 0

    def lag() -> int:
        return int(cluster.status().engines[0].lag_bars)

    for i, b in enumerate(bars, 1):
        s.bar(i, b)
        if i == third:
            cluster.engines["rust"].proc.kill()
        answer = s.receive()
        assert answer.WhichOneof("kind") == "update", answer
        if i == third + 10:
            assert lag() > 0
            cluster.restart("rust")
            wait_for(lambda: cluster.status().engines[0].eligible, "rust eligible again")
        if i > third + 10 and not rejoined and lag() == 0:
            rejoined = i  # the rebuild joined the mirror before this message
            check_snapshot_direct(cluster, "RESYNC", bars[:i])
            cluster.engines["python"].proc.kill()
    s.close()
    assert rejoined, "rust never rejoined the mirror"
    epochs = check_exactly_once(s, bars)
    assert len(set(epochs)) == 3  # rust, python, rust again
    assert s.answers[-1].engine == "rust"
    check_snapshot(cluster, "RESYNC", bars, "rust")


def test_both_engines_down_fail_closed(cluster: Cluster) -> None:
    monitor = cluster.stub()
    s = Stream(monitor)
    s.open("DOWN", "1m")
    s.bar(1, series(1)[0])
    s.receive()
    for e in cluster.engines.values():
        e.proc.kill()
        e.proc.wait()
    with pytest.raises(grpc.RpcError) as err:
        monitor.Analyze(pb.AnalyzeRequest(bars=columns(series(10))), timeout=WAIT)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as err:
        monitor.GetSnapshot(pb.SnapshotRequest(symbol="DOWN", timeframe="1m"), timeout=WAIT)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    s.bar(2, series(2)[1])
    with pytest.raises(grpc.RpcError) as err:
        s.receive()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    wait_for(lambda: cluster.status().active == "", "the monitor to see no engine serving")
    health = cluster.cli("health")
    assert health.returncode == 1 and "none serves" in health.stdout


def test_override_holds_until_auto(cluster: Cluster) -> None:
    assert cluster.cli("failover", "--to", "python").returncode == 0
    status = cluster.status()
    assert (status.active, status.mode) == ("python", "python")
    epoch = status.epoch
    monitor = cluster.stub()
    assert monitor.GetInfo(pb.InfoRequest()).engine == "python"

    python = cluster.engines["python"]
    python.proc.kill()
    python.proc.wait()
    # The call is not lost (retried on rust); rust serves while python is down, the mode holds.
    assert monitor.GetInfo(pb.InfoRequest(), timeout=WAIT).engine == "rust"
    wait_for(lambda: cluster.status().active == "rust", "rust to take over")
    status = cluster.status()
    assert (status.mode, status.epoch) == ("python", epoch + 1)
    refused = cluster.cli("failover", "--to", "python")  # python is down: refused
    assert refused.returncode != 0 and "python does not take traffic" in refused.stderr

    cluster.restart("python")  # back on its port: the override brings it back
    wait_for(lambda: cluster.status().active == "python", "python active again")
    assert cluster.status().epoch == epoch + 2
    assert monitor.GetInfo(pb.InfoRequest(), timeout=WAIT).engine == "python"

    out = cluster.cli("override", "auto")
    assert out.returncode == 0, out.stderr
    status = cluster.status()
    assert (status.active, status.mode, status.epoch) == ("python", "auto", epoch + 2)
