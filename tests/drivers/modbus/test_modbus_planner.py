from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.address import ModbusAddress, Table, ValueType
from drivers.modbus.planner import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    ReadRequest,
    RejectedRanges,
    plan_reads,
)

REGISTER_TYPES = [t for t in ValueType if t is not ValueType.BOOL]


@st.composite
def addresses(draw: st.DrawFn) -> ModbusAddress:
    table = draw(st.sampled_from(list(Table)))
    if not table.is_bit_table and draw(st.booleans()) and draw(st.booleans()):
        # A bit inside a register, now and then.
        offset = draw(st.integers(0, 300))
        return ModbusAddress(table, offset, ValueType.BOOL, draw(st.integers(0, 15)))
    value_type = ValueType.BOOL if table.is_bit_table else draw(st.sampled_from(REGISTER_TYPES))
    # Cluster offsets so that merging, gaps and limits all happen.
    offset = draw(st.one_of(st.integers(0, 300), st.integers(0, 65536 - value_type.width)))
    return ModbusAddress(table, offset, value_type)


@st.composite
def rejected_ranges(draw: st.DrawFn) -> RejectedRanges:
    rejected = RejectedRanges()
    for _ in range(draw(st.integers(0, 6))):
        table = draw(st.sampled_from(list(Table)))
        start = draw(st.integers(0, 320))
        rejected.add(table, start, start + draw(st.integers(0, 12)))
    return rejected


def assert_valid_plan(
    points: list[ModbusAddress],
    plan: list[ReadRequest],
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> None:
    members = sorted(index for request in plan for index in request.members)
    assert members == list(range(len(points)))
    for request in plan:
        limit = max_bits if request.table.is_bit_table else max_registers
        assert 1 <= request.count <= limit
        assert request.end <= 65536
        for index in request.members:
            point = points[index]
            assert point.table is request.table
            assert request.start <= point.offset and point.end <= request.end
        # The request starts and ends on a point: no register is read for nothing at the edges.
        assert request.start == min(points[i].offset for i in request.members)
        assert request.end == max(points[i].end for i in request.members)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(addresses(), max_size=60),
    st.integers(0, 20),
    st.integers(4, MAX_READ_REGISTERS),
    st.integers(1, MAX_READ_BITS),
)
def test_every_point_is_covered_by_exactly_one_request_within_limits(
    points: list[ModbusAddress], max_gap: int, max_registers: int, max_bits: int
) -> None:
    plan = plan_reads(points, max_gap=max_gap, max_registers=max_registers, max_bits=max_bits)
    assert_valid_plan(points, plan, max_registers, max_bits)


@settings(deadline=None, max_examples=60)
@given(st.lists(addresses(), max_size=60), st.integers(0, 20), rejected_ranges())
def test_no_merged_request_meets_a_rejected_range(
    points: list[ModbusAddress], max_gap: int, rejected: RejectedRanges
) -> None:
    plan = plan_reads(points, max_gap=max_gap, rejected=rejected)
    assert_valid_plan(points, plan)
    for request in plan:
        if rejected.blocks(request.table, request.start, request.end):
            # Only a point that itself lies in a rejected range is read over one: alone.
            assert len(request.members) == 1


@settings(deadline=None, max_examples=60)
@given(st.lists(addresses(), max_size=60), st.integers(0, 20))
def test_neighbouring_requests_could_not_have_been_merged(
    points: list[ModbusAddress], max_gap: int
) -> None:
    plan = plan_reads(points, max_gap=max_gap)
    for before, after in itertools.pairwise(plan):
        if before.table is not after.table:
            continue
        limit = MAX_READ_BITS if before.table.is_bit_table else MAX_READ_REGISTERS
        gap = after.start - before.end
        assert gap > max_gap or max(before.end, after.end) - before.start > limit


def fewest_requests(offsets: list[int], width: int, limit: int, max_gap: int) -> int:
    """Exhaustive optimum for equal-width, distinct points: requests are runs of sorted points."""
    offsets = sorted(offsets)
    best = [0] + [len(offsets) + 1] * len(offsets)
    for end in range(1, len(offsets) + 1):
        for start in range(end):
            run = offsets[start:end]
            fits = run[-1] + width - run[0] <= limit
            close = all(b - (a + width) <= max_gap for a, b in itertools.pairwise(run))
            if fits and close:
                best[end] = min(best[end], best[start] + 1)
    return best[-1]


