"""The command line (trading-system analyze): summary and document on success; on bad input a
message naming line, field and rule on stderr, exit status 2, nothing on stdout, no file. And the
commands that talk to the monitor (health, failover, override) against a real stack serving TLS
and mutual TLS from one shared configuration file, with the operator token."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import servers
import shared_config
from cluster import wait_for

import trading_system
from trading_system import analyze, demo, load_csv, resources
from trading_system.cli import exits, main
from trading_system.client import Client, ClientError, TlsError
from trading_system.config import apply_sets, load_config
from trading_system.errors import ConfigError, DataError, InvalidBars, Violation

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
SH = DATA / "000001.SH_1d_head1200.csv"
PRESETS = ROOT / "config" / "macd_params.yaml"
ENGINES = ["rust", "python"]


pytestmark = pytest.mark.usefixtures("no_environment_overrides")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("engine", ENGINES)
def test_analyze_prints_a_summary_and_writes_the_document(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, "analyze", str(BTC), "--engine", engine, "--json", str(out_file))
    assert (code, err) == (0, "")
    assert json.loads(out_file.read_text(encoding="utf-8")) == analyze(BTC).to_dict()
    lines = out.splitlines()
    assert lines[0] == f"{BTC}  ({engine} engine)"
    assert lines[1] == "  1968 bars (2014-06-23T22:00:00Z .. 2014-08-03T23:00:00Z)"
    assert lines[2] == (
        # Two leading segments (§6.3) before the 11 confirmed ones, a pivot and two points in
        # them (golden file 99_real_btc_default).
        "  -> 1119 merged bars, 570 fractals, 92 pens, 14 segments (11 confirmed), "
        "10 pivots, 11 buy/sell points"
    )
    for header in ("last pens (笔):", "last segments (线段):", "last pivots (中枢):"):
        assert header in lines
    pens = lines[lines.index("last pens (笔):") + 1 : lines.index("last segments (线段):")]
    assert len(pens) == 5 and pens[0].split()[0] == "#87" and pens[-1].endswith("may extend")
    assert len({line.index("->") for line in pens}) == 1, "aligned columns"
    assert "2014-08-03T16:00:00Z     591  ->  2014-08-03T20:00:00Z   584.4" in pens[-1]
    signals = lines[lines.index("last buy/sell points (买卖点):") + 1 :]
    assert signals[-1].split() == [
        "type",
        "2",
        "buy",
        "2014-08-03T20:00:00Z",
        "584.4",
        "pen",
        "91",
        "may",
        "change",
    ]


def test_json_to_stdout_moves_the_summary_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "analyze", str(BTC), "--engine", "python", "--json", "-")
    assert code == 0
    assert json.loads(out) == analyze(BTC, engine="python").to_dict()
    assert "last pens (笔):" in err


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_bars_exit_2_naming_line_field_and_rule(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, "analyze", str(SH), "--engine", engine, "--json", str(out_file))
    assert (code, out) == (2, "")
    assert not out_file.exists() and list(tmp_path.iterdir()) == [], "no partial file"
    assert f"error: {SH}: 16 bar rule violation(s); nothing was analyzed:" in err
    assert (
        "  line 99: bar 97: low 109.31 is above min(open, close) 109.29 "
        "[field low, rule low_range]" in err.splitlines()
    )
    assert "validation.repair=true" in err


def test_repair_instead_of_rejecting(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "analyze", str(SH), "--engine", "python", "--set", "validation.repair=true"
    )
    assert code == 0
    assert "  16 bars repaired (high/low widened to cover open/close)" in out.splitlines()


def test_bad_csv_exit_2_naming_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,x,1.5,10\n",
        encoding="utf-8",
    )
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, "analyze", str(bad), "--engine", "python", "--json", str(out_file))
    assert (code, out) == (2, "")
    assert err == f"error: reading {bad}: line 3: low: not a number: 'x'\n"
    assert not out_file.exists()


def test_empty_csv_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("time,open,high,low,close,volume\n", encoding="utf-8")
    code, out, err = run(capsys, "analyze", str(empty), "--engine", "python")
    assert (code, out) == (2, "")
    assert "the series is empty: at least one bar is required [rule non_empty]" in err


def test_configuration_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "out.json"
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("pen:\n  definition: traditional\n", encoding="utf-8")
    code, _, err = run(
        capsys,
        "analyze",
        str(BTC),
        "--engine",
        "python",
        "--config",
        str(cfg_file),
        "--macd-preset",
        "talib",
        "--presets",
        str(PRESETS),
        "--set",
        "macd.signal_period=5",
        "--with-macd",
        "--json",
        str(out_file),
    )
    assert (code, err) == (0, "")
    doc = json.loads(out_file.read_text(encoding="utf-8"))
    assert doc["config"]["pen"]["definition"] == "traditional"
    assert doc["config"]["macd"] == {
        "fast_period": 12,
        "slow_period": 26,
        "signal_period": 5,
        "histogram_scale": 1.0,
        "seed": "sma",
    }
    assert len(doc["macd"]["dif"]) == 1968


def test_environment_overrides_the_file_and_set_overrides_both(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADING_SYSTEM__PEN__DEFINITION", "traditional")
    monkeypatch.setenv("TRADING_SYSTEM__SIGNAL__STRENGTH", "peak")
    code, out, _ = run(
        capsys,
        "analyze",
        str(BTC),
        "--engine",
        "python",
        "--json",
        "-",
        "--set",
        "signal.strength=slope",
    )
    assert code == 0
    cfg = json.loads(out)["config"]
    assert (cfg["pen"]["definition"], cfg["signal"]["strength"]) == ("traditional", "slope")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--set", "macd.fastt=3"],
            "error: invalid configuration: macd.fastt: unknown configuration key",
        ),
        (
            ["--set", "macd.fast_period=30"],
            "macd.fast_period: must be < macd.slow_period (26), got 30",
        ),
        (["--set", "pen.definition"], "an override must have the form section.key=value"),
        (
            ["--macd-preset", "turbo", "--presets", str(PRESETS)],
            'macd_preset: unknown preset "turbo"',
        ),
    ],
)
def test_bad_configuration_exits_2(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, "analyze", str(BTC), "--json", str(out_file), *args)
    assert (code, out) == (2, "")
    assert needle in err
    assert not out_file.exists()


def test_other_failures_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "analyze", str(tmp_path / "none.csv"), "--engine", "python")
    assert (code, out) == (1, "")
    assert "none.csv" in err
    blocked = tmp_path / "missing-dir" / "out.json"
    code, out, err = run(capsys, "analyze", str(BTC), "--engine", "python", "--json", str(blocked))
    assert (code, out) == (1, "")
    assert "writing" in err
    code, out, err = run(capsys, "analyze", str(BTC), "--config", str(tmp_path / "none.yaml"))
    assert (code, out) == (1, "")
    assert "none.yaml" in err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "analyze" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["analyze", str(BTC), "--engine", "go"]) == 2
    assert main(["--version"]) == 0
    assert trading_system.__version__ in capsys.readouterr().out


def test_version_is_the_distribution_metadata() -> None:
    """Not a string in the source: the installed distribution's, which maturin takes from the
    Rust workspace (Cargo.toml)."""
    assert trading_system.__version__ == importlib.metadata.version("trading-system")
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    assert f'version = "{trading_system.__version__}"' in cargo


def test_module_entry_point_in_a_process(tmp_path: Path) -> None:
    env = dict(os.environ)
    package_dir = Path(trading_system.__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_dir), env.get("PYTHONPATH")]))
    base = [sys.executable, "-m", "trading_system", "analyze"]
    bad = subprocess.run(
        [*base, str(SH), "--engine", "python"], capture_output=True, text=True, env=env
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "[field low, rule low_range]" in bad.stderr
    good = subprocess.run(
        [*base, str(BTC), "--engine", "python"], capture_output=True, text=True, env=env
    )
    assert good.returncode == 0 and "1968 bars" in good.stdout


# ---- Commands that talk to the monitor, under TLS and mutual TLS ------------------------------


@dataclass
class TlsStack:
    """Both engines and the monitor serving (mutual) TLS from one shared configuration file,
    the monitor taking only the token ``op``."""

    config: Path
    monitor: servers.Server
    engines: list[servers.Server]
    mutual: bool


@pytest.fixture(scope="module", params=["tls", "mutual"])
def tls_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsStack]:
    tmp = tmp_path_factory.mktemp(request.param)
    mutual = request.param == "mutual"
    pki = shared_config.pki(tmp / "pki")
    system = "system:\n  health_check_interval_ms: 100\n  hold_down_ms: 0\n"
    config = shared_config.write(tmp, pki, mutual, extra=system)
    engines = [servers.start(e, config=config) for e in ENGINES]
    monitor: servers.Server | None = None
    try:
        argv = servers.monitor_command(
            engines[0].address, engines[1].address, ["server.auth_token=op"], config
        )
        monitor = servers.spawn("monitor", argv, True)
        yield TlsStack(config, monitor, engines, mutual)
    finally:
        code = monitor.stop() if monitor is not None else 0
        for s in engines:
            s.stop()
        assert code == 0


def admin(
    capsys: pytest.CaptureFixture[str],
    stack: TlsStack,
    *argv: str,
    sets: tuple[str, ...] = (),
    config: bool = True,
) -> tuple[int, str, str]:
    """A command against the stack's monitor with the shared configuration, the operator token
    ``op`` and the client token ``bot``, then ``sets``."""
    where = ["--address", stack.monitor.address]
    tokens = ["server.auth_token=bot", "server.operator_token=op", *sets]
    shared = ["--config", str(stack.config)] if config else []
    return run(capsys, *argv, *where, *shared, *[a for s in tokens for a in ("--set", s)])


def test_admin_commands_over_tls(tls_stack: TlsStack, capsys: pytest.CaptureFixture[str]) -> None:
    """health, failover and override from the shared configuration (TLS, the client
    certificate under mutual TLS, the operator token) against the monitor."""

    def both_eligible() -> bool:
        code, out, _ = admin(capsys, tls_stack, "health", "--json")
        return code == 0 and all(e["eligible"] for e in json.loads(out)["engines"])

    wait_for(both_eligible, "both TLS engines eligible through the monitor")
    code, out, err = admin(capsys, tls_stack, "health")
    assert (code, err) == (0, "") and out.startswith("active: rust")
    code, out, _ = admin(capsys, tls_stack, "failover", "--to", "python")
    assert code == 0 and out.startswith("active: python") and "mode python" in out
    code, out, _ = admin(capsys, tls_stack, "override", "auto")
    assert code == 0 and "mode auto" in out


def test_admin_failures_over_tls(tls_stack: TlsStack, capsys: pytest.CaptureFixture[str]) -> None:
    where = tls_stack.monitor.address
    # Plaintext against the TLS monitor: a TLS failure, exit 4.
    code, out, err = admin(capsys, tls_stack, "health", config=False)
    assert (code, out) == (4, "")
    assert err.startswith(f"error: monitor {where}: TLS: ") and "plaintext" in err
    if tls_stack.mutual:
        no_cert = ("client.tls_cert_file=", "client.tls_key_file=")
        code, out, err = admin(capsys, tls_stack, "health", sets=no_cert)
        assert (code, out) == (4, "") and "none was presented" in err
    # The client token alone: the monitor wants the operator's.
    code, out, err = admin(capsys, tls_stack, "health", sets=("server.operator_token=",))
    assert (code, out) == (1, "") and "UNAUTHENTICATED" in err


def test_admin_calls_of_the_client_library(tls_stack: TlsStack) -> None:
    """What health, failover and override call: the monitor's Admin service through the
    client library, with the operator token (the client token alone is refused)."""
    cfg = load_config(tls_stack.config)
    ops = apply_sets(cfg, ["server.auth_token=bot", "server.operator_token=op"])
    with Client.from_config(ops, tls_stack.monitor.address, timeout=10.0) as c:
        assert c.status().mode in ("auto", "rust", "python")
        assert c.set_mode("auto").mode == "auto"
        assert c.health() == "SERVING"
    bot = apply_sets(cfg, ["server.auth_token=bot"])
    with Client.from_config(bot, tls_stack.monitor.address) as c, pytest.raises(ClientError) as e:
        c.status()
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_client_library_through_the_tls_monitor(tls_stack: TlsStack) -> None:
    cfg = apply_sets(load_config(tls_stack.config), ["server.auth_token=op"])
    rows = list(load_csv(BTC).rows())
    with Client.from_config(cfg, tls_stack.monitor.address) as c:
        assert c.analyze(BTC).bars == len(rows)
        with c.stream("TLSBOT", "30m") as s:
            for row in rows[:30]:
                s.append(row)
            assert s.snapshot().last_seq == 30


# ---- Package data, the Rust server, exit statuses ---------------------------------------------


@pytest.mark.parametrize("name", [resources.DEFAULT_CONFIG, resources.PRESETS])
def test_bundled_files_are_the_repository_config(name: str) -> None:
    """The package carries config/'s files (links in the repository, copies in the wheel),
    found through importlib.resources."""
    assert resources.read_bundled(name) == (ROOT / "config" / name).read_text(encoding="utf-8")
    link = Path(trading_system.__file__).parent / "defaults" / name
    assert link.is_symlink() and link.resolve() == (ROOT / "config" / name).resolve()


def test_the_python_image_builds_the_wheel_with_the_linked_files() -> None:
    """The builder stage copies what the package's links point to, so the wheel holds them."""
    dockerfile = (ROOT / "Dockerfile.python").read_text(encoding="utf-8")
    builder = dockerfile.split("\nFROM ")[2]  # rust toolchain, builder, runtime
    copied = {m.group(1) for m in re.finditer(r"^COPY (\S+) ", builder, re.MULTILINE)}
    package = Path(trading_system.__file__).parent
    for link in package.rglob("*"):
        if link.is_symlink():
            target = link.resolve().relative_to(ROOT)
            assert target.parts[0] in copied, f"{link.name} -> {target}: not in the builder"


