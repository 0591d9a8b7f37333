"""``trading-system``: the package's command line.

``trading-system analyze FILE [--engine rust|python] [--config FILE] [--set key=value ...]
[--macd-preset NAME] [--presets FILE] [--with-macd] [--json OUT.json] [--chart OUT.html]``
prints a readable summary (counts, then the last pens, segments, pivots and buy/sell points) and
writes the analysis document to ``OUT.json`` (``-``: stdout, the summary then goes to stderr) and
its chart to ``OUT.html``.

``trading-system chart FILE -o OUT.html [--engine rust|python] [--config FILE] [--set
key=value ...] [--macd-preset NAME] [--presets FILE] [--last N] [--title T]`` writes the chart of
the analysis (docs/CHARTS.md): one standalone HTML page (plotly, inline: it works offline) with
the candlesticks, pens, segments, pivots, buy/sell points and MACD, the last N bars with
``--last``.

``trading-system serve python --port N --config F [--set key=value ...]`` runs the Python
engine's gRPC server (docs/GRPC.md; the port defaults to ``server.python_port``, 0 is any free
port); ``trading-system serve rust ...`` runs the Rust one (``target/service/trading-engine
serve`` with the same arguments, or the binary named by ``TRADING_ENGINE_BIN``).

``trading-system serve monitor --config F [--set key=value ...] [--port N] [--rust ADDR]
[--python ADDR]`` runs the monitor in front of both engines (docs/MONITOR.md; the port defaults to
``server.monitor_port``). ``trading-system health [--address A] [--json]`` prints its status
(exit 1 when no engine serves, 3 when the monitor does not answer, 4 when TLS failed);
``trading-system failover --to rust|python`` and ``trading-system override auto`` set its mode.
``trading-system probe [--address A] [--service S]`` is a ``grpc.health.v1`` Check of any server
(exit 0 serving, 1 not, 3 no answer, 4 a TLS failure). Every command that talks to a server
connects as the configuration's ``client`` section says (TLS, mutual TLS; see
:mod:`trading_system.transport`); ``health``, ``failover`` and ``override`` send the operator
token (``server.operator_token`` / ``operator_token_file``), else the client token.
``trading-system signals [--symbol S] [--timeframe T] [--current] [--json]`` lists
the buy/sell points the monitor recorded (``system.signals_file``). ``trading-system demo`` is
the main job: both engines and the monitor on loopback with a demo bot (README).

FILE is a CSV (``.csv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file with the columns
``time, open, high, low, close, volume``.

Configuration: the file (default: the built-in defaults), then the environment's
``TRADING_SYSTEM__SECTION__KEY`` variables, then ``--macd-preset``, then each ``--set`` in order.

Exit status: 0 done (for ``serve``: stopped by SIGTERM or SIGINT); 2 bad input or configuration
(the message names the bar and its CSV line or Parquet row, the field and the rule, or the key);
1 anything else (a missing file, an engine that is not installed, a port in use). On failure
nothing is printed on stdout and no output file is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trading_system import __version__
from trading_system._text import format_number
from trading_system.api import analyze
from trading_system.config import (
    FileConfig,
    apply_preset,
    apply_sets,
    load_config,
    load_presets,
)
from trading_system.data import Bars, file_format, format_time, load_with_lines
from trading_system.errors import ConfigError, DataError, InvalidBars
from trading_system.results import Analysis, Point

if TYPE_CHECKING:
    from trading_system.transport import Settings

LAST = 5
"""How many of the latest pens, segments, pivots and points the summary shows."""
PRESETS = Path("config") / "macd_params.yaml"
ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the package lives in ``python-layer/trading_system``)."""
RUST_SERVER = Path("target") / "service" / "trading-engine"
"""The Rust server binary, relative to the repository root (``TRADING_ENGINE_BIN`` overrides)."""
PROBED_SERVICE = "trading.v1.Trading"
"""The service ``trading-system probe`` checks by default (the contract's, as in the Rust one)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trading-system", description="Chan theory (缠论) analysis of K-line bars."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser(
        "analyze",
        help="analyze a CSV file (time,open,high,low,close,volume)",
        description="Analyze a CSV file (header time,open,high,low,close,volume; time as epoch "
        "milliseconds, an ISO date or an ISO date-time) and print a summary.",
    )
    a.add_argument(
        "file", type=Path, help="the bars: a CSV (.csv, .txt) or Parquet (.parquet, .pq) file"
    )
    _analysis_arguments(a)
    a.add_argument("--with-macd", action="store_true", help="include the MACD series")
    a.add_argument(
        "--json", metavar="OUT.json", help="write the analysis document there ('-': stdout)"
    )
    a.add_argument("--chart", metavar="OUT.html", help="write the chart there (docs/CHARTS.md)")

    c = sub.add_parser(
        "chart",
        help="write the chart of a file's analysis as one HTML page (docs/CHARTS.md)",
        description="Analyze a CSV or Parquet file and write its chart: candlesticks, pens, "
        "segments, pivots, buy/sell points and MACD in one standalone HTML page that works "
        "offline.",
    )
    c.add_argument(
        "file", type=Path, help="the bars: a CSV (.csv, .txt) or Parquet (.parquet, .pq) file"
    )
    c.add_argument(
        "-o", "--output", metavar="OUT.html", required=True, help="the HTML file to write"
    )
    _analysis_arguments(c)
    c.add_argument(
        "--last",
        type=_positive,
        metavar="N",
        help="show only the last N bars (a browser draws about 10,000 candles comfortably)",
    )
    c.add_argument("--title", help="the chart's title (default: the file name)")

    serve = sub.add_parser(
        "serve",
        help="run an engine's gRPC server (docs/GRPC.md)",
        description="Run an engine's gRPC server until SIGTERM or SIGINT.",
    )
    engines = serve.add_subparsers(dest="engine", required=True)
    for name, port_key in (("python", "server.python_port"), ("rust", "server.rust_port")):
        e = engines.add_parser(
            name,
            help=f"the {name} engine's server",
            description=f"Run the {name} engine's gRPC server; it prints 'listening on "
            "HOST:PORT' once ready.",
        )
        e.add_argument(
            "--port", type=_port, help=f"the port (default: {port_key}; 0: any free port)"
        )
        e.add_argument("--config", type=Path, help="YAML configuration (the shape of default.yaml)")
        e.add_argument(
            "--set",
            dest="sets",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one key, e.g. --set server.auth_token=s3cret (repeatable)",
        )
    m = engines.add_parser(
        "monitor",
        help="the monitor: one address in front of both engines (docs/MONITOR.md)",
        description="Run the monitor: it forwards trading.v1 to both engines, fails over "
        "between them and mirrors streams; it prints 'listening on HOST:PORT' once ready.",
    )
    m.add_argument(
        "--port", type=_port, help="the port (default: server.monitor_port; 0: any free port)"
    )
    m.add_argument(
        "--rust", metavar="ADDR", help="the Rust engine (default: server.host:server.rust_port)"
    )
    m.add_argument(
        "--python",
        metavar="ADDR",
        help="the Python engine (default: server.host:server.python_port)",
    )
    _config_arguments(m)

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
    _config_arguments(pr)

    d = sub.add_parser(
        "demo",
        help="the whole stack on loopback with a demo bot (README command 1)",
        description="Start the Rust engine, the Python engine and the monitor on free loopback "
        "ports, stream a real series through the monitor with the client library, print health "
        "and each buy/sell point as it appears, write a chart, and stop everything.",
    )
    d.add_argument("--data", type=Path, help="the series (CSV or Parquet; default: bundled BTC)")
    d.add_argument("--symbol", default="BTCUSD")
    d.add_argument("--timeframe", default="30m")
    d.add_argument("--rate", type=float, default=200.0, help="bars per second (0: at once)")
    d.add_argument(
        "--chart", type=Path, default=Path("var/demo/chart.html"), help="the chart to write"
    )
    d.add_argument("--no-chart", action="store_true", help="write no chart")
    d.add_argument("--config", type=Path, help="YAML configuration (default: config/default.yaml)")

    g = sub.add_parser(
        "signals",
        help="list the buy/sell points the monitor recorded from streams",
        description="List the buy/sell points the monitor recorded (system.signals_file), "
        "oldest bar first; a signal that disappeared is shown as gone.",
    )
    g.add_argument("--symbol", help="only this symbol")
    g.add_argument("--timeframe", help="only this timeframe")
    g.add_argument("--current", action="store_true", help="only signals that have not gone")
    g.add_argument("--file", type=Path, help="the SQLite file (default: system.signals_file)")
    g.add_argument("--json", action="store_true", help="one JSON object per line")
    _config_arguments(g)
    return p


def _config_arguments(
    p: argparse.ArgumentParser, example: str = "server.auth_token=s3cret"
) -> None:
    p.add_argument("--config", type=Path, help="YAML configuration (the shape of default.yaml)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one key, e.g. --set {example} (repeatable)",
    )


def _analysis_arguments(p: argparse.ArgumentParser) -> None:
    """The engine and its configuration (``analyze``, ``chart``)."""
    p.add_argument(
        "--engine", choices=("rust", "python"), default="rust", help="engine (default: rust)"
    )
    _config_arguments(p, "pen.definition=traditional")
    p.add_argument("--macd-preset", metavar="NAME", help="a named MACD preset")
    p.add_argument(
        "--presets", type=Path, help=f"the MACD presets file (default: {PRESETS.as_posix()})"
    )


def _admin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the monitor (default: server.host:server.monitor_port)",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: 5)")
    _config_arguments(p)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 to 65535): {text!r}")
    return port


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return n


def _presets_path(given: Path | None) -> Path:
    if given is not None:
        return given
    if PRESETS.exists():
        return PRESETS
    # Run from elsewhere in a checkout: the repository's config/ beside python-layer/.
    beside = Path(__file__).resolve().parents[2] / PRESETS
    return beside if beside.exists() else PRESETS


def _configuration(args: argparse.Namespace) -> FileConfig:
    cfg = load_config(args.config)
    if args.macd_preset is not None:
        cfg = apply_preset(cfg, args.macd_preset, load_presets(_presets_path(args.presets)))
    return apply_sets(cfg, args.sets)


def _file_and_sets(args: argparse.Namespace) -> FileConfig:
    return apply_sets(load_config(args.config), args.sets)


def _load(
    args: argparse.Namespace,
    err: TextIO,
    read: Callable[[argparse.Namespace], FileConfig] = _file_and_sets,
) -> FileConfig | int:
    """The configuration the arguments name, or the exit status after saying what is wrong:
    2 for a bad configuration, 1 for an unreadable file."""
    try:
        return read(args)
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return 2
    except OSError as e:
        print(f"error: reading {e.filename}: {e.strerror or e}", file=err)
        return 1


# --- Summary -----------------------------------------------------------------------------------


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows of cells as aligned lines (columns in ``right`` aligned to the right)."""
    if not rows:
        return ["  (none)"]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(max(map(len, rows)))]
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _at(p: Point) -> list[str]:
    return [p.time, format_number(p.price)]


