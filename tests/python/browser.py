"""Headless Chromium, as the chart tests use it: a page written to a file and opened in a
window of a given size, with time for its scripts to run (plotly draws after load)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TIMEOUT_S = 180
"""A guard against a hung browser only: nothing here measures time."""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: scripts/setup.sh installs it "
            "(apt-get install chromium), the chart tests need a real browser"
        )
    return found


def headless(
    page: str, tmp_path: Path, name: str, *what: str, window: str = "1400,1000"
) -> subprocess.CompletedProcess[str]:
    """Opens ``page`` (written to ``tmp_path/<name>.html``) in headless Chromium with a window
    of ``window`` ("width,height") pixels and the output options ``what`` (``--dump-dom``,
    ``--screenshot=…``); fails the test when Chromium fails."""
    html = tmp_path / f"{name}.html"
    html.write_text(page, encoding="utf-8")
    argv = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--window-size={window}",
        "--virtual-time-budget=20000",
        f"--user-data-dir={tmp_path / f'{name}-profile'}",
        *what,
        html.as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"chromium failed:\n{done.stderr[-3000:]}"
    return done
