"""Trends against the simulated city: a zoomed trend keeps its range across a reload (and the
historian is asked again for that range), alarm and command markers appear on the time axis,
and the CSV export downloads with a login and is refused without one."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from controlcenter.model import CommandStatus, Role, User
from tests.e2e.hmi_city_kit import USERS, HmiCity, hmi_city, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SPEED = 5.0
"""Five simulated seconds per second: a few minutes of history within the test."""
LEVEL = "water.tank2.level"
RUN = "water.ps1.pump1.run_cmd"
FAULT = "water.ps1.pump1.fault"
PLOT = "#trends-graph .js-plotly-plot"
DEADLINE_MS = 30_000


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HmiCity]:
    """The water network and a center with its HMI, shared by the module's tests."""
    async with hmi_city(
        tmp_path_factory.mktemp("trends"), domains=frozenset({"water"}), speed=SPEED
    ) as city:
        yield city


async def until(what: str, check: Callable[[], object], timeout_s: float = 30.0) -> object:
    """Poll ``check`` (in a thread: it may read the database) until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(check)
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def plotted(page: Page, minimum: int) -> None:
    await page.wait_for_function(
        f"(n) => {{ const p = document.querySelector('{PLOT}');"
        " return p && p.data && p.data.length > 0 && p.data[0].x.length >= n; }",
        arg=minimum,
        timeout=DEADLINE_MS,
    )


async def zoom(page: Page, low: str, high: str) -> None:
    """Zoom as a drag on the plot does: plotly relayouts the x axis and reports the range, and
    the display puts it in the URL. A display still busy with its first drawings may redraw
    over a zoom made too early; the operator then drags again, and so does this."""
    deadline = time.monotonic() + DEADLINE_MS / 1000
    while True:
        await page.evaluate(
            f"([a, b]) => Plotly.relayout(document.querySelector('{PLOT}'),"
            " {'xaxis.range[0]': a, 'xaxis.range[1]': b})",
            [low, high],
        )
        try:
            await page.wait_for_url("**start=**", timeout=5_000)
            return
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise


def local(text: str) -> datetime:
    """A plotly axis time (site-local, no offset) as a naive datetime."""
    return datetime.fromisoformat(str(text).replace(" ", "T")[:26])


async def test_a_zoomed_trend_keeps_its_range_across_a_reload(
    kit: HmiCity, browser_context: BrowserContext
) -> None:
    zone = ZoneInfo(kit.site.site.timezone)
    await until(
        "a few minutes of history",
        lambda: len(kit.center.store.read_raw(LEVEL)) >= 60,
        timeout_s=60,
    )
    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.VIEWER, f"/trends?tags={LEVEL}&period=15m")
    await plotted(page, 40)
    xs = await page.evaluate(f"() => document.querySelector('{PLOT}').data[0].x.map(String)")
    low, high = xs[len(xs) // 4], xs[3 * len(xs) // 4]

    await zoom(page, low, high)
    query = parse_qs(urlsplit(page.url).query)
    start = datetime.fromisoformat(query["start"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(query["end"][0].replace("Z", "+00:00"))
    assert abs(start - local(low).replace(tzinfo=zone).astimezone(UTC)) < timedelta(seconds=1)
    assert abs(end - local(high).replace(tzinfo=zone).astimezone(UTC)) < timedelta(seconds=1)
    assert query["tags"] == [LEVEL]

    async def drawn_for_the_zoom() -> list[datetime]:
        # Redrawn from a new query: every point lies in the zoomed range (the first drawing
        # held 15 minutes of points).
        await page.wait_for_function(
            f"([a, b]) => {{ const p = document.querySelector('{PLOT}');"
            " if (!p || !p.data || !p.data[0].x.length) return false;"
            " const x = p.data[0].x.map(v => String(v).replace(' ', 'T'));"
            " return x.every(v => v >= a.replace(' ', 'T').slice(0, 19)"
            " && v <= b.replace(' ', 'T').slice(0, 23) + '9'); }",
            arg=[low, high],
            timeout=DEADLINE_MS,
        )
        shown = await page.evaluate(
            f"() => document.querySelector('{PLOT}').layout.xaxis.range.map(String)"
        )
        return [local(one) for one in shown]

    before = await drawn_for_the_zoom()
    await page.reload()
    await page.wait_for_selector(PLOT)
    await plotted(page, 5)
    after = await drawn_for_the_zoom()

    assert after == before
    assert abs(after[0] - local(low)) < timedelta(seconds=1)
    assert abs(after[1] - local(high)) < timedelta(seconds=1)
    assert await page.input_value("#trends-start") == local(low).strftime("%Y-%m-%d %H:%M:%S")
    assert "following" not in await page.inner_text("#trends-range")
    assert "start=" in page.url  # the range is still in the URL


async def test_alarm_and_command_markers_on_the_time_axis(
    kit: HmiCity, browser_context: BrowserContext
) -> None:
    olga = User(USERS[Role.OPERATOR], Role.OPERATOR)
    selection = await kit.center.commands.select(RUN, olga)
    result = await kit.center.commands.operate(selection.selection_id, olga, True, "trend e2e")
    assert result.status is CommandStatus.CONFIRMED, result.reason
    water = kit.city.water
    assert water is not None
    water.trip_pump(1, 1)
    await until(
        "the fault alarm journaled",
        lambda: [t for t in kit.center.store.read_alarm_journal() if t.tag == FAULT],
    )
    await until(
        "the command journaled",
        lambda: [r for r in kit.center.store.read_commands() if r.command.tag == RUN],
    )

    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.OPERATOR, f"/trends?tags={RUN},{FAULT}&period=15m")
    await page.wait_for_function(
        f"() => {{ const p = document.querySelector('{PLOT}'); if (!p || !p.data) return false;"
        " const m = p.data.filter(t => t.name === 'Alarms' || t.name === 'Commands');"
        " return m.length === 2 && m.every(t => t.x.length > 0); }",
        timeout=DEADLINE_MS,
    )
    texts = await page.evaluate(
        f"() => Object.fromEntries(document.querySelector('{PLOT}').data"
        ".filter(t => t.text).map(t => [t.name, t.text]))"
    )
    assert any(f"Alarm {FAULT} (low): activate" in t for t in texts["Alarms"])
    assert any(
        f"Command {RUN} = True by {olga.name} (operator): confirmed" in t for t in texts["Commands"]
    ), texts["Commands"]
    names = await page.evaluate(f"() => document.querySelector('{PLOT}').data.map(t => t.name)")
    assert names[:2] == [f"{RUN} [state]", f"{FAULT} [state]"]
    water.reset_pump(1, 1)


async def test_csv_export_downloads_with_the_login_and_is_refused_without(
    kit: HmiCity, browser: Browser, browser_context: BrowserContext, tmp_path: Path
) -> None:
    page = await browser_context.new_page()
    await log_in(page, kit.url, Role.VIEWER, f"/trends?tags={LEVEL}&period=15m")
    await plotted(page, 5)
    await page.wait_for_function(
        "() => (document.querySelector('#trends-export')?.getAttribute('href') ?? '')"
        ".includes('start=')",
        timeout=DEADLINE_MS,
    )
    href = await page.get_attribute("#trends-export", "href")
    assert href is not None

    async with page.expect_download() as info:
        await page.click("#trends-export")
    download = await info.value
    saved = tmp_path / "trend.csv"
    await download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert rows[0] == ["tag", "unit", "time_local", "time_utc", "value", "quality"]
    assert len(rows) > 10
    assert {row[0] for row in rows[1:]} == {LEVEL}
    # November in Amsterdam: local times carry +01:00, UTC times a Z, one hour apart.
    first = rows[1]
    assert first[2].endswith("+01:00") and first[3].endswith("Z")
    assert datetime.fromisoformat(first[2]) == datetime.fromisoformat(first[3])
    assert 0.0 <= float(first[4]) <= 10.0

    stranger = await browser.new_context()
    try:
        refused = await stranger.request.get(kit.url.rstrip("/") + href, max_redirects=0)
        assert refused.status == 302
        assert refused.headers["location"].endswith("/login")
        assert "time_utc" not in await refused.text()
    finally:
        await stranger.close()
