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
from importlib import import_module
from typing import Any

from trading_system.cli import exits

__all__ = ["main", "parser"]

GROUPS = ("analyze", "chart", "serve", "admin", "probe", "demo", "signals")
"""The command groups (modules of this package), in the order ``--help`` lists them; each has
``register(sub)``, which adds its commands with their ``run(args, out, err)`` as the ``run``
default. Imported when the parser is built: most import numpy or pydantic."""

LIGHT = ("probe",)
"""Commands whose command line is built alone (their group only): ``probe`` runs every few
seconds as the containers' health check, and the other groups' imports would cost it most of
its time (docs/BENCHMARKS.md, "The probe command")."""


class _Version(argparse.Action):
    """``--version``, the package's version looked up only when asked for (reading the
    distribution's metadata takes time every other command need not spend)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, p: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from trading_system import __version__

        print(f"{p.prog} {__version__}")
        p.exit()


def parser(groups: Sequence[str] = GROUPS) -> argparse.ArgumentParser:
    """The command line: each group's commands (``groups``: only those)."""
    p = argparse.ArgumentParser(
        prog="trading-system", description="Chan theory (缠论) analysis of K-line bars."
    )
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)
    for name in groups:
        import_module(f"trading_system.cli.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    light = args_list[:1] if args_list[:1] and args_list[0] in LIGHT else GROUPS
    try:
        args = parser(light).parse_args(args_list)
    except SystemExit as e:  # --help, --version or a usage error
        return int(e.code) if isinstance(e.code, int) else exits.BAD_INPUT
    return exits.run(args.run, args, sys.stdout, sys.stderr)
