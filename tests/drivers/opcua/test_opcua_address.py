from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.model import DataType
from drivers.base import AddressError
from drivers.opcua.address import (
    BrowseName,
    BrowsePathAddress,
    IdentifierKind,
    NodeAddress,
    parse_address,
    validate_address,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns=2;s=Pump1.Speed", NodeAddress(IdentifierKind.STRING, "Pump1.Speed", 2)),
        ("ns=2;i=1234", NodeAddress(IdentifierKind.NUMERIC, 1234, 2)),
        ("i=2258", NodeAddress(IdentifierKind.NUMERIC, 2258)),
        ("ns=3;s=a;b=c", NodeAddress(IdentifierKind.STRING, "a;b=c", 3)),
        (
            "nsu=urn:city:water;s=Tank1.Level",
            NodeAddress(IdentifierKind.STRING, "Tank1.Level", 0, "urn:city:water"),
        ),
        (
            "nsu=http://x.org/UA/;v=1;i=5",
            NodeAddress(IdentifierKind.NUMERIC, 5, 0, "http://x.org/UA/;v=1"),
        ),
        (
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            NodeAddress(IdentifierKind.GUID, "09087e75-8e5e-499b-954f-f2a9603db28a", 1),
        ),
        (
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
            NodeAddress(IdentifierKind.OPAQUE, "M/RbKBsRVkePCePcx24oRA==", 1),
        ),
    ],
)
def test_parses_node_ids(text: str, expected: NodeAddress) -> None:
    assert parse_address(text) == expected


def test_parses_browse_paths_with_namespaces_and_escapes() -> None:
    assert parse_address("/Objects/2:Plant/2:Tank&/1/Level&:raw") == BrowsePathAddress(
        (
            BrowseName(0, "Objects"),
            BrowseName(2, "Plant"),
            BrowseName(2, "Tank/1"),
            BrowseName(0, "Level:raw"),
        )
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Plant.Level", "neither a node id"),
        ("ns=x;s=a", "not a number"),
        ("ns=70000;i=1", "above 65535"),
        ("ns=2;i=-1", "not a number"),
        ("ns=2;i=4294967296", "above 4294967295"),
        ("ns=2;s=", "is empty"),
        ("ns=2", "must be followed"),
        ("nsu=;s=a", "needs a namespace URI"),
        ("ns=1;g=not-a-guid", "not a GUID"),
        ("ns=1;b=@@@", "not base64"),
        ("/", "empty element"),
        ("/Objects//Plant", "empty element"),
        ("/Objects/2:3:Plant", "more than one unescaped"),
        ("/Objects/Pl&ant", "must be followed"),
    ],
)
def test_refuses_malformed_addresses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_address(text)


@pytest.mark.parametrize("data_type", list(DataType))
def test_any_tag_type_can_live_in_a_variable(data_type: DataType) -> None:
    validate_address("ns=2;s=Plant.Level", data_type)
    with pytest.raises(AddressError):
        validate_address("Plant.Level", data_type)


# Addresses are stripped of surrounding white space (site files are hand-edited).
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda name: name.strip() == name
)


@settings(max_examples=50)
@given(
    st.lists(st.tuples(st.integers(0, 65535), names), min_size=1, max_size=5),
)
def test_browse_paths_round_trip_through_their_text(elements: list[tuple[int, str]]) -> None:
    path = BrowsePathAddress(tuple(BrowseName(ns, name) for ns, name in elements))
    assert parse_address(str(path)) == path


@settings(max_examples=50)
@given(st.integers(0, 65535), st.text(min_size=1, max_size=20).filter(lambda t: t.strip() == t))
def test_string_node_ids_round_trip_through_their_text(namespace: int, identifier: str) -> None:
    address = NodeAddress(IdentifierKind.STRING, identifier, namespace)
    assert parse_address(str(address)) == address
