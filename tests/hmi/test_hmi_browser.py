"""The HMI in headless Chromium: login, the tags display with quality marking, a tag's trend,
nothing loaded from outside, logout."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request

from controlcenter.model import Event, EventKind
from hmi.server import HmiServer

NUMBER = r"^-?\d+\.\d{2}$"
DEADLINE_MS = 20_000


async def log_in(page: Page, base_url: str, name: str, password: str) -> None:
    await page.goto(base_url + "/")
    await page.wait_for_url(base_url + "/login")
    await page.fill("#username", name)
    await page.fill("#password", password)
    await page.click("#login")


def audit_messages(events: list[Event]) -> list[str]:
    return [f"{e.user}: {e.message}" for e in events if e.kind is EventKind.AUDIT]


async def test_unauthenticated_requests_are_redirected_or_refused(
    hmi_server: HmiServer, browser_context: BrowserContext
) -> None:
    client = browser_context.request
    page = await client.get(hmi_server.url + "/", max_redirects=0)
    assert page.status == 302
    assert page.headers["location"].endswith("/login")

    update = await client.post(
        hmi_server.url + "/_dash-update-component",
        data='{"output": "trends-graph.figure", "inputs": []}',
        headers={"Content-Type": "application/json"},
    )
    assert update.status == 401
    layout = await client.get(hmi_server.url + "/_dash-layout")
    assert layout.status == 401


async def test_wrong_password_stays_on_login_and_is_journaled(
    hmi_server: HmiServer,
    browser_context: BrowserContext,
    operator_credentials: tuple[str, str],
    journal_events: list[Event],
) -> None:
    name, _ = operator_credentials
    page = await browser_context.new_page()
    await log_in(page, hmi_server.url, name, "not-the-password")

    await page.wait_for_selector("#login-error")
    assert page.url == hmi_server.url + "/login"
    assert "Invalid user name or password" in await page.inner_text("#login-error")
    assert any(m.startswith(f"{name}: login refused") for m in audit_messages(journal_events))
    assert not any("login as" in m for m in audit_messages(journal_events))


async def test_operator_sees_tags_and_their_trend_served_only_locally_then_logs_out(
    hmi_server: HmiServer,
    browser_context: BrowserContext,
    operator_credentials: tuple[str, str],
    journal_events: list[Event],
    trend_windows: list[tuple[datetime | None, datetime | None]],
) -> None:
    requested: list[str] = []
    problems: list[str] = []
    browser_context.on("request", lambda request: _remember(requested, request))
    page = await browser_context.new_page()
    page.on("console", lambda message: _remember_error(problems, message))
    page.on("pageerror", lambda error: problems.append(str(error)))
    name, password = operator_credentials

    await log_in(page, hmi_server.url, name, password)
    await page.wait_for_url(hmi_server.url + "/")
    assert f"{name}: login as operator from 127.0.0.1" in audit_messages(journal_events)
    await page.wait_for_selector("#user-name")
    assert await page.inner_text("#user-name") == name
    assert await page.inner_text("#user-role") == "operator"

    # The tags display: a featured tile shows a plain number with 2 decimals.
    await page.click("#nav-tags")
    await page.wait_for_url(hmi_server.url + "/tags")
    level = "#tags-tile-water-tank1-level .live-text"
    await page.wait_for_function(
        "([selector, pattern]) => new RegExp(pattern).test("
        "document.querySelector(selector)?.textContent ?? '')",
        arg=[level, NUMBER],
        timeout=DEADLINE_MS,
    )
    assert await page.inner_text("#tags-tile-water-pump1-running .live-text") in {"ON", "OFF"}

    # Bad quality is marked by class, label and a colour different from a good tile.
    bad_tile, good_tile = "#tags-tile-water-tank2-level", "#tags-tile-water-tank1-level"
    assert "q-bad" in (await page.get_attribute(bad_tile, "class") or "")
    assert "bad:comm_failure" in (await page.get_attribute(bad_tile, "title") or "")
    assert "BAD" in await page.inner_text(bad_tile)
    assert await page.inner_text(f"{bad_tile} .live-text") == "—"
    border = "(element) => getComputedStyle(element).borderTopColor"
    assert await page.eval_on_selector(bad_tile, border) != await page.eval_on_selector(
        good_tile, border
    )
    assert "q-good" in (await page.get_attribute(good_tile, "class") or "")

    # The table lists every tag; abnormal quality first on request.
    assert await page.locator("#tags-table-body tr").count() == 4
    await page.click("#tags-abnormal-first input")
    await page.wait_for_function(
        "() => document.querySelector('#tags-table-body tr td')?.textContent"
        " === 'water.tank2.level'",
        timeout=DEADLINE_MS,
    )
    second = page.locator("#tags-table-body tr").nth(1)
    assert "water.main.pressure" in await second.inner_text()
    assert "q-uncertain" in (await second.locator(".live-value").get_attribute("class") or "")

    # A tag's link opens its trend, on the plant's (simulated, year 2030) time axis.
    await page.click("#tags-table-body a[href='/trends?tags=water.tank1.level']")
    await page.wait_for_url(hmi_server.url + "/trends?tags=water.tank1.level*")
    await page.wait_for_function(
        "() => { const plot = document.querySelector('#trends-graph .js-plotly-plot');"
        " return plot && plot.data && plot.data.length > 0 && plot.data[0].x.length > 3; }",
        timeout=DEADLINE_MS,
    )
    trace_name, first_time = await page.evaluate(
        "() => { const trace = document.querySelector('#trends-graph .js-plotly-plot').data[0];"
        " return [trace.name, String(trace.x[0])]; }"
    )
    assert trace_name == "water.tank1.level [m]"
    assert first_time.startswith("2030-01-01")
    # The window ends at the newest sample (simulated clock), not at the wall clock.
    start, end = trend_windows[-1]
    assert start is not None
    assert end is not None
    assert end.year == 2030
    assert end - start == timedelta(hours=1)

    # Logging out ends the session: back to the login page, data requests refused. (A timer's
    # request in flight at that moment is refused too: only problems before it count.)
    problems_before_logout = list(problems)
    await page.click(".logout-button")
    await page.wait_for_url(hmi_server.url + "/login")
    assert f"{name}: logout from 127.0.0.1" in audit_messages(journal_events)
    after = await browser_context.request.get(hmi_server.url + "/_dash-layout")
    assert after.status == 401

    assert requested, "no request recorded"
    foreign = [url for url in requested if not _is_local(url)]
    assert foreign == []
    assert problems_before_logout == []


async def test_page_returns_to_login_when_session_ends(
    hmi_server: HmiServer,
    browser_context: BrowserContext,
    operator_credentials: tuple[str, str],
) -> None:
    page = await browser_context.new_page()
    await log_in(page, hmi_server.url, *operator_credentials)
    await page.wait_for_selector("#user-name")

    await browser_context.clear_cookies()

    await page.wait_for_url(hmi_server.url + "/login", timeout=DEADLINE_MS)


def _remember(requested: list[str], request: Request) -> None:
    requested.append(request.url)


def _remember_error(problems: list[str], message: ConsoleMessage) -> None:
    if message.type == "error":
        problems.append(message.text)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob"}:
        return True
    return parts.scheme == "http" and parts.hostname == "127.0.0.1"
