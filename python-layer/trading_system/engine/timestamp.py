"""Times: integer milliseconds since the Unix epoch (UTC) inside, ISO-8601 in text (§12.6)."""

from __future__ import annotations

import functools

# The Rust engine formats through chrono, whose dates span these years; beyond them it prints
# the number itself, and so do we.
MIN_YEAR, MAX_YEAR = -262_143, 262_142


def civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian, any sign."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


@functools.lru_cache(maxsize=4096)
def _date(days: int) -> str | None:
    """``YYYY-MM-DD`` of a day count, or None outside the years the Rust engine can format.
    Cached: a series has few distinct days per many bars."""
    year, month, day = civil_from_days(days)
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    # Years outside 0..9999 carry a sign, as ISO 8601's expanded form (and chrono) writes them.
    y = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{y}-{month:02d}-{day:02d}"


@functools.lru_cache(maxsize=1 << 16)
def format_ms(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, with ``.mmm`` only when the milliseconds are not 0."""
    days, rem = divmod(ms, 86_400_000)
    date = _date(days)
    if date is None:
        return str(ms)
    secs, milli = divmod(rem, 1000)
    hh, rest = divmod(secs, 3600)
    mm, ss = divmod(rest, 60)
    if milli:
        return f"{date}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z"
    return f"{date}T{hh:02d}:{mm:02d}:{ss:02d}Z"
