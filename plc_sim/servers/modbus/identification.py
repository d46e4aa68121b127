"""Read Device Identification (MAP v1.1b3 6.21, FC43 / MEI type 14) of a simulated RTU.

Every simulated RTU implements the basic category, with stream and individual access
(conformity level 0x81): VendorName (object 0), ProductCode (1) and MajorMinorRevision (2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONFORMITY_BASIC_STREAM_AND_INDIVIDUAL = 0x81
"""Basic identification, stream access and individual access (MAP 6.21, conformity level)."""

BASIC_STREAM, REGULAR_STREAM, EXTENDED_STREAM, INDIVIDUAL = 1, 2, 3, 4
"""Read Device ID codes (MAP 6.21)."""

_ILLEGAL_DATA_ADDRESS = 2
_ILLEGAL_DATA_VALUE = 3

VENDOR_NAME = "City Simulation Works"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The basic identification objects of one device."""

    vendor_name: str
    product_code: str
    revision: str

    @classmethod
    def of(cls, device_name: str) -> DeviceIdentity:
        """A plausible identity for the device named ``device_name`` (``water.tank1_rtu`` is
        product ``SIM-WATER-TANK1-RTU``)."""
        product = re.sub(r"[^A-Z0-9]+", "-", device_name.upper()).strip("-")
        return cls(VENDOR_NAME, f"SIM-{product}"[:64], "2.1")

    @property
    def objects(self) -> tuple[bytes, ...]:
        """The objects by id, encoded as ASCII strings (MAP 6.21: object values are strings)."""
        return tuple(
            text.encode("ascii", "replace")
            for text in (self.vendor_name, self.product_code, self.revision)
        )


def identification_answer(identity: DeviceIdentity, read_code: int, object_id: int) -> bytes | int:
    """The answer's bytes after the function code (MEI type onwards) to a request for
    ``read_code`` from ``object_id``, or the exception code to answer instead."""
    objects = identity.objects
    if read_code == INDIVIDUAL:
        if object_id >= len(objects):
            return _ILLEGAL_DATA_ADDRESS  # MAP 6.21: an individual object that does not exist
        chosen = [object_id]
    elif read_code in (BASIC_STREAM, REGULAR_STREAM, EXTENDED_STREAM):
        # MAP 6.21: a stream from an unknown object restarts at object 0; a category above the
        # conformity level is answered with the level the device has (basic).
        start = object_id if object_id < len(objects) else 0
        chosen = list(range(start, len(objects)))
    else:
        return _ILLEGAL_DATA_VALUE
    body = b"".join(bytes([oid, len(objects[oid])]) + objects[oid] for oid in chosen)
    # MEI type, read device id code, conformity level, more follows (no), next object id (0),
    # number of objects, then the objects.
    header = bytes([0x0E, read_code, CONFORMITY_BASIC_STREAM_AND_INDIVIDUAL, 0x00, 0x00])
    return header + bytes([len(chosen)]) + body
