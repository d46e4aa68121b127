"""The scan engine: acquires every device at its own interval and publishes samples on the bus.

Each device has its own task, so a slow or dead device never delays another device's scan.
A device whose driver can push changes (OPC UA monitored items, BACnet COV) is subscribed; one
whose driver raises ``SubscriptionUnsupportedError`` (Modbus) is polled. Starts are staggered by
a random fraction of the interval, so devices of one scan class do not all fire at once.

Two times are at work. Scans are scheduled on the center's ``Clock`` (simulated time in the
demo, so ``--speed N`` scans N times as often and every sample is stamped with simulated time).
A network's silence, a read's timeout and the retry backoff are wall-clock facts: they are
measured on ``WallTime`` (the machine's monotonic clock), in wall seconds equal to the scan
class's seconds, so a healthy device is never flagged at any speed.

Quality rules, as operators expect them from a SCADA system:

- a read that fails gives every point of the device Bad quality with the driver's reason and
  sub-status (not_connected, comm_failure, timeout, device_failure...);
- a device that has not answered for 3 scan periods of wall time while a read is pending gives
  its points Bad comm_failure then, even if the read's timeout is longer; a read whose device
  answered none of its requests for the timeout is abandoned (Bad timeout), and so is any read
  after ``MAX_READ_TIMEOUTS`` timeouts: a read of many requests to a slow but answering device
  is not a silence;
- a subscribed point with no update within 3 expected intervals of wall time
  (``stale_after_s``) becomes Uncertain last_usable, keeping its last value, until the next
  update. A driver keeps its points fresh by pushing changes, or by calling the callback with an
  empty list as a keep-alive (the subscription is alive and nothing changed).

Silence says less than any failure a device or driver reported, so what the engine infers from
silence (comm_failure, last_usable, waiting_for_initial_data) only replaces a Good quality or
the absence of any value: a specific reason stays until the device itself reports again.

After a failed scan the next one runs on schedule; after n >= 2 consecutive failures the next
attempt waits at least interval x 2^(n-1) wall seconds from the start of the failed one, up to 8
intervals. A device logs one line when it fails and one when it recovers; field faults
(``DriverError``) never log a traceback.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from controlcenter.clock import WallClock
from controlcenter.model import (
    SCAN_LATENCY_BUCKETS_S,
    Quality,
    Sample,
    ScanDiagnostics,
    ScanMode,
    Substatus,
    TagDef,
    Value,
)
from controlcenter.ports import Clock, SamplePublisher
from drivers.base import Driver, DriverError, SubscriptionUnsupportedError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_BACKOFF_INTERVALS = 8
"""After failed scans the retry interval doubles up to this many scan intervals (wall time),
so a dead device costs little while a live one recovers within a few scans."""

STALE_INTERVALS = 3
"""Silence longer than this many scan intervals (wall time) is a comm loss or a stale point."""

_RATE_WINDOW_S = 60.0
"""Requests per second are measured over this many recent wall seconds."""

_LATENCY_SAMPLES = 1000

MAX_READ_TIMEOUTS = 4
"""A read whose device keeps answering is still abandoned after this many timeouts in all."""

_PROGRESS_CHECKS = 4
"""A pending read is checked for progress this many times per timeout (or silence limit)."""

_SILENCE_KINDS = frozenset(
    {Substatus.TIMEOUT.value, Substatus.COMM_FAILURE.value, Substatus.NOT_CONNECTED.value}
)
"""Driver error kinds that mean the device did not answer."""

_IDLE_CHECK_INTERVALS = 1.0
"""With every subscribed point already silent, silence is re-checked every this many intervals."""


class WallTime(Protocol):
    """The machine's monotonic time, in which silence, timeouts and backoff are measured.

    ``controlcenter.clock.WallClock`` is one; tests pass a clock they move by hand.
    """

    def monotonic(self) -> float:
        """Wall seconds from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of wall time."""
        ...


@dataclass(frozen=True, slots=True)
class DeviceScan:
    """One device to acquire: its driver, points, scan interval, read timeout and staleness.

    ``interval_s`` schedules scans on the center's clock (a simulated clock at speed N scans N
    times as often in wall time); the quality rules take it as wall seconds. ``timeout_s`` and
    ``stale_after_s`` are wall seconds. ``stale_after_s`` None means 3 x ``interval_s``.
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
        if self.stale_after_s is not None and not self.stale_after_s > 0:
            raise ValueError(f"{self.device}: stale_after_s must be positive")

    @property
    def device(self) -> str:
        """Name of the acquired device."""
        return self.driver.device

    @property
    def stale_after(self) -> float:
        """Wall seconds of silence after which a device is lost or a subscribed point stale."""
        if self.stale_after_s is not None:
            return self.stale_after_s
        return STALE_INTERVALS * self.interval_s


