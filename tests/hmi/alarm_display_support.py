"""A real alarm service on a real SQLite historian for the alarm displays' tests, and helpers
to read Dash component trees."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from alarms.conditions import ConditionChange
from alarms.service import AlarmService
from controlcenter.automation import AlarmDef, AlarmGuidance, AlarmKind, AlarmPriority
from controlcenter.model import Event
from historian.store import SqlHistorian

T0 = datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
"""12:00 CET at the site (Europe/Amsterdam)."""

TRIPPED = AlarmDef(
    "water.ps1.pump1.tripped",
    AlarmKind.DISCRETE,
    AlarmPriority.HIGH,
    tag="water.ps1.pump1.fault",
    device="water.ps1_rtu",
    state=True,
    area="water",
    asset="water.ps1",
    message="Pump 1 of station 1 tripped",
    guidance=AlarmGuidance("Drive fault", "Less supply to reservoir 2", "Reset the drive"),
)
TANK_LOW = AlarmDef(
    "water.tank2.level_low",
    AlarmKind.LOW,
    AlarmPriority.CRITICAL,
    tag="water.tank2.level",
    device="water.tank2_rtu",
    limit=1.0,
    area="water",
    asset="water.tank2",
    message="Reservoir 2 level low",
)
LAMP = AlarmDef(
    "lights.d1.c1.lamp_failed",
    AlarmKind.DISCRETE,
    AlarmPriority.LOW,
    tag="lights.d1.c1.lamp_failed",
    device="lights.d1_ctrl",
    state=True,
    area="lighting",
    asset="lights.d1.c1",
    message="Lamp failed in cabinet 1",
)
QUIET = AlarmDef(
    "heat.ss1.supply_high",
    AlarmKind.HIGH,
    AlarmPriority.MEDIUM,
    tag="heat.ss1.supply_temp",
    limit=95.0,
    area="heating",
    message="Supply too hot",
)
DEFS = (TRIPPED, TANK_LOW, LAMP, QUIET)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    @property
    def speed(self) -> float:
        """Real time."""
        return 1.0

    def now(self) -> datetime:
        """The clock's time."""
        return self.current

    def monotonic(self) -> float:
        """Seconds since the start."""
        return (self.current - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Move on by ``seconds``."""
        self.current += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """Move on by ``seconds``."""
        self.current += timedelta(seconds=seconds)


class StoreJournal:
    """The EventJournal port over the historian's event journal."""

    def __init__(self, store: SqlHistorian) -> None:
        self.store = store

    def record(self, event: Event) -> None:
        """Journal ``event``."""
        self.store.journal_event(event)


def make_service(store: SqlHistorian, clock: FakeClock) -> AlarmService:
    """The service over ``DEFS``, restored from ``store``."""
    service = AlarmService(DEFS, store, StoreJournal(store), clock)
    service.restore()
    return service


def raise_alarm(service: AlarmService, clock: FakeClock, alarm: str, value: object) -> None:
    """Activate ``alarm`` now with ``value``."""
    service.apply_conditions(
        [ConditionChange(alarm, clock.now(), True, None, value, "", "test")]  # type: ignore[arg-type]
    )


def clear_alarm(service: AlarmService, clock: FakeClock, alarm: str) -> None:
    """Clear ``alarm``'s condition now."""
    service.apply_conditions([ConditionChange(alarm, clock.now(), False, None, None, "", "test")])


# --- Dash component trees -----------------------------------------------------------------------


def walk(component: Any) -> Iterator[Any]:
    """Every component in the tree, depth first."""
    yield component
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            yield from walk(child)
    elif children is not None and not isinstance(children, str | int | float):
        yield from walk(children)


def find(component: Any, ident: object) -> Any:
    """The component with id ``ident``; raises KeyError."""
    for node in walk(component):
        if getattr(node, "id", None) == ident:
            return node
    raise KeyError(ident)


def text_of(component: Any) -> str:
    """Every text in the tree, joined by spaces."""
    parts: list[str] = []
    for node in walk(component):
        if isinstance(node, str | int | float):
            parts.append(str(node))
        else:
            children = getattr(node, "children", None)
            if isinstance(children, str | int | float):
                parts.append(str(children))
    return " ".join(parts)


def with_class(component: Any, name: str) -> list[Any]:
    """The components whose className contains ``name``."""
    return [
        node
        for node in walk(component)
        if name in str(getattr(node, "className", "") or "").split()
    ]
