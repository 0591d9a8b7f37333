"""Routing state: per-engine probe and call results, the active engine, the mode and the epoch.

Everything here runs on the monitor's event loop (no locks). Every switch of the active engine
increments the epoch and records when and why; answers carry the epoch they were given under.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from trading_system.monitor import ENGINES, MODES

WINDOW = 256
"""How many recent latencies (calls and probes) the p50/p99 are computed over."""
DOWN_AFTER = 3
"""Consecutive failures after which an engine is reported ``down`` rather than ``failing``."""
ELIGIBLE_AFTER = 3
"""Consecutive successful probes an engine that failed needs before it takes traffic again."""


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
    """One engine as the monitor sees it."""

    name: str
    address: str
    consecutive_ok: int = 0
    consecutive_failed: int = 0
    eligible: bool = False
    ever_ok: bool = False
    last_error: str = ""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    @property
    def state(self) -> str:
        if self.eligible:
            return "serving"
        return "down" if self.consecutive_failed >= DOWN_AFTER else "failing"

    def p(self, q: float) -> float:
        return percentile(list(self.latencies), q)


class Router:
    """The active engine, the mode, the epoch and the engines' health."""

    def __init__(
        self,
        primary: str,
        addresses: dict[str, str],
        auto_failback: bool = False,
        failover_enabled: bool = True,
    ) -> None:
        self.primary = primary
        self.auto_failback = auto_failback
        self.failover_enabled = failover_enabled
        self.engines = {e: EngineHealth(e, addresses[e]) for e in ENGINES}
        self.active = primary
        self.mode = "auto"
        self.epoch = 1
        self.last_failover_ms = 0
        self.last_failover_reason = ""
        self.ready = False
        """False until the first round of probes is in: no switch on whichever answers first."""

    def start(self) -> None:
        """The first round of probes is in: routing starts (the primary if it is eligible)."""
        self.ready = True
        self._route("primary not serving at start")

    def _switch(self, to: str, reason: str) -> None:
        if to == self.active:
            return
        self.active = to
        self.epoch += 1
        self.last_failover_ms = int(time.time() * 1000)
        self.last_failover_reason = reason

    def _route(self, reason: str) -> None:
        """Applies the routing rules after a change (auto mode only; an override holds)."""
        if not self.ready or self.mode != "auto" or not self.failover_enabled:
            return
        active, standby = self.engines[self.active], self.engines[other(self.active)]
        if not active.eligible and standby.eligible:
            self._switch(standby.name, reason)
        elif (
            self.auto_failback
            and self.active != self.primary
            and self.engines[self.primary].eligible
        ):
            self._switch(self.primary, f"failback to {self.primary}")

    def ok(self, engine: str, latency_ms: float, probe: bool) -> None:
        """A successful probe or call."""
        h = self.engines[engine]
        h.latencies.append(latency_ms)
        h.consecutive_ok += 1
        h.consecutive_failed = 0
        # At start one probe is enough; after a failure, several in a row (no flapping).
        if not h.eligible and (
            (probe and h.consecutive_ok >= ELIGIBLE_AFTER) or (probe and not h.ever_ok)
        ):
            h.eligible = True
        h.ever_ok = True
        self._route(f"{engine} eligible again")

    def failed(self, engine: str, error: str) -> None:
        """A failed probe or call (unavailable, deadline exceeded, reset): the engine stops
        taking traffic at once; in auto mode the other takes over if it can."""
        h = self.engines[engine]
        h.consecutive_failed += 1
        h.consecutive_ok = 0
        h.eligible = False
        h.last_error = error
        self._route(f"{engine} failed: {error}")

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        if mode == "auto":
            self._route("automatic routing restored")
        else:
            self._switch(mode, f"manual override: {mode}")

    def order(self) -> list[str]:
        """The engines to try for a call: those taking traffic first, the active before the
        other; then the rest (one may have recovered since the last probe)."""
        pair = [self.active, other(self.active)]
        return sorted(pair, key=lambda e: not self.engines[e].eligible)

    @property
    def serving(self) -> str:
        """The active engine if it can take traffic, else the other if it can, else ``""``."""
        first = self.order()[0]
        return first if self.engines[first].eligible else ""
