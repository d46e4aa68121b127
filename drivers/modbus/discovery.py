"""Point discovery on a Modbus TCP server: probe address ranges of the four tables.

Modbus has no self-description: what exists is what answers. ``probe_modbus`` reads each
requested range in requests as large as the protocol allows (MAP 6.1-6.4: 2,000 bits, 125
registers); a request answered with exception 2 (illegal data address) is split in halves until
the addresses that answer are found, so gaps in a device's map are skipped, not reported.

What the registers hold cannot be read off the wire. ``guess_points`` proposes a type per
answering register: two neighbouring registers whose big-endian float32 reads as a plausible
engineering value (finite, neither tiny nor huge, not both words zero) are proposed as one
``float32`` point, the rest as ``int16``, each guess carrying a note for the engineer to check.
Coils are proposed writable, the other tables read-only (holding registers may be writable:
that too is for the engineer to decide, and noted).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from controlcenter.model import DataType, TagDef
from drivers.base import CommunicationTimeoutError, DriverError, NotConnectedError
from drivers.modbus.address import MAX_OFFSET, Table
from drivers.modbus.connection import quiet_pymodbus_logging

ILLEGAL_DATA_ADDRESS = 2
"""The exception code of an address the device does not have (MAP 7)."""
MAX_PROBED = 20_000
"""Most addresses one probe may cover (a bound on the requests one command sends)."""
_LIMITS = {
    Table.COIL: 2000,
    Table.DISCRETE_INPUT: 2000,
    Table.HOLDING_REGISTER: 125,
    Table.INPUT_REGISTER: 125,
}
_TABLE_NAMES = {"co": Table.COIL, "coil": Table.COIL, "di": Table.DISCRETE_INPUT}
_TABLE_NAMES |= {"hr": Table.HOLDING_REGISTER, "ir": Table.INPUT_REGISTER}
_RANGE = re.compile(r"^(?P<table>[a-z]+):(?P<first>\d{1,5})-(?P<last>\d{1,5})$")
FLOAT_PLAUSIBLE = (1e-4, 1e7)
"""Magnitudes a float32 guess must fall in (or be exactly zero with one word not zero)."""


class ProbeRangeError(ValueError):
    """A ``--range`` text that is not ``table:first-last,…``."""


@dataclass(frozen=True, slots=True)
class ProbeRange:
    """Addresses ``first``..``last`` (inclusive) of one table."""

    table: Table
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Answered:
    """What one table answered: address → raw register or bit."""

    table: Table
    values: dict[int, int]


@dataclass(frozen=True, slots=True)
class GuessedPoint:
    """A proposed tag and, when the type is a guess, what to check."""

    tag: TagDef
    note: str = ""


DEFAULT_RANGES = "hr:0-99,ir:0-99,co:0-99,di:0-99"


def parse_ranges(text: str) -> list[ProbeRange]:
    """``hr:0-99,ir:0-99,co:0-99,di:0-99`` as ranges; raises ProbeRangeError saying why."""
    ranges = []
    total = 0
    for part in (p.strip() for p in text.split(",")):
        matched = _RANGE.match(part)
        if matched is None or matched["table"] not in _TABLE_NAMES:
            raise ProbeRangeError(
                f"{part!r} is not a range: use e.g. hr:0-99 (tables hr, ir, co, di)"
            )
        first, last = int(matched["first"]), int(matched["last"])
        if not first <= last <= MAX_OFFSET:
            raise ProbeRangeError(f"{part!r}: need first <= last <= {MAX_OFFSET}")
        total += last - first + 1
        if total > MAX_PROBED:
            raise ProbeRangeError(f"at most {MAX_PROBED} addresses per probe")
        ranges.append(ProbeRange(_TABLE_NAMES[matched["table"]], first, last))
    return ranges


Reader = Callable[[Table, int, int], Awaitable[list[int] | None]]
"""Reads ``count`` entries of a table from an address: the values, or None for exception 2."""


async def probe_ranges(read: Reader, ranges: Sequence[ProbeRange]) -> list[Answered]:
    """The answering addresses of each range, gaps (exception 2) skipped by halving."""
    answered: dict[Table, dict[int, int]] = {}
    for probe in ranges:
        values = answered.setdefault(probe.table, {})
        start = probe.first
        while start <= probe.last:
            count = min(_LIMITS[probe.table], probe.last - start + 1)
            await _probe(read, probe.table, start, count, values)
            start += count
    return [Answered(table, dict(sorted(values.items()))) for table, values in answered.items()]


async def _probe(read: Reader, table: Table, start: int, count: int, into: dict[int, int]) -> None:
    values = await read(table, start, count)
    if values is not None:
        into.update(zip(range(start, start + count), values[:count], strict=False))
        return
    if count == 1:
        return  # a gap in the device's map
    half = count // 2
    await _probe(read, table, start, half, into)
    await _probe(read, table, start + half, count - half, into)


def guess_points(device: str, answered: Sequence[Answered]) -> list[GuessedPoint]:
    """Proposed tags of ``device`` for what answered (see the module's notes on guessing)."""
    points: list[GuessedPoint] = []
    prefix = {Table.COIL: "coil", Table.DISCRETE_INPUT: "di"}
    prefix |= {Table.HOLDING_REGISTER: "hr", Table.INPUT_REGISTER: "ir"}
    for block in answered:
        short = prefix[block.table]
        if block.table.is_bit_table:
            for address in block.values:
                points.append(
                    GuessedPoint(
                        TagDef(
                            name=f"{device}.{short}{address}",
                            device=device,
                            address=f"{block.table.value}:{address}",
                            data_type=DataType.BOOL,
                            writable=block.table is Table.COIL,
                        )
                    )
                )
            continue
        writable_note = "; writable?" if block.table is Table.HOLDING_REGISTER else ""
        address_list = list(block.values)
        index = 0
        while index < len(address_list):
            address = address_list[index]
            following = address_list[index + 1] if index + 1 < len(address_list) else None
            if following == address + 1:
                value = float32(block.values[address], block.values[following])
                if value is not None:
                    points.append(
                        GuessedPoint(
                            TagDef(
                                name=f"{device}.{short}{address}",
                                device=device,
                                address=f"{block.table.value}:{address}:float32",
                                data_type=DataType.FLOAT,
                                description=f"read {value:.6g}",
                            ),
                            f"check: float32 guessed from two registers{writable_note}",
                        )
                    )
                    index += 2
                    continue
            raw = block.values[address]
            points.append(
                GuessedPoint(
                    TagDef(
                        name=f"{device}.{short}{address}",
                        device=device,
                        address=f"{block.table.value}:{address}:int16",
                        data_type=DataType.INT,
                        description=f"read {struct.unpack('>h', raw.to_bytes(2, 'big'))[0]}",
                    ),
                    f"check: int16, uint16 or part of a wider value{writable_note}",
                )
            )
            index += 1
    return points


def float32(high_word: int, low_word: int) -> float | None:
    """The big-endian float32 of two registers when it looks like an engineering value."""
    if high_word == 0 and low_word == 0:
        return None  # as likely two zero integers: left to int16
    value: float = struct.unpack(">f", struct.pack(">HH", high_word, low_word))[0]
    if not math.isfinite(value):
        return None
    low, high = FLOAT_PLAUSIBLE
    return value if low <= abs(value) <= high else None


async def probe_modbus(
    host: str, port: int, unit: int, ranges: Sequence[ProbeRange], *, timeout_s: float = 2.0
) -> list[Answered]:
    """What a Modbus TCP server answers in ``ranges``; raises DriverError (not connected, no
    answer, a refusal other than an unknown address) saying why not."""
    quiet_pymodbus_logging()
    where = f"Modbus server {host}:{port} unit {unit}"
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            raise NotConnectedError(f"cannot connect to {where}")
    except (OSError, ModbusException) as err:
        client.close()
        raise NotConnectedError(f"cannot connect to {where}: {err}") from err

    async def read(table: Table, address: int, count: int) -> list[int] | None:
        try:
            response = await _request(client, table, address, count, unit)
        except ModbusException as err:
            if not client.connected:
                raise NotConnectedError(f"{where}: connection lost") from err
            raise CommunicationTimeoutError(f"{where}: no answer ({err})") from err
        if response.isError():
            if response.exception_code == ILLEGAL_DATA_ADDRESS:
                return None
            raise DriverError(
                f"{where}: {table.value}:{address}+{count} refused with exception "
                f"{response.exception_code}"
            )
        if table.is_bit_table:
            return [int(bit) for bit in response.bits[:count]]
        return list(response.registers)

    try:
        return await probe_ranges(read, ranges)
    finally:
        client.close()


async def _request(
    client: AsyncModbusTcpClient, table: Table, address: int, count: int, unit: int
) -> ModbusPDU:
    if table is Table.COIL:
        return await client.read_coils(address, count=count, device_id=unit)
    if table is Table.DISCRETE_INPUT:
        return await client.read_discrete_inputs(address, count=count, device_id=unit)
    if table is Table.HOLDING_REGISTER:
        return await client.read_holding_registers(address, count=count, device_id=unit)
    return await client.read_input_registers(address, count=count, device_id=unit)
