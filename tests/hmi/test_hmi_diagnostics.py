"""Diagnostics display: the rows (a device down is one line with its reason, shares of points
per quality, abnormal first, domain filter), the table's words, its pages (every device on one,
a page of bounded size however large the city), and the refresh callback refused on the server
to a role without diagnostics."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from dash.development.base_component import Component

from controlcenter.automation import AssetDef
from controlcenter.model import (
    DataType,
    Event,
    Quality,
    Role,
    Sample,
    ScanDiagnostics,
    TagDef,
    User,
)
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from controlcenter.security.users import UserStore
from hmi.page import PageRequest
from hmi.pages import diagnostics as diagnostics_page
from hmi.pages.diagnostics import PAGE, device_rows, render_table
from hmi.server import HmiServer
from tests.hmi.conftest import (
    OPERATOR_NAME,
    OPERATOR_PASSWORD,
    SIM_EPOCH,
    hmi_context,
    serving_context,
)
from tests.hmi.http_support import log_in, send

NOW = SIM_EPOCH + timedelta(hours=1)
MAINTENANCE, MAINTENANCE_PASSWORD = "mats", "maintenance passphrase 9"


def diagnostics(device: str, **changes: Any) -> ScanDiagnostics:
    values: dict[str, Any] = {
        "device": device,
        "healthy": True,
        "scans": 100,
        "scans_on_time": 99,
        "failed_scans": 0,
        "last_good_scan": NOW - timedelta(seconds=2),
        "last_error": "",
        "latency_mean_ms": 12.0,
        "latency_p95_ms": 30.0,
        "connected": True,
    }
    values.update(changes)
    return ScanDiagnostics(**values)


class Devices:
    """DeviceHealthView with fixed entries."""

    def __init__(self, entries: list[ScanDiagnostics]) -> None:
        self.entries = entries

    def diagnostics(self) -> list[ScanDiagnostics]:
        """The entries."""
        return self.entries


DOWN = diagnostics(
    "rtu2",
    healthy=False,
    connected=False,
    failed_scans=7,
    last_error="connection refused by 10.0.0.2:502",
    errors_by_kind={"not_connected": 6, "timeout": 1},
    reconnects=2,
    outages=3,
)
OK = diagnostics("rtu1")


def test_a_down_device_is_one_line_with_its_reason_and_comes_first(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal)
    rows = device_rows(context, [OK, DOWN], live_view.snapshot(), now=NOW)
    assert [row.device for row in rows] == ["rtu2", "rtu1"]
    down = rows[0]
    assert down.state == "Down" and down.abnormal
    assert down.reason == "connection refused by 10.0.0.2:502"
    assert down.errors == "not_connected 6, timeout 1" and down.reconnects == 2
    # rtu2 has one point (tank 2), Bad in the plant.
    assert (down.points, down.good, down.uncertain, down.bad) == (1, 0, 0, 1)
    ok = rows[1]
    # rtu1: level and pump Good, pressure Uncertain: abnormal, though the device is healthy.
    assert ok.state == "OK" and (ok.points, ok.good, ok.uncertain, ok.bad) == (3, 2, 1, 0)
    assert ok.abnormal and round(ok.share(ok.good)) == 67 and ok.age_s == 2.0
    html = json.dumps(render_table(context, rows).to_plotly_json(), default=str)
    assert "Down: connection refused by 10.0.0.2:502" in html
    assert "Good 67%" in html and "Uncertain 33%" in html and "Bad 100%" in html
    assert html.count("diagnostics-row") == 2


def test_a_healthy_device_with_good_points_is_not_abnormal_and_links_its_assets(
    history: HistoryReader, journal: EventJournal
) -> None:
    tags = (
        TagDef("water.ps1.pump1.running", "water.ps1", "c:1", DataType.BOOL),
        TagDef("lights.d1.c1.mode", "lights.d1.c1", "hr:1", DataType.INT),
    )

    class Live:
        def tags(self) -> tuple[TagDef, ...]:
            return tags

        def latest(self, tag: str) -> Sample:
            return self.snapshot()[tag]

        def snapshot(self) -> Mapping[str, Sample]:
            return {t.name: Sample(t.name, 1, Quality.good(), NOW, NOW) for t in tags}

    live = Live()
    context = hmi_context(
        live,
        history,
        journal,
        assets=(
            AssetDef("water.ps1", "booster_station", "water"),
            AssetDef("lights.d1.c1", "lighting_cabinet", "lights"),
        ),
    )
    entries = [diagnostics("water.ps1"), diagnostics("lights.d1.c1", stale_points=1)]
    rows = device_rows(context, entries, live.snapshot())
    by_device = {row.device: row for row in rows}
    assert not by_device["water.ps1"].abnormal and by_device["water.ps1"].assets == ("water.ps1",)
    assert by_device["lights.d1.c1"].state == "Stale points" and rows[0].device == "lights.d1.c1"
    filtered = device_rows(context, entries, live.snapshot(), domain="water")
    assert [row.device for row in filtered] == ["water.ps1"]
    assert device_rows(context, entries, live.snapshot(), domain="<script>") == []
    page = json.dumps(
        PAGE.render(
            hmi_context(live, history, journal, devices=Devices(entries), assets=context.assets),
            User("mats", Role.MAINTENANCE),
            PageRequest("/diagnostics", query={"domain": "water"}),
        ).to_plotly_json(),
        default=str,
    )
    assert "/asset/water.ps1" in page and "lights.d1.c1" not in page.split("diagnostics-table")[-1]


def test_a_device_never_scanned_says_never(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    context = hmi_context(live_view, history, journal)
    never = diagnostics("rtu1", last_good_scan=None, healthy=False, connected=True)
    (row, *_) = device_rows(context, [never], live_view.snapshot())
    assert row.state == "Failing" and row.age_s is None
    assert "never" in json.dumps(render_table(context, [row]).to_plotly_json(), default=str)


@pytest.fixture
def diagnostics_server(
    live_view: LiveView,
    history: HistoryReader,
    journal: EventJournal,
    login_sessions: LoginSessions,
    user_store: UserStore,
) -> Iterator[HmiServer]:
    user_store.add_user(MAINTENANCE, MAINTENANCE_PASSWORD, Role.MAINTENANCE)
    context = hmi_context(live_view, history, journal, devices=Devices([OK, DOWN]))
    with serving_context(context, login_sessions) as server:
        yield server


def refresh(base_url: str, cookie: str, domain: object) -> tuple[int, str]:
    """Fire the table's refresh as the 5 s timer does."""
    outputs = [
        ("diagnostics-table", "children"),
        ("diagnostics-summary", "children"),
        ("diagnostics-page", "data"),
        ("diagnostics-previous", "disabled"),
        ("diagnostics-next", "disabled"),
    ]
    payload = {
        "output": ".." + "...".join(f"{name}.{prop}" for name, prop in outputs) + "..",
        "outputs": [{"id": name, "property": prop} for name, prop in outputs],
        "inputs": [
            {"id": "diagnostics-refresh", "property": "n_intervals", "value": 3},
            {"id": "diagnostics-domain", "property": "value", "value": domain},
            {"id": "diagnostics-previous", "property": "n_clicks", "value": None},
            {"id": "diagnostics-next", "property": "n_clicks", "value": None},
        ],
        "state": [{"id": "diagnostics-page", "property": "data", "value": 0}],
        "changedPropIds": ["diagnostics-refresh.n_intervals"],
    }
    reply = send(
        base_url,
        "POST",
        "/_dash-update-component",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        cookie=cookie,
    )
    return reply.status, reply.body.decode()


