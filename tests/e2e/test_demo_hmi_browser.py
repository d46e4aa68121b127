"""The demo's HMI in headless Chromium: log in, open the tags display and watch the tank level
move."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext

from controlcenter.model import EventKind, Role
from controlcenter.security.users import UserStore
from historian.store import SqlHistorian

LEVEL_TILE = "#tags-tile-water-tank1-level .live-text"
"""The featured level's value on the all-tags display, kept current by the live stream."""
CLI = str(Path(sys.executable).with_name("controlcenter"))


@pytest.mark.e2e
@pytest.mark.timeout(240)
async def test_hmi_of_the_demo_command_shows_a_moving_level(
    tmp_path: Path, browser_context: BrowserContext
) -> None:
    """What `make run` starts: `controlcenter demo`, here on a free port and its own files."""
    users_path = tmp_path / "users.json"
    UserStore(users_path).add_user("olga", "tank-farm-operator", Role.OPERATOR)
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    process = await asyncio.create_subprocess_exec(
        CLI,
        "demo",
        "--speed",
        "2",
        # The morning peak: demand moves the level whether the fill pump runs or not.
        "--start",
        "2026-11-21T07:30:00+01:00",
        "--port",
        "0",
        "--base-port",
        "0",
        "--control",
        "127.0.0.1:0",
        "--db",
        db_url,
        "--users",
        str(users_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = await asyncio.wait_for(read_hmi_url(process), 90)
        requested: list[str] = []
        page = await browser_context.new_page()
        page.on("request", lambda request: requested.append(request.url))

        await page.goto(url)
        await page.fill("#username", "olga")
        await page.fill("#password", "tank-farm-operator")
        await page.click("#login")
        await page.wait_for_selector("#nav-tags")
        await page.click("#nav-tags")

        tile = page.locator(LEVEL_TILE)
        await tile.wait_for(timeout=60_000)
        await page.wait_for_function(
            "s => /^\\d+\\.\\d\\d$/.test(document.querySelector(s)?.textContent ?? '')",
            arg=LEVEL_TILE,
            timeout=60_000,
        )
        first = await tile.text_content()
        assert first is not None and 0 <= float(first) <= 5
        # At the morning peak the level moves by millimetres per simulated second.
        await page.wait_for_function(
            "([s, v]) => { const t = document.querySelector(s)?.textContent ?? '';"
            " return /^\\d+\\.\\d\\d$/.test(t) && t !== v; }",
            arg=[LEVEL_TILE, first],
            timeout=60_000,
        )
        second = await tile.text_content()
        assert second is not None and second != first
        foreign = [u for u in requested if not u.startswith(url.rstrip("/"))]
        assert foreign == []
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr

    store = SqlHistorian(db_url)
    try:
        events = store.read_events()
    finally:
        store.close()
    assert any(e.kind is EventKind.AUDIT and e.user == "olga" for e in events)


async def read_hmi_url(process: asyncio.subprocess.Process) -> str:
    """The URL the demo prints once its HMI listens."""
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        match = re.search(r"HMI: (http://\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("the demo ended without printing its HMI URL")
