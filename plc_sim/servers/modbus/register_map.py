"""Where each point of a simulated device lives in its Modbus register map.

A pure, deterministic allocation (no protocol library): the same points in the same order always
give the same map, so the center's site file, generated from ``addresses()``, never disagrees
with the served device.

Tables (Modbus Application Protocol v1.1b3, 4.3, the four primary tables):

- a read-only bool (a feedback, a status) is a discrete input (``di``);
- a writable bool (a run command) is a coil (``coil``);
- a read-only number (a measurement, or an output the device drives itself) is in the input
  registers (``ir``);
- a writable number (a setpoint, a mode) is in the holding registers (``hr``).

Layouts: ``float`` is IEEE 754 ``float32`` (2 registers), ``int`` is ``uint16`` (``int16``
when the point's range goes below zero), ``counter`` is ``float64`` (4 registers, so that an
energy or volume total keeps its resolution for years). Each register is big-endian (MAP 4.2);
the word order of wider values is a server option ("big": high word first, the default).

Blocks: the points of one asset (the tag without its last segment: ``water.ps1.pump2`` for
``water.ps1.pump2.flow``) sit together in one block per table, as real RTU maps group a
drive's or a sensor's values. Register blocks start at the next multiple of
``REGISTER_BLOCK_ALIGN`` after the previous block, leaving at least one undefined register
between blocks; bit blocks span whole 16-bit words (PLCs pack bits in words; the spare bits
of a block's last word read 0 and refuse writes) with at least one undefined word between
blocks. Every undefined address is a hole the server refuses with exception 2 (illegal data
address, MAP 7), so a client's read planner has to respect the block boundaries.

With ``contiguous_bits`` the bit points of each table are one block instead, back to back in
point order, as an RTU whose discrete inputs (or coils) are its I/O cards' channels numbered
one after the other: one process image, no holes inside it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from plc_sim.device import PointKind, PointSpec, PointValue

ModbusTable = Literal["coil", "di", "ir", "hr"]
"""The four primary tables, named as the center's Modbus driver names them."""

ValueLayout = Literal["bool", "int16", "uint16", "float32", "float64"]
"""How a value is laid out in its table."""

WordOrder = Literal["big", "little"]
"""Order of the 16-bit words of a value wider than one register: high word first ("big") or
last ("little"). The protocol defines only the byte order inside a register (MAP 4.2)."""

TABLE_ORDER: tuple[ModbusTable, ...] = ("coil", "di", "hr", "ir")
"""The tables in the order pymodbus' simulator takes them."""

REGISTER_BLOCK_ALIGN = 20
"""Register blocks start at multiples of this address."""

BITS_PER_WORD = 16
"""Bit blocks start and end on 16-bit word boundaries."""

MAX_ADDRESS = 0xFFFF
"""Highest protocol address (MAP 4.4)."""

_STRUCT_FORMAT: dict[ValueLayout, str] = {
    "int16": "h",
    "uint16": "H",
    "float32": "f",
    "float64": "d",
}

_WIDTH: dict[ValueLayout, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "float32": 2,
    "float64": 4,
}


class ModbusMapError(ValueError):
    """A device's points do not fit a Modbus map."""


@dataclass(frozen=True, slots=True)
class MappedPoint:
    """One point's place in the map: table, zero-based offset and value layout."""

    tag: str
    kind: PointKind
    table: ModbusTable
    offset: int
    layout: ValueLayout
    index: int
    """Position of the point in the device's point order."""

    @property
    def width(self) -> int:
        """Number of table entries (bits or registers) the value occupies."""
        return _WIDTH[self.layout]

    @property
    def end(self) -> int:
        """First offset after the value."""
        return self.offset + self.width

    @property
    def address(self) -> str:
        """The address in the center's Modbus driver format, e.g. ``ir:20:float32``."""
        if self.layout == "bool":
            return f"{self.table}:{self.offset}"
        return f"{self.table}:{self.offset}:{self.layout}"


@dataclass(frozen=True, slots=True)
class MapBlock:
    """A run of consecutive points of one asset in one table; holes lie between blocks."""

    table: ModbusTable
    asset: str
    points: tuple[MappedPoint, ...]

    @property
    def start(self) -> int:
        """Offset of the block's first point."""
        return self.points[0].offset

    @property
    def end(self) -> int:
        """First offset after the block's last point."""
        return self.points[-1].end

    @property
    def defined_end(self) -> int:
        """First undefined offset after the block (bit blocks end on a word boundary)."""
        if self.table in ("coil", "di"):
            return _round_up(self.end, BITS_PER_WORD)
        return self.end


@dataclass(frozen=True, slots=True)
class ModbusMap:
    """A device's whole map: every point's place and the blocks between the holes."""

    points: tuple[MappedPoint, ...]
    blocks: tuple[MapBlock, ...]

    def point(self, tag: str) -> MappedPoint:
        """The place of one point; KeyError when the map has no such tag."""
        for mapped in self.points:
            if mapped.tag == tag:
                return mapped
        raise KeyError(f"no point {tag} in this Modbus map")

    def blocks_of(self, table: ModbusTable) -> tuple[MapBlock, ...]:
        """The blocks of one table in address order."""
        return tuple(block for block in self.blocks if block.table == table)

    def extent(self) -> int:
        """First offset after the highest defined address of any table (0 for no points)."""
        return max((block.defined_end for block in self.blocks), default=0)

    def addresses(self) -> dict[str, str]:
        """Tag → address string in the center's driver format, in point order."""
        return {mapped.tag: mapped.address for mapped in self.points}


