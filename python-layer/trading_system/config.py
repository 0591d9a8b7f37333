"""Configuration (spec §11): strict pydantic models of the Rust ``EngineConfig``
(`rust-core/chan-core/src/config.rs`) and ``FileConfig`` (`rust-core/trading-config`) key for
key, with the same defaults, enums, range checks and override rules, read with pydantic-settings.

Sources, each overriding the one before:

1. the YAML file (``config/default.yaml``'s shape; a missing key takes its default);
2. environment variables ``TRADING_SYSTEM__SECTION__KEY=value`` (e.g.
   ``TRADING_SYSTEM__MACD__FAST_PERIOD=5``): section and key are matched lower-cased, the value
   is read as YAML, a blank value changes nothing, and all of them are applied as one set (so
   their order does not matter); an unknown key is an error naming it;
3. a MACD preset from ``config/macd_params.yaml`` (replaces the whole ``macd`` section);
4. ``--set section.key=value`` assignments, each read as YAML and checked on its own, in order
   (as the Rust command line does).

A text key (``server.host``, ``logging.level`` ...) given on the command line or in the
environment takes the text as written when YAML does not read it as text (``auth_token=0042`` is
``"0042"``).

YAML is read by PyYAML (YAML 1.1) while the Rust engine reads YAML 1.2; the few spellings the two
read differently are refused here rather than guessed (README.md, Configuration, "Spellings
refused"): booleans other than ``true``/``false`` (``yes``, ``on`` ...), integers with a leading
zero, ``_`` or ``:`` (``012``, ``1_000``, ``1:30``), floats with ``_`` or ``:``, numbers in
exponent form without a dot and a signed exponent (``1e3``), a number or boolean where a file
gives a text key, and duplicate keys. Every error is a :class:`~trading_system.errors.ConfigError`
naming the dotted key; its message is free text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from trading_system.config_text import (
    ENV_PREFIX,
    STACK_PORTS,
    health_port_clash,
    read_token_file,
)
from trading_system.config_text import file_data as _file_data
from trading_system.config_text import read_yaml as _read_yaml
from trading_system.config_text import refuse as _refuse
from trading_system.config_text import shown as _shown
from trading_system.display import show
from trading_system.errors import ConfigError

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

U32 = Annotated[int, Field(ge=0, le=U32_MAX)]
U64 = Annotated[int, Field(ge=0, le=U64_MAX)]
MAX_PORT = 65535
MIN_MESSAGE_BYTES = 1024
MAX_DEGREES = 4
"""The most degrees of segments ``structure.degrees`` may ask for (spec §11)."""
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


class StructureConfig(_Model):
    """How many degrees of segments are built (spec §13: segments of segments, 线段的线段)."""

    degrees: U32 = 2


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
    health_port: U32 = 0
    """Non-zero: the server also listens on ``host:health_port``, plaintext and without tokens,
    for ``grpc.health.v1.Health`` only (the same statuses as the main port): the kubelet's native
    gRPC probe cannot speak TLS. 0: off. Differs from every ``*_port`` above."""
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


def _check_ranges(macd: MacdConfig, signal: SignalConfig, structure: StructureConfig) -> None:
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
        raise _range_error("macd.histogram_scale", f"must be a finite number > 0, got {h}")
    r = signal.divergence_rate
    if not (math.isfinite(r) and r > 0):
        raise _range_error("signal.divergence_rate", f"must be a finite number > 0, got {r}")
    d = structure.degrees
    if not 1 <= d <= MAX_DEGREES:
        raise _range_error("structure.degrees", f"must be from 1 to {MAX_DEGREES}, got {d}")


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
    if server.health_port > MAX_PORT:
        raise _range_error(
            "server.health_port",
            f"must be a port from 1 to 65535, or 0 for none, got {server.health_port}",
        )
    ports = {key: getattr(server, key) for key in STACK_PORTS}
    clash = health_port_clash(server.health_port, ports)
    if clash is not None:
        port = server.health_port
        raise _range_error("server.health_port", f"must differ from {clash} (both are {port})")
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
    structure: StructureConfig = StructureConfig()

    @model_validator(mode="after")
    def _ranges(self, info: ValidationInfo) -> EngineConfig:
        if _ranges_wanted(info):
            _check_ranges(self.macd, self.signal, self.structure)
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
    structure: StructureConfig = StructureConfig()

    @model_validator(mode="after")
    def _ranges(self, info: ValidationInfo) -> FileConfig:
        if _ranges_wanted(info):
            _check_ranges(self.macd, self.signal, self.structure)
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
        """The algorithm part: every section of :class:`EngineConfig` (taken by name, so a
        section added there is never left behind here)."""
        return EngineConfig(**{name: getattr(self, name) for name in EngineConfig.model_fields})


Config = TypeVar("Config", EngineConfig, FileConfig)
Model = TypeVar("Model", bound=BaseModel)

# --- Errors: the key from pydantic's location, the message in pydantic's words -----------------


def _config_error(e: ValidationError, prefix: str = "", where: str = "") -> ConfigError:
    """The first error of ``e`` as a ConfigError naming its dotted key (``where``, e.g. the
    file, follows the message)."""
    err = e.errors(include_url=False)[0]
    if err["type"] == "config_range" and "ctx" in err:  # our range errors always carry it
        ctx = err["ctx"]
        return ConfigError(str(ctx["key"]), f"{ctx['message']}{where}")
    key = (prefix + ".".join(str(p) for p in err["loc"])).rstrip(".") or "config"
    if err["type"] == "extra_forbidden":
        return ConfigError(key, f"unknown configuration key{where}")
    if err["type"] == "missing":
        return ConfigError(key, f"missing{where}")
    return ConfigError(key, f"{err['msg']}, got {_shown(err.get('input'))}{_hint(err)}{where}")


def _hint(err: Any) -> str:
    """Why a YAML value has the wrong type, where PyYAML's reading (YAML 1.1) is the cause."""
    kind, value = err["type"], err.get("input")
    if kind == "string_type" and value is not None and not isinstance(value, (dict, list)):
        return " (quote text in YAML)"
    if kind == "float_type" and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML 1.1 reads a number without a dot as text: write 1.0e+3, not 1e3)"
    return ""


