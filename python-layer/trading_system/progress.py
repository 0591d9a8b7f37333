"""Progress bars on stderr for long work (tqdm): shown only on a terminal and only once the
work has taken :data:`DELAY_S` seconds, so short runs, pipes, logs and tests never see one."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
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
