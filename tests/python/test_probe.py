"""``trading-system probe`` and ``trading-engine probe`` (the containers' health checks): a
``grpc.health.v1`` Check printing ``HOST:PORT SERVICE STATUS``; exit 0 when SERVING, 1 when not
serving or the service is unknown, 3 when nothing answers, 4 when TLS failed (a certificate not
trusted or refused, TLS on one side only), 2 when the configuration is bad. Against real
servers, each language's probe against both engines; the Python probe against servers serving
TLS and mutual TLS from one shared configuration file."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
import shared_config
from test_server_python import Pki

from trading_system.cli import main

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
