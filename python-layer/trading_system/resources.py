"""Where the package finds its files, installed or in a source checkout.

- **Bundled files** (:func:`bundled`): the package carries ``defaults/default.yaml``,
  ``defaults/macd_params.yaml`` and ``defaults/columns.yaml`` and finds them with
  :mod:`importlib.resources`, so a wheel installed anywhere has them. In the repository they
  are symbolic links to ``config/``, the one source of truth; the wheel (maturin,
  ``python-source = "python-layer"``) holds copies.
- **The source checkout** (:func:`checkout`): the repository the package is imported from
  (``python-layer/trading_system`` beside ``Cargo.toml``), or None for an installed package.
  Only what exists nowhere else is looked up there: the demo's series (``tests/data``) and the
  Rust build (``target/``).
- **The Rust server** (:func:`rust_server`), first found of: ``TRADING_ENGINE_BIN`` (an
  explicit path, used as given); the checkout's build ``target/service/trading-engine`` (what
  ``scripts/setup.sh`` builds, so a checkout runs what it just built); ``trading-engine`` on
  ``PATH`` (an installed binary, no checkout needed). When none exists it is the first that
  applies (the variable, else the checkout's path, else the bare name), for the message.
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "COLUMNS",
    "DEFAULT_CONFIG",
    "PRESETS",
    "RUST_SERVER_ENV",
    "bundled",
    "checkout",
    "read_bundled",
    "rust_server",
]

DEFAULT_CONFIG = "default.yaml"
"""The bundled configuration file (the repository's ``config/default.yaml``)."""

PRESETS = "macd_params.yaml"
"""The bundled MACD presets (the repository's ``config/macd_params.yaml``)."""

COLUMNS = "columns.yaml"
"""The bundled column alias table of the loaders (the repository's ``config/columns.yaml``)."""

RUST_SERVER_ENV = "TRADING_ENGINE_BIN"
"""The environment variable naming the Rust server binary."""

RUST_SERVER_NAME = "trading-engine"
RUST_SERVER_BUILD = Path("target") / "service" / RUST_SERVER_NAME
"""The Rust server in a checkout, relative to its root (``cargo build --profile service``)."""

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Traversable:
    """A file the package carries (``DEFAULT_CONFIG``, ``PRESETS``); for a reader that needs a
    path on disk, :func:`importlib.resources.as_file` gives one."""
    return files("trading_system").joinpath("defaults", name)


def read_bundled(name: str) -> str:
    """The text of a bundled file."""
    return bundled(name).read_text(encoding="utf-8")


def checkout() -> Path | None:
    """The repository root when the package is imported from a source checkout
    (``<root>/python-layer/trading_system`` and ``<root>/Cargo.toml``), else None."""
    root = _PACKAGE.parents[1]
    if _PACKAGE.parent.name == "python-layer" and (root / "Cargo.toml").is_file():
        return root
    return None


def rust_server() -> Path:
    """The Rust server binary by the rule of the module docstring. It may not exist (or not be
    executable): callers check and say how to build it."""
    given = os.environ.get(RUST_SERVER_ENV)
    if given:
        return Path(given)
    root = checkout()
    built = root / RUST_SERVER_BUILD if root is not None else None
    if built is not None and os.access(built, os.X_OK):
        return built
    on_path = shutil.which(RUST_SERVER_NAME)
    if on_path is not None:
        return Path(on_path)
    return built if built is not None else Path(RUST_SERVER_NAME)
