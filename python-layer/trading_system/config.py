"""Configuration (spec §11): strict pydantic models mirroring the Rust ``EngineConfig``
(`rust-core/chan-core/src/config.rs`) and ``FileConfig`` (`rust-core/trading-config`) key for
key, with the same defaults, enums, range checks and override rules.

Sources, each overriding the one before:

1. the YAML file (``config/default.yaml``'s shape; a missing key takes its default);
2. environment variables ``TRADING_SYSTEM__SECTION__KEY=value`` (e.g.
   ``TRADING_SYSTEM__MACD__FAST_PERIOD=5``): section and key are matched lower-cased, the value
   is read as a YAML scalar, an empty value changes nothing, and all of them are applied as one
   set of overrides (so their order does not matter); an unknown key is an error naming it;
3. a MACD preset from ``config/macd_params.yaml`` (replaces the whole ``macd`` section);
4. ``--set section.key=value`` assignments, each read as a YAML scalar and checked on its own,
   in order (as the Rust command line does).

YAML is read with the YAML 1.2 core schema that the Rust engine uses (serde_yaml_ng): ``yes``,
``on`` and ``012`` are strings, not a boolean and a number, so both engines read a file the same.
Every error is a :class:`~trading_system.errors.ConfigError` naming the dotted key.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trading_system._text import WHITESPACE, debug_str, format_number, show
from trading_system.errors import ConfigError

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
ENV_PREFIX = "TRADING_SYSTEM__"
"""Environment variables ``TRADING_SYSTEM__SECTION__KEY`` override configuration keys."""

U32 = Annotated[int, Field(ge=0, le=U32_MAX)]
U64 = Annotated[int, Field(ge=0, le=U64_MAX)]
MAX_PORT = 65535
MIN_MESSAGE_BYTES = 1024
"""The smallest ``server.max_message_bytes``: below it not even a small series fits."""


class MacdSeed(StrEnum):
    """How the MACD EMAs start (spec §2)."""

    FIRST_CLOSE = "first_close"
    """Chinese charting convention: every EMA starts at the first close."""
    SMA = "sma"
    """TA-Lib convention: each EMA starts at a simple mean; earlier values are absent."""


class PenDefinition(StrEnum):
    """Which pen (笔) definition applies (spec §5.1 rule 1)."""

    NEW_3KLINE = "new_3kline"
    """New pen (新笔): merged span ≥ 3 and ≥ 3 raw bars strictly between the extremes."""
    TRADITIONAL = "traditional"
    """Traditional pen (老笔): merged span ≥ 4."""


class Strength(StrEnum):
    """Divergence (背驰) strength measure (spec §8)."""

    AREA = "area"
    PEAK = "peak"
    SLOPE = "slope"
    AMPLITUDE = "amplitude"


class EngineName(StrEnum):
    """Which engine serves when both are healthy."""

    RUST = "rust"
    PYTHON = "python"


class _Model(BaseModel):
    """Strict, frozen, unknown keys rejected. Constructing a model directly raises pydantic's
    ValidationError (a ValueError); the functions of this module raise ConfigError."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON data, keys in the Rust order, enums as their strings."""
        return self.model_dump(mode="json")


class ValidationConfig(_Model):
    """Bar validation and repair (spec §1)."""

    allow_non_positive_prices: bool = False
    repair: bool = False


class MacdConfig(_Model):
    """MACD parameters (spec §2)."""

    fast_period: U32 = 12
    slow_period: U32 = 26
    signal_period: U32 = 9
    histogram_scale: float = 2.0
    seed: Annotated[MacdSeed, Strict(False)] = MacdSeed.FIRST_CLOSE


class PenConfig(_Model):
    """Pen (笔) parameters (spec §5)."""

    definition: Annotated[PenDefinition, Strict(False)] = PenDefinition.NEW_3KLINE
    strict_validation: bool = True


class SegmentConfig(_Model):
    """Segment (线段) parameters (spec §6)."""

    feature_sequence_strict: bool = True
    handle_inclusion: bool = True


