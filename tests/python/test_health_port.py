"""``server.health_port`` (docs/GRPC.md, "Health"): beside a main port with mutual TLS and tokens,
each of the three servers (the Rust engine, the Python engine, the monitor) serves
``grpc.health.v1.Health`` alone on a plaintext port without tokens, with the main port's very
statuses: SERVING while it runs, NOT_SERVING from the start of a graceful shutdown; any other call
there is UNIMPLEMENTED; nothing listens there unless the key is set. Real processes on loopback,
real gRPC."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from servers import ROOT, Server, monitor_command, rust_binary, spawn, start, start_monitor
from test_server_python import _pki
from typed import Health

from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc

TIMEOUT = 30.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NAMES = ("rust", "python", "monitor")
CLIENT_TOKEN = "client-secret"
OPERATOR_TOKEN = "operator-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    servers: dict[str, Server]
    health_ports: dict[str, int]
    credentials: grpc.ChannelCredentials

    def health(self, name: str) -> Health:
        """Plaintext, no token: the health port."""
        return Health(grpc.insecure_channel(f"127.0.0.1:{self.health_ports[name]}"))

    def secure(self, name: str) -> grpc.Channel:
        """The main port, as the stack's clients reach it (TLS, the client certificate)."""
        return grpc.secure_channel(self.servers[name].address, self.credentials)

    def stop(self) -> None:
        for name in reversed(NAMES):
            if name in self.servers:
                self.servers[name].stop()


def start_stack(tmp: Path) -> Stack:
    """The three servers as in deploy/k8s: mutual TLS and both tokens on every main port, the
    monitor reaching its engines through TLS with the stack's client certificate, each with a
    health port of its own."""
    pki = _pki(tmp)
    client_cert, client_key = tmp / "client.pem", tmp / "client.key"
    client_cert.write_bytes(pki.client[0])
    client_key.write_bytes(pki.client[1])
    f = pki.files
    sets = [
        f"server.tls_cert_file={f['cert']}",
        f"server.tls_key_file={f['key']}",
        f"server.tls_client_ca_file={f['ca']}",
        f"server.auth_token={CLIENT_TOKEN}",
        f"server.operator_token={OPERATOR_TOKEN}",
        f"client.tls_ca_file={f['ca']}",
        f"client.tls_cert_file={client_cert}",
        f"client.tls_key_file={client_key}",
        "client.tls_server_name=localhost",
        "server.shutdown_grace_ms=2000",
    ]
    ports = {name: free_port() for name in NAMES}
    stack = Stack(
        {},
        ports,
        grpc.ssl_channel_credentials(pki.ca, pki.client[1], pki.client[0]),
    )
    try:
        for engine in ("rust", "python"):
            stack.servers[engine] = start(engine, [*sets, f"server.health_port={ports[engine]}"])
        # The monitor's through the environment, as the pods set it.
        env = {**os.environ, "TRADING_SYSTEM__SERVER__HEALTH_PORT": str(ports["monitor"])}
        argv = monitor_command(stack.servers["rust"].address, stack.servers["python"].address, sets)
        stack.servers["monitor"] = spawn("monitor", argv, True, env)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("health-port"))
    try:
        yield s
    finally:
        s.stop()


def check(h: Health, service: str) -> int:
    return int(h.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status)


@pytest.mark.parametrize("name", NAMES)
def test_plaintext_health_on_the_health_port(stack: Stack, name: str) -> None:
    h = stack.health(name)
    for service in ("", "trading.v1.Trading"):
        assert check(h, service) == SERVING, service
    with pytest.raises(grpc.RpcError) as e:
        check(h, "no.such.Service")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # The same answers as the main port gives through TLS.
    with stack.secure(name) as channel:
        assert check(Health(channel), "trading.v1.Trading") == SERVING


@pytest.mark.parametrize("name", NAMES)
def test_nothing_but_health_on_the_health_port(stack: Stack, name: str) -> None:
    port = stack.health_ports[name]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = rpc.TradingStub(channel)
        for metadata in (None, [("authorization", f"Bearer {OPERATOR_TOKEN}")]):
            with pytest.raises(grpc.RpcError) as e:
                stub.Analyze(pb.AnalyzeRequest(), timeout=TIMEOUT, metadata=metadata)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as e:
                stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT, metadata=metadata)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("name", NAMES)
def test_the_main_port_still_wants_tls_and_a_token(stack: Stack, name: str) -> None:
    with grpc.insecure_channel(stack.servers[name].address) as channel:
        with pytest.raises(grpc.RpcError) as e:
            check(Health(channel), "")
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    with stack.secure(name) as channel:
        stub = rpc.TradingStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        auth = [("authorization", f"Bearer {CLIENT_TOKEN}")]
        assert stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT, metadata=auth).protocol
    # The monitor reached its engines through TLS: both serve it.
    if name == "monitor":
        with stack.secure(name) as channel:
            status = rpc.AdminStub(channel).Status(
                pb.StatusRequest(),
                timeout=TIMEOUT,
                metadata=[("authorization", f"Bearer {OPERATOR_TOKEN}")],
            )
        assert [e.state for e in status.engines] == ["serving", "serving"], status


def test_shutdown_shows_on_both_ports(tmp_path: Path) -> None:
    """SIGTERM: Watch on the health port and on the main port both send NOT_SERVING, then end;
    the health port closes with the server, which exits 0."""
    stack = start_stack(tmp_path)
    try:
        for name in NAMES:  # the monitor first: the engines stay up behind it
            s = stack.servers[name]
            request = health_pb2.HealthCheckRequest(service="trading.v1.Trading")
            plain = stack.health(name).Watch(request, timeout=TIMEOUT)
            channel = stack.secure(name)
            tls = Health(channel).Watch(request, timeout=TIMEOUT)
            assert next(plain).status == next(tls).status == SERVING
            s.proc.send_signal(signal.SIGTERM)
            assert [m.status for m in plain] == [NOT_SERVING], name
            assert [m.status for m in tls] == [NOT_SERVING], name
            channel.close()
            assert s.proc.wait(TIMEOUT) == 0, name
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", stack.health_ports[name])) != 0, name
    finally:
        stack.stop()


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its sockets' inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", NAMES)
def test_off_by_default(name: str) -> None:
    # The monitor's engines need not answer for it to listen.
    s = start_monitor("127.0.0.1:1", "127.0.0.1:2") if name == "monitor" else start(name)
    try:
        port = int(s.address.rsplit(":", 1)[1])
        assert _listening_ports(s.proc.pid) == {port}
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_the_health_port_is_never_the_main_port(engine: str) -> None:
    port = str(free_port())
    if engine == "rust":
        argv = [str(rust_binary()), "serve"]
    else:
        argv = [sys.executable, "-m", "trading_system", "serve", "python"]
    argv += ["--port", port, "--set", f"server.health_port={port}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0 and done.stdout == ""
    assert "server.health_port" in done.stderr, done.stderr
