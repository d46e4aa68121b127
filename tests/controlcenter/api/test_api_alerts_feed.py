"""The public CAP feed on the open-data app and the operators' list at /api/v1/alerts: only
messages for the population are public, each a valid CAP 1.2 message; the journal (real
SQLite) holds both audiences."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from alarms.cap import CAP_MEDIA_TYPE, CAP_NAMESPACE, AlertDesk
from controlcenter.api.open_data import OpenDataService, create_open_data
from controlcenter.model import Role
from controlcenter.ports import HistoryQueryReader
from controlcenter.security.ratelimit import RatePolicy
from tests.alarms import cap_spec
from tests.alarms.notify_testkit import FakeClock, activation
from tests.alarms.test_cap_messages import ASSETS, DISTRICTS, FLOOD, FLOOD_RULE, OZONE, OZONE_RULE
from tests.controlcenter.api.api_testkit import StoreJournal, center_kit

NOW = datetime(2030, 7, 1, 14, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
N = f"{{{CAP_NAMESPACE}}}"


def test_the_open_feed_has_public_alerts_only(tmp_path: Path) -> None:
    """Ozone (population) is on the feed and fetchable; flood (services) is not; unknown ids
    and parameters are refused; operators see both in /api/v1/alerts, citizens nothing."""
    api = center_kit(tmp_path)
    desk = AlertDesk(
        [OZONE_RULE, FLOOD_RULE],
        sender="testville",
        sender_name="Testville",
        assets=ASSETS,
        districts=DISTRICTS,
        journal=StoreJournal(api.store),
        clock=FakeClock(NOW),
    )
    service = OpenDataService(
        (),
        cast(HistoryQueryReader, None),
        k=5,
        timezone=ZoneInfo("Europe/Amsterdam"),
        site_name="Testville",
        now=lambda: NOW,
    )
    client = create_open_data(service, RatePolicy(1000, 1000), alerts=desk).test_client()
    empty = client.get("/open/v1/alerts")
    assert empty.status_code == 200 and ET.fromstring(empty.data).findall(f"{ATOM}entry") == []

    desk.on_transition(*activation(OZONE, NOW, value=245.0))
    desk.on_transition(*activation(FLOOD, NOW, value=4.8))
    feed = client.get("/open/v1/alerts")
    assert feed.content_type.startswith("application/atom+xml")
    [entry] = ET.fromstring(feed.data).findall(f"{ATOM}entry")
    [alert] = list(entry.find(f"{ATOM}content"))  # type: ignore[arg-type]
    assert cap_spec.problems(alert) == []
    assert alert.findtext(f"{N}info/{N}event") == "Ozone"
    identifier = alert.findtext(f"{N}identifier")
    one = client.get(f"/open/v1/alerts/{identifier}")
    assert one.status_code == 200 and one.content_type.startswith(CAP_MEDIA_TYPE)
    assert cap_spec.problems(one.data) == []

    [restricted] = [a for a in desk.messages() if a.identifier != identifier]
    assert client.get(f"/open/v1/alerts/{restricted.identifier}").status_code == 404
    assert client.get("/open/v1/alerts/../../etc/passwd").status_code == 404
    assert client.get("/open/v1/alerts?scope=Restricted").status_code == 400

    listed = api.get("/api/v1/alerts", api.token(Role.VIEWER))
    assert listed.status_code == 200
    messages = [a["message"] for a in listed.get_json()["alerts"]]
    assert any("for the population" in m for m in messages)
    assert any("for the emergency services" in m for m in messages)
    assert api.get("/api/v1/alerts").status_code == 401
