"""Shared fixtures: a closed loopback port, and a headless Chromium driven by Playwright."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from playwright.async_api import Browser, BrowserContext, async_playwright

# Shared 2-core CI machines are slow and noisy: property tests keep their example counts but
# must not fail because generating or running one example took long.
settings.register_profile(
    "shared_machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared_machine")

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium: Playwright's own browser download is not available offline."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


NAVIGATION_TIMEOUT_MS = 90_000


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole test session (async API: tests share one loop)."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before anything runs on the loop
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. "
            "Run .ci/run, or install it with `apt-get install chromium`."
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser context (own cookies and storage) per test."""
    context = await browser.new_context()
    # A display's first load brings about 6 MB of scripts (plotly among them) into an empty
    # cache; on a loaded two-core machine that can take longer than Playwright's 30 s default.
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
