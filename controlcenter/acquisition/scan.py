"""The scan engine: acquires every device at its own interval and publishes samples on the bus.

Each device has its own task, so a slow or dead device never delays another device's scan.
A device whose driver can push changes (OPC UA monitored items, BACnet COV) is subscribed; one
whose driver raises ``SubscriptionUnsupportedError`` (Modbus) is polled. Starts are staggered by
a random fraction of the interval, so devices of one scan class do not all fire at once.

Quality rules, as operators expect them from a SCADA system:

- a read that fails gives every point of the device Bad quality with the driver's reason and
  sub-status (not_connected, comm_failure, timeout, device_failure...);
- a read that has not answered within 3 scan periods gives every point Bad comm_failure then,
  even if its timeout is longer; a read beyond its timeout is abandoned (Bad timeout);
- a subscribed point with no update within 3 expected intervals (``stale_after_s``) becomes
  Uncertain last_usable, keeping its last value, until the next update. A driver keeps its
  points fresh by pushing changes, or by calling the callback with an empty list as a
  keep-alive (the subscription is alive and nothing changed).

After a failed scan the next attempt waits interval x 2^(failures-1), up to 8 intervals. A
device logs one line when it fails and one when it recovers; field faults (``DriverError``)
never log a traceback.
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
from enum import StrEnum

from controlcenter.model import Quality, Sample, Severity, Substatus, TagDef, Value
from controlcenter.ports import Clock, SamplePublisher
from drivers.base import Driver, DriverError, SubscriptionUnsupportedError

log = logging.getLogger(__name__)

MAX_BACKOFF_INTERVALS = 8
"""After a failed scan the retry interval doubles up to this many scan intervals, so a dead
device costs little while a live one recovers within a few scans."""

STALE_INTERVALS = 3
"""A point older than this many expected intervals is stale; a read this late is a comm loss."""

_RATE_WINDOW_S = 60.0
"""Requests per second are measured over this much recent clock time."""

_LATENCY_SAMPLES = 1000


class ScanMode(StrEnum):
    """How a device's values reach the center."""

    POLL = "poll"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class DeviceScan:
    """One device to acquire: its driver, points, scan interval, read timeout and staleness.

    ``interval_s`` and ``stale_after_s`` are clock seconds (the center's clock), ``timeout_s``
    wall seconds (a network timeout). ``stale_after_s`` None means 3 x ``interval_s``.
    """

    driver: Driver
    points: tuple[TagDef, ...]
    interval_s: float
    timeout_s: float
    stale_after_s: float | None = None
    poll: bool = False
    """Poll even when the driver could push (a site's choice, e.g. an OPC UA server with
    unreliable subscriptions, or a device that must answer every scan)."""

    def __post_init__(self) -> None:
        if not self.interval_s > 0 or not self.timeout_s > 0:
            raise ValueError(f"{self.device}: scan interval and timeout must be positive")

    @property
    def device(self) -> str:
        """Name of the acquired device."""
        return self.driver.device

    @property
    def stale_after(self) -> float:
        """Clock seconds without an update after which a subscribed point is stale."""
        if self.stale_after_s is not None:
            return self.stale_after_s
        return STALE_INTERVALS * self.interval_s


@dataclass(frozen=True, slots=True)
class ScanDiagnostics:
    """Health of one device's acquisition for the HMI and metrics."""

    device: str
    healthy: bool
    scans: int
    scans_on_time: int
    failed_scans: int
    last_good_scan: datetime | None
    last_error: str
    latency_mean_ms: float
    latency_p95_ms: float
    connected: bool = False
    mode: ScanMode = ScanMode.POLL
    requests_per_s: float = 0.0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    """Failed scans by quality sub-status (e.g. ``not_connected``, ``timeout``)."""
    abandoned_reads: int = 0
    """Reads given up after their timeout."""
    stale_points: int = 0
    """Subscribed points currently Uncertain for lack of updates."""
    missed_scans: int = 0
    """Scans skipped because the previous one overran (counted as late in ``on_time_pct``)."""

    @property
    def on_time_pct(self) -> float:
        """Share of due scans started within one interval of their due time, in percent."""
        due = self.scans + self.missed_scans
        return 100.0 * self.scans_on_time / due if due else 100.0


