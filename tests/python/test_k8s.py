"""The Kubernetes manifests (deploy/k8s) checked without a cluster: every resource against the
JSON schemas of a pinned Kubernetes release (kubernetes-validate), the security checks of
checkov (deploy/checkov.yaml), and what neither can see: ports agree with config/default.yaml,
the monitor reaches its engines by their Services, selectors select the pods they mean, mounted
secrets and keys exist in kustomize's secretGenerator, mounts have volumes, the pods'
configuration is a valid one, the kubelet's gRPC probes check the plaintext health port the pod's
configuration opens, for a service the servers register. Then the stack as the manifests
configure it, with real processes here: the servers started with each pod's environment (its
token and TLS files made by scripts/secrets.sh k8s), each pod's health port answering a
plaintext Check as the kubelet sends it while its main port takes mutual TLS only.

kubernetes-validate and checkov run as programs from .venv-deploy (scripts/setup.sh installs
deploy/requirements.lock there). Nothing is applied to a cluster here."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import servers
import yaml
from grpc_health.v1 import health_pb2
from typed import Health

from trading_system.config import load_config, read_token_files
from trading_system.server.health import SERVICES as PYTHON_HEALTH_SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DEPLOY_BIN = ROOT / ".venv-deploy" / "bin"
KUBERNETES_VERSION = "1.30.0"
"""The release whose schemas the manifests are validated against (kubernetes-validate ships
them): the oldest one the manifests are meant for (pod-security labels, appProtocol, gRPC
probes (GA in 1.27) all exist there)."""
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((ROOT / "config" / "default.yaml").read_text(encoding="utf-8"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
CARGO = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
CONFIG_FILE = "/etc/trading-system/default.yaml"
"""Where the images hold config/ (Dockerfile.rust, Dockerfile.python)."""
IMAGE_UID = 10001
"""The images' user (`useradd --uid 10001` in both Dockerfiles)."""

SERVERS = {"rust-engine": "rust", "python-engine": "python", "monitor": "monitor"}
"""The Deployments and the server each runs."""
PORT_KEY = {"rust": "rust_port", "python": "python_port", "monitor": "monitor_port"}
COMMANDS = {
    "rust": ["trading-engine", "serve", "--config", CONFIG_FILE],
    "python": ["trading-system", "serve", "python", "--config", CONFIG_FILE],
    "monitor": ["trading-system", "serve", "monitor", "--config", CONFIG_FILE],
}
IMAGES = {
    "rust-engine": "trading-system/rust-engine",
    "python-engine": "trading-system/python",
    "monitor": "trading-system/python",
}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


pytestmark = pytest.mark.usefixtures("no_environment_overrides")


