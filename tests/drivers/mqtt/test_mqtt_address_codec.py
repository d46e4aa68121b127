"""Addresses, JSON pointers, values and payload times of the MQTT driver (pure units)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlcenter.model import DataType, TagDef
from drivers.base import AddressError
from drivers.mqtt.address import JsonAddress, SparkplugAddress, parse_address, parse_pointer
from drivers.mqtt.codec import (
    MAX_NESTING,
    PayloadError,
    decode_json,
    downlink,
    parse_time,
    resolve,
    to_raw,
    to_value,
)
from drivers.mqtt.config import MqttDeviceConfig


def _tag(kind: DataType = DataType.FLOAT, scale: float = 1.0, offset: float = 0.0) -> TagDef:
    return TagDef("t.x", "d", "json:a#/x", kind, scale=scale, offset=offset)


def test_json_addresses_parse_with_pointer_escapes_and_downlink() -> None:
    address = parse_address("json:city/waste/c1/up#/object/fill~1pct;set=city/waste/c1/down")
    assert address == JsonAddress("city/waste/c1/up", ("object", "fill/pct"), "city/waste/c1/down")
    assert isinstance(address, JsonAddress)
    assert address.pointer_text == "/object/fill~1pct"
    assert parse_address("json:t#") == JsonAddress("t", ())


def test_sparkplug_addresses_parse_node_and_device_metrics() -> None:
    assert parse_address("spb:water/gw1#Inputs/Level") == SparkplugAddress(
        "water", "gw1", None, "Inputs/Level"
    )
    assert parse_address("spb:water/gw1/pump3#Speed") == SparkplugAddress(
        "water", "gw1", "pump3", "Speed"
    )


@pytest.mark.parametrize(
    "address",
    [
        "",
        "mqtt:topic#/x",
        "json:topic",  # no pointer
        "json:a/+/b#/x",  # wildcard
        "json:#/x",
        "json:t#x",  # pointer without a leading slash
        "json:t#/a~2b",  # bad escape
        "json:t#/x;set=down/#",
        "json:t\0x#/x",
        "spb:g#m",
        "spb:g/n/d/e#m",
        "spb:g//d#m",
        "spb:g/n",
        "spb:g/n#",
        "spb:g/n+#m",
    ],
)
def test_malformed_addresses_are_refused_with_a_reason(address: str) -> None:
    with pytest.raises(AddressError, match=r"\S"):
        parse_address(address)


def test_pointers_resolve_members_and_array_indexes() -> None:
    document = {"a": [{"b": 1}, {"b": 2}], "": 3, "m~n": 4}
    assert resolve(document, parse_pointer("/a/1/b")) == 2
    assert resolve(document, parse_pointer("/")) == 3
    assert resolve(document, parse_pointer("/m~0n")) == 4
    assert resolve(document, ()) == document
    for bad in ("/a/01/b", "/a/2", "/a/-", "/x", "/a/0/b/c"):
        with pytest.raises(PayloadError):
            resolve(document, parse_pointer(bad))


def test_values_are_typed_and_scaled_and_wrong_types_refused() -> None:
    assert to_value(412, _tag(scale=0.1, offset=-1.0)) == pytest.approx(40.2)
    assert to_value(3.0, _tag(DataType.INT)) == 3
    assert to_value(True, _tag(DataType.BOOL)) is True
    assert to_value(0, _tag(DataType.BOOL)) is False
    assert to_value("on", _tag(DataType.STRING)) == "on"
    assert to_value("2026-05-01T10:00:00+02:00", _tag(DataType.DATETIME)) == datetime(
        2026, 5, 1, 8, tzinfo=UTC
    )
    for raw, kind in [
        ("12", DataType.FLOAT),
        (True, DataType.FLOAT),
        (None, DataType.FLOAT),
        ([1], DataType.FLOAT),
        (3.5, DataType.INT),
        (2, DataType.BOOL),
        (5, DataType.STRING),
        (1e308, DataType.FLOAT),
    ]:
        with pytest.raises(PayloadError):
            to_value(raw, _tag(kind, scale=10.0 if raw == 1e308 else 1.0))


def test_writes_invert_the_scaling_into_a_nested_downlink() -> None:
    tag = _tag(scale=0.5, offset=10.0)
    assert to_raw(20.0, tag) == pytest.approx(20.0)
    assert downlink(("cfg", "dim"), 40) == b'{"cfg":{"dim":40}}'


def test_payload_times_in_seconds_milliseconds_and_iso_text() -> None:
    moment = datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_time(moment.timestamp()) == moment
    assert parse_time(int(moment.timestamp() * 1000)) == moment
    assert parse_time("2026-05-01T00:00:00") == moment
    for bad in ("yesterday", True, None, 1e30, "x" * 100):
        with pytest.raises(PayloadError):
            parse_time(bad)


def test_hostile_json_is_refused_not_raised_through() -> None:
    for payload in (
        b"{",
        b"\xff\xfe",
        b'{"a": NaN}',
        b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1),
    ):
        with pytest.raises(PayloadError):
            decode_json(payload)
    assert decode_json(b'{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {"s": "[" * 39}


def test_device_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="prefix"):
        MqttDeviceConfig("127.0.0.1", topic_prefix="a/#")
    with pytest.raises(ValueError, match="report_interval_s"):
        MqttDeviceConfig("127.0.0.1", report_interval_s=0)
    with pytest.raises(ValueError, match="username"):
        MqttDeviceConfig("127.0.0.1", password_env="X")
    assert MqttDeviceConfig("h", topic_prefix="p/").topic("a/b") == "p/a/b"
