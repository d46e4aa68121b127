"""The simulated city and a center with its HMI, in this process, for browser tests.

``hmi_city(tmp_path, …)`` starts the city on free ports, writes the demo site for it (the demo's
overlay, alarms and rules, for the chosen domains), starts a center with the HMI on a free port
and users of every role, and stops everything at the end. ``log_in`` signs a Playwright page in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from playwright.async_api import Page

from controlcenter.model import Role
from controlcenter.runtime.app import ControlCenter, HmiOptions
from controlcenter.runtime.demo_site import render_demo_site, write_demo_site
from controlcenter.security.users import UserStore
from controlcenter.site.config import SiteConfig, load_site
from historian.store import SqlHistorian
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

PASSWORD = "a long test passphrase 1"
"""Every test user's password."""
USERS: dict[Role, str] = {
    Role.VIEWER: "vera",
    Role.OPERATOR: "olga",
    Role.MAINTENANCE: "mats",
    Role.ENGINEER: "erik",
    Role.ADMIN: "ada",
}
"""One user per role (the name of the user of each role)."""
DISPLAY_TIMEOUT_MS = 90_000
"""How long a display may take to appear on a loaded machine (its scripts load first)."""


@dataclass
class HmiCity:
    """A running city and center; ``url`` is the HMI's base URL."""

    city: SimulatedCity
    clock: SimClock
    site: SiteConfig
    center: ControlCenter
    users: UserStore
    url: str
    site_path: Path


@asynccontextmanager
async def hmi_city(
    tmp_path: Path,
    *,
    domains: frozenset[str] = frozenset({"water"}),
    speed: float = 1.0,
    scan_interval_s: float | None = 1.0,
    start: datetime = datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    scale: int = 1,
    seed: int = 7,
) -> AsyncIterator[HmiCity]:
    """The city (``domains``) and a center with its HMI, stopped on exit."""
    clock = SimClock(speed=speed, start=start)
    city = SimulatedCity(clock, CityOptions(seed=seed, scale=scale, domains=domains))
    await city.start()
    try:
        site_path = tmp_path / "site" / "site.yaml"
        site_path.parent.mkdir(parents=True, exist_ok=True)
        write_demo_site(site_path, render_demo_site(city, scan_interval_s=scan_interval_s))
        site = await asyncio.to_thread(load_site, site_path)
        users_path = tmp_path / "hmi" / "users.json"
        users_path.parent.mkdir(parents=True, exist_ok=True)
        users = UserStore(users_path, hasher=PasswordHasher.from_parameters(CHEAPEST))
        for role, name in USERS.items():
            users.add_user(name, PASSWORD, role)
        store = await asyncio.to_thread(SqlHistorian, f"sqlite:///{tmp_path / 'center.db'}")
        center = ControlCenter(
            site,
            store,
            clock,
            hmi=HmiOptions(users_path=users_path, port=0),
            site_directory=site_path.parent,
            users=users,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(center.run(stop))
        try:
            await asyncio.wait_for(center.ready.wait(), 60)
            yield HmiCity(city, clock, site, center, users, center.hmi_url, site_path)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await asyncio.to_thread(store.close)
    finally:
        await city.stop()


async def log_in(page: Page, url: str, role: Role, path: str = "/") -> None:
    """Sign ``page`` in as the test user of ``role`` and open ``path``."""
    await page.goto(url.rstrip("/") + "/login", wait_until="domcontentloaded")
    await page.fill("#username", USERS[role])
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_selector("#page", timeout=DISPLAY_TIMEOUT_MS)
    if path != "/":
        await page.goto(url.rstrip("/") + path, wait_until="domcontentloaded")
        await page.wait_for_selector("#page", timeout=DISPLAY_TIMEOUT_MS)
