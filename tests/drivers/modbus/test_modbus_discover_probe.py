"""Modbus probing: gaps found by halving, float32 pairs guessed and marked, ranges checked."""

from __future__ import annotations

import struct

import pytest

from drivers.modbus.address import Table
from drivers.modbus.discovery import (
    MAX_PROBED,
    Answered,
    ProbeRangeError,
    guess_points,
    parse_ranges,
    probe_ranges,
)


def registers_of(value: float) -> list[int]:
    """A float32 as two big-endian registers."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


async def test_gaps_are_skipped_and_requests_stay_within_the_protocol_limit() -> None:
    present = {address: address + 1 for address in (*range(0, 10), *range(200, 203))}
    requests: list[tuple[int, int]] = []

    async def read(table: Table, address: int, count: int) -> list[int] | None:
        requests.append((address, count))
        assert count <= 125
        wanted = range(address, address + count)
        if all(a in present for a in wanted):
            return [present[a] for a in wanted]
        return None  # exception 2: some address of the request does not exist

    [answered] = await probe_ranges(read, parse_ranges("hr:0-299"))
    assert answered.values == present
    # Halving costs at most two requests per address of an empty stretch.
    assert len(requests) < 2 * 300


def test_float_pairs_are_guessed_and_marked_for_checking() -> None:
    values = dict(enumerate([*registers_of(42.5), 7, 0, 0]))
    points = guess_points("new.rtu", [Answered(Table.INPUT_REGISTER, values)])
    assert [p.tag.address for p in points] == [
        "ir:0:float32",
        "ir:2:int16",
        "ir:3:int16",
        "ir:4:int16",
    ]
    assert points[0].note.startswith("check: float32")
    assert points[0].tag.description == "read 42.5"
    assert all(p.note.startswith("check:") for p in points)
    bits = guess_points("new.rtu", [Answered(Table.COIL, {3: 1})])
    assert bits[0].tag.address == "coil:3" and bits[0].tag.writable and not bits[0].note


@pytest.mark.parametrize(
    "text",
    ["hr", "hr:5-1", "zz:0-9", "hr:0-70000", "hr:0-9;rm -rf", f"hr:0-{MAX_PROBED},ir:0-1"],
)
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ProbeRangeError):
        parse_ranges(text)
