"""The city map's layers in headless Chromium: a click on a legend entry hides that asset type,
and the map's periodic refresh (a new figure from the server) keeps it hidden."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import BrowserContext

from controlcenter.automation import AssetDef, DistrictDef, GeoPoint
from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from hmi.server import HmiServer
from tests.hmi.conftest import hmi_context, serving_context
from tests.hmi.test_hmi_browser import log_in

DEADLINE_MS = 20_000
DISTRICT = DistrictDef(
    "d1",
    "Old Town",
    (GeoPoint(52.0, 5.0), GeoPoint(52.0, 5.02), GeoPoint(52.01, 5.02), GeoPoint(52.01, 5.0)),
)
ASSETS = (
    AssetDef("water.tank2", "reservoir", "water", "Tank 2", GeoPoint(52.005, 5.01), "d1"),
    AssetDef("waste.c1", "waste_container", "waste", "Container 1", GeoPoint(52.004, 5.012), "d1"),
    AssetDef("waste.c2", "waste_container", "waste", "Container 2", GeoPoint(52.006, 5.008), "d1"),
    AssetDef("env.aq1", "air_quality_station", "env", "Air 1", GeoPoint(52.007, 5.015), "d1"),
)
VISIBILITY = """(uid) => {
    const gd = document.querySelector('#map-graph .js-plotly-plot');
    const trace = gd._fullData.find((t) => t.uid === uid);
    return trace === undefined ? 'missing' : String(trace.visible);
}"""


@pytest.fixture
def map_server(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
) -> Iterator[HmiServer]:
    context = hmi_context(live_view, history, journal, assets=ASSETS, districts=(DISTRICT,))
    with serving_context(context, login_sessions) as server:
        yield server


@pytest.mark.timeout(60)
async def test_a_hidden_layer_stays_hidden_across_the_maps_refresh(
    map_server: HmiServer,
    browser_context: BrowserContext,
    operator_credentials: tuple[str, str],
) -> None:
    page = await browser_context.new_page()
    # A script error in plotly (a trace uid it cannot put in a CSS selector) stops the whole
    # Dash renderer: every later display then never draws.
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on(
        "console",
        lambda message: script_errors.append(message.text) if message.type == "error" else None,
    )
    await log_in(page, map_server.url, *operator_credentials)
    await page.wait_for_url(map_server.url + "/")
    await page.goto(map_server.url + "/map")
    await page.wait_for_selector("#map-graph .legend .traces", timeout=DEADLINE_MS)
    legend = await page.eval_on_selector("#map-graph .legend", "(svg) => svg.textContent")
    assert "click one to hide or show it" in legend
    assert "Waste" in legend and "Environment" in legend  # the domains' group titles
    assert await page.evaluate(VISIBILITY, "type-waste_container") == "true"
    entry = page.locator("#map-graph .legend .traces", has_text="Waste container")
    await entry.locator(".legendtoggle").click()
    await page.wait_for_function(
        f"() => ({VISIBILITY})('type-waste_container') === 'legendonly'", timeout=DEADLINE_MS
    )
    # Only that type: the other layers, of its domain group's neighbours too, stay shown.
    assert await page.evaluate(VISIBILITY, "type-reservoir") == "true"
    assert await page.evaluate(VISIBILITY, "type-air_quality_station") == "true"
    # The next refresh replaces the figure with the server's new one...
    await page.evaluate(
        "() => { window.shownBefore = document.querySelector('#map-graph .js-plotly-plot').data; }"
    )
    await page.wait_for_function(
        "() => document.querySelector('#map-graph .js-plotly-plot').data !== window.shownBefore",
        timeout=DEADLINE_MS,
    )
    # ...and the operator's choice stands.
    assert await page.evaluate(VISIBILITY, "type-waste_container") == "legendonly"
    assert await page.evaluate(VISIBILITY, "type-reservoir") == "true"
    assert script_errors == []