def test_presets_without_the_working_directory_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Elsewhere than the repository root, --macd-preset reads the bundled presets; a
    config/macd_params.yaml of the working directory comes first."""
    monkeypatch.chdir(tmp_path)
    argv = ["analyze", str(BTC), "--engine", "python", "--json", "-", "--macd-preset", "talib"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["config"]["macd"]["seed"] == "sma"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "macd_params.yaml").write_text(
        "presets:\n  talib:\n    fast_period: 5\n", encoding="utf-8"
    )
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["config"]["macd"]["fast_period"] == 5


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_rust_server_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRADING_ENGINE_BIN, else the checkout's build, else trading-engine on PATH, else (for
    the message) the checkout's path or the bare name."""
    on_path = executable(tmp_path / "bin" / "trading-engine")
    checkout = tmp_path / "repo"
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv("TRADING_ENGINE_BIN", "/opt/engine")
    monkeypatch.setattr(resources, "checkout", lambda: checkout)
    assert resources.rust_server() == Path("/opt/engine")
    monkeypatch.delenv("TRADING_ENGINE_BIN")
    assert resources.rust_server() == on_path  # the checkout has no build
    built = executable(checkout / "target" / "service" / "trading-engine")
    assert resources.rust_server() == built
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    built.unlink()
    assert resources.rust_server() == built
    monkeypatch.setattr(resources, "checkout", lambda: None)
    assert resources.rust_server() == Path("trading-engine")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert resources.rust_server() == on_path


