"""A write the device accepted but could not confirm is reported as exactly that, and journaled.

The simulated tank RTU takes the write over Modbus TCP; then the RTU fails (error responses, or
silence) before the value is read back. The command is not a refusal: the pump may well be
running, so the result says the write was accepted and not confirmed, failed or timed_out.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlcenter.clock import WallClock
from controlcenter.commands.pipeline import CommandPipeline
from controlcenter.model import (
    Command,
    CommandOrigin,
    CommandPriority,
    CommandResult,
    CommandStatus,
    Sample,
    Substatus,
)
from drivers.base import (
    CommunicationTimeoutError,
    WriteUnconfirmedError,
    confirm_write,
)
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from plc_sim.device import FaultKind, PointValue, SimDevice
from tests.controlcenter.commands.support import PUMP_TAG, directory

TANK = "water.tank1_rtu"
PUMP = "water.tank1.pump_cmd"


def pump_on() -> Command:
    return Command(
        tag=PUMP,
        value=True,
        origin=CommandOrigin.OPERATOR,
        requested_by="olga",
        reason="fill for inspection",
        issued_at=datetime.now(UTC),
        priority=CommandPriority.MANUAL_OPERATOR,
    )


async def submit_pump_on(
    city: SimulatedCity, store: SqlHistorian, monkeypatch: pytest.MonkeyPatch, fault: FaultKind
) -> CommandResult:
    """Command the tank's pump on through the pipeline and the real Modbus driver; the RTU
    applies the write, then fails with ``fault`` before the value is read back."""
    accept_write = SimDevice.write

    def fail_after_write(device: SimDevice, tag: str, value: PointValue) -> None:
        accept_write(device, tag, value)
        if device.name == TANK and tag == PUMP:
            city.set_fault(TANK, fault)

    monkeypatch.setattr(SimDevice, "write", fail_after_write)
    host, port = city.endpoints()[TANK]
    clock = WallClock()
    config = ModbusDeviceConfig(host=host, port=port, timeout_s=0.5, retries=0)
    driver = ModbusDriver(TANK, config, clock)
    pipeline = CommandPipeline(
        [PUMP_TAG], {TANK: driver}, store, clock, timeout_s=10.0, users=directory
    )
    try:
        return await pipeline.submit(pump_on())
    finally:
        city.clear_fault(TANK)
        await driver.close()


@pytest.mark.parametrize(
    ("fault", "status"),
    [(FaultKind.ERROR, CommandStatus.FAILED), (FaultKind.OFFLINE, CommandStatus.TIMED_OUT)],
)
async def test_an_accepted_write_whose_readback_fails_is_reported_as_unconfirmed(
    tank_city: SimulatedCity,
    store: SqlHistorian,
    monkeypatch: pytest.MonkeyPatch,
    fault: FaultKind,
    status: CommandStatus,
) -> None:
    result = await submit_pump_on(tank_city, store, monkeypatch, fault)
    assert tank_city.water is not None
    assert tank_city.water.tank1.pump_command is True  # the write did land
    assert result.status is status, result.reason
    assert result.reason.startswith("write accepted by the device but not confirmed: ")
    assert "readback" in result.reason
    assert result.readback is None
    (journaled,) = store.read_commands()
    assert journaled.status is status
    assert journaled.reason == result.reason


async def test_confirm_write_keeps_the_readback_failure_as_its_cause() -> None:
    async def silent() -> Sample:
        raise CommunicationTimeoutError("no answer within 0.5 s")

    with pytest.raises(WriteUnconfirmedError) as raised:
        await confirm_write("rtu: write pump", silent())
    assert raised.value.substatus is Substatus.TIMEOUT
    assert str(raised.value) == "rtu: write pump: readback failed: no answer within 0.5 s"
    assert raised.value.__cause__ is not None
