"""The header shows the center's time in the site's zone, and carries what the browser needs to
tick it on at the clock's speed (the demo's clock is simulated)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from controlcenter.model import Role, User
from controlcenter.ports import EventJournal, HistoryReader, LiveView
from hmi.pages import all_pages
from hmi.shell import CLOCK_ID, shell_layout
from tests.hmi.conftest import hmi_context

CENTER_TIME = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)


def find(component: object, wanted: str) -> dict[str, object]:
    """The JSON of the element with id ``wanted``."""
    stack = [json.loads(json.dumps(component, default=lambda c: c.to_plotly_json()))]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("props", {}).get("id") == wanted:
                return dict(node["props"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError(f"no element {wanted}")


def test_the_header_clock_starts_at_the_centers_time_in_the_sites_zone(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(
        live_view,
        history,
        journal,
        timezone=ZoneInfo("Europe/Amsterdam"),
        now=lambda: CENTER_TIME,
        clock_speed=60.0,
    )
    clock = find(shell_layout(context, all_pages(), User("olga", Role.OPERATOR)), CLOCK_ID)
    assert clock["children"] == "2030-01-01 13:00:05 CET"
    assert clock["data-tz"] == "Europe/Amsterdam"
    assert clock["data-center-ms"] == str(round(CENTER_TIME.timestamp() * 1000))
    assert clock["data-speed"] == "60"
