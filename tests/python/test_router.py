"""The monitor's routing rules (docs/MONITOR.md, "Probing and routing") without processes: a
Router driven by probe, call and latency results on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from trading_system.config import SystemConfig
from trading_system.monitor.router import NotServing, Router

ADDRESSES = {"rust": "r", "python": "p"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(clock: Clock, **system: Any) -> Router:
    r = Router("rust", ADDRESSES, SystemConfig(**system), clock)
    r.ok("python", 1.0, probe=True)  # the standby answers first: no switch before the round
    r.ok("rust", 1.0, probe=True)
    r.start()
    return r


def probes(r: Router, clock: Clock, n: int, latency: dict[str, float] | None = None) -> None:
    """``n`` rounds of probes one second apart, each engine answering in ``latency`` ms (1 by
    default), each round followed by the latency check, as the monitor does."""
    for _ in range(n):
        clock.now += 1.0
        for e in ("rust", "python"):
            r.ok(e, (latency or {}).get(e, 1.0), probe=True)
            r.check_latency(e)


def test_start_failure_and_rise() -> None:
    clock = Clock()
    r = router(clock)
    assert (r.active, r.epoch, r.serving) == ("rust", 1, "rust")
    r.failed("rust", "UNAVAILABLE")  # forced: at once
    assert (r.active, r.epoch, r.order()) == ("python", 2, ["python", "rust"])
    assert r.engines["rust"].state == "failing" and "rust failed" in r.last_failover_reason
    for _ in range(2):
        r.failed("rust", "UNAVAILABLE")
    assert r.engines["rust"].state == "down"
    r.ok("rust", 1.0, probe=False)  # a call is not a probe: no rise
    assert not r.engines["rust"].eligible
    for _ in range(r.rise - 1):
        r.ok("rust", 1.0, probe=True)
    assert not r.engines["rust"].eligible
    r.ok("rust", 1.0, probe=True)
    assert r.engines["rust"].eligible and (r.active, r.epoch) == ("python", 2)  # no failback
    assert [(s.epoch, s.engine) for s in r.switches] == [(1, "rust"), (2, "python")]


def test_primary_down_at_start() -> None:
    r = Router("rust", ADDRESSES, SystemConfig(), Clock())
    r.ok("python", 1.0, probe=True)
    r.failed("rust", "UNAVAILABLE")
    assert r.active == "rust" and r.epoch == 1  # nothing moves before the first round is in
    r.start()
    assert (r.active, r.epoch) == ("python", 2)


def test_slow_active_fails_over_after_fall_checks() -> None:
    clock = Clock()
    r = router(clock, fall=3, latency_budget_ms=250, latency_window_ms=5000)
    probes(r, clock, 2, {"rust": 400.0})
    assert (r.active, r.engines["rust"].slow) == ("rust", False)  # two checks over: not yet
    probes(r, clock, 1, {"rust": 400.0})
    assert r.engines["rust"].state == "slow" and not r.engines["rust"].eligible
    assert (r.active, r.epoch) == ("python", 2) and "rust slow" in r.last_failover_reason
    # Slowness ends after `rise` checks under budget, once the slow samples left the window.
    probes(r, clock, 5)
    assert r.engines["rust"].slow  # the window (5 s) still holds slow samples
    probes(r, clock, r.rise)
    assert not r.engines["rust"].slow and r.engines["rust"].eligible
    assert (r.active, r.epoch) == ("python", 2)


def test_a_fault_toggling_every_150_ms_switches_at_most_once_per_hold_down() -> None:
    """Latency on the active engine switching on and off every 150 ms, for a minute, with
    failback on: the window's p99 stays over budget, so one switch, never back and forth."""
    clock = Clock()
    r = router(clock, auto_failback=True, hold_down_ms=10_000, health_check_interval_ms=100)
    for step in range(60_000 // 50):  # 50 ms steps: calls every step, probes every 100 ms
        clock.now += 0.05
        slow = (step * 50 // 150) % 2 == 0
        r.ok("rust", 400.0 if slow else 1.0, probe=False)
        r.ok("python", 1.0, probe=False)
        if step % 2 == 0:
            r.ok("rust", 400.0 if slow else 1.0, probe=True)
            r.ok("python", 1.0, probe=True)
            r.check_latency("rust")
            r.check_latency("python")
        assert r.epoch <= 2
    assert r.epoch == 2 and r.active == "python"


def test_hold_down_postpones_a_chosen_switch_not_a_forced_one() -> None:
    clock = Clock()
    r = router(clock, hold_down_ms=10_000, latency_window_ms=2000)
    r.failed("rust", "UNAVAILABLE")
    assert (r.active, r.epoch) == ("python", 2)
    probes(r, clock, r.rise)  # rust eligible again; python now slow within the hold-down
    probes(r, clock, 3, {"python": 400.0})
    assert r.engines["python"].slow and (r.active, r.epoch) == ("python", 2)  # held down
    probes(r, clock, 5, {"python": 400.0})  # 10 s after the last switch: it happens
    assert (r.active, r.epoch) == ("rust", 3)
    r.failed("rust", "UNAVAILABLE")  # forced, within the hold-down: python is not eligible
    assert (r.active, r.epoch) == ("rust", 3) and r.serving == ""
    r.take_over("python", "rust failed on a stream message")  # a slow answer beats none
    assert (r.active, r.epoch) == ("python", 4)


def test_failback_after_rise_and_hold_down() -> None:
    clock = Clock()
    r = router(clock, auto_failback=True, hold_down_ms=10_000)
    r.failed("rust", "UNAVAILABLE")
    probes(r, clock, r.rise)
    assert r.engines["rust"].eligible and (r.active, r.epoch) == ("python", 2)  # held down
    probes(r, clock, 10)
    assert (r.active, r.epoch) == ("rust", 3) and "failback to rust" in r.last_failover_reason


def test_override_holds_until_auto() -> None:
    clock = Clock()
    r = router(clock, hold_down_ms=0)
    r.set_mode("python")
    assert (r.active, r.epoch, r.mode) == ("python", 2, "python")
    r.failed("python", "DEADLINE_EXCEEDED")  # forced away, but the override holds...
    assert (r.active, r.epoch, r.mode) == ("rust", 3, "python")
    probes(r, clock, r.rise)  # ... and brings python back once it is eligible again
    assert (r.active, r.epoch) == ("python", 4) and "override" in r.last_failover_reason
    r.set_mode("auto")
    assert (r.active, r.epoch, r.mode) == ("python", 4, "auto")  # healthy: no switch
    with pytest.raises(ValueError):
        r.set_mode("fastest")
    r.failed("rust", "UNAVAILABLE")
    with pytest.raises(NotServing, match="rust does not take traffic"):
        r.set_mode("rust")
    assert (r.active, r.mode) == ("python", "auto")


def test_failover_disabled_switches_only_by_hand() -> None:
    clock = Clock()
    r = router(clock, failover_enabled=False)
    r.failed("rust", "UNAVAILABLE")
    r.take_over("python", "rust failed")
    assert (r.active, r.epoch) == ("rust", 1)
    r.set_mode("python")
    assert (r.active, r.epoch) == ("python", 2)


def test_percentiles_cover_the_window() -> None:
    clock = Clock()
    r = router(clock, latency_window_ms=1000)
    for ms in range(1, 101):
        r.ok("rust", float(ms), probe=False)
    assert (r.p("rust", 50), r.p("rust", 99)) == (50.0, 99.0)
    clock.now += 2.0
    assert r.p("rust", 99) == 0.0  # all older than the window