def test_the_refresh_is_refused_to_an_operator_and_served_to_maintenance(
    diagnostics_server: HmiServer, journal_events: list[Event]
) -> None:
    url = diagnostics_server.url
    operator = log_in(url, OPERATOR_NAME, OPERATOR_PASSWORD).cookie()
    status, body = refresh(url, operator, "")
    assert status == 403 and "view_diagnostics" in body
    assert any("refused /_dash-update-component" in e.message for e in journal_events)
    maintenance = log_in(url, MAINTENANCE, MAINTENANCE_PASSWORD).cookie()
    status, body = refresh(url, maintenance, "")
    assert status == 200 and "connection refused by 10.0.0.2:502" in body
    assert "2 devices, 2 abnormal, 1 down" in body
    # A forged domain is ignored (all devices), never an error.
    status, body = refresh(url, maintenance, {"$ne": 1})
    assert status == 200 and "rtu1" in body


def components(tree: Any) -> int:
    """Dash components in a rendered tree (what the browser's renderer pays for)."""
    if isinstance(tree, list | tuple):
        return sum(components(child) for child in tree)
    if isinstance(tree, Component):
        return 1 + components(getattr(tree, "children", None))
    return 0


def shown_devices(table: Any) -> list[str]:
    """The device names of a rendered table's rows, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list | tuple):
            for child in node:
                walk(child)
        elif isinstance(node, Component):
            if getattr(node, "className", "") == "diagnostics-device":
                found.append(str(node.children))
            walk(getattr(node, "children", None))

    walk(table)
    return found


def test_a_large_city_is_shown_a_page_at_a_time_abnormal_first_and_counts_the_rest(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    many = [diagnostics(f"zz{number:03d}") for number in range(150)]
    down = diagnostics("zz149", healthy=False, connected=False, last_error="no route to host")
    context = hmi_context(live_view, history, journal, devices=Devices([*many[:149], down]))
    first = diagnostics_page.table_view(context, "", 0)
    shown = json.dumps(first.table.to_plotly_json(), default=str)
    assert shown.count("diagnostics-row") == diagnostics_page.PAGE_SIZE
    assert "Down: no route to host" in shown  # the last device by name, listed first
    assert "Devices 1 to 20 of 150" in shown and "(page 1 of 8); 130 on other pages" in shown
    assert first.summary == "150 devices, 1 abnormal, 1 down"
    assert (first.page, first.pages) == (0, 8)
    # Beyond the last page is the last page (10 devices); before the first, the first.
    last = diagnostics_page.table_view(context, "", 99)
    assert last.page == 7 and shown_devices(last.table) == [f"zz{n:03d}" for n in range(139, 149)]
    assert diagnostics_page.table_view(context, "", -5).page == 0


def test_the_pages_show_every_device_once_and_the_buttons_turn_them(
    live_view: LiveView, history: HistoryReader, journal: EventJournal
) -> None:
    names = [f"water.rtu{number:03d}" for number in range(45)]
    context = hmi_context(
        live_view, history, journal, devices=Devices([diagnostics(name) for name in names])
    )
    seen: list[str] = []
    page: object = 0
    for _ in range(3):
        table, _summary, page, previous_off, next_off = diagnostics_page.refreshed(
            context, "water", page, diagnostics_page.REFRESH_ID
        )
        seen += shown_devices(table)
        if next_off:
            break
        (_, _, page, previous_off, _) = diagnostics_page.refreshed(
            context, "water", page, diagnostics_page.NEXT_ID
        )
        assert not previous_off
    assert seen == names and page == 2
    # Back one page; a new domain starts at its first page; a forged page is the first.
    assert diagnostics_page.refreshed(context, "water", 2, diagnostics_page.PREVIOUS_ID)[2] == 1
    assert diagnostics_page.refreshed(context, "water", 2, diagnostics_page.DOMAIN_ID)[2] == 0
    assert diagnostics_page.refreshed(context, "water", {"$gt": 1}, None)[2] == 0
    (_, _, _, previous_off, next_off) = diagnostics_page.refreshed(context, "", 0, None)
    assert previous_off and not next_off
    # ?page=3 of the URL opens the third page (1-based); nonsense opens the first.
    user = User("mats", Role.MAINTENANCE)
    third = PAGE.render(context, user, PageRequest("/diagnostics", query={"page": "3"}))
    assert shown_devices(third) == names[40:]
    for forged in ("0", "-1", "x", "²", "9" * 40):
        opened = PAGE.render(context, user, PageRequest("/diagnostics", query={"page": forged}))
        assert shown_devices(opened) == names[:20]


class CountingLive:
    """A live view of ``tags`` (all Good) that counts the snapshots taken."""

    def __init__(self, tags: tuple[TagDef, ...]) -> None:
        self._tags = tags
        self.snapshots = 0

    def tags(self) -> tuple[TagDef, ...]:
        return self._tags

    def latest(self, tag: str) -> Sample:
        return Sample(tag, 1.0, Quality.good(), NOW, NOW)

    def snapshot(self) -> Mapping[str, Sample]:
        self.snapshots += 1
        return {t.name: Sample(t.name, 1.0, Quality.good(), NOW, NOW) for t in self._tags}


class CountingDevices(Devices):
    """Devices that count how often their diagnostics are read."""

    def __init__(self, entries: list[ScanDiagnostics]) -> None:
        super().__init__(entries)
        self.reads = 0

    def diagnostics(self) -> list[ScanDiagnostics]:
        """The entries, counted."""
        self.reads += 1
        return self.entries


def city(devices: int, history: HistoryReader, journal: EventJournal) -> Any:
    """A context of ``devices`` devices of 60 points each, one of ten down."""
    tags = tuple(
        TagDef(f"water.d{d}.p{p}", f"water.d{d}", f"hr:{p}", DataType.FLOAT)
        for d in range(devices)
        for p in range(60)
    )
    entries = [
        diagnostics(f"water.d{d}", healthy=d % 10 != 3, connected=d % 10 != 3)
        for d in range(devices)
    ]
    assets = tuple(AssetDef(f"water.d{d}", "booster_station", "water") for d in range(devices))
    live, health = CountingLive(tags), CountingDevices(entries)
    return hmi_context(live, history, journal, devices=health, assets=assets), live, health


def test_the_display_stays_the_same_size_as_the_city_grows_and_reads_each_source_once(
    history: HistoryReader, journal: EventJournal
) -> None:
    # The browser's cost grows faster than the number of elements: a city ten times larger
    # must draw a display of the same size (the rest is on other pages).
    user = User("mats", Role.MAINTENANCE)
    sizes = []
    for devices in (45, 450):
        context, live, health = city(devices, history, journal)
        shown = PAGE.render(context, user, PageRequest("/diagnostics"))
        sizes.append(components(shown))
        assert live.snapshots == 1 and health.reads == 1  # once per render, whatever the size
        assert len(shown_devices(shown)) == diagnostics_page.PAGE_SIZE
        down = sorted(f"water.d{d}" for d in range(devices) if d % 10 == 3)
        assert shown_devices(shown)[: len(down)] == down[:20]  # the down devices come first
        refreshed = diagnostics_page.refreshed(context, "", 0, diagnostics_page.REFRESH_ID)
        assert live.snapshots == 2 and health.reads == 2
        assert components(refreshed[0]) < 250
    assert sizes[0] == sizes[1] < 250
