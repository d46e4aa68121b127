"""The alarm displays against the simulated city, in headless Chromium: a pump tripped in the
simulator appears in the banner within 3 s of its alarm's activation, is acknowledged with a
comment from the alarm list and leaves the banner's unacknowledged alarms; the journal shows
the acknowledgement with who and the comment; a viewer sees the actions disabled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from controlcenter.automation import AlarmAction, AlarmDisplayState
from controlcenter.model import Role, User
from hmi.alarm_actions import UNACKNOWLEDGED_STATES
from hmi.banner import alarm_list_href
from tests.e2e.hmi_city_kit import USERS, HmiCity, hmi_city, log_in

ALARM = "water.ps1.pump1.fault"
"""The demo site's alarm of a tripped pump 1 at booster station 1 (discrete, low priority)."""
COMMENT = "drive reset requested, crew on the way"
BANNER_DEADLINE_S = 3.0
WAIT_MS = 15_000
OPERATOR = User(USERS[Role.OPERATOR], Role.OPERATOR)


@pytest_asyncio.fixture(loop_scope="session")
async def kit(tmp_path: Path) -> AsyncIterator[HmiCity]:
    """The water network at real speed, scanned twice a second, with its center and HMI."""
    async with hmi_city(tmp_path, domains=frozenset({"water"}), scan_interval_s=0.5) as city:
        yield city


async def _poll(what: str, check: Callable[[], object], timeout_s: float = 20.0) -> float:
    """Poll ``check`` (a blocking callable) until true; the loop time when it became true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if await asyncio.to_thread(check):
            return loop.time()
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_tripped_pump_from_banner_to_acknowledged_in_the_journal(
    kit: HmiCity, browser: Browser
) -> None:
    alarms = kit.center.alarms
    assert ALARM in {definition.name for definition in kit.site.alarm_defs()}
    assert await asyncio.to_thread(lambda: alarms.state(ALARM).display) is (
        AlarmDisplayState.NORMAL
    )
    # A quiet start: whatever the city raised while starting is acknowledged, so that the
    # banner's few places are free for the alarm under test.
    standing = await asyncio.to_thread(alarms.states, displays=UNACKNOWLEDGED_STATES)
    if standing:
        await asyncio.to_thread(
            alarms.acknowledge, [d.name for d, _ in standing], OPERATOR, "before the test"
        )

    context = await browser.new_context()
    try:
        page = await context.new_page()
        await log_in(page, kit.url, Role.OPERATOR, "/alarms")
        await page.wait_for_selector("#alarms-table")
        assert await page.is_enabled("#alarms-ack")
        # Wait until the page listens to the live stream: from then on alarms reach it.
        await page.wait_for_function("() => window.hmiLive && window.hmiLive.connected")

        banner_link = f'#alarm-banner a[href="{alarm_list_href(alarm=ALARM)}"]'
        shown = asyncio.create_task(page.wait_for_selector(banner_link, timeout=WAIT_MS))
        assert kit.city.water is not None
        kit.city.water.trip_pump(1, 1)
        active_at = await _poll("the alarm's activation", lambda: alarms.state(ALARM).active)
        await shown
        delay = asyncio.get_running_loop().time() - active_at
        assert delay < BANNER_DEADLINE_S, f"banner showed the alarm {delay:.2f} s after it came"
        assert "low" in (await page.text_content(banner_link) or "")

        # The list shows it too; open it, read its guidance, acknowledge with a comment.
        row_button = f'#alarms-table button.alarm-open:text-is("{ALARM}")'
        await page.click(row_button, timeout=WAIT_MS)
        await page.wait_for_selector(f'#alarms-detail-name:text-is("{ALARM}")')
        assert "Send maintenance" in await page.inner_text("#alarms-guidance-action")
        await page.fill("#alarms-comment", COMMENT)
        await page.click("#alarms-ack")
        await page.wait_for_selector(f'#alarms-ack-result:has-text("Acknowledged 1: {ALARM}")')
        assert (await asyncio.to_thread(alarms.state, ALARM)).acknowledged
        await page.wait_for_selector(banner_link, state="detached", timeout=WAIT_MS)
        await page.wait_for_selector(
            f'#alarms-table tr.state-acknowledged button:text-is("{ALARM}")', timeout=WAIT_MS
        )
        journal = await asyncio.to_thread(kit.center.store.read_alarm_journal, alarm=ALARM)
        ack = journal[-1]
        assert (ack.action, ack.user, ack.comment) == (
            AlarmAction.ACKNOWLEDGE,
            OPERATOR.name,
            COMMENT,
        )

        # The journal display tells it: who, and the comment.
        await page.click("#nav-journal")
        await page.wait_for_selector("#journal-table")
        await page.fill("#journal-text", "crew on the way")
        await page.press("#journal-text", "Enter")
        row = page.locator("tr.journal-alarm", has_text=COMMENT)
        await row.first.wait_for(timeout=WAIT_MS)
        text = await row.first.inner_text()
        assert ALARM in text and OPERATOR.name in text and "acknowledge" in text
    finally:
        await context.close()

    # A viewer sees the list, with every action disabled, and no journal in the navigation.
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await log_in(page, kit.url, Role.VIEWER, "/alarms")
        await page.wait_for_selector(f'#alarms-table button.alarm-open:text-is("{ALARM}")')
        for button in (
            "#alarms-ack",
            "#alarms-shelve",
            "#alarms-unshelve",
            "#alarms-out-of-service",
            "#alarms-return",
        ):
            assert await page.is_disabled(button), button
        assert await page.locator("#nav-journal").count() == 0
    finally:
        await context.close()
