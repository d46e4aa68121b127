"""Read planning: group a device's points into the fewest Modbus read requests.

Points of one table whose ranges overlap, touch, or lie at most ``max_gap`` entries apart are
read together, up to the protocol's per-request limits (Modbus Application Protocol v1.1b3,
6.1-6.4: 1..2000 bits, 1..125 registers). Reading a few unused registers is far cheaper than a
round trip per point; ``max_gap`` bounds how many.
"""

from __future__ import annotations

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


def plan_reads(
    addresses: Sequence[ModbusAddress],
    *,
    max_gap: int = 8,
    max_bits: int = MAX_READ_BITS,
    max_registers: int = MAX_READ_REGISTERS,
) -> list[ReadRequest]:
    """Plan the reads covering every address once, ordered by table then start offset.

    Greedy over points sorted by offset: a request grows while the next point starts at most
    ``max_gap`` entries after its end and the request stays within the limit. For intervals on
    a line this gives the fewest requests.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must not be negative, got {max_gap}")
    if not 2 <= max_registers <= MAX_READ_REGISTERS or not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(
            f"limits must be 2..{MAX_READ_REGISTERS} registers and 1..{MAX_READ_BITS} bits"
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
        start = addresses[indexes[0]].offset
        end = addresses[indexes[0]].end
        members: list[int] = []
        for index in indexes:
            address = addresses[index]
            new_end = max(end, address.end)
            if members and (address.offset - end > max_gap or new_end - start > limit):
                requests.append(ReadRequest(table, start, end - start, tuple(members)))
                start, new_end, members = address.offset, address.end, []
            end = new_end
            members.append(index)
        requests.append(ReadRequest(table, start, end - start, tuple(members)))
    return requests
