"""Routing state: per-engine probe, call and latency results, the active engine, the mode and
the epoch (docs/MONITOR.md, "Probing and routing").

Everything here runs on the monitor's event loop (no locks) and takes the time from a clock it
is given, so the rules are tested without sleeping. Every switch of the active engine
increments the epoch and is recorded (when, to which engine, why); answers carry the epoch they
were given under, and only the active engine's answers are delivered (the fence).

Two kinds of switch:

- **forced**: the active engine failed (refused, reset, deadline exceeded, NOT_SERVING) or was
  found slow and another engine can take over; a failure switches at once, whatever the
  hold-down, because the alternative is no service;
- **chosen**: away from an engine whose p99 stayed over budget, a failback to the primary, back
  to an overridden engine that recovered: only once ``hold_down_ms`` has passed since the last
  switch, so a flapping fault causes at most one switch per hold-down interval, and only to an
  engine that holds every session's state (``synced``: none lagging, no rebuild under way).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from trading_system.config import SystemConfig
from trading_system.monitor import ENGINES, MODES

MAX_SAMPLES = 8192
"""At most this many latencies per engine in the window (the newest), whatever its span."""
DOWN_AFTER = 3
"""Consecutive failures after which an engine is reported ``down`` rather than ``failing``."""
HISTORY = 100
"""Switches kept for the status."""


class NotServing(Exception):
    """An override to an engine that does not take traffic: refused, nothing changes."""


def other(engine: str) -> str:
    return ENGINES[1] if engine == ENGINES[0] else ENGINES[0]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class EngineHealth:
    """One engine as the monitor sees it.

    ``up``: its last probe or call succeeded. ``eligible``: it takes traffic — up, past ``rise``
    consecutive good probes since its last failure (one at start), and not slow. ``slow``: its
    p99 was over budget at ``fall`` consecutive latency checks; it stops being slow after
    ``rise`` consecutive checks under budget."""

    name: str
    address: str
    consecutive_ok: int = 0
    consecutive_failed: int = 0
    up: bool = False
    eligible: bool = False
    ever_ok: bool = False
    slow: bool = False
    over_budget: int = 0
    under_budget: int = 0
    last_error: str = ""
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    @property
    def state(self) -> str:
        if self.eligible:
            return "serving"
        if self.up and self.slow:
            return "slow"
        return "down" if self.consecutive_failed >= DOWN_AFTER else "failing"

    def latencies(self, since: float) -> list[float]:
        return [ms for at, ms in self.samples if at >= since]


@dataclass
class Switch:
    epoch: int
    engine: str
    at_ms: int
    reason: str


class Router:
    """The active engine, the mode, the epoch and the engines' health."""

    def __init__(
        self,
        primary: str,
        addresses: dict[str, str],
        system: SystemConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = system or SystemConfig()
        self.primary = primary
        self.auto_failback = s.auto_failback
        self.failover_enabled = s.failover_enabled
        self.rise = s.rise
        self.fall = s.fall
        self.hold_down = s.hold_down_ms / 1000
        self.budget_ms = float(s.latency_budget_ms)
        self.window = s.latency_window_ms / 1000
        self.clock = clock
        self.engines = {e: EngineHealth(e, addresses[e]) for e in ENGINES}
        self.active = primary
        self.mode = "auto"
        self.epoch = 1
        self.switches = [Switch(1, primary, int(time.time() * 1000), "start")]
        self.last_switch_at = float("-inf")
        self.ready = False
        """False until the first round of probes is in: no switch on whichever answers first."""
        self.on_change: Callable[[], None] = lambda: None
        """Called after every switch or mode change (the monitor saves its state)."""
        self.on_failed: Callable[[str], None] = lambda engine: None
        """Called when an engine is found failed (the monitor abandons calls waiting on it)."""
        self.synced: Callable[[str], bool] = lambda engine: True
        """Does the engine hold every session's state? A chosen switch waits until it does."""

    @property
    def last_failover_ms(self) -> int:
        return self.switches[-1].at_ms if len(self.switches) > 1 else 0

    @property
    def last_failover_reason(self) -> str:
        return self.switches[-1].reason if len(self.switches) > 1 else ""

    def start(self) -> None:
        """The first round of probes is in: routing starts (the primary if it is eligible)."""
        self.ready = True
        self._route("primary not serving at start")

    def _switch(self, to: str, reason: str) -> None:
        if to == self.active:
            return
        self.active = to
        self.epoch += 1
        self.last_switch_at = self.clock()
        self.switches.append(Switch(self.epoch, to, int(time.time() * 1000), reason))
        del self.switches[:-HISTORY]
        self.on_change()

    def restarted(self) -> None:
        """A new monitor process took over the saved state: a new epoch, so its answers never
        carry an epoch the last process used (that one may still have had answers in flight)."""
        self.epoch += 1
        self.switches.append(
            Switch(self.epoch, self.active, int(time.time() * 1000), "monitor restarted")
        )
        del self.switches[:-HISTORY]
        self.on_change()

    def _held_down(self) -> bool:
        return self.clock() - self.last_switch_at < self.hold_down

    @property
    def held_down(self) -> bool:
        """Is the last switch within the hold-down interval?"""
        return self._held_down()

    def _route(self, reason: str) -> None:
        """Applies the routing rules after a change. In auto mode the preferred engine is the
        primary with ``auto_failback``, none without; with an override, the overridden one."""
        if not self.ready or not self.failover_enabled:
            return
        active, standby = self.engines[self.active], self.engines[other(self.active)]
        if not active.eligible and standby.eligible:
            # Forced when the active failed; from a merely slow one, a chosen switch.
            if not active.up or (not self._held_down() and self.synced(standby.name)):
                self._switch(standby.name, reason)
            return
        preferred = (
            self.mode if self.mode != "auto" else (self.primary if self.auto_failback else "")
        )
        if (
            preferred
            and preferred != self.active
            and self.engines[preferred].eligible
            and not self._held_down()
            and self.synced(preferred)
        ):
            why = "failback" if self.mode == "auto" else "override"
            self._switch(preferred, f"{why} to {preferred}: eligible again")

    def ok(self, engine: str, latency_ms: float, probe: bool) -> None:
        """A successful probe or call."""
        h = self.engines[engine]
        h.samples.append((self.clock(), latency_ms))
        h.consecutive_failed = 0
        h.up = True
        if probe:
            h.consecutive_ok += 1
            # At start one probe is enough; after a failure, ``rise`` in a row (no flapping).
            if not h.eligible and not h.slow and (not h.ever_ok or h.consecutive_ok >= self.rise):
                h.eligible = True
            h.ever_ok = True
            self._route(f"{engine} eligible again")

    def failed(self, engine: str, error: str) -> None:
        """A failed probe or call (unavailable, deadline exceeded, reset): the engine stops
        taking traffic at once; the other takes over if it can."""
        h = self.engines[engine]
        h.consecutive_failed += 1
        h.consecutive_ok = 0
        h.up = False
        h.eligible = False
        h.last_error = error
        self.on_failed(engine)
        self._route(f"{engine} failed: {error}")

    def p(self, engine: str, q: float) -> float:
        """The engine's latency percentile over the window."""
        return percentile(self.engines[engine].latencies(self.clock() - self.window), q)

    def check_latency(self, engine: str) -> None:
        """After each probe of ``engine``: is its p99 over budget? ``fall`` checks in a row
        over make it slow (it stops taking traffic), ``rise`` checks in a row under end that."""
        h = self.engines[engine]
        p99 = self.p(engine, 99)
        if p99 > self.budget_ms:
            h.over_budget += 1
            h.under_budget = 0
            if not h.slow and h.over_budget >= self.fall:
                h.slow = True
                h.eligible = False
                h.last_error = f"slow: p99 {p99:.1f} ms > budget {self.budget_ms:.0f} ms"
                self._route(f"{engine} slow: p99 {p99:.1f} ms over {self.budget_ms:.0f} ms")
        else:
            h.under_budget += 1
            h.over_budget = 0
            if h.slow and h.under_budget >= self.rise:
                h.slow = False
                h.eligible = h.up and h.consecutive_ok >= 1
                self._route(f"{engine} within budget again")
        # A switch the hold-down postponed happens at the first check after it.
        self._route("hold-down over")

    def take_over(self, engine: str, reason: str) -> None:
        """The active engine failed on a call that ``engine`` answered: ``engine`` becomes active
        even if it is not eligible yet (a slow answer beats no answer), unless switches are
        off."""
        if self.failover_enabled and engine != self.active and not self.engines[self.active].up:
            self._switch(engine, reason)

    def set_mode(self, mode: str) -> None:
        """An operator's override: switches at once and holds until ``auto``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode != "auto" and not self.engines[mode].eligible:
            h = self.engines[mode]
            raise NotServing(f"{mode} does not take traffic ({h.state}: {h.last_error})")
        self.mode = mode
        self.on_change()
        if mode == "auto":
            active = self.engines[self.active]
            standby = self.engines[other(self.active)]
            if not active.eligible and standby.eligible:
                self._switch(standby.name, "automatic routing restored")
        else:
            self._switch(mode, f"manual override: {mode}")

    def order(self) -> list[str]:
        """The engines to try for a call: the active first if it takes traffic, then the other
        if it does; then the rest (one may have recovered since the last probe)."""
        pair = [self.active, other(self.active)]
        return sorted(pair, key=lambda e: not self.engines[e].eligible)

    @property
    def serving(self) -> str:
        """The active engine if it can take traffic, else the other if it can, else ``""``."""
        first = self.order()[0]
        return first if self.engines[first].eligible else ""
