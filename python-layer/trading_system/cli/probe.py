"""``trading-system probe [--address A] [--service S]``: a ``grpc.health.v1`` Check of any
server, the containers' health check. Prints ``HOST:PORT SERVICE STATUS`` (the line of
``trading-engine probe``); exit 0 serving, 1 not serving or an unknown service, 3 no answer,
4 a TLS failure (certificates, or TLS on one side only), 2 when it cannot run (the
configuration, or a file it names, cannot be read or is wrong). It connects through the client
library as the configuration's ``client`` section says (TLS, mutual TLS; health needs no
token), one attempt within ``--timeout``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from trading_system.cli import common
from trading_system.cli.exits import BAD_INPUT, FAILED, OK, exit_status, framed

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers

PROBED_SERVICE = "trading.v1.Trading"
"""The service probed by default (the contract's, as in the Rust probe)."""


def register(sub: Subparsers) -> None:
    pr = sub.add_parser(
        "probe",
        help="check a server's health (grpc.health.v1): the containers' health check",
        description="Check a server's health (grpc.health.v1 Check) and print 'HOST:PORT "
        "SERVICE STATUS'. Exit status 0 when SERVING, 1 when NOT_SERVING or the service is "
        "unknown, 3 when the server does not answer (unreachable, or past the deadline), 4 when "
        "TLS failed (a certificate not trusted or refused, or TLS on one side only). TLS as "
        "the configuration's client section says.",
    )
    pr.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the server (default: server.host:server.monitor_port; a wildcard host such as "
        "0.0.0.0 is probed on the loopback address)",
    )
    pr.add_argument(
        "--service",
        default=PROBED_SERVICE,
        help=f"the service ('' for the whole server; default: {PROBED_SERVICE})",
    )
    pr.add_argument(
        "--timeout", type=float, default=1.0, help="seconds to connect and answer (default: 1)"
    )
    common.config_arguments(pr)
    pr.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import grpc

    from trading_system import transport
    from trading_system.client import Client, ClientError, Retry, TlsError

    # Whatever keeps the probe from running (a configuration or a file it names) is exit 2.
    with framed(status=BAD_INPUT):
        cfg = common.configuration(args)
        settings = transport.Settings.from_config(cfg)
    where = args.address or transport.monitor_address(cfg)
    label = args.service or '""'
    try:
        with Client(
            where, settings=settings, timeout=args.timeout, retry=Retry(max_attempts=1)
        ) as c:
            word = c.health(args.service)
    except TlsError as e:
        print(f"{where} {label} TLS_FAILURE", file=out)
        print(f"error: {where}: {e}", file=err)
        return exit_status(e)
    except ClientError as e:
        word = {
            grpc.StatusCode.NOT_FOUND: "SERVICE_UNKNOWN",
            grpc.StatusCode.UNAVAILABLE: "UNREACHABLE",
            grpc.StatusCode.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
        }.get(e.code, f"ERROR_{e.code.name}")
        print(f"{where} {label} {word}", file=out)
        if word == "UNREACHABLE" or word.startswith("ERROR_"):
            print(f"error: {where}: {e.message}", file=err)
        return exit_status(e)
    print(f"{where} {label} {word}", file=out)
    return OK if word == "SERVING" else FAILED
