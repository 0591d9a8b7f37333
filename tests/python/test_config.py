"""Configuration (trading_system.config): the same keys, defaults, types, ranges and override
rules as the Rust crates' (chan-core's config.rs, trading-config); the spellings YAML 1.1 and 1.2
read apart are refused. Errors are compared by their key; their messages are free text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from trading_system.config import (
    EngineConfig,
    FileConfig,
    MacdConfig,
    MacdSeed,
    PenDefinition,
    Strength,
    apply_env,
    apply_overrides,
    apply_preset,
    apply_sets,
    as_engine_config,
    engine_config,
    load_config,
    load_presets,
    parse_config,
    parse_presets,
    read_token_files,
)
from trading_system.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_YAML = ROOT / "config" / "default.yaml"
PRESETS_YAML = ROOT / "config" / "macd_params.yaml"
GOLDEN_DOCS = [
    p
    for p in sorted((ROOT / "tests" / "golden").glob("*.json"))
    if "expected" in json.loads(p.read_text(encoding="utf-8"))
]


def test_defaults_equal_default_yaml() -> None:
    cfg = load_config(DEFAULT_YAML, environ={})
    assert cfg == FileConfig()
    # Key for key, value for value (the file holds plain YAML only).
    assert FileConfig().to_dict() == yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))


def test_defaults_match_the_spec_table() -> None:
    c = EngineConfig()
    assert (c.macd.fast_period, c.macd.slow_period, c.macd.signal_period) == (12, 26, 9)
    assert c.macd.histogram_scale == 2.0 and c.macd.seed == MacdSeed.FIRST_CLOSE
    assert c.pen.definition == PenDefinition.NEW_3KLINE and c.pen.strict_validation
    assert c.segment.feature_sequence_strict and c.segment.handle_inclusion
    assert c.signal.strength == Strength.AREA
    assert c.signal.divergence_rate == 1.0 and c.signal.min_pivots == 1
    assert not c.validation.repair and not c.validation.allow_non_positive_prices


@pytest.mark.parametrize("path", GOLDEN_DOCS, ids=lambda p: p.stem)
def test_to_dict_is_the_documents_config_object(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    got = engine_config(case.get("config")).to_dict()
    assert got == case["expected"]["config"]
    # Same spellings: floats stay floats, enums are their lowercase strings.
    assert json.dumps(got, sort_keys=True) == json.dumps(case["expected"]["config"], sort_keys=True)


def test_to_dict_key_order_and_value_types_follow_rust() -> None:
    d = engine_config({"macd": {"histogram_scale": 3}, "signal": {"divergence_rate": 2}}).to_dict()
    assert list(d) == ["validation", "macd", "pen", "segment", "signal", "structure"]
    assert list(d["macd"]) == [
        "fast_period",
        "slow_period",
        "signal_period",
        "histogram_scale",
        "seed",
    ]
    assert list(d["signal"]) == ["strength", "divergence_rate", "min_pivots"]
    assert d["structure"] == {"degrees": 2}
    assert json.dumps(d["macd"]["histogram_scale"]) == "3.0"
    assert json.dumps(d["signal"]["divergence_rate"]) == "2.0"
    assert d["pen"]["definition"] == "new_3kline" and type(d["pen"]["definition"]) is str
    assert list(FileConfig().to_dict())[:4] == ["system", "server", "client", "logging"]


# --- Unknown keys ------------------------------------------------------------------------------


def test_unknown_keys_are_rejected_naming_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("macd:\n  fastt: 3\n", "x.yaml")
    assert e.value.key == "macd.fastt"
    assert "unknown configuration key" in e.value.message and "x.yaml" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_config("foo: 1\n")
    assert e.value.key == "foo"
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["macd.fastt=3"])
    assert (e.value.key, e.value.message) == ("macd.fastt", "unknown configuration key")
    with pytest.raises(ConfigError) as e:
        apply_overrides(EngineConfig(), {"pen": {"kind": 1}})
    assert (e.value.key, e.value.message) == ("pen.kind", "unknown configuration key")
    with pytest.raises(ConfigError) as e:
        apply_overrides(EngineConfig(), {"pen": 3})
    assert (e.value.key, e.value.message) == ("pen", "is a section, not a key")
    # The system and logging sections exist only in the file configuration.
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["system.primary_engine=python"])
    assert e.value.key == "system.primary_engine"
    assert apply_sets(FileConfig(), ["system.primary_engine=python"]).system.primary_engine == (
        "python"
    )


def test_direct_construction_is_strict_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        MacdConfig(fastt=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        MacdConfig(fast_period="5")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        EngineConfig(macd=MacdConfig(fast_period=30))
    cfg = EngineConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.macd.fast_period = 5  # type: ignore[misc]
    lax_enum: Any = "sma"  # enums take their strings
    assert EngineConfig(macd=MacdConfig(seed=lax_enum)).macd.seed == MacdSeed.SMA


# --- Types and ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("macd.fast_period=30", "macd.fast_period"),
        ("macd.slow_period=5", "macd.fast_period"),
        ("macd.fast_period=0", "macd.fast_period"),
        ("macd.signal_period=0", "macd.signal_period"),
        ("macd.histogram_scale=0", "macd.histogram_scale"),
        ("macd.histogram_scale=-1", "macd.histogram_scale"),
        ("macd.histogram_scale=.inf", "macd.histogram_scale"),
        ("macd.histogram_scale=.nan", "macd.histogram_scale"),
        ("signal.divergence_rate=0", "signal.divergence_rate"),
        ("signal.min_pivots=-1", "signal.min_pivots"),
        ("signal.min_pivots=1.5", "signal.min_pivots"),
        ("macd.fast_period=4294967296", "macd.fast_period"),
        ("macd.fast_period=5.0", "macd.fast_period"),
        ("macd.fast_period='5'", "macd.fast_period"),
        ("validation.repair=1", "validation.repair"),
        ("validation.repair=", "validation.repair"),
        ("pen.definition=old", "pen.definition"),
        ("signal.strength=Area", "signal.strength"),
        ("macd.histogram_scale=true", "macd.histogram_scale"),
        ("macd.fast_period=[5]", "macd.fast_period"),
    ],
)
def test_bad_values_name_the_key(assignment: str, key: str) -> None:
    cfg = FileConfig()
    with pytest.raises(ConfigError) as e:
        apply_sets(cfg, [assignment])
    assert e.value.key == key
    assert str(e.value) == f"invalid configuration: {key}: {e.value.message}"
    assert cfg == FileConfig(), "a rejected override changes nothing"


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("macd.fast_period=30", "must be < macd.slow_period (26), got 30"),
        ("macd.fast_period=0", "must be >= 1, got 0"),
        ("macd.histogram_scale=0", "must be a finite number > 0, got 0.0"),
        ("macd.histogram_scale=.nan", "must be a finite number > 0, got nan"),
        ("pen.definition=old", "'new_3kline' or 'traditional'"),
        ("macd.fast_period=x", 'got "x"'),
    ],
)
def test_messages_say_what_is_wrong(assignment: str, words: str) -> None:
    """The message is free text, but it says the range or the choices and echoes the value."""
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [assignment])
    assert words in e.value.message


@pytest.mark.parametrize(
    ("assignment", "path", "value"),
    [
        ("pen.definition=traditional", ("pen", "definition"), "traditional"),
        ("macd.seed=sma", ("macd", "seed"), "sma"),
        ("validation.repair=true", ("validation", "repair"), True),
        ("validation.repair=TRUE", ("validation", "repair"), True),
        ("macd.histogram_scale=1.0e+1", ("macd", "histogram_scale"), 10.0),
        ("macd.histogram_scale=3", ("macd", "histogram_scale"), 3.0),
        ("macd.fast_period=0x0a", ("macd", "fast_period"), 10),
        ("macd.fast_period=+5", ("macd", "fast_period"), 5),
        (" macd.fast_period = 5  # a comment", ("macd", "fast_period"), 5),
        ("signal.min_pivots=0", ("signal", "min_pivots"), 0),
        ("logging.level=debug", ("logging", "level"), "debug"),
        ("system.call_timeout_ms=18446744073709551615", ("system", "call_timeout_ms"), 2**64 - 1),
    ],
)
def test_set_reads_yaml_scalars(assignment: str, path: tuple[str, str], value: object) -> None:
    d = apply_sets(FileConfig(), [assignment]).to_dict()
    got = d[path[0]][path[1]]
    assert got == value and type(got) is type(value)


def test_set_is_checked_assignment_by_assignment_like_rust() -> None:
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["macd.fast_period=30", "macd.slow_period=40"])
    assert e.value.key == "macd.fast_period"
    cfg = apply_sets(EngineConfig(), ["macd.slow_period=40", "macd.fast_period=30"])
    assert (cfg.macd.fast_period, cfg.macd.slow_period) == (30, 40)
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["macd"])
    assert e.value.message == "an override must have the form section.key=value"
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["macd=3"])
    assert (e.value.key, e.value.message) == ("macd", "is a section, not a key")
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ['macd.fast_period="'])
    assert e.value.key == "macd.fast_period" and e.value.message.startswith("unreadable value")


def test_overrides_apply_key_by_key_and_check_ranges_at_the_end() -> None:
    cfg = engine_config({"macd": {"fast_period": 30, "slow_period": 40}, "segment": None})
    assert (cfg.macd.fast_period, cfg.macd.slow_period) == (30, 40)
    assert engine_config({"macd": {}}) == EngineConfig()
    assert engine_config(None) == EngineConfig()
    assert engine_config({"macd": {"fast_period": None}}) == EngineConfig(), "null: no change"
    assert engine_config({"macd.fast_period": 5}).macd.fast_period == 5, "dotted keys"
    for overrides, key in [
        ({"macd": {"fast_period": -1}}, "macd.fast_period"),
        ({"pen": {"definition": "old"}}, "pen.definition"),
        ({"signal": {"min_pivots": 1.5}}, "signal.min_pivots"),
        ({"macd": {"histogram_scale": "x"}}, "macd.histogram_scale"),
        ({"macd": {"fast_period": 40}}, "macd.fast_period"),
        ({"macd": {"fast_period": True}}, "macd.fast_period"),
        ({"foo": {"bar": 1}}, "foo.bar"),
    ]:
        with pytest.raises(ConfigError) as e:
            engine_config(overrides)
        assert e.value.key == key, overrides
    for bad in ([1], 3):
        with pytest.raises(ConfigError) as e:
            engine_config(bad)  # type: ignore[arg-type]
        assert (e.value.key, e.value.message) == ("config", "expected a mapping")
    # A non-finite value given as data is a range error.
    with pytest.raises(ConfigError) as e:
        engine_config({"macd": {"histogram_scale": math.inf}})
    assert e.value.key == "macd.histogram_scale"


# --- The server section ------------------------------------------------------------------------


def test_server_section_defaults_and_values() -> None:
    server = load_config(DEFAULT_YAML, environ={}).server
    assert (server.host, server.rust_port, server.python_port, server.monitor_port) == (
        "127.0.0.1",
        50051,
        50052,
        50050,
    )
    assert (server.max_message_bytes, server.replay_window, server.shutdown_grace_ms) == (
        64 * 1024 * 1024,
        256,
        5000,
    )
    assert server.auth_token == server.tls_cert_file == server.tls_client_ca_file == ""
    cfg = apply_sets(
        FileConfig(),
        [
            "server.python_port=0",  # 0: any free port
            "server.rust_port=65535",
            "server.max_message_bytes=1024",
            "server.replay_window=1",
            "server.auth_token=secret",
            "server.host=::1",
        ],
    )
    assert (cfg.server.python_port, cfg.server.rust_port) == (0, 65535)
    assert (cfg.server.max_message_bytes, cfg.server.replay_window) == (1024, 1)
    assert (cfg.server.auth_token, cfg.server.host) == ("secret", "::1")
    # In a file a text key is text (test_a_text_key_in_a_file_must_be_text).
    assert parse_config("server:\n  auth_token: '12345'\n").server.auth_token == "12345"
    # The server section exists only in the file configuration.
    with pytest.raises(ConfigError) as e:
        apply_sets(EngineConfig(), ["server.python_port=1"])
    assert e.value.key == "server.python_port"


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("server.python_port=65536", "server.python_port"),
        ("server.rust_port=-1", "server.rust_port"),
        ("server.monitor_port=x", "server.monitor_port"),
        ("server.max_message_bytes=1023", "server.max_message_bytes"),
        ("server.replay_window=0", "server.replay_window"),
        ("server.shutdown_grace_ms=-5", "server.shutdown_grace_ms"),
        ("server.tls_cert=x", "server.tls_cert"),
    ],
)
def test_server_section_bad_values_name_the_key(assignment: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [assignment])
    assert e.value.key == key


def test_server_section_from_files_and_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("server:\n  replay_window: 0\n", "x.yaml")
    assert e.value.key == "server.replay_window" and "(x.yaml)" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_config("server:\n  port: 1\n")
    assert e.value.key == "server.port"
    env = {
        "TRADING_SYSTEM__SERVER__PYTHON_PORT": "6000",
        "TRADING_SYSTEM__SERVER__TLS_CERT_FILE": "cert.pem",
    }
    p = tmp_path / "c.yaml"
    p.write_text("server:\n  python_port: 5000\n  replay_window: 8\n", encoding="utf-8")
    cfg = load_config(p, environ=env)
    assert (cfg.server.python_port, cfg.server.replay_window) == (6000, 8)
    assert cfg.server.tls_cert_file == "cert.pem"
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__SERVER__MAX_MESSAGE_BYTES": "10"})
    assert e.value.key == "server.max_message_bytes"
    assert "TRADING_SYSTEM__SERVER__MAX_MESSAGE_BYTES" in e.value.message


# --- YAML files --------------------------------------------------------------------------------


def test_yaml_values_both_readings_agree_on() -> None:
    assert parse_config("macd:\n  fast_period: 0x0c\n").macd.fast_period == 12
    assert parse_config("macd:\n  fast_period: +12\n").macd.fast_period == 12
    assert parse_config("macd:\n  histogram_scale: 1\n").macd.histogram_scale == 1.0
    assert parse_config("macd:\n  histogram_scale: 1.0e+1\n").macd.histogram_scale == 10.0
    assert parse_config("validation:\n  repair: TRUE\n").validation.repair is True
    assert parse_config("logging:\n  level: '5'\n").logging.level == "5"
    for text, key in [
        ("macd:\n  fast_period: ~\n", "macd.fast_period"),
        ("macd: 3\n", "macd"),
        ("macd:\n  seed: SMA\n", "macd.seed"),
        ("macd:\n  fast_period: '5'\n", "macd.fast_period"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_config(text)
        assert e.value.key == key, text


# Each spelling that YAML 1.1 (PyYAML, here) and YAML 1.2 (serde_yaml_ng, the Rust engine) read
# differently is refused, naming the key: README.md, Configuration, "Spellings refused".


@pytest.mark.parametrize("word", ["yes", "No", "on", "OFF"])
def test_yaml_1_1_booleans_are_refused(word: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"validation:\n  repair: {word}\n")
    assert e.value.key == "validation.repair" and "YAML 1.1" in e.value.message
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"segment.handle_inclusion={word}"])
    assert e.value.key == "segment.handle_inclusion"
    with pytest.raises(ConfigError) as e:
        load_config(None, environ={"TRADING_SYSTEM__PEN__STRICT_VALIDATION": word})
    assert e.value.key == "pen.strict_validation"
    # For a text key the word is text, as in YAML 1.2.
    assert apply_sets(FileConfig(), [f"logging.format={word}"]).logging.format == word


@pytest.mark.parametrize("text", ["012", "0042", "-012", "1_000", "10:20"])
def test_yaml_1_1_integers_are_refused(text: str) -> None:
    """A leading zero is octal in YAML 1.1 and text in 1.2; `_` and `:` (base 60) are numbers in
    YAML 1.1 only."""
    with pytest.raises(ConfigError) as e:
        parse_config(f"macd:\n  fast_period: {text}\n")
    assert e.value.key == "macd.fast_period" and "YAML 1.1" in e.value.message
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"signal.min_pivots={text}"])
    assert e.value.key == "signal.min_pivots"
    with pytest.raises(ConfigError) as e:
        load_config(None, environ={"TRADING_SYSTEM__SYSTEM__RISE": text})
    assert e.value.key == "system.rise"


@pytest.mark.parametrize("text", ["1_0.5", "1:30.5"])
def test_yaml_1_1_floats_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"macd:\n  histogram_scale: {text}\n")
    assert e.value.key == "macd.histogram_scale" and "YAML 1.1" in e.value.message
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"signal.divergence_rate={text}"])
    assert e.value.key == "signal.divergence_rate"


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("macd.histogram_scale", "1e1"),
        ("macd.histogram_scale", "1.5e3"),
        ("macd.fast_period", "0o17"),
    ],
)
def test_yaml_1_2_only_numbers_are_refused(key: str, text: str) -> None:
    """Exponents without a dot and a sign, and ``0o`` octal, are numbers in YAML 1.2 only."""
    section, name = key.split(".")
    with pytest.raises(ConfigError) as e:
        parse_config(f"{section}:\n  {name}: {text}\n")
    assert e.value.key == key
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"{key}={text}"])
    assert e.value.key == key


@pytest.mark.parametrize("text", ["5", "0042", "true", "1.50", "2001-12-14"])
def test_a_text_key_in_a_file_must_be_text(text: str) -> None:
    """YAML 1.1 reads these as numbers, booleans or dates (``0042`` as 34): a file quotes them.
    The command line and the environment take the text as written."""
    with pytest.raises(ConfigError) as e:
        parse_config(f"server:\n  auth_token: {text}\n")
    assert e.value.key == "server.auth_token"
    assert parse_config(f"server:\n  auth_token: '{text}'\n").server.auth_token == text
    assert apply_sets(FileConfig(), [f"server.auth_token={text}"]).server.auth_token == text
    env = {"TRADING_SYSTEM__SERVER__AUTH_TOKEN": text}
    assert load_config(None, environ=env).server.auth_token == text


def test_duplicate_keys_are_refused() -> None:
    """PyYAML keeps the last of two equal keys; YAML 1.2 (and the Rust engine) refuses them."""
    with pytest.raises(ConfigError) as e:
        parse_config("macd:\n  fast_period: 3\n  fast_period: 4\n")
    assert e.value.key == "macd.fast_period" and "twice" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_config("macd: {}\npen: {}\nmacd: {}\n")
    assert e.value.key == "macd"
    with pytest.raises(ConfigError) as e:
        parse_presets("presets:\n  a: {}\n  a: {}\n")
    assert e.value.key == "presets.a"
    # A key overriding one merged in from an anchor is not given twice.
    text = "presets:\n  a: &a {fast_period: 5}\n  b:\n    <<: *a\n    fast_period: 6\n"
    assert parse_presets(text)["b"].fast_period == 6


def test_yaml_empty_documents_sections_and_structure() -> None:
    assert parse_config("") == FileConfig()
    assert parse_config("# nothing but a comment\n") == FileConfig()
    assert parse_config("macd:\n") == FileConfig(), "an empty section takes the defaults"
    assert parse_config("{}\n") == FileConfig()
    assert parse_config("macd: &m\n  fast_period: 5\n").macd.fast_period == 5
    for text in ("- 1\n", "7\n", "macd: {\n", "---\nmacd: {}\n---\nmacd: {}\n"):
        with pytest.raises(ConfigError) as e:
            parse_config(text)
        assert e.value.key == "file", text


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(FileNotFoundError):
        load_presets(tmp_path / "missing.yaml")
    p = tmp_path / "c.yaml"
    p.write_text("pen:\n  definition: traditional\n", encoding="utf-8")
    assert load_config(p, environ={}).pen.definition == "traditional"
    p.write_text("macd:\n  fast_period: 012\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert e.value.key == "macd.fast_period" and str(p) in e.value.message


# --- Environment -------------------------------------------------------------------------------


def test_environment_overrides_keys() -> None:
    env = {
        "TRADING_SYSTEM__MACD__FAST_PERIOD": "30",
        "TRADING_SYSTEM__MACD__SLOW_PERIOD": "40",
        "TRADING_SYSTEM__PEN__DEFINITION": "traditional",
        "TRADING_SYSTEM__SYSTEM__PRIMARY_ENGINE": "python",
        "TRADING_SYSTEM__SIGNAL__STRENGTH": "",  # empty: no change
        "TRADING_SYSTEM_OTHER": "x",  # not ours
        "PATH": "/bin",
    }
    cfg = apply_env(FileConfig(), env)
    assert (cfg.macd.fast_period, cfg.macd.slow_period) == (30, 40), "one set: order-free"
    assert cfg.pen.definition == "traditional" and cfg.system.primary_engine == "python"
    assert cfg.signal.strength == "area"
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__MACD__FASTT": "3"})
    assert e.value.key == "macd.fastt" and "TRADING_SYSTEM__MACD__FASTT" in e.value.message
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__MACD__FAST_PERIOD": "zero"})
    assert e.value.key == "macd.fast_period"
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__MACD": "3"})
    assert e.value.key == "TRADING_SYSTEM__MACD"
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__NOPE__KEY": "3"})
    assert e.value.key == "nope.key"
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__MACD__FAST_PERIOD__X": "3"})
    assert e.value.key == "TRADING_SYSTEM__MACD__FAST_PERIOD__X"
    # Range errors name the variable that set the key.
    with pytest.raises(ConfigError) as e:
        apply_env(FileConfig(), {"TRADING_SYSTEM__MACD__FAST_PERIOD": "40"})
    assert e.value.key == "macd.fast_period"
    assert "TRADING_SYSTEM__MACD__FAST_PERIOD" in e.value.message


def test_environment_names_are_matched_as_the_rust_engine_does() -> None:
    """Exactly the prefix ``TRADING_SYSTEM__`` (upper case); section and key in any case; a blank
    value changes nothing."""
    env = {
        "trading_system__macd__fast_period": "5",  # not the prefix: not read
        "TRADING_SYSTEM__Macd__Slow_Period": "30",
        "TRADING_SYSTEM__MACD__SIGNAL_PERIOD": "  ",
    }
    cfg = load_config(None, environ=env)
    assert (cfg.macd.fast_period, cfg.macd.slow_period, cfg.macd.signal_period) == (12, 30, 9)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("macd:\n  fast_period: 5\n  signal_period: 4\n", encoding="utf-8")
    monkeypatch.setenv("TRADING_SYSTEM__MACD__FAST_PERIOD", "7")
    cfg = load_config(p)
    assert (cfg.macd.fast_period, cfg.macd.signal_period) == (7, 4)
    assert load_config(p, environ={}).macd.fast_period == 5
    assert load_config().macd.fast_period == 7
    assert as_engine_config(p).macd.fast_period == 7, "a path is read with load_config"


# --- Presets -----------------------------------------------------------------------------------


def test_presets_file() -> None:
    presets = load_presets(PRESETS_YAML)
    assert list(presets) == ["fast", "slow", "standard", "talib"]
    assert presets["standard"] == EngineConfig().macd
    talib = presets["talib"]
    assert (talib.seed, talib.histogram_scale) == (MacdSeed.SMA, 1.0)
    assert (presets["fast"].fast_period, presets["fast"].slow_period) == (6, 13)
    cfg = apply_preset(FileConfig(), "talib", presets)
    assert cfg.macd == talib and cfg.pen == FileConfig().pen
    with pytest.raises(ConfigError) as e:
        apply_preset(FileConfig(), "turbo", presets)
    assert e.value.key == "macd_preset" and "known: fast, slow, standard, talib" in e.value.message


def test_presets_are_checked_like_macd() -> None:
    assert parse_presets("presets:\n  a:\n")["a"] == MacdConfig(), "missing keys: defaults"
    with pytest.raises(ConfigError) as e:
        parse_presets("presets:\n  a: {fast_period: 30}\n")
    assert e.value.key == "presets.a.macd.fast_period"
    with pytest.raises(ConfigError) as e:
        parse_presets("presets:\n  a: {fastt: 3}\n")
    assert e.value.key == "presets.a.fastt"
    with pytest.raises(ConfigError) as e:
        parse_presets("{}\n")
    assert e.value.key == "presets"


def test_as_engine_config_forms() -> None:
    file_cfg = apply_sets(FileConfig(), ["pen.definition=traditional"])
    assert as_engine_config(None) == EngineConfig()
    assert as_engine_config(file_cfg).pen.definition == "traditional"
    assert as_engine_config(file_cfg.engine()) == file_cfg.engine()
    assert as_engine_config({"pen": {"definition": "traditional"}}) == file_cfg.engine()
    with pytest.raises(TypeError):
        as_engine_config(3)  # type: ignore[arg-type]


def test_a_files_engine_part_keeps_every_algorithm_section() -> None:
    """``FileConfig.engine()`` (what the CLI and the Python server analyze with) carries every
    section of EngineConfig: ``structure.degrees`` set in a file or by ``--set`` is used."""
    file_cfg = apply_sets(FileConfig(), ["structure.degrees=3", "signal.min_pivots=2"])
    engine = file_cfg.engine()
    assert engine.structure.degrees == 3 and engine.signal.min_pivots == 2
    assert engine.to_dict() == {
        k: v for k, v in file_cfg.to_dict().items() if k in engine.to_dict()
    }
    assert as_engine_config(file_cfg).structure.degrees == 3


# ---- Roles, token files, limits (issue 14) ------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "server.max_sessions",
        "system.max_standby_lag_ms",
        "system.max_standby_lag_bars",
        "system.catch_up_batch_bars",
        "system.hang_deadline_factor",
        "system.min_deadline_ms",
        "system.max_streams",
        "system.max_calls",
        "system.max_opens_per_s",
        "system.max_sessions",
    ],
)
def test_new_limits_must_be_at_least_one(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"{key}=0"])
    assert (e.value.key, e.value.message) == (key, "must be >= 1, got 0")
    assert apply_sets(FileConfig(), [f"{key}=1"])


def test_session_idle_ms_zero_means_never() -> None:
    assert apply_sets(FileConfig(), ["system.session_idle_ms=0"]).system.session_idle_ms == 0


@pytest.mark.parametrize("key", ["auth_token", "operator_token"])
def test_a_token_and_its_file_cannot_both_be_set(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        apply_sets(FileConfig(), [f"server.{key}=abc", f"server.{key}_file=/run/t"])
    assert (e.value.key, e.value.message) == (
        f"server.{key}_file",
        f"cannot be set together with server.{key}",
    )
    env = {f"TRADING_SYSTEM__SERVER__{key.upper()}": "abc"}
    with pytest.raises(ConfigError):
        apply_sets(load_config(None, environ=env), [f"server.{key}_file=/run/t"])


def test_token_files_are_read(tmp_path: Path) -> None:
    client = tmp_path / "client"
    client.write_text("  c-token \t\n\n", encoding="utf-8")
    operator = tmp_path / "operator"
    operator.write_text("o-token", encoding="utf-8")
    cfg = apply_sets(
        FileConfig(),
        [f"server.auth_token_file={client}", f"server.operator_token_file={operator}"],
    )
    read = read_token_files(cfg)
    assert (read.server.auth_token, read.server.operator_token) == ("  c-token", "o-token")
    assert read_token_files(read) == read  # idempotent
    assert read_token_files(FileConfig()) == FileConfig()


def test_token_file_errors_name_the_key_and_path_not_the_contents(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n\t", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_token_files(apply_sets(FileConfig(), [f"server.operator_token_file={empty}"]))
    assert (e.value.key, e.value.message) == ("server.operator_token_file", f"{empty} is empty")
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as e:
        read_token_files(apply_sets(FileConfig(), [f"server.auth_token_file={missing}"]))
    assert e.value.key == "server.auth_token_file"
    assert e.value.message == f"cannot read {missing}: No such file or directory"


def test_secrets_are_never_dumped() -> None:
    cfg = apply_sets(FileConfig(), ["server.auth_token=s3cret", "server.operator_token=0p"])
    d = cfg.to_dict()
    assert (d["server"]["auth_token"], d["server"]["operator_token"]) == (
        "<redacted>",
        "<redacted>",
    )
    for text in (json.dumps(d), repr(cfg), str(cfg), repr(cfg.server)):
        assert "s3cret" not in text and "0p'" not in text
    assert cfg.server.auth_token == "s3cret"  # still there for the server
    assert FileConfig().to_dict()["server"]["auth_token"] == ""  # empty: nothing to hide


def test_environment_sets_the_operator_token() -> None:
    cfg = load_config(None, environ={"TRADING_SYSTEM__SERVER__OPERATOR_TOKEN": "op"})
    assert cfg.server.operator_token == "op"