def _validate(cls: type[Model], data: Any, *, ranges: bool = True, prefix: str = "") -> Model:
    try:
        return cls.model_validate(data, context={"skip_ranges": not ranges})
    except ValidationError as e:
        raise _config_error(e, prefix) from None


def _is_text_key(model: type[BaseModel], key: str) -> bool:
    info = None
    for part in key.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        info = model.model_fields.get(part)
        if info is None:
            return False
        model = info.annotation  # type: ignore[assignment]
    return info is not None and info.annotation is str


def _read_value(model: type[BaseModel], key: str, raw: str) -> Any:
    """An override's text (``--set`` or the environment) read as YAML (``5``, ``true``, ``sma``,
    ``'quoted'``); a text key takes the text as written unless YAML reads it as text."""
    value = _read_yaml(raw.strip(), key, f'unreadable value "{show(raw)}"', "the value")
    if _is_text_key(model, key):
        return value if isinstance(value, str) else raw.strip()
    _refuse(value, key)
    return value


# --- Sources (pydantic-settings): the file, then the environment -------------------------------


class _Settings(BaseSettings, FileConfig):
    """The file configuration as pydantic-settings builds it from its sources (converted to a
    plain :class:`FileConfig` at once: that one reads no environment when constructed)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        # The sections are checked strictly by their own models; strict here would make
        # pydantic-settings coerce the environment's text itself (``012`` to 12).
        strict=False,
    )


class _YamlFile(YamlConfigSettingsSource):
    """The YAML file source, read with :class:`~trading_system.config_text.Loader`."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return _file_data(file_path.read_text(encoding="utf-8"), os.fspath(file_path))


