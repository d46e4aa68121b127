from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.address import ModbusAddress, Table, ValueType
from drivers.modbus.planner import MAX_READ_BITS, MAX_READ_REGISTERS, plan_reads

REGISTER_TYPES = [t for t in ValueType if t is not ValueType.BOOL]


@st.composite
def addresses(draw: st.DrawFn) -> ModbusAddress:
    table = draw(st.sampled_from(list(Table)))
    value_type = ValueType.BOOL if table.is_bit_table else draw(st.sampled_from(REGISTER_TYPES))
    # Cluster offsets so that merging, gaps and limits all happen.
    offset = draw(st.one_of(st.integers(0, 300), st.integers(0, 65536 - value_type.width)))
    return ModbusAddress(table, offset, value_type)


@given(
    st.lists(addresses(), max_size=60),
    st.integers(0, 20),
    st.integers(2, MAX_READ_REGISTERS),
    st.integers(1, MAX_READ_BITS),
)
def test_every_point_is_covered_by_exactly_one_request_within_limits(
    points: list[ModbusAddress], max_gap: int, max_registers: int, max_bits: int
) -> None:
    plan = plan_reads(points, max_gap=max_gap, max_registers=max_registers, max_bits=max_bits)
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


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_reads([], max_gap=-1)
    with pytest.raises(ValueError):
        plan_reads([], max_registers=126)
