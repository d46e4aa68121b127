"""The edge collector's composition root (``controlcenter edge``).

``EdgeCollector`` runs acquisition only, for the devices of a site file that name it as their
``edge``: drivers, the scan engine, a live snapshot for the edge's own interlocks, the
publisher with its spool, the command responder, and diagnostics every few seconds. The
center's side is ``controlcenter.runtime.center_transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from controlcenter.acquisition.scan import DeviceScan, ScanEngine
from controlcenter.bus import SampleBus
from controlcenter.live import LiveSnapshot
from controlcenter.model import Event, EventKind, Quality, Sample, TagDef
from controlcenter.ports import Clock
from controlcenter.runtime.app import build_driver, pushes_changes, scan_timeout, tag_signatures
from controlcenter.runtime.center_transport import TransportOptions
from controlcenter.site.config import SiteConfig
from controlcenter.transport.codec import encode_diagnostics
from controlcenter.transport.edge_commands import EdgeCommandResponder
from controlcenter.transport.link import (
    NatsLink,
    TransportError,
    cancel_and_wait,
    ensure_stream,
)
from controlcenter.transport.publisher import BatchSpool, EdgePublisher
from controlcenter.transport.subjects import Subjects
from drivers.base import Driver
from drivers.modbus.connection import ModbusGateways
from rules.expressions import ExpressionCompiler, ExpressionError
from rules.interlocks import InterlockSet
from rules.windows import NoWindowDataError

log = logging.getLogger(__name__)

DIAGNOSTICS_EVERY_S = 5.0
"""Wall seconds between two diagnostics messages of an edge."""


class EdgeContext:
    """What an edge's interlock expressions read: time, qualities and times of change.

    Windows (``avg`` and the like over time) are kept by the center's rules engine only; an
    edge interlock that asks for one fails safe (it blocks, saying why).
    """

    def __init__(self, live: LiveSnapshot, clock: Clock) -> None:
        self._live = live
        self._clock = clock
        self._changed_at: dict[str, datetime] = {}
        self._values: dict[str, object] = {}

    def note(self, samples: Sequence[Sample]) -> None:
        """Remember when each tag's value last changed (a bus listener)."""
        for sample in samples:
            if self._values.get(sample.tag, _UNSET) != sample.value:
                self._values[sample.tag] = sample.value
                self._changed_at[sample.tag] = sample.server_time

    def now(self) -> datetime:
        """The edge's time."""
        return self._clock.now()

    def quality(self, tag: str) -> Quality:
        """The quality of the latest sample of ``tag``."""
        return self._live.latest(tag).quality

    def since_change(self, tag: str) -> float:
        """Seconds since the value of ``tag`` last changed (0 before any value)."""
        changed = self._changed_at.get(tag)
        return 0.0 if changed is None else (self.now() - changed).total_seconds()

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        """Not kept at an edge: raises NoWindowDataError (the interlock fails safe)."""
        raise NoWindowDataError(f"windows of {tag} are not kept at an edge")


_UNSET = object()


def edge_interlocks(
    site: SiteConfig, tags: Sequence[TagDef], live: LiveSnapshot, context: EdgeContext
) -> InterlockSet:
    """The site's interlocks that guard and read only the edge's own tags.

    An interlock that reads a tag of another edge (or of the center) cannot be evaluated here;
    the center's pipeline checks it as before, and a log line says so.
    """
    compiler = ExpressionCompiler(tag_signatures(tags), site.location())
    names = [tag.name for tag in tags]
    kept = []
    for definition in site.interlock_defs():
        if not any(fnmatch.filter(names, pattern) for pattern in definition.tags):
            continue
        try:
            InterlockSet([definition], compiler, live, context)
        except ExpressionError as err:
            log.info("interlock %s is checked at the center only: %s", definition.name, err)
            continue
        kept.append(definition)
    return InterlockSet(kept, compiler, live, context)