class _Environment(EnvSettingsSource):
    """The ``TRADING_SYSTEM__SECTION__KEY`` variables of ``environ`` (exactly that prefix, as the
    Rust engine matches it; blank values left out), each value read by :func:`_read_value`."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v.strip()}
        super().__init__(_Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, True, None)

    def __call__(self) -> dict[str, Any]:
        return {
            section: {
                key: _read_value(FileConfig, f"{section}.{key}", raw) for key, raw in values.items()
            }
            for section, values in super().__call__().items()
        }


def _built(*sources: PydanticBaseSettingsSource) -> FileConfig:
    """The configuration pydantic-settings builds from ``sources`` (the first one wins)."""
    # BaseSettings.__init__ takes `_build_sources`; pyright checks the call against the __init__
    # it synthesizes from the model's fields (pydantic's dataclass_transform) instead.
    settings = _Settings(_build_sources=(sources, {}))  # pyright: ignore[reportCallIssue]
    return FileConfig(**{name: getattr(settings, name) for name in FileConfig.model_fields})


def parse_config(text: str, source: str = "<string>") -> FileConfig:
    """Parses configuration YAML (the shape of ``config/default.yaml``), rejecting unknown keys,
    wrong types and out-of-range values; an empty document gives the defaults."""
    try:
        return FileConfig.model_validate(_file_data(text, source))
    except ValidationError as e:
        raise _config_error(e, where=f" ({source})") from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> FileConfig:
    """Reads a configuration file (``None``: the defaults), then applies the environment's
    ``TRADING_SYSTEM__SECTION__KEY`` overrides (``environ``: ``os.environ`` unless given; pass
    ``{}`` to ignore the environment)."""
    cfg = FileConfig()
    if path is not None:
        with open(path, "rb"):  # a missing file is an OSError, not a bad configuration
            pass
        try:
            cfg = _built(_YamlFile(_Settings, yaml_file=Path(path)))
        except ValidationError as e:
            raise _config_error(e, where=f" ({os.fspath(path)})") from None
    return apply_env(cfg, os.environ if environ is None else environ)


def read_token_files(cfg: FileConfig) -> FileConfig:
    """``cfg`` with ``server.auth_token`` and ``server.operator_token`` read from
    ``server.auth_token_file`` and ``server.operator_token_file`` where those are set (what a
    server does when it starts): the file's text without trailing whitespace. An unreadable or
    empty file is a ConfigError naming the key and the path, never the file's contents. (Setting
    both a token and its file is refused when the configuration is read.)"""
    tokens: dict[str, str] = {}
    for key in SECRETS:
        path = getattr(cfg.server, f"{key}_file")
        if path:
            tokens[key] = read_token_file(f"server.{key}_file", path)
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
    try:
        return type(cfg).model_validate(tree, context={"skip_ranges": not ranges})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        if err["type"] == "config_range":
            raise _config_error(e) from None
        # The error is about this key's value (a section's error names the section's key).
        raise ConfigError(key, _config_error(e).message) from None


def apply_sets(cfg: Config, assignments: Iterable[str]) -> Config:
    """Applies ``section.key=value`` assignments in order, each checked on its own (like the Rust
    ``FileConfig::set``: give ``macd.slow_period`` before a ``fast_period`` above it)."""
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise ConfigError(assignment, "an override must have the form section.key=value")
        key = key.strip()
        cfg = _set_value(cfg, key, _read_value(type(cfg), key, raw), ranges=True)
    return cfg


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


def _env_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``TRADING_SYSTEM__SECTION__KEY`` variables with a value, as ``{dotted key: name}``;
    a name of another form, or naming no key, is an error."""
    found: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or not environ[name].strip():
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(name, f"expected the form {ENV_PREFIX}SECTION__KEY")
        key = ".".join(p.lower() for p in parts)
        if key.split(".")[0] not in FileConfig.model_fields or not _is_key(key):
            raise ConfigError(key, f"unknown configuration key (from the environment: {name})")
        found[key] = name
    return found


def _is_key(key: str) -> bool:
    section, name = key.split(".")
    sub = FileConfig.model_fields[section].annotation
    return isinstance(sub, type) and issubclass(sub, BaseModel) and name in sub.model_fields


def apply_env(cfg: FileConfig, environ: Mapping[str, str]) -> FileConfig:
    """Applies the environment's ``TRADING_SYSTEM__SECTION__KEY`` overrides as one set, on top
    of ``cfg`` (the sources of pydantic-settings: the environment over ``cfg``)."""
    found = _env_keys(environ)
    if not found:
        return cfg
    try:
        return _built(
            _Environment(environ), InitSettingsSource(_Settings, init_kwargs=cfg.model_dump())
        )
    except (ConfigError, ValidationError) as e:
        error = e if isinstance(e, ConfigError) else _config_error(e)
        name = found.get(error.key, ENV_PREFIX + "*")
        raise ConfigError(error.key, f"{error.message} (from the environment: {name})") from None


# --- MACD presets ------------------------------------------------------------------------------


class _PresetsFile(_Model):
    """The presets file: ``presets:`` maps each name to a ``macd`` section."""

    presets: dict[str, MacdConfig]


def parse_presets(text: str, source: str = "<string>") -> dict[str, MacdConfig]:
    """Parses the presets file (``config/macd_params.yaml``): ``presets:`` maps each name to a
    ``macd`` section (missing keys take the defaults), range-checked like ``macd``."""
    data = _read_yaml(text, "presets", f"{source} is not valid YAML", source)
    where = f" ({source})"
    _refuse(data, where=where)
    if isinstance(data, dict) and isinstance(data.get("presets"), dict):
        # An empty preset (`name:`) takes the defaults.
        data["presets"] = {k: {} if v is None else v for k, v in data["presets"].items()}
    try:
        table = _PresetsFile.model_validate({} if data is None else data).presets
    except ValidationError as e:
        raise _config_error(e, where=where) from None
    out: dict[str, MacdConfig] = {}
    for name in sorted(table):
        try:
            _validate(EngineConfig, {"macd": table[name]})
        except ConfigError as e:
            raise ConfigError(f"presets.{name}.{e.key}", f"{e.message}{where}") from None
        out[name] = table[name]
    return out


def load_presets(path: str | os.PathLike[str]) -> dict[str, MacdConfig]:
    """Reads the MACD presets file, sorted by name."""
    return parse_presets(Path(path).read_text(encoding="utf-8"), os.fspath(path))


def apply_preset(cfg: Config, name: str, presets: Mapping[str, MacdConfig]) -> Config:
    """``cfg`` with its ``macd`` section replaced by the preset ``name``."""
    if name not in presets:
        known = ", ".join(sorted(presets))
        raise ConfigError("macd_preset", f'unknown preset "{show(name)}"; known: {known}')
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
