"""Which source column holds which bar field: the alias table ``config/columns.yaml`` (bundled as
``defaults/columns.yaml``), matched after trimming, case-folding and removing spaces,
underscores and hyphens, and the caller's own mapping (``--columns time=trade_date``), which
wins over the table. Two columns for one field are refused as ambiguous; a missing ``volume``
is allowed (the loader fills zeros and says so)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from trading_system import resources
from trading_system.errors import DataError

FIELDS = ("time", "open", "high", "low", "close", "volume")
"""The bar fields, in the order of a bar row."""
REQUIRED = FIELDS[:5]
"""Fields a source must have (volume is optional)."""
MAX_NAMES = 20
"""How many of a source's column names an error lists."""
HINT = "map it with --columns FIELD=NAME (Python: columns={'FIELD': 'NAME'})"

_SQUEEZE = re.compile(r"[\s_\-]+")


def normalize(name: object) -> str:
    """A column name as the table matches it: trimmed, case-folded, without spaces,
    underscores and hyphens (``" Adj Close"`` → ``adjclose``, ``trade_date`` → ``tradedate``)."""
    return _SQUEEZE.sub("", str(name).strip().casefold())


@dataclass(frozen=True, slots=True)
class AliasTable:
    """Normalized alias → field (``time`` … ``volume``), and the names ignored unless mapped."""

    fields: Mapping[str, str]
    ignored: frozenset[str]


def parse_table(text: str, source: str = resources.COLUMNS) -> AliasTable:
    """The alias table from the YAML text of ``columns.yaml``; a name listed for two fields is
    an error (the table itself would be ambiguous)."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of field: [names]")
    fields: dict[str, str] = {}
    for field in FIELDS:
        for name in raw.get(field) or []:
            key = normalize(name)
            if fields.get(key, field) != field:
                raise ValueError(f"{source}: {name!r} is listed for {fields[key]} and {field}")
            fields[key] = field
    unknown = set(raw) - {*FIELDS, "ignored"}
    if unknown:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}")
    ignored = frozenset(normalize(n) for n in raw.get("ignored") or [])
    return AliasTable(fields, ignored)


@functools.cache
def table() -> AliasTable:
    """The bundled alias table (read once)."""
    return parse_table(resources.read_bundled(resources.COLUMNS))


def parse_mapping(text: str) -> dict[str, str]:
    """``time=trade_date,volume=vol`` as ``{"time": "trade_date", "volume": "vol"}`` (the
    ``--columns`` argument); ValueError names what is wrong."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        field, sep, name = item.partition("=")
        field, name = field.strip().lower(), name.strip()
        if not sep or not name:
            raise ValueError(f"expected FIELD=NAME, got {item.strip()!r}")
        out[field] = name
    check_mapping(out)
    return out


def check_mapping(mapping: Mapping[str, str]) -> None:
    """A caller's mapping names only bar fields, each once (ValueError otherwise)."""
    for field in mapping:
        if field not in FIELDS:
            raise ValueError(
                f"unknown field {field!r} in the column mapping (fields: {', '.join(FIELDS)})"
            )


def _listed(names: Sequence[Any]) -> str:
    shown = [str(n) for n in names[:MAX_NAMES]]
    if len(names) > MAX_NAMES:
        shown.append(f"… ({len(names)} in all)")
    return ", ".join(shown) if shown else "no columns"


def pick(
    names: Sequence[Any],
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    line: int | None = None,
) -> dict[str, Any]:
    """Field → source column name for ``names`` (the source's columns, in order): the caller's
    ``mapping`` first (a name matched exactly, else as the table matches), then the alias table.
    ``volume`` is absent from the result when the source has none. Raises DataError for a
    mapped name the source lacks (``column_unknown``), two columns matching one field
    (``column_ambiguous``: the first field, in the header's order, that a second column
    names), or a missing field (``column_missing``: the first in bar order); ``line`` is the
    header's (a text file's)."""
    aliases = table()
    mapping = dict(mapping or {})
    check_mapping(mapping)
    at: dict[str, int] = {}
    for field, wanted in mapping.items():
        exact = [i for i, n in enumerate(names) if str(n) == wanted]
        found = exact or [i for i, n in enumerate(names) if normalize(n) == normalize(wanted)]
        if len(found) != 1:
            what = "no column" if not found else f"{len(found)} columns"
            raise DataError(
                f"{what} named {wanted!r} for {field} (found: {_listed(names)})",
                source=source,
                line=line,
                rule="column_ambiguous" if found else "column_unknown",
                field=field,
            )
        at[field] = found[0]
    taken = set(at.values())
    matches: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        field = aliases.fields.get(normalize(n))
        if i not in taken and field is not None and field not in at:
            found = matches.setdefault(field, [])
            found.append(i)
            if len(found) > 1:
                listed = " and ".join(repr(str(names[j])) for j in found)
                raise DataError(
                    f"columns {listed} all name {field}: ambiguous; say which with "
                    f"--columns {field}=NAME (Python: columns={{'{field}': NAME}})",
                    source=source,
                    line=line,
                    rule="column_ambiguous",
                    field=field,
                )
    at.update({field: found[0] for field, found in matches.items()})
    chosen = {f: names[i] for f, i in at.items()}
    missing = [f for f in REQUIRED if f not in chosen]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise DataError(
            f"missing column{s} {', '.join(missing)} (found: {_listed(names)}); the names each "
            f"field may have are in config/columns.yaml, or {HINT}",
            source=source,
            line=line,
            rule="column_missing",
            field=missing[0],
        )
    return {f: chosen[f] for f in FIELDS if f in chosen}
