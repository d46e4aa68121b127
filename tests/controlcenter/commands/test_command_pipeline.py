"""The command pipeline: checked, written over Modbus, read back and journaled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlcenter.clock import WallClock
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import Command, CommandOrigin, CommandPriority, CommandStatus, Value
from controlcenter.runtime.app import build_driver
from controlcenter.runtime.demo import load_demo_site
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlHistorian]:
    historian = SqlHistorian(f"sqlite:///{tmp_path / 'journal.db'}")
    yield historian
    historian.close()


def pipeline_for(endpoint: str, store: SqlHistorian) -> CommandPipeline:
    clock = WallClock()
    site = load_demo_site().with_endpoints({"water.tank1_rtu": endpoint})
    drivers = {device.name: build_driver(device, clock) for device in site.devices}
    return CommandPipeline(site.tag_defs(), drivers, store, clock, timeout_s=2.0)


def command(tag: str, value: Value, reason: str = "test") -> Command:
    return Command(
        tag=tag,
        value=value,
        origin=CommandOrigin.OPERATOR,
        requested_by="alice",
        reason=reason,
        issued_at=datetime.now(UTC),
        priority=CommandPriority.MANUAL_OPERATOR,
    )


async def test_confirmed_command_reaches_the_plc_and_is_journaled(
    tank_city: SimulatedCity, store: SqlHistorian
) -> None:
    host, port = tank_city.endpoints()["water.tank1_rtu"]
    pipeline = pipeline_for(f"{host}:{port}", store)
    result = await pipeline.submit(command("water.tank1.pump_cmd", True, "fill for inspection"))
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert result.readback is True
    assert tank_city.water is not None
    assert tank_city.water.tank1.pump_command is True
    (journaled,) = store.read_commands()
    assert journaled.command.command_id == result.command.command_id
    assert journaled.command.requested_by == "alice"
    assert journaled.command.reason == "fill for inspection"
    assert journaled.status is CommandStatus.CONFIRMED


@pytest.mark.parametrize(
    ("tag", "value", "reason", "expected"),
    [
        ("water.tank1.nope", True, "x", "unknown tag"),
        ("water.tank1.level", 2.0, "x", "read-only"),
        ("water.tank1.pump_cmd", 1.5, "x", "true or false"),
        ("water.tank1.pump_cmd", True, "  ", "needs a reason"),
    ],
)
async def test_bad_commands_are_rejected_and_journaled(
    closed_port: int, store: SqlHistorian, tag: str, value: Value, reason: str, expected: str
) -> None:
    pipeline = pipeline_for(f"127.0.0.1:{closed_port}", store)
    result = await pipeline.submit(command(tag, value, reason))
    assert result.status is CommandStatus.REJECTED
    assert expected in result.reason
    (journaled,) = store.read_commands()
    assert journaled.status is CommandStatus.REJECTED and expected in journaled.reason


async def test_unreachable_device_fails_with_reason(closed_port: int, store: SqlHistorian) -> None:
    pipeline = pipeline_for(f"127.0.0.1:{closed_port}", store)
    result = await pipeline.submit(command("water.tank1.pump_cmd", True))
    assert result.status is CommandStatus.FAILED
    assert result.reason
    (journaled,) = store.read_commands()
    assert journaled.status is CommandStatus.FAILED
