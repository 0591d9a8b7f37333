"""The probe's lean reading of the configuration: the keys ``trading-system probe`` uses, read
without pydantic (importing it and building the models costs a health check most of its CPU).

It reads the same sources in the same order as :mod:`trading_system.config` — the file, the
``TRADING_SYSTEM__SECTION__KEY`` environment as one set, then each ``--set`` in order — through
the same YAML reading (:mod:`trading_system.config_text`), and checks what the full reading
checks of :data:`KEYS`: their types (strict: a port is an integer, not a boolean, a text key in
a file is text), the ports' ranges and the health port's clashes, a token given with its file,
the token and certificate files readable. Every other key must exist (its value is the
server's to check). It decides nothing on its own: whatever it cannot vouch for — any error,
any spelling it does not read — makes :func:`lean_settings` return None, and the probe then
reads the configuration in full, which accepts it or names the error exactly as before.
``tests/python/test_probe.py`` compares both readings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trading_system import resources
from trading_system.config_text import (
    ENV_PREFIX,
    STACK_PORTS,
    file_data,
    health_port_clash,
    read_token_file,
    read_yaml,
)
from trading_system.errors import ConfigError
from trading_system.transport import Settings, local_address

U32_MAX = 2**32 - 1
MAX_PORT = 65535
KEYS: dict[str, type] = {
    "server.host": str,
    "server.rust_port": int,
    "server.python_port": int,
    "server.monitor_port": int,
    "server.health_port": int,
    "server.tls_cert_file": str,
    "server.auth_token": str,
    "server.auth_token_file": str,
    "server.operator_token": str,
    "server.operator_token_file": str,
    "client.tls_ca_file": str,
    "client.tls_cert_file": str,
    "client.tls_key_file": str,
    "client.tls_server_name": str,
}
"""The keys the probe reads (the default address, TLS, the token files) and what they hold;
the ports all, for the health port's clash check."""


class Unsure(Exception):
    """The lean reading cannot vouch for the configuration: the full reading decides."""


def _defaults() -> dict[str, dict[str, Any]]:
    """The package's default.yaml (every key, with its default: test_config checks it equals
    the models' defaults)."""
    text = resources.read_bundled(resources.DEFAULT_CONFIG)
    return {k: dict(v) for k, v in file_data(text, resources.DEFAULT_CONFIG).items()}


def _typed(key: str, value: Any) -> Any:
    """``value`` if it has the key's type as pydantic's strict mode takes it (an int that is
    not a bool; text), else unsure."""
    kind = KEYS[key]
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise Unsure(key)


def _override(key: str, raw: str) -> Any:
    """An override's text as :func:`trading_system.config._read_value` reads it: YAML, and a
    text key takes the text as written unless YAML reads it as text."""
    try:
        value = read_yaml(raw.strip(), key, "unreadable value", "the value")
    except ConfigError:
        raise Unsure(key) from None
    if KEYS[key] is str:
        return value if isinstance(value, str) else raw.strip()
    return _typed(key, value)


def _check(values: Mapping[str, Mapping[str, Any]]) -> None:
    """The checks of ``FileConfig``'s validation that concern :data:`KEYS`."""
    server = values["server"]
    for key in (*STACK_PORTS, "health_port"):
        if not 0 <= server[key] <= MAX_PORT:  # also the u32 range
            raise Unsure(f"server.{key}")
    if health_port_clash(server["health_port"], server) is not None:
        raise Unsure("server.health_port")
    for token in ("auth_token", "operator_token"):
        if server[token] and server[f"{token}_file"]:
            raise Unsure(f"server.{token}_file")


def _known(values: Mapping[str, Mapping[str, Any]], key: str) -> tuple[str, str]:
    section, dot, name = key.partition(".")
    if not dot or section not in values or name not in values[section]:
        raise Unsure(key)
    return section, name


def read(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str], sets: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The configuration's sections with :data:`KEYS` read and checked (other keys keep their
    defaults: not read here). Raises :class:`Unsure` for anything the full reading might
    refuse or read otherwise."""
    values = _defaults()
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = file_data(text, os.fspath(path))
        except (OSError, UnicodeDecodeError, ConfigError):
            raise Unsure("file") from None
        for section, keys in data.items():
            if not isinstance(keys, dict):
                raise Unsure(str(section))
            for name, value in keys.items():
                key = f"{section}.{name}"
                _known(values, key)
                if key in KEYS:
                    values[section][name] = _typed(key, value)
        _check(values)
    found: dict[str, Any] = {}
    seen: set[str] = set()
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or not raw.strip():
            continue
        parts = variable[len(ENV_PREFIX) :].split("__")
        if len(parts) != 2 or not all(parts):
            raise Unsure(variable)
        key = ".".join(p.lower() for p in parts)
        _known(values, key)
        if key in seen:  # two spellings of one key: which one wins is the full reading's
            raise Unsure(key)
        seen.add(key)
        if key in KEYS:
            found[key] = _override(key, raw)
    if found:
        for key, value in found.items():
            section, name = key.split(".")
            values[section][name] = value
        _check(values)
    for assignment in sets:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep:
            raise Unsure(assignment)
        section, name = _known(values, key)
        if key in KEYS:
            values[section][name] = _override(key, raw)
            _check(values)
    return values


def lean_settings(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str], sets: Iterable[str]
) -> tuple[Settings, str] | None:
    """The probe's connection settings and default address (the monitor's), read without
    pydantic; None when the full reading must decide (module documentation)."""
    try:
        values = read(path, environ, sets)
        server, client = values["server"], values["client"]
        for token in ("auth_token", "operator_token"):
            if server[f"{token}_file"]:
                server[token] = read_token_file(f"server.{token}_file", server[f"{token}_file"])

        def pem(key: str) -> bytes | None:
            return Path(client[key]).read_bytes() if client[key] else None

        settings = Settings(
            tls=bool(client["tls_ca_file"] or server["tls_cert_file"]),
            ca=pem("tls_ca_file"),
            cert=pem("tls_cert_file"),
            key=pem("tls_key_file"),
            server_name=client["tls_server_name"],
            token=server["auth_token"],
            operator_token=server["operator_token"],
        )
    except (Unsure, ConfigError, OSError, ValueError):
        return None
    return settings, local_address(server["host"], server["monitor_port"])
