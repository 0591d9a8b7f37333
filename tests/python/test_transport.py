"""``trading_system.transport``: the one place clients make channels and call metadata from the
configuration (the ``client`` section, ``server.tls_cert_file``, the client and operator tokens
and their files), against real Python engine servers on loopback serving plaintext, TLS and
mutual TLS with certificates made here; and the naming of TLS failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from servers import Server, start
from test_server_python import Pki, _pki
from typed import Health

from trading_system import transport
from trading_system.config import FileConfig, apply_sets
from trading_system.errors import ConfigError
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.transport import Settings

pytestmark = pytest.mark.usefixtures("no_environment_overrides")

TIMEOUT = 10.0


def config(*sets: str) -> FileConfig:
    return apply_sets(FileConfig(), list(sets))


@dataclass
class Stack:
    """Three Python engine servers sharing one PKI: plaintext, TLS and mutual TLS."""

    pki: Pki
    plain: Server
    tls: Server
    mtls: Server

    def port(self, server: Server) -> str:
        return server.address.rsplit(":", 1)[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pki = _pki(tmp_path_factory.mktemp("pki"))
    f = pki.files
    tls = [f"server.tls_cert_file={f['cert']}", f"server.tls_key_file={f['key']}"]
    servers: list[Server] = []
    try:
        servers.append(start("python"))
        servers.append(start("python", tls))
        servers.append(start("python", [*tls, f"server.tls_client_ca_file={f['ca']}"]))
        yield Stack(pki, *servers)
    finally:
        for s in servers:
            assert s.stop() == 0


def client_files(tmp: Path, pki: Pki, stranger: bool = False) -> tuple[Path, Path]:
    cert, key = pki.stranger if stranger else pki.client
    (tmp / "client.pem").write_bytes(cert)
    (tmp / "client.key").write_bytes(key)
    return tmp / "client.pem", tmp / "client.key"


def info(address: str, source: transport.Source) -> str:
    """GetInfo over a blocking channel made by transport.channel: the engine's protocol."""
    with transport.channel(address, source) as ch:
        answer = rpc.TradingStub(ch).GetInfo(
            pb.InfoRequest(), timeout=TIMEOUT, metadata=transport.metadata(source)
        )
    return answer.protocol


