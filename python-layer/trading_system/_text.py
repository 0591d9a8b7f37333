"""Text forms shared with the Rust engine: numbers as Rust's ``{}`` prints an ``f64`` and
strings as Rust's ``{:?}`` quotes them, so messages read the same from both engines."""

from __future__ import annotations

import math
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


SHOWN_CHARS = 32
"""How many characters of user text a message or a log line shows (:func:`show`)."""


def show(text: str) -> str:
    """User text (a symbol, a timeframe, a session name, a string value) as every message and log
    line shows it, by the one rule both engines share: at most the first 32 characters, each one
    outside printable ASCII (0x20-0x7E) and each ``"`` and ``\\`` written as ``\\u{<hex>}``
    (lowercase hex code point, e.g. ``\\u{1f600}``), then ``... (N characters)`` when the text was
    longer (N: its length in code points). Only the shown part is read, so a 10 MB text costs
    no more than a short one."""
    head = text[:SHOWN_CHARS]
    if head.isascii() and head.isprintable() and '"' not in head and "\\" not in head:
        shown = head
    else:
        shown = "".join(
            c if " " <= c <= "~" and c not in '"\\' else f"\\u{{{ord(c):x}}}" for c in head
        )
    if len(text) > SHOWN_CHARS:
        shown += f"... ({len(text)} characters)"
    return shown
