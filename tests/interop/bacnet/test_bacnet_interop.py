"""An independent BACnet/IP stack (@bacnet-js/client, npm) as a client of the simulated city.

The Node script ``bacnet_client.js`` runs one scenario against one of the city's BACnet devices
at its direct address (broadcasts do not cross ports on loopback) and prints what the device
answered as JSON; the assertions are here, next to the device's own state.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock
from plc_sim.device import SimDevice
from plc_sim.servers.bacnet.server import BacnetDeviceServer

HERE = Path(__file__).parent
SCRIPT = HERE / "bacnet_client.js"
SETUP_SCRIPT = ".ci/setup.d/40-bacnet-interop.sh"
SCENARIO_TIMEOUT_S = 30

# BACnetServicesSupported and BACnetObjectTypesSupported bit numbers (ASHRAE 135-2020, 21).
SUBSCRIBE_COV, READ_PROPERTY, READ_PROPERTY_MULTIPLE = 5, 12, 14
WRITE_PROPERTY, WRITE_PROPERTY_MULTIPLE, WHO_HAS, WHO_IS = 15, 16, 33, 34
OBJECT_TYPES = {0, 1, 2, 3, 4, 5, 8, 19}  # AI, AO, AV, BI, BO, BV, device, multi-state value

# Error classes and codes (21): property, object; the codes the device must answer.
PROPERTY, OBJECT = 2, 1
INVALID_DATATYPE, UNKNOWN_OBJECT, VALUE_OUT_OF_RANGE, WRITE_ACCESS_DENIED = 9, 31, 37, 40

SETPOINT = "bldg.school.z1.setpoint"  # analog-value:1, 15..28 degC, commandable
VALVE = "bldg.school.z1.valve"  # analog-output:1
FAN = "bldg.school.ahu.fan"  # binary-output:1


@dataclass(frozen=True, slots=True)
class CityDevice:
    """One BACnet device of a running simulated city."""

    city: SimulatedCity
    server: BacnetDeviceServer
    device: SimDevice


@pytest.fixture
async def school() -> AsyncIterator[CityDevice]:
    """The city's school building controller (BACnet/IP) on a free loopback port."""
    options = CityOptions(seed=3, domains=frozenset({"bldg"}))
    async with SimulatedCity(SimClock(), options) as city:
        device = next(d for d in city.devices() if d.protocol == "bacnet")
        server = city.server(device.name)
        assert isinstance(server, BacnetDeviceServer)
        assert server.addresses()[SETPOINT] == "analog-value:1"
        assert server.addresses()[FAN] == "binary-output:1"
        yield CityDevice(city, server, device)


def _tool_or_fail() -> str:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "@bacnet-js" / "client").is_dir():
        pytest.fail(f"node or @bacnet-js/client missing: run {SETUP_SCRIPT}")
    return node


async def run_client(scenario: str, target: CityDevice) -> dict[str, Any]:
    """Run one scenario of the Node client against the device; its JSON report."""
    node = _tool_or_fail()
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        scenario,
        f"127.0.0.1:{target.server.port}",
        str(target.device.device_instance),
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), SCENARIO_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


def answered(report: dict[str, Any], key: str) -> Any:
    """The value of an answer that must have succeeded."""
    entry = report[key]
    assert entry["ok"], f"{key}: {entry.get('error')}"
    return entry.get("value")


def error_of(report: dict[str, Any], key: str) -> str:
    """The error text of an answer that must have failed (not timed out)."""
    entry = report[key]
    assert not entry["ok"], f"{key} succeeded: {entry.get('value')}"
    error = str(entry["error"])
    assert "TIMEOUT" not in error, f"{key}: no answer"
    return error


def bacnet_error(cls: int, code: int) -> str:
    """How @bacnet-js/client words an Error PDU."""
    return f"BacnetError - Class:{cls} - Code:{code}"