class EdgeCollector:
    """Acquisition for one edge's devices, published to the site's stream."""

    def __init__(
        self,
        site: SiteConfig,
        edge: str,
        nats_url: str,
        clock: Clock,
        *,
        spool_dir: Path,
        options: TransportOptions | None = None,
        diagnostics_every_s: float = DIAGNOSTICS_EVERY_S,
    ) -> None:
        devices = [device for device in site.devices if device.edge == edge]
        if not devices:
            raise ValueError(f"no device of site {site.site.name} names edge {edge!r}")
        self.options = options or TransportOptions()
        self.edge = edge
        self.clock = clock
        self.subjects = Subjects.for_site(site.site.name, self.options.root)
        names = {device.name for device in devices}
        self.tags = [tag for tag in site.tag_defs() if tag.device in names]
        gateways = ModbusGateways()
        self.drivers: dict[str, Driver] = {
            device.name: build_driver(device, clock, gateways) for device in devices
        }
        self.link = NatsLink(nats_url, f"edge-{edge}")
        self.spool = BatchSpool(spool_dir / f"edge-{edge}.sqlite")
        self.publisher = EdgePublisher(
            self.link,
            self.subjects,
            edge,
            {tag.name: tag.device for tag in self.tags},
            self.spool,
        )
        self.bus = SampleBus()
        self.live = LiveSnapshot(self.tags, clock.now())
        self.context = EdgeContext(self.live, clock)
        self.interlocks = edge_interlocks(site, self.tags, self.live, self.context)
        self.scan_engine = ScanEngine(
            [
                DeviceScan(
                    driver=self.drivers[device.name],
                    points=tuple(tag for tag in self.tags if tag.device == device.name),
                    interval_s=device.scan_interval,
                    timeout_s=scan_timeout(device),
                    poll=not pushes_changes(device),
                )
                for device in devices
            ],
            self.bus,
            clock,
        )
        # The live view and the change times first: an interlock sees what is published.
        self.bus.subscribe("live", self.live.update)
        self.bus.subscribe("changes", self.context.note)
        self.bus.subscribe("publisher", self.publisher.on_samples)
        self.commands = EdgeCommandResponder(
            edge,
            self.link,
            self.subjects,
            self.tags,
            self.drivers,
            self.interlocks,
            now=clock.now,
            report=self.publisher.publish_events,
        )
        self._diagnostics_every_s = diagnostics_every_s
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire and publish until ``stop`` is set; the link may come and go meanwhile."""
        self.link.on_connected(self._prepare_stream)
        await self.link.start()
        await self.commands.start()
        self.publisher.publish_events([self._event(f"edge {self.edge} started")])
        tasks = [
            asyncio.create_task(self.scan_engine.run(), name="scan engine"),
            asyncio.create_task(self.publisher.run(), name="edge publisher"),
            asyncio.create_task(self._diagnostics_loop(), name="edge diagnostics"),
        ]
        self.ready.set()
        try:
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    log.error("%s stopped unexpectedly: %r", task.get_name(), task.exception())
        finally:
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        scan, publisher, diagnostics = tasks
        for task in (scan, diagnostics):
            task.cancel()
        await asyncio.gather(scan, diagnostics, return_exceptions=True)
        for driver in self.drivers.values():
            await driver.close()
        await self.commands.close()
        self.publisher.publish_events([self._event(f"edge {self.edge} stopped")])
        # What is still queued gets a few seconds to leave; the rest stays in the spool.
        with contextlib.suppress(TimeoutError):
            await self.publisher.flush(5.0 if self.link.connected else 0.0)
        await cancel_and_wait(publisher)
        await self.publisher.spill_for_shutdown()
        await self.link.close()
        self.spool.close()

    async def _prepare_stream(self, _client: object) -> None:
        try:
            await ensure_stream(self.link.jetstream(), self.subjects, self.options.stream)
        except TransportError as err:
            log.error("%s", err)

    async def _diagnostics_loop(self) -> None:
        while True:
            await asyncio.sleep(self._diagnostics_every_s)
            client = self.link.client
            if client is None or not self.link.connected:
                continue
            payload = encode_diagnostics(
                self.edge, self.clock.now(), self.scan_engine.diagnostics()
            )
            try:
                await client.publish(self.subjects.diagnostics(self.edge), payload)
            except Exception as err:  # diagnostics are best effort: the next ones follow soon
                log.debug("diagnostics not sent: %r", err)

    def _event(self, message: str) -> Event:
        return Event(self.clock.now(), EventKind.SYSTEM, f"edge.{self.edge}", message)
