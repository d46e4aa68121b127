"""Helpers of the command pipeline's tests: a controlled clock, a real journal, users, an
in-memory override store, and pipelines wired to the simulated tank RTUs over Modbus TCP
(the fixtures are made available by this folder's conftest)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlcenter.automation import AreaDef
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    DataType,
    Override,
    Role,
    Sample,
    TagDef,
    User,
    Value,
)
from controlcenter.ports import Clock, InterlockChecker
from drivers.base import Driver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity

PUMP = "water.tank1.pump_cmd"
VALVE = "water.tank2.inlet_valve"
LEVEL = "water.tank1.level"
TANK1_RTU = "water.tank1_rtu"
TANK2_RTU = "water.tank2_rtu"

PUMP_TAG = TagDef(PUMP, TANK1_RTU, "coil:0", DataType.BOOL, writable=True)
LEVEL_TAG = TagDef(LEVEL, TANK1_RTU, "ir:0:float32", DataType.FLOAT, "m", 0.0, 5.0)
VALVE_TAG = TagDef(VALVE, TANK2_RTU, "hr:0:float32", DataType.FLOAT, "%", 0.0, 100.0, writable=True)
TAGS = (PUMP_TAG, LEVEL_TAG, VALVE_TAG)
AREAS = (AreaDef("water", ("water.*",)), AreaDef("lighting", ("lights.*",)))

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class ManualClock:
    """A clock the test advances by hand (satisfies ``ports.Clock``)."""

    def __init__(self, start: datetime = START) -> None:
        self._start = start
        self._elapsed = 0.0

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return 1.0

    def now(self) -> datetime:
        """The controlled time."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Seconds since the start."""
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self._elapsed += seconds


USERS = {
    user.name: user
    for user in (
        User("vera", Role.VIEWER),
        User("olga", Role.OPERATOR),
        User("otto", Role.OPERATOR),
        User("mike", Role.MAINTENANCE),
        User("erin", Role.ENGINEER),
        User("adam", Role.ADMIN),
        User("wanda", Role.OPERATOR, ("water",)),
        User("luke", Role.OPERATOR, ("lighting",)),
        User("rules", Role.OPERATOR),
    )
}


def directory(name: str) -> User:
    """The test site's users; KeyError for an unknown name."""
    return USERS[name]


class MemoryOverrideStore:
    """An ``OverrideStore`` in memory."""

    def __init__(self, stored: Sequence[Override] = ()) -> None:
        self._overrides = {override.tag: override for override in stored}
        self._lock = threading.Lock()

    def save_override(self, override: Override) -> None:
        """Store ``override``, replacing any of its tag."""
        with self._lock:
            self._overrides[override.tag] = override

    def clear_override(self, tag: str) -> None:
        """Forget the override of ``tag``."""
        with self._lock:
            self._overrides.pop(tag, None)

    def active_overrides(self) -> list[Override]:
        """Every stored override, ordered by tag."""
        with self._lock:
            return [self._overrides[tag] for tag in sorted(self._overrides)]


@dataclass
class FixedInterlocks:
    """An ``InterlockChecker`` blocking the listed (tag, value) pairs, or a whole tag."""

    blocked: dict[tuple[str, Value | None], str] = field(default_factory=dict)

    def blocking(self, tag: str, value: Value) -> str | None:
        """The finding for ``tag := value``, or None."""
        return self.blocked.get((tag, value)) or self.blocked.get((tag, None))


def command(
    tag: str,
    value: Value,
    *,
    by: str = "olga",
    reason: str = "test",
    priority: CommandPriority = CommandPriority.MANUAL_OPERATOR,
    origin: CommandOrigin | None = None,
) -> Command:
    """A command as an operator (or, at automation priority, a rule) sends it."""
    if origin is None:
        manual = priority is CommandPriority.MANUAL_OPERATOR
        origin = CommandOrigin.OPERATOR if manual else CommandOrigin.RULE
    return Command(tag, value, origin, by, reason, START, priority)


def rule_command(tag: str, value: Value, reason: str = "rule water.tank1_fill") -> Command:
    """A command of the rules' service identity at automation priority."""
    return command(tag, value, by="rules", reason=reason, priority=CommandPriority.AUTOMATION)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    """A real journal: the historian on a temporary SQLite file."""
    historian = SqlHistorian(f"sqlite:///{tmp_path / 'journal.db'}")
    yield historian
    historian.close()


@pytest.fixture
def clock() -> ManualClock:
    """The pipeline's controlled clock."""
    return ManualClock()


def modbus_driver(city: SimulatedCity, device: str, clock: Clock) -> ModbusDriver:
    """The real Modbus TCP driver of one of the city's RTUs."""
    host, port = city.endpoints()[device]
    return ModbusDriver(device, ModbusDeviceConfig(host=host, port=port, timeout_s=1.0), clock)


@pytest.fixture
async def rtus(tank_city: SimulatedCity, clock: ManualClock) -> AsyncIterator[dict[str, Driver]]:
    """Real Modbus drivers of the two tank RTUs of a simulated city on free ports."""
    drivers: dict[str, Driver] = {
        name: modbus_driver(tank_city, name, clock) for name in (TANK1_RTU, TANK2_RTU)
    }
    try:
        yield drivers
    finally:
        for driver in drivers.values():
            await driver.close()


PipelineFactory = Callable[..., CommandPipeline]


@pytest.fixture
def make_pipeline(
    rtus: dict[str, Driver], store: SqlHistorian, clock: ManualClock
) -> PipelineFactory:
    """Builds a pipeline on the real RTUs and journal; keyword arguments override the wiring."""

    def build(
        *,
        tags: Sequence[TagDef] = TAGS,
        interlocks: InterlockChecker | None = None,
        latest: Callable[[str], Sample | None] | None = None,
        overrides: MemoryOverrideStore | SqlHistorian | None = None,
        selection_timeout_s: float = 30.0,
    ) -> CommandPipeline:
        return CommandPipeline(
            tags,
            rtus,
            store,
            clock,
            timeout_s=3.0,
            users=directory,
            areas=AREAS,
            latest=latest,
            interlocks=interlocks,
            overrides=overrides if overrides is not None else MemoryOverrideStore(),
            selection_timeout_s=selection_timeout_s,
        )

    return build


def valve_position(city: SimulatedCity) -> float:
    """The inlet valve position of tank 2 (the city's first service reservoir), in %."""
    assert city.water is not None
    return city.water.reservoirs[0].inlet_valve_pct


def pump_command(city: SimulatedCity) -> bool:
    """The run command tank 1's feed pump holds."""
    assert city.water is not None
    return city.water.tank1.pump_command