class SignalConfig(_Model):
    """Buy/sell point (买卖点) parameters (spec §8, §9)."""

    strength: Annotated[Strength, Strict(False)] = Strength.AREA
    divergence_rate: float = 1.0
    min_pivots: U32 = 1


class SystemConfig(_Model):
    """Process-level settings (used by the servers and the monitor)."""

    primary_engine: Annotated[EngineName, Strict(False)] = EngineName.RUST
    failover_enabled: bool = True
    health_check_interval_ms: U64 = 1000
    call_timeout_ms: U64 = 400
    """Deadline of probes, stream messages and small calls: how soon a hang is found."""
    batch_timeout_ms: U64 = 60_000
    """Deadline of the monitor's Analyze and GetSnapshot calls (their size is the client's)."""
    latency_budget_ms: U64 = 250
    auto_failback: bool = False
    rise: U64 = 3
    """Consecutive good health checks before an engine takes traffic again."""
    fall: U64 = 3
    """Consecutive latency checks over budget before an engine is declared slow."""
    hold_down_ms: U64 = 10_000
    """Least time between two switches the monitor chooses (latency, failback)."""
    latency_window_ms: U64 = 10_000
    """The span of recent calls and probes the latency percentiles cover."""
    state_file: str = ""
    """The monitor's SQLite file for its epoch, mode and session journals ("" = memory only)."""
    signals_file: str = "var/signals.sqlite"
    """The monitor's SQLite file of the streams' buy/sell points ("" = not kept)."""
    max_standby_lag_ms: U64 = 250
    """A standby's oldest unapplied bar may be this old before acknowledgements wait."""
    max_standby_lag_bars: U64 = 100_000
    """Bars a standby may lag in all before acknowledgements wait."""
    catch_up_batch_bars: U64 = 4096
    """Bars per session in one ``Replica.CatchUp``."""
    hang_deadline_factor: U64 = 3
    """A stream message's deadline: this many times the engine's recent p99 ..."""
    min_deadline_ms: U64 = 50
    """... but never below this (and never above ``call_timeout_ms``)."""
    max_streams: U64 = 2000
    """Concurrent client streams the monitor takes; more: RESOURCE_EXHAUSTED."""
    max_calls: U64 = 256
    """Concurrent unary calls the monitor takes; more: RESOURCE_EXHAUSTED."""
    max_opens_per_s: U64 = 500
    """Stream opens per second the monitor takes; more: RESOURCE_EXHAUSTED."""
    max_sessions: U64 = 10_000
    """Sessions the monitor keeps: the least recently used idle one is closed on both engines."""
    session_idle_ms: U64 = 3_600_000
    """A session with no stream for this long is closed on both engines (0 = never)."""


class ServerConfig(_Model):
    """The engine servers (docs/GRPC.md): address, limits, shutdown, token and TLS. A port of 0
    means any free port (the server prints the one it got); empty strings mean "not set"."""

    host: str = "127.0.0.1"
    # u32 with a range check, as in Rust: a wrong port is named as such, not as a u16.
    rust_port: U32 = 50051
    python_port: U32 = 50052
    monitor_port: U32 = 50050
    max_message_bytes: U64 = 67108864
    replay_window: U64 = 256
    shutdown_grace_ms: U64 = 5000
    # The tokens stay out of reprs; to_dict() and every dump show REDACTED instead.
    auth_token: Annotated[str, Field(repr=False)] = ""
    """Non-empty: every call but health needs ``authorization: Bearer <token>``."""
    auth_token_file: str = ""
    """The client token read from this file when a server starts (trailing whitespace
    stripped); cannot be set together with ``auth_token``."""
    operator_token: Annotated[str, Field(repr=False)] = ""
    """Non-empty: administrative calls (UpdateConfig, Replica, Admin) need this token."""
    operator_token_file: str = ""
    """The operator token read from this file, as ``auth_token_file``."""
    max_sessions: U64 = 20_000
    """Sessions an engine holds: opening one more closes the least recently used one with no
    stream attached, else RESOURCE_EXHAUSTED."""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""


