"""Configuration text as both engines read it, without the models: YAML through PyYAML refusing
what YAML 1.2 (the Rust engine's) reads otherwise, and token files. :mod:`trading_system.config`
builds its pydantic models on these; the probe's lean reading
(:mod:`trading_system.cli.probe_config`) uses them alone, so that a health check every few
seconds needs neither pydantic nor numpy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trading_system.display import show
from trading_system.errors import ConfigError

ENV_PREFIX = "TRADING_SYSTEM__"
"""Environment variables ``TRADING_SYSTEM__SECTION__KEY`` override configuration keys."""


STACK_PORTS = ("rust_port", "python_port", "monitor_port")
"""The ``server`` keys of the ports a stack's processes listen on."""


def health_port_clash(health_port: int, server: Mapping[str, Any]) -> str | None:
    """The key of the stack port (of the ``server`` section's values, by name) that a non-zero
    ``server.health_port`` repeats, or None: a health listener there would clash with that
    process on one host, or be taken for it."""
    if health_port != 0:
        for key in STACK_PORTS:
            if server[key] == health_port:
                return f"server.{key}"
    return None


def shown(value: Any) -> str:
    """A value as an error message shows it: text by the display rule, in quotes; anything
    else as Python writes it (cut by the same rule)."""
    return f'"{show(value)}"' if isinstance(value, str) else show(repr(value))


# --- YAML: PyYAML's reading, refusing what YAML 1.2 (the Rust engine's) reads otherwise --------


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A value read one way by YAML 1.1 (PyYAML) and another by YAML 1.2 (the Rust engine): kept
    as this marker while the document is read, refused naming its key (:func:`refuse`)."""

    text: str
    why: str


BOOLEANS = ("true", "True", "TRUE", "false", "False", "FALSE")
"""The boolean spellings that YAML 1.1 and 1.2 share; ``yes``, ``on``, ``off`` ... are booleans in
1.1 only."""


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, its scalars marked :class:`Ambiguous` where YAML 1.2 differs, and a
    key given twice marked too (PyYAML keeps the last one; the Rust engine refuses it)."""

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> Any:
        if node.value not in BOOLEANS:
            return Ambiguous(
                node.value, "a boolean in YAML 1.1 but text in YAML 1.2: write true or false"
            )
        return super().construct_yaml_bool(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        digits = node.value.lstrip("+-")
        octal = len(digits) > 1 and digits[0] == "0" and digits[1] not in "xb"
        if octal or "_" in digits or ":" in digits:
            return Ambiguous(
                node.value,
                "a number in YAML 1.1 but text in YAML 1.2 (a leading "
                "zero, `_` or `:`): write the plain decimal number",
            )
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        if "_" in node.value or ":" in node.value:
            return Ambiguous(
                node.value,
                "a number in YAML 1.1 but text in YAML 1.2 (`_` or `:`): write the plain number",
            )
        return super().construct_yaml_float(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before PyYAML merges `<<: *anchor` keys in (a key may override a merged one).
        seen: set[Any] = set()
        twice: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                if key in seen:
                    twice.setdefault(key, key_node.start_mark.line + 1)
                seen.add(key)
            except TypeError:
                pass  # an unhashable key: construct_mapping refuses it
        mapping = super().construct_mapping(node, deep=deep)
        for key, line in twice.items():
            mapping[key] = Ambiguous(str(key), f"given twice (line {line})")
        return mapping


Loader.add_constructor("tag:yaml.org,2002:bool", Loader.construct_yaml_bool)
Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)


def read_yaml(text: str, key: str, what: str, name: str) -> Any:
    """One YAML document as Python data (``None`` when empty); a syntax error is a ConfigError
    for ``key`` saying ``what`` could not be read (``name``: the text's name in the marks)."""
    loader = Loader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(key, f"{what}: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def refuse(data: Any, path: str = "", where: str = "") -> None:
    """A ConfigError naming the first :class:`Ambiguous` value in ``data``, if any."""
    if isinstance(data, Ambiguous):
        raise ConfigError(path or "config", f'"{show(data.text)}" is {data.why}{where}')
    if isinstance(data, dict):
        for k, v in data.items():
            refuse(v, f"{path}.{k}" if path else str(k), where)
    elif isinstance(data, list):
        for v in data:
            refuse(v, path, where)


def file_data(text: str, source: str) -> dict[str, Any]:
    """A configuration file's sections (an empty document, or an empty section, takes the
    defaults)."""
    data = read_yaml(text, "file", f"{source} is not valid YAML", source)
    refuse(data, where=f" ({source})")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("file", f"{source}: expected a mapping of sections, got {shown(data)}")
    return {k: v for k, v in data.items() if v is not None}


def read_token_file(key: str, path: str) -> str:
    """The token in ``path`` (``key``: the ``server.*_file`` key naming it) as the servers read
    it: the file's text without trailing whitespace. An unreadable, non-UTF-8 or empty file is a
    ConfigError naming the key and the path, never the file's contents."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(key, f"cannot read {path}: {e.strerror or e}") from None
    try:
        token = data.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path} is not UTF-8 text") from None
    if not token:
        raise ConfigError(key, f"{path} is empty")
    return token
