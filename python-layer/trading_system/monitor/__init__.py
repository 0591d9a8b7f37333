"""The monitor (``trading-system serve monitor``, docs/MONITOR.md): one address that serves the
``trading.v1.Trading`` contract by forwarding to the two engine servers, probes them, fails over
between them under an epoch, mirrors every stream to both so the standby always has the
session's state, and answers ``trading.v1.Admin`` (status and manual overrides).

- :mod:`.router`: per-engine health bookkeeping, the active engine, the mode and the epoch;
- :mod:`.service`: the forwarding ``Trading`` service, mirrored streams, probes and ``Admin``;
- :mod:`.app`: binding, serving and graceful shutdown (the engine server's pieces reused).
"""

ENGINES = ("rust", "python")
"""The engines the monitor forwards to."""
MODES = ("auto", *ENGINES)
"""``auto``: route by health; an engine's name: a manual override, held until ``auto``."""
