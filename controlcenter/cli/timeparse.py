"""Times on the command line: ISO 8601, ``now``, and relative forms such as ``-1h`` or ``-30m``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<amount>\d+(\.\d+)?)(?P<unit>s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TimeParseError(ValueError):
    """A time argument is neither ISO 8601, ``now`` nor a relative offset."""


def parse_time(text: str, now: datetime) -> datetime:
    """Parse a time argument; relative forms count from ``now``, naive ISO times are UTC."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        amount = float(relative["amount"]) * (-1 if relative["sign"] == "-" else 1)
        return now + timedelta(**{_UNITS[relative["unit"]]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise TimeParseError(
            f"'{text}' is not a time: use ISO 8601 (2026-11-21T08:00:00Z), 'now' or -15m/-1h/-2d"
        ) from err
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
