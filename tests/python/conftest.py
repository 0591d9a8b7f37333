"""Fixtures and settings shared by the Python tests: the binaries the tests need (checked once,
failing at once with how to build them), per-test timeouts (pytest-timeout; ``slow`` tests get a
longer one) and the tests that run alone under pytest-xdist."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import servers

# Processes the tests start (`trading-system serve rust`, `demo`, ...) run the same server binary
# as servers.start: the test build unless the caller's shell names another.
os.environ["TRADING_ENGINE_BIN"] = str(servers.rust_binary())

SLOW_TIMEOUT_S = 1800
"""Per-test timeout of ``slow`` tests (pyproject's ``timeout`` is everyone else's): the longest,
the fault suite at 10,000 bars, takes minutes."""

SERIAL_MODULES = frozenset({"test_faults.py", "test_load.py", "test_client_recovery.py"})
"""Timing-sensitive modules (failover deadlines of tens of milliseconds, load with faults,
restarts within a retry budget): they run alone, after the others (scripts/test.sh runs pytest
with ``SERIAL_TESTS=exclude`` and ``-n auto``, then with ``SERIAL_TESTS=only``); another test on
the cores can make an engine miss a deadline and fail over. Marked ``serial``, and in one xdist
group should they run under xdist all the same."""


def _uses_rust_server(module: object) -> bool:
    """Whether a test module starts the Rust server: it imports the helpers that do."""
    return any(
        getattr(v, "__name__", None) in ("servers", "cluster")
        or getattr(v, "__module__", None) in ("servers", "cluster")
        for v in vars(module).values()
    )


def missing_binaries() -> list[str]:
    """What the Python tests need built and is not there, each with how to build it."""
    missing = []
    binary = servers.rust_binary()
    if not os.access(binary, os.X_OK):
        build = f"`{servers.TEST_SERVER_BUILD}` (scripts/test.sh runs it)"
        how = f"build it with {build}"
        if binary != servers.TEST_SERVER:
            how = f"TRADING_ENGINE_BIN names it; unset, {servers.TEST_SERVER}, built by {build}"
        missing.append(f"the Rust server {binary} is missing: {how}")
    if importlib.util.find_spec("trading_system.native") is None:
        spec = importlib.util.find_spec("trading_system")
        package = Path(spec.origin or "" if spec is not None else "").parent
        missing.append(
            f"the native module trading_system.native is missing from {package}: build it with "
            "scripts/setup.sh"
        )
    return missing


@pytest.fixture(scope="session")
def built_binaries() -> None:
    """Fails at once when a binary the tests start is missing, naming it and how to build it
    (instead of every test waiting for a server that cannot start). Requested for every test of
    a module that starts the Rust server (see ``_needs_built_binaries``)."""
    if missing := missing_binaries():
        pytest.fail("\n".join(missing), pytrace=False)


@pytest.fixture(autouse=True)
def _needs_built_binaries(request: pytest.FixtureRequest) -> None:
    if request.module is not None and _uses_rust_server(request.module):
        request.getfixturevalue("built_binaries")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"rust server: {servers.rust_binary()}"]
    return lines + [f"MISSING: {m}" for m in missing_binaries()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
        if item.path.name in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
            item.add_marker(pytest.mark.xdist_group("serial"))
    # SERIAL_TESTS: "exclude" or "only" those tests (unset: all tests). An environment variable,
    # not an option: options can only be added by a conftest at the root of the repository.
    which = os.environ.get("SERIAL_TESTS", "all")
    if which not in ("all", "exclude", "only"):
        raise pytest.UsageError(f"SERIAL_TESTS={which}: expected exclude or only")
    if which != "all":
        keep, dropped = [], []
        for item in items:
            wanted = (item.get_closest_marker("serial") is not None) == (which == "only")
            (keep if wanted else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep


@pytest.fixture
def no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRADING_SYSTEM__*`` variable of the caller's shell reaches the code under test (they
    override the configuration; the tests mean the files and flags they give)."""
    for name in list(os.environ):
        if name.startswith("TRADING_SYSTEM__"):
            monkeypatch.delenv(name)