def _latest(n: int) -> range:
    return range(max(0, n - LAST), n)


def summary(a: Analysis, name: str, engine: str, first: str = "", last: str = "") -> str:
    """A readable digest of an analysis: counts, then the latest pens, segments, pivots and
    buy/sell points as aligned lines with times and prices."""
    confirmed = sum(s.confirmed for s in a.segments)
    span = f" ({first} .. {last})" if first else ""
    out = [
        f"{name}  ({engine} engine)",
        f"  {a.bars} bars{span}",
        f"  -> {a.merged_bars} merged bars, {len(a.fractals)} fractals, {len(a.pens)} pens, "
        f"{len(a.segments)} segments ({confirmed} confirmed), {len(a.pivots)} pivots, "
        f"{len(a.signals)} buy/sell points",
    ]
    if a.repairs:
        out.append(f"  {len(a.repairs)} bars repaired (high/low widened to cover open/close)")

    rows = []
    for i in _latest(len(a.pens)):
        p = a.pens[i]
        state = "" if p.final else "may extend"
        rows.append([f"#{i}", p.direction, *_at(p.start), "->", *_at(p.end), state])
    if a.forming_pen is not None:
        p = a.forming_pen
        rows.append(["forming", p.direction, *_at(p.start), "->", *_at(p.end), "forming"])
    out += ["last pens (笔):", *_table(rows, {3, 6})]

    rows = []
    for i in _latest(len(a.segments)):
        s = a.segments[i]
        state = ("confirmed" if s.confirmed else "forming") + (", gap" if s.gap else "")
        pens = f"pens {s.first_pen}..{s.last_pen}"
        rows.append([f"#{i}", s.direction, *_at(s.start), "->", *_at(s.end), pens, state])
    out += ["last segments (线段):", *_table(rows, {3, 6})]

    rows = []
    for i in _latest(len(a.pivots)):
        z = a.pivots[i]
        rows.append(
            [
                f"#{i}",
                "ZD",
                format_number(z.zd),
                "ZG",
                format_number(z.zg),
                "DD",
                format_number(z.dd),
                "GG",
                format_number(z.gg),
                z.start.time,
                "->",
                z.end.time,
                f"pens {z.first_pen}..{z.last_pen}",
                "confirmed" if z.confirmed else "forming",
            ]
        )
    out += ["last pivots (中枢):", *_table(rows, {2, 4, 6, 8})]

    rows = []
    for i in _latest(len(a.signals)):
        g = a.signals[i]
        state = "final" if g.final else "may change"
        rows.append(
            [f"type {g.type}", g.side, g.time, format_number(g.price), f"pen {g.pen}", state]
        )
    out += ["last buy/sell points (买卖点):", *_table(rows, {3})]
    return "\n".join(out) + "\n"