class ClientConfig(_Model):
    """How every client connects (the monitor to the engines, the commands, the probes, the
    client library): TLS when ``tls_ca_file`` or ``server.tls_cert_file`` is set."""

    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_server_name: str = ""


class LoggingConfig(_Model):
    """Log settings (free strings, as in Rust: ``level`` trace … error, ``format`` json/text)."""

    level: str = "info"
    format: str = "json"


SECRETS = ("auth_token", "operator_token")
"""The ``server`` keys holding a credential: never printed, each may come from ``<key>_file``."""
REDACTED = "<redacted>"
"""What a dump of the configuration shows for a non-empty secret."""


def _range_error(key: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("config_range", "{key}: {message}", {"key": key, "message": message})


def _check_ranges(macd: MacdConfig, signal: SignalConfig) -> None:
    """The range checks of Rust ``EngineConfig::validate``, in its order; the error names the
    key."""
    for key, v in (
        ("macd.fast_period", macd.fast_period),
        ("macd.slow_period", macd.slow_period),
        ("macd.signal_period", macd.signal_period),
    ):
        if v < 1:
            raise _range_error(key, f"must be >= 1, got {v}")
    if macd.fast_period >= macd.slow_period:
        raise _range_error(
            "macd.fast_period",
            f"must be < macd.slow_period ({macd.slow_period}), got {macd.fast_period}",
        )
    h = macd.histogram_scale
    if not (math.isfinite(h) and h > 0):
        raise _range_error(
            "macd.histogram_scale", f"must be a finite number > 0, got {format_number(h)}"
        )
    r = signal.divergence_rate
    if not (math.isfinite(r) and r > 0):
        raise _range_error(
            "signal.divergence_rate", f"must be a finite number > 0, got {format_number(r)}"
        )


def _check_server(server: ServerConfig) -> None:
    """The server section's ranges (after the algorithm keys', in the Rust
    ``ServerConfig::validate`` order); the error names the key."""
    for key, port in (
        ("server.rust_port", server.rust_port),
        ("server.python_port", server.python_port),
        ("server.monitor_port", server.monitor_port),
    ):
        if port > MAX_PORT:
            raise _range_error(
                key, f"must be a port from 1 to 65535, or 0 for any free port, got {port}"
            )
    if server.max_message_bytes < MIN_MESSAGE_BYTES:
        raise _range_error(
            "server.max_message_bytes",
            f"must be >= {MIN_MESSAGE_BYTES}, got {server.max_message_bytes}",
        )
    if server.replay_window < 1:
        raise _range_error("server.replay_window", f"must be >= 1, got {server.replay_window}")
    if server.max_sessions < 1:
        raise _range_error("server.max_sessions", f"must be >= 1, got {server.max_sessions}")
    for key, file in (
        ("auth_token", server.auth_token_file),
        ("operator_token", server.operator_token_file),
    ):
        if getattr(server, key) and file:
            raise _range_error(f"server.{key}_file", f"cannot be set together with server.{key}")


def _check_system(system: SystemConfig) -> None:
    """The system section's ranges (after the server's, as in Rust)."""
    for key, value in (
        ("system.health_check_interval_ms", system.health_check_interval_ms),
        ("system.call_timeout_ms", system.call_timeout_ms),
        ("system.batch_timeout_ms", system.batch_timeout_ms),
        ("system.rise", system.rise),
        ("system.fall", system.fall),
        ("system.latency_window_ms", system.latency_window_ms),
        ("system.max_standby_lag_ms", system.max_standby_lag_ms),
        ("system.max_standby_lag_bars", system.max_standby_lag_bars),
        ("system.catch_up_batch_bars", system.catch_up_batch_bars),
        ("system.hang_deadline_factor", system.hang_deadline_factor),
        ("system.min_deadline_ms", system.min_deadline_ms),
        ("system.max_streams", system.max_streams),
        ("system.max_calls", system.max_calls),
        ("system.max_opens_per_s", system.max_opens_per_s),
        ("system.max_sessions", system.max_sessions),
    ):
        if value < 1:
            raise _range_error(key, f"must be >= 1, got {value}")


def _ranges_wanted(info: ValidationInfo) -> bool:
    # Overrides given as data are type-checked key by key and range-checked once at the end.
    return not (isinstance(info.context, dict) and info.context.get("skip_ranges"))


class EngineConfig(_Model):
    """Every algorithm key of spec §11 (the ``config`` object of the analysis document)."""

    validation: ValidationConfig = ValidationConfig()
    macd: MacdConfig = MacdConfig()
    pen: PenConfig = PenConfig()
    segment: SegmentConfig = SegmentConfig()
    signal: SignalConfig = SignalConfig()

    @model_validator(mode="after")
    def _ranges(self, info: ValidationInfo) -> EngineConfig:
        if _ranges_wanted(info):
            _check_ranges(self.macd, self.signal)
        return self


class FileConfig(_Model):
    """The whole configuration file (``config/default.yaml``): the algorithm keys plus the
    ``system``, ``server`` and ``logging`` sections the servers and the monitor read."""

    system: SystemConfig = SystemConfig()
    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()
    logging: LoggingConfig = LoggingConfig()
    validation: ValidationConfig = ValidationConfig()
    macd: MacdConfig = MacdConfig()
    pen: PenConfig = PenConfig()
    segment: SegmentConfig = SegmentConfig()
    signal: SignalConfig = SignalConfig()

    @model_validator(mode="after")
    def _ranges(self, info: ValidationInfo) -> FileConfig:
        if _ranges_wanted(info):
            _check_ranges(self.macd, self.signal)
            _check_server(self.server)
            _check_system(self.system)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON data (as :meth:`_Model.to_dict`), with every non-empty
        secret (``server.auth_token``, ``server.operator_token``) shown as ``"<redacted>"``:
        what any dump of the configuration prints."""
        d = super().to_dict()
        server = d["server"]
        for key in SECRETS:
            if server[key]:
                server[key] = REDACTED
        return d

    def engine(self) -> EngineConfig:
        """The algorithm part."""
        return EngineConfig(
            validation=self.validation,
            macd=self.macd,
            pen=self.pen,
            segment=self.segment,
            signal=self.signal,
        )


Config = TypeVar("Config", EngineConfig, FileConfig)
Model = TypeVar("Model", bound=BaseModel)

# --- Error messages in the words of serde, so both engines explain a bad value alike ---------


def _unexpected(v: Any) -> str:
    if isinstance(v, bool):
        return f"boolean `{str(v).lower()}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        text = format_number(v)
        if math.isfinite(v) and "." not in text:
            text += ".0"
        return f"floating point `{text}`"
    if isinstance(v, str):
        return f"string {debug_str(v)}"
    if v is None:
        return "null"
    if isinstance(v, Mapping):
        return "map"
    if isinstance(v, (list, tuple)):
        return "sequence"
    return type(v).__name__


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The pydantic field info at ``loc`` (``None`` when the path leaves the models)."""
    info = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        model = info.annotation  # type: ignore[assignment]
    return info


def _expected(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    info = _field_at(model, loc)
    if info is None:
        return "a value"
    ann = info.annotation
    if isinstance(ann, type) and issubclass(ann, StrEnum):
        return "string or map"
    if ann is bool:
        return "a boolean"
    if ann is float:
        return "f64"
    if ann is str:
        return "a string"
    if ann is int:
        limits = [m.le for m in info.metadata if getattr(m, "le", None) is not None]
        return "u64" if limits and limits[0] > U32_MAX else "u32"
    return "a value"


def _variants(enum: type[StrEnum]) -> str:
    names = [f"`{m.value}`" for m in enum]
    if len(names) == 2:
        return f"{names[0]} or {names[1]}"
    return "one of " + ", ".join(names)


def _message(model: type[BaseModel], err: Any) -> str:
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    if kind == "extra_forbidden":
        return "unknown configuration key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        info = _field_at(model, loc)
        name = info.annotation.__name__ if info is not None else model.__name__
        return f"invalid type: {_unexpected(value)}, expected struct {name}"
    if kind == "enum":
        info = _field_at(model, loc)
        if isinstance(value, str) and info is not None:
            return f"unknown variant `{show(value)}`, expected {_variants(info.annotation)}"
        return f"invalid type: {_unexpected(value)}, expected string or map"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"invalid value: {_unexpected(value)}, expected {_expected(model, loc)}"
    if kind.endswith(("_type", "_parsing")):
        return f"invalid type: {_unexpected(value)}, expected {_expected(model, loc)}"
    return str(err["msg"])


def _config_error(model: type[BaseModel], e: ValidationError, prefix: str = "") -> ConfigError:
    """The first error of ``e`` as a ConfigError naming its dotted key."""
    err = e.errors(include_url=False)[0]
    if err["type"] == "config_range":
        ctx = err["ctx"]
        return ConfigError(str(ctx["key"]), str(ctx["message"]))
    key = prefix + ".".join(str(p) for p in err["loc"])
    return ConfigError(key.rstrip(".") or "config", _message(model, err))


def _validate(cls: type[Model], data: Any, *, ranges: bool = True, prefix: str = "") -> Model:
    try:
        return cls.model_validate(data, context={"skip_ranges": not ranges})
    except ValidationError as e:
        raise _config_error(cls, e, prefix) from None


# --- YAML with the YAML 1.2 core schema of serde_yaml_ng ---------------------------------------

_NULLS = ("", "~", "null", "Null", "NULL")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_RUST_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.IGNORECASE | re.ASCII,
)
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_rust_float(text: str) -> float | None:
    """``text`` read as Rust's ``str::parse::<f64>`` reads it (no spaces, no ``_``, ``inf``,
    ``infinity`` and ``nan`` in any case), or ``None``."""
    return float(text) if _RUST_FLOAT.fullmatch(text) else None


def _from_str_radix(s: str, radix: int, signed: bool, lo: int, hi: int) -> int | None:
    """Rust's ``from_str_radix`` for an integer type spanning ``lo..=hi``."""
    neg = False
    if s[:1] == "+":
        s = s[1:]
    elif s[:1] == "-" and signed:
        neg, s = True, s[1:]
    if not s or any(c not in _DIGITS[radix] for c in s):
        return None
    v = -int(s, radix) if neg else int(s, radix)
    return v if lo <= v <= hi else None


def _digits_but_not_number(s: str) -> bool:
    # A leading zero followed by digits is a string in YAML 1.2 (e.g. "012").
    s = s[1:] if s[:1] in ("+", "-") else s
    return len(s) > 1 and s[0] == "0" and all(c in "0123456789" for c in s[1:])


def _parse_unsigned(s: str, hi: int) -> int | None:
    unpositive = s.removeprefix("+")
    for prefix, radix in (("0x", 16), ("0o", 8), ("0b", 2)):
        if unpositive.startswith(prefix):
            rest = unpositive[2:]
            if rest[:1] in ("+", "-"):
                return None
            v = _from_str_radix(rest, radix, False, 0, hi)
            if v is not None:
                return v
    if unpositive[:1] in ("+", "-") or _digits_but_not_number(s):
        return None
    return _from_str_radix(unpositive, 10, False, 0, hi)


def _parse_negative(s: str, lo: int, hi: int) -> int | None:
    for prefix, radix in (("-0x", 16), ("-0o", 8), ("-0b", 2)):
        if s.startswith(prefix):
            v = _from_str_radix("-" + s[3:], radix, True, lo, hi)
            if v is not None:
                return v
    if _digits_but_not_number(s):
        return None
    return _from_str_radix(s, 10, True, lo, hi)


def _parse_yaml_float(s: str) -> float | None:
    unpositive = s.removeprefix("+")
    if s.startswith("+") and unpositive[:1] in ("+", "-"):
        return None
    if unpositive in (".inf", ".Inf", ".INF"):
        return math.inf
    if s in ("-.inf", "-.Inf", "-.INF"):
        return -math.inf
    if s in (".nan", ".NaN", ".NAN"):
        return math.nan
    v = parse_rust_float(unpositive)
    return v if v is not None and math.isfinite(v) else None


def resolve_scalar(text: str) -> Any:
    """A plain (unquoted) YAML scalar as serde_yaml_ng reads it: null, bool, integer (decimal,
    ``0x``, ``0o``, ``0b``), float, or else the string itself."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    for v in (
        _parse_unsigned(text, 2**64 - 1),
        _parse_negative(text, -(2**63), 2**63 - 1),
        _parse_unsigned(text, 2**128 - 1),
        _parse_negative(text, -(2**127), 2**127 - 1),
    ):
        if v is not None:
            return v
    if not _digits_but_not_number(text):
        f = _parse_yaml_float(text)
        if f is not None:
            return f
    return text


_PLAIN = "tag:trading-system:plain"
_STR = "tag:yaml.org,2002:str"


class _Loader(yaml.SafeLoader):
    """Tags every untagged plain scalar as such, so that :func:`resolve_scalar` (YAML 1.2)
    decides its type rather than PyYAML's YAML 1.1 rules; quoted and ``!!str`` scalars stay
    strings."""


# Its own, empty table (add_implicit_resolver would otherwise copy SafeLoader's YAML 1.1 rules).
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(_PLAIN, re.compile(".*", re.DOTALL), None)


class _Tree:
    """A composed YAML document turned into Python data, with the line of every key."""

    def __init__(self, str_keys: frozenset[tuple[str, ...]] = frozenset()) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.str_keys = str_keys

    def value(self, node: yaml.Node, path: tuple[str, ...]) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode):
                    raise ConfigError(
                        ".".join(path) or "file",
                        f"a key must be a plain name (line {k.start_mark.line + 1})",
                    )
                key = (*path, k.value)
                if k.value in out:
                    raise ConfigError(
                        ".".join(key), f"duplicate key (line {k.start_mark.line + 1})"
                    )
                self.lines[key] = k.start_mark.line + 1
                out[k.value] = self.value(v, key)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(x, path) for x in node.value]
        if node.tag == _STR:
            return node.value  # quoted, block or `!!str`: a string
        v = resolve_scalar(node.value)
        # serde reads any scalar but null into a string field ("level: 5" is "5").
        return node.value if path in self.str_keys and v is not None else v


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML syntax error on one line: what is wrong and where."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = f"{e.context}, {e.problem}" if e.context else e.problem
        return f"{what}{where}"
    return " ".join(str(e).split())


def _compose(text: str, source: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError("file", f"{source}: {_yaml_problem(e)}") from None


def _str_keys(model: type[BaseModel]) -> frozenset[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for section, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.update((section, k) for k, f in sub.model_fields.items() if f.annotation is str)
    return frozenset(keys)


def _sections(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError("file", f"invalid type: {_unexpected(data)}, expected struct {what}")
    # An empty section (`macd:`) takes the defaults.
    return {k: v for k, v in data.items() if v is not None}


def _with_line(e: ConfigError, tree: _Tree, source: str) -> ConfigError:
    parts = tuple(e.key.split("."))
    while parts and parts not in tree.lines:
        parts = parts[:-1]
    where = f"{source}, line {tree.lines[parts]}" if parts else source
    return ConfigError(e.key, f"{e.message} ({where})")


def parse_config(text: str, source: str = "<string>") -> FileConfig:
    """Parses configuration YAML (the shape of ``config/default.yaml``), rejecting unknown keys,
    wrong types and out-of-range values; an empty document gives the defaults."""
    node = _compose(text, source)
    if node is None:
        return FileConfig()
    tree = _Tree(_str_keys(FileConfig))
    data = _sections(tree.value(node, ()), "FileConfig")
    try:
        return _validate(FileConfig, data)
    except ConfigError as e:
        raise _with_line(e, tree, source) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> FileConfig:
    """Reads a configuration file (``None``: the defaults), then applies the environment's
    ``TRADING_SYSTEM__SECTION__KEY`` overrides (``environ``: ``os.environ`` unless given; pass
    ``{}`` to ignore the environment)."""
    if path is None:
        cfg = FileConfig()
    else:
        # A missing file is an OSError, not a bad configuration.
        cfg = parse_config(Path(path).read_text(encoding="utf-8"), os.fspath(path))
    return apply_env(cfg, os.environ if environ is None else environ)


def read_token_files(cfg: FileConfig) -> FileConfig:
    """``cfg`` with ``server.auth_token`` and ``server.operator_token`` read from
    ``server.auth_token_file`` and ``server.operator_token_file`` where those are set (what a
    server does when it starts): the file's text without trailing whitespace. An unreadable or
    empty file is a ConfigError naming the key and the path, never the file's contents. (Setting
    both a token and its file is refused when the configuration is read.)"""
    tokens: dict[str, str] = {}
    for key in SECRETS:
        name = f"server.{key}_file"
        path = getattr(cfg.server, f"{key}_file")
        if not path:
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(name, f"cannot read {path}: {e.strerror or e}") from None
        try:
            token = data.decode("utf-8").rstrip(WHITESPACE)
        except UnicodeDecodeError:
            raise ConfigError(name, f"{path} is not UTF-8 text") from None
        if not token:
            raise ConfigError(name, f"{path} is empty")
        tokens[key] = token
    if not tokens:
        return cfg
    return cfg.model_copy(update={"server": cfg.server.model_copy(update=tokens)})


# --- Overrides ---------------------------------------------------------------------------------


def _set_value(cfg: Config, key: str, value: Any, *, ranges: bool) -> Config:
    """``cfg`` with the value at the dotted ``key`` replaced; unknown keys and wrong types are
    errors naming it."""
    tree = cfg.model_dump(mode="python")
    parent: Any = None
    node: Any = tree
    parts = key.split(".")
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(key, "unknown configuration key")
        parent, node = node, node[part]
    if isinstance(node, dict):
        raise ConfigError(key, "is a section, not a key")
    parent[parts[-1]] = value
    return _validate(type(cfg), tree, ranges=ranges)


def parse_value(key: str, raw: str) -> Any:
    """An override's text read as a YAML scalar (``5``, ``true``, ``sma``, ``'quoted'``)."""
    try:
        node = yaml.compose(raw.strip(), Loader=_Loader)
        return None if node is None else _Tree().value(node, ())
    except (yaml.YAMLError, ConfigError) as e:
        why = e.message if isinstance(e, ConfigError) else _yaml_problem(e)
        raise ConfigError(key, f"unreadable value {debug_str(raw)}: {why}") from None


