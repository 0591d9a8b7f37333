"""``trading-system``: the package's command line, one module per command group over the same
client library bots use.

- ``analyze FILE`` (:mod:`.analyze`): the summary, ``--json OUT.json``, ``--chart OUT.html``;
- ``chart FILE -o OUT.html`` (:mod:`.chart`): the chart of the analysis (docs/CHARTS.md);
- ``serve python|rust|monitor`` (:mod:`.serve`): a server in the foreground (docs/GRPC.md,
  docs/MONITOR.md);
- ``health``, ``failover --to E``, ``override auto`` (:mod:`.admin`): the monitor's status and
  routing overrides;
- ``probe`` (:mod:`.probe`): a ``grpc.health.v1`` Check of any server (the containers');
- ``signals`` (:mod:`.signals`): the buy/sell points the monitor recorded;
- ``demo`` (:mod:`.demo`): the main job, the whole stack on loopback with a demo bot.

Every command that talks to a server connects through :class:`trading_system.client.Client`
as the configuration's ``client`` section says (TLS, mutual TLS; see
:mod:`trading_system.transport`); the operator commands send the operator token
(``server.operator_token`` / ``operator_token_file``), else the client token.

FILE is a CSV (``.csv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file with the columns
``time, open, high, low, close, volume``.

Configuration: the file (default: the built-in defaults), then the environment's
``TRADING_SYSTEM__SECTION__KEY`` variables, then ``--macd-preset``, then each ``--set`` in order.

Exit status (:mod:`.exits`, one table for every command): 0 done (for ``serve``: stopped by
SIGTERM or SIGINT); 2 bad input or configuration (the message names the bar and its CSV line or
Parquet row, the field and the rule, or the key), or a usage error; 1 anything else (a missing
file, an engine that is not installed, a port in use); ``health`` and ``probe`` add 3 (no
answer) and 4 (TLS failed). On failure nothing is printed on stdout (but ``probe``'s status
line) and no output file is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trading_system import __version__
from trading_system.cli import admin, analyze, chart, demo, exits, probe, serve, signals

__all__ = ["main", "parser"]

GROUPS = (analyze, chart, serve, admin, probe, demo, signals)
"""The command groups, in the order ``--help`` lists them; each has ``register(sub)``, which
adds its commands with their ``run(args, out, err)`` as the ``run`` default."""


def parser() -> argparse.ArgumentParser:
    """The whole command line: each group's commands."""
    p = argparse.ArgumentParser(
        prog="trading-system", description="Chan theory (缠论) analysis of K-line bars."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version or a usage error
        return int(e.code) if isinstance(e.code, int) else exits.BAD_INPUT
    return exits.run(args.run, args, sys.stdout, sys.stderr)
