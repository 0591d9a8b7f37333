"""The deployment files run for real (`make containers`, marker ``containers``): podman builds
Dockerfile.rust and Dockerfile.python as committed (on stand-in base images, see
scripts/containers.sh), podman-compose starts docker-compose.yml and then the production stack
(docker-compose.prod.yml over it, with TLS and tokens from secrets), and a client on the host
talks to the monitor through its published port only.

Each stack: health checks turn healthy, Analyze answers, a stream of 2,000 real bars goes on
while the Rust engine's container dies (dev: ``podman kill``, then started again by hand;
production: its process killed from the host, a crash, which the restart policy answers — podman
counts ``podman kill`` as a stop by the user and leaves an ``unless-stopped`` container down)
with every bar acknowledged exactly once and the final state equal to a batch Analyze; in
production the monitor fails back to the Rust engine once it is healthy again.

The figures (build times, image sizes, time to healthy, failover time) are written to
bench-out/containers.json (docs/BENCHMARKS.md, "Containers").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trading_system.client import Client, ClientError, Retry
from trading_system.data import Bars, load

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "scripts" / "containers" / "containers.conf"
RESULTS = ROOT / "bench-out" / "containers.json"
IMAGES = {"rust": "trading-system/rust-engine", "python": "trading-system/python"}
DOCKERFILES = {"rust": "Dockerfile.rust", "python": "Dockerfile.python"}
SIZE_TARGET_MB = {"rust": 120, "python": 400}
"""Issue 18: what an image may weigh (podman's size of the whole image)."""
MONITOR = "127.0.0.1:50050"
"""The monitor's published port (docker-compose.yml): the only way in."""
SERVICES = ("rust-engine", "python-engine", "monitor")
STREAM_BARS = 2000
KILL_AT = 700
WAIT = 180.0
"""The generous deadline conditions are awaited with (never asserted on)."""
PATIENT = Retry(max_attempts=200, base=0.05, cap=0.5)
"""A bot's retry policy that outlasts an engine's restart."""
USER = "10001"

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(3600)]

results: dict[str, Any] = {}


def env() -> dict[str, str]:
    # The project's podman settings (runc, no default ulimits); Docker's image format, which
    # keeps the Dockerfiles' HEALTHCHECK (OCI's has no such field).
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "BUILDAH_FORMAT": "docker"}


def run(argv: list[str], timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        argv, capture_output=True, text=True, env=env(), timeout=timeout, check=False, cwd=ROOT
    )
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    return run(["podman", *args], timeout=timeout, check=check)


def wait_for(condition: Callable[[], bool], what: str, deadline: float = WAIT) -> float:
    """Polls ``condition`` until it holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


def save(key: str, value: Any) -> None:
    results[key] = value
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --- Images ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Both images built from the Dockerfiles as committed; their build times."""
    if shutil.which("podman") is None or shutil.which("podman-compose") is None:
        pytest.fail(
            "podman is not installed: `make containers` (scripts/containers.sh) installs it"
        )
    run(["scripts/containers.sh", "bases"], timeout=1800)
    times = {}
    for name, dockerfile in DOCKERFILES.items():
        start = time.monotonic()
        podman("build", "-f", dockerfile, "-t", IMAGES[name], ".", timeout=3600)
        times[name] = round(time.monotonic() - start, 1)
    save("build_s", times)
    return IMAGES


def inspect_image(image: str) -> dict[str, Any]:
    return json.loads(podman("image", "inspect", image).stdout)[0]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_images_are_small_non_root_and_probe_their_health(
    name: str, images: dict[str, str]
) -> None:
    info = inspect_image(images[name])
    size_mb = info["Size"] / 1e6
    save(f"size_mb_{name}", round(size_mb, 1))
    assert size_mb <= SIZE_TARGET_MB[name], f"{name}: {size_mb:.0f} MB"
    config = info["Config"]
    assert config["User"].split(":")[0] == USER
    health = info.get("Healthcheck") or config.get("Healthcheck")
    assert health, f"{name}: the image lost its HEALTHCHECK"
    assert health["Test"][1] in ("trading-engine", "trading-system") and "probe" in health["Test"]
    # The process really runs as that user, and nothing of the build is left in the image.
    r = podman("run", "--rm", images[name], "sh", "-c", "id -u; command -v cargo pip3 gcc || true")
    uid, *tools = r.stdout.split()
    assert uid == USER
    assert not [t for t in tools if "cargo" in t or "gcc" in t], tools


