"""Read planning: group a device's points into the fewest Modbus read requests.

Points of one table whose ranges overlap, touch, or lie at most ``max_gap`` entries apart are
read together, up to the protocol's per-request limits (Modbus Application Protocol v1.1b3,
6.1-6.4: 1..2000 bits, 1..125 registers). Reading a few unused registers is far cheaper than a
round trip per point; ``max_gap`` bounds how many.

Devices often leave holes between blocks of registers and answer a read that touches one with
exception 2 (illegal data address, MAP 7). ``RejectedRanges`` remembers such holes once the
driver has found them; a request that merges several points never reads into or across one.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.modbus.address import ModbusAddress, Table

MAX_READ_BITS = 2000
"""Most coils or discrete inputs one request may read (MAP 6.1, 6.2)."""
MAX_READ_REGISTERS = 125
"""Most holding or input registers one request may read (MAP 6.3, 6.4)."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read request: a contiguous range of one table and the points it serves.

    ``members`` are indexes into the address sequence given to ``plan_reads``.
    """

    table: Table
    start: int
    count: int
    members: tuple[int, ...]

    @property
    def end(self) -> int:
        """First offset after the requested range."""
        return self.start + self.count


class RejectedRanges:
    """Ranges of a device's tables that the device refused to read (exception 2).

    A range ``[start, end)`` with ``start < end`` holds entries a merged request must not read;
    an empty range (``start == end``) is a boundary a merged request must not cross, for devices
    that refuse reads spanning two blocks even where every entry exists. ``version`` grows with
    every new range, so that cached plans know when to re-plan.
    """

    def __init__(self) -> None:
        self._ranges: dict[Table, list[tuple[int, int]]] = {}
        self.version = 0

    def add(self, table: Table, start: int, end: int) -> bool:
        """Remember a refused range; return whether it was new knowledge."""
        if not 0 <= start <= end:
            raise ValueError(f"invalid range {start}..{end}")
        if start < end and self._covered(table, start, end):
            return False
        ranges = self._ranges.setdefault(table, [])
        if (start, end) in ranges:
            return False
        bisect.insort(ranges, (start, end))
        self.version += 1
        return True

    def _covered(self, table: Table, start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in self._ranges.get(table, ()))

    def ranges(self, table: Table) -> tuple[tuple[int, int], ...]:
        """The remembered ranges of ``table``, sorted by start."""
        return tuple(self._ranges.get(table, ()))

    def blocks(self, table: Table, start: int, end: int) -> bool:
        """Whether a request reading ``[start, end)`` of ``table`` meets a remembered range."""
        ranges = self._ranges.get(table)
        if not ranges:
            return False
        # Ranges starting at or after ``end`` cannot meet the request: look only before it.
        for low, high in ranges[: bisect.bisect_left(ranges, (end, -1))]:
            if low < high:
                if high > start:
                    return True
            elif start < low:
                return True
        return False

    def __len__(self) -> int:
        return sum(len(ranges) for ranges in self._ranges.values())


def plan_reads(
    addresses: Sequence[ModbusAddress],
    *,
    max_gap: int = 8,
    max_bits: int = MAX_READ_BITS,
    max_registers: int = MAX_READ_REGISTERS,
    rejected: RejectedRanges | None = None,
) -> list[ReadRequest]:
    """Plan the reads covering every address once, ordered by table then start offset.

    Greedy over points sorted by offset: a request grows while the next point starts at most
    ``max_gap`` entries after its end, the request stays within the limit and it meets no
    ``rejected`` range. A point that itself lies in a rejected range is read alone, so it cannot
    spoil its neighbours. For points on a line this gives the fewest requests.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must not be negative, got {max_gap}")
    # Four registers is the widest value (float64): every point must fit in one request.
    if not 4 <= max_registers <= MAX_READ_REGISTERS or not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(
            f"limits must be 4..{MAX_READ_REGISTERS} registers and 1..{MAX_READ_BITS} bits"
        )
    by_table: dict[Table, list[int]] = {}
    for index, address in enumerate(addresses):
        by_table.setdefault(address.table, []).append(index)

    requests: list[ReadRequest] = []
    for table in Table:
        indexes = by_table.get(table)
        if not indexes:
            continue
        limit = max_bits if table.is_bit_table else max_registers
        indexes.sort(key=lambda i: (addresses[i].offset, addresses[i].end))
        members: list[int] = []
        start = end = 0
        alone = False
        for index in indexes:
            address = addresses[index]
            tainted = rejected is not None and rejected.blocks(table, address.offset, address.end)
            new_end = max(end, address.end)
            if members and (
                alone
                or tainted
                or address.offset - end > max_gap
                or new_end - start > limit
                or (rejected is not None and rejected.blocks(table, start, new_end))
            ):
                requests.append(ReadRequest(table, start, end - start, tuple(members)))
                members = []
            if not members:
                start, new_end, alone = address.offset, address.end, tainted
            end = new_end
            members.append(index)
        requests.append(ReadRequest(table, start, end - start, tuple(members)))
    return requests
