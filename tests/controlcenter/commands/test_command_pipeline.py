"""The command pipeline: checked, written over Modbus, read back and journaled."""

from __future__ import annotations

import pytest

from controlcenter.clock import WallClock
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import CommandStatus, Value
from drivers.base import Driver
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    PUMP,
    TAGS,
    TANK1_RTU,
    command,
    directory,
    modbus_driver,
    pump_command,
)


def pipeline_on(drivers: dict[str, Driver], store: SqlHistorian) -> CommandPipeline:
    return CommandPipeline(TAGS, drivers, store, WallClock(), timeout_s=2.0, users=directory)


def unreachable(port: int) -> dict[str, Driver]:
    config = ModbusDeviceConfig(host="127.0.0.1", port=port, timeout_s=0.5)
    return {TANK1_RTU: ModbusDriver(TANK1_RTU, config, WallClock())}


async def test_confirmed_command_reaches_the_plc_and_is_journaled(
    tank_city: SimulatedCity, store: SqlHistorian
) -> None:
    driver = modbus_driver(tank_city, TANK1_RTU, WallClock())
    try:
        pipeline = pipeline_on({TANK1_RTU: driver}, store)
        result = await pipeline.submit(command(PUMP, True, by="alice", reason="fill"))
        assert result.reason == "not authorised: unknown user 'alice'"
        result = await pipeline.submit(command(PUMP, True, reason="fill for inspection"))
    finally:
        await driver.close()
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert result.readback is True
    assert pump_command(tank_city) is True
    rejected, journaled = store.read_commands()
    assert rejected.status is CommandStatus.REJECTED
    assert journaled.command.command_id == result.command.command_id
    assert journaled.command.requested_by == "olga"
    assert journaled.command.reason == "fill for inspection"
    assert journaled.status is CommandStatus.CONFIRMED


@pytest.mark.parametrize(
    ("tag", "value", "reason", "expected"),
    [
        ("water.tank1.nope", True, "x", "unknown tag 'water.tank1.nope'"),
        ("water.tank1.level", 2.0, "x", "tag 'water.tank1.level' is read-only"),
        ("water.tank1.pump_cmd", 1.5, "x", "limits: water.tank1.pump_cmd takes true or false"),
        ("water.tank1.pump_cmd", True, "  ", "a command needs a reason"),
        ("water.tank2.inlet_valve", 5.0, "x", "no driver for device 'water.tank2_rtu'"),
    ],
)
async def test_bad_commands_are_rejected_and_journaled(
    closed_port: int, store: SqlHistorian, tag: str, value: Value, reason: str, expected: str
) -> None:
    pipeline = pipeline_on(unreachable(closed_port), store)
    result = await pipeline.submit(command(tag, value, reason=reason))
    assert result.status is CommandStatus.REJECTED
    assert result.reason == expected
    (journaled,) = store.read_commands()
    assert journaled.status is CommandStatus.REJECTED and journaled.reason == expected


async def test_unreachable_device_fails_with_reason(closed_port: int, store: SqlHistorian) -> None:
    pipeline = pipeline_on(unreachable(closed_port), store)
    result = await pipeline.submit(command(PUMP, True))
    assert result.status is CommandStatus.FAILED
    assert result.reason
    (journaled,) = store.read_commands()
    assert journaled.status is CommandStatus.FAILED


async def test_a_pipeline_without_a_user_directory_writes_nothing(
    tank_city: SimulatedCity, store: SqlHistorian
) -> None:
    driver = modbus_driver(tank_city, TANK1_RTU, WallClock())
    try:
        pipeline = CommandPipeline(TAGS, {TANK1_RTU: driver}, store, WallClock())
        result = await pipeline.submit(command(PUMP, True))
    finally:
        await driver.close()
    assert result.reason == "not authorised: no user directory: nobody is authorised to command"
    assert pump_command(tank_city) is False
    assert store.read_commands()[0].status is CommandStatus.REJECTED


def test_the_selection_timeout_must_be_positive(store: SqlHistorian) -> None:
    with pytest.raises(ValueError, match="positive"):
        CommandPipeline(TAGS, {}, store, WallClock(), selection_timeout_s=0.0)
