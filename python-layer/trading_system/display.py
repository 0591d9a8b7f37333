"""The project's display rule for user text in messages and log lines (a symbol, a timeframe, a
session name, a string value): the same rule both engines implement (Rust:
``chan-core/src/display.rs``), so an echoed text reads alike whichever engine answered."""

from __future__ import annotations

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
