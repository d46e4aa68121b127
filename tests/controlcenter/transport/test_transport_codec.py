"""The wire format: every field of a sample survives, and hostile bytes are a CodecError."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlcenter.model import _STATUS_CODES as STATUS_PAIRS
from controlcenter.model import (
    CommandStatus,
    Event,
    EventKind,
    Quality,
    Sample,
    ScanDiagnostics,
    Severity,
    Substatus,
    Value,
)
from controlcenter.transport.codec import (
    CodecError,
    CommandReply,
    CommandRequest,
    SampleBatch,
    decode_answer,
    decode_batch,
    decode_command,
    decode_diagnostics,
    decode_events,
    decode_reply,
    encode_accepted,
    encode_batch,
    encode_command,
    encode_diagnostics,
    encode_events,
    encode_reply,
)

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)

times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    times,
)
qualities = st.sampled_from(sorted(STATUS_PAIRS, key=lambda pair: STATUS_PAIRS[pair])).flatmap(
    lambda pair: st.builds(Quality, st.just(pair[0]), st.just(pair[1]), st.text(max_size=20))
)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    value = draw(values)
    quality = draw(qualities)
    if value is None and quality.is_good:
        quality = Quality.bad(Substatus.COMM_FAILURE, "no value")
    return Sample(draw(st.text(min_size=1, max_size=30)), value, quality, draw(times), draw(times))


def _same_value(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    return type(left) is type(right) and left == right


@given(st.lists(samples(), max_size=20))
def test_every_field_of_every_sample_round_trips(batch: list[Sample]) -> None:
    decoded = decode_batch(encode_batch(SampleBatch("district-1", "water.ps1", tuple(batch))))
    assert (decoded.edge, decoded.device) == ("district-1", "water.ps1")
    assert len(decoded.samples) == len(batch)
    for before, after in zip(batch, decoded.samples, strict=True):
        assert after.tag == before.tag
        assert _same_value(before.value, after.value), (before.value, after.value)
        assert after.quality == before.quality
        assert after.source_time == before.source_time
        assert after.server_time == before.server_time
        assert after.server_time.tzinfo is not None


MIXED: list[Value] = [-0.0, math.inf, 2**70, True, 1, 1.0, "1"]


def test_negative_zero_nan_and_big_integers_keep_their_type() -> None:
    batch = SampleBatch(
        "e",
        "d",
        tuple(Sample(f"t{i}", value, Quality.good(), T0, T0) for i, value in enumerate(MIXED)),
    )
    decoded = [s.value for s in decode_batch(encode_batch(batch)).samples]
    assert math.copysign(1, decoded[0]) == -1  # type: ignore[arg-type]
    assert decoded[1] == math.inf
    assert decoded[2] == 2**70
    assert [type(v) for v in decoded[3:]] == [bool, int, float, str]


def test_a_naive_time_cannot_be_sent() -> None:
    sample = Sample("t", 1.0, Quality.good(), T0.replace(tzinfo=None), T0)
    with pytest.raises(CodecError, match="time zone"):
        encode_batch(SampleBatch("e", "d", (sample,)))


def test_commands_replies_events_and_diagnostics_round_trip() -> None:
    request = CommandRequest("c1", "water.ps1.pump1.run_cmd", True, 8, "olga", "_INBOX.x")
    assert decode_command(encode_command(request)) == request
    reply = CommandReply("c1", CommandStatus.CONFIRMED, "readback", 42.5)
    assert decode_reply(encode_reply(reply)) == reply
    assert decode_answer(encode_accepted("c1"), "c1") is None
    assert decode_answer(encode_reply(reply), "c1") == reply
    with pytest.raises(CodecError):
        decode_answer(encode_accepted("c2"), "c1")
    event = Event(T0, EventKind.COMMAND, "water.ps1", "written", "olga", 3)
    assert decode_events(encode_events("e", [event])) == ("e", [event])
    health = ScanDiagnostics("water.ps1", True, 10, 9, 1, T0, "", 1.5, 3.0, connected=True)
    edge, at, devices = decode_diagnostics(encode_diagnostics("e", T0, [health]))
    assert (edge, at) == ("e", T0)
    assert devices[0].device == "water.ps1" and devices[0].scans_on_time == 9
    assert devices[0].last_good_scan == T0


def _packed(*message: object) -> bytes:
    return msgpack.packb(list(message))  # type: ignore[no-any-return]


GOOD_ROW = ["t", 4, 1.0, 0, "", 0, 0]
HOSTILE = [
    b"",
    b"\xc1",  # never used in MessagePack
    b"\x92\x01",  # truncated array
    b"\xdd\xff\xff\xff\xff",  # an array claiming 4 G elements
    b"{}" * 10,
    _packed({"a": 1}),
    _packed(2, "samples", "e", "d", []),  # another format version
    _packed(1, "reply", "e", "d", []),  # another kind
    _packed(1, "samples", "e", "d", "not a list"),
    _packed(1, "samples", "", "d", []),  # no edge
    _packed(1, "samples", "e", "d", [["t", 4, 1.0, 0, ""]]),  # short row
    _packed(1, "samples", "e", "d", [["t", 99, 1.0, 0, "", 0, 0]]),  # unknown kind
    _packed(1, "samples", "e", "d", [["t", 1, 1.0, 0, "", 0, 0]]),  # bool kind, float value
    _packed(1, "samples", "e", "d", [["t", 4, 1.0, 0x12345678, "", 0, 0]]),  # unknown status
    _packed(1, "samples", "e", "d", [["t", 4, 1.0, -1, "", 0, 0]]),
    _packed(1, "samples", "e", "d", [["t", 0, None, 0, "", 0, 0]]),  # Good without a value
    _packed(1, "samples", "e", "d", [["t", 4, 1.0, 0, "", 2**62, 0]]),  # time out of range
    _packed(1, "samples", "e", "d", [["t", 3, "12a", 0, "", 0, 0]]),  # big int not digits
    _packed(1, "samples", "e", "d", [["t" * 5000, 4, 1.0, 0, "", 0, 0]]),  # tag too long
    _packed(1, "samples", "e", "d", [[{"x": 1}, 4, 1.0, 0, "", 0, 0]]),
    _packed(1, "samples", "e", "d", [GOOD_ROW] * 100_001),  # too many samples
]


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bytes_are_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_batch(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_a_codec_error(data: bytes) -> None:
    for decode in (decode_batch, decode_command, decode_reply, decode_events, decode_diagnostics):
        with contextlib.suppress(CodecError):
            decode(data)


def test_hostile_commands_are_refused() -> None:
    good = ["c", "t", 4, 1.0, 8, "u", "_INBOX.a"]
    for index, bad in [(3, math.nan), (4, 0), (4, 17), (2, 0)]:
        fields = list(good)
        fields[index] = bad
        if index == 2:
            fields[3] = None  # a command without a value
        with pytest.raises(CodecError):
            decode_command(_packed(1, "command", *fields))
    assert decode_command(_packed(1, "command", *good)).value == 1.0


def test_unknown_severity_pairs_are_not_invented() -> None:
    assert Quality(Severity.BAD, Substatus.TIMEOUT).status_code == 0x800A0000
    row = ["t", 4, 1.0, 0x800A0000, "slow", 0, int(timedelta(days=1).total_seconds() * 1e6)]
    sample = decode_batch(_packed(1, "samples", "e", "d", [row])).samples[0]
    assert sample.quality == Quality.bad(Substatus.TIMEOUT, "slow")
    assert sample.server_time == datetime(1970, 1, 2, tzinfo=UTC)
