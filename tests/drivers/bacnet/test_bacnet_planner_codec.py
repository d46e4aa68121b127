from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.model import DataType, Severity, Substatus
from drivers.bacnet.address import parse_address
from drivers.bacnet.codec import (
    CodecError,
    decode_present_value,
    encode_present_value,
    quality_from_status_flags,
    shortest_float32,
)
from drivers.bacnet.planner import ACK_HEADER_BYTES, ObjectRead, answer_size, plan_batches

PV_AND_FLAGS = ("present-value", "status-flags")


def test_batches_fit_the_apdu_and_keep_order() -> None:
    reads = [ObjectRead(f"analog-input:{n}", PV_AND_FLAGS) for n in range(500)]
    batches = plan_batches(reads, 1476)
    assert [i for batch in batches for i in batch] == list(range(500))
    assert len(batches) > 1
    for batch in batches:
        assert sum(answer_size(reads[i]) for i in batch) <= 1476 - ACK_HEADER_BYTES
    assert len(plan_batches(reads[:10], 1476)) == 1


@given(st.integers(min_value=50, max_value=1476), st.integers(min_value=1, max_value=300))
def test_every_batch_fits_for_any_apdu(max_apdu: int, count: int) -> None:
    reads = [ObjectRead(f"analog-value:{n}", PV_AND_FLAGS) for n in range(count)]
    for batch in plan_batches(reads, max_apdu):
        assert len(batch) == 1 or sum(answer_size(reads[i]) for i in batch) <= max_apdu


def test_status_flags_map_to_quality() -> None:
    assert quality_from_status_flags([0, 0, 0, 0], "ai:1").is_good
    assert quality_from_status_flags([1, 0, 0, 0], "ai:1").is_good
    fault = quality_from_status_flags([0, 1, 0, 1], "ai:1")
    assert (fault.severity, fault.substatus) == (Severity.BAD, Substatus.DEVICE_FAILURE)
    oos = quality_from_status_flags([0, 0, 1, 1], "ai:1")
    assert (oos.severity, oos.substatus) == (Severity.BAD, Substatus.OUT_OF_SERVICE)
    override = quality_from_status_flags([0, 0, 1, 0], "ai:1")
    assert (override.severity, override.substatus) == (Severity.GOOD, Substatus.LOCAL_OVERRIDE)


def test_present_values_convert_both_ways() -> None:
    states = parse_address("multi-state-value:1")
    assert decode_present_value(states, 1, DataType.INT) == 0
    assert int(encode_present_value(states, 2)) == 3  # type: ignore[call-overload]
    binary = parse_address("binary-output:1")
    assert decode_present_value(binary, 1, DataType.BOOL) is True
    assert int(encode_present_value(binary, False)) == 0  # type: ignore[call-overload]
    analog = parse_address("analog-input:1")
    assert decode_present_value(analog, 2.799999952316284, DataType.FLOAT) == 2.8
    with pytest.raises(CodecError):
        encode_present_value(analog, True)
    with pytest.raises(CodecError):
        decode_present_value(states, 0, DataType.INT)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_shortest_float32_is_the_same_real(value: float) -> None:
    assert struct.pack(">f", shortest_float32(value)) == struct.pack(">f", value)
