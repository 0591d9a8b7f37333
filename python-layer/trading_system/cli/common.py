"""What the command groups share: the configuration arguments and their reading, argument
types, aligned tables and all-or-nothing output files."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from trading_system import resources
from trading_system.cli.exits import Failure
from trading_system.config import (
    FileConfig,
    MacdConfig,
    apply_preset,
    apply_sets,
    load_config,
    load_presets,
    parse_presets,
)

PRESETS = Path("config") / resources.PRESETS
"""The MACD presets of the working directory, read before the bundled ones when present."""

if TYPE_CHECKING:
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
    return apply_sets(load_config(args.config), args.sets)


def presets(given: Path | None) -> dict[str, MacdConfig]:
    """The MACD presets: ``--presets FILE``, else ``config/macd_params.yaml`` of the working
    directory when there is one, else the package's own copy of the repository's."""
    if given is not None:
        return load_presets(given)
    if PRESETS.exists():
        return load_presets(PRESETS)
    source = resources.bundled(resources.PRESETS)
    return parse_presets(source.read_text(encoding="utf-8"), str(source))


def analysis_configuration(args: argparse.Namespace) -> FileConfig:
    """:func:`configuration` with ``--macd-preset`` applied before the ``--set``s."""
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