def apply_sets(cfg: Config, assignments: Iterable[str]) -> Config:
    """Applies ``section.key=value`` assignments in order, each checked on its own (like the Rust
    ``FileConfig::set``: give ``macd.slow_period`` before a ``fast_period`` above it)."""
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise ConfigError(assignment, "an override must have the form section.key=value")
        key = key.strip()
        value = parse_value(key, raw)
        if not isinstance(value, str) and _is_text_key(cfg, key):
            # As in Rust: a text key takes the text as written, even when it reads as a number
            # (`auth_token=123`) or as nothing (`state_file=`).
            value = raw.strip()
        cfg = _set_value(cfg, key, value, ranges=True)
    return cfg


def _is_text_key(cfg: BaseModel, key: str) -> bool:
    node: Any = cfg.model_dump(mode="python")
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, str)


def _leaves(v: Any, path: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(v, Mapping):
        for k, x in v.items():
            _leaves(x, f"{path}.{k}" if path else str(k), out)
    elif v is None:
        return  # an empty override (`macd: None`) changes nothing
    elif not path:
        raise ConfigError("config", "expected a mapping")
    else:
        out.append((path, v))


def apply_overrides(cfg: Config, overrides: Mapping[str, Any] | None) -> Config:
    """Applies a mapping of overrides (nested sections, or dotted keys), key by key as Rust
    ``EngineConfig::from_json_overrides`` does: a wrong type names its key, an empty section
    changes nothing, and the ranges are checked once at the end."""
    leaves: list[tuple[str, Any]] = []
    _leaves(overrides, "", leaves)
    for key, value in leaves:
        cfg = _set_value(cfg, key, value, ranges=False)
    return _validate(type(cfg), cfg.model_dump(mode="python"))


def engine_config(overrides: Mapping[str, Any] | None = None) -> EngineConfig:
    """The defaults with ``overrides`` applied (as golden files and requests carry them)."""
    return apply_overrides(EngineConfig(), overrides)


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """The ``TRADING_SYSTEM__SECTION__KEY`` variables as ``{dotted key: (variable, value)}``."""
    out: dict[str, tuple[str, Any]] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(name, f"expected the form {ENV_PREFIX}SECTION__KEY")
        key = ".".join(p.lower() for p in parts)
        out[key] = (name, parse_value(key, environ[name]))
    return out


def apply_env(cfg: Config, environ: Mapping[str, str]) -> Config:
    """Applies the environment's ``TRADING_SYSTEM__SECTION__KEY`` overrides as one set."""
    found = env_overrides(environ)
    if not found:
        return cfg
    try:
        return apply_overrides(cfg, {key: value for key, (_, value) in found.items()})
    except ConfigError as e:
        name = found[e.key][0] if e.key in found else ENV_PREFIX + "*"
        raise ConfigError(e.key, f"{e.message} (from the environment: {name})") from None


# --- MACD presets ------------------------------------------------------------------------------


def parse_presets(text: str, source: str = "<string>") -> dict[str, MacdConfig]:
    """Parses the presets file (``config/macd_params.yaml``): ``presets:`` maps each name to a
    ``macd`` section (missing keys take the defaults), range-checked like ``macd``."""
    node = _compose(text, source)
    tree = _Tree()
    data = {} if node is None else tree.value(node, ())
    if not isinstance(data, dict):
        raise ConfigError(
            "presets", f"invalid type: {_unexpected(data)}, expected struct MacdPresets"
        )
    for k in data:
        if k != "presets":
            raise ConfigError(k, f"unknown key, expected `presets` ({source})")
    if "presets" not in data:
        raise ConfigError("presets", f"missing key `presets` ({source})")
    table = data["presets"] or {}
    if not isinstance(table, dict):
        raise ConfigError("presets", f"invalid type: {_unexpected(table)}, expected a map")
    out: dict[str, MacdConfig] = {}
    for name in sorted(table):
        prefix = f"presets.{name}."
        try:
            macd = _validate(MacdConfig, table[name] or {}, prefix=prefix)
            _validate(EngineConfig, {"macd": macd})
        except ConfigError as e:
            own = e.key.startswith(prefix) or e.key == prefix[:-1]
            key = e.key if own else prefix + e.key
            raise _with_line(ConfigError(key, e.message), tree, source) from None
        out[name] = macd
    return out


def load_presets(path: str | os.PathLike[str]) -> dict[str, MacdConfig]:
    """Reads the MACD presets file, sorted by name."""
    return parse_presets(Path(path).read_text(encoding="utf-8"), os.fspath(path))


def apply_preset(cfg: Config, name: str, presets: Mapping[str, MacdConfig]) -> Config:
    """``cfg`` with its ``macd`` section replaced by the preset ``name``."""
    if name not in presets:
        known = ", ".join(sorted(presets))
        raise ConfigError("macd_preset", f"unknown preset {debug_str(name)}; known: {known}")
    tree = cfg.model_dump(mode="python")
    tree["macd"] = presets[name].model_dump(mode="python")
    return _validate(type(cfg), tree)


def as_engine_config(
    config: EngineConfig | FileConfig | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> EngineConfig:
    """Any accepted form of configuration as an EngineConfig: ``None`` (the defaults), a file
    path (read with :func:`load_config`, so environment overrides apply), a FileConfig or
    EngineConfig, or a mapping of overrides of the defaults."""
    if config is None:
        return EngineConfig()
    if isinstance(config, EngineConfig):
        return config
    if isinstance(config, FileConfig):
        return config.engine()
    if isinstance(config, (str, os.PathLike)):
        return load_config(config).engine()
    if isinstance(config, Mapping):
        return engine_config(config)
    raise TypeError(
        "config must be None, a path, a FileConfig, an EngineConfig or a mapping of overrides, "
        f"not {type(config).__name__}"
    )
