"""Fixtures shared by the Python tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRADING_SYSTEM__*`` variable of the caller's shell reaches the code under test (they
    override the configuration; the tests mean the files and flags they give)."""
    for name in list(os.environ):
        if name.startswith("TRADING_SYSTEM__"):
            monkeypatch.delenv(name)
