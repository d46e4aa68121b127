"""The HMI in headless Chromium: login, live tiles, trend, quality marking, offline, logout."""

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
        data='{"output": "trend.figure", "inputs": []}',
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


async def test_operator_sees_live_overview_served_only_locally_then_logs_out(
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

    # The level tile shows a plain number with 2 decimals, and the number changes.
    level = "#value-water-tank1-level"
    await page.wait_for_function(
        "([selector, pattern]) => new RegExp(pattern).test("
        "document.querySelector(selector)?.textContent ?? '')",
        arg=[level, NUMBER],
        timeout=DEADLINE_MS,
    )
    first = await page.inner_text(level)
    await page.wait_for_function(
        "([selector, pattern, first]) => {"
        " const text = document.querySelector(selector).textContent;"
        " return new RegExp(pattern).test(text) && text !== first; }",
        arg=[level, NUMBER, first],
        timeout=DEADLINE_MS,
    )
    assert await page.inner_text("#value-water-pump1-running") in {"ON", "OFF"}

    # The trend has data, on the plant's (simulated, year 2030) time axis.
    await page.wait_for_function(
        "() => { const plot = document.querySelector('#trend .js-plotly-plot');"
        " return plot && plot.data && plot.data.length > 0 && plot.data[0].x.length > 3; }",
        timeout=DEADLINE_MS,
    )
    trace_name, first_time = await page.evaluate(
        "() => { const trace = document.querySelector('#trend .js-plotly-plot').data[0];"
        " return [trace.name, String(trace.x[0])]; }"
    )
    assert trace_name == "water.tank1.level [m]"
    assert first_time.startswith("2030-01-01")
    # The window ends at the newest sample (simulated clock), not at the wall clock.
    start, end = trend_windows[-1]
    assert start is not None
    assert end is not None
    assert end.year == 2030
    assert end - start == timedelta(minutes=30)

    # Bad quality is marked by class, label and a colour different from a good tile.
    bad_tile, good_tile = "#tile-water-tank2-level", "#tile-water-tank1-level"
    await page.wait_for_function(
        "(selector) => document.querySelector(selector).classList.contains('quality-bad')",
        arg=bad_tile,
        timeout=DEADLINE_MS,
    )
    assert "bad:comm_failure" in await page.inner_text("#quality-water-tank2-level")
    assert await page.inner_text("#value-water-tank2-level") == "—"
    border = "(element) => getComputedStyle(element).borderTopColor"
    assert await page.eval_on_selector(bad_tile, border) != await page.eval_on_selector(
        good_tile, border
    )
    assert "quality-good" in (await page.get_attribute(good_tile, "class") or "")

    # The table lists every tag, abnormal rows marked.
    await page.wait_for_selector("#tag-table-body tr.tag-row.quality-uncertain")
    assert await page.locator("#tag-table-body tr").count() == 4
    bad_row = page.locator("#tag-table-body tr.quality-bad")
    assert "water.tank2.level" in await bad_row.inner_text()

    # Logging out ends the session: back to the login page, data requests refused.
    await page.click("#logout")
    await page.wait_for_url(hmi_server.url + "/login")
    assert f"{name}: logout from 127.0.0.1" in audit_messages(journal_events)
    after = await browser_context.request.get(hmi_server.url + "/_dash-layout")
    assert after.status == 401

    assert requested, "no request recorded"
    foreign = [url for url in requested if not _is_local(url)]
    assert foreign == []
    assert problems == []


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
