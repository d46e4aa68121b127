"""MQTT point addresses: a JSON uplink's field, or a Sparkplug B metric.

``json:<topic>#<pointer>`` names the value at an RFC 6901 JSON pointer in the JSON payloads
published on ``<topic>`` (relative to the device's topic prefix), e.g.
``json:city/waste/c0001/up#/object/fill_pct``. A point that accepts writes names its downlink
topic after ``;set=``: ``json:lights/c1/up#/dim;set=lights/c1/down`` publishes
``{"dim": <value>}`` there and waits for an uplink that shows it.

``spb:<group>/<edge node>[/<device>]#<metric>`` names a metric of a Sparkplug B edge node
(or of one of its devices), e.g. ``spb:water/gw1/pump3#Outputs/Speed``. Writes are NCMD or
DCMD messages; the next NDATA/DDATA that carries the metric confirms them.

Topics are concrete: no ``+`` or ``#`` wildcards, no NUL, at most 65,535 UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlcenter.model import DataType
from drivers.base import AddressError
from drivers.mqtt.config import MQTT_TOPIC_MAX_BYTES

JSON_SCHEME = "json:"
SPARKPLUG_SCHEME = "spb:"
SET_OPTION = ";set="


@dataclass(frozen=True, slots=True)
class JsonAddress:
    """A value inside the JSON uplinks of one topic, and the optional downlink topic."""

    topic: str
    pointer: tuple[str, ...]
    """The pointer's reference tokens, unescaped (``~1`` is ``/``, ``~0`` is ``~``)."""
    set_topic: str | None = None

    @property
    def pointer_text(self) -> str:
        """The pointer written as in RFC 6901."""
        return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in self.pointer)


@dataclass(frozen=True, slots=True)
class SparkplugAddress:
    """A metric of a Sparkplug B edge node, or of a device behind it."""

    group: str
    node: str
    device: str | None
    metric: str

    @property
    def source(self) -> tuple[str, str, str | None]:
        """Group, node and device: whose births and deaths the metric follows."""
        return (self.group, self.node, self.device)


MqttAddress = JsonAddress | SparkplugAddress


def parse_address(address: str) -> MqttAddress:
    """Parse a ``json:`` or ``spb:`` address; raise AddressError naming what is wrong."""
    if address.startswith(JSON_SCHEME):
        return _parse_json(address, address[len(JSON_SCHEME) :])
    if address.startswith(SPARKPLUG_SCHEME):
        return _parse_sparkplug(address, address[len(SPARKPLUG_SCHEME) :])
    raise AddressError(
        f"MQTT address {address!r} is neither 'json:<topic>#<pointer>' "
        "nor 'spb:<group>/<node>[/<device>]#<metric>'"
    )


def validate_address(address: str, data_type: DataType) -> None:
    """Check that ``address`` parses; a JSON value or a metric can hold any tag data type.

    A payload value that does not fit the tag is reported per sample (Bad) when it arrives."""
    parse_address(address)


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON pointer (``""`` is the whole document)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise AddressError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        # '~' must be followed by 0 or 1 (RFC 6901, 3).
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise AddressError(f"JSON pointer {pointer!r} has a '~' not followed by 0 or 1")
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


def check_topic(topic: str, where: str) -> str:
    """Refuse a topic MQTT cannot publish to (wildcards, NUL, empty, too long)."""
    if not topic:
        raise AddressError(f"{where}: the topic is empty")
    if any(char in topic for char in "+#\0"):
        raise AddressError(f"{where}: topic {topic!r} must not contain '+', '#' or NUL")
    if len(topic.encode()) > MQTT_TOPIC_MAX_BYTES:
        raise AddressError(f"{where}: the topic is longer than {MQTT_TOPIC_MAX_BYTES} bytes")
    return topic


def _parse_json(address: str, rest: str) -> JsonAddress:
    set_topic: str | None = None
    body, separator, downlink = rest.rpartition(SET_OPTION)
    if separator:
        rest = body
        set_topic = check_topic(downlink, f"MQTT address {address!r} downlink")
    topic, hash_sign, pointer = rest.partition("#")
    if not hash_sign:
        raise AddressError(f"MQTT address {address!r} has no '#<JSON pointer>' after the topic")
    check_topic(topic, f"MQTT address {address!r}")
    try:
        tokens = parse_pointer(pointer)
    except AddressError as err:
        raise AddressError(f"MQTT address {address!r}: {err}") from err
    return JsonAddress(topic, tokens, set_topic)


def _parse_sparkplug(address: str, rest: str) -> SparkplugAddress:
    path, hash_sign, metric = rest.partition("#")
    if not hash_sign or not metric:
        raise AddressError(f"Sparkplug address {address!r} has no '#<metric name>'")
    parts = path.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise AddressError(
            f"Sparkplug address {address!r} is not 'spb:<group>/<node>[/<device>]#<metric>'"
        )
    for part in parts:
        # Sparkplug B 3.0, 4.1.1: ids are UTF-8 without the MQTT topic's special characters.
        if any(char in part for char in "+#/\0"):
            raise AddressError(f"Sparkplug address {address!r}: {part!r} is not a valid id")
    if "\0" in metric:
        raise AddressError(f"Sparkplug address {address!r}: the metric name contains NUL")
    device = parts[2] if len(parts) == 3 else None
    return SparkplugAddress(parts[0], parts[1], device, metric)
