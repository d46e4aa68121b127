"""Pure logic of notifications: quiet hours, routes, flood counting, rendering and signing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from alarms.notify import (
    AlarmNotice,
    FloodGate,
    Notification,
    NotificationConfigError,
    QuietHours,
    sign,
    verify,
)
from alarms.notify.messages import header_text, json_body, plain_text, subject
from alarms.notify.routing import resolve_routes
from controlcenter.automation import (
    AlarmDef,
    AlarmDisplayState,
    AlarmGuidance,
    AlarmKind,
    AlarmPriority,
    NotificationRouteDef,
    OnCallGroupDef,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_quiet_hours_across_midnight_in_the_site_zone() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    assert quiet == QuietHours(time(22), time(7))
    # 21:30 UTC is 22:30 in Berlin in winter: quiet; 06:30 UTC is 07:30: not.
    assert quiet.contains(datetime(2026, 1, 15, 21, 30, tzinfo=UTC), BERLIN)
    assert not quiet.contains(datetime(2026, 1, 15, 20, 59, tzinfo=UTC), BERLIN)
    assert not quiet.contains(datetime(2026, 1, 16, 6, 30, tzinfo=UTC), BERLIN)
    end = quiet.end_after(datetime(2026, 1, 15, 21, 30, tzinfo=UTC), BERLIN)
    assert end == datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    # Across the spring change (29 March 2026) the end is 07:00 summer time, 05:00 UTC.
    end = quiet.end_after(datetime(2026, 3, 28, 22, 0, tzinfo=UTC), BERLIN)
    assert end == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)


def test_quiet_hours_within_one_day() -> None:
    quiet = QuietHours.parse("12:00-13:30")
    assert quiet.contains(datetime(2026, 1, 15, 12, 15, tzinfo=UTC), ZoneInfo("UTC"))
    assert not quiet.contains(datetime(2026, 1, 15, 13, 30, tzinfo=UTC), ZoneInfo("UTC"))


@pytest.mark.parametrize(
    "text", ["25:00-07:00", "22-07", "22:00-22:00", "22:00-07:00\nBcc: x", "", "22:60-07:00"]
)
def test_quiet_hours_refuse_malformed_text(text: str) -> None:
    with pytest.raises(NotificationConfigError, match="quiet hours"):
        QuietHours.parse(text)


def _alarm(area: str, priority: AlarmPriority) -> AlarmDef:
    return AlarmDef("a", AlarmKind.HIGH, priority, tag="t", limit=1.0, area=area)


def test_routes_match_area_and_priority_and_name_their_groups() -> None:
    groups = [OnCallGroupDef("water-oncall", ("w@city.example",)), OnCallGroupDef("duty")]
    (route,) = resolve_routes(
        groups,
        [NotificationRouteDef("water", ("water-oncall", "duty"), ("water",), AlarmPriority.MEDIUM)],
    )
    assert [group.name for group in route.groups] == ["water-oncall", "duty"]
    assert route.matches(_alarm("water", AlarmPriority.CRITICAL))
    assert route.matches(_alarm("water", AlarmPriority.MEDIUM))
    assert not route.matches(_alarm("water", AlarmPriority.LOW))
    assert not route.matches(_alarm("heating", AlarmPriority.CRITICAL))


def test_routes_refuse_unknown_groups_and_bad_quiet_hours() -> None:
    groups = [OnCallGroupDef("duty")]
    with pytest.raises(NotificationConfigError, match=r"unknown on-call group.*ghost"):
        resolve_routes(groups, [NotificationRouteDef("r", ("duty", "ghost"))])
    with pytest.raises(NotificationConfigError, match="quiet hours"):
        resolve_routes(groups, [NotificationRouteDef("r", ("duty",), quiet_hours="late")])
    with pytest.raises(NotificationConfigError, match="defined twice"):
        resolve_routes([*groups, OnCallGroupDef("duty")], [])


def test_quiet_hours_hold_only_the_less_urgent() -> None:
    (route,) = resolve_routes(
        [OnCallGroupDef("duty")],
        [
            NotificationRouteDef(
                "r", ("duty",), quiet_hours="22:00-07:00", quiet_below=AlarmPriority.MEDIUM
            )
        ],
    )
    night = datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    zone = ZoneInfo("UTC")
    assert route.holds(AlarmPriority.LOW, night, zone)
    assert route.holds(AlarmPriority.MEDIUM, night, zone)
    assert not route.holds(AlarmPriority.HIGH, night, zone)
    assert not route.holds(AlarmPriority.LOW, night.replace(hour=12), zone)


def test_flood_gate_counts_per_group_over_a_sliding_window() -> None:
    gate = FloodGate(threshold=3, window_s=60)
    start = datetime(2026, 1, 15, tzinfo=UTC)
    assert [gate.admit("a", start + timedelta(seconds=i)) for i in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert gate.admit("b", start)  # another group is not flooded
    # Once the first ones fall out of the window the group may be told one by one again.
    assert gate.admit("a", start + timedelta(seconds=64))
    with pytest.raises(NotificationConfigError):
        FloodGate(0, 60)


def _notice(message: str = "Tank 1 level high", value: float = 4.8) -> Notification:
    notice = AlarmNotice(
        alarm="water.tank1.level.high",
        priority=AlarmPriority.HIGH,
        area="water",
        state=AlarmDisplayState.UNACKNOWLEDGED,
        time=datetime(2026, 1, 15, 21, 30, tzinfo=UTC),
        value=value,
        message=message,
        guidance=AlarmGuidance("inflow valve stuck", "overflow", "close V1 by hand"),
    )
    return Notification("e1", "water-oncall", notice, datetime(2026, 1, 15, 21, 30, tzinfo=UTC))


def test_headers_never_carry_line_breaks() -> None:
    assert header_text("a\r\nBcc: evil@x.example\u2028b") == "a Bcc: evil@x.example b"
    hostile = _notice("level high\r\nBcc: evil@x.example\r\nX-Injected: 1")
    assert "\n" not in subject(hostile) and "\r" not in subject(hostile)
    assert len(header_text("x" * 5000)) == 200


def test_plain_text_has_local_time_priority_value_and_guidance() -> None:
    text = plain_text(_notice(), BERLIN)
    assert "Time:        2026-01-15 22:30:00 CET" in text
    assert "Priority:    high" in text
    assert "Value:       4.8" in text
    assert "Area:        water" in text
    assert "Cause:       inflow valve stuck" in text
    assert "Consequence: overflow" in text
    assert "Action:      close V1 by hand" in text
    # A message cannot forge extra lines of the body.
    forged = plain_text(_notice("high\nAction: open every valve"), BERLIN)
    assert "\nAction: open every valve" not in forged


def test_json_body_is_exact_and_survives_a_nan_value() -> None:
    body = json_body(_notice(value=float("nan")))
    document = json.loads(body)
    assert document["value"] == "nan"
    assert document["time"] == "2026-01-15T21:30:00+00:00"
    assert document["guidance"]["action"] == "close V1 by hand"
    assert document["event_id"] == "e1" and document["type"] == "alarm"


def test_signature_verifies_and_rejects_a_tampered_body() -> None:
    body = json_body(_notice())
    signature = sign(b"k", body)
    assert verify(b"k", body, signature)
    assert not verify(b"k", body.replace(b"high", b"low!"), signature)
    assert not verify(b"other", body, signature)
