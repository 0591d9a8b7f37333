"""The Docker files (Dockerfile.rust, Dockerfile.python, docker-compose.yml and its production
override docker-compose.prod.yml) checked without a Docker engine: what they run is what the
project builds (commands and options exist), each health check is a probe that really answers 0
against a real server of its service and non-zero against a closed port, ports and paths agree
with config/default.yaml, and the images build from files that exist. No image is built here."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import servers
import yaml

from trading_system.cli import exits
from trading_system.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
PROD = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((ROOT / "config" / "default.yaml").read_text(encoding="utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
TOOLCHAIN = tomllib.loads((ROOT / "rust-toolchain.toml").read_text(encoding="utf-8"))
CONFIG_DIR = "/etc/trading-system"
"""Where the images hold config/ and compose mounts it."""
SERVICES = {"rust-engine": "rust", "python-engine": "python", "monitor": "monitor"}
"""The compose services and the server each runs."""
PORT_KEY = {"rust": "rust_port", "python": "python_port", "monitor": "monitor_port"}
DOCKERFILES = {"rust": ROOT / "Dockerfile.rust", "python": ROOT / "Dockerfile.python"}
IMAGE_OF = {
    "rust-engine": "Dockerfile.rust",
    "python-engine": "Dockerfile.python",
    "monitor": "Dockerfile.python",
}


pytestmark = pytest.mark.usefixtures("no_environment_overrides")


# --- Dockerfiles ----------------------------------------------------------------------------------


@dataclass
class Instruction:
    name: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined, comments left out."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        name, _, args = text.partition(" ")
        out.append(Instruction(name.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside an instruction"
    return out


def stages(path: Path) -> list[list[Instruction]]:
    """The build stages, each from its FROM."""
    out: list[list[Instruction]] = []
    for i in instructions(path):
        if i.name == "FROM":
            out.append([])
        assert out, f"{path.name}: {i.name} before the first FROM"
        out[-1].append(i)
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def healthcheck_command(path: Path) -> list[str]:
    (hc,) = [i for i in stages(path)[-1] if i.name == "HEALTHCHECK"]
    _, _, command = hc.args.partition("CMD ")
    return exec_form(command)


def cmd(path: Path) -> list[str]:
    (c,) = [i for i in stages(path)[-1] if i.name == "CMD"]
    return exec_form(c.args)


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    for pattern in dockerignore():
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or path == pattern or path.startswith(pattern + "/"):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(Path(path).name, bare):
            return True
    return False


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copy_source_exists_in_the_build_context(name: str) -> None:
    copied = 0
    for i in instructions(DOCKERFILES[name]):
        if i.name not in ("COPY", "ADD"):
            continue
        words = i.args.split()
        assert i.name == "COPY", "COPY only: nothing fetched at build time"
        if any(w.startswith("--from=") for w in words):
            continue  # from another stage or image
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            matches = list(ROOT.glob(source.rstrip("/")))
            assert matches, f"{name}: COPY {source}: no such file in the repository"
            for m in matches:
                rel = m.relative_to(ROOT).as_posix()
                assert not ignored(rel), f"{name}: COPY {source}: excluded by .dockerignore"
            copied += 1
    assert copied >= 3


def test_dockerignore_keeps_local_builds_out() -> None:
    for path in (
        "target",
        ".venv",
        ".git",
        "python-layer/trading_system/native.cpython-311-x86_64-linux-gnu.so",
        "python-layer/trading_system/__pycache__",
    ):
        assert ignored(path), path
    for path in ("Cargo.toml", "Cargo.lock", "rust-core", "proto", "python-layer", "config"):
        assert not ignored(path), path


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_runtime_stage_runs_as_a_non_root_user(name: str) -> None:
    runtime = stages(DOCKERFILES[name])[-1]
    users = [i.args for i in runtime if i.name == "USER"]
    assert users, f"{name}: the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # The numeric user is the one the stage creates.
    created = " ".join(i.args for i in runtime if i.name == "RUN")
    assert re.search(rf"useradd .*--uid {user}\b", created), created
    # Only the last stage is the image: no build tools in it.
    assert runtime[0].args.split()[0] in ("debian:bookworm-slim", "python:3.11-slim-bookworm")


def test_python_image_leaves_out_only_what_its_commands_never_import() -> None:
    """The image installs the wheel without its ``research`` extra (files and charts), and the
    servers, the monitor and the commands the image runs (serve, probe, health, failover,
    override, signals) import none of that extra's packages."""
    research = PYPROJECT["project"]["optional-dependencies"]["research"]
    left_out = {re.split(r"[ <>=!~;\[]", r)[0].lower() for r in research}
    assert left_out == set(exits.RESEARCH)
    core = {re.split(r"[ <>=!~;\[]", r)[0].lower() for r in PYPROJECT["project"]["dependencies"]}
    assert not core & left_out, core & left_out
    runtime = " ".join(i.args for i in stages(DOCKERFILES["python"])[-1] if i.name == "RUN")
    assert re.search(r"/build/dist/\*\.whl(\s|$)", runtime), runtime
    assert "[research]" not in runtime and "--no-deps" not in runtime
    code = (
        "import importlib, pkgutil, sys\n"
        "import trading_system.server, trading_system.monitor\n"
        "for pkg in (trading_system.server, trading_system.monitor):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "for m in ('serve', 'probe', 'admin', 'signals', 'common', 'exits'):\n"
        "    importlib.import_module('trading_system.cli.' + m)\n"
        "print(' '.join(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(r.stdout.split())
    assert {"grpc", "trading_system"} <= loaded
    assert not loaded & left_out, loaded & left_out


def test_a_command_needing_the_research_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """Without pandas (as in the service image), ``trading-system analyze`` of a file fails
    with exit 1 and names the extra to install, not a traceback."""
    csv = tmp_path / "bars.csv"
    csv.write_text("time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n")
    code = (
        "import sys\n"
        "for m in ('pandas', 'pyarrow', 'plotly'):\n"
        "    sys.modules[m] = None\n"
        "from trading_system.cli import main\n"
        f"sys.exit(main(['chart', {str(csv)!r}, '--out', {str(tmp_path / 'c.html')!r}]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == exits.FAILED, r.stderr
    assert "pip install 'trading-system[research]'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_rust_images_use_the_pinned_toolchain() -> None:
    channel = TOOLCHAIN["toolchain"]["channel"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", channel), channel
    for name, path in DOCKERFILES.items():
        rust = [
            i.args.split()[0] for i in instructions(path) if i.name == "FROM" and "rust:" in i.args
        ]
        assert rust, f"{name}: no rust image"
        for image in rust:
            version, _, variant = image.removeprefix("rust:").partition("-")
            assert version == channel, f"{name}: {image}, rust-toolchain.toml says {channel}"
            # Built on the runtime's Debian release: the binary's glibc is there.
            assert variant.endswith("bookworm"), image


def test_rust_builder_builds_the_server_binary() -> None:
    builder = stages(DOCKERFILES["rust"])[0]
    run = " ".join(i.args for i in builder if i.name == "RUN")
    assert "cargo build --profile service -p trading-engine --locked" in run
    bins = tomllib.loads((ROOT / "rust-core/trading-engine/Cargo.toml").read_text("utf-8"))["bin"]
    assert [b["name"] for b in bins] == ["trading-engine"]
    runtime = stages(DOCKERFILES["rust"])[-1]
    copies = [i.args for i in runtime if i.name == "COPY"]
    assert any(c.endswith(" /usr/local/bin/trading-engine") for c in copies), copies


def test_python_builder_builds_the_wheel_with_the_service_profile() -> None:
    builder = stages(DOCKERFILES["python"])[1]
    run = " ".join(i.args for i in builder if i.name == "RUN")
    assert PYPROJECT["tool"]["maturin"]["profile"] == "service"
    assert re.search(r"maturin build --locked --profile service\b", run), run
    runtime = " ".join(i.args for i in stages(DOCKERFILES["python"])[-1] if i.name == "RUN")
    assert "pip install" in runtime and "--constraint /build/requirements.lock" in runtime


def test_builder_context_resolves_the_locked_workspace(tmp_path: Path) -> None:
    """The Rust builder's COPYs (before its cargo build) hold a complete, locked workspace:
    `cargo metadata --locked --offline` in a directory with only those files."""
    if shutil.which("cargo") is None:
        pytest.skip("no cargo")
    builder = stages(DOCKERFILES["rust"])[0]
    for i in builder:
        if i.name != "COPY":
            continue
        for source in i.args.split()[:-1]:
            for m in ROOT.glob(source.rstrip("/")):
                dest = tmp_path / m.relative_to(ROOT)
                if m.is_dir():
                    shutil.copytree(m, dest, ignore=shutil.ignore_patterns("target"))
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(m, dest)
    env = {**os.environ, "RUSTUP_TOOLCHAIN": TOOLCHAIN["toolchain"]["channel"]}
    r = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    packages = {p["name"] for p in json.loads(r.stdout)["packages"]}
    assert {"trading-engine", "trading-server", "chan-core", "chan-py"} <= packages


def test_builder_copies_every_file_the_build_includes() -> None:
    """Files outside the crates that the Rust code compiles in (``include_str!``,
    ``include_bytes!``) are among the Rust builder's COPYs: a build in the image reads them."""
    copied = [
        source.rstrip("/")
        for i in stages(DOCKERFILES["rust"])[0]
        if i.name == "COPY"
        for source in i.args.split()[:-1]
    ]
    included = 0
    for rs in (ROOT / "rust-core").rglob("*.rs"):
        if "target" in rs.parts or "tests" in rs.relative_to(ROOT / "rust-core").parts[1:2]:
            continue
        text = rs.read_text(encoding="utf-8")
        for path in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', text):
            target = (rs.parent / path).resolve().relative_to(ROOT).as_posix()
            if target.startswith(("rust-core/", "proto/")):
                continue
            included += 1
            assert any(target == c or target.startswith(c + "/") for c in copied), (
                f"{rs.relative_to(ROOT)} includes {target}, which Dockerfile.rust does not copy"
            )
    assert included >= 1


# --- Compose: what runs ---------------------------------------------------------------------------


def services() -> dict[str, Any]:
    return COMPOSE["services"]


def test_the_three_services_from_the_two_images() -> None:
    assert set(services()) == set(SERVICES)
    for name, service in services().items():
        build = service["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == IMAGE_OF[name]
        assert (ROOT / build["dockerfile"]).is_file()
    # One image for the Python engine and the monitor.
    assert services()["python-engine"]["image"] == services()["monitor"]["image"]


def rust_binary() -> Path:
    binary = servers.rust_binary()
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not built (scripts/setup.sh)")
    return binary


def console_script() -> Path:
    """The ``trading-system`` console script installed with the package (as in the image)."""
    script = Path(sys.executable).parent / "trading-system"
    assert script.is_file(), f"{script}: the package is not installed (scripts/setup.sh)"
    return script


def local(argv: list[str]) -> list[str]:
    """The container's argv as run here: the project's build of its executable."""
    executables = {
        "trading-engine": str(rust_binary()),
        # pyproject's [project.scripts] entry, the console script pip installs in the image.
        "trading-system": str(console_script()),
    }
    assert argv[0] in executables, f"{argv[0]} is not something the project builds"
    return [executables[argv[0]], *argv[1:]]


def subcommands(argv: list[str]) -> list[str]:
    """The subcommand words before the first option."""
    words = []
    for a in argv[1:]:
        if a.startswith("-"):
            break
        words.append(a)
    return words


def options(argv: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]


def commands() -> list[tuple[str, list[str]]]:
    """Every command the files run: compose commands and health checks, and the Dockerfiles'
    CMD and HEALTHCHECK."""
    out = []
    for name, service in services().items():
        out.append((f"{name} command", service["command"]))
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", "exec form: no shell needed in the image"
        out.append((f"{name} healthcheck", test[1:]))
    for name, path in DOCKERFILES.items():
        out.append((f"Dockerfile.{name} CMD", cmd(path)))
        out.append((f"Dockerfile.{name} HEALTHCHECK", healthcheck_command(path)))
    return out


def test_console_script_is_the_package_entry_point() -> None:
    assert PYPROJECT["project"]["scripts"] == {"trading-system": "trading_system.cli:main"}
    assert Path(console_script()).read_text(encoding="utf-8").count("trading_system.cli") == 1


@pytest.mark.parametrize("what,argv", commands(), ids=[w for w, _ in commands()])
def test_commands_and_their_options_exist(what: str, argv: list[str]) -> None:
    """Each command's subcommand exists (``--help`` answers 0) and knows every option used."""
    words = subcommands(argv)
    assert words, what
    r = subprocess.run(
        [*local(argv)[:1], *words, "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, f"{what}: {r.stderr}"
    for option in options(argv):
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}(?=[\s=,\]])", r.stdout), option


def test_commands_read_the_mounted_configuration() -> None:
    for name, service in services().items():
        assert f"./config:{CONFIG_DIR}:ro" in service["volumes"], name
    for what, argv in commands():
        assert "--config" in argv, what
        path = argv[argv.index("--config") + 1]
        assert path.startswith(CONFIG_DIR + "/"), what
        # The file the mount provides (and the image's own copy of config/).
        assert (ROOT / "config" / path.removeprefix(CONFIG_DIR + "/")).is_file(), what
    for path in DOCKERFILES.values():
        copies = [i.args for i in stages(path)[-1] if i.name == "COPY"]
        assert f"config/ {CONFIG_DIR}/" in copies, path.name


def test_every_process_listens_on_all_interfaces() -> None:
    for name, service in services().items():
        assert service["environment"]["TRADING_SYSTEM__SERVER__HOST"] == "0.0.0.0", name
    for path in DOCKERFILES.values():
        env = " ".join(i.args for i in stages(path)[-1] if i.name == "ENV")
        assert "TRADING_SYSTEM__SERVER__HOST=0.0.0.0" in env, path.name


def test_engines_sit_on_an_internal_network() -> None:
    networks = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["networks"]
    assert networks["engines"]["internal"] is True


def test_ports_are_the_configured_ports() -> None:
    for name, engine in SERVICES.items():
        port = CONFIG["server"][PORT_KEY[engine]]
        service = services()[name]
        if engine == "monitor":
            # The only published port: clients reach the monitor, never an engine.
            assert service["ports"] == [f"{port}:{port}"], name
            assert set(service["networks"]) == {"engines", "clients"}
        else:
            assert "ports" not in service, f"{name} must not publish a port"
            assert service["expose"] == [str(port)], name
            assert service["networks"] == ["engines"], name
        test = service["healthcheck"]["test"]
        assert test[test.index("--address") + 1] == f"127.0.0.1:{port}", name
        exposed = [i.args for i in stages(ROOT / IMAGE_OF[name])[-1] if i.name == "EXPOSE"]
        assert str(port) in " ".join(exposed).split(), name
    # The monitor reaches the engines by service name on their configured ports.
    monitor = services()["monitor"]["command"]
    assert monitor[monitor.index("--rust") + 1] == f"rust-engine:{CONFIG['server']['rust_port']}"
    python = f"python-engine:{CONFIG['server']['python_port']}"
    assert monitor[monitor.index("--python") + 1] == python


def test_monitor_waits_for_healthy_engines() -> None:
    depends = services()["monitor"]["depends_on"]
    assert depends == {
        "rust-engine": {"condition": "service_healthy"},
        "python-engine": {"condition": "service_healthy"},
    }
    for name in ("rust-engine", "python-engine"):
        assert "depends_on" not in services()[name]


def test_containers_are_hardened() -> None:
    """Every service: a read-only root file system with a tmpfs at /tmp, no capabilities, no
    privilege gain; the monitor writes only to its volume, where its files go."""
    for name, service in services().items():
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
    monitor = services()["monitor"]
    mounts = dict(v.split(":", 1) for v in monitor["volumes"])
    state_dir = "/var/lib/trading-system"
    assert mounts["monitor-state"] == state_dir
    assert "monitor-state" in COMPOSE["volumes"]
    signals = Path(monitor["environment"]["TRADING_SYSTEM__SYSTEM__SIGNALS_FILE"])
    assert str(signals.parent) == state_dir
    for name in ("rust-engine", "python-engine"):
        assert all(v.endswith(":ro") for v in services()[name]["volumes"]), name


# --- Health checks against real servers -----------------------------------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[dict[str, servers.Server]]:
    rust_binary()
    started: dict[str, servers.Server] = {}
    try:
        started["rust"] = servers.start("rust")
        started["python"] = servers.start("python")
        started["monitor"] = servers.start_monitor(
            started["rust"].address, started["python"].address
        )
        yield started
    finally:
        for s in reversed(started.values()):
            s.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_here(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs a container's argv here: its executable built by the project, the mounted config
    directory replaced by the repository's config/, the container's environment added."""
    mapped = [a.replace(CONFIG_DIR, str(ROOT / "config")) for a in local(argv)]
    return subprocess.run(
        mapped,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def with_address(argv: list[str], address: str) -> list[str]:
    out = list(argv)
    out[out.index("--address") + 1] = address
    return out


def compose_env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in services()[name]["environment"].items()}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_healthcheck_probes_its_service(
    name: str, running: dict[str, servers.Server]
) -> None:
    argv = services()[name]["healthcheck"]["test"][1:]
    assert argv[:2] in (["trading-engine", "probe"], ["trading-system", "probe"]), argv
    server = running[SERVICES[name]]
    r = run_here(with_address(argv, server.address), compose_env(name))
    assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
    assert r.stdout == f"{server.address} trading.v1.Trading SERVING\n"
    gone = f"127.0.0.1:{closed_port()}"
    r = run_here(with_address(argv, gone), compose_env(name))
    assert r.returncode == 3, f"{name}: {r.stdout}{r.stderr}"
    assert r.stdout == f"{gone} trading.v1.Trading UNREACHABLE\n"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_healthcheck_probes_the_configured_port(
    name: str, running: dict[str, servers.Server]
) -> None:
    """The Dockerfiles' HEALTHCHECK takes its address from the configuration: server.host
    (0.0.0.0 in the image, probed on 127.0.0.1) and the image's default service's port."""
    argv = healthcheck_command(DOCKERFILES[name])
    assert "--address" not in argv
    served = {"rust": "rust", "python": "monitor"}[name]
    key = PORT_KEY[served]
    port = running[served].address.rsplit(":", 1)[1]
    variable = f"TRADING_SYSTEM__SERVER__{key.upper()}"
    env = {"TRADING_SYSTEM__SERVER__HOST": "0.0.0.0", variable: port}
    r = run_here(argv, env)
    assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
    assert r.stdout == f"127.0.0.1:{port} trading.v1.Trading SERVING\n"
    env[variable] = str(closed_port())
    assert run_here(argv, env).returncode == 3
    # The image's default command serves that port's service.
    assert subcommands(cmd(DOCKERFILES[name])) == (
        ["serve"] if name == "rust" else ["serve", "monitor"]
    )


# --- Production override --------------------------------------------------------------------------


def test_prod_override_restarts_limits_and_logs() -> None:
    assert set(PROD["services"]) == set(SERVICES)
    for name, service in PROD["services"].items():
        assert service["restart"] in ("always", "unless-stopped"), name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[mg]", str(limits["memory"])), name
        logging = service["logging"]
        assert logging["driver"] == "json-file" and logging["options"]["max-size"], name
        assert "build" not in service and "command" not in service, "settings only"


def test_prod_monitor_fails_back_and_keeps_its_state_on_a_volume() -> None:
    monitor = PROD["services"]["monitor"]
    env = {k: str(v) for k, v in monitor["environment"].items()}
    assert env["TRADING_SYSTEM__SYSTEM__AUTO_FAILBACK"] == "true"
    state = Path(env["TRADING_SYSTEM__SYSTEM__STATE_FILE"])
    mounts = dict(v.split(":", 1) for v in monitor["volumes"])
    (volume,) = [name for name, target in mounts.items() if target == str(state.parent)]
    assert volume in PROD["volumes"]
    # The image creates that directory for its non-root user (a new volume takes it over).
    run = " ".join(i.args for i in stages(DOCKERFILES["python"])[-1] if i.name == "RUN")
    assert f"install -d -o 10001 -g 10001 {state.parent}" in run
    # Both languages accept the variables (unknown keys would be errors) and read them so.
    full = {**compose_env("monitor"), **env}
    cfg = load_config(ROOT / "config" / "default.yaml", environ=full)
    assert cfg.system.auto_failback is True
    assert cfg.system.state_file == str(state)
    assert cfg.server.host == "0.0.0.0"
    r = run_here(["trading-engine", "config", "--config", f"{CONFIG_DIR}/default.yaml"], full)
    assert r.returncode == 0, r.stderr
    system = json.loads(r.stdout)["config"]["system"]
    assert (system["auto_failback"], system["state_file"]) == (True, str(state))


def test_production_tokens_and_tls_come_from_mounted_secrets() -> None:
    """Every service of the production file reads both tokens, its certificate and key and the
    CA from files mounted as secrets (never a token or key in the environment), and those keys
    exist in the configuration and are read from the variables."""
    files = {
        "client_token": "TRADING_SYSTEM__SERVER__AUTH_TOKEN_FILE",
        "operator_token": "TRADING_SYSTEM__SERVER__OPERATOR_TOKEN_FILE",
        "tls_cert": "TRADING_SYSTEM__SERVER__TLS_CERT_FILE",
        "tls_key": "TRADING_SYSTEM__SERVER__TLS_KEY_FILE",
        "tls_ca": "TRADING_SYSTEM__CLIENT__TLS_CA_FILE",
    }
    assert set(PROD["secrets"]) == set(files)
    for secret in files:
        assert PROD["secrets"][secret] == {"file": f"./secrets/{secret}"}
    for name in SERVICES:
        service = PROD["services"][name]
        assert set(service["secrets"]) == set(files), name
        env = service["environment"]
        for secret, variable in files.items():
            assert env[variable] == f"/run/secrets/{secret}", (name, variable)
        assert not [k for k in env if k.endswith(("_TOKEN", "_KEY", "_CERT"))], name
    assert {"auth_token_file", "operator_token_file", "tls_cert_file", "tls_key_file"} <= set(
        CONFIG["server"]
    )
    assert "tls_ca_file" in CONFIG["client"]
    # Each variable lands on its key (unknown keys would be errors).
    environ = {**compose_env("monitor"), **{v: f"/run/secrets/{k}" for k, v in files.items()}}
    cfg = load_config(ROOT / "config" / "default.yaml", environ=environ)
    assert cfg.server.tls_cert_file == "/run/secrets/tls_cert"
    assert cfg.server.tls_key_file == "/run/secrets/tls_key"
    assert cfg.client.tls_ca_file == "/run/secrets/tls_ca"
    assert cfg.server.auth_token_file == "/run/secrets/client_token"
