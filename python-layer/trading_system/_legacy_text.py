"""Rust's text forms that the file loader (:mod:`trading_system.data`) still follows: numbers
as Rust's ``{}`` prints an ``f64``, strings as Rust's ``{:?}`` quotes them, Rust's whitespace and
Rust's reading of a float. They stay only until the loader is replaced (the data issue: pyarrow
and pandas readers); nothing else uses them (configuration, server messages and the command
line use Python's own forms and :func:`trading_system.display.show`)."""

from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal

WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space, what Rust's ``str::trim`` removes (Python's ``str.strip()`` also removes
``\\x1c``-``\\x1f``, which Rust keeps)."""


def format_number(x: float) -> str:
    """``x`` as Rust's ``Display`` for ``f64``: the shortest decimal that reads back to the same
    double, never in exponent form, without a trailing ``.0`` (``12.5``, ``11``, ``0.0000001``);
    ``NaN``, ``inf``, ``-inf``."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)
    if "e" in text:
        # repr has the shortest round-trip digits; Decimal writes them without an exponent.
        text = format(Decimal(text), "f")
    return text.removesuffix(".0")


def _escaped(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    special = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n"}
    if ch in special:
        return special[ch]
    # Rust escapes what it cannot print and combining marks (grapheme extenders).
    if not ch.isprintable() or unicodedata.category(ch) in ("Mn", "Me"):
        return f"\\u{{{ord(ch):x}}}"
    return ch


def debug_str(s: str) -> str:
    """``s`` quoted and escaped as Rust's ``{:?}`` writes a string."""
    return '"' + "".join(_escaped(c) for c in s) + '"'


_RUST_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.IGNORECASE | re.ASCII,
)


def parse_rust_float(text: str) -> float | None:
    """``text`` read as Rust's ``str::parse::<f64>`` reads it (no spaces, no ``_``, ``inf``,
    ``infinity`` and ``nan`` in any case), or ``None``."""
    return float(text) if _RUST_FLOAT.fullmatch(text) else None
