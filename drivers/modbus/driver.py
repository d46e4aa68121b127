"""The Modbus TCP driver: planned reads, writes with readback, errors mapped to the driver tree.

pymodbus stays behind this module: its exceptions become ``drivers.base`` errors here, with the
cause chained. The driver owns its connection: pymodbus' own background reconnect is disabled,
and a call that finds the device disconnected makes one connection attempt (a new client) before
failing, so the scan engine's period paces the retries.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
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
)
from drivers.modbus.address import ModbusAddress, Table, ValueType, check_compatible, parse_address
from drivers.modbus.codec import CodecError, decode_registers, encode_value
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.planner import ReadRequest, plan_reads

_log = logging.getLogger(__name__)

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

_PYMODBUS_LOGGER = "pymodbus"

# pymodbus reports an unanswered request as a ModbusIOException with this text.
_NO_RESPONSE_MARK = "No response received"


def describe_exception(code: int) -> str:
    """Text for a Modbus exception code, e.g. ``Modbus exception 2 (illegal data address)``."""
    return f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown exception code')})"


def quiet_pymodbus_logging() -> None:
    """Keep pymodbus from logging expected field faults (timeouts, refused connections).

    The driver reports those itself, once per state change. A level configured explicitly for
    the ``pymodbus`` logger is left as it is.
    """
    logger = logging.getLogger(_PYMODBUS_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class _Point:
    """A point to read: its tag definition and parsed address."""

    tag: TagDef
    address: ModbusAddress


class ModbusDriver:
    """One Modbus TCP connection to one device, implementing ``drivers.base.Driver``."""

    def __init__(self, device: str, config: ModbusDeviceConfig, clock: Clock) -> None:
        self._device = device
        self._config = config
        self._clock = clock
        self._client: AsyncModbusTcpClient | None = None
        self._connect_lock = asyncio.Lock()
        self._available: bool | None = None
        self._requests = 0
        self._errors = 0
        self._last_error = ""
        self._errors_by_kind: dict[str, int] = {}

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
        """Whether a connection to the device is open."""
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the connection; raise NotConnectedError if the device cannot be reached."""
        async with self._connect_lock:
            if self.connected:
                return
            self._drop_client()
            quiet_pymodbus_logging()
            config = self._config
            client = AsyncModbusTcpClient(
                config.host,
                port=config.port,
                name=self._device,
                timeout=config.timeout_s,
                retries=config.retries,
                # reconnect_delay=0 disables pymodbus' background reconnect: the driver owns it.
                reconnect_delay=0,
                reconnect_delay_max=config.timeout_s,
            )
            try:
                connected = await client.connect()
            except (OSError, ModbusException) as err:
                client.close()
                raise self._failed(
                    NotConnectedError(f"{self._where}: cannot connect: {err}"), from_=err
                ) from err
            if not connected:
                client.close()
                raise self._failed(
                    NotConnectedError(
                        f"{self._where}: cannot connect (refused, unreachable or no answer "
                        f"within {config.timeout_s:g} s)"
                    )
                )
            self._client = client
            self._mark_available()

    async def close(self) -> None:
        """Close the connection; never raises."""
        async with self._connect_lock:
            self._drop_client()

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """Read points with the fewest requests; one sample per point, in order.

        A point with an unusable address, or in a request the device answers with an exception,
        gets a Bad sample; losing the connection or a timeout raises for the whole read.
        """
        samples: dict[int, Sample] = {}
        readable: list[_Point] = []
        slots: list[int] = []
        now = self._clock.now()
        for slot, tag in enumerate(points):
            try:
                address = parse_address(tag.address)
                check_compatible(address, tag.data_type)
            except AddressError as err:
                samples[slot] = _bad(tag, Substatus.CONFIG_ERROR, f"{tag.address!r}: {err}", now)
                continue
            readable.append(_Point(tag, address))
            slots.append(slot)
        plan = plan_reads([point.address for point in readable], max_gap=self._config.max_gap)
        for request in plan:
            members = [readable[i] for i in request.members]
            for offset, sample in enumerate(await self._read_request(request, members)):
                samples[slots[request.members[offset]]] = sample
        # The plan covers every readable point once, so every slot is filled (KeyError if not).
        return [samples[slot] for slot in range(len(points))]

    async def write(self, point: TagDef, value: Value) -> Value:
        """Write ``value`` (FC5 coil, FC6 one register, FC16 several) and return the readback."""
        address = parse_address(point.address)
        check_compatible(address, point.data_type)
        if not address.table.writable:
            raise AddressError(f"{point.name}: {address.table} at {address} is read-only")
        where = f"{self._where}: write {point.name} at {address}"
        offset, unit = address.offset, self._config.unit_id
        if address.table is Table.COIL:
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise AddressError(f"{where}: a coil takes a bool, not {value!r}")
            flag = bool(value)
            response = await self._execute(
                where, lambda client: client.write_coil(offset, flag, device_id=unit)
            )
        else:
            if isinstance(value, bool | str) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise AddressError(f"{where}: a register takes a finite number, not {value!r}")
            try:
                registers = encode_value(value, address.value_type, self._config.word_order)
            except CodecError as err:
                raise AddressError(f"{where}: {err}") from err
            if len(registers) == 1:
                response = await self._execute(
                    where,
                    lambda client: client.write_register(offset, registers[0], device_id=unit),
                )
            else:
                response = await self._execute(
                    where, lambda client: client.write_registers(offset, registers, device_id=unit)
                )
        if isinstance(response, ExceptionResponse):
            reason = f"{where}: {describe_exception(response.exception_code)}"
            self._count_error(Substatus.DEVICE_FAILURE, reason)
            raise DeviceRejectedError(reason)
        request = ReadRequest(address.table, address.offset, address.register_count, (0,))
        readback = (await self._read_request(request, [_Point(point, address)]))[0]
        if not readback.quality.is_good or readback.value is None:
            raise DeviceRejectedError(f"{where}: readback failed: {readback.quality.reason}")
        return readback.value

    def diagnostics(self) -> DriverDiagnostics:
        """Request and error counts, the last error and the connection state."""
        return DriverDiagnostics(
            device=self._device,
            connected=self.connected,
            requests=self._requests,
            errors=self._errors,
            last_error=self._last_error,
            errors_by_kind=dict(self._errors_by_kind),
        )

    @property
    def _where(self) -> str:
        return f"{self._device} ({self._config.host}:{self._config.port})"

    async def _read_request(self, request: ReadRequest, members: Sequence[_Point]) -> list[Sample]:
        """Execute one planned read and decode one sample per member."""
        unit, start, count = self._config.unit_id, request.start, request.count
        reads: dict[Table, Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]] = {
            Table.COIL: lambda c: c.read_coils(start, count=count, device_id=unit),
            Table.DISCRETE_INPUT: lambda c: c.read_discrete_inputs(
                start, count=count, device_id=unit
            ),
            Table.HOLDING_REGISTER: lambda c: c.read_holding_registers(
                start, count=count, device_id=unit
            ),
            Table.INPUT_REGISTER: lambda c: c.read_input_registers(
                start, count=count, device_id=unit
            ),
        }
        where = f"{self._where}: read {request.table}:{start}+{count}"
        response = await self._execute(where, reads[request.table])
        now = self._clock.now()
        if isinstance(response, ExceptionResponse):
            reason = describe_exception(response.exception_code)
            self._count_error(Substatus.DEVICE_FAILURE, f"{where}: {reason}")
            return [_bad(p.tag, Substatus.DEVICE_FAILURE, reason, now) for p in members]
        entries: Sequence[int] | Sequence[bool]
        entries = response.bits if request.table.is_bit_table else response.registers
        if len(entries) < count:
            reason = f"short response: {len(entries)} of {count} entries"
            self._count_error(Substatus.COMM_FAILURE, f"{where}: {reason}")
            return [_bad(p.tag, Substatus.COMM_FAILURE, reason, now) for p in members]
        return [self._decode(point, entries, start, now) for point in members]

    def _decode(
        self, point: _Point, entries: Sequence[int] | Sequence[bool], start: int, now: datetime
    ) -> Sample:
        address = point.address
        first = address.offset - start
        if address.value_type is ValueType.BOOL:
            raw: bool | int | float = bool(entries[first])
        else:
            registers = [int(entry) for entry in entries[first : first + address.register_count]]
            raw = decode_registers(registers, address.value_type, self._config.word_order)
        if isinstance(raw, float) and not math.isfinite(raw):
            return _bad(point.tag, Substatus.SENSOR_FAILURE, f"device reported {raw}", now)
        return Sample(
            point.tag.name, _as_tag_value(raw, point.tag.data_type), Quality.good(), now, now
        )

    async def _execute(
        self, where: str, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        """Send one request, connecting first if needed; map pymodbus failures to DriverError."""
        if not self.connected:
            await self.connect()
        client = self._client
        if client is None:  # closed concurrently
            raise self._failed(NotConnectedError(f"{where}: not connected"))
        self._requests += 1
        try:
            response = await call(client)
        except ConnectionException as err:
            self._drop_client(client)
            raise self._failed(NotConnectedError(f"{where}: not connected"), from_=err) from err
        except ModbusIOException as err:
            if not client.connected:
                self._drop_client(client)
                raise self._failed(
                    NotConnectedError(f"{where}: connection lost"), from_=err
                ) from err
            if _NO_RESPONSE_MARK in str(err):
                timeout = self._config.timeout_s * (self._config.retries + 1)
                raise self._failed(
                    CommunicationTimeoutError(f"{where}: no response within {timeout:g} s"),
                    from_=err,
                ) from err
            raise self._failed(DriverError(f"{where}: {err}"), from_=err) from err
        except ModbusException as err:
            raise self._failed(DriverError(f"{where}: {err}"), from_=err) from err
        self._mark_available()
        return response

    def _drop_client(self, expected: AsyncModbusTcpClient | None = None) -> None:
        """Close the client; with ``expected``, only if it is still the current one."""
        client = self._client
        if client is None or (expected is not None and client is not expected):
            return
        self._client = None
        client.close()

    def _failed(self, error: DriverError, from_: BaseException | None = None) -> DriverError:
        """Count a communication failure and log it once per outage; return it for raising."""
        self._count_error(error.substatus, str(error))
        if self._available is not False:
            cause = f" ({from_})" if from_ is not None and str(from_) not in str(error) else ""
            _log.warning("%s%s", error, cause)
        self._available = False
        return error

    def _mark_available(self) -> None:
        if self._available is False:
            _log.info("%s: communication restored", self._where)
        self._available = True

    def _count_error(self, kind: Substatus, message: str) -> None:
        self._errors += 1
        self._last_error = message
        self._errors_by_kind[kind.value] = self._errors_by_kind.get(kind.value, 0) + 1


def _bad(tag: TagDef, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag.name, None, Quality.bad(substatus, reason), now, now)


def _as_tag_value(raw: bool | int | float, data_type: DataType) -> Value:
    """Convert a decoded value to the tag's engineering type (compatibility is checked before)."""
    if data_type is DataType.BOOL:
        return bool(raw)
    if data_type is DataType.INT:
        return int(raw)
    return float(raw)
