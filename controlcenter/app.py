"""The composition root: builds the center from a site file and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controlcenter.bus import SampleBus
from controlcenter.commands import CommandPipeline
from controlcenter.config import ModbusDeviceConfig, SiteConfig
from controlcenter.live import LiveSnapshot
from controlcenter.model import Event, EventKind, TagDef
from controlcenter.ports import Clock
from controlcenter.scan import DeviceScan, ScanEngine
from controlcenter.users import UserStore
from drivers.base import Driver
from drivers.modbus.config import ModbusDeviceConfig as ModbusDriverConfig
from drivers.modbus.driver import ModbusDriver
from historian.store import SqlHistorian
from historian.writer import HistorianWriter
from hmi.app import create_hmi
from hmi.server import HmiServer
from rules.engine import RulesEngine
from rules.hysteresis import HysteresisRule

log = logging.getLogger(__name__)


class CenterFailedError(Exception):
    """A part of the center stopped unexpectedly; the center shut down."""


@dataclass(frozen=True, slots=True)
class HmiOptions:
    """Where the HMI listens and whose logins it accepts."""

    users_path: Path
    host: str = "127.0.0.1"
    port: int = 8050


class StoreJournal:
    """Records events in the historian's event journal (a ``ports.EventJournal``)."""

    def __init__(self, store: SqlHistorian) -> None:
        self._store = store

    def record(self, event: Event) -> None:
        """Record an event in the journal."""
        self._store.journal_event(event)


def build_driver(device: ModbusDeviceConfig, clock: Clock) -> Driver:
    """The driver for one configured device."""
    config = ModbusDriverConfig(
        host=device.host,
        port=device.port,
        unit_id=device.unit_id,
        timeout_s=device.timeout,
        word_order=device.word_order,
    )
    return ModbusDriver(device.name, config, clock)


def build_rules(site: SiteConfig) -> list[HysteresisRule]:
    """The site's rules as rule definitions."""
    return [
        HysteresisRule(
            name=rule.name,
            input_tag=rule.input,
            output_tag=rule.output,
            on_below=rule.on_below,
            off_above=rule.off_above,
            min_command_interval_s=rule.min_command_interval,
            description=rule.description,
            enabled=rule.enabled,
        )
        for rule in site.rules
    ]


class ControlCenter:
    """One running center: scan engine, bus, historian writer, rules, command pipeline and HMI."""

    def __init__(
        self,
        site: SiteConfig,
        store: SqlHistorian,
        clock: Clock,
        *,
        hmi: HmiOptions | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.clock = clock
        self.tags: Sequence[TagDef] = site.tag_defs()
        self.drivers: dict[str, Driver] = {
            device.name: build_driver(device, clock) for device in site.devices
        }
        self.bus = SampleBus()
        self.live = LiveSnapshot(self.tags, clock.now())
        self.writer = HistorianWriter(store)
        self.commands = CommandPipeline(self.tags, self.drivers, store, clock)
        self.rules = RulesEngine(build_rules(site), self.commands, clock)
        self.scan_engine = ScanEngine(
            [
                DeviceScan(
                    driver=self.drivers[device.name],
                    points=tuple(tag for tag in self.tags if tag.device == device.name),
                    interval_s=device.scan_interval,
                    timeout_s=device.timeout,
                )
                for device in site.devices
            ],
            self.bus,
            clock,
        )
        self.bus.subscribe("live", self.live.update)
        self.bus.subscribe("historian", self.writer.enqueue)
        self.bus.subscribe("rules", self.rules.on_samples)
        self.journal = StoreJournal(store)
        self._hmi_options = hmi
        self.hmi_server: HmiServer | None = None
        self.ready = asyncio.Event()

    @property
    def hmi_url(self) -> str:
        """Where the HMI answers; raises RuntimeError when it is not running."""
        if self.hmi_server is None:
            raise RuntimeError("the HMI is not running")
        return self.hmi_server.url

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down cleanly, flushing the historian."""
        await asyncio.to_thread(self.store.ensure_tags, self.tags)
        self._record(EventKind.SYSTEM, f"center started for site {self.site.site.name}")
        tasks = [
            asyncio.create_task(self.writer.run(), name="historian writer"),
            asyncio.create_task(self.rules.run(), name="rules engine"),
            asyncio.create_task(self.scan_engine.run(), name="scan engine"),
        ]
        failure: BaseException | None = None
        try:
            if self._hmi_options is not None:
                self.hmi_server = self._start_hmi(self._hmi_options)
            self.ready.set()
            stopper = asyncio.create_task(stop.wait(), name="stop signal")
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                    log.error("%s stopped unexpectedly: %r", task.get_name(), failure)
        finally:
            await self._shutdown(tasks)
        if failure is not None:
            raise CenterFailedError(str(failure)) from failure

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        writer_task, *others = tasks
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self.hmi_server is not None:
            await asyncio.to_thread(self.hmi_server.stop)
        await self.writer.stop()
        await asyncio.gather(writer_task, return_exceptions=True)
        for driver in self.drivers.values():
            await driver.close()
        self._record(EventKind.SYSTEM, "center stopped")

    def _start_hmi(self, options: HmiOptions) -> HmiServer:
        users = UserStore(options.users_path)
        app = create_hmi(
            self.live,
            self.store,
            users,
            self.journal,
            site_name=self.site.site.name,
            featured_tags=self.site.hmi.featured,
            # Sessions last as long as the process: a restart asks operators to log in again.
            secret_key=secrets.token_bytes(32),
        )
        server = HmiServer(app, host=options.host, port=options.port)
        server.start()
        log.info("HMI at %s", server.url)
        return server

    def _record(self, kind: EventKind, message: str) -> None:
        self.journal.record(Event(self.clock.now(), kind, "controlcenter", message))
