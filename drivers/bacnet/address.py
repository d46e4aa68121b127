"""BACnet point addresses: ``<object-type>:<instance>[/<property>]``, e.g. ``analog-input:3``.

The object type is a standard BACnetObjectType name (ASHRAE 135-2020, clause 21) of the
objects a field controller exposes for points: analog, binary and multi-state inputs, outputs
and values. The instance is the object's number, 0..4194302 (4194303 is the wildcard,
12.11.1). The property defaults to ``present-value``; any standard BACnetPropertyIdentifier
name may be given instead (``units``, ``out-of-service``, ``relinquish-default``, ...), and
such a point is read as that property's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bacpypes3.basetypes import PropertyIdentifier

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_INSTANCE = 0x3FFFFE
"""Highest object instance (22 bits, 4194303 reserved as the wildcard, ASHRAE 135 12.11.1)."""

PRESENT_VALUE = "present-value"


class ObjectType(StrEnum):
    """Object types a point may live in (ASHRAE 135-2020, clauses 12.2-12.20)."""

    ANALOG_INPUT = "analog-input"
    ANALOG_OUTPUT = "analog-output"
    ANALOG_VALUE = "analog-value"
    BINARY_INPUT = "binary-input"
    BINARY_OUTPUT = "binary-output"
    BINARY_VALUE = "binary-value"
    MULTI_STATE_INPUT = "multi-state-input"
    MULTI_STATE_OUTPUT = "multi-state-output"
    MULTI_STATE_VALUE = "multi-state-value"

    @property
    def is_analog(self) -> bool:
        """Whether present-value is a REAL."""
        return self.value.startswith("analog")

    @property
    def is_binary(self) -> bool:
        """Whether present-value is a BACnetBinaryPV (inactive/active)."""
        return self.value.startswith("binary")

    @property
    def is_multi_state(self) -> bool:
        """Whether present-value is an Unsigned state number counted from 1 (12.18-12.20)."""
        return self.value.startswith("multi-state")

    @property
    def is_input(self) -> bool:
        """Whether present-value is a measurement, not writable by clients."""
        return self.value.endswith("input")


# Which engineering data types a present-value of each kind can carry.
_PRESENT_VALUE_TYPES: dict[str, frozenset[DataType]] = {
    "analog": frozenset({DataType.FLOAT, DataType.INT}),
    "binary": frozenset({DataType.BOOL}),
    "multi-state": frozenset({DataType.INT}),
}


@dataclass(frozen=True, slots=True)
class BacnetAddress:
    """A parsed point address: object type, instance and property."""

    object_type: ObjectType
    instance: int
    property_name: str = PRESENT_VALUE

    def __post_init__(self) -> None:
        if not 0 <= self.instance <= MAX_INSTANCE:
            raise AddressError(f"instance {self.instance} outside 0..{MAX_INSTANCE}")
        if not _is_property_name(self.property_name):
            raise AddressError(
                f"unknown BACnet property {self.property_name!r} (a BACnetPropertyIdentifier name "
                "such as 'present-value' or 'units')"
            )

    @property
    def object_key(self) -> str:
        """The object as ``<object-type>:<instance>``."""
        return f"{self.object_type}:{self.instance}"

    @property
    def is_present_value(self) -> bool:
        """Whether the address names the object's present-value."""
        return self.property_name == PRESENT_VALUE

    @property
    def kind(self) -> str:
        """``analog``, ``binary`` or ``multi-state``."""
        if self.object_type.is_analog:
            return "analog"
        return "binary" if self.object_type.is_binary else "multi-state"

    def __str__(self) -> str:
        if self.is_present_value:
            return self.object_key
        return f"{self.object_key}/{self.property_name}"


def _is_property_name(name: str) -> bool:
    """Whether ``name`` is a standard property identifier in its hyphenated form."""
    try:
        return str(PropertyIdentifier(name)) == name
    except ValueError:
        return False


def parse_address(text: str) -> BacnetAddress:
    """Parse ``<object-type>:<instance>[/<property>]``; raise ``AddressError`` naming the fault."""
    body, slash, property_text = text.strip().partition("/")
    type_text, colon, instance_text = body.partition(":")
    if not colon or (slash and not property_text.strip()):
        raise AddressError(
            f"BACnet address {text!r} is not '<object-type>:<instance>[/<property>]' "
            "(e.g. 'analog-input:3' or 'analog-value:1/relinquish-default')"
        )
    type_text = type_text.strip().lower()
    try:
        object_type = ObjectType(type_text)
    except ValueError as err:
        types = ", ".join(t.value for t in ObjectType)
        raise AddressError(
            f"BACnet address {text!r}: unknown object type {type_text!r} (one of {types})"
        ) from err
    instance_text = instance_text.strip()
    if not (instance_text.isascii() and instance_text.isdigit()):
        raise AddressError(
            f"BACnet address {text!r}: instance {instance_text!r} is not a decimal number "
            f"0..{MAX_INSTANCE}"
        )
    property_name = property_text.strip().lower() if slash else PRESENT_VALUE
    try:
        return BacnetAddress(object_type, int(instance_text), property_name)
    except AddressError as err:
        raise AddressError(f"BACnet address {text!r}: {err}") from err


def validate_address(address: str, data_type: DataType) -> None:
    """Check that ``address`` parses and can carry a tag of ``data_type``; raise AddressError."""
    check_compatible(parse_address(address), data_type)


def check_compatible(address: BacnetAddress, data_type: DataType) -> None:
    """Raise ``AddressError`` if a tag of ``data_type`` cannot live at ``address``.

    Present-values have fixed types (REAL, BACnetBinaryPV, Unsigned state); other properties
    are checked against the value the device returns when they are read.
    """
    if not address.is_present_value:
        return
    allowed = _PRESENT_VALUE_TYPES[address.kind]
    if data_type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed))
        raise AddressError(
            f"a {data_type} tag cannot be the present-value of {address.object_key} "
            f"({address.kind} objects carry {names})"
        )
