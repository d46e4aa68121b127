"""The simulated RTU's answers to malformed and unusual requests, byte for byte, over a socket.

Exception codes and function bytes per the Modbus Application Protocol v1.1b3 (6.1-6.21, 7).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse

from plc_sim.servers.modbus.identification import DeviceIdentity
from plc_sim.servers.modbus.server import ModbusDeviceServer
from tests.plc_sim.servers.modbus.test_plc_sim_modbus_server import UNIT, RtuModel, make_device


@dataclass
class RawClient:
    """Modbus TCP frames written and read by hand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    transaction: int = 0

    async def ask(self, pdu: bytes, unit: int = UNIT) -> bytes:
        """Send one request PDU; the reply's PDU (its MBAP header checked)."""
        self.transaction += 1
        header = struct.pack(">HHHB", self.transaction, 0, len(pdu) + 1, unit)
        self.writer.write(header + pdu)
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readexactly(7), 2.0)
        transaction, protocol, length, replying_unit = struct.unpack(">HHHB", reply)
        assert (transaction, protocol, replying_unit) == (self.transaction, 0, unit)
        return await asyncio.wait_for(self.reader.readexactly(length - 1), 2.0)


@dataclass
class Plant:
    model: RtuModel
    server: ModbusDeviceServer
    client: RawClient


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    model = RtuModel()
    server = ModbusDeviceServer(make_device(model))
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield Plant(model, server, RawClient(reader, writer))
    finally:
        writer.close()
        await server.stop()


