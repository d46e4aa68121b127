"""The scan engine: polls every device at its own interval and publishes samples on the bus.

Each device has its own task, so a slow or dead device never delays another device's scan. A read
that fails yields a Bad sample for every point of the device, with the driver's reason: consumers
always see an explicit quality, never a missing value.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controlcenter.model import Quality, Sample, Substatus, TagDef
from controlcenter.ports import Clock, SamplePublisher
from drivers.base import Driver, DriverError

log = logging.getLogger(__name__)

# After a failed scan the next attempt waits interval x 2^(failures-1), up to this many intervals,
# so a dead device costs little while a live one recovers within a few scans.
MAX_BACKOFF_INTERVALS = 8


@dataclass(frozen=True, slots=True)
class DeviceScan:
    """One device to poll: its driver, its points, its scan interval and read timeout."""

    driver: Driver
    points: tuple[TagDef, ...]
    interval_s: float
    timeout_s: float

    @property
    def device(self) -> str:
        """Name of the polled device."""
        return self.driver.device


@dataclass(frozen=True, slots=True)
class ScanDiagnostics:
    """Health of one device's scan for the HMI and metrics."""

    device: str
    healthy: bool
    scans: int
    scans_on_time: int
    failed_scans: int
    last_good_scan: datetime | None
    last_error: str
    latency_mean_ms: float
    latency_p95_ms: float

    @property
    def on_time_pct(self) -> float:
        """Share of scans started within one interval of their due time, in percent."""
        return 100.0 * self.scans_on_time / self.scans if self.scans else 100.0


@dataclass(slots=True)
class _ScanState:
    healthy: bool = True
    scans: int = 0
    scans_on_time: int = 0
    failed_scans: int = 0
    consecutive_failures: int = 0
    last_good_scan: datetime | None = None
    last_error: str = ""
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class ScanEngine:
    """Runs one polling task per device until cancelled."""

    def __init__(
        self,
        scans: Sequence[DeviceScan],
        publisher: SamplePublisher,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        names = [scan.device for scan in scans]
        if len(set(names)) != len(names):
            raise ValueError("each device may be scanned by one DeviceScan only")
        self._scans = tuple(scans)
        self._publisher = publisher
        self._clock = clock
        self._rng = rng or random.Random()
        self._states = {scan.device: _ScanState() for scan in scans}

    async def run(self) -> None:
        """Scan every device until cancelled."""
        async with asyncio.TaskGroup() as group:
            for scan in self._scans:
                group.create_task(self._scan_device(scan), name=f"scan {scan.device}")

    def diagnostics(self) -> list[ScanDiagnostics]:
        """Scan health of every device."""
        result = []
        for scan in self._scans:
            state = self._states[scan.device]
            latencies = sorted(state.latencies_s)
            p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
            result.append(
                ScanDiagnostics(
                    device=scan.device,
                    healthy=state.healthy,
                    scans=state.scans,
                    scans_on_time=state.scans_on_time,
                    failed_scans=state.failed_scans,
                    last_good_scan=state.last_good_scan,
                    last_error=state.last_error,
                    latency_mean_ms=1000 * statistics.fmean(latencies) if latencies else 0.0,
                    latency_p95_ms=1000 * p95,
                )
            )
        return result

    async def _scan_device(self, scan: DeviceScan) -> None:
        state = self._states[scan.device]
        # Staggered start: devices with the same interval do not all fire at once.
        await self._clock.sleep(self._rng.uniform(0, scan.interval_s))
        due = self._clock.monotonic()
        while True:
            started = self._clock.monotonic()
            state.scans += 1
            if started - due < scan.interval_s:
                state.scans_on_time += 1
            self._publisher.publish(await self._scan_once(scan, state))
            delay = scan.interval_s
            if state.consecutive_failures:
                backoff = min(2 ** (state.consecutive_failures - 1), MAX_BACKOFF_INTERVALS)
                delay = scan.interval_s * backoff
            due += delay
            now = self._clock.monotonic()
            if due < now:
                # Fell behind: skip the missed scans instead of bursting to catch up.
                missed = int((now - due) // scan.interval_s) + 1
                due += missed * scan.interval_s
            await self._clock.sleep(due - now)

    async def _scan_once(self, scan: DeviceScan, state: _ScanState) -> list[Sample]:
        wall_start = time.monotonic()
        try:
            samples = await asyncio.wait_for(scan.driver.read(scan.points), scan.timeout_s)
        except TimeoutError:
            return self._failed(
                scan, state, Substatus.TIMEOUT, f"no answer within {scan.timeout_s:g} s"
            )
        except DriverError as err:
            return self._failed(scan, state, err.substatus, str(err))
        except Exception as err:
            # A driver bug, not a field fault: keep the traceback once, keep scanning.
            if state.healthy:
                log.exception("%s: driver raised an unexpected error", scan.device)
            return self._failed(
                scan, state, Substatus.NON_SPECIFIC, f"driver error: {type(err).__name__}: {err}"
            )
        state.latencies_s.append(time.monotonic() - wall_start)
        state.last_good_scan = self._clock.now()
        state.consecutive_failures = 0
        if not state.healthy:
            state.healthy = True
            log.info("%s: communication restored", scan.device)
        return samples

    def _failed(
        self, scan: DeviceScan, state: _ScanState, substatus: Substatus, reason: str
    ) -> list[Sample]:
        state.failed_scans += 1
        state.consecutive_failures += 1
        state.last_error = reason
        if state.healthy:
            state.healthy = False
            log.warning("%s: scan failed: %s", scan.device, reason)
        now = self._clock.now()
        quality = Quality.bad(substatus, reason)
        return [Sample(point.name, None, quality, now, now) for point in scan.points]