# --- Stacks ---------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A compose project started from copies of the compose files (byte for byte) in a
    directory of its own, so its secrets never touch the repository's secrets/."""

    name: str
    directory: Path
    files: list[str]
    client_kwargs: dict[str, Any]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        files = [a for f in self.files for a in ("-f", str(self.directory / f))]
        return run(["podman-compose", "-p", self.name, *files, *args], timeout=timeout)

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def inspect(self, service: str) -> dict[str, Any]:
        return json.loads(podman("inspect", self.container(service)).stdout)[0]

    def healthy(self, service: str) -> bool:
        """One health check run now (podman's timers need systemd, which this machine lacks:
        the test runs the checks itself, as the timer would)."""
        r = podman("healthcheck", "run", self.container(service), check=False, timeout=60)
        return r.returncode == 0

    def client(self, **kwargs: Any) -> Client:
        return Client(MONITOR, **{**self.client_kwargs, **kwargs})

    def up(self) -> float:
        """Starts the stack; the seconds until every service's health check passed."""
        start = time.monotonic()
        self.compose("up", "-d", "--no-build")
        for service in SERVICES:
            wait_for(lambda s=service: self.healthy(s), f"{service} healthy")
        for service in SERVICES:
            assert self.inspect(service)["State"]["Health"]["Status"] == "healthy", service
        return round(time.monotonic() - start, 1)

    def down(self) -> None:
        run(["podman-compose", "-p", self.name, *self._files(), "down", "-v"], check=False)
        # Whatever compose left (a failed start): the project's containers, networks, volumes.
        label = f"label=io.podman.compose.project={self.name}"
        ids = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
        if ids:
            podman("rm", "-f", *ids, check=False)
        for volume in podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split():
            podman("volume", "rm", "-f", volume, check=False)
        for network in podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split():
            if network.startswith(f"{self.name}_"):
                podman("network", "rm", "-f", network, check=False)

    def _files(self) -> list[str]:
        return [a for f in self.files for a in ("-f", str(self.directory / f))]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def project(tmp: Path, name: str, files: list[str], client_kwargs: dict[str, Any]) -> Stack:
    """The compose files and config/ copied into ``tmp``: what `docker compose` reads there."""
    for f in files:
        shutil.copy2(ROOT / f, tmp / f)
    shutil.copytree(ROOT / "config", tmp / "config")
    return Stack(name, tmp, files, client_kwargs)


@pytest.fixture
def started(images: dict[str, str]) -> Iterator[Callable[[Stack], Stack]]:
    """Starts a stack (its time to healthy saved); tears it down whatever happens."""
    stacks: list[Stack] = []

    def start(stack: Stack) -> Stack:
        assert port_free(50050), "port 50050 is taken: the stack publishes the monitor there"
        stacks.append(stack)
        save(f"healthy_s_{stack.name}", stack.up())
        return stack

    try:
        yield start
    finally:
        for stack in stacks:
            stack.down()


def real_bars() -> Bars:
    """2,000 bars of real data: BTCUSD's 1,968 half-hours (tests/data), then its first 32 bars
    again half an hour after the last (a gap in price, as after a halt)."""
    bars = load(ROOT / "tests" / "data" / "BTCUSD-BITSTAMP_30m.csv")
    extra = STREAM_BARS - len(bars.time)
    assert 0 < extra <= len(bars.time)
    shift = bars.time[-1] - bars.time[0] + 1_800_000

    def twice(column: np.ndarray) -> np.ndarray:
        return np.concatenate([column, column[:extra]])

    return Bars(
        time=np.concatenate([bars.time, bars.time[:extra] + shift]),
        open=twice(bars.open),
        high=twice(bars.high),
        low=twice(bars.low),
        close=twice(bars.close),
        volume=twice(bars.volume),
    )


@dataclass
class Streamed:
    seqs: list[int]
    engines: list[str]
    failover_s: float


def stream_through_a_crash(
    stack: Stack, symbol: str, bars: Bars, crash: Callable[[], None]
) -> Streamed:
    """Streams ``bars`` through the monitor, calling ``crash`` after bar KILL_AT was
    acknowledged; the failover time is from the crash to the next acknowledgement."""
    seqs, engines = [], []
    failover = 0.0
    rows = list(
        zip(
            bars.time.tolist(), bars.open, bars.high, bars.low, bars.close, bars.volume, strict=True
        )
    )
    with stack.client(timeout=30.0, retry=PATIENT) as client, client.stream(symbol, "30m") as s:
        crashed_at = None
        for i, row in enumerate(rows, 1):
            u = s.append(row)
            seqs.append(u.seq)
            engines.append(u.engine)
            if crashed_at is not None:
                failover = time.monotonic() - crashed_at
                crashed_at = None
            if i == KILL_AT:
                crash()
                crashed_at = time.monotonic()
    return Streamed(seqs, engines, round(failover, 3))


