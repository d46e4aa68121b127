"""OCPP point addresses: one quantity of one connector of one charge point.

The center is the central system (OCPP 1.6J) or CSMS (OCPP 2.0.1) that charge points connect to;
one device of the site is that endpoint, and each tag addresses a charge point by its identity:

``cp:<charge point id>:<connector>:<quantity>``, e.g. ``cp:harbour-1:1:power_w``.

``<connector>`` is the connector id in OCPP 1.6 and the EVSE id in OCPP 2.0.1; 0 is the charge
point as a whole (its connection, its overall limit). Quantities:

================== ======== ======== ===========================================================
quantity           type     writable meaning
================== ======== ======== ===========================================================
connected          bool     no       the charge point is connected and heard within its heartbeat
status             string   no       connector status in OCPP 1.6 words (Available, Preparing,
                                     Charging, SuspendedEV, SuspendedEVSE, Finishing, Reserved,
                                     Unavailable, Faulted); OCPP 2.0.1 states are mapped to them
energy_wh          float    no       the meter's active energy import register (Wh)
power_w            float    no       active power import (W)
session_active     bool     no       a transaction is running on the connector
session_energy_wh  float    no       energy of the running (or last) transaction (Wh)
charge             bool     yes      true: remote start, false: remote stop; reads back
                                     ``session_active``
limit_w            float    yes      charging limit (SetChargingProfile); reads back the limit of
                                     the charge point's composite schedule (W)
================== ======== ======== ===========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_CONNECTOR = 99
"""Highest connector (EVSE) id accepted in an address; real charge points have a few."""

CHARGE_POINT_ID = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,47}"
"""A charge point identity: OCPP's identifierString of at most 48 characters, restricted to
characters that stand unescaped in a URL path and in a tag address."""
_CHARGE_POINT_ID = re.compile(rf"^{CHARGE_POINT_ID}$")
_CONNECTOR = re.compile(r"^[0-9]{1,2}$")


class Quantity(StrEnum):
    """What a point reads or commands of a connector."""

    CONNECTED = "connected"
    STATUS = "status"
    ENERGY_WH = "energy_wh"
    POWER_W = "power_w"
    SESSION_ACTIVE = "session_active"
    SESSION_ENERGY_WH = "session_energy_wh"
    CHARGE = "charge"
    LIMIT_W = "limit_w"


_NUMERIC = frozenset({DataType.FLOAT, DataType.INT})
_BOOL = frozenset({DataType.BOOL})
DATA_TYPES: dict[Quantity, frozenset[DataType]] = {
    Quantity.CONNECTED: _BOOL,
    Quantity.STATUS: frozenset({DataType.STRING}),
    Quantity.ENERGY_WH: _NUMERIC,
    Quantity.POWER_W: _NUMERIC,
    Quantity.SESSION_ACTIVE: _BOOL,
    Quantity.SESSION_ENERGY_WH: _NUMERIC,
    Quantity.CHARGE: _BOOL,
    Quantity.LIMIT_W: _NUMERIC,
}
"""The tag data types each quantity can be read as."""
WRITABLE = frozenset({Quantity.CHARGE, Quantity.LIMIT_W})
"""The quantities whose write sends an OCPP call to the charge point."""


@dataclass(frozen=True, slots=True)
class OcppAddress:
    """One quantity of one connector of one charge point."""

    charge_point: str
    connector: int
    quantity: Quantity

    def __str__(self) -> str:
        return f"cp:{self.charge_point}:{self.connector}:{self.quantity.value}"


def parse_address(address: str) -> OcppAddress:
    """Parse ``cp:<id>:<connector>:<quantity>``; raise AddressError naming what is wrong."""
    parts = address.split(":")
    if len(parts) != 4 or parts[0] != "cp":
        raise AddressError(
            f"OCPP address {address!r} is not 'cp:<charge point id>:<connector>:<quantity>', "
            "e.g. 'cp:harbour-1:1:power_w'"
        )
    _, charge_point, connector_text, quantity_text = parts
    if not _CHARGE_POINT_ID.fullmatch(charge_point):
        raise AddressError(
            f"OCPP address {address!r}: charge point id {charge_point!r} is not 1-48 letters, "
            "digits, '.', '_' or '-'"
        )
    # ASCII digits only: str.isdecimal() also takes other scripts' digits.
    if not _CONNECTOR.fullmatch(connector_text):
        raise AddressError(
            f"OCPP address {address!r}: connector {connector_text!r} is not 0..{MAX_CONNECTOR}"
        )
    try:
        quantity = Quantity(quantity_text)
    except ValueError:
        known = ", ".join(q.value for q in Quantity)
        raise AddressError(
            f"OCPP address {address!r}: unknown quantity {quantity_text!r} (one of {known})"
        ) from None
    return OcppAddress(charge_point, int(connector_text), quantity)


def validate_address(address: str, data_type: DataType) -> None:
    """Check that ``address`` parses and its quantity can be read as ``data_type``."""
    parsed = parse_address(address)
    allowed = DATA_TYPES[parsed.quantity]
    if data_type not in allowed:
        names = " or ".join(sorted(kind.value for kind in allowed))
        raise AddressError(
            f"OCPP address {address!r}: {parsed.quantity.value} is {names}, not {data_type.value}"
        )