def table_for(spec: PointSpec) -> ModbusTable:
    """The table a point belongs in: bits by writability, numbers by writability."""
    if spec.kind == "bool":
        return "coil" if spec.writable else "di"
    return "hr" if spec.writable else "ir"


def layout_for(spec: PointSpec) -> ValueLayout:
    """The value layout of a point of the given kind."""
    if spec.kind == "bool":
        return "bool"
    if spec.kind == "float":
        return "float32"
    if spec.kind == "counter":
        return "float64"
    return "int16" if spec.low is not None and spec.low < 0 else "uint16"


def asset_of(tag: str) -> str:
    """The asset a tag belongs to: the tag without its last dotted segment."""
    asset, _, _ = tag.rpartition(".")
    return asset


def _device_of(points: Sequence[PointSpec]) -> str:
    """The dotted prefix every point's asset shares (the device), to name a one-block table."""
    prefix = asset_of(points[0].tag).split(".")
    for spec in points[1:]:
        segments = asset_of(spec.tag).split(".")
        while prefix != segments[: len(prefix)]:
            prefix.pop()
    return ".".join(prefix) or "device"


def allocate_map(points: Sequence[PointSpec], *, contiguous_bits: bool = False) -> ModbusMap:
    """Allocate every point to a table and offset, grouped by asset, in point order (with
    ``contiguous_bits``, the coils and the discrete inputs each in one block)."""
    grouped: dict[ModbusTable, dict[str, list[tuple[int, PointSpec]]]] = {
        table: {} for table in TABLE_ORDER
    }
    device = _device_of(points) if contiguous_bits and points else ""
    for index, spec in enumerate(points):
        table = table_for(spec)
        group = device if contiguous_bits and table in ("coil", "di") else asset_of(spec.tag)
        grouped[table].setdefault(group, []).append((index, spec))
    mapped: list[MappedPoint] = []
    blocks: list[MapBlock] = []
    for table in TABLE_ORDER:
        blocks.extend(_allocate_table(table, grouped[table].items()))
    for block in blocks:
        mapped.extend(block.points)
    mapped.sort(key=lambda point: point.index)
    return ModbusMap(points=tuple(mapped), blocks=tuple(blocks))


def _allocate_table(
    table: ModbusTable, assets: Iterable[tuple[str, list[tuple[int, PointSpec]]]]
) -> list[MapBlock]:
    blocks: list[MapBlock] = []
    is_bits = table in ("coil", "di")
    next_free = 0
    for asset, members in assets:
        if blocks:
            previous_end = blocks[-1].defined_end
            if is_bits:
                # One whole undefined word between bit blocks.
                next_free = previous_end + BITS_PER_WORD
            else:
                next_free = _round_up(previous_end + 1, REGISTER_BLOCK_ALIGN)
        offset = next_free
        block_points: list[MappedPoint] = []
        for index, spec in members:
            point = MappedPoint(
                tag=spec.tag,
                kind=spec.kind,
                table=table,
                offset=offset,
                layout=layout_for(spec),
                index=index,
            )
            block_points.append(point)
            offset = point.end
        block = MapBlock(table=table, asset=asset, points=tuple(block_points))
        if block.defined_end > MAX_ADDRESS + 1:
            raise ModbusMapError(
                f"{table} block of {asset} ends at {block.defined_end}, "
                f"past the last protocol address {MAX_ADDRESS}"
            )
        blocks.append(block)
    return blocks


def value_struct(point: MappedPoint) -> struct.Struct:
    """The big-endian struct of a register point's value (``encode_registers`` without words)."""
    if point.layout == "bool":
        raise ModbusMapError(f"{point.tag} is a bit, not a register value")
    return struct.Struct(f">{_STRUCT_FORMAT[point.layout]}")


def encode_registers(
    point: MappedPoint, value: PointValue, word_order: WordOrder = "big"
) -> list[int]:
    """The ``point.width`` registers of a register point's value."""
    if point.layout == "bool":
        raise ModbusMapError(f"{point.tag} is a bit, not a register value")
    number: float | int = int(value) if point.layout in ("int16", "uint16") else float(value)
    try:
        raw = struct.pack(f">{_STRUCT_FORMAT[point.layout]}", number)
    except (struct.error, OverflowError) as err:
        raise ModbusMapError(f"{point.tag}: {value!r} does not fit {point.layout}") from err
    words = list(struct.unpack(f">{point.width}H", raw))
    return words if word_order == "big" else words[::-1]


def decode_registers(
    point: MappedPoint, registers: Sequence[int], word_order: WordOrder = "big"
) -> float | int:
    """The value of a register point from exactly ``point.width`` registers.

    A float32 comes back as the shortest decimal that encodes to the same bits, so a setpoint
    written as 37.2 is 37.2 in the model, not 37.200000762939453.
    """
    if point.layout == "bool" or len(registers) != point.width:
        raise ModbusMapError(f"{point.tag} needs {point.width} registers, got {len(registers)}")
    words = list(registers) if word_order == "big" else list(registers)[::-1]
    raw = struct.pack(f">{point.width}H", *words)
    value: float | int = struct.unpack(f">{_STRUCT_FORMAT[point.layout]}", raw)[0]
    if point.layout == "float32":
        return _shortest_float32(raw, float(value))
    return value


def _shortest_float32(raw: bytes, value: float) -> float:
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == raw:
            return candidate
    return value


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