@settings(deadline=None, max_examples=60)
@given(
    st.sets(st.integers(0, 400), max_size=40),
    st.sampled_from([ValueType.UINT16, ValueType.FLOAT32, ValueType.FLOAT64]),
    st.integers(0, 3),
    st.integers(4, 40),
)
def test_request_count_is_minimal(
    starts: set[int], value_type: ValueType, max_gap: int, max_registers: int
) -> None:
    width = value_type.width
    # Distinct, non-overlapping points of one width.
    offsets = sorted({start * width for start in starts})
    points = [ModbusAddress(Table.HOLDING_REGISTER, o, value_type) for o in offsets]
    plan = plan_reads(points, max_gap=max_gap, max_registers=max_registers)
    assert len(plan) == fewest_requests(offsets, width, max_registers, max_gap)


def test_the_tank_floats_take_one_request() -> None:
    floats = [
        ModbusAddress(Table.INPUT_REGISTER, offset, ValueType.FLOAT32) for offset in (4, 0, 2)
    ]
    plan = plan_reads(floats)
    assert len(plan) == 1
    assert (plan[0].start, plan[0].count, sorted(plan[0].members)) == (0, 6, [0, 1, 2])


def test_gap_and_tables_split_requests() -> None:
    points = [
        ModbusAddress(Table.HOLDING_REGISTER, 0, ValueType.UINT16),
        ModbusAddress(Table.HOLDING_REGISTER, 9, ValueType.UINT16),  # gap of 8: merged
        ModbusAddress(Table.HOLDING_REGISTER, 19, ValueType.UINT16),  # gap of 9: split
        ModbusAddress(Table.COIL, 0, ValueType.BOOL),
        ModbusAddress(Table.HOLDING_REGISTER, 9, ValueType.UINT16),  # duplicate point
    ]
    plan = plan_reads(points, max_gap=8)
    assert [(r.table, r.start, r.count, r.members) for r in plan] == [
        (Table.COIL, 0, 1, (3,)),
        (Table.HOLDING_REGISTER, 0, 10, (0, 1, 4)),
        (Table.HOLDING_REGISTER, 19, 1, (2,)),
    ]


def test_register_limit_splits_long_ranges() -> None:
    points = [ModbusAddress(Table.INPUT_REGISTER, i * 2, ValueType.FLOAT32) for i in range(100)]
    plan = plan_reads(points)
    assert [(r.start, r.count) for r in plan] == [(0, 124), (124, 76)]


def test_bits_of_one_register_share_its_request() -> None:
    points = [
        ModbusAddress(Table.HOLDING_REGISTER, 10, ValueType.BOOL, bit) for bit in (0, 3, 15)
    ] + [ModbusAddress(Table.HOLDING_REGISTER, 11, ValueType.INT16)]
    (request,) = plan_reads(points)
    assert (request.start, request.count, request.members) == (10, 2, (0, 1, 2, 3))


def test_requests_go_around_a_rejected_hole_and_a_rejected_point_is_read_alone() -> None:
    points = [ModbusAddress(Table.HOLDING_REGISTER, o, ValueType.UINT16) for o in (0, 2, 6, 8)]
    rejected = RejectedRanges()
    assert rejected.add(Table.HOLDING_REGISTER, 3, 5)
    assert not rejected.add(Table.HOLDING_REGISTER, 3, 4)  # already known
    plan = plan_reads(points, rejected=rejected)
    assert [(r.start, r.count) for r in plan] == [(0, 3), (6, 3)]
    rejected.add(Table.HOLDING_REGISTER, 8, 9)
    plan = plan_reads(points, rejected=rejected)
    assert [(r.start, r.count) for r in plan] == [(0, 3), (6, 1), (8, 1)]
    # Other tables are not affected.
    coils = [ModbusAddress(Table.COIL, o, ValueType.BOOL) for o in (2, 4)]
    assert len(plan_reads(coils, rejected=rejected)) == 1


def test_a_rejected_boundary_splits_touching_points() -> None:
    points = [ModbusAddress(Table.INPUT_REGISTER, o, ValueType.FLOAT32) for o in (0, 2, 4)]
    rejected = RejectedRanges()
    rejected.add(Table.INPUT_REGISTER, 4, 4)
    plan = plan_reads(points, rejected=rejected)
    assert [(r.start, r.count) for r in plan] == [(0, 4), (4, 2)]
    assert rejected.version == 1 and len(rejected) == 1


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_reads([], max_gap=-1)
    with pytest.raises(ValueError):
        plan_reads([], max_registers=126)
    with pytest.raises(ValueError):
        plan_reads([], max_registers=3)
    with pytest.raises(ValueError):
        RejectedRanges().add(Table.COIL, 5, 4)
