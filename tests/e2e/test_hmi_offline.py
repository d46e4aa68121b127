"""Every display renders with no request leaving 127.0.0.1.

Operators' networks are closed: a display that fetched a map tile, a font or a script from the
internet would render blank or hang there. Chromium here is launched as usual (it could reach
the internet), and every URL it requests during a tour of every display — the map and a
faceplate included — is recorded; the assertion is on those URLs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Request

from controlcenter.bench.hmi import PROBE_SCRIPT
from controlcenter.model import Role
from hmi.pages import all_pages
from tests.e2e.hmi_city_kit import hmi_city, log_in

FACEPLATE = "/asset/water.ps1"
DOMAINS = frozenset({"water", "lights", "heat", "bldg"})


@pytest.mark.e2e
@pytest.mark.timeout(240)
async def test_every_display_renders_without_leaving_loopback(
    tmp_path: Path, browser_context: BrowserContext
) -> None:
    requested: list[str] = []
    failed: list[str] = []
    await browser_context.add_init_script(PROBE_SCRIPT)
    page = await browser_context.new_page()
    page.on("request", lambda request: requested.append(request.url))

    def note_failure(request: Request) -> None:
        failed.append(f"{request.url}: {request.failure}")

    page.on("requestfailed", note_failure)
    async with hmi_city(tmp_path, domains=DOMAINS) as kit:
        # The administrator may open every display.
        await log_in(page, kit.url, Role.ADMIN)
        toured = []
        for display in all_pages():
            path = FACEPLATE if display.path == "/asset/" else display.path
            await page.goto(kit.url + path, wait_until="domcontentloaded")
            content = page.locator(f"#page > .display-level-{display.level}")
            await content.wait_for(timeout=30_000)
            # Drawn whole: no callback in flight and nothing but live values changed lately,
            # so that every request the display makes (charts, map outlines) was recorded.
            await page.wait_for_function(
                "() => { const p = window.__benchProbe, now = performance.now();"
                " return p.inflight === 0 && now - Math.max(p.lastPageChange, p.lastDone) > 500; }",
                timeout=30_000,
            )
            text = await page.inner_text("#page")
            assert "Not permitted" not in text and "No such display" not in text, path
            toured.append(path)
        assert "/map" in toured and FACEPLATE in toured

    hosts = {urlsplit(url).hostname for url in requested if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}, sorted(str(host) for host in hosts)
    assert len(requested) > len(toured)
    # A request that failed was no attempt to reach out either (the stream closes at the end).
    assert all("127.0.0.1" in line for line in failed), failed