@dataclass(slots=True)
class _PointState:
    """What the engine last saw of a subscribed point (times are wall time)."""

    value: Value | None = None
    source_time: datetime | None = None
    updated_at: float = 0.0
    silent: bool = False
    """Silent beyond ``stale_after`` (noted once per silence, whatever was published)."""
    stale: bool = False
    """Published Uncertain last_usable for this silence."""


@dataclass(slots=True)
class _ScanState:
    healthy: bool = True
    mode: ScanMode = ScanMode.POLL
    scans: int = 0
    scans_on_time: int = 0
    failed_scans: int = 0
    abandoned_reads: int = 0
    missed_scans: int = 0
    outages: int = 0
    reconnects: int = 0
    was_connected: bool = False
    """The driver has been seen connected (a first connect is not a reconnect)."""
    connection_lost: bool = False
    """Seen not connected after having been connected, and not yet seen connected again."""
    consecutive_failures: int = 0
    last_good_scan: datetime | None = None
    answered_at: float | None = None
    """Wall time of the last answer (or of the first attempt, before any answer)."""
    retry_not_before: float = 0.0
    """Wall time before which a failing device is not asked again (backoff)."""
    last_error: str = ""
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    latency_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(SCAN_LATENCY_BUCKETS_S) + 1)
    )
    latency_sum_s: float = 0.0
    request_counts: deque[tuple[float, int]] = field(default_factory=deque)
    points: dict[str, _PointState] = field(default_factory=dict)
    """Subscribed points only."""
    qualities: dict[str, Quality] = field(default_factory=dict)
    """The last quality published for each point of the device."""
    failure_quality: Quality | None = None
    """The quality of the engine's last reported failure (to tell it from a driver's)."""


class _ReadProgress:
    """Whether a device answers the requests of a read that is still pending.

    A driver counts each request it sends (``DriverDiagnostics.requests``) and each failure by
    kind. Requests are sent one after another on a device's connection, so a request sent
    after the read's first one means the device answered an earlier one, unless the driver
    meanwhile counted a silence (timeout, lost connection). The wall time of the last such
    evidence is ``answered_at``.
    """

    def __init__(self, driver: Driver, started: float) -> None:
        self._driver = driver
        requests, self._silences = self._counts()
        self._requests = requests + 1  # the read's first request proves nothing yet
        self.answered_at = started

    def _counts(self) -> tuple[int, int]:
        diagnostics = self._driver.diagnostics()
        kinds = diagnostics.errors_by_kind
        return diagnostics.requests, sum(kinds.get(kind, 0) for kind in _SILENCE_KINDS)

    def advanced(self, now: float) -> bool:
        """Whether the device answered since the last check (then ``answered_at`` is now)."""
        requests, silences = self._counts()
        if silences != self._silences or requests <= self._requests:
            return False
        self._requests = requests
        self.answered_at = now
        return True


def silence_may_replace(previous: Quality | None) -> bool:
    """Whether a quality inferred from silence may replace ``previous``.

    Silence tells less than any reason a device or driver gave: it only degrades a Good value
    or the absence of one (no value yet), never a reported Bad or Uncertain reason.
    """
    return (
        previous is None
        or previous.is_good
        or previous.substatus is Substatus.WAITING_FOR_INITIAL_DATA
    )


