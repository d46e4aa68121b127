"""The demo: the simulated city, the center and the HMI in one process, on one simulated clock."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from controlcenter.app import ControlCenter, HmiOptions
from controlcenter.config import SiteConfig, load_site
from controlcenter.model import Role
from controlcenter.users import UserStore
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock

log = logging.getLogger(__name__)

DEMO_DB_URL = "sqlite:///var/demo.db"
DEMO_USERS_PATH = Path("var/users.json")


def demo_site_path() -> Path:
    """The demo city's site file shipped with the package."""
    return Path(str(resources.files("controlcenter") / "sites" / "demo.yaml"))


def load_demo_site() -> SiteConfig:
    """The demo city's validated site file."""
    return load_site(demo_site_path())


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How to run the demo."""

    speed: float = 1.0
    db_url: str = DEMO_DB_URL
    hmi: HmiOptions | None = None
    seed: int = 1
    start: datetime | None = None


def ensure_demo_login(users_path: Path) -> str | None:
    """Create the demo's first admin with a random password; return it, or None if users exist."""
    users = UserStore(users_path)
    if users.users():
        return None
    password = secrets.token_urlsafe(12)
    users.add_user("admin", password, Role.ADMIN)
    return password


class Demo:
    """The simulated city and a center watching it, on one simulated clock."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.clock = SimClock(speed=options.speed, start=options.start)
        self.site = load_demo_site()
        self.city = SimulatedCity(self.clock, seed=options.seed, tz=self.site.site.timezone)
        self.center: ControlCenter | None = None
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the city and the center until ``stop`` is set; shut both down cleanly."""
        await self.city.start()
        try:
            endpoints = {
                name: f"{host}:{port}" for name, (host, port) in self.city.endpoints().items()
            }
            for name, endpoint in endpoints.items():
                log.info("simulated device %s listens on %s", name, endpoint)
            site = self.site.with_endpoints(endpoints)
            store = await asyncio.to_thread(SqlHistorian, self.options.db_url)
            try:
                self.center = ControlCenter(site, store, self.clock, hmi=self.options.hmi)
                ready_signal = asyncio.create_task(self._signal_ready(self.center))
                try:
                    await self.center.run(stop)
                finally:
                    ready_signal.cancel()
            finally:
                await asyncio.to_thread(store.close)
        finally:
            await self.city.stop()

    async def _signal_ready(self, center: ControlCenter) -> None:
        await center.ready.wait()
        self.ready.set()