def exception(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


def request(function: int, *words: int, tail: bytes = b"") -> bytes:
    return bytes([function]) + struct.pack(f">{len(words)}H", *words) + tail


async def test_write_single_coil_takes_only_0000_and_ff00(plant: Plant) -> None:
    for value in (0x1234, 0x0001, 0x00FF, 0xFFFF, 0xFF01):
        assert await plant.client.ask(request(5, 0, value)) == exception(5, 3)
        assert plant.model.values["rtu.pump1.cmd"] is False
    on = request(5, 0, 0xFF00)
    assert await plant.client.ask(on) == on  # MAP 6.5: the reply echoes the request
    assert plant.model.values["rtu.pump1.cmd"] is True
    off = request(5, 0, 0x0000)
    assert await plant.client.ask(off) == off
    assert plant.model.values["rtu.pump1.cmd"] is False


@pytest.mark.parametrize("function", [0x07, 0x08, 0x0B, 0x11, 0x14, 0x16, 0x17, 0x18, 0x41, 0x64])
async def test_an_unsupported_function_answers_exception_1_with_its_own_function_code(
    plant: Plant, function: int
) -> None:
    assert await plant.client.ask(request(function, 0, 1)) == exception(function, 1)


MALFORMED = [
    # MAP 6.1, 6.2: 1..2000 bits.
    (request(1, 0, 0), exception(1, 3)),
    (request(1, 0, 2001), exception(1, 3)),
    (request(2, 0, 0), exception(2, 3)),
    (request(2, 0, 2001), exception(2, 3)),
    # MAP 6.3, 6.4: 1..125 registers.
    (request(3, 0, 0), exception(3, 3)),
    (request(3, 0, 126), exception(3, 3)),
    (request(4, 0, 0), exception(4, 3)),
    (request(4, 0, 126), exception(4, 3)),
    # A range past address 65535 (MAP 6.3: starting address + quantity).
    (request(3, 0xFFFF, 2), exception(3, 2)),
    (request(1, 0xFFF0, 17), exception(1, 2)),
    # Implied lengths that do not fit the function (MAP 7, code 3).
    (request(3, 0), exception(3, 3)),
    (request(3, 0, 1, 0), exception(3, 3)),
    (request(6, 0), exception(6, 3)),
    (request(5, 0, 0xFF00, 0), exception(5, 3)),
    # MAP 6.11: 1..1968 coils, byte count N/8 rounded up, exactly that many bytes.
    (request(15, 0, 0, tail=b"\x00"), exception(15, 3)),
    (request(15, 0, 1969, tail=bytes([247]) + bytes(247)), exception(15, 3)),
    (request(15, 0, 1, tail=b"\x02\x01\x00"), exception(15, 3)),
    (request(15, 0, 9, tail=b"\x02\x01"), exception(15, 3)),
    (request(15, 0, 1, tail=b"\x01\x01\x00"), exception(15, 3)),
    # MAP 6.12: 1..123 registers, byte count 2N, exactly that many bytes.
    (request(16, 0, 0, tail=b"\x00"), exception(16, 3)),
    (request(16, 0, 124, tail=bytes([248]) + bytes(248)), exception(16, 3)),
    (request(16, 2, 1, tail=b"\x04\x00\x01\x00\x02"), exception(16, 3)),
    (request(16, 2, 1, tail=b"\x02\x00\x01\x00\x02"), exception(16, 3)),
    (request(16, 2, 2, tail=b"\x04\x00\x01"), exception(16, 3)),
    # FC43: MEI type 13 is not implemented; a request of the wrong length.
    (bytes([0x2B, 0x0D, 0x01, 0x00]), exception(0x2B, 1)),
    (bytes([0x2B, 0x0E, 0x01]), exception(0x2B, 3)),
]


@pytest.mark.parametrize(("asked", "expected"), MALFORMED, ids=[a.hex() for a, _ in MALFORMED])
async def test_a_malformed_request_answers_the_exception_of_map_section_6(
    plant: Plant, asked: bytes, expected: bytes
) -> None:
    assert await plant.client.ask(asked) == expected
    # The connection stays usable: the next well-formed request is answered.
    answer = await plant.client.ask(request(3, 2, 1))
    assert answer == bytes([3, 2]) + struct.pack(">H", 1)


async def test_limits_themselves_are_accepted(plant: Plant) -> None:
    assert (await plant.client.ask(request(2, 0, 2000)))[:2] == exception(2, 2)  # holes: 2
    assert (await plant.client.ask(request(2, 0, 1)))[:2] == bytes([2, 1])
    mode = request(6, 2, 2)
    assert await plant.client.ask(mode) == mode
    assert plant.model.values["rtu.pump1.mode"] == 2
    assert await plant.client.ask(request(6, 2, 3)) == exception(6, 3)  # above the point's high
    assert plant.model.values["rtu.pump1.mode"] == 2
    written = request(16, 2, 1, tail=b"\x02\x00\x01")
    assert await plant.client.ask(written) == written[:5]
    assert await plant.client.ask(request(15, 0, 1, tail=b"\x01\x01")) == request(15, 0, 1)
    assert plant.model.values["rtu.pump1.cmd"] is True


def objects_of(answer: bytes) -> tuple[bytes, dict[int, str]]:
    """The fixed fields (MEI type .. number of objects) and the objects of an FC43/14 answer."""
    assert answer[0] == 0x2B
    fixed, count = answer[1:7], answer[6]
    objects: dict[int, str] = {}
    at = 7
    for _ in range(count):
        object_id, length = answer[at], answer[at + 1]
        objects[object_id] = answer[at + 2 : at + 2 + length].decode("ascii")
        at += 2 + length
    assert at == len(answer)
    return fixed, objects


async def test_read_device_identification_answers_the_basic_objects(plant: Plant) -> None:
    fixed, objects = objects_of(await plant.client.ask(bytes([0x2B, 0x0E, 0x01, 0x00])))
    # MEI 14, code 1, conformity 0x81 (basic, stream and individual), no more, next 0, 3 objects.
    assert fixed == bytes([0x0E, 0x01, 0x81, 0x00, 0x00, 0x03])
    assert objects == {0: "City Simulation Works", 1: "SIM-RTU-TEST-RTU", 2: "2.1"}

    fixed, objects = objects_of(await plant.client.ask(bytes([0x2B, 0x0E, 0x04, 0x01])))
    assert fixed == bytes([0x0E, 0x04, 0x81, 0x00, 0x00, 0x01])
    assert objects == {1: "SIM-RTU-TEST-RTU"}

    # A stream from an object the device does not have restarts at object 0 (MAP 6.21).
    _, objects = objects_of(await plant.client.ask(bytes([0x2B, 0x0E, 0x01, 0x80])))
    assert list(objects) == [0, 1, 2]
    _, objects = objects_of(await plant.client.ask(bytes([0x2B, 0x0E, 0x01, 0x02])))
    assert list(objects) == [2]
    # Regular and extended categories are answered at the device's conformity level (basic).
    fixed, objects = objects_of(await plant.client.ask(bytes([0x2B, 0x0E, 0x02, 0x00])))
    assert fixed[:3] == bytes([0x0E, 0x02, 0x81]) and list(objects) == [0, 1, 2]


@pytest.mark.parametrize(
    ("asked", "unit", "expected"),
    [
        (bytes([0x2B, 0x0E, 0x04, 0x03]), UNIT, exception(0x2B, 2)),  # no such object
        (bytes([0x2B, 0x0E, 0x04, 0x80]), UNIT, exception(0x2B, 2)),
        (bytes([0x2B, 0x0E, 0x00, 0x00]), UNIT, exception(0x2B, 3)),  # no such access code
        (bytes([0x2B, 0x0E, 0x05, 0x00]), UNIT, exception(0x2B, 3)),
        (bytes([0x2B, 0x0E, 0x01, 0x00]), UNIT + 1, exception(0x2B, 11)),  # another unit
    ],
    ids=["object-3", "object-0x80", "code-0", "code-5", "other-unit"],
)
async def test_read_device_identification_refusals(
    plant: Plant, asked: bytes, unit: int, expected: bytes
) -> None:
    assert await plant.client.ask(asked, unit) == expected


def test_the_identity_is_made_from_the_device_name() -> None:
    identity = DeviceIdentity.of("water.tank1_rtu")
    assert identity.product_code == "SIM-WATER-TANK1-RTU"
    assert identity.vendor_name and identity.revision


async def test_a_standard_client_reads_the_device_identification(plant: Plant) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=plant.server.port, timeout=1.0, retries=0)
    assert await client.connect()
    try:
        basic = await client.read_device_information(read_code=1, object_id=0, device_id=UNIT)
        single = await client.read_device_information(read_code=4, object_id=2, device_id=UNIT)
    finally:
        client.close()
    assert isinstance(basic, ReadDeviceInformationResponse)
    assert isinstance(single, ReadDeviceInformationResponse)
    assert basic.information == {0: b"City Simulation Works", 1: b"SIM-RTU-TEST-RTU", 2: b"2.1"}
    assert (basic.conformity, basic.more_follows, basic.next_object_id) == (0x81, 0, 0)
    assert single.information == {2: b"2.1"}
