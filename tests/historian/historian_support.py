"""Helpers shared by the historian tests: test tags, sample builders, a deadline poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from controlcenter.model import DataType, Quality, Sample, TagDef
from historian import SqlHistorian
from historian.engine import create_historian_engine
from historian.schema import samples as samples_table

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
"""A fixed UTC time with microseconds, so precision loss shows."""

LEVEL = "water.tank1.level"
STARTS = "water.pump1.starts"
RUNNING = "water.pump1.running"
MODE = "heat.ss3.mode"

TAGS = (
    TagDef(LEVEL, "rtu1", "40001", DataType.FLOAT, unit="m", low=0.0, high=8.0),
    TagDef(STARTS, "rtu1", "40003", DataType.INT, description="start counter"),
    TagDef(RUNNING, "rtu1", "10001", DataType.BOOL),
    TagDef(MODE, "plc3", "ns=2;s=Mode", DataType.STRING),
)


@dataclass(frozen=True)
class Database:
    """Where one test's historian lives."""

    backend: str
    url: str
    schema: str | None

    def open(self, *, busy_timeout_s: float = 30.0) -> SqlHistorian:
        """Open a historian store on this database."""
        return SqlHistorian(self.url, schema=self.schema, busy_timeout_s=busy_timeout_s)

    def admin_engine(self) -> Engine:
        """An engine on the same database and schema, for a test to inspect or break it."""
        return create_historian_engine(self.url, schema=self.schema)

    def break_samples_table(self) -> None:
        """Make every sample write fail (as a database outage does) by dropping the table."""
        engine = self.admin_engine()
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE samples")
        engine.dispose()

    def repair_samples_table(self) -> None:
        """End the outage begun by ``break_samples_table``."""
        engine = self.admin_engine()
        with engine.begin() as conn:
            samples_table.create(conn)
        engine.dispose()


def at(seconds: float) -> datetime:
    """``T0`` plus some seconds."""
    return T0 + timedelta(seconds=seconds)


def sample(
    tag: str,
    value: float | int | bool | str | None,
    when: datetime,
    quality: Quality | None = None,
) -> Sample:
    """A sample whose server time is a little after its source time."""
    return Sample(tag, value, quality or Quality.good(), when, when + timedelta(milliseconds=3))


def level_samples(count: int, start: datetime = T0, step_ms: int = 100) -> list[Sample]:
    """``count`` Good samples of the tank level, ``step_ms`` apart."""
    return [
        sample(LEVEL, i * 0.5, start + timedelta(milliseconds=i * step_ms)) for i in range(count)
    ]


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> float:
    """Poll ``condition`` until true; return the seconds it took; fail after ``timeout_s``."""
    started = time.monotonic()
    deadline = started + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started
