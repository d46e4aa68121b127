"""Command-line times: ISO 8601, now and relative offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlcenter.cli.timeparse import TimeParseError, parse_time

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-1h", NOW - timedelta(hours=1)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-2d", NOW - timedelta(days=2)),
        ("+15s", NOW + timedelta(seconds=15)),
        ("-1.5h", NOW - timedelta(minutes=90)),
        ("2026-11-21T08:00:00", datetime(2026, 11, 21, 8, tzinfo=UTC)),
        ("2026-11-21T08:00:00+01:00", datetime(2026, 11, 21, 7, tzinfo=UTC)),
        ("2026-11-21T08:00:00Z", datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ],
)
def test_parse(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-1y", "1h", ""])
def test_refused(text: str) -> None:
    with pytest.raises(TimeParseError, match="not a time"):
        parse_time(text, NOW)
