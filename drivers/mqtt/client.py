"""A lean MQTT 3.1.1 client on asyncio, made for taking many small uplinks per second.

Why not aiomqtt (on paho-mqtt), which the driver used before: paho reads one packet per
event-loop wake-up with three ``recv`` calls (the fixed header byte, the remaining length, the
body), builds an ``MQTTMessage`` and walks its topic matcher for each; aiomqtt then queues the
message and its iterator creates a task per message. At 20,000 uplinks per second that costs
more than the driver's own decoding, on the same core. This client is an ``asyncio.Protocol``:
each ``data_received`` chunk (up to the loop's read size, hundreds of packets under load) is
cut into packets in one pass and every PUBLISH goes straight to the handler as (topic, payload,
retain), with a second call once the chunk is done so the handler can deliver its samples in
batches.

It speaks only what a subscriber and downlink publisher needs (MQTT 3.1.1, OASIS standard):
CONNECT/CONNACK (3.1, 3.2) with a clean session, SUBSCRIBE/SUBACK (3.8, 3.9) at QoS 0 or 1,
PUBLISH at QoS 0 or 1 in both directions with PUBACK (3.3, 3.4), PINGREQ/PINGRESP keep-alive
(3.1.2.10, 3.12, 3.13) and DISCONNECT (3.14), over TCP or TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

MessageHandler = Callable[[str, bytes, bool], None]
"""Called with (topic, payload, retained) for every PUBLISH the broker delivers."""
ChunkHandler = Callable[[], None]
"""Called after the PUBLISH packets of one received chunk were all handed over."""

_CONNECT = 0x10
_CONNACK = 0x20
_PUBLISH = 0x30
_PUBACK = 0x40
_SUBSCRIBE = 0x82  # flags 0010 are reserved and required (MQTT 3.1.1, 3.8.1)
_SUBACK = 0x90
_PINGREQ = b"\xc0\x00"
_PINGRESP = 0xD0
_DISCONNECT = b"\xe0\x00"
_MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length four variable-length bytes can carry (MQTT 3.1.1, 2.2.3)."""

_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
"""CONNACK return codes (MQTT 3.1.1, 3.2.2.3)."""


class MqttClientError(Exception):
    """The connection failed, was refused or was lost; the message says why."""


@dataclass(frozen=True, slots=True)
class Closed:
    """Why a connection ended: a reason, and the handler's exception when it was one."""

    reason: str
    handler_error: BaseException | None = None


def remaining_length(number: int) -> bytes:
    """The variable-length encoding of a remaining length (MQTT 3.1.1, 2.2.3)."""
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | 0x80 if number else byte)
        if not number:
            return bytes(out)


def utf8_string(value: str) -> bytes:
    """A UTF-8 encoded string with its two-byte length (MQTT 3.1.1, 1.5.3)."""
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def control_packet(first: int, body: bytes) -> bytes:
    """A control packet: the first byte (type and flags), the remaining length, the body
    (MQTT 3.1.1, 2.2)."""
    if len(body) > _MAX_REMAINING_LENGTH:
        raise MqttClientError(f"packet of {len(body)} bytes is too long for MQTT")
    return bytes((first,)) + remaining_length(len(body)) + body


