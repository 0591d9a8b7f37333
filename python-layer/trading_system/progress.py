"""Progress bars on stderr for long work (tqdm): shown only on a terminal and only once the
work has taken :data:`DELAY_S` seconds, so short runs, pipes, logs and tests never see one."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

DELAY_S = 2.0
"""Work shorter than this shows no bar."""


def enabled() -> bool:
    """Whether bars are drawn: stderr is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def iterate(items: Iterable[T], total: int, desc: str, unit: str = "bar") -> Iterable[T]:
    """``items``, drawing a bar on stderr as they are consumed when :func:`enabled` (else
    ``items`` itself: no cost per item)."""
    if not enabled():
        return items
    return _bar(items, total, desc, unit)


def _bar(items: Iterable[T], total: int, desc: str, unit: str) -> Iterator[T]:
    from tqdm import tqdm

    yield from tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        delay=DELAY_S,
        leave=False,
        mininterval=0.25,
    )


@contextmanager
def busy(desc: str) -> Iterator[None]:
    """A bar with the elapsed time for one long step that cannot count its progress (reading a
    file, rendering a chart), drawn from a helper thread once the step has taken
    :data:`DELAY_S` seconds, when :func:`enabled`."""
    if not enabled():
        yield
        return
    stop = threading.Event()
    started = time.time()

    def draw() -> None:
        if stop.wait(DELAY_S):
            return
        from tqdm import tqdm

        with tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr, leave=False) as bar:
            bar.start_t = started  # the step's elapsed time, not the bar's
            while not stop.wait(0.5):
                bar.refresh()

    thread = threading.Thread(target=draw, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