def check_stream(stack: Stack, symbol: str, bars: Bars, streamed: Streamed) -> None:
    """Every bar acknowledged exactly once, in order, by Rust before the crash and Python right
    after it; the session's state equal to a batch analysis of the same bars."""
    assert streamed.seqs == list(range(1, STREAM_BARS + 1)), "acks not exactly once"
    assert set(streamed.engines[:KILL_AT]) == {"rust"}
    assert streamed.engines[KILL_AT] == "python"
    with stack.client(timeout=60.0, retry=PATIENT) as client:
        snapshot = client.snapshot(symbol, "30m")
        batch = client.analyze(bars)
    assert snapshot.to_dict() == batch.to_dict()


def status(stack: Stack) -> Any:
    with stack.client(timeout=10.0) as client:
        return client.status()


def engine(stack: Stack, name: str) -> Any:
    return next(e for e in status(stack).engines if e.engine == name)


def test_dev_stack(tmp_path: Path, started: Callable[[Stack], Stack]) -> None:
    """docker-compose.yml: Analyze through the published port; a stream goes on while the
    Rust engine's container is killed (`podman kill`), and the engine rejoins when started."""
    stack = started(project(tmp_path, "tsdev", ["docker-compose.yml"], {}))
    bars = real_bars()
    with stack.client(timeout=60.0) as client:
        assert client.health() == "SERVING"
        assert client.analyze(bars).to_dict()["bars"] == STREAM_BARS

    def kill() -> None:
        podman("kill", stack.container("rust-engine"))

    streamed = stream_through_a_crash(stack, "DEV", bars, kill)
    save("failover_s_podman_kill", streamed.failover_s)
    check_stream(stack, "DEV", bars, streamed)
    assert stack.inspect("rust-engine")["State"]["Status"] == "exited"
    podman("start", stack.container("rust-engine"))
    wait_for(lambda: stack.healthy("rust-engine"), "rust-engine healthy again")
    wait_for(lambda: engine(stack, "rust").eligible, "the monitor sees rust eligible")
    # No failback in the dev file: Python keeps the traffic.
    assert status(stack).active == "python"


def secrets(directory: Path) -> dict[str, Any]:
    """secrets/ as the operator makes it (README: `scripts/secrets.sh compose`): both tokens, a
    CA and the stack's certificate, given to uid 10001 with mode 0400 (this runs as root); the
    client's settings: the CA and both tokens."""
    r = run(["scripts/secrets.sh", "compose", "--dir", str(directory)], timeout=120)
    assert "belong to uid 10001" in r.stdout, r.stdout
    names = ("client_token", "operator_token", "tls_ca", "tls_cert", "tls_key")
    for f in names:
        st = (directory / f).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (int(USER), int(USER), 0o400), f
    token, operator = (
        (directory / f).read_text(encoding="utf-8").strip()
        for f in ("client_token", "operator_token")
    )
    return {
        "token": token,
        "operator_token": operator,
        "tls_ca": (directory / "tls_ca").read_bytes(),
    }