class MqttConnection(asyncio.Protocol):
    """One broker connection: open it with ``connect``, then subscribe, publish, wait for its
    end with ``wait_closed`` and end it with ``disconnect``."""

    def __init__(self, on_message: MessageHandler, on_chunk: ChunkHandler | None = None) -> None:
        self._on_message = on_message
        self._on_chunk = on_chunk
        loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._connack: asyncio.Future[int] = loop.create_future()
        self._closed: asyncio.Future[Closed] = loop.create_future()
        self._acks: dict[int, asyncio.Future[bytes]] = {}
        self._next_id = 0
        self._last_received = time.monotonic()
        self._keepalive: asyncio.Task[None] | None = None

    # -- public ----------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        client_id: str,
        on_message: MessageHandler,
        on_chunk: ChunkHandler | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        answer_within_s: float = 3.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> MqttConnection:
        """Open a clean session; raise MqttClientError when the broker cannot be reached or
        refuses it, TimeoutError when it does not answer within ``answer_within_s``."""
        loop = asyncio.get_running_loop()
        connection = cls(on_message, on_chunk)
        async with asyncio.timeout(answer_within_s):
            try:
                await loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=tls_context,
                    server_hostname=host if tls_context is not None else None,
                )
            except OSError as err:
                raise MqttClientError(str(err) or type(err).__name__) from err
            connection._send(_connect_packet(client_id, username, password, keepalive))
            try:
                code = await asyncio.shield(connection._connack)
            except BaseException:
                connection._abort("")
                raise
        if code != 0:
            connection._abort("")
            reason = _CONNACK_REASONS.get(code, f"return code {code}")
            raise MqttClientError(f"the broker refused the connection: {reason}")
        connection._keepalive = asyncio.create_task(connection._keep_alive(keepalive))
        return connection

    @property
    def is_open(self) -> bool:
        """Whether the connection is still up."""
        return not self._closed.done()

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """Subscribe topic filters at their QoS; return the granted QoS of each, raise
        MqttClientError when the broker refuses one (return code 0x80, MQTT 3.1.1, 3.9.3)."""
        packet_id = self._packet_id()
        body = bytearray(packet_id.to_bytes(2, "big"))
        for topic, qos in filters:
            body += utf8_string(topic) + bytes((qos,))
        codes = await self._request(packet_id, control_packet(_SUBSCRIBE, bytes(body)))
        refused = [topic for (topic, _), code in zip(filters, codes, strict=False) if code > 2]
        if refused or len(codes) != len(filters):
            raise MqttClientError(f"the broker refused the subscription of {refused or filters}")
        return list(codes)

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish; at QoS 1 return once the broker acknowledged it (PUBACK)."""
        if qos == 0:
            self._send(control_packet(_PUBLISH, utf8_string(topic) + payload))
            return
        packet_id = self._packet_id()
        body = utf8_string(topic) + packet_id.to_bytes(2, "big") + payload
        await self._request(packet_id, control_packet(_PUBLISH | 0x02, body))

    async def wait_closed(self) -> Closed:
        """Wait until the connection ends; say why."""
        return await asyncio.shield(self._closed)

    async def disconnect(self) -> None:
        """Say goodbye (DISCONNECT) and close; never raises."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                transport.write(_DISCONNECT)
        self._abort("disconnected")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._closed)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (called by the event loop)."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whatever waits and record why (called by the event loop)."""
        self._finish(Closed(str(exc) if exc else "the broker closed the connection"))

    def data_received(self, data: bytes) -> None:
        """Cut the chunk into packets and handle them (called by the event loop)."""
        self._last_received = time.monotonic()
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        failure: tuple[str, BaseException | None] | None = None
        try:
            used = self._packets(view)
        except MqttClientError as err:
            failure = (str(err), None)
        except Exception as err:  # the handler's bug: end the connection, the owner reports it
            failure = ("message handling failed", err)
        else:
            if view is buffer:
                del buffer[:used]
            elif used < len(data):
                buffer += data[used:]
        if self._on_chunk is not None:  # also after a failure: what was handled is delivered
            try:
                self._on_chunk()
            except Exception as err:
                failure = failure or ("message handling failed", err)
        if failure is not None:
            self._abort(*failure)

    # -- internals -------------------------------------------------------------------------

    def _packets(self, data: bytes | bytearray) -> int:
        """Handle every whole packet in ``data``; return how many bytes they took."""
        on_message = self._on_message
        size = len(data)
        position = 0
        while position + 2 <= size:
            first = data[position]
            # The remaining length: up to four bytes, seven bits each (MQTT 3.1.1, 2.2.3).
            length = 0
            shift = 0
            index = position + 1
            while True:
                if index >= size:
                    return position
                byte = data[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MqttClientError("malformed remaining length from the broker")
            end = index + length
            if end > size:
                return position
            kind = first & 0xF0
            if kind == _PUBLISH:
                topic_end = index + 2 + int.from_bytes(data[index : index + 2], "big")
                try:
                    topic = data[index + 2 : topic_end].decode()
                except UnicodeDecodeError as err:
                    raise MqttClientError("PUBLISH topic from the broker is not UTF-8") from err
                qos = (first >> 1) & 0x03
                if qos:
                    if qos != 1:  # only QoS 0 and 1 are subscribed: the broker never sends 2
                        raise MqttClientError(f"PUBLISH at QoS {qos} from the broker")
                    self._send(bytes((_PUBACK, 2)) + data[topic_end : topic_end + 2])
                    topic_end += 2
                on_message(topic, bytes(data[topic_end:end]), bool(first & 0x01))
            else:
                self._control(kind, bytes(data[index:end]))
            position = end
        return position

    def _control(self, kind: int, body: bytes) -> None:
        if kind == _CONNACK and len(body) >= 2:
            if not self._connack.done():
                self._connack.set_result(body[1])
        elif kind in (_PUBACK, _SUBACK) and len(body) >= 2:
            waiting = self._acks.pop(int.from_bytes(body[:2], "big"), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(body[2:])
        elif kind == _PINGRESP:
            pass  # _last_received is already updated
        else:
            raise MqttClientError(f"unexpected packet type {kind >> 4} from the broker")

    def _packet_id(self) -> int:
        # Packet identifiers are non-zero 16-bit numbers (MQTT 3.1.1, 2.3.1).
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    async def _request(self, packet_id: int, packet: bytes) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._acks[packet_id] = future
        try:
            self._send(packet)
            return await future
        finally:
            self._acks.pop(packet_id, None)

    def _send(self, packet: bytes) -> None:
        transport = self._transport
        if self._closed.done() or transport is None or transport.is_closing():
            reason = self._closed.result().reason if self._closed.done() else "not connected"
            raise MqttClientError(f"the connection is closed: {reason}")
        transport.write(packet)

    async def _keep_alive(self, keepalive: int) -> None:
        """Ping within every keep-alive period; a broker silent for one and a half periods
        after a ping is gone (MQTT 3.1.1, 3.1.2.10)."""
        step = keepalive / 2
        while not self._closed.done():
            await asyncio.sleep(step)
            if time.monotonic() - self._last_received > 1.5 * keepalive:
                self._abort(f"no answer from the broker for {1.5 * keepalive:g} s")
                return
            with contextlib.suppress(MqttClientError):
                self._send(_PINGREQ)

    def _abort(self, reason: str, handler_error: BaseException | None = None) -> None:
        self._finish(Closed(reason, handler_error))
        if self._transport is not None:
            self._transport.abort()

    def _finish(self, closed: Closed) -> None:
        if not self._closed.done():
            self._closed.set_result(closed)
        error = MqttClientError(f"the connection is closed: {self._closed.result().reason}")
        if not self._connack.done():
            self._connack.set_exception(error)
            self._connack.exception()  # retrieved: no "never retrieved" warning if unused
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
        keepalive = self._keepalive
        if keepalive is not None and keepalive is not asyncio.current_task():
            keepalive.cancel()


def _connect_packet(
    client_id: str, username: str | None, password: str | None, keepalive: int
) -> bytes:
    """CONNECT with a clean session (MQTT 3.1.1, 3.1)."""
    flags = 0x02
    payload = utf8_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += utf8_string(username)
        if password is not None:
            flags |= 0x40
            payload += utf8_string(password)
    header = utf8_string("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big")
    return control_packet(_CONNECT, header + payload)
