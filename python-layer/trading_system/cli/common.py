"""What the command groups share: the configuration arguments and their reading, argument
types, aligned tables and all-or-nothing output files."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trading_system import resources
from trading_system.cli.exits import Failure

PRESETS = Path("config") / resources.PRESETS
"""The MACD presets of the working directory, read before the bundled ones when present."""

if TYPE_CHECKING:
    # The configuration's models are imported where a command reads one, not by registering
    # the commands (``trading-system probe`` reads its keys without them).
    from trading_system.config import FileConfig, MacdConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    """What each command group adds its commands to (``register(sub)``)."""


def config_arguments(p: argparse.ArgumentParser, example: str = "server.auth_token=s3cret") -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE``."""
    p.add_argument("--config", type=Path, help="YAML configuration (the shape of default.yaml)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one key, e.g. --set {example} (repeatable)",
    )


def data_arguments(p: argparse.ArgumentParser) -> None:
    """How to read the bars (docs/DATA.md): ``--columns``, ``--time-unit``, ``--tz``."""
    from trading_system.data.times import UNITS

    g = p.add_argument_group("reading the bars (docs/DATA.md)")
    g.add_argument(
        "--columns",
        type=column_mapping,
        default={},
        metavar="FIELD=NAME,...",
        help="the file's column for a field, over the alias table (config/columns.yaml), e.g. "
        "--columns time=trade_date,volume=vol",
    )
    g.add_argument(
        "--time-unit",
        choices=UNITS,
        help="what numbers in the time column are: epoch s, ms, us, ns or YYYYMMDD dates "
        "(default: decided by magnitude, refused when unclear)",
    )
    g.add_argument(
        "--tz",
        type=time_zone,
        metavar="ZONE",
        help="the zone of times without an offset, and of the output (IANA name, e.g. "
        "Asia/Shanghai; default: a zone-aware time column's own, else UTC)",
    )


def column_mapping(text: str) -> dict[str, str]:
    """An argument type: ``time=trade_date,volume=vol``."""
    from trading_system.data.columns import parse_mapping

    try:
        return parse_mapping(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def time_zone(text: str) -> str:
    """An argument type: an IANA time zone name."""
    from trading_system.data.times import check_tz

    try:
        return check_tz(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`trading_system.data.load` the data arguments name."""
    return {"columns": args.columns, "time_unit": args.time_unit, "tz": args.tz}


def notices(bars: Any, err: TextIO) -> None:
    """The loader's notices, one line each on stderr."""
    for notice in bars.notices:
        err.write(f"notice: {notice}\n")


def port(text: str) -> int:
    """An argument type: a port, 0 to 65535 (0: any free port)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 to 65535): {text!r}")
    return n


def positive(text: str) -> int:
    """An argument type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return n


def configuration(args: argparse.Namespace) -> FileConfig:
    """The configuration the arguments name: ``--config`` (default: the built-in defaults),
    the ``TRADING_SYSTEM__SECTION__KEY`` environment, then each ``--set`` in order. Raises
    ConfigError (exit 2) or OSError (exit 1, a file that cannot be read)."""
    from trading_system.config import apply_sets, load_config

    return apply_sets(load_config(args.config), args.sets)


def presets(given: Path | None) -> dict[str, MacdConfig]:
    """The MACD presets: ``--presets FILE``, else ``config/macd_params.yaml`` of the working
    directory when there is one, else the package's own copy of the repository's."""
    from trading_system.config import load_presets, parse_presets

    if given is not None:
        return load_presets(given)
    if PRESETS.exists():
        return load_presets(PRESETS)
    source = resources.bundled(resources.PRESETS)
    return parse_presets(source.read_text(encoding="utf-8"), str(source))


def analysis_configuration(args: argparse.Namespace) -> FileConfig:
    """:func:`configuration` with ``--macd-preset`` applied before the ``--set``s."""
    from trading_system.config import apply_preset, apply_sets, load_config

    cfg = load_config(args.config)
    if args.macd_preset is not None:
        cfg = apply_preset(cfg, args.macd_preset, presets(args.presets))
    return apply_sets(cfg, args.sets)


def table(rows: list[list[str]], right: set[int]) -> list[str]:
    """Rows of cells as aligned lines (columns in ``right`` aligned to the right)."""
    if not rows:
        return ["  (none)"]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(max(map(len, rows)))]
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def write_atomically(path: Path, text: str) -> None:
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


def write_output(name: str, text: str) -> None:
    """Writes an output file all or nothing; a failure is a :class:`Failure` naming it."""
    try:
        write_atomically(Path(name), text)
    except OSError as e:
        raise Failure(f"error: writing {name}: {e.strerror or e}") from e
