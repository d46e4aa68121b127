"""Sparkplug B payloads (decoded from bytes built by an independent encoder) and the host
application's handling of births, deaths, aliases and sequence numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.mqtt.sparkplug import (
    MessageKind,
    SparkplugError,
    SparkplugHost,
    SpbTopic,
    decode_payload,
    encode_payload,
    parse_topic,
)
from tests.drivers.mqtt.mqtt_support import read_spb_metrics, spb_metric, spb_payload


def test_decodes_every_scalar_type_from_hand_built_bytes() -> None:
    data = spb_payload(
        [
            spb_metric("i8", alias=1, datatype=1, value=-5),
            spb_metric("i32", alias=2, datatype=3, value=-70000),
            spb_metric("i64", alias=3, datatype=4, value=-(2**40)),
            spb_metric("u16", alias=4, datatype=6, value=65535),
            spb_metric("f", alias=5, datatype=9, value=1.5),
            spb_metric("d", alias=6, datatype=10, value=2.25),
            spb_metric("b", alias=7, datatype=11, value=True),
            spb_metric("s", alias=8, datatype=12, value="Ål"),
            spb_metric("t", alias=9, datatype=13, value=1_777_000_000_000),
            spb_metric("n", alias=10, datatype=10, is_null=True),
        ],
        seq=7,
        timestamp_ms=1_777_000_000_123,
    )
    payload = decode_payload(data)
    assert payload.seq == 7
    assert payload.timestamp == datetime.fromtimestamp(1_777_000_000.123, UTC)
    values = {metric.name: metric.value for metric in payload.metrics}
    assert values["i8"] == -5
    assert values["i32"] == -70000
    assert values["i64"] == -(2**40)
    assert values["u16"] == 65535
    assert values["f"] == 1.5
    assert values["d"] == 2.25
    assert values["b"] is True
    assert values["s"] == "Ål"
    assert values["t"] == datetime.fromtimestamp(1_777_000_000, UTC)
    assert payload.metrics[-1].is_null


def test_garbage_is_refused() -> None:
    for data in (b"\xff\xff\xff", b"\x12\x05ab", b"\x0a" + b"\x80" * 11):
        with pytest.raises(SparkplugError):
            decode_payload(data)


def test_commands_encode_as_the_specification_says() -> None:
    data = encode_payload(
        [("Node Control/Rebirth", 11, True), ("Speed", 9, 0.5), ("Mode", 2, -2)],
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    rebirth, speed, mode = read_spb_metrics(data)
    assert rebirth[1] == b"Node Control/Rebirth"
    assert rebirth[4] == 11 and rebirth[14] == 1
    assert speed[12] == 0.5
    assert mode[10] == 0xFFFFFFFE  # Int16 -2, two's complement in the uint32 field
    with pytest.raises(SparkplugError):
        encode_payload([("Mode", 5, 300)], timestamp=datetime(2026, 1, 1, tzinfo=UTC))


def test_topics_parse_and_wrong_shapes_are_ignored() -> None:
    assert parse_topic("spBv1.0/g/DDATA/n/d") == SpbTopic("g", MessageKind.DDATA, "n", "d")
    assert parse_topic("spBv1.0/g/NBIRTH/n") == SpbTopic("g", MessageKind.NBIRTH, "n", None)
    for topic in ("spBv1.0/STATE/host", "spBv1.0/g/NDATA/n/d", "spBv1.0/g/DDATA/n", "x/y/z/w"):
        assert parse_topic(topic) is None


def _birth(seq: int = 0, bd_seq: int = 3) -> bytes:
    return spb_payload(
        [
            spb_metric("bdSeq", datatype=8, value=bd_seq),
            spb_metric("Level", alias=1, datatype=10, value=1.0),
        ],
        seq=seq,
    )


def _handle(host: SparkplugHost, kind: MessageKind, data: bytes, device: str | None = None):  # type: ignore[no-untyped-def]
    return host.handle(SpbTopic("g", kind, "n", device), decode_payload(data))


def test_births_map_aliases_and_data_updates_by_alias() -> None:
    host = SparkplugHost()
    birth = _handle(host, MessageKind.NBIRTH, _birth())
    assert ((None, "Level"), 1.0) in [(key, metric.value) for key, metric in birth.values]
    data = _handle(
        host, MessageKind.NDATA, spb_payload([spb_metric(alias=1, value=2.5, datatype=10)], seq=1)
    )
    assert [(key, metric.value) for key, metric in data.values] == [((None, "Level"), 2.5)]
    assert not data.rebirth


def test_a_sequence_gap_an_unknown_alias_or_data_before_birth_asks_for_rebirth() -> None:
    host = SparkplugHost()
    early = _handle(
        host, MessageKind.NDATA, spb_payload([spb_metric(alias=1, value=1.0, datatype=10)], seq=4)
    )
    assert "before its NBIRTH" in early.rebirth and not early.values
    _handle(host, MessageKind.NBIRTH, _birth(seq=0))
    gap = _handle(
        host, MessageKind.NDATA, spb_payload([spb_metric(alias=1, value=2.0, datatype=10)], seq=2)
    )
    assert "seq 2 where 1 was expected" in gap.rebirth
    unknown = _handle(
        host, MessageKind.NDATA, spb_payload([spb_metric(alias=99, value=2.0, datatype=10)], seq=3)
    )
    assert "unknown alias 99" in unknown.rebirth
    device_early = _handle(
        host, MessageKind.DDATA, spb_payload([spb_metric("x", value=1.0, datatype=10)], seq=4), "d1"
    )
    assert "before its DBIRTH" in device_early.rebirth


def test_deaths_end_node_and_device_but_not_a_stale_ndeath() -> None:
    host = SparkplugHost()
    _handle(host, MessageKind.NBIRTH, _birth(bd_seq=3))
    _handle(
        host,
        MessageKind.DBIRTH,
        spb_payload([spb_metric("Speed", alias=2, datatype=9, value=0.0)], seq=1),
        "d1",
    )
    assert host.online("g", "n", "d1")
    ddeath = _handle(host, MessageKind.DDEATH, spb_payload([], seq=2), "d1")
    assert ddeath.died == ("d1",) and not host.online("g", "n", "d1")
    stale = _handle(
        host, MessageKind.NDEATH, spb_payload([spb_metric("bdSeq", datatype=8, value=2)], seq=None)
    )
    assert stale.died == () and host.online("g", "n", None)
    death = _handle(
        host, MessageKind.NDEATH, spb_payload([spb_metric("bdSeq", datatype=8, value=3)], seq=None)
    )
    assert death.died == (None,) and not host.online("g", "n", None)