@dataclass(slots=True)
class _PointState:
    """What the engine last saw of a subscribed point."""

    value: Value | None = None
    source_time: datetime | None = None
    updated_at: float = 0.0
    good: bool = False
    stale: bool = False


@dataclass(slots=True)
class _ScanState:
    healthy: bool = True
    mode: ScanMode = ScanMode.POLL
    scans: int = 0
    scans_on_time: int = 0
    failed_scans: int = 0
    abandoned_reads: int = 0
    missed_scans: int = 0
    consecutive_failures: int = 0
    last_good_scan: datetime | None = None
    last_good_at: float | None = None
    last_error: str = ""
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    request_counts: deque[tuple[float, int]] = field(default_factory=deque)
    points: dict[str, _PointState] = field(default_factory=dict)


class ScanEngine:
    """Runs one acquisition task per device until cancelled."""

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

    @property
    def scans(self) -> tuple[DeviceScan, ...]:
        """The devices this engine acquires."""
        return self._scans

    async def run(self) -> None:
        """Acquire every device until cancelled."""
        async with asyncio.TaskGroup() as group:
            for scan in self._scans:
                group.create_task(self._run_device(scan), name=f"scan {scan.device}")

    def diagnostics(self) -> list[ScanDiagnostics]:
        """Acquisition health of every device."""
        return [self._diagnostics(scan) for scan in self._scans]

    def _diagnostics(self, scan: DeviceScan) -> ScanDiagnostics:
        state = self._states[scan.device]
        latencies = sorted(state.latencies_s)
        p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
        driver = scan.driver.diagnostics()
        return ScanDiagnostics(
            device=scan.device,
            healthy=state.healthy,
            scans=state.scans,
            scans_on_time=state.scans_on_time,
            failed_scans=state.failed_scans,
            last_good_scan=state.last_good_scan,
            last_error=state.last_error,
            latency_mean_ms=1000 * statistics.fmean(latencies) if latencies else 0.0,
            latency_p95_ms=1000 * p95,
            connected=driver.connected,
            mode=state.mode,
            requests_per_s=self._request_rate(state, driver.requests),
            errors_by_kind=dict(state.errors_by_kind),
            abandoned_reads=state.abandoned_reads,
            stale_points=sum(1 for point in state.points.values() if point.stale),
            missed_scans=state.missed_scans,
        )

    def _request_rate(self, state: _ScanState, requests: int) -> float:
        counts = state.request_counts
        if not counts:
            return 0.0
        first_at, first_count = counts[0]
        elapsed = self._clock.monotonic() - first_at
        return (requests - first_count) / elapsed * self._clock.speed if elapsed > 0 else 0.0

    async def _run_device(self, scan: DeviceScan) -> None:
        # Staggered start: devices with the same interval do not all fire at once.
        await self._clock.sleep(self._rng.uniform(0, scan.interval_s))
        if not scan.poll and await self._subscribe(scan):
            await self._watch_subscription(scan)
        else:
            await self._poll(scan)

    # -- subscriptions -------------------------------------------------------------------------

    async def _subscribe(self, scan: DeviceScan) -> bool:
        """Subscribe the device's points; False when its driver cannot push (then it is polled).

        A subscription that fails for a field fault is retried with backoff, the points Bad
        meanwhile."""
        state = self._states[scan.device]
        while True:
            try:
                await asyncio.wait_for(
                    scan.driver.subscribe(
                        scan.points,
                        lambda samples: self._on_pushed(scan, samples),
                        # The device samples in wall-clock time; the scan class is clock time.
                        interval_s=scan.interval_s / self._clock.speed,
                    ),
                    scan.timeout_s,
                )
            except SubscriptionUnsupportedError:
                return False
            except TimeoutError:
                reason = f"subscription not confirmed within {scan.timeout_s:g} s"
                self._publish_failure(scan, state, Substatus.TIMEOUT, reason)
            except DriverError as err:
                self._publish_failure(scan, state, err.substatus, str(err))
            except Exception as err:
                self._publish_unexpected(scan, state, err)
            else:
                state.mode = ScanMode.SUBSCRIBE
                self._succeeded(scan, state)
                now = self._clock.monotonic()
                for point in scan.points:
                    state.points.setdefault(point.name, _PointState(updated_at=now))
                return True
            await self._clock.sleep(self._backoff(scan, state))

    def _on_pushed(self, scan: DeviceScan, samples: list[Sample]) -> None:
        """Publish pushed samples and note when each point was last heard of."""
        state = self._states[scan.device]
        now = self._clock.monotonic()
        state.scans += 1
        state.scans_on_time += 1
        if not samples:  # keep-alive: every point is still current
            for point in state.points.values():
                point.updated_at = now
                point.stale = False
            return
        any_good = False
        for sample in samples:
            point = state.points.setdefault(sample.tag, _PointState())
            point.updated_at = now
            point.stale = False
            point.good = sample.quality.severity is not Severity.BAD
            if sample.value is not None:
                point.value = sample.value
                point.source_time = sample.source_time
            any_good = any_good or sample.quality.is_good
        if any_good:
            self._succeeded(scan, state)
        self._publisher.publish(samples)

    async def _watch_subscription(self, scan: DeviceScan) -> None:
        """Every interval, mark points without an update for ``stale_after`` Uncertain."""
        state = self._states[scan.device]
        while True:
            await self._clock.sleep(scan.interval_s)
            now_mono = self._clock.monotonic()
            stale: list[Sample] = []
            now = self._clock.now()
            for point in scan.points:
                seen = state.points[point.name]
                if seen.stale or now_mono - seen.updated_at < scan.stale_after:
                    continue
                seen.stale = True
                age = now_mono - seen.updated_at
                reason = f"no update for {age:.3g} s (expected every {scan.interval_s:g} s)"
                if seen.value is None:
                    quality = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, reason)
                    stale.append(Sample(point.name, None, quality, now, now))
                elif seen.good:
                    quality = Quality.uncertain(Substatus.LAST_USABLE, reason)
                    source = seen.source_time or now
                    stale.append(Sample(point.name, seen.value, quality, source, now))
            if stale:
                self._publisher.publish(stale)

    # -- polling -------------------------------------------------------------------------------

    async def _poll(self, scan: DeviceScan) -> None:
        state = self._states[scan.device]
        state.mode = ScanMode.POLL
        due = self._clock.monotonic()
        while True:
            started = self._clock.monotonic()
            state.scans += 1
            if started - due < scan.interval_s:
                state.scans_on_time += 1
            await self._poll_once(scan, state)
            self._note_requests(scan, state)
            delay = self._backoff(scan, state)
            due += delay
            now = self._clock.monotonic()
            if due < now:
                # Fell behind: skip the missed scans instead of bursting to catch up.
                missed = int((now - due) // scan.interval_s) + 1
                due += missed * scan.interval_s
                if not state.consecutive_failures:  # backoff after a failure is not a miss
                    state.missed_scans += missed
            await self._clock.sleep(due - now)

    async def _poll_once(self, scan: DeviceScan, state: _ScanState) -> None:
        """One read, published; Bad after 3 periods without an answer, abandoned at timeout."""
        wall_start = time.monotonic()
        read = asyncio.create_task(scan.driver.read(scan.points), name=f"read {scan.device}")
        try:
            since = (
                state.last_good_at if state.last_good_at is not None else self._clock.monotonic()
            )
            comm_loss_in = (since + scan.stale_after - self._clock.monotonic()) / self._clock.speed
            if 0 <= comm_loss_in < scan.timeout_s:
                done, _ = await asyncio.wait({read}, timeout=max(comm_loss_in, 0.0))
                if not done:
                    reason = f"no answer for {STALE_INTERVALS} scan periods"
                    self._publish_failure(scan, state, Substatus.COMM_FAILURE, reason, count=False)
            remaining = scan.timeout_s - (time.monotonic() - wall_start)
            done, _ = await asyncio.wait({read}, timeout=max(remaining, 0.0))
            if not done:
                state.abandoned_reads += 1
                reason = f"no answer within {scan.timeout_s:g} s"
                self._publish_failure(scan, state, Substatus.TIMEOUT, reason)
                return
            samples = read.result()
        except DriverError as err:
            self._publish_failure(scan, state, err.substatus, str(err))
            return
        except Exception as err:
            self._publish_unexpected(scan, state, err)
            return
        finally:
            if not read.done():
                # An abandoned read may still end in a DriverError after its cancellation;
                # retrieve it so asyncio does not log it as a never-retrieved traceback.
                read.add_done_callback(_retrieve_outcome)
                read.cancel()
        state.latencies_s.append(time.monotonic() - wall_start)
        self._succeeded(scan, state)
        self._publisher.publish(samples)

    def _note_requests(self, scan: DeviceScan, state: _ScanState) -> None:
        now = self._clock.monotonic()
        counts = state.request_counts
        counts.append((now, scan.driver.diagnostics().requests))
        horizon = _RATE_WINDOW_S * self._clock.speed
        while len(counts) > 2 and now - counts[0][0] > horizon:
            counts.popleft()

    # -- outcomes ------------------------------------------------------------------------------

    def _backoff(self, scan: DeviceScan, state: _ScanState) -> float:
        if not state.consecutive_failures:
            return scan.interval_s
        factor: int = min(1 << (state.consecutive_failures - 1), MAX_BACKOFF_INTERVALS)
        return scan.interval_s * factor

    def _succeeded(self, scan: DeviceScan, state: _ScanState) -> None:
        state.last_good_scan = self._clock.now()
        state.last_good_at = self._clock.monotonic()
        state.consecutive_failures = 0
        if not state.healthy:
            state.healthy = True
            log.info("%s: communication restored", scan.device)

    def _publish_unexpected(self, scan: DeviceScan, state: _ScanState, err: Exception) -> None:
        # A driver bug, not a field fault: keep the traceback once, keep scanning.
        if state.healthy:
            log.error(
                "%s: driver raised an unexpected error",
                scan.device,
                exc_info=(type(err), err, err.__traceback__),
            )
        reason = f"driver error: {type(err).__name__}: {err}"
        self._publish_failure(scan, state, Substatus.NON_SPECIFIC, reason)

    def _publish_failure(
        self,
        scan: DeviceScan,
        state: _ScanState,
        substatus: Substatus,
        reason: str,
        *,
        count: bool = True,
    ) -> None:
        """Give every point Bad quality with ``reason``; log once per outage."""
        if count:
            state.failed_scans += 1
            state.consecutive_failures += 1
            state.errors_by_kind[substatus.value] = state.errors_by_kind.get(substatus.value, 0) + 1
        state.last_error = reason
        if state.healthy:
            state.healthy = False
            log.warning("%s: scan failed: %s", scan.device, reason)
        now = self._clock.now()
        quality = Quality.bad(substatus, reason)
        for point in state.points.values():
            point.good = False
        self._publisher.publish(
            [Sample(point.name, None, quality, now, now) for point in scan.points]
        )


def _retrieve_outcome(task: asyncio.Task[list[Sample]]) -> None:
    """Mark an abandoned read's outcome as seen: it was already reported as a timeout."""
    if not task.cancelled():
        task.exception()
