"""node-opcua, an independent client, against the simulated city's OPC UA server.

Browse, Read with every TimestampsToReturn (OPC UA Part 4 5.10.2, 7.40), Write, a Read above
the advertised MaxNodesPerRead, and a subscription, as a commissioning engineer's tool sees them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from plc_sim.device import PointSpec
from plc_sim.servers.opcua.server import OpcUaDeviceServer
from tests.interop.opcua.node_process import NodeScript, start_script
from tests.plc_sim.servers.opcua.opcua_support import SIM_START, DictModel, SimTime

pytestmark = pytest.mark.timeout(90)

CABINET = "lights.d1_ctrl.c1"
SETPOINT = f"{CABINET}.dim_setpoint"
POWER = f"{CABINET}.power"
SPECS = (
    PointSpec(SETPOINT, "float", "%", writable=True, low=0, high=100, role="value"),
    PointSpec(POWER, "float", "kW", low=0, high=20),
)
MAX_NODES_PER_READ = 50


@dataclass
class City:
    """A simulated device's OPC UA server, its model and clock, and a node-opcua client."""

    model: DictModel
    server: OpcUaDeviceServer
    clock: SimTime
    client: NodeScript

    async def ask(self, command: str) -> Any:
        """One command to the node-opcua client; its JSON answer."""
        answer = json.loads(await self.client.send(command, timeout_s=20))
        assert "error" not in answer, answer
        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def city() -> AsyncIterator[City]:
    """One served device and one node-opcua client for the module (node starts in seconds)."""
    model = DictModel({SETPOINT: 100.0, POWER: 3.5})
    clock = SimTime()
    server = OpcUaDeviceServer(
        model.device(SPECS), source_time=clock, max_nodes_per_read=MAX_NODES_PER_READ
    )
    await server.start()
    try:
        client = await start_script("client.js", server.url)
        try:
            yield City(model, server, clock, client)
        finally:
            await client.stop()
    finally:
        await server.stop()


def iso(moment: datetime) -> str:
    """A time as node-opcua prints it (JavaScript's toISOString: milliseconds, Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def test_browse_finds_the_device_folder(city: City) -> None:
    answer = await city.ask("browse")
    assert "lights" in answer["names"]


@pytest.mark.parametrize(
    ("timestamps", "source", "server"),
    [
        ("Source", True, False),
        ("Server", False, True),
        ("Both", True, True),
        ("Neither", False, False),
    ],
)
async def test_reads_return_the_timestamps_asked_for(
    city: City, timestamps: str, source: bool, server: bool
) -> None:
    # The value last changed at SIM_START; the read is a minute later.
    city.clock.now = SIM_START + timedelta(minutes=1)
    for fast in (True, False):  # the fast Read path and asyncua's
        city.server.read_path.enabled = fast
        try:
            answer = await city.ask(f"read ns=2;s={POWER} {timestamps}")
        finally:
            city.server.read_path.enabled = True
        assert answer["value"] == 3.5
        assert answer["status"] == "Good"
        assert answer["source"] == (iso(SIM_START) if source else None)
        assert answer["server"] == (iso(city.clock.now) if server else None)


async def test_a_read_above_max_nodes_per_read_is_refused(city: City) -> None:
    answer = await city.ask(f"readmany {MAX_NODES_PER_READ} ns=2;s={POWER}")
    assert answer == {"status": "Good", "count": MAX_NODES_PER_READ}
    answer = await city.ask(f"readmany {MAX_NODES_PER_READ + 1} ns=2;s={POWER}")
    assert answer["status"] == "BadTooManyOperations"


async def test_a_write_reaches_the_model(city: City) -> None:
    answer = await city.ask(f"write ns=2;s={SETPOINT} Double 40.5")
    assert answer == {"status": "Good"}
    assert city.model.values[SETPOINT] == 40.5
    refused = await city.ask(f"write ns=2;s={POWER} Double 1.0")
    assert refused["status"] == "BadNotWritable"


async def test_a_subscription_sees_a_published_change(city: City) -> None:
    first = await city.ask(f"subscribe ns=2;s={POWER}")
    assert first["value"] == 3.5
    city.clock.now = SIM_START + timedelta(minutes=2)
    city.model.values[POWER] = 7.25
    await city.server.publish()
    change = await city.ask("next")
    assert change["value"] == 7.25
    assert change["source"] == iso(city.clock.now)