def test_checkout_is_found_from_the_package() -> None:
    assert resources.checkout() == ROOT


def test_missing_rust_server_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-engine"
    monkeypatch.setenv("TRADING_ENGINE_BIN", str(missing))
    for argv in (["serve", "rust"], ["demo"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, "")
        assert err.startswith(f"error: the Rust server {missing} is missing: "), err


def test_demo_outside_a_checkout_needs_data(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADING_ENGINE_BIN", "/bin/true")
    monkeypatch.setattr(demo, "DATA", None)
    code, out, err = run(capsys, "demo")
    assert (code, out) == (2, "")
    assert err.startswith("error: no series: give --data FILE")


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (ConfigError("pen.definition", "bad"), 2, "error: invalid configuration: pen.definition"),
        (InvalidBars([Violation(0, "low", "low_range", "x")]), 2, "error: invalid bars: "),
        (DataError("not a number", source="f.csv", line=3), 2, "error: reading f.csv"),
        (FileNotFoundError(2, "No such file or directory", "c.yaml"), 1, "error: reading c.yaml"),
        (ImportError("no module named x"), 1, "error: no module named x"),
        (RuntimeError("monitor did not start"), 1, "error: monitor did not start"),
        (TlsError("handshake", "plaintext client"), 4, "error: TLS: plaintext client"),
        (ClientError(grpc.StatusCode.UNAVAILABLE, "gone"), 3, "error: UNAVAILABLE: gone"),
        (ClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "late"), 3, "error: DEADLINE_EXCEEDED"),
        (ClientError(grpc.StatusCode.UNAUTHENTICATED, "token"), 1, "error: UNAUTHENTICATED"),
        (exits.Failure("error: as said", 2), 2, "error: as said"),
    ],
)
def test_exit_status_table(error: Exception, status: int, message: str) -> None:
    """One table for every command: the status and the start of the message of each failure."""
    failure = exits.outcome(error)
    assert failure is not None
    assert failure.status == status and failure.message.startswith(message), failure.message
    framed = exits.outcome(error, "monitor h:1")
    assert framed is not None and framed.status == status
    assert isinstance(error, exits.Failure) or framed.message.startswith("error: monitor h:1: ")


def test_an_error_no_rule_names_propagates(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: object, out: object, err: object) -> int:
        raise KeyError("a bug")

    assert exits.outcome(KeyError("a bug")) is None
    with pytest.raises(KeyError):
        exits.run(broken, None, sys.stdout, sys.stderr)
