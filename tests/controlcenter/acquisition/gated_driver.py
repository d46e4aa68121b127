"""A fake driver whose reads the test holds and releases, timed on a manual wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from controlcenter.model import DataType, Quality, Sample, TagDef, Value
from drivers.base import (
    DriverDiagnostics,
    DriverError,
    SampleCallback,
    SubscriptionUnsupportedError,
)
from tests.controlcenter.acquisition.manual_time import ManualWallTime

STAMP = datetime(2030, 1, 1, tzinfo=UTC)


def points_of(device: str, count: int = 3) -> tuple[TagDef, ...]:
    """``count`` float points of ``device``."""
    return tuple(TagDef(f"{device}.p{i}", device, f"p{i}", DataType.FLOAT) for i in range(count))


class GatedDriver:
    """Answers reads at once, unless held; can fail every read or push instead."""

    def __init__(self, wall: ManualWallTime, name: str = "gated", *, can_push: bool = False):
        self.name = name
        self.can_push = can_push
        self.callback: SampleCallback | None = None
        self.failure: DriverError | None = None
        self.read_started_at: list[float] = []
        self.point_quality: dict[str, Quality] = {}
        """Qualities the device reports for some points (the others read Good)."""
        self.pending = False
        self.wall = wall
        self._open = asyncio.Event()
        self._open.set()

    @property
    def device(self) -> str:
        return self.name

    def hold(self) -> None:
        """Reads from now on wait for ``release``."""
        self._open.clear()

    def release(self) -> None:
        """Let held and later reads answer."""
        self._open.set()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        self.read_started_at.append(self.wall.monotonic())
        if self.failure is not None:
            raise self.failure
        self.pending = True
        try:
            await self._open.wait()
        finally:
            self.pending = False
        return [self._sample(point) for point in points]

    def _sample(self, point: TagDef) -> Sample:
        quality = self.point_quality.get(point.name, Quality.good())
        value = 1.0 if quality.is_good else None
        return Sample(point.name, value, quality, STAMP, STAMP)

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        if not self.can_push:
            raise SubscriptionUnsupportedError("polled only")
        self.callback = callback

    def push(self, samples: list[Sample]) -> None:
        """Deliver samples as the device would."""
        assert self.callback is not None
        self.callback(samples)

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        return value

    def diagnostics(self) -> DriverDiagnostics:
        return DriverDiagnostics(self.name, True, len(self.read_started_at), 0)


class MultiRequestDriver(GatedDriver):
    """Reads with several requests, each answered after ``answer_s`` of manual wall time.

    With ``silent_requests`` set, those requests (by index) time out in the driver instead:
    it counts a timeout, as a real driver does, and goes on with the next request.
    """

    def __init__(self, wall: ManualWallTime, requests: int, answer_s: float) -> None:
        super().__init__(wall, "multi")
        self.requests_per_read = requests
        self.answer_s = answer_s
        self.silent_requests: frozenset[int] = frozenset()
        self.requests = 0
        self.errors_by_kind: dict[str, int] = {}

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        self.read_started_at.append(self.wall.monotonic())
        for index in range(self.requests_per_read):
            self.requests += 1
            await self.wall.sleep(self.answer_s)
            if index in self.silent_requests:
                self.errors_by_kind["timeout"] = self.errors_by_kind.get("timeout", 0) + 1
        return [self._sample(point) for point in points]

    def diagnostics(self) -> DriverDiagnostics:
        errors = sum(self.errors_by_kind.values())
        return DriverDiagnostics(
            self.name, True, self.requests, errors, errors_by_kind=dict(self.errors_by_kind)
        )
