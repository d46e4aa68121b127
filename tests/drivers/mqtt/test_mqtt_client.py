"""The MQTT driver's own client: packets cut anywhere, acknowledgements, refusals, keep-alive
and a handler's failure, against a scripted transport, a scripted broker and the real one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.mqtt.client import MqttClientError, MqttConnection
from tests.drivers.mqtt.mqtt_support import broker, unique_prefix


class _Transport(asyncio.Transport):
    """Records what the client writes instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _publish(topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> bytes:
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
    if qos:
        body += (0x1234).to_bytes(2, "big")
    body += payload
    length = bytearray()
    remaining = len(body)
    while True:
        byte, remaining = remaining & 0x7F, remaining >> 7
        length.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    return bytes((0x30 | qos << 1 | retain,)) + bytes(length) + body


def _connection(
    handler: Callable[[str, bytes, bool], None] | None = None,
) -> tuple[MqttConnection, _Transport, list[tuple[str, bytes, bool]], list[int]]:
    messages: list[tuple[str, bytes, bool]] = []
    chunks: list[int] = []

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        messages.append((topic, payload, retained))
        if handler is not None:
            handler(topic, payload, retained)

    connection = MqttConnection(on_message, lambda: chunks.append(len(messages)))
    transport = _Transport()
    connection.connection_made(transport)
    return connection, transport, messages, chunks


async def test_packets_cut_at_any_byte_arrive_whole_and_in_order() -> None:
    stream = (
        _publish("a/b", b'{"x":1}')
        + _publish("c", b"y" * 300, qos=1)  # a two-byte remaining length
        + _publish("d/e", b"", retain=True)
    )
    connection, transport, messages, _ = _connection()
    for index in range(len(stream)):
        connection.data_received(stream[index : index + 1])
    assert messages == [("a/b", b'{"x":1}', False), ("c", b"y" * 300, False), ("d/e", b"", True)]
    # A QoS 1 PUBLISH is acknowledged with its packet identifier (MQTT 3.1.1, 3.4).
    assert transport.written == [b"\x40\x02\x12\x34"]
    assert connection.is_open


async def test_a_chunk_of_many_packets_is_handled_in_one_pass() -> None:
    connection, _, messages, chunks = _connection()
    connection.data_received(b"".join(_publish(f"t/{i}", b"%d" % i) for i in range(500)))
    assert [topic for topic, _, _ in messages] == [f"t/{i}" for i in range(500)]
    assert chunks == [500]  # one call once the chunk is done: samples go on in one batch


async def test_a_failing_handler_ends_the_connection_and_says_so() -> None:
    def explode(topic: str, payload: bytes, retained: bool) -> None:
        if topic == "bad":
            raise RuntimeError("bug")

    connection, transport, messages, chunks = _connection(explode)
    connection.data_received(_publish("good", b"1") + _publish("bad", b"2") + _publish("x", b""))
    closed = await connection.wait_closed()
    assert closed.reason == "message handling failed"
    assert isinstance(closed.handler_error, RuntimeError)
    assert transport.aborted
    assert chunks == [2]  # what was handled before the failure is still delivered
    assert [topic for topic, _, _ in messages] == ["good", "bad"]
    with pytest.raises(MqttClientError, match="closed: message handling failed"):
        await connection.publish("t", b"", qos=0)


async def test_a_malformed_remaining_length_ends_the_connection() -> None:
    connection, transport, _, _ = _connection()
    connection.data_received(b"\x30\xff\xff\xff\xff\x01")
    closed = await connection.wait_closed()
    assert "malformed remaining length" in closed.reason
    assert transport.aborted


@contextlib.asynccontextmanager
async def _scripted_broker(connack_code: int) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A broker that answers CONNECT with ``connack_code`` and then only listens."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(1024))
        writer.write(bytes((0x20, 2, 0, connack_code)))
        while data := await reader.read(1024):
            received.append(data)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()


async def test_a_refused_connect_names_the_return_code() -> None:
    async with _scripted_broker(5) as (port, received):
        with pytest.raises(MqttClientError, match="refused the connection: not authorized"):
            await MqttConnection.connect(
                "127.0.0.1", port, client_id="c1", on_message=lambda *_: None, username="u"
            )
    connect = received[0]
    assert connect[0] == 0x10 and b"MQTT\x04\x82" in connect  # user name flag, clean session


async def test_a_silent_broker_is_found_gone_by_the_keepalive() -> None:
    async with _scripted_broker(0) as (port, received):
        connection = await MqttConnection.connect(
            "127.0.0.1", port, client_id="c2", on_message=lambda *_: None, keepalive=1
        )
        async with asyncio.timeout(5):
            closed = await connection.wait_closed()
        assert "no answer from the broker" in closed.reason
        assert b"\xc0\x00" in b"".join(received[1:])  # it asked with PINGREQ first


async def test_an_unreachable_broker_raises() -> None:
    with pytest.raises(MqttClientError):
        await MqttConnection.connect("127.0.0.1", 1, client_id="c3", on_message=lambda *_: None)


async def test_subscribe_and_publish_both_qos_through_the_broker() -> None:
    host, port = broker()
    prefix = unique_prefix("client")
    received: list[tuple[str, bytes, bool]] = []
    arrived = asyncio.Event()

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        received.append((topic, payload, retained))
        if len(received) == 2:
            arrived.set()

    connection = await MqttConnection.connect(
        host, port, client_id=f"cctest-{uuid.uuid4().hex[:8]}", on_message=on_message
    )
    try:
        granted = await connection.subscribe([(f"{prefix}/q0", 0), (f"{prefix}/q1", 1)])
        assert granted == [0, 1]
        await connection.publish(f"{prefix}/q0", b"zero", qos=0)
        await connection.publish(f"{prefix}/q1", b"one", qos=1)  # returns on PUBACK
        async with asyncio.timeout(5):
            await arrived.wait()
        assert sorted(received) == [
            (f"{prefix}/q0", b"zero", False),
            (f"{prefix}/q1", b"one", False),
        ]
    finally:
        await connection.disconnect()
    assert not connection.is_open