def failure(address: str, source: transport.Source) -> grpc.RpcError:
    with transport.channel(address, source) as ch:
        stub = Health(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    return e.value


# ---- Settings from the configuration ----------------------------------------------------------


def test_defaults_are_plaintext_without_a_token() -> None:
    s = Settings.from_config(FileConfig())
    assert (s.tls, s.credentials(), s.options()) == (False, None, [])
    assert s.metadata("client") == s.metadata("operator") == ()


def test_tls_is_on_with_a_ca_or_a_served_certificate(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    ca = pki.files["ca"]
    s = Settings.from_config(config(f"client.tls_ca_file={ca}"))
    assert s.tls and s.ca == pki.ca and s.cert is None and s.credentials() is not None
    # The server's own certificate set (one shared configuration): TLS, the system's roots.
    s = Settings.from_config(config(f"server.tls_cert_file={pki.files['cert']}"))
    assert s.tls and s.ca is None
    cert, key = client_files(tmp_path, pki)
    s = Settings.from_config(
        config(
            f"client.tls_ca_file={ca}",
            f"client.tls_cert_file={cert}",
            f"client.tls_key_file={key}",
            "client.tls_server_name=localhost",
        )
    )
    assert (s.cert, s.key) == pki.client
    assert s.options() == [("grpc.ssl_target_name_override", "localhost")]


def test_roles_choose_the_token() -> None:
    client_only = Settings.from_config(config("server.auth_token=bot"))
    assert client_only.metadata() == (("authorization", "Bearer bot"),)
    # No operator token: administrative calls fall under the client token (single-role mode).
    assert client_only.metadata("operator") == (("authorization", "Bearer bot"),)
    both = config("server.auth_token=bot", "server.operator_token=op")
    assert transport.metadata(both, "client") == (("authorization", "Bearer bot"),)
    assert transport.metadata(both, "operator") == (("authorization", "Bearer op"),)
    assert transport.metadata(None, "operator") == ()
    with pytest.raises(ValueError, match="unknown role"):
        Settings().metadata("admin")  # type: ignore[arg-type]


def test_token_files_are_read_stripped(tmp_path: Path) -> None:
    (tmp_path / "client").write_text("bot-token\n")
    (tmp_path / "operator").write_text("op-token \t\r\n")
    cfg = config(
        f"server.auth_token_file={tmp_path / 'client'}",
        f"server.operator_token_file={tmp_path / 'operator'}",
    )
    s = Settings.from_config(cfg)
    assert s.metadata("client") == (("authorization", "Bearer bot-token"),)
    assert s.metadata("operator") == (("authorization", "Bearer op-token"),)
    assert "bot-token" not in repr(s) and "op-token" not in repr(s)


@pytest.mark.parametrize(
    ("key", "content"),
    [
        ("server.auth_token_file", None),
        ("server.operator_token_file", None),
        ("server.auth_token_file", " \n"),
        ("client.tls_ca_file", None),
        ("client.tls_cert_file", None),
    ],
)
def test_unusable_files_name_the_key_and_path(
    tmp_path: Path, key: str, content: str | None
) -> None:
    path = tmp_path / "file"
    if content is not None:
        path.write_text(content)
    sets = [f"{key}={path}"]
    if key == "client.tls_cert_file":
        (tmp_path / "k").write_text("x")
        sets.append(f"client.tls_key_file={tmp_path / 'k'}")
    with pytest.raises(ConfigError) as e:
        Settings.from_config(config(*sets))
    assert e.value.key == key and str(path) in str(e.value)


def test_token_never_in_an_error(tmp_path: Path) -> None:
    (tmp_path / "t").write_bytes(b"\xffsecret-token")  # not UTF-8
    with pytest.raises(ConfigError) as e:
        Settings.from_config(config(f"server.auth_token_file={tmp_path / 't'}"))
    assert e.value.key == "server.auth_token_file" and "secret-token" not in str(e.value)


def test_certificate_without_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("x")
    with pytest.raises(ConfigError) as e:
        Settings.from_config(config(f"client.tls_cert_file={tmp_path / 'c'}"))
    assert e.value.key == "client.tls_key_file" and "go together" in e.value.message


def test_local_address() -> None:
    assert transport.local_address("0.0.0.0", 1) == "127.0.0.1:1"
    assert transport.local_address("::", 2) == "[::1]:2"
    assert transport.local_address("[::1]", 3) == "[::1]:3"
    assert transport.local_address("example.org", 4) == "example.org:4"
    assert transport.monitor_address(config("server.host=0.0.0.0")) == "127.0.0.1:50050"


# ---- Channels against real servers ------------------------------------------------------------


def test_plaintext_tls_and_mutual_tls_from_one_configuration(stack: Stack, tmp_path: Path) -> None:
    f = stack.pki.files
    assert info(stack.plain.address, config()) == "trading.v1"
    tls = config(f"client.tls_ca_file={f['ca']}")
    # The server's certificate names localhost (and 127.0.0.1).
    assert info(f"localhost:{stack.port(stack.tls)}", tls) == "trading.v1"
    assert info(f"127.0.0.1:{stack.port(stack.tls)}", tls) == "trading.v1"
    cert, key = client_files(tmp_path, stack.pki)
    mtls = config(
        f"client.tls_ca_file={f['ca']}",
        f"client.tls_cert_file={cert}",
        f"client.tls_key_file={key}",
    )
    assert info(f"localhost:{stack.port(stack.mtls)}", mtls) == "trading.v1"


def test_the_server_name_is_verified(stack: Stack) -> None:
    ca = f"client.tls_ca_file={stack.pki.files['ca']}"
    port = stack.port(stack.tls)
    # Reached by an address its certificate does not name, verified as "localhost".
    named = config(ca, "client.tls_server_name=localhost")
    assert info(f"127.0.0.1:{port}", named) == "trading.v1"
    wrong = config(ca, "client.tls_server_name=other.example")
    e = failure(f"127.0.0.1:{port}", wrong)
    assert e.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    problem = transport.tls_problem(f"127.0.0.1:{port}", wrong, e.details())  # type: ignore[attr-defined]
    assert problem is not None and "certificate or its name" in problem


def test_aio_channel(stack: Stack) -> None:
    settings = Settings.of(tls_ca=stack.pki.files["ca"])

    async def main() -> str:
        ch = transport.channel(f"localhost:{stack.port(stack.tls)}", settings, aio=True)
        assert isinstance(ch, grpc.aio.Channel)
        async with ch:
            answer = await rpc.TradingStub(ch).GetInfo(pb.InfoRequest(), timeout=TIMEOUT)
        return str(answer.protocol)

    assert asyncio.run(main()) == "trading.v1"


@pytest.mark.parametrize("engine", ["python"])
def test_tokens_reach_the_server(engine: str, tmp_path: Path) -> None:
    """The token read from server.auth_token_file is the one a server started with
    server.auth_token accepts; another is refused."""
    s = start(engine, ["server.auth_token=from-file"])
    try:
        (tmp_path / "token").write_text("from-file\n")
        good = config(f"server.auth_token_file={tmp_path / 'token'}")
        assert info(s.address, good) == "trading.v1"
        with pytest.raises(grpc.RpcError) as e:
            info(s.address, config("server.auth_token=other"))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    finally:
        assert s.stop() == 0


# ---- Naming TLS failures ----------------------------------------------------------------------


def test_tls_failures_are_named(stack: Stack, tmp_path: Path) -> None:
    f = stack.pki.files
    ca = f"client.tls_ca_file={f['ca']}"
    tls_port, mtls_port = stack.port(stack.tls), stack.port(stack.mtls)
    stranger_cert, stranger_key = client_files(tmp_path, stack.pki, stranger=True)
    (tmp_path / "other").mkdir()
    other = _pki(tmp_path / "other")  # another CA
    cases: list[tuple[str, FileConfig, str]] = [
        (f"localhost:{tls_port}", config(), "speaks TLS and this client plaintext"),
        (stack.plain.address, config(ca), "does not speak TLS"),
        (
            f"localhost:{tls_port}",
            config(f"client.tls_ca_file={other.files['ca']}"),
            "the server's certificate",
        ),
        (f"localhost:{mtls_port}", config(ca), "none was presented"),
        (
            f"localhost:{mtls_port}",
            config(
                ca, f"client.tls_cert_file={stranger_cert}", f"client.tls_key_file={stranger_key}"
            ),
            "it refused the one presented",
        ),
    ]
    for address, cfg, words in cases:
        e = failure(address, cfg)
        assert e.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        problem = transport.tls_problem(address, cfg, e.details())  # type: ignore[attr-defined]
        assert problem is not None and words in problem, (address, problem)


def test_other_failures_are_not_tls(stack: Stack) -> None:
    from test_probe import closed_port

    address = f"127.0.0.1:{closed_port()}"
    for cfg in (config(), config(f"client.tls_ca_file={stack.pki.files['ca']}")):
        e = failure(address, cfg)
        assert transport.tls_problem(address, cfg, e.details()) is None  # type: ignore[attr-defined]
    # A plaintext server that closes a connection is not taken for a TLS one.
    assert transport.tls_problem(stack.plain.address, config(), "Socket closed") is None
