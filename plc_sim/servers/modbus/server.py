"""Any simulated device served as a Modbus TCP RTU (pymodbus' server).

The register map comes from ``plc_sim.servers.modbus.register_map`` (one block per asset and
table, holes between blocks). Addresses are zero-based protocol addresses (Modbus Application
Protocol v1.1b3, 4.4). The device answers on its own unit identifier; a request to any other unit
answers exception 11 (gateway target device failed to respond, MAP 7), as a Modbus TCP gateway
does, for every address up to the device map's extent.

Reads (FC1-FC4) of the device's unit are answered from the server's own image (one list per
table, registers as 16-bit values and bits as bools, indexed by address) by this module's
request classes, which pymodbus takes as custom PDUs: its ``SimDevice`` datastore checks every
register of a request one at a time and encodes answers register by register, which with
thousands of values read a second made the simulator, not the center, the limit of
``controlcenter bench poll``. Writes still go through the ``SimDevice`` and its action
(``_on_access``), which copies what it accepts into the image.

Access rules (MAP 7 exception codes):

- a request is screened before anything else (``plc_sim.servers.modbus.request_check``): an
  unsupported function code answers 1; a quantity outside the function's limits, a byte count
  that does not match the quantity or the bytes that follow, or an FC5 value other than 0x0000
  or 0xFF00 answers 3; a range beyond address 65535 answers 2. Every exception reply carries the
  request's function code + 0x80 (pymodbus answers a request it cannot decode with 0x80);
- FC43 / MEI 14 (Read Device Identification, MAP 6.21) answers the basic objects VendorName,
  ProductCode and MajorMinorRevision (``plc_sim.servers.modbus.identification``);
- an access to an undefined address (a hole between blocks, or past the map) answers 2;
- FC5/FC15 write coils, FC6/FC16 write holding registers; each written point goes to
  ``device.write``. A write that covers only part of a multi-register value (one register of a
  float32) or a value the device refuses (out of range, wrong kind) answers 3;
- a holding register then holds the setpoint as commanded; the physics loop's ``publish()``
  copies every point's value (``device.read``) into the image, blocks with a change only.

Faults (``device.faults``, read on every request and reconciled by ``publish()``):
offline → requests are never answered while it lasts (the connection stays open); refusing →
nothing listens on the port (connections refused) until it clears, then the server listens on
the same port again; slow → every answer after ``delay_s``; error → every request answers the
exception ``error_code`` (default 4, server device failure); stuck and noisy values come from
``device.read``; ``restart()`` (also ``device.restart_handler``) drops every connection and
listens again on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator import SimDevice as ModbusSimDevice

from plc_sim.device import FaultKind, PointValue, PointWriteError, SimDevice
from plc_sim.domain import DeviceServerBase
from plc_sim.servers.modbus.identification import DeviceIdentity, identification_answer
from plc_sim.servers.modbus.register_map import (
    BITS_PER_WORD,
    MapBlock,
    MappedPoint,
    ModbusMap,
    ModbusMapError,
    ModbusTable,
    WordOrder,
    allocate_map,
    decode_registers,
    value_struct,
)
from plc_sim.servers.modbus.request_check import (
    ILLEGAL_DATA_VALUE,
    READ_DEVICE_IDENTIFICATION,
    request_exception,
)

_log = logging.getLogger(__name__)

_READ_CODE: dict[ModbusTable, int] = {"coil": 1, "di": 2, "hr": 3, "ir": 4}
"""Read function code of each table (MAP 6.1-6.4)."""

_READ_TABLE: dict[int, ModbusTable] = {code: table for table, code in _READ_CODE.items()}
_REGISTER_TABLES: tuple[ModbusTable, ...] = ("hr", "ir")
_BIT_TABLES: tuple[ModbusTable, ...] = ("coil", "di")
_COIL_WRITES = frozenset({5, 15})
_REGISTER_WRITES = frozenset({6, 16})
_SINGLE_WRITES = frozenset({5, 6})
"""The single writes answer with the value just written: pymodbus reads it back after the
write, with the write's function code and no values."""

_ANY_OTHER_UNIT = 0
"""pymodbus SimDevice id 0 stands for every unit identifier not configured otherwise."""