# --- Output ------------------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file, so a failure leaves no partial
    file."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _violations(e: InvalidBars, file: Path, lines: Sequence[int], unit: str = "line") -> str:
    """The bad bars, each at its place in the file: ``unit`` ``lines[i]`` ("line N" in a CSV
    file, "row N" in a Parquet file)."""
    out = [
        f"error: {file}: {len(e.violations)} bar rule violation(s); nothing was analyzed:",
    ]
    for v in e.violations:
        if v.index is None:
            out.append(f"  {v.message} [rule {v.rule}]")
        else:
            line = lines[v.index] if v.index < len(lines) else v.index + 2
            out.append(f"  {unit} {line}: {v.message} [field {v.field}, rule {v.rule}]")
    if any(v.rule in ("high_range", "low_range") for v in e.violations):
        out.append("hint: --set validation.repair=true widens such high/low instead")
    return "\n".join(out)


def _read_and_analyze(
    args: argparse.Namespace, err: TextIO, with_macd: bool
) -> tuple[Bars, Analysis] | int:
    """The bars of ``args.file`` and their analysis under the configuration the arguments name
    (``analyze`` and ``chart`` share it), or the exit status after saying what is wrong."""
    cfg = _load(args, err, _configuration)
    if isinstance(cfg, int):
        return cfg
    try:
        bars, lines = load_with_lines(args.file)
    except DataError as e:
        print(f"error: reading {e}", file=err)
        return 2
    except OSError as e:
        print(f"error: reading {args.file}: {e.strerror or e}", file=err)
        return 1
    try:
        a = analyze(bars, cfg.engine(), engine=args.engine, with_macd=with_macd)
    except InvalidBars as e:
        unit = "row" if file_format(args.file) == "parquet" else "line"
        print(_violations(e, args.file, lines, unit), file=err)
        return 2
    except ImportError as e:
        print(f"error: {e}", file=err)
        return 1
    return bars, a


