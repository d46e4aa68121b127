"""Sparkplug B: payloads, topics and the host application's view of edge nodes.

Payloads are protocol buffers (Eclipse Sparkplug 3.0.0, 6.4). The message types are built at
run time from the schema in ``sparkplug_b.proto`` beside this module, field by field, in a
private descriptor pool: no generated code and no fetched code. Decoded payloads become plain
dataclasses at this boundary.

``SparkplugHost`` is the host application's state machine for the nodes a driver follows
(6.4.x and 7.x of the specification): NBIRTH and DBIRTH define the metrics and their aliases,
NDATA and DDATA update them, NDEATH (with the birth's bdSeq) and DDEATH end them, and every
message of a node and its devices carries the next ``seq`` (0..255). Data from a node that was
not born, an unknown alias, or a gap in ``seq`` asks for a rebirth (an NCMD with
``Node Control/Rebirth`` = true), which re-sends every birth and so re-maps every alias.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from controlcenter.model import DataType, Value

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ_METRIC = "bdSeq"


class SpbType(IntEnum):
    """Sparkplug B metric data types (3.0.0, 6.4.16)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19


_SIGNED_BITS = {SpbType.INT8: 8, SpbType.INT16: 16, SpbType.INT32: 32, SpbType.INT64: 64}
_UNSIGNED_BITS = {SpbType.UINT8: 8, SpbType.UINT16: 16, SpbType.UINT32: 32, SpbType.UINT64: 64}
_INT_VALUE_TYPES = {SpbType.INT8, SpbType.INT16, SpbType.INT32, SpbType.UINT8, SpbType.UINT16}


class MessageKind(StrEnum):
    """The message types of a Sparkplug B topic (3.0.0, 4.1.2)."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"
    STATE = "STATE"


# -- the schema, as protocol buffer descriptors -----------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "org.eclipse.tahu.protobuf"


def _build_payload_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="cc_sparkplug_b.proto", package=_PACKAGE, syntax="proto2"
    )
    payload = proto.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    scalar = (
        ("name", 1, _F.TYPE_STRING),
        ("alias", 2, _F.TYPE_UINT64),
        ("timestamp", 3, _F.TYPE_UINT64),
        ("datatype", 4, _F.TYPE_UINT32),
        ("is_historical", 5, _F.TYPE_BOOL),
        ("is_transient", 6, _F.TYPE_BOOL),
        ("is_null", 7, _F.TYPE_BOOL),
    )
    for name, number, kind in scalar:
        metric.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    values = (
        ("int_value", 10, _F.TYPE_UINT32),
        ("long_value", 11, _F.TYPE_UINT64),
        ("float_value", 12, _F.TYPE_FLOAT),
        ("double_value", 13, _F.TYPE_DOUBLE),
        ("boolean_value", 14, _F.TYPE_BOOL),
        ("string_value", 15, _F.TYPE_STRING),
        ("bytes_value", 16, _F.TYPE_BYTES),
    )
    for name, number, kind in values:
        metric.field.add(
            name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL, oneof_index=0
        )
    top = (
        ("timestamp", 1, _F.TYPE_UINT64),
        ("seq", 3, _F.TYPE_UINT64),
        ("uuid", 4, _F.TYPE_STRING),
        ("body", 5, _F.TYPE_BYTES),
    )
    for name, number, kind in top:
        payload.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    payload.field.add(
        name="metrics",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_REPEATED,
        type_name=f".{_PACKAGE}.Payload.Metric",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload"))


_PAYLOAD = _build_payload_class()


# -- payloads ---------------------------------------------------------------------------------


class SparkplugError(ValueError):
    """A Sparkplug B payload or topic that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class SpbMetric:
    """One metric of a payload, its value decoded by its data type."""

    name: str | None
    alias: int | None
    datatype: int | None
    value: Value | None
    timestamp: datetime | None = None
    is_null: bool = False
    problem: str = ""
    """Why the value could not be decoded (an unsupported type, a value of the wrong kind)."""


@dataclass(frozen=True, slots=True)
class SpbPayload:
    """A decoded payload."""

    timestamp: datetime | None
    seq: int | None
    metrics: tuple[SpbMetric, ...]


