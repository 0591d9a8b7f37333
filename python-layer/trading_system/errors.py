"""Errors of the package: one small hierarchy under :class:`ChanError`.

The kinds are those of the Rust core (`rust-core/chan-core/src/error.rs`), and so is each
error's structure — a violation's bar index, field and rule, a configuration error's key — so a
caller tells the same error whichever engine answered. Messages are free text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

MAX_LISTED = 20
"""How many violation messages an :class:`InvalidBars` message lists before "… and N more"."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule of spec §1: which bar, which field, which rule, and a readable message.

    ``index`` is the 0-based bar index, ``None`` when the rule concerns the whole series
    (``non_empty``); ``field`` is ``time``, ``open``, ``high``, ``low``, ``close``, ``volume``
    or ``bars``; ``rule`` is the rule's stable name (docs/CHAN_THEORY.md §12.1).
    """

    index: int | None
    field: str
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The violation as JSON data, keys in the Rust order."""
        return {
            "index": self.index,
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Violation:
        """Reads a violation from its JSON form."""
        index = d.get("index")
        return cls(None if index is None else int(index), d["field"], d["rule"], d["message"])


def summarize(violations: Sequence[Violation]) -> str:
    """The messages joined by "; ", at most :data:`MAX_LISTED`, then "; … and N more"."""
    text = "; ".join(v.message for v in violations[:MAX_LISTED])
    if len(violations) > MAX_LISTED:
        text += f"; … and {len(violations) - MAX_LISTED} more"
    return text


class ChanError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidBars(ChanError, ValueError):
    """The bars broke one or more rules of spec §1; nothing of them was applied."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations: list[Violation] = list(violations)
        super().__init__(f"invalid bars: {summarize(self.violations)}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling would call the class with the message, not the violations.
        return (type(self), (self.violations,))


class ConfigError(ChanError, ValueError):
    """A configuration key is unknown, has the wrong type or is out of range; ``key`` names it
    (dotted, e.g. ``macd.fast_period``: the part both engines agree on), ``message`` says what
    is wrong in this engine's words. ``str()`` is ``invalid configuration: <key>: <message>``,
    as the Rust engine prints it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"invalid configuration: {key}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.message))


class StateError(ChanError, RuntimeError):
    """An incremental call that the session's state does not allow (a replacement on an empty
    session, a series beyond the bar-count limit)."""


DataRule = Literal[
    "encoding",
    "column_missing",
    "column_ambiguous",
    "column_unknown",
    "row_shape",
    "number",
    "time_unparseable",
    "time_unit",
    "time_range",
    "time_zone",
    "file_type",
    "parquet_unreadable",
    "array_shape",
    "column_type",
    "option",
]
"""The rules a loader refusal names (docs/DATA.md, "Errors"): the Rust CLI's names, the same
for the same bad input, and the Python-only ones (sources the Rust CLI does not read: Parquet,
in-memory arrays, and options it refuses while parsing its arguments)."""
DATA_RULES: frozenset[str] = frozenset(get_args(DataRule))


class DataError(ChanError, ValueError):
    """Input data that cannot be read as bars: names the source (a file), the place (``line``,
    1-based, in a text file; ``row``, 1-based, in a Parquet file; ``index``, 0-based, in
    in-memory data; each shown as "line N" or "row N"), the column (the source's own name),
    and ``hint``, how to say what the data is when the loader cannot tell (shown after the
    reason). ``rule`` and ``field`` are the contract with the Rust CLI (docs/DATA.md,
    "Errors"): the rule broken and the bar field at fault (``time`` … ``volume``; None when
    no field is), the same for the same bad input whichever loader read it."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        index: int | None = None,
        column: str | None = None,
        row: int | None = None,
        hint: str | None = None,
        rule: DataRule | None = None,
        field: str | None = None,
    ) -> None:
        if rule is not None and rule not in DATA_RULES:
            raise ValueError(f"unknown data rule {rule!r}")
        self.reason = reason
        self.hint = hint
        self.rule: DataRule | None = rule
        self.field = field
        self.source = source
        self.line = line
        self.row = row
        self.index = index
        self.column = column
        parts = [source] if source else []
        if line is not None:
            parts.append(f"line {line}")
        if row is not None:
            parts.append(f"row {row}")
        if index is not None:
            parts.append(f"row {index}")
        if column:
            parts.append(column)
        parts.append(reason)
        super().__init__(": ".join(parts) + (f" ({hint})" if hint else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "source": self.source,
            "line": self.line,
            "row": self.row,
            "index": self.index,
            "column": self.column,
            "hint": self.hint,
            "rule": self.rule,
            "field": self.field,
        }
        return (_rebuild_data_error, (self.reason, kwargs))


def _rebuild_data_error(reason: str, kwargs: dict[str, Any]) -> DataError:
    return DataError(reason, **kwargs)