def _chart_page(
    bars: Bars, a: Analysis, args: argparse.Namespace, title: str, err: TextIO
) -> str | None:
    """The chart's HTML page, or None after saying why there is none. Imported here: plotly
    takes a while to load, and only charts need it."""
    try:
        from trading_system.chart import render
    except ImportError as e:
        print(f"error: charts need plotly ({e}): install with scripts/setup.sh", file=err)
        return None
    return render(bars, a, title, getattr(args, "last", None), engine=args.engine)


def _write_output(name: str, text: str, err: TextIO) -> bool:
    try:
        _write_atomically(Path(name), text)
    except OSError as e:
        print(f"error: writing {name}: {e.strerror or e}", file=err)
        return False
    return True


def _analyze(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    done = _read_and_analyze(args, err, args.with_macd)
    if isinstance(done, int):
        return done
    bars, a = done
    first = format_time(bars.time[0]) if len(bars) else ""
    last = format_time(bars.time[-1]) if len(bars) else ""
    text = summary(a, str(args.file), args.engine, first, last)
    page = None
    if args.chart is not None:
        page = _chart_page(bars, a, args, args.file.name, err)
        if page is None:
            return 1
    if args.json == "-":
        if page is not None and not _write_output(args.chart, page, err):
            return 1
        out.write(a.to_json() + "\n")
        err.write(text)
        return 0
    if args.json is not None:
        try:
            _write_atomically(Path(args.json), a.to_json() + "\n")
        except OSError as e:
            print(f"error: writing {args.json}: {e.strerror or e}", file=err)
            return 1
    if page is not None and not _write_output(args.chart, page, err):
        if args.json is not None:
            Path(args.json).unlink(missing_ok=True)  # all outputs or none
        return 1
    out.write(text)
    return 0


def _chart(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    done = _read_and_analyze(args, err, True)
    if isinstance(done, int):
        return done
    bars, a = done
    page = _chart_page(bars, a, args, args.title or args.file.name, err)
    if page is None or not _write_output(args.output, page, err):
        return 1
    shown = len(bars) if args.last is None else min(args.last, len(bars))
    out.write(f"{args.output}: chart of {args.file} ({shown} of {len(bars)} bars shown)\n")
    return 0


# --- Servers -----------------------------------------------------------------------------------


def rust_server_binary() -> Path:
    """The Rust server: ``TRADING_ENGINE_BIN``, else the release build in the repository."""
    given = os.environ.get("TRADING_ENGINE_BIN")
    return Path(given) if given else ROOT / RUST_SERVER


def _serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.engine == "rust":
        return _serve_rust(args, err)
    if args.engine == "monitor":
        return _serve_monitor(args, out, err)
    cfg = _load(args, err)
    if isinstance(cfg, int):
        return cfg
    try:
        from trading_system.server.app import run
    except ImportError as e:
        print(f"error: the server needs grpcio ({e}): install with scripts/setup.sh", file=err)
        return 1
    return run(cfg, args.port, out)


def _serve_monitor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg = _load(args, err)
    if isinstance(cfg, int):
        return cfg
    try:
        from trading_system.monitor.app import engine_addresses, run
    except ImportError as e:
        print(f"error: the monitor needs grpcio ({e}): install with scripts/setup.sh", file=err)
        return 1
    return run(cfg, args.port, engine_addresses(cfg, args.rust, args.python), out)


def _connection(cfg: FileConfig, err: TextIO) -> Settings | None:
    """The connection settings of ``cfg`` (TLS, certificates, tokens), or None after saying
    which key (and file) cannot be used: a bad configuration, exit status 2."""
    from trading_system.transport import Settings

    try:
        return Settings.from_config(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return None


def _admin(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``health``, ``failover --to E`` and ``override auto``: the monitor's Admin service, over
    the configured transport (TLS, mutual TLS) with the operator token (else the client one)."""
    cfg = _load(args, err)
    if isinstance(cfg, int):
        return cfg
    settings = _connection(cfg, err)
    if settings is None:
        return 2
    import grpc
    from google.protobuf import json_format

    from trading_system import transport
    from trading_system.proto import trading_pb2 as pb
    from trading_system.proto import trading_pb2_grpc as rpc

    where = args.address or transport.monitor_address(cfg)
    metadata = settings.metadata("operator")
    with transport.channel(where, settings) as channel:
        stub = rpc.AdminStub(channel)
        try:
            if args.command == "health":
                status = stub.Status(pb.StatusRequest(), timeout=args.timeout, metadata=metadata)
            else:
                mode = args.to if args.command == "failover" else args.mode
                status = stub.SetMode(
                    pb.SetModeRequest(mode=mode), timeout=args.timeout, metadata=metadata
                )
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            details = e.details() or ""  # type: ignore[attr-defined]
            problem = None
            if code == grpc.StatusCode.UNAVAILABLE:
                problem = transport.tls_problem(where, settings, details, min(args.timeout, 2.0))
            if problem:
                print(f"error: monitor {where}: TLS: {problem}", file=err)
                return 4
            print(f"error: monitor {where}: {code.name}: {details}", file=err)
            gone = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return 3 if gone else 1
    if args.command == "health" and args.json:
        doc = json_format.MessageToJson(
            status, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        out.write(doc + "\n")
    else:
        out.write(status_text(status))
    return 0 if status.active else 1


def status_text(status: Any) -> str:
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
    return "\n".join([*lines, *_table(rows, set())]) + "\n"


def _probe(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``probe``: one ``grpc.health.v1`` Check over the configured transport (TLS, mutual TLS;
    health needs no token); prints ``HOST:PORT SERVICE STATUS`` (the line of ``trading-engine
    probe``). 0 serving, 1 not serving or an unknown service, 3 no answer, 4 a TLS failure
    (certificates, or TLS on one side only); 2 when it cannot run (the configuration, or a
    file it names, cannot be read or is wrong)."""
    cfg = _load(args, err)
    if isinstance(cfg, int):
        return 2
    settings = _connection(cfg, err)
    if settings is None:
        return 2
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from trading_system import transport

    where = args.address or transport.monitor_address(cfg)
    label = args.service or '""'
    with transport.channel(where, settings) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            details = e.details() or ""  # type: ignore[attr-defined]
            problem = None
            if code == grpc.StatusCode.UNAVAILABLE:
                problem = transport.tls_problem(where, settings, details, args.timeout)
            if problem:
                print(f"{where} {label} TLS_FAILURE", file=out)
                print(f"error: {where}: TLS: {problem}", file=err)
                return 4
            word, status = {
                grpc.StatusCode.NOT_FOUND: ("SERVICE_UNKNOWN", 1),
                grpc.StatusCode.UNAVAILABLE: ("UNREACHABLE", 3),
                grpc.StatusCode.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", 3),
            }.get(code, (f"ERROR_{code.name}", 1))
            print(f"{where} {label} {word}", file=out)
            if word == "UNREACHABLE" or word.startswith("ERROR_"):
                print(f"error: {where}: {details}", file=err)
            return status
    serving = health_pb2.HealthCheckResponse.ServingStatus
    word = serving.Name(answer.status) if answer.status in serving.values() else "UNKNOWN"
    print(f"{where} {label} {word}", file=out)
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


def _serve_rust(args: argparse.Namespace, err: TextIO) -> int:
    binary = rust_server_binary()
    argv = [str(binary), "serve"]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    for s in args.sets:
        argv += ["--set", s]
    if not os.access(binary, os.X_OK):
        print(
            f"error: the Rust server {binary} is missing: build it with scripts/setup.sh "
            "(or name it with TRADING_ENGINE_BIN)",
            file=err,
        )
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The Rust server takes over this process: its signals, output and exit status.
    os.execv(binary, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version or a usage error
        return int(e.code) if isinstance(e.code, int) else 2
    commands: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
        "analyze": _analyze,
        "chart": _chart,
        "serve": _serve,
        "health": _admin,
        "failover": _admin,
        "override": _admin,
        "probe": _probe,
        "signals": _signals,
        "demo": _demo,
    }
    return commands[args.command](args, sys.stdout, sys.stderr)


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from trading_system import demo

    binary = rust_server_binary()
    if not os.access(binary, os.X_OK):
        print(f"error: the Rust server {binary} is missing: run scripts/setup.sh", file=err)
        return 1
    config = args.config or ROOT / "config" / "default.yaml"
    try:
        return demo.main(
            args.data or demo.DATA,
            args.symbol,
            args.timeframe,
            args.rate,
            None if args.no_chart else args.chart,
            config,
            binary,
            out,
        )
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return 2
    except (DataError, RuntimeError) as e:
        print(f"error: {e}", file=err)
        return 1


def _signals(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``signals``: the monitor's record of buy/sell points (read only)."""
    cfg = _load(args, err)
    if isinstance(cfg, int):
        return cfg
    path = args.file or (Path(cfg.system.signals_file) if cfg.system.signals_file else None)
    if path is None:
        print("error: no signals file: system.signals_file is empty (give --file)", file=err)
        return 1
    if not path.is_file():
        print(f"error: {path}: no such signals file (the monitor writes it)", file=err)
        return 1
    from trading_system.signal_store import SignalStore

    store = SignalStore(path)
    try:
        rows = store.list(args.symbol, args.timeframe, args.current)
    finally:
        store.close()
    if args.json:
        for r in rows:
            out.write(json.dumps(r.to_dict()) + "\n")
        return 0
    table = [
        [
            f"{r.symbol}/{r.timeframe}",
            format_time(r.time_ms),
            f"{r.side} {r.type}",
            f"{r.price:g}",
            "final" if r.final else "not final",
            f"gone {format_time(r.gone_ms)}" if r.gone_ms is not None else "",
        ]
        for r in rows
    ]
    if not table:
        out.write("no signals recorded" + (f" for {args.symbol}" if args.symbol else "") + "\n")
        return 0
    out.write("\n".join(_table(table, set())) + "\n")
    return 0


def _run() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _run()
