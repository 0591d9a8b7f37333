"""The monitor's operator commands, over its ``Admin`` service (docs/MONITOR.md):
``trading-system health [--json]`` prints its status (exit 1 when no engine serves, 3 when the
monitor does not answer, 4 when TLS failed); ``failover --to rust|python`` holds the traffic on
one engine and ``override auto`` returns to routing by health (each prints the new status).

They connect through the client library (:class:`trading_system.client.Client`: the
configuration's ``client`` section for TLS and mutual TLS, the operator token
``server.operator_token`` / ``operator_token_file``, else the client token), one attempt
within ``--timeout``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from trading_system.cli import common
from trading_system.cli.exits import FAILED, OK, framed
from trading_system.data import format_time

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    h = sub.add_parser(
        "health",
        help="the monitor's view of the engines (exit 1 when no engine serves)",
        description="Print the monitor's status: the active engine, the epoch, the mode and "
        "each engine's state. Exit status 1 when no engine serves, 3 when the monitor does "
        "not answer, 4 when TLS failed (certificates, or TLS on one side only).",
    )
    h.add_argument("--json", action="store_true", help="print the status as JSON")
    _admin_arguments(h)
    f = sub.add_parser(
        "failover",
        help="switch the monitor to an engine (a manual override, held until 'override auto')",
    )
    f.add_argument("--to", choices=("rust", "python"), required=True, help="the engine")
    _admin_arguments(f)
    o = sub.add_parser("override", help="'override auto': back to routing by health")
    o.add_argument("mode", choices=("auto",), help="auto")
    _admin_arguments(o)


def _admin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the monitor (default: server.host:server.monitor_port)",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: 5)")
    common.config_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``health``, ``failover --to E`` and ``override auto``."""
    from trading_system import transport
    from trading_system.client import Client, Retry

    cfg = common.configuration(args)
    where = args.address or transport.monitor_address(cfg)
    settings = transport.Settings.from_config(cfg)
    with (
        framed(f"monitor {where}"),
        Client(where, settings=settings, timeout=args.timeout, retry=Retry(max_attempts=1)) as c,
    ):
        if args.command == "health":
            status = c.status()
        else:
            status = c.set_mode(args.to if args.command == "failover" else args.mode)
    if args.command == "health" and args.json:
        from google.protobuf import json_format

        doc = json_format.MessageToJson(
            status, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        out.write(doc + "\n")
    else:
        out.write(status_text(status))
    return OK if status.active else FAILED


def status_text(status: Any) -> str:
    """The monitor's status (``StatusResponse``) as lines: the active engine, the epoch, the
    mode and the sessions, the last failover, then one aligned line per engine."""
    lines = [
        f"active: {status.active or '(none serves)'}  epoch {status.epoch}  mode {status.mode}  "
        f"sessions {status.sessions}",
    ]
    if status.last_failover_ms:
        when = format_time(status.last_failover_ms)
        lines.append(f"last failover: {when}  {status.last_failover_reason}")
    rows = [
        [
            e.engine,
            e.address,
            e.state,
            "eligible" if e.eligible else "not eligible",
            f"p50 {e.p50_ms:.1f} ms",
            f"p99 {e.p99_ms:.1f} ms",
            f"ok {e.consecutive_ok}",
            f"failed {e.consecutive_failed}",
            (f"lag {e.lag_bars} bars" if e.lag_bars else "in sync")
            + (f", rebuilding {e.resyncing}" if e.resyncing else ""),
            e.last_error,
        ]
        for e in status.engines
    ]
    return "\n".join([*lines, *common.table(rows, set())]) + "\n"
