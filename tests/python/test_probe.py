"""``trading-system probe`` and ``trading-engine probe`` (the containers' health checks): a
``grpc.health.v1`` Check printing ``HOST:PORT SERVICE STATUS``; exit 0 when SERVING, 1 when not
serving or the service is unknown, 3 when nothing answers, 4 when TLS failed (a certificate not
trusted or refused, TLS on one side only), 2 when the configuration is bad. Against real
servers, each language's probe against both engines; the Python probe against servers serving
TLS and mutual TLS from one shared configuration file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
import shared_config
from test_server_python import Pki

from trading_system.cli import main
from trading_system.cli.probe_config import KEYS, Unsure, lean_settings, read
from trading_system.config import apply_sets, load_config
from trading_system.errors import ConfigError
from trading_system.transport import Settings

pytestmark = pytest.mark.usefixtures("no_environment_overrides")


@pytest.fixture(scope="module")
def python_server() -> Iterator[servers.Server]:
    s = servers.start("python")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rust_server() -> Iterator[servers.Server]:
    s = servers.start("rust")
    yield s
    s.stop()


def closed_port() -> int:
    """A port nothing listens on (just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["probe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def rust_probe(*argv: str) -> tuple[int, str, str]:
    r = subprocess.run(
        [str(servers.rust_binary()), "probe", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return r.returncode, r.stdout, r.stderr


def test_probe_of_a_serving_python_server(
    python_server: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = python_server.address
    assert probe(capsys, "--address", addr) == (0, f"{addr} trading.v1.Trading SERVING\n", "")
    assert probe(capsys, "--address", addr, "--service", "") == (0, f'{addr} "" SERVING\n', "")
    code, out, _ = probe(capsys, "--address", addr, "--service", "no.such.Service")
    assert (code, out) == (1, f"{addr} no.such.Service SERVICE_UNKNOWN\n")


def test_default_address_is_the_monitor_port_on_loopback(
    python_server: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --address: server.host:server.monitor_port; a wildcard host (0.0.0.0, as in a
    container) is probed on 127.0.0.1."""
    port = python_server.address.rsplit(":", 1)[1]
    sets = ["--set", f"server.monitor_port={port}", "--set", "server.host=0.0.0.0"]
    code, out, err = probe(capsys, *sets, "--timeout", "5")
    assert (code, out, err) == (0, f"127.0.0.1:{port} trading.v1.Trading SERVING\n", "")


def test_closed_port_and_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    addr = f"127.0.0.1:{closed_port()}"
    code, out, err = probe(capsys, "--address", addr)
    assert (code, out) == (3, f"{addr} trading.v1.Trading UNREACHABLE\n")
    assert err.startswith(f"error: {addr}: ")
    code, out, err = probe(capsys, "--config", "no/such/file.yaml")
    assert (code, out) == (2, "")
    assert "no/such/file.yaml" in err
    code, out, err = probe(capsys, "--set", "server.monitor_port=70000")
    assert (code, out) == (2, "")
    assert "server.monitor_port" in err


def test_each_probe_speaks_to_both_engines(
    python_server: servers.Server, rust_server: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same line and status from either probe against either engine."""
    for server in (python_server, rust_server):
        addr = server.address
        line = f"{addr} trading.v1.Trading SERVING\n"
        assert probe(capsys, "--address", addr)[:2] == (0, line), server.engine
        assert rust_probe("--address", addr)[:2] == (0, line), server.engine
        unknown = f"{addr} x.Y SERVICE_UNKNOWN\n"
        assert probe(capsys, "--address", addr, "--service", "x.Y")[:2] == (1, unknown)
        assert rust_probe("--address", addr, "--service", "x.Y")[:2] == (1, unknown)
    addr = f"127.0.0.1:{closed_port()}"
    assert rust_probe("--address", addr)[:2] == (3, f"{addr} trading.v1.Trading UNREACHABLE\n")


# ---- TLS and mutual TLS: one shared configuration -------------------------------------------


@pytest.fixture(scope="module", params=["tls", "mutual"])
def tls_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[servers.Server, Path, Pki]]:
    """A Python engine serving TLS (or mutual TLS) from the shared file the probes read too."""
    tmp = tmp_path_factory.mktemp(request.param)
    pki = shared_config.pki(tmp / "pki")
    config = shared_config.write(tmp, pki, mutual=request.param == "mutual")
    s = servers.start("python", config=config)
    yield s, config, pki
    s.stop()


def test_probe_over_tls_from_the_shared_configuration(
    tls_server: tuple[servers.Server, Path, Pki], capsys: pytest.CaptureFixture[str]
) -> None:
    server, config, _ = tls_server
    port = server.address.rsplit(":", 1)[1]
    addr = f"localhost:{port}"  # the name in the server's certificate
    assert probe(capsys, "--config", str(config), "--address", addr) == (
        0,
        f"{addr} trading.v1.Trading SERVING\n",
        "",
    )
    # The default address (server.host:server.monitor_port) on the loopback address, verified
    # as localhost.
    sets = ["--set", f"server.monitor_port={port}", "--set", "client.tls_server_name=localhost"]
    code, out, _ = probe(capsys, "--config", str(config), *sets)
    assert (code, out) == (0, f"127.0.0.1:{port} trading.v1.Trading SERVING\n")


def test_tls_failures_exit_4(
    tls_server: tuple[servers.Server, Path, Pki],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, config, pki = tls_server
    mutual = "tls_client_ca_file" in config.read_text()
    addr = f"localhost:{server.address.rsplit(':', 1)[1]}"
    stranger = shared_config.pki(tmp_path / "stranger")
    failures = [
        # Plaintext against TLS.
        ([], "speaks TLS and this client plaintext"),
        # A CA that did not sign the server's certificate.
        (["--set", f"client.tls_ca_file={stranger.files['ca']}"], "the server's certificate"),
        # A name the certificate does not hold.
        (
            ["--config", str(config), "--set", "client.tls_server_name=elsewhere.example"],
            "certificate or its name",
        ),
    ]
    if mutual:
        no_cert = ["--set", f"client.tls_ca_file={pki.files['ca']}"]
        failures.append((no_cert, "none was presented"))
    for args, words in failures:
        code, out, err = probe(capsys, "--address", addr, *args)
        assert (code, out) == (4, f"{addr} trading.v1.Trading TLS_FAILURE\n"), args
        assert err.startswith(f"error: {addr}: TLS: ") and words in err, err


def test_tls_probe_of_a_closed_port_and_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = shared_config.pki(tmp_path / "pki")
    config = shared_config.write(tmp_path, pki, mutual=True)
    addr = f"127.0.0.1:{closed_port()}"
    code, out, _ = probe(capsys, "--config", str(config), "--address", addr)
    assert (code, out) == (3, f"{addr} trading.v1.Trading UNREACHABLE\n")
    missing = tmp_path / "missing.pem"
    code, out, err = probe(capsys, "--set", f"client.tls_ca_file={missing}", "--address", addr)
    assert (code, out) == (2, "")
    assert "client.tls_ca_file" in err and str(missing) in err


def test_both_probes_agree_under_tls(
    tls_server: tuple[servers.Server, Path, Pki], capsys: pytest.CaptureFixture[str]
) -> None:
    """The Rust probe reads the same shared file: SERVING over (mutual) TLS, and the same line
    and exit status 4 as the Python probe for a TLS failure (plaintext against TLS)."""
    server, config, _ = tls_server
    addr = f"localhost:{server.address.rsplit(':', 1)[1]}"
    line = f"{addr} trading.v1.Trading SERVING\n"
    assert rust_probe("--config", str(config), "--address", addr)[:2] == (0, line)
    failed = f"{addr} trading.v1.Trading TLS_FAILURE\n"
    assert probe(capsys, "--address", addr)[:2] == (4, failed)
    assert rust_probe("--address", addr)[:2] == (4, failed)


# ---- The probe stays light: its own reading of the configuration ------------------------------


def full_reading(path: Path | None, env: dict[str, str], sets: list[str]) -> dict[str, Any] | None:
    """The probe's keys as the full configuration reads them (None: it refuses)."""
    try:
        cfg = apply_sets(load_config(path, environ=env), sets)
    except ConfigError:
        return None
    # The values themselves (to_dict() would hide the tokens).
    return {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in KEYS}


def lean_reading(path: Path | None, env: dict[str, str], sets: list[str]) -> dict[str, Any] | None:
    try:
        values = read(path, env, sets)
    except Unsure:
        return None
    return {k: values[k.split(".")[0]][k.split(".")[1]] for k in KEYS}


FILE = """server:
  host: 0.0.0.0
  monitor_port: 6000
  health_port: 8080
  tls_cert_file: /run/tls.crt
  max_sessions: 7
client:
  tls_ca_file: /run/ca.crt
  tls_server_name: monitor
macd:
  fast_period: 5
"""

# (file text or None, environment, --set, whether the lean reading takes it)
READINGS: list[tuple[str | None, dict[str, str], list[str], bool]] = [
    (None, {}, [], True),
    (FILE, {}, [], True),
    ("", {}, [], True),
    ("server:\n", {}, [], True),
    (
        FILE,
        {
            "TRADING_SYSTEM__SERVER__HOST": "::",
            "TRADING_SYSTEM__SERVER__HEALTH_PORT": "8081",
            "TRADING_SYSTEM__CLIENT__TLS_SERVER_NAME": "0042",
            "TRADING_SYSTEM__SERVER__AUTH_TOKEN": "  ",  # blank: changes nothing
            "TRADING_SYSTEM__MACD__FAST_PERIOD": "4",
            "OTHER": "x",
        },
        ["server.monitor_port=0", "client.tls_server_name='quoted'", "server.host=0042"],
        True,
    ),
    (None, {"TRADING_SYSTEM__server__Host": "h"}, ["server.auth_token = t"], True),
    (None, {}, ["server.health_port=0", "server.rust_port=65535"], True),
    # Refused by the full reading: the lean one never takes them.
    (None, {}, ["server.monitor_port=70000"], False),
    (None, {}, ["server.monitor_port=-1"], False),
    (None, {}, ["server.monitor_port=true"], False),
    (None, {}, ["server.monitor_port=5.0"], False),
    (None, {}, ["server.monitor_port=012"], False),
    (None, {}, ["server.monitor_port=x"], False),
    (None, {}, ["server.monitor_port=[1"], False),
    (None, {}, ["server.health_port=50050"], False),
    (None, {}, ["server.health_port=8080", "server.rust_port=8080"], False),
    (None, {}, ["server.auth_token=t", "server.auth_token_file=/f"], False),
    (None, {}, ["server.colour=red"], False),
    (None, {}, ["server=1"], False),
    (None, {}, ["server.host"], False),
    (None, {"TRADING_SYSTEM__SERVER": "x"}, [], False),
    (None, {"TRADING_SYSTEM__SERVER__COLOUR": "x"}, [], False),
    (None, {"TRADING_SYSTEM__SERVER__MONITOR_PORT": "99999"}, [], False),
    (None, {"TRADING_SYSTEM__SERVER__HEALTH_PORT": "50051"}, [], False),
    ("server:\n  host: 5\n", {}, [], False),
    ("server:\n  host: yes\n", {}, [], False),
    ("server:\n  host:\n", {}, [], False),
    ("server:\n  monitor_port: '6000'\n", {}, [], False),
    ("server:\n  monitor_port: 1\n  monitor_port: 2\n", {}, [], False),
    ("server: 5\n", {}, [], False),
    ("servers:\n  host: x\n", {}, [], False),
    ("- 1\n", {}, [], False),
    ("server: [\n", {}, [], False),
    # Two spellings of one variable: the full reading decides which one wins.
    (None, {"TRADING_SYSTEM__SERVER__HOST": "a", "TRADING_SYSTEM__server__host": "a"}, [], False),
]


@pytest.mark.parametrize(("text", "env", "sets", "lean_takes_it"), READINGS)
def test_the_lean_reading_agrees_with_the_full_one(
    tmp_path: Path, text: str | None, env: dict[str, str], sets: list[str], lean_takes_it: bool
) -> None:
    path = None
    if text is not None:
        path = tmp_path / "c.yaml"
        path.write_text(text)
    full = full_reading(path, env, sets)
    lean = lean_reading(path, env, sets)
    if lean_takes_it:
        assert full is not None and lean == full
    else:
        assert lean is None
    if full is None:
        # And the probe, falling back on the full reading, exits 2 naming the key.
        assert lean_settings(path, env, sets) is None


def test_the_lean_reading_leaves_other_keys_to_the_servers() -> None:
    """Other keys must exist; their values are the servers' to check (a running server read
    the same configuration)."""
    assert full_reading(None, {}, ["macd.fast_period=x"]) is None
    assert lean_reading(None, {}, ["macd.fast_period=x"]) == full_reading(None, {}, [])


def test_the_lean_settings_read_the_files_as_the_client_does(tmp_path: Path) -> None:
    pki = shared_config.pki(tmp_path / "pki")
    config = shared_config.write(tmp_path, pki, mutual=True)
    token = tmp_path / "token"
    token.write_text("s3cret \n")
    sets = [f"server.auth_token_file={token}", "server.host=0.0.0.0"]
    lean = lean_settings(config, {}, sets)
    assert lean is not None
    full = apply_sets(load_config(config, environ={}), sets)
    assert lean == (Settings.from_config(full), "127.0.0.1:50050")
    # A file that cannot be read: the full reading names it.
    assert lean_settings(config, {}, [f"server.auth_token_file={tmp_path / 'none'}"]) is None
    assert lean_settings(config, {}, ["client.tls_key_file="]) is None


HEAVY = ("numpy", "pydantic", "pydantic_settings", "trading_system.config", "trading_system.client")


def test_the_probe_imports_neither_numpy_nor_pydantic(python_server: servers.Server) -> None:
    code = (
        "import sys\n"
        "from trading_system.cli import main\n"
        f"status = main(['probe', '--address', {python_server.address!r}])\n"
        f"print(status, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_SYSTEM__")}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 []", r.stdout


def test_the_probe_falls_back_on_the_full_reading(
    python_server: servers.Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two spellings of one key: the lean reading leaves it to the full one, which takes it.
    monkeypatch.setenv("TRADING_SYSTEM__SERVER__HOST", "127.0.0.1")
    monkeypatch.setenv("TRADING_SYSTEM__server__host", "127.0.0.1")
    port = python_server.address.rsplit(":", 1)[1]
    code, out, _ = probe(capsys, "--set", f"server.monitor_port={port}")
    assert (code, out) == (0, f"127.0.0.1:{port} trading.v1.Trading SERVING\n")
    code, out, err = probe(capsys, "--set", "server.health_port=50050")
    assert (code, out) == (2, "")
    assert "server.health_port" in err and "server.monitor_port" in err


def test_the_command_line_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("analyze", "chart", "serve", "health", "probe", "demo", "signals"):
        assert command in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("trading-system ")
