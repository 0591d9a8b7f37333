"""Both languages read the configuration files to the same values: `config/default.yaml`
and every preset of `config/macd_params.yaml`, also with environment variables and `--set`
overrides on top (Rust: `trading-engine config`, Python: pydantic-settings); and both refuse
the same bad values naming the same key (the messages are each engine's own words)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from servers import ROOT, rust_binary

from trading_system.config import apply_sets, load_config, load_presets
from trading_system.errors import ConfigError

DEFAULT = ROOT / "config" / "default.yaml"
PRESETS = ROOT / "config" / "macd_params.yaml"


def rust(config: Path, sets: list[str], env: dict[str, str]) -> dict[str, Any]:
    args = [str(rust_binary()), "config", "--config", str(config), "--presets", str(PRESETS)]
    for s in sets:
        args += ["--set", s]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_SYSTEM__")}
    out = subprocess.run(args, capture_output=True, text=True, env={**clean, **env}, check=True)
    return json.loads(out.stdout)


def rust_refusal(sets: list[str], env: dict[str, str] | None = None) -> str:
    """The key the Rust engine names when it refuses the configuration (its stderr reads
    ``invalid configuration: <key>: <message>``)."""
    args = [str(rust_binary()), "config", "--config", str(DEFAULT)]
    for s in sets:
        args += ["--set", s]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_SYSTEM__")}
    out = subprocess.run(args, capture_output=True, text=True, env={**clean, **(env or {})})
    assert out.returncode != 0 and out.stdout == "", out.stdout
    found = re.search(r"invalid configuration: ([^:\s]+): ", out.stderr)
    assert found, out.stderr
    return found.group(1)


def python_refusal(sets: list[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        apply_sets(load_config(DEFAULT, environ=env or {}), sets)
    return e.value.key


def python(config: Path, sets: list[str], env: dict[str, str]) -> dict[str, Any]:
    cfg = apply_sets(load_config(config, environ=env), sets)
    presets = {k: v.model_dump(mode="json") for k, v in load_presets(PRESETS).items()}
    return {"config": cfg.to_dict(), "presets": {"presets": presets}}


@pytest.mark.parametrize(
    ("sets", "env"),
    [
        ([], {}),
        (["pen.definition=traditional", "server.auth_token=0042"], {}),
        (["server.auth_token=5", "system.signals_file=", "system.state_file=1.5"], {}),
        (
            [
                "server.operator_token=op",
                "server.auth_token_file=/run/token",
                "client.tls_ca_file=ca",
            ],
            {
                "TRADING_SYSTEM__SYSTEM__MAX_SESSIONS": "7",
                "TRADING_SYSTEM__SERVER__MAX_SESSIONS": "9",
            },
        ),
        (
            ["signal.divergence_rate=0.8"],
            {
                "TRADING_SYSTEM__MACD__FAST_PERIOD": "30",
                "TRADING_SYSTEM__MACD__SLOW_PERIOD": "40",
                "TRADING_SYSTEM__SERVER__PYTHON_PORT": "6000",
                "TRADING_SYSTEM__SERVER__HEALTH_PORT": "8081",
                "TRADING_SYSTEM__LOGGING__FORMAT": "",
            },
        ),
        (
            ["client.tls_server_name=yes", "system.state_file=0o17", "macd.histogram_scale=2.5"],
            {
                "TRADING_SYSTEM__CLIENT__TLS_CA_FILE": "0042",
                "TRADING_SYSTEM__LOGGING__LEVEL": "'debug'",
                "TRADING_SYSTEM__VALIDATION__REPAIR": "TRUE",
                "TRADING_SYSTEM__MACD__FAST_PERIOD": "0x0a",
            },
        ),
    ],
    ids=["files", "set", "text-keys", "roles", "environment", "text-spellings"],
)
def test_same_values(sets: list[str], env: dict[str, str]) -> None:
    want = python(DEFAULT, sets, env)
    got = rust(DEFAULT, sets, env)
    assert got == want
    for key in ("auth_token", "operator_token"):  # secrets are never printed
        assert want["config"]["server"][key] in ("", "<redacted>")
    assert set(got["presets"]["presets"]) >= {"standard", "talib", "fast", "slow"}


def test_the_defaults_are_the_file() -> None:
    """Missing keys take the defaults: an empty file reads as default.yaml."""
    empty = ROOT / "tests" / "data" / "empty_config.yaml"
    assert rust(empty, [], {})["config"] == rust(DEFAULT, [], {})["config"]
    assert python(empty, [], {})["config"] == python(DEFAULT, [], {})["config"]


@pytest.mark.parametrize(
    "assignment",
    [
        "system.rise=0",
        "system.fall=0",
        "system.call_timeout_ms=0",
        "system.batch_timeout_ms=0",
        "system.health_check_interval_ms=0",
        "system.latency_window_ms=0",
        "system.hold_down_ms=-1",
        "server.replay_window=0",
        "server.max_sessions=0",
        "system.max_standby_lag_ms=0",
        "system.max_standby_lag_bars=0",
        "system.catch_up_batch_bars=0",
        "system.hang_deadline_factor=0",
        "system.min_deadline_ms=0",
        "system.max_streams=0",
        "system.max_calls=0",
        "system.max_opens_per_s=0",
        "system.max_sessions=0",
    ],
)
def test_same_range_errors(assignment: str) -> None:
    """A value out of range is refused by both, naming the same key."""
    assert rust_refusal([assignment]) == python_refusal([assignment]) == assignment.split("=")[0]


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["macd.fast_period=30"], "macd.fast_period"),
        (["macd.slow_period=5"], "macd.fast_period"),
        (["macd.histogram_scale=0"], "macd.histogram_scale"),
        (["signal.divergence_rate=.nan"], "signal.divergence_rate"),
        (["macd.fast_period=x"], "macd.fast_period"),
        (["macd.fast_period=-1"], "macd.fast_period"),
        (["macd.fast_period=5.5"], "macd.fast_period"),
        (["macd.fast_period=4294967296"], "macd.fast_period"),
        (["pen.definition=old"], "pen.definition"),
        (["validation.repair=1"], "validation.repair"),
        (["server.python_port=65536"], "server.python_port"),
        (["server.health_port=65536"], "server.health_port"),
        (["server.health_port=50051"], "server.health_port"),
        (["server.monitor_port=8081", "server.health_port=8081"], "server.health_port"),
        (["server.health_port=8081", "server.python_port=8081"], "server.health_port"),
        (["macd.fastt=3"], "macd.fastt"),
        (["macd=3"], "macd"),
        (["macd.fast_period"], "macd.fast_period"),
        (["macd.slow_period=40", "macd.fast_period=50"], "macd.fast_period"),
        # Refused by both: YAML 1.1 reads these as a boolean and a number, YAML 1.2 as text.
        (["validation.repair=yes"], "validation.repair"),
        (["macd.fast_period=012"], "macd.fast_period"),
    ],
)
def test_same_refusals(sets: list[str], key: str) -> None:
    assert rust_refusal(sets) == python_refusal(sets) == key


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TRADING_SYSTEM__MACD__FASTT": "3"}, "macd.fastt"),
        ({"TRADING_SYSTEM__NOPE__KEY": "3"}, "nope.key"),
        ({"TRADING_SYSTEM__MACD": "3"}, "TRADING_SYSTEM__MACD"),
        ({"TRADING_SYSTEM__MACD__FAST_PERIOD": "zero"}, "macd.fast_period"),
        ({"TRADING_SYSTEM__MACD__FAST_PERIOD": "40"}, "macd.fast_period"),
        ({"TRADING_SYSTEM__SERVER__REPLAY_WINDOW": "0"}, "server.replay_window"),
        ({"TRADING_SYSTEM__SERVER__HEALTH_PORT": "50050"}, "server.health_port"),
    ],
)
def test_same_environment_refusals(env: dict[str, str], key: str) -> None:
    assert rust_refusal([], env) == python_refusal([], env) == key


@pytest.mark.parametrize(
    "assignment",
    ["macd.histogram_scale=1e1", "macd.histogram_scale=1.5e3", "macd.fast_period=0o17"],
)
def test_python_refuses_what_yaml_1_1_reads_as_text(assignment: str) -> None:
    """Numbers only YAML 1.2 reads as numbers: Rust takes them, Python refuses them rather than
    read them otherwise (README.md, Configuration, "Spellings refused")."""
    args = [str(rust_binary()), "config", "--config", str(DEFAULT), "--set", assignment]
    assert subprocess.run(args, capture_output=True, text=True).returncode == 0
    assert python_refusal([assignment]) == assignment.split("=")[0]


@pytest.mark.parametrize("key", ["auth_token", "operator_token"])
def test_a_token_and_its_file_conflict_alike(key: str) -> None:
    sets = [f"server.{key}=x", f"server.{key}_file=/run/token"]
    assert rust_refusal(sets) == python_refusal(sets) == f"server.{key}_file"