def decode_payload(data: bytes) -> SpbPayload:
    """Decode a payload; raise SparkplugError for bytes that are not one."""
    message = _PAYLOAD()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise SparkplugError(f"not a Sparkplug B payload: {err}") from err
    timestamp = _time(message.timestamp) if message.HasField("timestamp") else None
    seq = int(message.seq) if message.HasField("seq") else None
    return SpbPayload(timestamp, seq, tuple(_metric(item) for item in message.metrics))


def _metric(item: Any) -> SpbMetric:
    name = str(item.name) if item.HasField("name") else None
    alias = int(item.alias) if item.HasField("alias") else None
    datatype = int(item.datatype) if item.HasField("datatype") else None
    timestamp = _time(item.timestamp) if item.HasField("timestamp") else None
    if item.HasField("is_null") and item.is_null:
        return SpbMetric(name, alias, datatype, None, timestamp, is_null=True)
    which = item.WhichOneof("value")
    try:
        value = _value(datatype, which, item)
    except SparkplugError as err:
        return SpbMetric(name, alias, datatype, None, timestamp, problem=str(err))
    return SpbMetric(name, alias, datatype, value, timestamp)


def _value(datatype: int | None, which: str | None, item: Any) -> Value | None:
    if which is None:
        return None  # a data message may omit a value; a birth's type then stands alone
    raw = getattr(item, which)  # the oneof's field name, from the schema above
    if which in ("int_value", "long_value"):
        number = int(raw)
        if datatype in _SIGNED_BITS:
            bits = _SIGNED_BITS[SpbType(datatype)]
            number &= (1 << bits) - 1
            return number - (1 << bits) if number >= 1 << (bits - 1) else number
        if datatype in _UNSIGNED_BITS:
            return number & ((1 << _UNSIGNED_BITS[SpbType(datatype)]) - 1)
        if datatype == SpbType.DATETIME:
            return _time(number)
        if datatype is None:
            return number
        raise SparkplugError(f"an integer value for data type {datatype}")
    if which in ("float_value", "double_value"):
        real = float(raw)
        if not math.isfinite(real):
            raise SparkplugError(f"value {real} is not finite")
        return real
    if which == "boolean_value":
        return bool(raw)
    if which == "string_value":
        return str(raw)
    raise SparkplugError(f"{which} values are not supported")