_FAULT_POLL_S = 0.05
"""How often a request held by an offline or refusing device looks whether the fault cleared."""

_DEFAULT_ERROR = ExcCodes.DEVICE_FAILURE


class ModbusDeviceServer(DeviceServerBase):
    """Serves one ``SimDevice`` as a Modbus TCP RTU on ``host:port`` (port 0: any free port)."""

    protocol_label = "Modbus"

    def __init__(
        self,
        device: SimDevice,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        word_order: WordOrder = "big",
        contiguous_bits: bool = False,
        identity: DeviceIdentity | None = None,
    ) -> None:
        """Serve ``device`` (``contiguous_bits``: each bit table one block, see the map;
        ``identity``: what Read Device Identification answers, by default one made from the
        device's name)."""
        if device.protocol != "modbus":
            raise ValueError(f"device {device.name} speaks {device.protocol}, not modbus")
        if not 1 <= device.unit_id <= 247:
            # MAP over serial line 2.2: 1..247 address individual devices; 0 is broadcast.
            raise ValueError(f"device {device.name}: unit id {device.unit_id} outside 1..247")
        if word_order not in ("big", "little"):
            raise ValueError(f"word order must be 'big' or 'little', got {word_order!r}")
        super().__init__(device, host, port)
        self._word_order: WordOrder = word_order
        self._identity = identity or DeviceIdentity.of(device.name)
        self._screened: tuple[int, int] | None = None
        """Function code of the last request screened, and the exception it needs if pymodbus
        cannot decode it (see ``_screen_request``)."""
        self._map = allocate_map(device.points, contiguous_bits=contiguous_bits)
        self._coils = {point.offset: point for point in self._map.points if point.table == "coil"}
        self._holding = {
            offset: point
            for point in self._map.points
            if point.table == "hr"
            for offset in range(point.offset, point.end)
        }
        self._defined_words: dict[ModbusTable, frozenset[int]] = {
            table: frozenset(
                word
                for block in self._map.blocks_of(table)
                for word in range(block.start // BITS_PER_WORD, block.defined_end // BITS_PER_WORD)
            )
            for table in ("coil", "di")
        }
        self._structs = tuple(
            None if point.layout == "bool" else value_struct(point) for point in self._map.points
        )
        self._register_spans = {
            table: tuple((block.start, block.end) for block in self._map.blocks_of(table))
            for table in _REGISTER_TABLES
        }
        self._bit_words = {table: self._word_span(table) for table in _BIT_TABLES}
        self._block_of = [0] * len(self._map.points)
        for index, block in enumerate(self._map.blocks):
            for point in block.points:
                self._block_of[point.index] = index
        self._block_codecs = tuple(self._block_codec(block) for block in self._map.blocks)
        self._block_positions = tuple(
            tuple(point.index for point in block.points) for block in self._map.blocks
        )
        """Per block, where its points' values are in ``SimDevice.read_all``."""
        self._published: list[bytes | list[bool] | None] = [None] * len(self._map.blocks)
        """What the image holds per block: its values packed in wire order, or its bits."""
        self._registers: dict[ModbusTable, list[int]] = {}
        self._bits: dict[ModbusTable, list[bool]] = {}
        self._clear_image()
        self._server: ModbusTcpServer | None = None
        self._refused = False
        """Whether the listener is closed because of a ``refusing`` fault."""
        self._generation = 0
        """Counts listener closures: a request held across one belongs to a dropped connection."""
        self._lifecycle = asyncio.Lock()
        self._reconcile_task: asyncio.Task[None] | None = None
        device.restart_handler = self.restart

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    @property
    def register_map(self) -> ModbusMap:
        """The device's register map."""
        return self._map

    def addresses(self) -> dict[str, str]:
        """Tag → address in the center's Modbus driver format (``ir:20:float32``, ``coil:0``)."""
        return self._map.addresses()

    async def start(self) -> None:
        """Build the image, publish the device's values and start listening."""
        async with self._lifecycle:
            if self._server is not None:
                raise RuntimeError(f"the Modbus server of {self._device.name} is already running")
            self._refused = False
            await self._listen()
        await self.publish()

    async def stop(self) -> None:
        """Close the listener and every client connection; idempotent, never raises."""
        async with self._lifecycle:
            self._refused = False
            await self._close()
        task, self._reconcile_task = self._reconcile_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def restart(self) -> None:
        """Drop every connection and listen again on the same port, as a PLC reboot."""
        async with self._lifecycle:
            await self._close()
            self._refused = False
            await self._listen()
            _log.info("%s restarted on port %d", self._device.name, self._bound_port)
        await self.publish()

    async def publish(self) -> None:
        """Reconcile the listener with the faults and copy changed point values into the image.

        A block with a change is copied whole (blocks are contiguous; the holes between them
        hold nothing). Values are compared packed, a block at a time, the cheapest form: at
        scale 20 hundreds of devices publish ten times a second and most values do not change
        between two publishes.
        """
        async with self._lifecycle:
            await self._reconcile_listener()
            if self._server is None:
                return
            values = self._device.read_all()
            published = self._published
            for index, block in enumerate(self._map.blocks):
                codec = self._block_codecs[index]
                positions = self._block_positions[index]
                if codec is None:
                    bits = [bool(values[position]) for position in positions]
                    if bits != published[index]:
                        self._bits[block.table][block.start : block.end] = bits
                        published[index] = bits
                    continue
                block_values = [values[position] for position in positions]
                packed = self._pack_block(block, codec, block_values)
                if packed != published[index]:
                    self._registers[block.table][block.start : block.end] = codec[1].unpack(packed)
                    published[index] = packed

    def _block_codec(self, block: MapBlock) -> tuple[struct.Struct, struct.Struct] | None:
        """How a register block's values become its registers: a struct packing every value
        and one reading the bytes back as registers (None for a bit block).

        Both little-endian for the little word order: a value packed little-endian and read
        as little-endian registers is its big-endian registers in reverse order, each register
        still most significant byte first (MAP 4.2).
        """
        if block.table in _BIT_TABLES:
            return None
        order = "<" if self._word_order == "little" else ">"
        codes = "".join(value_struct(point).format[1:] for point in block.points)
        return struct.Struct(order + codes), struct.Struct(f"{order}{block.end - block.start}H")

    def _pack_block(
        self,
        block: MapBlock,
        codec: tuple[struct.Struct, struct.Struct],
        values: list[PointValue],
    ) -> bytes:
        """A register block's values packed in one call (integers truncated, as ``int()``)."""
        numbers = [
            int(value) if point.layout in ("int16", "uint16") else value
            for point, value in zip(block.points, values, strict=True)
        ]
        try:
            return codec[0].pack(*numbers)
        except (struct.error, OverflowError, TypeError):
            for point, value in zip(block.points, values, strict=True):
                packer = self._structs[point.index]
                if packer is not None:
                    self._pack(point, packer, value)  # raises for the value that does not fit
            raise

    @staticmethod
    def _pack(point: MappedPoint, packer: struct.Struct, value: PointValue) -> bytes:
        """One value packed big-endian; ModbusMapError when it does not fit its layout."""
        number: float | int = int(value) if point.layout in ("int16", "uint16") else float(value)
        try:
            return packer.pack(number)
        except (struct.error, OverflowError) as err:
            raise ModbusMapError(f"{point.tag}: {value!r} does not fit {point.layout}") from err

    def _clear_image(self) -> None:
        """An image of zeros, as a freshly started RTU has until its first publish."""
        for table in _REGISTER_TABLES:
            spans = self._register_spans[table]
            self._registers[table] = [0] * (spans[-1][1] if spans else 0)
        for table in _BIT_TABLES:
            self._bits[table] = [False] * (self._bit_words[table][1] * BITS_PER_WORD)
        self._published = [None] * len(self._map.blocks)

    def _word_span(self, table: ModbusTable) -> tuple[int, int]:
        """First and end 16-bit word of a bit table's blocks (one spare word for no blocks)."""
        blocks = self._map.blocks_of(table)
        if not blocks:
            return 0, 1
        return blocks[0].start // BITS_PER_WORD, blocks[-1].defined_end // BITS_PER_WORD

    async def answer_read(self, request: ModbusPDU) -> ModbusPDU:
        """Answer a read (FC1-FC4) of this RTU's unit from the image.

        The checks come in the order pymodbus' simulator made them: a register range must lie
        in one block and a bit range within the table's words before anything else (else
        exception 2); then the device's faults; then every 16-bit word a bit range touches
        must be defined.
        """
        code, address, count = request.function_code, request.address, request.count
        table = _READ_TABLE[code]
        if table in _REGISTER_TABLES:
            spans = self._register_spans[table]
            if not any(start <= address and address + count <= end for start, end in spans):
                return ExceptionResponse(code, ExcCodes.ILLEGAL_ADDRESS)
            fault = await self._field_fault()
            if fault is not None:
                return ExceptionResponse(code, fault)
            registers = self._registers[table][address : address + count]
            return _REGISTER_ANSWERS[code](registers=registers)
        first = address // BITS_PER_WORD
        words = (address % BITS_PER_WORD + count + BITS_PER_WORD - 1) // BITS_PER_WORD
        low, high = self._bit_words[table]
        if first < low or first + words > high:
            return ExceptionResponse(code, ExcCodes.ILLEGAL_ADDRESS)
        fault = await self._field_fault()
        if fault is not None:
            return ExceptionResponse(code, fault)
        refused = self._check_bit_words(table, address, words)
        if refused is not None:
            return ExceptionResponse(code, refused)
        return _BIT_ANSWERS[code](bits=self._bits[table][address : address + count])

    async def answer_identification(self, read_code: int, object_id: int) -> ModbusPDU:
        """Answer Read Device Identification (FC43 / MEI 14, MAP 6.21) of this RTU's unit."""
        fault = await self._field_fault()
        if fault is not None:
            return ExceptionResponse(READ_DEVICE_IDENTIFICATION, fault)
        answer = identification_answer(self._identity, read_code, object_id)
        if isinstance(answer, int):
            return ExceptionResponse(READ_DEVICE_IDENTIFICATION, answer)
        return _IdentificationAnswer(answer)

    def _screen_request(self, sending: bool, data: bytes) -> bytes:
        """pymodbus' packet hook: refuse a malformed request with the exception MAP 6 gives.

        Called with the bytes received so far on a connection (and with every reply sent,
        passed through). The first whole request frame is checked by ``request_exception``; a
        malformed one has its function code replaced by 0, which pymodbus cannot decode: it then
        answers exception 1 with function byte 0x80, which ``_correct_exception`` turns into the
        request's function code + 0x80 and the exception found here. Both hooks run in the same
        synchronous call, so no other request comes between them.
        """
        if sending or len(data) < 8 or data[2:4] != b"\x00\x00":
            return data
        end = 6 + int.from_bytes(data[4:6], "big")
        if end <= 7 or len(data) < end:
            return data  # incomplete: pymodbus waits for the rest
        code = request_exception(data[7:end])
        self._screened = (data[7], ILLEGAL_DATA_VALUE if code is None else code)
        if code is None:
            return data
        return data[:7] + b"\x00" + data[8:]

    def _correct_exception(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus' PDU hook: an exception reply must carry the request's function code + 0x80
        (MAP 7), never 0x80 alone."""
        screened = self._screened
        if not (sending and screened is not None and isinstance(pdu, ExceptionResponse)):
            return pdu
        if pdu.function_code != _UNDECODED_EXCEPTION:
            return pdu
        self._screened = None
        function, code = screened
        return ExceptionResponse(
            function, code, device_id=pdu.dev_id, transaction=pdu.transaction_id
        )

    async def _reconcile_listener(self) -> None:
        """Stop listening while the device refuses connections; listen again once it clears."""
        refusing = self._device.faults.has(FaultKind.REFUSING)
        if refusing and self._server is not None:
            await self._close()
            self._refused = True
            _log.info("%s refuses connections on port %d", self._device.name, self._bound_port)
        elif not refusing and self._refused:
            await self._listen()
            self._refused = False
            _log.info("%s accepts connections again on port %d", self._device.name, self.port)

    async def _listen(self) -> None:
        """Create a server with a fresh image and listen (on the port bound before, if any)."""
        port = self._bound_port if self._bound_port is not None else self._requested_port
        handled = [type(base.__name__, (base,), {"server": self}) for base in _OWN_REQUESTS]
        server = ModbusTcpServer(
            self._sim_devices(),
            address=(self._host, port),
            custom_pdu=list(handled),
            trace_packet=self._screen_request,
            trace_pdu=self._correct_exception,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as err:
            raise OSError(f"{self._device.name}: cannot listen on {self._host}:{port}") from err
        listener = server.transport
        if not isinstance(listener, asyncio.Server) or not listener.sockets:
            await _shutdown(server)
            raise OSError(f"{self._device.name}: no listening socket on {self._host}:{port}")
        self._server = server
        self._bound_port = int(listener.sockets[0].getsockname()[1])
        # A new server starts from an empty image: every value is published again.
        self._clear_image()

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._generation += 1
        await _shutdown(server)

    def _sim_devices(self) -> list[ModbusSimDevice]:
        """The pymodbus devices: this RTU's four tables, and every other unit id."""
        tables = tuple(self._table_data(table) for table in ("coil", "di", "hr", "ir"))
        own = ModbusSimDevice(
            id=self._device.unit_id,
            simdata=(tables[0], tables[1], tables[2], tables[3]),
            action=self._on_access,
        )
        other_units = ModbusSimDevice(
            id=_ANY_OTHER_UNIT,
            simdata=[SimData(0, count=max(self._map.extent(), 1), datatype=DataType.REGISTERS)],
            action=_answer_unknown_unit,
        )
        return [own, other_units]

    def _table_data(self, table: ModbusTable) -> list[SimData]:
        blocks = self._map.blocks_of(table)
        if table in ("coil", "di"):
            if not blocks:
                # pymodbus needs a block per table; the access check refuses every word of it.
                return [SimData(0, values=[False] * BITS_PER_WORD, datatype=DataType.BITS)]
            return [
                SimData(
                    block.start,
                    values=[False] * (block.defined_end - block.start),
                    datatype=DataType.BITS,
                )
                for block in blocks
            ]
        if not blocks:
            return [SimData(0, count=1, datatype=DataType.INVALID)]
        # Addresses between the blocks are left out: pymodbus marks them invalid (exception 2).
        return [
            SimData(
                block.start, values=[0] * (block.end - block.start), datatype=DataType.REGISTERS
            )
            for block in blocks
        ]

    async def _on_access(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Apply faults and forward writes to the device (pymodbus action; reads of this unit
        are answered by ``answer_read``)."""
        if set_values is None and function_code in _SINGLE_WRITES:
            return None  # the echo of a single write just applied (MAP 6.5, 6.6)
        fault = await self._field_fault()
        if fault is not None:
            return fault
        if function_code in _COIL_WRITES and set_values is not None:
            return self._write_coils(address, [bool(bit) for bit in set_values])
        if function_code in _REGISTER_WRITES and set_values is not None:
            return self._write_registers(address, [int(word) for word in set_values])
        # Mask write (22) and read/write multiple (23) are not implemented by this RTU.
        return ExcCodes.ILLEGAL_FUNCTION

    async def _field_fault(self) -> ExcCodes | None:
        """Carry out the device's protocol faults for one request; the exception to answer."""
        faults = self._device.faults
        generation = self._generation
        while faults.has(FaultKind.OFFLINE) or faults.has(FaultKind.REFUSING):
            if faults.has(FaultKind.REFUSING):
                self._schedule_reconcile()
            if self._generation != generation:
                # The listener closed with this request's connection: nobody awaits the answer.
                raise asyncio.CancelledError
            await asyncio.sleep(_FAULT_POLL_S)
        if faults.has(FaultKind.SLOW):
            await asyncio.sleep(faults.delay_s)
        if faults.has(FaultKind.ERROR):
            return self._error_code(faults.error_code)
        return None

    def _error_code(self, code: int | None) -> ExcCodes:
        if code is None:
            return _DEFAULT_ERROR
        try:
            return ExcCodes(code)
        except ValueError:
            _log.warning(
                "%s: %d is no Modbus exception code, answering %d",
                self._device.name,
                code,
                _DEFAULT_ERROR,
            )
            return _DEFAULT_ERROR

    def _schedule_reconcile(self) -> None:
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.create_task(self.publish())

    def _check_bit_words(self, table: ModbusTable, address: int, words: int) -> ExcCodes | None:
        first = address // BITS_PER_WORD
        defined = self._defined_words[table]
        if all(word in defined for word in range(first, first + words)):
            return None
        return ExcCodes.ILLEGAL_ADDRESS

    def _write_coils(self, address: int, bits: list[bool]) -> ExcCodes | None:
        points: list[MappedPoint] = []
        for position in range(len(bits)):
            point = self._coils.get(address + position)
            if point is None:
                return ExcCodes.ILLEGAL_ADDRESS  # a spare bit or a hole: nothing to command
            points.append(point)
        for point, bit in zip(points, bits, strict=True):
            if not self._write_point(point, bit):
                return ExcCodes.ILLEGAL_VALUE
        self._bits["coil"][address : address + len(bits)] = bits
        return None

    def _write_registers(self, address: int, registers: list[int]) -> ExcCodes | None:
        end = address + len(registers)
        writes: list[tuple[MappedPoint, float | int]] = []
        offset = address
        while offset < end:
            point = self._holding.get(offset)
            if point is None:
                return ExcCodes.ILLEGAL_ADDRESS
            if point.offset != offset or point.end > end:
                # Part of a multi-register value: the device cannot act on half a number.
                return ExcCodes.ILLEGAL_VALUE
            words = registers[offset - address : point.end - address]
            writes.append((point, decode_registers(point, words, self._word_order)))
            offset = point.end
        for point, value in writes:
            if not self._write_point(point, value):
                return ExcCodes.ILLEGAL_VALUE
        self._registers["hr"][address:end] = registers
        return None

    def _write_point(self, point: MappedPoint, value: float | int | bool) -> bool:
        """Hand one written value to the device; False when it refuses it."""
        try:
            self._device.write(point.tag, value)
        except PointWriteError as err:
            _log.debug("%s refused a write: %s", self._device.name, err)
            return False
        # The image now holds what the client wrote; publish() rewrites it from the model.
        self._published[self._block_of[point.index]] = None
        return True


# The byte count of a read answer is one byte: at most 125 registers (MAP 6.3, 6.4).
_REGISTER_FRAMES = tuple(struct.Struct(f">B{count}H") for count in range(126))
# 1 to 8 bits, first in the least significant bit, to their byte (MAP 6.1, 6.2).
_BITS_BYTE: dict[tuple[bool, ...], int] = {
    tuple(bool(byte >> bit & 1) for bit in range(width)): byte
    for width in range(1, 9)
    for byte in range(1 << width)
}


class _HoldingRegistersAnswer(ReadHoldingRegistersResponse):
    """An FC3 answer, encoded in one ``struct`` call (pymodbus packs register by register)."""

    def encode(self) -> bytes:
        """Byte count, then the registers big-endian."""
        return _REGISTER_FRAMES[len(self.registers)].pack(2 * len(self.registers), *self.registers)


class _InputRegistersAnswer(ReadInputRegistersResponse):
    """An FC4 answer, encoded in one ``struct`` call."""

    def encode(self) -> bytes:
        """Byte count, then the registers big-endian."""
        return _REGISTER_FRAMES[len(self.registers)].pack(2 * len(self.registers), *self.registers)


def _pack_bits(bits: list[bool]) -> bytes:
    """A bit answer's data: the byte count, then the bits 8 to a byte, padded with zeros."""
    packed = bytes(_BITS_BYTE[tuple(bits[at : at + 8])] for at in range(0, len(bits), 8))
    return bytes([len(packed)]) + packed


class _CoilsAnswer(ReadCoilsResponse):
    """An FC1 answer, packed a byte at a time."""

    def encode(self) -> bytes:
        """Byte count, then the packed coils."""
        return _pack_bits(list(self.bits))


class _DiscreteInputsAnswer(ReadDiscreteInputsResponse):
    """An FC2 answer, packed a byte at a time."""

    def encode(self) -> bytes:
        """Byte count, then the packed inputs."""
        return _pack_bits(list(self.bits))


_REGISTER_ANSWERS: dict[int, type[ModbusPDU]] = {
    3: _HoldingRegistersAnswer,
    4: _InputRegistersAnswer,
}
_BIT_ANSWERS: dict[int, type[ModbusPDU]] = {1: _CoilsAnswer, 2: _DiscreteInputsAnswer}

_Update = Callable[[ModbusServerContext, int], Awaitable[ModbusPDU]]


async def _from_image(
    request: ModbusPDU,
    server: ModbusDeviceServer | None,
    context: ModbusServerContext,
    device_id: int,
    simulator: _Update,
) -> ModbusPDU:
    """A read of the server's own unit answered from its image; any other unit's by pymodbus'
    simulator (which answers exception 11)."""
    if server is None or device_id != server.device.unit_id:
        return await simulator(context, device_id)
    return await server.answer_read(request)


class _ReadCoilsFromImage(ReadCoilsRequest):
    """FC1, answered by ``server`` (set on a subclass per server)."""

    server: ClassVar[ModbusDeviceServer | None] = None

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer from the server's image."""
        return await _from_image(self, self.server, context, device_id, super().datastore_update)


class _ReadDiscreteInputsFromImage(ReadDiscreteInputsRequest):
    """FC2, answered by ``server`` (set on a subclass per server)."""

    server: ClassVar[ModbusDeviceServer | None] = None

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer from the server's image."""
        return await _from_image(self, self.server, context, device_id, super().datastore_update)


class _ReadHoldingRegistersFromImage(ReadHoldingRegistersRequest):
    """FC3, answered by ``server`` (set on a subclass per server)."""

    server: ClassVar[ModbusDeviceServer | None] = None

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer from the server's image."""
        return await _from_image(self, self.server, context, device_id, super().datastore_update)


class _ReadInputRegistersFromImage(ReadInputRegistersRequest):
    """FC4, answered by ``server`` (set on a subclass per server)."""

    server: ClassVar[ModbusDeviceServer | None] = None

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer from the server's image."""
        return await _from_image(self, self.server, context, device_id, super().datastore_update)


class _IdentificationAnswer(ModbusPDU):
    """A Read Device Identification answer, encoded by ``identification_answer``."""

    function_code = READ_DEVICE_IDENTIFICATION

    def __init__(self, body: bytes = b"") -> None:
        super().__init__()
        self.body = body

    def encode(self) -> bytes:
        """The answer after the function code."""
        return self.body


class _ReadDeviceIdentification(ModbusPDU):
    """FC43 / MEI 14, answered by ``server`` (set on a subclass per server); the request was
    screened before (four bytes, MEI type 14)."""

    function_code = READ_DEVICE_IDENTIFICATION
    server: ClassVar[ModbusDeviceServer | None] = None

    def __init__(self, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id)
        self.read_code = 0
        self.object_id = 0

    def encode(self) -> bytes:
        """MEI type, read device id code and object id."""
        return bytes([0x0E, self.read_code, self.object_id])

    def decode(self, data: bytes) -> None:
        """Take the read device id code and the object id."""
        self.read_code, self.object_id = data[1], data[2]

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        """Answer for the server's own unit; any other answers exception 11, as reads do."""
        server = self.server
        if server is None or device_id != server.device.unit_id:
            return ExceptionResponse(self.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
        return await server.answer_identification(self.read_code, self.object_id)


_OWN_REQUESTS: tuple[type[ModbusPDU], ...] = (
    _ReadCoilsFromImage,
    _ReadDiscreteInputsFromImage,
    _ReadHoldingRegistersFromImage,
    _ReadInputRegistersFromImage,
    _ReadDeviceIdentification,
)
"""Requests this module answers itself (pymodbus takes them as custom PDUs)."""

_UNDECODED_EXCEPTION = 0x80
"""The function byte pymodbus gives the exception reply to a request it cannot decode."""


async def _shutdown(server: ModbusTcpServer) -> None:
    try:
        await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus
    except (OSError, RuntimeError) as err:  # a socket already gone is not worth a traceback
        _log.debug("Modbus server shutdown: %s", err)


async def _answer_unknown_unit(
    _function_code: int,
    _start_address: int,
    _address: int,
    _count: int,
    _registers: list[int],
    _set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    # MAP 7, code 0x0B: the addressed unit does not answer behind this gateway.
    return ExcCodes.GATEWAY_NO_RESPONSE
