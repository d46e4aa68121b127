"""``controlcenter hmi-screenshots``: a picture of each display level, from the running demo.

By default the command starts its own demo in this process (the simulated city in a child
process, the center and its HMI on free ports, a temporary database and a temporary
administrator), lets the values settle, and photographs every level of the display hierarchy
with headless Chromium into ``--out`` (the pictures of docs/hmi.md). With ``--url``, ``--user``
and ``--password`` it photographs a demo that is already running instead.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

SHOTS: tuple[tuple[str, str], ...] = (
    ("level1-overview", "/"),
    ("level1-map", "/map"),
    ("level2-water", "/water"),
    ("level2-lighting", "/lighting"),
    ("level2-heating", "/heating"),
    ("level2-buildings", "/buildings"),
    ("level3-faceplate-pump-station", "/asset/water.ps1"),
    ("level4-diagnostics", "/diagnostics"),
    ("tool-alarms", "/alarms"),
    ("tool-trends", "/trends?tags=water.tank2.level,water.dma1.inflow"),
    ("tool-journal", "/journal"),
)
"""File name (without .png) and URL of each picture."""
VIEWPORT = {"width": 1600, "height": 1000}
QUIET_MS = 800
"""A display is photographed once it has not changed (but for live values) for this long."""
DISPLAY_TIMEOUT_MS = 30_000
DEFAULT_START = datetime.fromisoformat("2026-11-21T17:30:00+01:00")
"""Dusk on a weekday: street lights on, heating and water at their evening peak."""


@dataclass(frozen=True, slots=True)
class Login:
    """Where the HMI is and who logs in."""

    url: str
    user: str
    password: str


def hmi_screenshots(
    out: Annotated[Path, typer.Option(help="Directory the PNG files are written to.")] = Path(
        "docs/images/hmi"
    ),
    url: Annotated[
        str | None, typer.Option(help="A running HMI's URL (default: start a demo here).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="User to log in as (with --url).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Their password (with --url).", hide_input=True)
    ] = None,
    settle: Annotated[
        float, typer.Option(min=0.0, help="Seconds the demo runs before the first picture.")
    ] = 15.0,
    start: Annotated[
        datetime | None,
        typer.Option(help="Simulated time the demo starts at (ISO 8601 with offset)."),
    ] = None,
) -> None:
    """Photograph every level of the HMI's display hierarchy into PNG files."""
    if url is not None and (user is None or password is None):
        raise typer.BadParameter("--url needs --user and --password")
    out.mkdir(parents=True, exist_ok=True)
    if url is not None and user is not None and password is not None:
        written = asyncio.run(photograph(Login(url.rstrip("/"), user, password), out))
    else:
        written = asyncio.run(photograph_own_demo(out, settle, start or DEFAULT_START))
    for path in written:
        typer.echo(str(path))


async def photograph_own_demo(out: Path, settle_s: float, start: datetime) -> list[Path]:
    """Start a demo on free ports with a temporary administrator; photograph it; stop it."""
    from controlcenter.model import Role
    from controlcenter.runtime.app import HmiOptions
    from controlcenter.runtime.demo import Demo, DemoOptions
    from controlcenter.security.users import UserStore

    with tempfile.TemporaryDirectory(prefix="hmi-screenshots-") as scratch:
        root = Path(scratch)
        users_path = root / "users.json"
        password = secrets.token_urlsafe(18)
        UserStore(users_path).add_user("admin", password, Role.ADMIN)
        demo = Demo(
            DemoOptions(
                db_url=f"sqlite:///{root / 'demo.db'}",
                hmi=HmiOptions(users_path=users_path, port=0),
                start=start,
                site_path=root / "site" / "demo-site.yaml",
                base_port=0,
                control="127.0.0.1:0",
            )
        )
        stop = asyncio.Event()
        task = asyncio.create_task(demo.run(stop))
        try:
            ready = asyncio.create_task(demo.ready.wait())
            await asyncio.wait({task, ready}, timeout=300, return_when="FIRST_COMPLETED")
            if task.done():
                task.result()  # the demo failed: its exception says why
                raise RuntimeError("the demo stopped before it was ready")
            if not ready.done():
                ready.cancel()
                raise RuntimeError("the demo was not ready within 300 s")
            assert demo.center is not None
            await asyncio.sleep(settle_s)  # let the city's values and alarms come in
            return await photograph(Login(demo.center.hmi_url.rstrip("/"), "admin", password), out)
        finally:
            stop.set()
            await asyncio.wait_for(task, 120)


async def photograph(login: Login, out: Path) -> list[Path]:
    """Log in and save one PNG per display of ``SHOTS`` into ``out``."""
    from playwright.async_api import async_playwright

    from controlcenter.bench.hmi import CHROMIUM, CHROMIUM_ARGS, PROBE_SCRIPT, SWITCH_SCRIPT

    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            await context.add_init_script(PROBE_SCRIPT)
            page = await context.new_page()
            await page.goto(login.url + "/login")
            await page.fill("#username", login.user)
            await page.fill("#password", login.password)
            await page.click("#login")
            await page.wait_for_selector("#page")
            for name, path in SHOTS:
                # As an operator moves: a link, no reload (the page and its stream stay open).
                outcome = await page.evaluate(SWITCH_SCRIPT, [path, QUIET_MS, DISPLAY_TIMEOUT_MS])
                if not outcome["ok"]:
                    raise RuntimeError(f"{path} did not settle within {DISPLAY_TIMEOUT_MS} ms")
                target = out / f"{name}.png"
                await page.screenshot(path=str(target), full_page=True)
                written.append(target)
        finally:
            await browser.close()
    return written
