"""Level 1 against the simulated city, in headless Chromium: a viewer sees the overview's
figures and its small map; a device fault injected in the simulator turns its asset's marker
abnormal (colour and words) on the map; a click on a marker opens the asset's faceplate; and
none of it makes a request that leaves 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from controlcenter.model import Role
from plc_sim.device import FaultKind
from tests.e2e.hmi_city_kit import HmiCity, hmi_city, log_in

FAULTY_DEVICE = "water.ps1_rtu"
FAULTY_ASSET = "water.ps1"
WAIT_MS = 30_000
"""Comm loss is Bad after three failed scans (1 s each) plus a read timeout, and the map
refreshes every 5 s: 30 s leaves room on a loaded machine."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HmiCity]:
    """The water network with its center and HMI, shared by this module's tests."""
    tmp_path: Path = tmp_path_factory.mktemp("hmi-map")
    async with hmi_city(tmp_path, domains=frozenset({"water"})) as city:
        yield city


async def _page(browser: Browser, kit: HmiCity, role: Role, path: str) -> tuple[Page, list[str]]:
    context = await browser.new_context()
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await log_in(page, kit.url, role, path)
    return page, requested


def _all_local(urls: list[str]) -> list[str]:
    """The URLs that leave 127.0.0.1 (none expected)."""
    return [url for url in urls if urlsplit(url).hostname not in ("127.0.0.1", None)]


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_viewer_sees_the_city_at_a_glance(kit: HmiCity, browser: Browser) -> None:
    page, requested = await _page(browser, kit, Role.VIEWER, "/")
    try:
        await page.wait_for_selector("#overview-water")
        pumps = await page.inner_text("#ov-water-pumps")
        # Three stations of two pumps, and tank 1's feed pump.
        assert "Pumps running" in pumps and " of 7" in pumps
        await page.wait_for_selector('#overview-water [data-tag="water.plant.outflow"]')
        await page.wait_for_selector("#ov-water-lowest a[href^='/asset/water.tank']")
        # Only the simulated domain is shown; the others are not in this site.
        assert await page.query_selector("#overview-heat") is None
        health = await page.inner_text("#overview-health")
        assert "Water:" in health and "devices connected" in health
        # The small map is drawn (an SVG picture the browser decoded) and links to the map.
        await page.wait_for_function(
            "() => { const m = document.querySelector('img#overview-map');"
            " return m !== null && m.complete && m.naturalWidth > 0; }"
        )
        assert "City map:" in (await page.get_attribute("#overview-map", "alt") or "")
        assert await page.get_attribute(".ov-map-link", "href") == "/map"
        await page.click("#overview-water h2 a")
        await page.wait_for_function("() => window.location.pathname === '/water'")
        assert _all_local(requested) == []
    finally:
        await page.context.close()


async def _marker_position(page: Page, asset: str) -> tuple[float, float]:
    """Where the asset's marker is on the page (plotly's axes map degrees to pixels)."""
    point = await page.evaluate(
        """(asset) => {
            const gd = document.querySelector('#map-graph .js-plotly-plot');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect();
            for (const trace of gd.data) {
                const i = (trace.customdata || []).indexOf(asset);
                if (i >= 0) {
                    return [box.left + xa._offset + xa.l2p(trace.x[i]),
                            box.top + ya._offset + ya.l2p(trace.y[i])];
                }
            }
            return null;
        }""",
        asset,
    )
    assert point is not None, asset
    return float(point[0]), float(point[1])


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_device_fault_shows_on_its_marker(kit: HmiCity, browser: Browser) -> None:
    page, requested = await _page(browser, kit, Role.OPERATOR, "/map")
    try:
        await page.wait_for_selector("#map-graph .scatterlayer")
        assert await page.query_selector(f'[data-asset="{FAULTY_ASSET}"]') is None
        kit.city.set_fault(FAULTY_DEVICE, FaultKind.OFFLINE)
        try:
            # Bad data shows first (the failed scans); the device is lost after three of them.
            item = await page.wait_for_selector(
                f'#map-attention [data-asset="{FAULTY_ASSET}"]:has-text("COMM LOST")',
                timeout=WAIT_MS,
            )
            assert item is not None
            assert "COMM LOST" in await item.inner_text()
            # On the map itself: the marker's label in words and the abnormal colour.
            await page.wait_for_function(
                """() => [...document.querySelectorAll('#map-graph .textpoint text')]
                    .some((t) => t.textContent.startsWith('Booster station 1: COMM LOST'))""",
                timeout=WAIT_MS,
            )
            colour = await page.evaluate(
                """(asset) => {
                    const gd = document.querySelector('#map-graph .js-plotly-plot');
                    for (const trace of gd.data) {
                        const i = (trace.customdata || []).indexOf(asset);
                        if (i >= 0) return trace.marker.color[i];
                    }
                    return null;
                }""",
                FAULTY_ASSET,
            )
            assert colour == "#a1008f"
        finally:
            kit.city.clear_fault(FAULTY_DEVICE)
        assert _all_local(requested) == []
    finally:
        await page.context.close()


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_click_on_a_marker_opens_the_faceplate(kit: HmiCity, browser: Browser) -> None:
    page, requested = await _page(browser, kit, Role.VIEWER, "/map")
    try:
        await page.wait_for_selector("#map-graph .scatterlayer")
        # The asset whose marker stands farthest from any other, so the click is unambiguous.
        names = [asset.name for asset in kit.site.asset_defs() if asset.position is not None]
        positions = {name: await _marker_position(page, name) for name in names}

        def clearance(name: str) -> float:
            x, y = positions[name]
            return min(math.dist((x, y), positions[o]) for o in names if o != name)

        target = max(names, key=clearance)
        assert clearance(target) > 12, "markers too close to click one"
        x, y = positions[target]
        await page.mouse.move(x, y)
        await page.mouse.click(x, y)
        await page.wait_for_function(
            "(path) => window.location.pathname === path", arg=f"/asset/{target}"
        )
        # Back returns to the map (client-side navigation).
        await page.go_back()
        await page.wait_for_function("() => window.location.pathname === '/map'")
        assert _all_local(requested) == []
    finally:
        await page.context.close()