def test_prod_stack(tmp_path: Path, started: Callable[[Stack], Stack]) -> None:
    """docker-compose.yml + docker-compose.prod.yml with TLS and tokens from secrets: hardened
    containers, only the monitor's port published; the Rust engine's process crashes mid-stream,
    the restart policy brings it back and the monitor fails back to it."""
    settings = secrets(tmp_path / "secrets")
    files = ["docker-compose.yml", "docker-compose.prod.yml"]
    stack = started(project(tmp_path, "tsprod", files, settings))

    # Exposed ports show with no binding: only those bound to a host port are published.
    published = {
        s: {
            port: bound
            for port, bound in (stack.inspect(s)["HostConfig"].get("PortBindings") or {}).items()
            if bound
        }
        for s in SERVICES
    }
    assert published == {
        "rust-engine": {},
        "python-engine": {},
        "monitor": {"50050/tcp": [{"HostIp": "", "HostPort": "50050"}]},
    }
    for service in SERVICES:
        info = stack.inspect(service)
        assert info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert info["Config"]["User"].split(":")[0] == USER, service
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", service
        # Secrets are files; no token, key or certificate in the environment.
        mounts = {m["Destination"] for m in info["Mounts"]}
        names = ("client_token", "operator_token", "tls_ca", "tls_cert", "tls_key")
        assert {f"/run/secrets/{n}" for n in names} <= mounts, service
        environment = "\n".join(info["Config"]["Env"])
        assert (
            settings["token"] not in environment and settings["operator_token"] not in environment
        )
        assert "BEGIN" not in environment
        r = podman("exec", stack.container(service), "id", "-u")
        assert r.stdout.strip() == USER, service
        write = podman("exec", stack.container(service), "touch", "/usr/local/x", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, service

    bars = real_bars()
    with stack.client(timeout=60.0) as client:
        assert client.health() == "SERVING"
        assert client.analyze(bars).to_dict()["bars"] == STREAM_BARS
    # Without the token, or without TLS, nothing but health answers.
    with Client(MONITOR, tls_ca=settings["tls_ca"], timeout=10.0) as anonymous:
        with pytest.raises(ClientError) as refused:
            anonymous.analyze(bars)
        assert refused.value.code.name == "UNAUTHENTICATED"
    with Client(
        MONITOR, token=settings["token"], timeout=5.0, retry=Retry(max_attempts=1)
    ) as plain:
        with pytest.raises(ClientError):
            plain.analyze(bars)

    before = stack.inspect("rust-engine")
    crashed_pid = before["State"]["Pid"]

    def crash() -> None:
        # The process dies as in a crash; `podman kill` would count as a stop by the user.
        os.kill(crashed_pid, signal.SIGKILL)

    streamed = stream_through_a_crash(stack, "PROD", bars, crash)
    save("failover_s_crash", streamed.failover_s)

    def restarted() -> bool:
        state = stack.inspect("rust-engine")
        return state["State"]["Running"] and state["State"]["Pid"] not in (0, crashed_pid)

    wait_for(restarted, "the restart policy to bring rust-engine back")
    assert stack.inspect("rust-engine")["RestartCount"] >= 1
    wait_for(lambda: stack.healthy("rust-engine"), "rust-engine healthy again")
    # auto_failback: once the Rust engine passed `rise` probes and the hold-down passed, the
    # monitor switches back to it (the operator's `trading-system health` shows the same).
    back = wait_for(lambda: status(stack).active == "rust", "the monitor to fail back to rust")
    save("failback_s_after_healthy", round(back, 1))
    switches = [(s.engine, s.reason) for s in status(stack).switches]
    assert [e for e, _ in switches][-3:] == ["rust", "python", "rust"], switches
    # Checked after the failback: the Rust engine, rebuilt from the monitor's journal, holds
    # the whole session.
    check_stream(stack, "PROD", bars, streamed)
    # The operator's view, from inside the monitor's container (its token and CA are the
    # mounted secrets the configuration names).
    r = podman(
        "exec",
        stack.container("monitor"),
        "trading-system",
        "health",
        "--json",
        "--config",
        "/etc/trading-system/default.yaml",
    )
    assert json.loads(r.stdout)["active"] == "rust", r.stdout

    # The README's path to a first signal: the demo bot on the host, through the published port
    # with the CA and the client token from secrets/, then the points the monitor recorded.
    secret_dir = tmp_path / "secrets"
    demo_env = {
        **os.environ,
        "TRADING_SYSTEM__CLIENT__TLS_CA_FILE": str(secret_dir / "tls_ca"),
        "TRADING_SYSTEM__SERVER__AUTH_TOKEN_FILE": str(secret_dir / "client_token"),
    }
    demo = subprocess.run(
        [sys.executable, "-m", "trading_system", "demo", "--monitor", MONITOR, "--rate", "0"]
        + ["--no-chart", "--symbol", "DEMO"],
        capture_output=True,
        text=True,
        env=demo_env,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert re.search(r"\] signal: (buy|sell) point type [123] at ", demo.stdout), demo.stdout
    # A bot holds the client token only: the monitor's status (operator) is not shown to it.
    assert "health: not shown: the monitor's status needs the operator token" in demo.stdout
    r = podman(
        "exec",
        stack.container("monitor"),
        "trading-system",
        "signals",
        "--symbol",
        "DEMO",
        "--json",
        "--config",
        "/etc/trading-system/default.yaml",
    )
    recorded = [json.loads(line) for line in r.stdout.splitlines()]
    assert recorded and {x["symbol"] for x in recorded} == {"DEMO"}, r.stdout
