"""The reply check on its own: every byte string is judged, none makes it raise."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.reply_check import INCOMPLETE, ReplyViolation, check_reply

REQUESTS = [
    struct.pack(">HHHBBHH", 9, 0, 6, 1, function, 0, quantity)
    for function, quantity in ((1, 10), (2, 1), (3, 125), (4, 2), (5, 0xFF00), (6, 7))
] + [
    struct.pack(">HHHBBHHB", 9, 0, 8, 1, 15, 0, 3, 1) + b"\x05",
    struct.pack(">HHHBBHHB", 9, 0, 11, 1, 16, 0, 2, 4) + b"\x00\x01\x00\x02",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REQUESTS), st.binary(max_size=270))
def test_any_bytes_are_judged_without_raising(request: bytes, reply: bytes) -> None:
    verdict = check_reply(request, reply)
    assert verdict is None or verdict is INCOMPLETE or isinstance(verdict, ReplyViolation)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(REQUESTS), st.binary(max_size=270))
def test_a_consistent_beginning_stays_incomplete_until_the_frame_is_whole(
    request: bytes, tail: bytes
) -> None:
    header = request[:4] + struct.pack(">H", 3) + request[6:7]
    reply = header + bytes([request[7] | 0x80, 4])
    assert check_reply(request, reply) is None
    for cut in range(1, len(reply)):
        assert check_reply(request, reply[:cut]) is INCOMPLETE
    if tail:
        assert isinstance(check_reply(request, reply + tail), ReplyViolation)


def test_good_replies_pass() -> None:
    read = struct.pack(">HHHBBHH", 3, 0, 6, 1, 3, 0, 2)
    assert (
        check_reply(read, struct.pack(">HHHBBB4s", 3, 0, 7, 1, 3, 4, b"\x00\x01\x00\x02")) is None
    )
    coils = struct.pack(">HHHBBHH", 3, 0, 6, 1, 1, 0, 9)
    assert check_reply(coils, struct.pack(">HHHBBB2s", 3, 0, 5, 1, 1, 2, b"\x01\x01")) is None
    write = struct.pack(">HHHBBHH", 3, 0, 6, 1, 6, 4, 99)
    assert check_reply(write, write) is None
