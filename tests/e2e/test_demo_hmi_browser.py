"""The demo's HMI in headless Chromium: log in and watch the tank level move."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext

from controlcenter.app import HmiOptions
from controlcenter.demo import Demo, DemoOptions
from controlcenter.model import EventKind, Role
from controlcenter.users import UserStore
from historian.store import SqlHistorian

LEVEL_TILE = "#value-water-tank1-level"


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_hmi_shows_a_moving_level_from_the_running_demo(
    tmp_path: Path, browser_context: BrowserContext
) -> None:
    users_path = tmp_path / "users.json"
    UserStore(users_path).add_user("olga", "tank-farm-operator", Role.OPERATOR)
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    hmi = HmiOptions(users_path=users_path, port=0)
    demo = Demo(DemoOptions(speed=60.0, db_url=db_url, hmi=hmi))
    stop = asyncio.Event()
    running = asyncio.create_task(demo.run(stop))
    try:
        await asyncio.wait_for(demo.ready.wait(), 15)
        assert demo.center is not None
        url = demo.center.hmi_url
        requested: list[str] = []
        page = await browser_context.new_page()
        page.on("request", lambda request: requested.append(request.url))

        await page.goto(url)
        await page.fill("#username", "olga")
        await page.fill("#password", "tank-farm-operator")
        await page.click("#login")

        tile = page.locator(LEVEL_TILE)
        await tile.wait_for(timeout=15_000)
        await page.wait_for_function(
            "s => /^\\d+\\.\\d\\d$/.test(document.querySelector(s)?.textContent ?? '')",
            arg=LEVEL_TILE,
            timeout=15_000,
        )
        first = await tile.text_content()
        assert first is not None and 0 <= float(first) <= 5
        # At 60x the level moves by centimetres per second of wall time: wait for a new value.
        await page.wait_for_function(
            "([s, v]) => { const t = document.querySelector(s)?.textContent ?? '';"
            " return /^\\d+\\.\\d\\d$/.test(t) && t !== v; }",
            arg=[LEVEL_TILE, first],
            timeout=20_000,
        )
        second = await tile.text_content()
        assert second is not None and second != first
        assert all(u.startswith(url.rstrip("/")) for u in requested), [
            u for u in requested if not u.startswith(url.rstrip("/"))
        ]
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)

    store = SqlHistorian(db_url)
    try:
        events = store.read_events()
    finally:
        store.close()
    assert any(e.kind is EventKind.AUDIT and e.user == "olga" for e in events)
