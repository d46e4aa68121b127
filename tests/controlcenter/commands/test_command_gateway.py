"""The command pipeline called from another thread (the HMI's workers) through the gateway:
the same checks, results and journal as on the loop, and refusals as the ports name them."""

from __future__ import annotations

import asyncio

import pytest

from controlcenter.model import CommandStatus
from controlcenter.ports import CommandOperations, SelectionRefusedError
from controlcenter.runtime.command_gateway import LoopCommandGateway
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import PUMP, USERS, PipelineFactory, pump_command

OLGA, OTTO, VERA = USERS["olga"], USERS["otto"], USERS["vera"]


async def test_select_and_operate_from_a_worker_thread(
    tank_city: SimulatedCity, store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    gateway: CommandOperations = LoopCommandGateway(make_pipeline(), asyncio.get_running_loop())
    selection = await asyncio.to_thread(gateway.select, PUMP, OLGA)
    assert selection.tag == PUMP and selection.user == "olga"
    with pytest.raises(SelectionRefusedError, match="selected by olga"):
        await asyncio.to_thread(gateway.select, PUMP, OTTO)
    result = await asyncio.to_thread(
        lambda: gateway.operate(selection.selection_id, OLGA, True, "fill for inspection")
    )
    assert result.status is CommandStatus.CONFIRMED, result.reason
    assert result.readback is True
    assert pump_command(tank_city) is True
    assert [o.tag for o in await asyncio.to_thread(gateway.overrides)] == [PUMP]
    assert [c.command.reason for c in store.read_commands(tag=PUMP)] == ["fill for inspection"]


async def test_refusals_cross_the_thread_as_the_ports_name_them(
    tank_city: SimulatedCity, make_pipeline: PipelineFactory
) -> None:
    gateway = LoopCommandGateway(make_pipeline(), asyncio.get_running_loop())
    with pytest.raises(PermissionError, match="viewer"):
        await asyncio.to_thread(gateway.select, PUMP, VERA)
    with pytest.raises(SelectionRefusedError, match="unknown tag"):
        await asyncio.to_thread(gateway.select, "water.no_such_pump", OLGA)
    with pytest.raises(SelectionRefusedError):
        await asyncio.to_thread(gateway.cancel, "forged-selection-id", OLGA)
    forged = await asyncio.to_thread(
        lambda: gateway.operate("forged-selection-id", OLGA, True, "guess")
    )
    assert forged.status is CommandStatus.REJECTED
