"""Checks a Modbus TCP reply against the request it answers, before anything decodes it.

A device (or a gateway) that answers with another function code, another unit, a byte count
that does not fit the request or a broken MBAP header has lost track of the conversation: its
bytes must never become Good values. The checks use the request exactly as it was sent, so they
hold for every function code the driver sends:

- MBAP header (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 3.1.3): the transaction
  identifier and the unit identifier are copied from the request, the protocol identifier is 0,
  the length counts the unit identifier and the PDU (at most 254 bytes: a 260-byte ADU);
- function code (MAP v1.1b3, 4.1 and 7): the request's, or the request's + 0x80 for an
  exception reply, which carries exactly one exception code;
- reads (MAP 6.1-6.4): the byte count is the requested quantity's (N/8 rounded up for bits, 2N
  for registers) and exactly that many bytes follow;
- writes: FC5 and FC6 echo the request (MAP 6.5, 6.6); FC15 and FC16 echo its address and
  quantity (MAP 6.11, 6.12).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MBAP_SIZE = 7
"""Transaction id (2), protocol id (2), length (2), unit id (1)."""

MAX_MBAP_LENGTH = 254
"""Unit id plus the largest PDU (253 bytes, MAP 4.1)."""

EXCEPTION_FLAG = 0x80
"""Added to the function code of an exception reply (MAP 7)."""

_BIT_READS = frozenset({1, 2})
_REGISTER_READS = frozenset({3, 4})
_ECHOED_WRITES = frozenset({5, 6})
_MULTIPLE_WRITES = frozenset({15, 16})


class Incomplete(Enum):
    """The reply so far is a valid beginning; more bytes are due."""

    MORE_BYTES = "more bytes due"


INCOMPLETE = Incomplete.MORE_BYTES


@dataclass(frozen=True, slots=True)
class ReplyViolation:
    """Why a reply cannot be the answer to the request."""

    reason: str


def check_reply(request: bytes, reply: bytes) -> ReplyViolation | Incomplete | None:
    """None when ``reply`` is one whole, consistent answer to ``request`` (both full ADUs);
    INCOMPLETE while it is a consistent beginning; else the violation found first."""
    if len(request) < MBAP_SIZE + 1:
        return ReplyViolation("reply without a request")
    header = _check_header(request, reply)
    if header is not None:
        return header
    if len(reply) < MBAP_SIZE + 1:
        return INCOMPLETE
    function, asked = reply[MBAP_SIZE], request[MBAP_SIZE]
    if function not in (asked, asked | EXCEPTION_FLAG):
        return ReplyViolation(
            f"reply with function code {function} to a request with function code {asked}"
        )
    end = 6 + int.from_bytes(reply[4:6], "big")
    if len(reply) < end:
        return INCOMPLETE
    if len(reply) > end:
        return ReplyViolation(
            f"{len(reply) - end} bytes beyond the {end - 6}-byte length of the MBAP header"
        )
    pdu, asked_pdu = reply[MBAP_SIZE:end], request[MBAP_SIZE:]
    if function == asked | EXCEPTION_FLAG:
        if len(pdu) != 2:
            return ReplyViolation(f"exception reply of {len(pdu)} bytes (MAP 7: 2)")
        return None
    return _check_pdu(function, asked_pdu, pdu)


def _check_header(request: bytes, reply: bytes) -> ReplyViolation | None:
    """The MBAP fields that are already there."""
    if len(reply) >= 2 and reply[:2] != request[:2]:
        return ReplyViolation(
            f"reply with transaction id {int.from_bytes(reply[:2], 'big')} to request "
            f"{int.from_bytes(request[:2], 'big')}"
        )
    if len(reply) >= 4 and reply[2:4] != b"\x00\x00":
        return ReplyViolation(
            f"reply with protocol id {int.from_bytes(reply[2:4], 'big')} (Modbus is 0)"
        )
    if len(reply) >= 6:
        length = int.from_bytes(reply[4:6], "big")
        if not 2 <= length <= MAX_MBAP_LENGTH:
            return ReplyViolation(f"MBAP length {length} outside 2..{MAX_MBAP_LENGTH}")
    if len(reply) >= MBAP_SIZE and reply[6] != request[6]:
        return ReplyViolation(f"reply from unit {reply[6]} to a request to unit {request[6]}")
    return None


def _check_pdu(function: int, asked: bytes, pdu: bytes) -> ReplyViolation | None:
    """A normal reply's PDU against the request's PDU (same function code)."""
    if function in _BIT_READS or function in _REGISTER_READS:
        quantity = int.from_bytes(asked[3:5], "big")
        if function in _BIT_READS:
            expected, unit = (quantity + 7) // 8, "bits"
        else:
            expected, unit = 2 * quantity, "registers"
        if len(pdu) < 2:
            return ReplyViolation("read reply without a byte count")
        if pdu[1] != expected:
            return ReplyViolation(
                f"byte count {pdu[1]} for {quantity} {unit} (MAP 6.{function}: {expected})"
            )
        if len(pdu) - 2 != expected:
            return ReplyViolation(f"byte count {pdu[1]} but {len(pdu) - 2} data bytes follow")
        return None
    if function in _ECHOED_WRITES and pdu != asked:
        return ReplyViolation(
            f"write reply {pdu[1:].hex()} does not echo the request {asked[1:].hex()} "
            f"(MAP 6.{function})"
        )
    if function in _MULTIPLE_WRITES and pdu != asked[:5]:
        section = "11" if function == 15 else "12"
        return ReplyViolation(
            f"write reply {pdu[1:].hex()} does not echo address and quantity "
            f"{asked[1:5].hex()} (MAP 6.{section})"
        )
    return None