def _time(milliseconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(int(milliseconds) / 1000, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise SparkplugError(f"time {milliseconds} ms is out of range") from err


def encode_payload(
    metrics: list[tuple[str, int, Value]], *, timestamp: datetime, seq: int | None = None
) -> bytes:
    """A payload of ``(name, data type, value)`` metrics, e.g. an NCMD or DCMD."""
    message = _PAYLOAD()
    message.timestamp = _millis(timestamp)
    if seq is not None:
        message.seq = seq
    for name, datatype, value in metrics:
        item = message.metrics.add()
        item.name = name
        item.datatype = datatype
        item.timestamp = _millis(timestamp)
        _set_value(item, SpbType(datatype), value)
    data: bytes = message.SerializeToString()
    return data


def _set_value(item: Any, datatype: SpbType, value: Value) -> None:
    if datatype is SpbType.BOOLEAN:
        item.boolean_value = bool(value)
    elif datatype in (SpbType.STRING, SpbType.TEXT, SpbType.UUID):
        item.string_value = str(value)
    elif datatype is SpbType.FLOAT:
        item.float_value = _number(value)
    elif datatype is SpbType.DOUBLE:
        item.double_value = _number(value)
    elif datatype is SpbType.DATETIME:
        if not isinstance(value, datetime):
            raise SparkplugError(f"a DateTime metric needs a time, not {value!r}")
        item.long_value = _millis(value)
    elif datatype in _SIGNED_BITS or datatype in _UNSIGNED_BITS:
        number = _integer(value)
        signed = datatype in _SIGNED_BITS
        bits = _SIGNED_BITS.get(datatype) or _UNSIGNED_BITS[datatype]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= number <= high:
            raise SparkplugError(f"{number} does not fit data type {datatype.name}")
        if datatype in _INT_VALUE_TYPES:
            item.int_value = number & 0xFFFFFFFF
        else:
            item.long_value = number & 0xFFFFFFFFFFFFFFFF
    else:
        raise SparkplugError(f"cannot write metrics of data type {datatype.name}")


def _number(value: Value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SparkplugError(f"a numeric metric needs a number, not {value!r}")
    return float(value)


def _integer(value: Value) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    raise SparkplugError(f"an integer metric needs an integer, not {value!r}")


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def datatype_for(data_type: DataType) -> SpbType:
    """The metric data type to command a tag with when no birth named one."""
    return {
        DataType.FLOAT: SpbType.DOUBLE,
        DataType.INT: SpbType.INT64,
        DataType.BOOL: SpbType.BOOLEAN,
        DataType.STRING: SpbType.STRING,
        DataType.DATETIME: SpbType.DATETIME,
    }[data_type]


def float32(value: float) -> float:
    """``value`` as a Float metric carries it (what a readback of a Float metric shows)."""
    packed: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return packed


# -- topics -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpbTopic:
    """A parsed topic: ``spBv1.0/<group>/<kind>/<node>[/<device>]``."""

    group: str
    kind: MessageKind
    node: str
    device: str | None


def parse_topic(topic: str) -> SpbTopic | None:
    """The parts of a Sparkplug B topic (without the device's prefix); None for STATE or a
    topic that is not Sparkplug B."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        return None
    try:
        kind = MessageKind(parts[2])
    except ValueError:
        return None
    if kind is MessageKind.STATE:
        return None
    device = parts[4] if len(parts) == 5 else None
    if (device is None) != (
        kind in (MessageKind.NBIRTH, MessageKind.NDEATH, MessageKind.NDATA, MessageKind.NCMD)
    ):
        return None  # a node message with a device part, or a device message without one
    return SpbTopic(parts[1], kind, parts[3], device)


def topic_of(group: str, kind: MessageKind, node: str, device: str | None = None) -> str:
    """The topic of a message (without the device's prefix)."""
    tail = f"/{device}" if device is not None else ""
    return f"{NAMESPACE}/{group}/{kind.value}/{node}{tail}"


# -- the host application's view of the edge nodes --------------------------------------------


MetricKey = tuple[str | None, str]
"""(device or None for the node itself, metric name)."""


@dataclass(frozen=True, slots=True)
class HostUpdate:
    """What one message means to the points of a node."""

    values: tuple[tuple[MetricKey, SpbMetric], ...] = ()
    died: tuple[str | None, ...] = ()
    """Devices that went offline; None stands for the node (and so all its devices)."""
    rebirth: str = ""
    """Why a rebirth must be requested; empty: none."""
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class _Node:
    born: bool = False
    bd_seq: int | None = None
    seq: int | None = None
    aliases: dict[int, MetricKey] = field(default_factory=dict)
    datatypes: dict[MetricKey, int] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)


class SparkplugHost:
    """Births, deaths, aliases and sequence numbers of the edge nodes one driver follows."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}

    def datatype(self, group: str, node: str, key: MetricKey) -> int | None:
        """The data type a birth gave a metric, if any."""
        state = self._nodes.get((group, node))
        return state.datatypes.get(key) if state is not None else None

    def online(self, group: str, node: str, device: str | None) -> bool:
        """Whether the node (and the device, if one is named) is born and not dead."""
        state = self._nodes.get((group, node))
        if state is None or not state.born:
            return False
        return device is None or device in state.devices

    def forget(self) -> None:
        """Forget every node (the broker connection was lost: births must come again)."""
        self._nodes.clear()

    def handle(self, topic: SpbTopic, payload: SpbPayload) -> HostUpdate:
        """Apply one message and say what it means for the points."""
        state = self._nodes.setdefault((topic.group, topic.node), _Node())
        kind = topic.kind
        if kind is MessageKind.NBIRTH:
            return self._node_birth(state, payload)
        if kind is MessageKind.NDEATH:
            return self._node_death(state, payload)
        if kind in (MessageKind.NCMD, MessageKind.DCMD):
            return HostUpdate()  # commands (ours or another host's) say nothing of values
        if not state.born:
            return HostUpdate(rebirth=f"{kind.value} from node {topic.node} before its NBIRTH")
        gap = self._sequence(state, payload.seq)
        if kind is MessageKind.DBIRTH and topic.device is not None:
            update = self._device_birth(state, topic.device, payload)
        elif kind is MessageKind.DDEATH and topic.device is not None:
            state.devices.discard(topic.device)
            update = HostUpdate(died=(topic.device,))
        elif topic.device is not None and topic.device not in state.devices:
            update = HostUpdate(rebirth=f"DDATA from device {topic.device} before its DBIRTH")
        else:
            update = self._data(state, topic.device, payload)
        if gap and not update.rebirth:
            return HostUpdate(update.values, update.died, gap, update.problems)
        return update

    def _sequence(self, state: _Node, seq: int | None) -> str:
        expected = None if state.seq is None else (state.seq + 1) % 256
        if seq is None or not 0 <= seq <= 255:
            return f"message without a valid seq (expected {expected})"
        state.seq = seq
        if expected is not None and seq != expected:
            return f"seq {seq} where {expected} was expected: messages were lost"
        return ""

    def _node_birth(self, state: _Node, payload: SpbPayload) -> HostUpdate:
        state.born = True
        state.aliases.clear()
        state.datatypes.clear()
        state.devices.clear()  # a node's birth asks every device to be born again
        state.seq = payload.seq if payload.seq is not None and 0 <= payload.seq <= 255 else None
        state.bd_seq = None
        for metric in payload.metrics:
            if metric.name == BD_SEQ_METRIC and isinstance(metric.value, int):
                state.bd_seq = metric.value
        return self._define(state, None, payload)

    def _device_birth(self, state: _Node, device: str, payload: SpbPayload) -> HostUpdate:
        for alias, key in list(state.aliases.items()):
            if key[0] == device:
                del state.aliases[alias]
        state.devices.add(device)
        return self._define(state, device, payload)

    def _define(self, state: _Node, device: str | None, payload: SpbPayload) -> HostUpdate:
        values: list[tuple[MetricKey, SpbMetric]] = []
        problems: list[str] = []
        for metric in payload.metrics:
            if metric.name is None:
                problems.append("a birth metric without a name")
                continue
            key = (device, metric.name)
            if metric.alias is not None:
                state.aliases[metric.alias] = key
            if metric.datatype is not None:
                state.datatypes[key] = metric.datatype
            values.append((key, _stamped(metric, payload)))
        return HostUpdate(values=tuple(values), problems=tuple(problems))

    def _node_death(self, state: _Node, payload: SpbPayload) -> HostUpdate:
        bd_seq = next(
            (m.value for m in payload.metrics if m.name == BD_SEQ_METRIC and m.value is not None),
            None,
        )
        # A death whose bdSeq is not the birth's belongs to an earlier session (3.0.0, 7.1.1).
        if bd_seq is not None and state.bd_seq is not None and bd_seq != state.bd_seq:
            return HostUpdate()
        state.born = False
        state.devices.clear()
        state.seq = None
        return HostUpdate(died=(None,))

    def _data(self, state: _Node, device: str | None, payload: SpbPayload) -> HostUpdate:
        values: list[tuple[MetricKey, SpbMetric]] = []
        unknown = ""
        for metric in payload.metrics:
            key: MetricKey | None = None
            if metric.alias is not None:
                key = state.aliases.get(metric.alias)
            elif metric.name is not None:
                key = (device, metric.name)
            if key is None or key[0] != device:
                unknown = f"a metric with unknown alias {metric.alias} from {device or 'the node'}"
                continue
            typed = metric
            if metric.datatype is None and key in state.datatypes:
                typed = _typed(metric, state.datatypes[key])
            values.append((key, _stamped(typed, payload)))
        return HostUpdate(values=tuple(values), rebirth=unknown)


def _stamped(metric: SpbMetric, payload: SpbPayload) -> SpbMetric:
    """The metric with the payload's time when it has none of its own."""
    if metric.timestamp is not None or payload.timestamp is None:
        return metric
    return SpbMetric(
        metric.name,
        metric.alias,
        metric.datatype,
        metric.value,
        payload.timestamp,
        metric.is_null,
        metric.problem,
    )


def _typed(metric: SpbMetric, datatype: int) -> SpbMetric:
    """A data metric sent without its type, read again with the type its birth gave it."""
    value = metric.value
    if isinstance(value, int) and not isinstance(value, bool):
        if datatype in _SIGNED_BITS:
            bits = _SIGNED_BITS[SpbType(datatype)]
            value &= (1 << bits) - 1
            value = value - (1 << bits) if value >= 1 << (bits - 1) else value
        elif datatype == SpbType.DATETIME:
            value = _time(value)
    return SpbMetric(
        metric.name,
        metric.alias,
        datatype,
        value,
        metric.timestamp,
        metric.is_null,
        metric.problem,
    )