def documents() -> list[tuple[str, dict[str, Any]]]:
    """Every resource of the kustomization: (file, document)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name in KUSTOMIZATION["resources"]:
        text = (K8S / name).read_text(encoding="utf-8")
        out += [(name, d) for d in yaml.safe_load_all(text) if d is not None]
    return out


DOCS = documents()


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == kind}


DEPLOYMENTS = of_kind("Deployment")
SERVICES = of_kind("Service")
POLICIES = of_kind("NetworkPolicy")
CONFIGMAPS = of_kind("ConfigMap")


def pod(name: str) -> dict[str, Any]:
    return DEPLOYMENTS[name]["spec"]["template"]


def container(name: str) -> dict[str, Any]:
    (only,) = pod(name)["spec"]["containers"]
    return only


def port(name: str, which: str = "grpc") -> int:
    """A container port by name: ``grpc`` (the server's) or ``health`` (server.health_port)."""
    (p,) = [p for p in container(name)["ports"] if p["name"] == which]
    return p["containerPort"]


HEALTH_PORT_VARIABLE = "TRADING_SYSTEM__SERVER__HEALTH_PORT"


def selects(selector: dict[str, str], name: str) -> bool:
    labels = pod(name)["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def selected(selector: dict[str, str]) -> set[str]:
    return {name for name in DEPLOYMENTS if selects(selector, name)}


def generators() -> dict[str, dict[str, str]]:
    """kustomize's secretGenerator: {secret name: {key: file}}."""
    out: dict[str, dict[str, str]] = {}
    for g in KUSTOMIZATION["secretGenerator"]:
        files = dict(entry.split("=", 1) for entry in g["files"])
        out[g["name"]] = files
    return out


def tool(name: str) -> Path:
    path = DEPLOY_BIN / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run scripts/setup.sh (it installs deploy/requirements.lock)"
        )
    return path


# --- Schemas and security checks ----------------------------------------------------------------


def test_the_kustomization_lists_every_manifest() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == on_disk
    assert KUSTOMIZATION["namespace"] == "trading-system"
    for _, d in DOCS:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == KUSTOMIZATION["namespace"], d["metadata"]


def validate(files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool("kubernetes-validate")), "-k", KUBERNETES_VERSION, "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_resource_matches_the_kubernetes_schemas() -> None:
    r = validate([K8S / name for name in KUSTOMIZATION["resources"]])
    assert r.returncode == 0, r.stdout + r.stderr
    passed = re.findall(r"passed for resource (\S+) against version", r.stdout)
    assert len(passed) == len(DOCS), r.stdout
    assert f"deployment/{'monitor'}" in passed


def test_the_schema_check_refuses_a_wrong_resource(tmp_path: Path) -> None:
    # The validator really reads the schemas: a field of the wrong type, and (strict) a field
    # Kubernetes does not know, are each refused.
    for spoil in ("replicas", "extra"):
        d = json.loads(json.dumps(DEPLOYMENTS["monitor"]))
        if spoil == "replicas":
            d["spec"]["replicas"] = "one"
        else:
            d["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
        bad = tmp_path / f"{spoil}.yaml"
        bad.write_text(yaml.safe_dump(d), encoding="utf-8")
        r = validate([bad])
        assert r.returncode != 0, f"{spoil}: {r.stdout}{r.stderr}"


def test_checkov_finds_no_failed_check() -> None:
    r = subprocess.run(
        [str(tool("checkov")), "--config-file", "deploy/checkov.yaml", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.stdout.strip(), r.stderr
    report = json.loads(r.stdout)
    (k8s,) = report if isinstance(report, list) else [report]
    assert k8s["check_type"] == "kubernetes"
    summary = k8s["summary"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for c in k8s["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    assert summary["resource_count"] >= len(DOCS)
    assert r.returncode == 0, r.stderr


def test_every_skipped_checkov_check_has_its_reason() -> None:
    lines = (ROOT / "deploy" / "checkov.yaml").read_text(encoding="utf-8").splitlines()
    settings = yaml.safe_load("\n".join(lines))
    assert settings["directory"] == ["deploy/k8s"]
    assert settings["skip-download"] is True  # offline: no guidelines fetched
    for check in settings.get("skip-check", []):
        (at,) = [i for i, line in enumerate(lines) if line.strip() == f"- {check}"]
        assert lines[at - 1].strip().startswith("#"), f"{check} is skipped without a reason"


# --- What the schemas do not see --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_deployment_runs_its_server_on_the_configured_port(name: str) -> None:
    server = SERVERS[name]
    c = container(name)
    assert c["command"][: len(COMMANDS[server])] == COMMANDS[server]
    assert port(name) == CONFIG["server"][PORT_KEY[server]]
    assert DEPLOYMENTS[name]["spec"]["replicas"] == 1
    if name != "monitor":
        # Never both copies of an engine gone during a rollout.
        assert DEPLOYMENTS[name]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert DEPLOYMENTS[name]["spec"]["selector"]["matchLabels"].items() <= (
        pod(name)["metadata"]["labels"].items()
    )
    # Drained within the grace period the pod is given.
    grace_s = CONFIG["server"]["shutdown_grace_ms"] / 1000
    assert pod(name)["spec"]["terminationGracePeriodSeconds"] > grace_s + 1


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_service_selects_its_deployment_only(name: str) -> None:
    svc = SERVICES[name]["spec"]
    assert selected(svc["selector"]) == {name}
    (p,) = svc["ports"]
    assert p["port"] == port(name)
    assert p["targetPort"] == "grpc"
    assert svc["type"] == "ClusterIP"


def test_the_monitor_reaches_the_engines_by_their_services() -> None:
    command = container("monitor")["command"]
    for flag, engine in (("--rust", "rust-engine"), ("--python", "python-engine")):
        host, _, p = command[command.index(flag) + 1].rpartition(":")
        assert host in SERVICES, f"{flag} {host}: no such Service"
        assert selected(SERVICES[host]["spec"]["selector"]) == {engine}
        assert int(p) == SERVICES[host]["spec"]["ports"][0]["port"] == port(engine)


def rust_health_services() -> set[str]:
    """The services the Rust server sets SERVING at start (trading-server/src/server.rs)."""
    src = ROOT / "rust-core" / "trading-server" / "src"
    lib = (src / "lib.rs").read_text(encoding="utf-8")
    (name,) = re.findall(r'pub const SERVICE_NAME: &str = "([^"]*)";', lib)
    server = (src / "server.rs").read_text(encoding="utf-8")
    found = set(re.findall(r'health\.set\("([^"]*)", ServingStatus::Serving\)', server))
    if re.search(r"health\.set\(SERVICE_NAME, ServingStatus::Serving\)", server):
        found.add(name)
    return found


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_probes_check_a_service_the_server_registers_on_its_health_port(name: str) -> None:
    registered = rust_health_services() if name == "rust-engine" else set(PYTHON_HEALTH_SERVICES)
    assert "trading.v1.Trading" in registered
    c = container(name)
    assert {p["name"] for p in c["ports"]} == {"grpc", "health"}
    # The port the pod's configuration opens (server.health_port), declared as `health`.
    health = int(pod_environment(name)[HEALTH_PORT_VARIABLE])
    assert health == port(name, "health") != port(name)
    for probe in PROBES:
        # The kubelet's own gRPC probe (plaintext): no command run in the container.
        assert set(c[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"grpc"}
        assert c[probe]["grpc"] == {"port": health, "service": "trading.v1.Trading"}
        assert c[probe]["grpc"]["service"] in registered
    # Liveness never kills a pod the startup probe still waits for; readiness reacts first.
    assert c["readinessProbe"]["periodSeconds"] <= c["livenessProbe"]["periodSeconds"]
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 60


def test_the_disruption_budget_keeps_one_engine() -> None:
    (pdb,) = of_kind("PodDisruptionBudget").values()
    assert selected(pdb["spec"]["selector"]["matchLabels"]) == {"rust-engine", "python-engine"}
    # One of the two may go (a drain proceeds), never both.
    assert pdb["spec"]["minAvailable"] == 1


def test_network_policies_let_only_the_monitor_reach_the_engines() -> None:
    deny = POLICIES["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny

    engines = POLICIES["engines-from-monitor"]["spec"]
    assert selected(engines["podSelector"]["matchLabels"]) == {"rust-engine", "python-engine"}
    (rule,) = engines["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}
    assert selected(source["podSelector"]["matchLabels"]) == {"monitor"}
    assert [p["port"] for p in rule["ports"]] == ["grpc"]

    clients = POLICIES["monitor-from-clients"]["spec"]
    assert selected(clients["podSelector"]["matchLabels"]) == {"monitor"}
    assert [p["port"] for r in clients["ingress"] for p in r["ports"]] == ["grpc"]

    out = POLICIES["monitor-to-engines"]["spec"]
    assert selected(out["podSelector"]["matchLabels"]) == {"monitor"}
    to_engines = out["egress"][0]
    assert selected(to_engines["to"][0]["podSelector"]["matchLabels"]) == {
        "rust-engine",
        "python-engine",
    }
    assert {p["port"] for p in to_engines["ports"]} == {port("rust-engine"), port("python-engine")}
    # The kubelet's probes reach every pod's health port, and nothing else of them.
    kubelet = POLICIES["health-from-kubelet"]["spec"]
    assert selected(kubelet["podSelector"]["matchLabels"]) == set(SERVERS)
    assert kubelet["policyTypes"] == ["Ingress"]
    (rule,) = kubelet["ingress"]
    assert rule["ports"] == [{"port": "health", "protocol": "TCP"}]
    # No other policy opens anything to the engines or from them.
    for name, policy in POLICIES.items():
        if name not in ("default-deny", "engines-from-monitor", "health-from-kubelet"):
            assert not selected(policy["spec"]["podSelector"].get("matchLabels", {})) & {
                "rust-engine",
                "python-engine",
            }, name


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_mounts_volumes_and_secrets_exist(name: str) -> None:
    spec = pod(name)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = container(name)["volumeMounts"]
    assert {m["name"] for m in mounts} == set(volumes), "a mount without a volume or the reverse"
    claims = of_kind("PersistentVolumeClaim")
    secrets = generators()
    for v in volumes.values():
        if "secret" in v:
            secret = v["secret"]
            assert secret["secretName"] in secrets, secret["secretName"]
            keys = {item["key"] for item in secret["items"]}
            assert keys <= set(secrets[secret["secretName"]]), keys
        elif "persistentVolumeClaim" in v:
            assert v["persistentVolumeClaim"]["claimName"] in claims
        else:
            assert "emptyDir" in v, v
    for ref in container(name)["envFrom"]:
        assert ref["configMapRef"]["name"] in CONFIGMAPS
    for m in mounts:
        is_secret = "secret" in volumes[m["name"]]
        assert m.get("readOnly", False) == is_secret, m


def pod_environment(name: str) -> dict[str, str]:
    """The TRADING_SYSTEM__* variables of a pod: its ConfigMaps, then its own env."""
    env: dict[str, str] = {}
    for ref in container(name)["envFrom"]:
        env |= CONFIGMAPS[ref["configMapRef"]["name"]]["data"]
    env |= {e["name"]: e["value"] for e in container(name).get("env", [])}
    return env


def mounted_files(name: str) -> dict[str, tuple[str, str]]:
    """The files the pod's secret volumes put in it: {path: (secret, key)}."""
    volumes = {v["name"]: v for v in pod(name)["spec"]["volumes"]}
    out: dict[str, tuple[str, str]] = {}
    for m in container(name)["volumeMounts"]:
        secret = volumes[m["name"]].get("secret")
        for item in (secret or {}).get("items", []):
            out[f"{m['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return out


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_every_file_the_configuration_names_is_mounted(name: str) -> None:
    env = pod_environment(name)
    files = mounted_files(name)
    for variable, value in env.items():
        assert variable.startswith("TRADING_SYSTEM__")
        if (
            variable.endswith("_FILE")
            and value
            and not variable.startswith("TRADING_SYSTEM__SYSTEM__")
        ):
            assert value in files, f"{variable}={value} is not a mounted secret file"
    # Tokens and certificates only as files, never as values in the environment.
    for secret_key in ("AUTH_TOKEN", "OPERATOR_TOKEN"):
        assert f"TRADING_SYSTEM__SERVER__{secret_key}" not in env


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_pod_configuration_is_valid(name: str, tmp_path: Path) -> None:
    # Every variable names a key of config/default.yaml with a valid value (unknown keys are
    # errors), with the secret files the pod mounts in place.
    made = make_secrets(tmp_path / "secrets")
    env = local_environment(name, made, tmp_path / "state")
    cfg = read_token_files(load_config(ROOT / "config" / "default.yaml", environ=env))
    assert cfg.server.auth_token and cfg.server.operator_token
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.tls_cert_file and cfg.client.tls_ca_file and cfg.client.tls_cert_file
    # Only the engines require client certificates; bots show none to the monitor.
    assert bool(cfg.server.tls_client_ca_file) == (name != "monitor")
    assert cfg.server.health_port == port(name, "health")


def test_the_monitor_keeps_its_state_on_the_claim() -> None:
    spec = DEPLOYMENTS["monitor"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    (state,) = [
        m
        for m in container("monitor")["volumeMounts"]
        if "persistentVolumeClaim" in volumes[m["name"]]
    ]
    env = pod_environment("monitor")
    for key in ("STATE_FILE", "SIGNALS_FILE"):
        path = env[f"TRADING_SYSTEM__SYSTEM__{key}"]
        assert os.path.dirname(path) == state["mountPath"], key
    claim = of_kind("PersistentVolumeClaim")[
        volumes[state["name"]]["persistentVolumeClaim"]["claimName"]
    ]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_images_are_pinned_to_the_release(name: str) -> None:
    image, _, tag = container(name)["image"].rpartition(":")
    assert image == IMAGES[name]
    assert tag == CARGO["workspace"]["package"]["version"]
    # The names docker-compose.yml builds them under.
    assert COMPOSE["services"][name]["image"] == image


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_pods_run_restricted(name: str) -> None:
    spec = pod(name)["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] in of_kind("ServiceAccount")
    p = spec["securityContext"]
    assert p["runAsNonRoot"] is True
    assert p["runAsUser"] == p["runAsGroup"] == p["fsGroup"] == IMAGE_UID
    assert p["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(name)["securityContext"]
    assert c["runAsNonRoot"] is True and c["runAsUser"] == IMAGE_UID
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert c["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container(name)["resources"]
    for what in ("cpu", "memory"):
        assert what in resources["requests"] and what in resources["limits"]
    for dockerfile in ("Dockerfile.rust", "Dockerfile.python"):
        assert f"--uid {IMAGE_UID}" in (ROOT / dockerfile).read_text(encoding="utf-8")


# --- The secrets and the stack with real processes ------------------------------------------


def make_secrets(where: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed by scripts/secrets.sh k8s")
    r = subprocess.run(
        [str(ROOT / "scripts" / "secrets.sh"), "k8s", "--dir", str(where)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return where


def test_the_secrets_script_makes_every_file_the_secrets_take(tmp_path: Path) -> None:
    from cryptography import x509

    made = make_secrets(tmp_path)
    wanted = {Path(f).name for files in generators().values() for f in files.values()}
    assert wanted <= {p.name for p in made.iterdir()}
    for files in generators().values():
        assert all(f.startswith("secrets/") for f in files.values())
    before = {p.name: p.read_bytes() for p in made.iterdir()}
    make_secrets(tmp_path)  # again: nothing changes
    assert before == {p.name: p.read_bytes() for p in made.iterdir()}
    # The certificate names every host the stack dials: the engines' Services (the monitor's
    # --rust/--python), the monitor's, and the loopback address the probes use.
    cert = x509.load_pem_x509_certificate((made / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(names.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    command = container("monitor")["command"]
    for flag in ("--rust", "--python"):
        assert command[command.index(flag) + 1].rpartition(":")[0] in dns
    assert {"monitor", f"monitor.{KUSTOMIZATION['namespace']}.svc"} <= dns
    assert "127.0.0.1" in ips
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} >= {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}


def local_environment(name: str, secrets: Path, state: Path) -> dict[str, str]:
    """The pod's TRADING_SYSTEM__* variables with its mounted files found here: secret files
    in ``secrets`` (as scripts/secrets.sh k8s makes them), the state volume at ``state``."""
    files = mounted_files(name)
    gens = generators()
    volumes = {v["name"]: v for v in pod(name)["spec"]["volumes"]}
    claim_mounts = [
        m["mountPath"]
        for m in container(name)["volumeMounts"]
        if "persistentVolumeClaim" in volumes[m["name"]]
    ]
    out: dict[str, str] = {}
    for variable, value in pod_environment(name).items():
        if value in files:
            secret, key = files[value]
            value = str(secrets / Path(gens[secret][key]).name)
        for mount in claim_mounts:
            if value.startswith(mount + "/"):
                state.mkdir(exist_ok=True)
                value = str(state / value[len(mount) + 1 :])
        out[variable] = value
    return out


def local_argv(argv: list[str]) -> list[str]:
    """A container's argv run here: the project's builds, config/ for the image's copy."""
    head = {
        "trading-engine": [str(servers.rust_binary())],
        "trading-system": [sys.executable, "-m", "trading_system"],
    }[argv[0]]
    return [
        *head,
        *(a.replace(CONFIG_FILE, str(ROOT / "config" / "default.yaml")) for a in argv[1:]),
    ]


def with_value(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADING_SYSTEM__")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three servers started as the manifests start them (command, environment, secret
    files), on free ports of this machine (the main ports with ``--port 0``, the health ports
    in place of the pods' ``TRADING_SYSTEM__SERVER__HEALTH_PORT``: on one host the three pods'
    ports would be one machine's); the monitor dials the engines as `localhost`."""
    where = tmp_path_factory.mktemp("k8s")
    secrets = make_secrets(where / "secrets")
    started: dict[str, servers.Server] = {}
    envs: dict[str, dict[str, str]] = {}
    try:
        for name in ("rust-engine", "python-engine", "monitor"):
            envs[name] = clean_environment() | local_environment(name, secrets, where / "state")
            envs[name][HEALTH_PORT_VARIABLE] = str(free_port())
            argv = local_argv(container(name)["command"]) + ["--port", "0"]
            if name == "monitor":
                for flag, engine in (("--rust", "rust-engine"), ("--python", "python-engine")):
                    engine_port = started[engine].address.rpartition(":")[2]
                    argv = with_value(argv, flag, f"localhost:{engine_port}")
            started[name] = servers.spawn(SERVERS[name], argv, True, env=envs[name])
        yield {"servers": started, "env": envs, "where": where}
    finally:
        for s in reversed(started.values()):
            s.stop()


def local_port(s: servers.Server) -> str:
    return f"127.0.0.1:{s.address.rpartition(':')[2]}"


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_health_port_answers_the_kubelet_in_plaintext(
    name: str, stack: dict[str, Any]
) -> None:
    server = stack["servers"][name]
    assert server.address.startswith("0.0.0.0:")  # server.host of the ConfigMap
    probe = container(name)["readinessProbe"]["grpc"]
    # What the kubelet sends: a plaintext Check of the probe's service, no token.
    health_at = f"127.0.0.1:{stack['env'][name][HEALTH_PORT_VARIABLE]}"
    request = health_pb2.HealthCheckRequest(service=probe["service"])
    with grpc.insecure_channel(health_at) as channel:
        answer = Health(channel).Check(request, timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # The main port takes TLS only.
    with grpc.insecure_channel(local_port(server)) as channel:
        with pytest.raises(grpc.RpcError) as e:
            Health(channel).Check(request, timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def probe_argv(name: str, address: str) -> list[str]:
    """The image's probe command (compose's health check, or by hand in the pod)."""
    binary = "trading-engine" if name == "rust-engine" else "trading-system"
    return [binary, "probe", "--config", CONFIG_FILE, "--address", address]


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_the_probe_commands_answer_through_tls_in_the_pods(
    name: str, stack: dict[str, Any]
) -> None:
    address = local_port(stack["servers"][name])
    r = subprocess.run(
        local_argv(probe_argv(name, address)),
        env=stack["env"][name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"{address} trading.v1.Trading SERVING\n"


def test_the_engines_refuse_a_client_without_the_stack_certificate(stack: dict[str, Any]) -> None:
    env = dict(stack["env"]["rust-engine"])
    del env["TRADING_SYSTEM__CLIENT__TLS_CERT_FILE"], env["TRADING_SYSTEM__CLIENT__TLS_KEY_FILE"]
    address = local_port(stack["servers"]["rust-engine"])
    r = subprocess.run(
        local_argv(probe_argv("rust-engine", address)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode != 0, r.stdout


def test_the_monitor_serves_with_both_engines_in_sync(stack: dict[str, Any]) -> None:
    # `trading-system health` with the monitor pod's configuration: the operator token file,
    # TLS to the monitor; the monitor reached both engines through mutual TLS with its tokens.
    address = local_port(stack["servers"]["monitor"])
    argv = [
        "trading-system", "health", "--config", CONFIG_FILE, "--address", address, "--json"
    ]  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run(
            local_argv(argv),
            env=stack["env"]["monitor"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        status = json.loads(r.stdout) if r.stdout.strip() else {}
        engines = {e["engine"]: e for e in status.get("engines", [])}
        ok = r.returncode == 0 and all(
            engines.get(e, {}).get("eligible") and engines[e]["config_synced"]
            for e in ("rust", "python")
        )
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ok, r.stdout + r.stderr
    assert status["active"] == "rust"
    # The state file went to the claim's mount.
    assert (stack["where"] / "state" / "monitor.sqlite").exists()