def bits(bitstring: dict[str, Any]) -> set[int]:
    """The set bits of a bitstring as @bacnet-js/client decodes it (bit 0 = LSB of byte 0)."""
    octets: list[int] = bitstring["value"]
    return {i for i in range(bitstring["bitsUsed"]) if octets[i // 8] >> (i % 8) & 1}


async def test_reads_single_and_multiple_properties(school: CityDevice) -> None:
    report = await run_client("read", school)
    temperature = school.device.read("bldg.school.z1.temp")
    assert isinstance(temperature, float)
    assert answered(report, "presentValue")[0] == pytest.approx(temperature, abs=0.5)
    assert answered(report, "units") == [62]  # degrees-Celsius
    instance = school.device.device_instance
    assert answered(report, "wildcardIdentifier") == [{"type": 8, "instance": instance}]
    assert answered(report, "deviceName") == [school.device.name]
    local = school.city.clock.now().astimezone(ZoneInfo(school.city.options.timezone))
    offset = local.utcoffset()
    assert offset is not None
    assert answered(report, "utcOffset") == [-round(offset.total_seconds() / 60)]
    services = bits(answered(report, "servicesSupported")[0])
    assert services == {
        SUBSCRIBE_COV,
        READ_PROPERTY,
        READ_PROPERTY_MULTIPLE,
        WRITE_PROPERTY,
        WRITE_PROPERTY_MULTIPLE,
        WHO_HAS,
        WHO_IS,
    }
    assert bits(answered(report, "objectTypesSupported")[0]) == OBJECT_TYPES
    assert error_of(report, "unknownObject") == bacnet_error(OBJECT, UNKNOWN_OBJECT)
    device_part, point_part, missing_part = answered(report, "multiple")
    assert device_part["objectId"] == {"type": 8, "instance": instance}
    assert device_part["values"][0]["value"] == [school.device.name]
    assert device_part["values"][1]["value"] == [999]
    assert point_part["values"][0]["value"][0] == pytest.approx(temperature, abs=0.5)
    assert bits(point_part["values"][1]["value"][0]) == set()  # status-flags all clear
    assert missing_part["objectId"] == {"type": 0, "instance": 999}
    assert missing_part["values"][0]["value"] == [
        {"errorClass": OBJECT, "errorCode": UNKNOWN_OBJECT}
    ]


async def test_writes_with_priority_and_write_property_multiple(school: CityDevice) -> None:
    report = await run_client("write", school)
    answered(report, "writeSetpoint")
    assert answered(report, "setpointAfter") == [21.5]
    slots = answered(report, "priorityArray")
    assert len(slots) == 16
    assert slots[7] == 21.5
    assert slots.count(None) == 15
    answered(report, "relinquishSetpoint")
    answered(report, "writeFan")
    assert answered(report, "fanAfter") == [1]
    answered(report, "writeMultiple")
    server = school.server
    assert server.priority_array(SETPOINT)[7] == 22.0
    assert server.priority_array(VALVE)[7] == 40.0
    assert server.priority_array(FAN)[8] is True
    assert school.device.read(SETPOINT) == 22.0


async def test_subscribe_cov_delivers_notifications(school: CityDevice) -> None:
    report = await run_client("cov", school)
    answered(report, "subscribe")
    first = answered(report, "first")
    assert first["monitoredObjectId"] == {"type": 2, "instance": 1}
    assert first["initiatingDeviceId"]["instance"] == school.device.device_instance
    assert 0 < first["timeRemaining"] <= 60
    assert answered(report, "listed") == 1  # active-cov-subscriptions shows it
    answered(report, "write")
    assert answered(report, "change")["values"][0]["value"] == [24]
    answered(report, "subscribeConfirmed")
    assert answered(report, "firstConfirmed")["confirmed"] is True
    assert answered(report, "changeConfirmed")["values"][0]["value"] == [1]
    answered(report, "cancel")
    answered(report, "cancelConfirmed")
    assert answered(report, "listedAfterCancel") == 0


async def test_refusals_answer_the_standard_errors(school: CityDevice) -> None:
    report = await run_client("errors", school)
    # An answer, not silence; @bacnet-js/client 3.3 reads the WritePropertyMultiple-Error's
    # context-tagged form (15.10.1.3.2) as if it were a plain Error, so only that is checked.
    assert error_of(report, "failingWriteMultiple").startswith("BacnetError")
    assert school.server.priority_array(SETPOINT).count(None) == 16
    # The same invoke id is served again: the failed transaction was closed by its answer.
    assert isinstance(answered(report, "sameInvokeIdAgain")[0], float)
    assert error_of(report, "binaryEnumerationFive") == bacnet_error(PROPERTY, VALUE_OUT_OF_RANGE)
    assert answered(report, "fanAfter") == [0]  # the fan was not commanded
    assert error_of(report, "wrongDatatype") == bacnet_error(PROPERTY, INVALID_DATATYPE)
    assert error_of(report, "priorityArrayWrite") == bacnet_error(PROPERTY, WRITE_ACCESS_DENIED)
    assert error_of(report, "inputWrite") == bacnet_error(PROPERTY, WRITE_ACCESS_DENIED)
