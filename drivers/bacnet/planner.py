"""Splits reads into ReadPropertyMultiple requests whose answers fit the device's max APDU.

An unsegmented ComplexACK must fit in the max-APDU-length-accepted the device and the driver
agreed on (ASHRAE 135-2020, 5.2.1 and 20.1.2.5), so the planner estimates each answer's size
from its encoding (clause 20.2, 21: ReadPropertyMultiple-ACK) and starts a new request before
the estimate would pass the limit. The estimates are upper bounds for the properties points
read; a device that still answers "segmentation not supported" or "buffer overflow" gets the
request split in two by the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ACK_HEADER_BYTES = 4
"""ComplexACK PDU type, invoke id and service choice (20.1.5)."""

OBJECT_OVERHEAD_BYTES = 7
"""Per object: the context-tagged object identifier (5) and the list's opening/closing tags."""

PROPERTY_OVERHEAD_BYTES = 5
"""Per property: the property identifier (up to 3) and the result's opening/closing tags."""

VALUE_BYTES: dict[str, int] = {
    "present-value": 5,
    "status-flags": 3,
    "out-of-service": 2,
    "units": 3,
    "event-state": 2,
    "reliability": 2,
    "relinquish-default": 5,
    "cov-increment": 5,
    "number-of-states": 5,
    "current-command-priority": 3,
}
"""Largest encoding of each property's value (REAL 5, enumerations 2-3, unsigned up to 5)."""

ERROR_BYTES = 8
"""A property access error: opening/closing tag, error class and error code (21)."""

OTHER_VALUE_BYTES = 72
"""Assumed size of any other property (names, descriptions, arrays)."""


@dataclass(frozen=True, slots=True)
class ObjectRead:
    """The properties to read from one object."""

    object_key: str
    properties: tuple[str, ...]


def answer_size(read: ObjectRead) -> int:
    """Upper bound of the bytes one object's results take in a ReadPropertyMultiple-ACK."""
    size = OBJECT_OVERHEAD_BYTES
    for name in read.properties:
        value = VALUE_BYTES.get(name, OTHER_VALUE_BYTES)
        size += PROPERTY_OVERHEAD_BYTES + max(value, ERROR_BYTES)
    return size


def plan_batches(reads: Sequence[ObjectRead], max_apdu: int) -> list[list[int]]:
    """Indices of ``reads`` grouped into requests whose estimated answers fit ``max_apdu``.

    Order is kept; an object whose answer alone exceeds the limit gets a request of its own
    (the device may then segment it or refuse it).
    """
    budget = max_apdu - ACK_HEADER_BYTES
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, read in enumerate(reads):
        size = answer_size(read)
        if current and used + size > budget:
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        batches.append(current)
    return batches
