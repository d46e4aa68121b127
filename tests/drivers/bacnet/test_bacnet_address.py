from __future__ import annotations

import pytest

from controlcenter.model import DataType
from drivers.bacnet.address import BacnetAddress, ObjectType, parse_address, validate_address
from drivers.base import AddressError


def test_parses_object_instance_and_property() -> None:
    assert parse_address("analog-input:3") == BacnetAddress(ObjectType.ANALOG_INPUT, 3)
    parsed = parse_address(" Binary-Value:12/out-of-service ")
    assert parsed == BacnetAddress(ObjectType.BINARY_VALUE, 12, "out-of-service")
    assert str(parsed) == "binary-value:12/out-of-service"
    assert str(parse_address("multi-state-value:1")) == "multi-state-value:1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("analog-input", "is not '<object-type>:<instance>"),
        ("analog-inptu:1", "unknown object type 'analog-inptu'"),
        ("analog-input:-1", "is not a decimal number"),
        ("analog-input:4194303", "outside 0..4194302"),
        ("analog-input:1/presentValue", "unknown BACnet property"),
        ("analog-input:1/", "is not '<object-type>:<instance>"),
    ],
)
def test_refuses_malformed_addresses_naming_the_fault(text: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment):
        parse_address(text)


def test_present_value_types_follow_the_object_kind() -> None:
    validate_address("analog-value:1", DataType.FLOAT)
    validate_address("analog-input:1", DataType.INT)
    validate_address("binary-output:1", DataType.BOOL)
    validate_address("multi-state-value:1", DataType.INT)
    validate_address("analog-input:1/object-name", DataType.STRING)
    with pytest.raises(AddressError, match="cannot be the present-value"):
        validate_address("binary-input:1", DataType.FLOAT)
    with pytest.raises(AddressError, match="cannot be the present-value"):
        validate_address("multi-state-value:1", DataType.BOOL)