class ScanEngine:
    """Runs one acquisition task per device until cancelled."""

    def __init__(
        self,
        scans: Sequence[DeviceScan],
        publisher: SamplePublisher,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        wall: WallTime | None = None,
    ) -> None:
        names = [scan.device for scan in scans]
        if len(set(names)) != len(names):
            raise ValueError("each device may be scanned by one DeviceScan only")
        self._scans = tuple(scans)
        self._publisher = publisher
        self._clock = clock
        self._wall: WallTime = wall if wall is not None else WallClock()
        self._rng = rng or random.Random()
        self._states = {scan.device: _ScanState() for scan in scans}

    @property
    def scans(self) -> tuple[DeviceScan, ...]:
        """The devices this engine acquires."""
        return self._scans

    async def run(self) -> None:
        """Acquire every device until cancelled."""
        if not self._scans:
            # Nothing to acquire (every device is an edge's): still run until cancelled, so
            # that a center does not take the end of this task for a failure and stop.
            await asyncio.Event().wait()
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
            outages=state.outages,
            reconnects=state.reconnects,
            latency_buckets=tuple(state.latency_buckets),
            latency_sum_s=state.latency_sum_s,
        )

    def _request_rate(self, state: _ScanState, requests: int) -> float:
        counts = state.request_counts
        if not counts:
            return 0.0
        first_at, first_count = counts[0]
        elapsed = self._wall.monotonic() - first_at
        return (requests - first_count) / elapsed if elapsed > 0 else 0.0

    async def _run_device(self, scan: DeviceScan) -> None:
        # Staggered start: devices with the same interval do not all fire at once.
        await self._clock.sleep(self._rng.uniform(0, scan.interval_s))
        state = self._states[scan.device]
        state.answered_at = self._wall.monotonic()  # silence is counted from the first attempt
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
            attempt = asyncio.ensure_future(
                scan.driver.subscribe(
                    scan.points,
                    lambda samples: self._on_pushed(scan, samples),
                    # The device samples in wall-clock time; the scan class is clock time.
                    interval_s=scan.interval_s / self._clock.speed,
                )
            )
            started = self._wall.monotonic()
            try:
                if not await self._finished_within(attempt, scan.timeout_s):
                    reason = f"subscription not confirmed within {scan.timeout_s:g} s"
                    self._publish_failure(scan, state, Substatus.TIMEOUT, reason, started)
                else:
                    attempt.result()
                    state.mode = ScanMode.SUBSCRIBE
                    self._succeeded(scan, state)
                    # The failed attempts are over: what they published no longer stands, unlike
                    # what the driver pushed while subscribing (e.g. its own login error).
                    _forget(state.qualities, state.failure_quality)
                    now = self._wall.monotonic()
                    for point in scan.points:
                        state.points.setdefault(point.name, _PointState(updated_at=now))
                    return True
            except SubscriptionUnsupportedError:
                return False
            except DriverError as err:
                self._publish_failure(scan, state, err.substatus, str(err), started)
            except Exception as err:
                self._publish_unexpected(scan, state, err, started)
            finally:
                _abandon(attempt)
            await self._clock.sleep(scan.interval_s)
            await self._wall.sleep(state.retry_not_before - self._wall.monotonic())

    def _on_pushed(self, scan: DeviceScan, samples: list[Sample]) -> None:
        """Publish pushed samples and note when each point was last heard of."""
        state = self._states[scan.device]
        now = self._wall.monotonic()
        state.scans += 1
        state.scans_on_time += 1
        state.answered_at = now
        if not samples:  # keep-alive: every point is still current
            recovered: list[Sample] = []
            clock_now = self._clock.now()
            for tag, point in state.points.items():
                if point.stale and point.value is not None:
                    # Published Uncertain for its silence; the keep-alive says the last value
                    # still stands (OPC UA Part 4 5.13.1.1), so it is Good again.
                    source = point.source_time or clock_now
                    recovered.append(Sample(tag, point.value, Quality.good(), source, clock_now))
                point.updated_at = now
                point.silent = point.stale = False
            if recovered:
                self._succeeded(scan, state)
                self._publish(state, recovered)
            return
        any_good = False
        for sample in samples:
            point = state.points.setdefault(sample.tag, _PointState())
            point.updated_at = now
            point.silent = point.stale = False
            if sample.value is not None:
                point.value = sample.value
                point.source_time = sample.source_time
            any_good = any_good or sample.quality.is_good
        if any_good:
            self._succeeded(scan, state)
        self._publish(state, samples)

    async def _watch_subscription(self, scan: DeviceScan) -> None:
        """Mark points silent for ``stale_after`` wall seconds, as far as silence may say so."""
        state = self._states[scan.device]
        limit = scan.stale_after
        while True:
            now = self._wall.monotonic()
            deadlines = [
                seen.updated_at + limit for seen in state.points.values() if not seen.silent
            ]
            next_check = min(deadlines, default=now + _IDLE_CHECK_INTERVALS * scan.interval_s)
            await self._wall.sleep(next_check - now)
            self._mark_silent_points(scan, state, limit)

    def _mark_silent_points(self, scan: DeviceScan, state: _ScanState, limit: float) -> None:
        now_wall = self._wall.monotonic()
        now = self._clock.now()
        inferred: list[Sample] = []
        for point in scan.points:
            seen = state.points[point.name]
            if seen.silent or now_wall - seen.updated_at < limit:
                continue
            seen.silent = True
            previous = state.qualities.get(point.name)
            if not silence_may_replace(previous):
                continue  # a reported failure says more than the silence that follows it
            age = now_wall - seen.updated_at
            reason = f"no update for {age:.3g} s (expected every {scan.interval_s:g} s)"
            if previous is not None and previous.is_good and seen.value is not None:
                seen.stale = True
                quality = Quality.uncertain(Substatus.LAST_USABLE, reason)
                source = seen.source_time or now
                inferred.append(Sample(point.name, seen.value, quality, source, now))
            elif previous is None:
                quality = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, reason)
                inferred.append(Sample(point.name, None, quality, now, now))
        if inferred:
            self._publish(state, inferred)

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
            due = self._next_due(scan, state, due + scan.interval_s)
            await self._clock.sleep(due - self._clock.monotonic())
            backoff_s = state.retry_not_before - self._wall.monotonic()
            if backoff_s > 0:
                await self._wall.sleep(backoff_s)
                due = self._clock.monotonic()  # the retry restarts the schedule

    def _next_due(self, scan: DeviceScan, state: _ScanState, due: float) -> float:
        now = self._clock.monotonic()
        if due < now:
            # Fell behind: skip the missed scans instead of bursting to catch up.
            missed = int((now - due) // scan.interval_s) + 1
            due += missed * scan.interval_s
            if not state.consecutive_failures:  # a failure's overrun is not a miss
                state.missed_scans += missed
        return due

    async def _poll_once(self, scan: DeviceScan, state: _ScanState) -> None:
        """One read, published; Bad after 3 silent periods, abandoned after its timeout of
        silence (a read whose device keeps answering its requests is not silent)."""
        wall_start = self._wall.monotonic()
        progress = _ReadProgress(scan.driver, wall_start)
        read = asyncio.create_task(scan.driver.read(scan.points), name=f"read {scan.device}")
        try:
            silent_since = state.answered_at if state.answered_at is not None else wall_start
            # Only a device heard from within the limit can be lost now; one already silent
            # longer has failed with a reason of its own, which stands.
            watch_loss = silent_since + scan.stale_after >= wall_start
            check_every = min(scan.timeout_s, scan.stale_after) / _PROGRESS_CHECKS
            give_up_at = wall_start + MAX_READ_TIMEOUTS * scan.timeout_s
            while True:
                now = self._wall.monotonic()
                if progress.advanced(now):
                    state.answered_at = silent_since = now
                lost_at = silent_since + scan.stale_after
                if watch_loss and now >= lost_at:
                    watch_loss = False
                    reason = (
                        f"no answer for {now - silent_since:.3g} s ({STALE_INTERVALS} scan"
                        f" periods of {scan.interval_s:g} s)"
                    )
                    self._publish_silence(scan, state, Substatus.COMM_FAILURE, reason)
                abandon_at = min(progress.answered_at + scan.timeout_s, give_up_at)
                if now >= abandon_at:
                    state.abandoned_reads += 1
                    reason = f"no answer within {scan.timeout_s:g} s"
                    self._publish_failure(scan, state, Substatus.TIMEOUT, reason, wall_start)
                    return
                wake_at = min(abandon_at, now + check_every, lost_at if watch_loss else math.inf)
                if await self._finished_within(read, wake_at - now):
                    break
            samples = read.result()
        except DriverError as err:
            # Each point keeps the reason the driver gave it, if any (e.g. its own request).
            self._publish_failure(
                scan, state, err.substatus, str(err), wall_start, err.point_samples
            )
            return
        except Exception as err:
            self._publish_unexpected(scan, state, err, wall_start)
            return
        finally:
            _abandon(read)
        latency = self._wall.monotonic() - wall_start
        state.latencies_s.append(latency)
        state.latency_buckets[bisect.bisect_left(SCAN_LATENCY_BUCKETS_S, latency)] += 1
        state.latency_sum_s += latency
        state.answered_at = self._wall.monotonic()
        self._succeeded(scan, state)
        self._publish(state, samples)

    async def _finished_within(self, task: asyncio.Future[_T], seconds: float) -> bool:
        """Wait up to ``seconds`` of wall time for ``task``; whether it is done."""
        if task.done() or seconds <= 0:
            return task.done()
        timer = asyncio.ensure_future(self._wall.sleep(seconds))
        waited: set[asyncio.Future[Any]] = {task, timer}
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return task.done()

    def _note_requests(self, scan: DeviceScan, state: _ScanState) -> None:
        now = self._wall.monotonic()
        counts = state.request_counts
        counts.append((now, scan.driver.diagnostics().requests))
        while len(counts) > 2 and now - counts[0][0] > _RATE_WINDOW_S:
            counts.popleft()

    # -- outcomes ------------------------------------------------------------------------------

    def _publish(self, state: _ScanState, samples: Sequence[Sample]) -> None:
        qualities = state.qualities
        for sample in samples:
            qualities[sample.tag] = sample.quality
        self._publisher.publish(samples)

    def _succeeded(self, scan: DeviceScan, state: _ScanState) -> None:
        state.last_good_scan = self._clock.now()
        state.consecutive_failures = 0
        state.retry_not_before = 0.0
        # Only a lost or never-seen connection needs a look: successes are the hot path.
        if state.connection_lost or not state.was_connected:
            _note_connection(scan, state)
        if not state.healthy:
            state.healthy = True
            log.info("%s: communication restored", scan.device)

    def _publish_unexpected(
        self, scan: DeviceScan, state: _ScanState, err: Exception, started: float
    ) -> None:
        # A driver bug, not a field fault: keep the traceback once, keep scanning.
        if state.healthy:
            log.error(
                "%s: driver raised an unexpected error",
                scan.device,
                exc_info=(type(err), err, err.__traceback__),
            )
        reason = f"driver error: {type(err).__name__}: {err}"
        self._publish_failure(scan, state, Substatus.NON_SPECIFIC, reason, started)

    def _publish_failure(
        self,
        scan: DeviceScan,
        state: _ScanState,
        substatus: Substatus,
        reason: str,
        started: float,
        samples: Sequence[Sample] = (),
    ) -> None:
        """A reported failure of the attempt begun at ``started`` (wall time): every point Bad
        with ``reason`` (or the driver's own Bad ``samples``, one per point), the next attempt
        backed off; logged once per outage."""
        state.failed_scans += 1
        state.consecutive_failures += 1
        state.errors_by_kind[substatus.value] = state.errors_by_kind.get(substatus.value, 0) + 1
        failures = state.consecutive_failures
        if failures >= 2:
            factor = min(1 << (failures - 1), MAX_BACKOFF_INTERVALS)
            state.retry_not_before = started + factor * scan.interval_s
        self._mark_failed(scan, state, reason)
        if samples and len(samples) == len(scan.points):
            self._publish(state, list(samples))
            return
        now = self._clock.now()
        quality = state.failure_quality = Quality.bad(substatus, reason)
        self._publish(state, [Sample(point.name, None, quality, now, now) for point in scan.points])

    def _publish_silence(
        self, scan: DeviceScan, state: _ScanState, substatus: Substatus, reason: str
    ) -> None:
        """A failure inferred from silence: Bad only where no more specific reason stands."""
        self._mark_failed(scan, state, reason)
        now = self._clock.now()
        quality = Quality.bad(substatus, reason)
        qualities = state.qualities
        inferred = [
            Sample(point.name, None, quality, now, now)
            for point in scan.points
            if silence_may_replace(qualities.get(point.name))
        ]
        if inferred:
            self._publish(state, inferred)

    def _mark_failed(self, scan: DeviceScan, state: _ScanState, reason: str) -> None:
        state.last_error = reason
        _note_connection(scan, state)
        if state.healthy:
            state.healthy = False
            state.outages += 1
            log.warning("%s: scan failed: %s", scan.device, reason)


def _note_connection(scan: DeviceScan, state: _ScanState) -> None:
    """Count a reconnect when the driver is connected again after a loss was seen."""
    if scan.driver.diagnostics().connected:
        if state.connection_lost:
            state.reconnects += 1
            state.connection_lost = False
        state.was_connected = True
    elif state.was_connected:
        state.connection_lost = True


def _forget(qualities: dict[str, Quality], quality: Quality | None) -> None:
    """Drop the points whose last quality is this very object."""
    for tag in [tag for tag, last in qualities.items() if last is quality]:
        del qualities[tag]


def _abandon(task: asyncio.Future[_T]) -> None:
    """Cancel an unfinished call, retrieving its outcome so asyncio logs no traceback for it.

    An abandoned call may still end in a DriverError after its cancellation; it was already
    reported (as a timeout), so its outcome is only marked as seen."""
    if not task.done():
        task.add_done_callback(_retrieve_outcome)
        task.cancel()


def _retrieve_outcome(task: asyncio.Future[_T]) -> None:
    """Mark an abandoned call's outcome as seen."""
    if not task.cancelled():
        task.exception()
