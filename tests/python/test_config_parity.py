"""Both languages read the configuration files to the same values: `config/default.yaml`
and every preset of `config/macd_params.yaml`, also with environment variables and `--set`
overrides on top (Rust: `trading-engine config`, Python: pydantic)."""

from __future__ import annotations

import json
import os
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
                "TRADING_SYSTEM__LOGGING__FORMAT": "",
            },
        ),
    ],
    ids=["files", "set", "text-keys", "roles", "environment"],
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
    """A value out of range is refused by both with the same key and message."""
    args = [str(rust_binary()), "config", "--config", str(DEFAULT), "--set", assignment]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == ""
    with pytest.raises(ConfigError) as e:
        apply_sets(load_config(DEFAULT, environ={}), [assignment])
    assert f"invalid configuration: {e.value.key}: {e.value.message}" in out.stderr


@pytest.mark.parametrize("key", ["auth_token", "operator_token"])
def test_a_token_and_its_file_conflict_alike(key: str) -> None:
    sets = [f"server.{key}=x", f"server.{key}_file=/run/token"]
    args = [str(rust_binary()), "config", "--config", str(DEFAULT)]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == ""
    with pytest.raises(ConfigError) as e:
        apply_sets(load_config(DEFAULT, environ={}), sets)
    assert (e.value.key, e.value.message) == (
        f"server.{key}_file",
        f"cannot be set together with server.{key}",
    )
    assert f"invalid configuration: {e.value.key}: {e.value.message}" in out.stderr
