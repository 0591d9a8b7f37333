"""``trading-system probe [--address A] [--service S]``: a ``grpc.health.v1`` Check of any
server, the containers' health check. Prints ``HOST:PORT SERVICE STATUS`` (the line of
``trading-engine probe``); exit 0 serving, 1 not serving or an unknown service, 3 no answer,
4 a TLS failure (certificates, or TLS on one side only), 2 when it cannot run (the
configuration, or a file it names, cannot be read or is wrong). It connects as the
configuration's ``client`` section says (TLS, mutual TLS, through :mod:`trading_system.transport`
as every client does; health needs no token), one attempt within ``--timeout``.

It runs every few seconds in the containers, so it stays light: it imports grpcio, the health
messages and the transport, and reads its few keys of the configuration without pydantic
(:mod:`trading_system.cli.probe_config`, which falls back on the full reading whenever it
cannot vouch for the configuration) — not the client library, numpy or the models
(``tests/python/test_probe.py`` checks it; docs/BENCHMARKS.md, "The probe command")."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, TextIO, cast

from trading_system.cli.exits import BAD_INPUT, FAILED, NO_ANSWER, OK, TLS_FAILED, framed

if TYPE_CHECKING:
    from trading_system.cli.common import Subparsers

PROBED_SERVICE = "trading.v1.Trading"
"""The service probed by default (the contract's, as in the Rust probe)."""
CHECK = "/grpc.health.v1.Health/Check"


def register(sub: Subparsers) -> None:
    from trading_system.cli import common

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
    from grpc_health.v1 import health_pb2

    from trading_system import transport
    from trading_system.cli.probe_config import lean_settings

    # Whatever keeps the probe from running (a configuration or a file it names) is exit 2.
    with framed(status=BAD_INPUT):
        lean = lean_settings(args.config, os.environ, args.sets)
        if lean is None:
            # The full reading: it accepts what the lean one could not vouch for, or names
            # what is wrong.
            from trading_system.cli import common

            cfg = common.configuration(args)
            settings, default = transport.Settings.from_config(cfg), transport.monitor_address(cfg)
        else:
            settings, default = lean
    where = args.address or default
    label = args.service or '""'
    request = health_pb2.HealthCheckRequest(service=args.service)
    channel = transport.channel(where, settings)
    try:
        check = channel.unary_unary(
            CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        answer: health_pb2.HealthCheckResponse = check(request, timeout=args.timeout)
    except grpc.RpcError as e:
        failed = cast("grpc.Call", e)  # the error of a blocking call is its Call too
        code, message = failed.code(), failed.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            wait = min(args.timeout, transport.TLS_PROBE_S)
            problem = transport.tls_problem(where, settings, message, wait)
            if problem:
                print(f"{where} {label} TLS_FAILURE", file=out)
                print(f"error: {where}: TLS: {problem}", file=err)
                return TLS_FAILED
        word = {
            grpc.StatusCode.NOT_FOUND: "SERVICE_UNKNOWN",
            grpc.StatusCode.UNAVAILABLE: "UNREACHABLE",
            grpc.StatusCode.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
        }.get(code, f"ERROR_{code.name}")
        print(f"{where} {label} {word}", file=out)
        if word == "UNREACHABLE" or word.startswith("ERROR_"):
            print(f"error: {where}: {message}", file=err)
        no_answer = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return NO_ANSWER if code in no_answer else FAILED
    finally:
        channel.close()
    serving = health_pb2.HealthCheckResponse.ServingStatus
    word = serving.Name(answer.status) if answer.status in serving.values() else "UNKNOWN"
    print(f"{where} {label} {word}", file=out)
    return OK if word == "SERVING" else FAILED
