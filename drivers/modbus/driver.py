"""The Modbus TCP driver: planned reads, writes with readback, errors mapped to the driver tree.

pymodbus stays behind this module and ``drivers.modbus.connection``: its exceptions become
``drivers.base`` errors there, with the cause chained. A driver serves one unit id; drivers of
one endpoint share one ``ModbusConnection`` (see ``ModbusGateways``).

Reads follow a plan (``drivers.modbus.planner``) cached until the points or the device's known
holes change. A merged request answered with exception 2 (illegal data address, MAP 7) is split
in two and each half re-read, down to single points; a hole found between two halves that read
fine is remembered, so later plans go around it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymodbus.pdu import ExceptionResponse, ModbusPDU

from controlcenter.model import DataType, Quality, Sample, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    SubscriptionUnsupportedError,
    confirm_write,
)
from drivers.health import DriverHealth
from drivers.modbus.address import (
    REGISTER_BITS,
    ModbusAddress,
    Table,
    ValueType,
    check_compatible,
    parse_address,
)
from drivers.modbus.codec import (
    CodecError,
    RegisterLayout,
    encode_value,
)
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.connection import (
    ConnectionSettings,
    ModbusCall,
    ModbusConnection,
    quiet_pymodbus_logging,
)
from drivers.modbus.planner import ReadRequest, RejectedRanges, plan_reads

_log = logging.getLogger(__name__)

__all__ = ["EXCEPTION_NAMES", "ModbusDriver", "describe_exception", "quiet_pymodbus_logging"]

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
"""Exception codes of the Modbus Application Protocol v1.1b3, section 7."""

ILLEGAL_DATA_ADDRESS = 2
"""MAP 7: the request touches an address the device does not have."""

_GOOD = Quality.good()


def describe_exception(code: int) -> str:
    """Text for a Modbus exception code, e.g. ``Modbus exception 2 (illegal data address)``."""
    return f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown exception code')})"


@dataclass(frozen=True, slots=True)
class _Point:
    """A point to read: its tag definition, parsed address and whether it is scaled, with what
    decoding it needs worked out once rather than on every scan."""

    tag: TagDef
    address: ModbusAddress
    scaled: bool
    name: str
    floating: bool
    """Whether the raw value is a float (float32, float64), which may be non-finite."""
    plain: bool
    """Whether the raw value already is the engineering value (no scaling, same type)."""

    @classmethod
    def of(cls, tag: TagDef, address: ModbusAddress) -> _Point:
        """The point of ``tag`` at ``address`` (already checked to be compatible)."""
        scaled = _is_scaled(tag)
        floating = address.value_type in (ValueType.FLOAT32, ValueType.FLOAT64)
        # Unscaled, a bit is a bool tag's value, an integer an int tag's and a float a float
        # tag's; only an integer register read into a float tag still needs float().
        plain = not scaled and (floating or tag.data_type is not DataType.FLOAT)
        return cls(tag, address, scaled, tag.name, floating, plain)


@dataclass(frozen=True, slots=True)
class _PlannedRead:
    """One planned request with its points in member order and how to decode the answer."""

    request: ReadRequest
    points: tuple[_Point, ...]
    layout: RegisterLayout | None
    """Decodes a register table's answer in one pass (None for coils and discrete inputs)."""
    entries: tuple[int, ...]
    """Where each point's bit is in a coil or discrete input answer."""
    names: tuple[str, ...]
    plain: bool
    """Whether every raw value is its engineering value (a sample per value, nothing else)."""
    floating: bool
    """Whether any value is a float, which the device may report as infinite or NaN."""

    @classmethod
    def of(
        cls, request: ReadRequest, readable: Sequence[_Point], config: ModbusDeviceConfig
    ) -> _PlannedRead:
        """Work out once how to decode the answer to ``request``."""
        points = tuple(readable[member] for member in request.members)
        layout = None
        if not request.table.is_bit_table:
            layout = RegisterLayout(
                request.start,
                request.count,
                [point.address for point in points],
                config.word_order,
                config.byte_order,
            )
        return cls(
            request,
            points,
            layout,
            tuple(point.address.offset - request.start for point in points),
            tuple(point.name for point in points),
            all(point.plain for point in points),
            any(point.floating for point in points),
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A read of a given point sequence, parsed and planned once and reused every scan."""

    points: Sequence[TagDef]
    rejected_version: int
    config_errors: tuple[tuple[int, str], ...]
    readable: tuple[_Point, ...]
    slots: tuple[int, ...]
    reads: tuple[_PlannedRead, ...]


class ModbusDriver:
    """One Modbus TCP unit id, implementing ``drivers.base.Driver``."""

    def __init__(
        self,
        device: str,
        config: ModbusDeviceConfig,
        clock: Clock,
        *,
        connection: ModbusConnection | None = None,
    ) -> None:
        """Talk to ``config``'s unit id over ``connection`` (shared with other unit ids of the
        same endpoint) or, without one, over a connection of its own."""
        if connection is None:
            connection = ModbusConnection(ConnectionSettings.of(config))
        elif (connection.settings.host, connection.settings.port) != config.endpoint:
            raise ValueError(f"{device}: connection to {connection.where} is not {config.endpoint}")
        self._device = device
        self._config = config
        self._clock = clock
        self._connection = connection
        # Built once: every request names it (to report a failure or a recovery).
        self._where = f"{device} ({connection.where} unit {config.unit_id})"
        self._rejected = RejectedRanges()
        self._prepared: _Prepared | None = None
        self._health = DriverHealth(device, _log)

    @property
    def device(self) -> str:
        """Name of the device this driver talks to."""
        return self._device

    @property
    def config(self) -> ModbusDeviceConfig:
        """The connection settings."""
        return self._config

    @property
    def connected(self) -> bool:
        """Whether a connection to the device's endpoint is open."""
        return self._connection.connected

    @property
    def rejected_ranges(self) -> RejectedRanges:
        """The holes found in the device's address space (exception 2), which reads avoid."""
        return self._rejected

    async def connect(self) -> None:
        """Open the connection; raise NotConnectedError if the device cannot be reached."""
        try:
            await self._connection.connect(self._device)
        except DriverError as err:
            raise self._health.failed(type(err)(f"{self._device}: {err}"), err.__cause__) from err
        self._health.mark_available(self._where)

    async def close(self) -> None:
        """Close the connection (when no other unit id uses it); never raises."""
        self._connection.close(self._device)

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points with the fewest requests; one sample per point, in order.

        A point with an unusable address, or one the device answers with an exception, gets a
        Bad sample; so do the points of a request that fails (timeout, lost connection, a reply
        that does not fit the request), each with that request's table and range in its reason.
        Once the device stops answering, the remaining requests are not sent. When no request
        was answered, the first failure is raised with every point's sample
        (``DriverError.point_samples``).
        """
        prepared = self._prepare(points)
        samples: list[Sample | None] = [None] * len(points)
        if prepared.config_errors:
            now = self._clock.now()
            for slot, reason in prepared.config_errors:
                samples[slot] = _bad(points[slot], Substatus.CONFIG_ERROR, reason, now)
        readable, slots = prepared.readable, prepared.slots
        first_failure: DriverError | None = None
        link_down: DriverError | None = None
        answered = False
        for planned in prepared.reads:
            request = planned.request
            if link_down is not None:
                # The device stopped answering: a request sent now would only wait for its
                # own timeout. Its points say which request they were in and why it was not sent.
                cause = link_down.__cause__ or link_down
                reason = f"{self._block(request)}: not sent: {cause}"
                answers = self._failed_block(planned, link_down.substatus, reason)
            else:
                try:
                    answers, _ = await self._read_request(request, readable, planned)
                    answered = True
                except DriverError as err:
                    # A failure belongs to the points of its own request (its text names it).
                    first_failure = first_failure or err
                    if isinstance(err, NotConnectedError | CommunicationTimeoutError):
                        link_down = err
                    answers = self._failed_block(planned, err.substatus, str(err))
            for member, sample in zip(request.members, answers, strict=True):
                samples[slots[member]] = sample
        result = [sample for sample in samples if sample is not None]
        if len(result) != len(points):  # the plan covers every readable point once
            raise DriverError(f"{self._device}: read plan missed points")
        if first_failure is not None and not answered:
            # Nothing answered: the read failed as a whole, each point with its own reason.
            first_failure.point_samples = tuple(result)
            raise first_failure
        return result

    def _block(self, request: ReadRequest) -> str:
        """A planned request as reasons name it: ``device (host:port unit 1): read hr:0+10``."""
        return f"{self._where}: read {request.table}:{request.start}+{request.count}"

    def _failed_block(
        self, planned: _PlannedRead, substatus: Substatus, reason: str
    ) -> list[Sample]:
        """Bad samples for the points of one planned request."""
        now = self._clock.now()
        return [_bad(point.tag, substatus, reason, now) for point in planned.points]

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Modbus has no unsolicited messages (MAP 4.1: client/server only): always refused."""
        raise SubscriptionUnsupportedError(f"{self._where}: Modbus devices are polled")

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Write ``value`` and return the engineering value read back from the device.

        Coils use FC5 (FC15 with ``multiple_writes_only``), one register FC6 (FC16), wider
        values FC16, a bit inside a holding register a read (FC3) then a write of the register.
        The tag's scale and offset are inverted; integer registers get the nearest whole raw
        value. Modbus has no command priorities; ``priority`` is arbitrated above the driver.
        """
        address = parse_address(point.address)
        check_compatible(address, point.data_type)
        if not address.table.writable:
            raise AddressError(f"{point.name}: {address.table} at {address} is read-only")
        where = f"{self._where}: write {point.name} at {address}"
        if address.table is Table.COIL or address.is_register_bit:
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise AddressError(f"{where}: {address} takes a bool, not {value!r}")
            if address.table is Table.COIL:
                response = await self._write_coil(where, address.offset, bool(value))
            else:
                response = await self._write_register_bit(where, address, bool(value))
        else:
            registers = self._encode_for_write(where, point, address, value)
            response = await self._write_registers(where, address.offset, registers)
        if isinstance(response, ExceptionResponse):
            reason = f"{where}: {describe_exception(response.exception_code)}"
            self._health.count_error(Substatus.DEVICE_FAILURE.value, reason)
            raise DeviceRejectedError(reason)
        request = ReadRequest(address.table, address.offset, address.register_count, (0,))
        readback_point = _Point.of(point, address)
        # The device accepted the write: a failed readback leaves it unconfirmed, not refused.
        return await confirm_write(where, self._read_back(request, readback_point))

    async def _read_back(self, request: ReadRequest, point: _Point) -> Sample:
        (readback,), _ = await self._read_request(request, (point,))
        return readback

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and the connection state."""
        return self._health.snapshot(self.connected)

    def _prepare(self, points: Sequence[TagDef]) -> _Prepared:
        """Parse and plan ``points``, reusing the last plan for the same sequence object."""
        cached = self._prepared
        if (
            cached is not None
            and cached.points is points
            and cached.rejected_version == self._rejected.version
        ):
            return cached
        config_errors: list[tuple[int, str]] = []
        readable: list[_Point] = []
        slots: list[int] = []
        for slot, tag in enumerate(points):
            try:
                address = parse_address(tag.address)
                check_compatible(address, tag.data_type)
                scaled = _is_scaled(tag)
                if scaled and (tag.scale == 0 or tag.data_type is DataType.BOOL):
                    raise AddressError("scale must be non-zero and only numeric tags are scaled")
            except AddressError as err:
                config_errors.append((slot, f"{tag.address!r}: {err}"))
                continue
            readable.append(_Point.of(tag, address))
            slots.append(slot)
        plan = plan_reads(
            [point.address for point in readable],
            max_gap=self._config.max_gap,
            max_registers=self._config.max_registers,
            max_bits=self._config.max_bits,
            rejected=self._rejected,
        )
        prepared = _Prepared(
            points,
            self._rejected.version,
            tuple(config_errors),
            tuple(readable),
            tuple(slots),
            tuple(_PlannedRead.of(request, readable, self._config) for request in plan),
        )
        self._prepared = prepared
        return prepared

    async def _read_request(
        self, request: ReadRequest, readable: Sequence[_Point], planned: _PlannedRead | None = None
    ) -> tuple[list[Sample], bool]:
        """Execute one planned read: one sample per member, and whether the device refused
        (part of) it with exception 2. ``planned`` is the request's decoding worked out before
        (built here for the requests of a split or a write's readback)."""
        unit, start, count, table = (
            self._config.unit_id,
            request.start,
            request.count,
            request.table,
        )
        call: ModbusCall
        if table is Table.COIL:
            call = lambda c: c.read_coils(start, count=count, device_id=unit)  # noqa: E731
        elif table is Table.DISCRETE_INPUT:
            call = lambda c: c.read_discrete_inputs(start, count=count, device_id=unit)  # noqa: E731
        elif table is Table.HOLDING_REGISTER:
            call = lambda c: c.read_holding_registers(start, count=count, device_id=unit)  # noqa: E731
        else:
            call = lambda c: c.read_input_registers(start, count=count, device_id=unit)  # noqa: E731

        def where() -> str:  # text for failures only: not formatted for every good answer
            return self._block(request)

        response = await self._execute(where, call)
        if isinstance(response, ExceptionResponse):
            code = response.exception_code
            if code == ILLEGAL_DATA_ADDRESS:
                ranges = {
                    (readable[m].address.offset, readable[m].address.end) for m in request.members
                }
                if len(ranges) > 1:
                    return await self._split(request, readable), True
                self._rejected.add(table, start, request.end)
            now = self._clock.now()
            reason = f"{where()}: {describe_exception(code)}"
            self._health.count_error(Substatus.DEVICE_FAILURE.value, reason)
            members = [readable[m].tag for m in request.members]
            return [_bad(tag, Substatus.DEVICE_FAILURE, reason, now) for tag in members], (
                code == ILLEGAL_DATA_ADDRESS
            )
        if planned is None:
            planned = _PlannedRead.of(request, readable, self._config)
        return self._decode(planned, response, where), False

    async def _split(self, request: ReadRequest, readable: Sequence[_Point]) -> list[Sample]:
        """Read a refused merged request as two halves; learn the hole if both halves read."""
        members = sorted(
            request.members, key=lambda m: (readable[m].address.offset, readable[m].address.end)
        )

        def extent(member: int) -> tuple[int, int]:
            return readable[member].address.offset, readable[member].address.end

        middle = len(members) // 2
        # Points on the same entries stay on one side: they would fail or pass together.
        while 0 < middle < len(members) and extent(members[middle]) == extent(members[middle - 1]):
            middle += 1
        if middle == len(members):
            middle = len(members) // 2
            while middle > 0 and extent(members[middle]) == extent(members[middle - 1]):
                middle -= 1
        halves = [_tight(request.table, members[:middle], readable)]
        halves.append(_tight(request.table, members[middle:], readable))
        left, left_refused = await self._read_request(halves[0], readable)
        right, right_refused = await self._read_request(halves[1], readable)
        if not left_refused and not right_refused:
            # Both halves read fine: the refused entries lie between them (or the device refuses
            # reads that cross from one block into the next).
            hole_end = halves[1].start
            self._rejected.add(request.table, min(halves[0].end, hole_end), hole_end)
        by_member = dict(zip(halves[0].members, left, strict=True))
        by_member.update(zip(halves[1].members, right, strict=True))
        return [by_member[member] for member in request.members]

    def _decode(
        self, planned: _PlannedRead, response: ModbusPDU, where: Callable[[], str]
    ) -> list[Sample]:
        """The members' samples from a good answer: one pass over the registers or bits."""
        now = self._clock.now()
        points, layout, count = planned.points, planned.layout, planned.request.count
        values: Sequence[bool | int | float]
        entries = response.bits if layout is None else response.registers
        received = len(entries)
        if received < count:
            reason = f"short response: {received} of {count} entries"
            self._health.count_error(Substatus.COMM_FAILURE.value, f"{where()}: {reason}")
            return [_bad(point.tag, Substatus.COMM_FAILURE, reason, now) for point in points]
        if layout is None:
            # Bits come back padded to whole bytes (MAP 6.1, 6.2): index each member's own.
            values = [bool(entries[entry]) for entry in planned.entries]
        else:
            values = layout.decode(entries if received == count else entries[:count])
        # A sum of finite float32 values stays finite; a non-finite sum sends the values through
        # the per-point checks below (a float64 sum may also overflow: then they check).
        if planned.plain and (not planned.floating or math.isfinite(sum(values))):
            return [
                Sample(name, value, _GOOD, now, now)
                for name, value in zip(planned.names, values, strict=True)
            ]
        samples: list[Sample] = []
        append = samples.append
        for point, value in zip(points, values, strict=True):
            if point.floating and not math.isfinite(value):
                append(_bad(point.tag, Substatus.SENSOR_FAILURE, f"device reported {value}", now))
            elif point.plain:
                append(Sample(point.name, value, _GOOD, now, now))
            else:
                append(Sample(point.name, _engineering(point, value), _GOOD, now, now))
        return samples

    def _encode_for_write(
        self, where: str, point: TagDef, address: ModbusAddress, value: Value
    ) -> list[int]:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise AddressError(f"{where}: a register takes a finite number, not {value!r}")
        raw: float = value
        if _is_scaled(point):
            if point.scale == 0:
                raise AddressError(f"{where}: scale must not be zero")
            raw = (value - point.offset) / point.scale
            if address.value_type not in (ValueType.FLOAT32, ValueType.FLOAT64):
                # The device's resolution: the nearest whole raw value.
                raw = round(raw)
        try:
            return encode_value(
                raw, address.value_type, self._config.word_order, self._config.byte_order
            )
        except CodecError as err:
            raise AddressError(f"{where}: {err}") from err

    async def _write_coil(self, where: str, offset: int, flag: bool) -> ModbusPDU:
        unit = self._config.unit_id
        if self._config.multiple_writes_only:
            return await self._execute(
                where, lambda c: c.write_coils(offset, [flag], device_id=unit)
            )
        return await self._execute(where, lambda c: c.write_coil(offset, flag, device_id=unit))

    async def _write_registers(self, where: str, offset: int, registers: list[int]) -> ModbusPDU:
        unit = self._config.unit_id
        if len(registers) == 1 and not self._config.multiple_writes_only:
            return await self._execute(
                where, lambda c: c.write_register(offset, registers[0], device_id=unit)
            )
        return await self._execute(
            where, lambda c: c.write_registers(offset, registers, device_id=unit)
        )

    async def _write_register_bit(
        self, where: str, address: ModbusAddress, flag: bool
    ) -> ModbusPDU:
        """Set or clear one bit of a holding register: read it (FC3), then write it back.

        Not atomic: a device changing the register's other bits in between loses that change.
        FC22 (mask write register, MAP 6.16) would be atomic but few devices implement it.
        """
        unit, offset = self._config.unit_id, address.offset
        current = await self._execute(
            where, lambda c: c.read_holding_registers(offset, count=1, device_id=unit)
        )
        if isinstance(current, ExceptionResponse) or not current.registers:
            return current
        swap = self._config.byte_order == "little"
        register = int(current.registers[0])
        if swap:
            register = ((register & 0xFF) << 8) | (register >> 8)
        mask = 1 << (address.bit or 0)
        register = register | mask if flag else register & ~mask & (2**REGISTER_BITS - 1)
        if swap:
            register = ((register & 0xFF) << 8) | (register >> 8)
        return await self._write_registers(where, offset, [register])

    async def _execute(self, where: str | Callable[[], str], call: ModbusCall) -> ModbusPDU:
        """Send one request over the shared connection; count and report failures (``where``
        names the request, or makes its name when a failure needs it)."""
        self._health.count_request()
        try:
            response = await self._connection.execute(self._device, call)
        except DriverError as err:
            text = where if isinstance(where, str) else where()
            raise self._health.failed(type(err)(f"{text}: {err}"), err.__cause__) from err
        self._health.mark_available(self._where)
        return response


def _tight(table: Table, members: Sequence[int], readable: Sequence[_Point]) -> ReadRequest:
    """The smallest request of ``table`` covering ``members``."""
    start = min(readable[m].address.offset for m in members)
    end = max(readable[m].address.end for m in members)
    return ReadRequest(table, start, end - start, tuple(members))


def _is_scaled(tag: TagDef) -> bool:
    return tag.scale != 1.0 or tag.offset != 0.0


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)


def _engineering(point: _Point, raw: bool | int | float) -> Value:
    """The raw value scaled and converted to the tag's engineering type (checked before)."""
    data_type = point.tag.data_type
    if data_type is DataType.BOOL:
        return bool(raw)
    if point.scaled:
        raw = raw * point.tag.scale + point.tag.offset
    if data_type is DataType.INT:
        return round(raw)
    return float(raw)
