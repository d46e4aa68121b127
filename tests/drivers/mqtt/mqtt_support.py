"""What the MQTT driver tests share: the broker's address, a test device, a TCP relay and an
independent Sparkplug B encoder written from the specification's field numbers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import aiomqtt

from controlcenter.model import Sample

DEFAULT_URL = "mqtt://127.0.0.1:1883"


def broker() -> tuple[str, int]:
    """Host and port of the test broker (CC_TEST_MQTT_URL, default the machine's Mosquitto)."""
    url = urlparse(os.environ.get("CC_TEST_MQTT_URL", DEFAULT_URL))
    return url.hostname or "127.0.0.1", url.port or 1883


def unique_prefix(name: str) -> str:
    """A topic prefix no other test (or test run) uses."""
    return f"cctest/{name}/{uuid.uuid4().hex[:12]}"


async def wait_for(
    condition: Callable[[], bool], what: str, within: float = 5.0, step: float = 0.01
) -> None:
    """Poll ``condition`` until it holds or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(step)


def latest(received: list[Sample], tag: str) -> Sample | None:
    """The last sample of ``tag`` among those received."""
    return next((sample for sample in reversed(received) if sample.tag == tag), None)


class Publisher:
    """A plain MQTT client the tests publish with and listen through."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        host, port = broker()
        self.client = aiomqtt.Client(host, port, identifier=f"cctest-pub-{uuid.uuid4().hex[:8]}")
        self.received: list[tuple[str, bytes]] = []
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        await self.client.__aenter__()
        self._listener = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._listener
        await self.client.__aexit__(None, None, None)

    async def _listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload).encode()
            self.received.append((message.topic.value, data))

    async def listen(self, relative: str) -> None:
        """Receive what is published on a topic filter under the prefix."""
        await self.client.subscribe(f"{self.prefix}/{relative}", qos=1)

    async def send(
        self, relative: str, payload: bytes | dict[str, Any], *, retain: bool = False
    ) -> None:
        """Publish a payload (a dict as JSON) on a topic under the prefix."""
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        await self.client.publish(f"{self.prefix}/{relative}", data, qos=1, retain=retain)

    async def clear_retained(self, relative: str) -> None:
        """Remove a retained message (an empty retained payload deletes it)."""
        await self.client.publish(f"{self.prefix}/{relative}", b"", qos=1, retain=True)


class Relay:
    """A TCP relay between the driver and the broker whose connections a test can cut."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every relayed connection at once, as a network fault would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = broker()
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# -- an independent Sparkplug B encoder (protobuf wire format by hand, 3.0.0 6.4) -------------


def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def spb_metric(
    name: str | None = None,
    *,
    alias: int | None = None,
    datatype: int | None = None,
    value: Any = None,
    timestamp_ms: int | None = None,
    is_null: bool = False,
) -> bytes:
    """One Metric message: int types in int_value/long_value, Float 9, Double 10, Boolean 11,
    String 12."""
    out = b""
    if name is not None:
        out += _len(1, name.encode())
    if alias is not None:
        out += _key(2, 0) + _varint(alias)
    if timestamp_ms is not None:
        out += _key(3, 0) + _varint(timestamp_ms)
    if datatype is not None:
        out += _key(4, 0) + _varint(datatype)
    if is_null:
        out += _key(7, 0) + _varint(1)
    elif value is not None:
        if datatype in (1, 2, 3, 5, 6):
            out += _key(10, 0) + _varint(value & 0xFFFFFFFF)
        elif datatype in (4, 7, 8, 13):
            out += _key(11, 0) + _varint(value)
        elif datatype == 9:
            out += _key(12, 5) + struct.pack("<f", value)
        elif datatype == 10:
            out += _key(13, 1) + struct.pack("<d", value)
        elif datatype == 11:
            out += _key(14, 0) + _varint(int(bool(value)))
        elif datatype == 12:
            out += _len(15, str(value).encode())
        else:
            raise ValueError(f"no encoding for data type {datatype}")
    return out


def spb_payload(metrics: list[bytes], *, seq: int | None, timestamp_ms: int | None = None) -> bytes:
    """A Payload message of encoded metrics."""
    stamp = timestamp_ms if timestamp_ms is not None else now_ms()
    out = _key(1, 0) + _varint(stamp)
    for metric in metrics:
        out += _len(2, metric)
    if seq is not None:
        out += _key(3, 0) + _varint(seq)
    return out


def now_ms() -> int:
    """Milliseconds since 1970, now."""
    return int(datetime.now(UTC).timestamp() * 1000)


def read_spb_metrics(data: bytes) -> list[dict[int, Any]]:
    """Decode a payload's metrics by hand: field number → raw value (enough to check a command)."""
    metrics: list[dict[int, Any]] = []
    for number, value in _fields(data):
        if number == 2:
            metrics.append(dict(_fields(value)))
    return metrics


def _fields(data: bytes) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    index = 0
    while index < len(data):
        key, index = _read_varint(data, index)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, index = _read_varint(data, index)
        elif wire == 1:
            value, index = struct.unpack_from("<d", data, index)[0], index + 8
        elif wire == 5:
            value, index = struct.unpack_from("<f", data, index)[0], index + 4
        elif wire == 2:
            length, index = _read_varint(data, index)
            value, index = data[index : index + length], index + length
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, value))
    return out


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[index]
        index += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, index
