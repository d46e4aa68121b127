"""One TCP connection to one Modbus endpoint, shared by every unit id behind it.

A Modbus TCP gateway (or a PLC with several unit ids) is one endpoint ``host:port``. The
Messaging on TCP/IP Implementation Guide (v1.0b, 4.2.1) lets a client keep one connection per
remote device and send its requests over it; pymodbus serialises requests on one client (no
pipelining) and many gateways handle one request at a time anyway. So every driver of one
endpoint shares a ``ModbusConnection``: one client, one request in flight, an optional minimum
gap between requests for slow gateways, and one reconnect schedule, so that ten unit ids behind
a dead gateway cost one connection attempt, not ten.

pymodbus stays behind this module and ``drivers.modbus.driver``: its exceptions become
``drivers.base`` errors here, with the cause chained. pymodbus' own background reconnect is
disabled; a request that finds the endpoint disconnected makes one connection attempt, and after
a failed attempt the next waits a delay that doubles up to ``reconnect_delay_max_s``.

The answers to the four read function codes are decoded by this module's own response classes,
registered with each client: the same fields as pymodbus' classes, filled in one pass over the
frame instead of one ``struct`` call per register or a Python loop per bit.

Every reply is checked against the request as sent (``drivers.modbus.reply_check``) before
pymodbus decodes it: a reply with another function code, unit or transaction id, a broken MBAP
header or a byte count that does not fit the request fails that request at once with a
``ModbusProtocolError``, and the connection is closed, as it is out of step with the device.
pymodbus would otherwise take such a reply as Good data, wait for the request's timeout, or raise
inside asyncio's transport callback (a logged traceback instead of a failed request).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from drivers.base import CommunicationTimeoutError, DriverError, NotConnectedError
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.reply_check import ReplyViolation, check_reply

_PYMODBUS_LOGGER = "pymodbus"

# pymodbus reports an unanswered request as a ModbusIOException with this text.
_NO_RESPONSE_MARK = "No response received"

FIRST_RECONNECT_DELAY_S = 0.1
"""Delay after the first failed connection attempt; it doubles with every further failure."""

# Above pymodbus' own timeout x (retries + 1): only a request pymodbus itself fails to time out
# (a stuck transport) meets this guard.
_GUARD_MARGIN_S = 0.5


class ModbusProtocolError(DriverError):
    """The device answered with a reply that does not fit the request (Bad comm_failure)."""


class _ReplyRejected(Exception):
    """Raised into pymodbus' pending request when the reply fails ``check_reply``."""


ModbusCall = Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
"""One request on a connected client, e.g. ``lambda c: c.read_coils(0, count=8, device_id=1)``."""


# The byte count of a read answer is one byte (MAP 6.1-6.4): at most 127 whole registers.
_REGISTER_RUNS = tuple(struct.Struct(f">{count}H") for count in range(128))
# Bit answers pack 8 entries per byte, the first in the least significant bit (MAP 6.1, 6.2).
_BYTE_BITS = tuple(tuple(bool(byte >> bit & 1) for bit in range(8)) for byte in range(256))


def _decode_registers(response: ModbusPDU, data: bytes) -> None:
    """Fill ``response.registers`` from a read answer (byte count, then big-endian registers),
    as pymodbus' own decoder does, with one unpack."""
    byte_count = data[0]
    if byte_count >= len(data):
        raise ModbusIOException(
            f"byte_count {byte_count} > length of packet {len(data)}",
            function_code=response.function_code,
        )
    response.registers = list(_REGISTER_RUNS[byte_count // 2].unpack_from(data, 1))


def _decode_bits(response: ModbusPDU, data: bytes) -> None:
    """Fill ``response.bits`` from a read answer's packed bytes, as pymodbus does."""
    response.bits = [bit for byte in data[1:] for bit in _BYTE_BITS[byte]]


def _summary(response: ModbusPDU) -> str:
    # pymodbus formats every decoded answer for a debug line, even with debug logging off; the
    # raw frame is in its own debug line, so the answer's values need not be listed again.
    entries = len(response.registers) or len(response.bits)
    return (
        f"{type(response).__name__}(dev_id={response.dev_id}, "
        f"transaction_id={response.transaction_id}, entries={entries})"
    )


class _ReadCoilsResponse(ReadCoilsResponse):
    """FC1 answer, decoded in one pass."""

    def decode(self, data: bytes) -> None:
        """Unpack the coils."""
        _decode_bits(self, data)

    def __str__(self) -> str:
        return _summary(self)


class _ReadDiscreteInputsResponse(ReadDiscreteInputsResponse):
    """FC2 answer, decoded in one pass."""

    def decode(self, data: bytes) -> None:
        """Unpack the discrete inputs."""
        _decode_bits(self, data)

    def __str__(self) -> str:
        return _summary(self)


class _ReadHoldingRegistersResponse(ReadHoldingRegistersResponse):
    """FC3 answer, decoded in one pass."""

    def decode(self, data: bytes) -> None:
        """Unpack the holding registers."""
        _decode_registers(self, data)

    def __str__(self) -> str:
        return _summary(self)


class _ReadInputRegistersResponse(ReadInputRegistersResponse):
    """FC4 answer, decoded in one pass."""

    def decode(self, data: bytes) -> None:
        """Unpack the input registers."""
        _decode_registers(self, data)

    def __str__(self) -> str:
        return _summary(self)


READ_RESPONSES: tuple[type[ModbusPDU], ...] = (
    _ReadCoilsResponse,
    _ReadDiscreteInputsResponse,
    _ReadHoldingRegistersResponse,
    _ReadInputRegistersResponse,
)
"""The response classes every client of this module decodes reads with."""


def quiet_pymodbus_logging() -> None:
    """Keep pymodbus from logging expected field faults (timeouts, refused connections).

    The driver reports those itself, once per state change. A level configured explicitly for
    the ``pymodbus`` logger is left as it is. Called when a connection is first opened, never at
    import time.
    """
    logger = logging.getLogger(_PYMODBUS_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How to reach one endpoint and how to pace requests to it."""

    host: str
    port: int
    timeout_s: float = 1.0
    retries: int = 0
    min_request_gap_s: float = 0.0
    reconnect_delay_max_s: float = 5.0

    @classmethod
    def of(cls, config: ModbusDeviceConfig) -> ConnectionSettings:
        """The connection part of a device's settings."""
        return cls(
            config.host,
            config.port,
            config.timeout_s,
            config.retries,
            config.min_request_gap_s,
            config.reconnect_delay_max_s,
        )

    @property
    def request_timeout_s(self) -> float:
        """How long one request may take before it has failed (all retries included)."""
        return self.timeout_s * (self.retries + 1)


class ModbusConnection:
    """The shared client of one endpoint: connects, paces and maps pymodbus failures."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._client: AsyncModbusTcpClient | None = None
        self._connect_lock = asyncio.Lock()
        self._request_lock = asyncio.Lock()
        self._users: set[str] = set()
        self._failed_attempts = 0
        self._next_attempt = 0.0
        self._ready_at = 0.0
        self._sent = b""
        """The last request as sent (its whole ADU), which the next reply must answer."""
        self._received = 0
        """Bytes of the reply to ``_sent`` received so far."""
        self._out_of_step = False
        """A reply came that fits no request: the connection must be opened anew."""

    @property
    def settings(self) -> ConnectionSettings:
        """Where the endpoint is and how it is paced."""
        return self._settings

    @property
    def where(self) -> str:
        """``host:port`` of the endpoint, for messages."""
        return f"{self._settings.host}:{self._settings.port}"

    @property
    def connected(self) -> bool:
        """Whether a connection to the endpoint is open."""
        return self._client is not None and self._client.connected

    async def connect(self, user: str) -> None:
        """Open the connection for ``user``; raise NotConnectedError if the endpoint is away."""
        self._users.add(user)
        async with self._connect_lock:
            if self.connected:
                return
            self._drop_client()
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise NotConnectedError(
                    f"cannot connect to {self.where} (next attempt in {wait:.1f} s)"
                )
            quiet_pymodbus_logging()
            settings = self._settings
            client = AsyncModbusTcpClient(
                settings.host,
                port=settings.port,
                name=self.where,
                timeout=settings.timeout_s,
                retries=settings.retries,
                # reconnect_delay=0 disables pymodbus' background reconnect: this class owns it.
                reconnect_delay=0,
                reconnect_delay_max=settings.timeout_s,
                trace_packet=self._check_traffic,
            )
            for response_class in READ_RESPONSES:
                client.register(response_class)
            try:
                connected = await client.connect()
            except (OSError, ModbusException) as err:
                client.close()
                self._schedule_next_attempt()
                raise NotConnectedError(f"cannot connect to {self.where}: {err}") from err
            if not connected:
                client.close()
                self._schedule_next_attempt()
                raise NotConnectedError(
                    f"cannot connect to {self.where} (refused, unreachable or no answer "
                    f"within {settings.timeout_s:g} s)"
                )
            self._client = client
            self._sent, self._received, self._out_of_step = b"", 0, False
            self._failed_attempts = 0
            self._next_attempt = 0.0

    async def execute(self, user: str, call: ModbusCall) -> ModbusPDU:
        """Send one request for ``user``, connecting first if needed; raise DriverError."""
        if self._out_of_step:
            self._drop_client()
        if not self.connected:
            await self.connect(user)
        self._users.add(user)
        async with self._request_lock:
            client = self._client
            if client is None:  # closed or lost while this request waited for its turn
                raise NotConnectedError(f"{self.where}: not connected")
            gap = self._ready_at - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            try:
                async with asyncio.timeout(self._settings.request_timeout_s + _GUARD_MARGIN_S):
                    return await call(client)
            except TimeoutError as err:
                self._drop_client(client)
                raise self._timeout() from err
            except _ReplyRejected as err:
                self._drop_client(client)
                raise ModbusProtocolError(f"{self.where}: {err}") from err
            except asyncio.CancelledError:
                # Abandoned mid-request: its answer may still come and be taken for the next.
                self._drop_client(client)
                raise
            except ConnectionException as err:
                self._drop_client(client)
                raise NotConnectedError(f"{self.where}: not connected") from err
            except ModbusIOException as err:
                # A late answer would be taken for the next request's: start a new connection.
                still_connected = client.connected
                self._drop_client(client)
                if not still_connected:
                    raise NotConnectedError(f"{self.where}: connection lost") from err
                if _NO_RESPONSE_MARK in str(err):
                    raise self._timeout() from err
                raise DriverError(f"{self.where}: {err}") from err
            except ModbusException as err:
                raise DriverError(f"{self.where}: {err}") from err
            finally:
                if self._settings.min_request_gap_s:
                    self._ready_at = time.monotonic() + self._settings.min_request_gap_s

    def close(self, user: str) -> None:
        """``user`` is done; the socket closes when every user is. Never raises."""
        self._users.discard(user)
        if not self._users:
            self._drop_client()

    def _timeout(self) -> CommunicationTimeoutError:
        within = f"within {self._settings.request_timeout_s:g} s"
        if self._received:
            return CommunicationTimeoutError(
                f"{self.where}: incomplete response ({self._received} bytes) {within}"
            )
        return CommunicationTimeoutError(f"{self.where}: no response {within}")

    def _check_traffic(self, sending: bool, data: bytes) -> bytes:
        """pymodbus' packet hook: remember each request; check the reply before it is decoded.

        Called with every request as sent, and with the whole reply received so far on every
        arrival of bytes. A reply that fails the check is taken from pymodbus (it sees no bytes)
        and its request fails with the reason.
        """
        if sending:
            self._sent, self._received = data, 0
            return data
        self._received = len(data)
        verdict = check_reply(self._sent, data)
        if not isinstance(verdict, ReplyViolation):
            return data
        self._out_of_step = True
        client = self._client
        pending = None if client is None else client.ctx.response_future
        if pending is not None and not pending.done():
            pending.set_exception(_ReplyRejected(verdict.reason))
        return b""

    def _schedule_next_attempt(self) -> None:
        delay = min(
            FIRST_RECONNECT_DELAY_S * 2**self._failed_attempts,
            self._settings.reconnect_delay_max_s,
        )
        self._failed_attempts += 1
        self._next_attempt = time.monotonic() + delay

    def _drop_client(self, expected: AsyncModbusTcpClient | None = None) -> None:
        """Close the client; with ``expected``, only if it is still the current one."""
        client = self._client
        if client is None or (expected is not None and client is not expected):
            return
        self._client = None
        self._out_of_step = False
        client.close()


class ModbusGateways:
    """The connections of a site, one per endpoint, shared by the drivers behind each."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], ModbusConnection] = {}

    def connection(self, config: ModbusDeviceConfig) -> ModbusConnection:
        """The shared connection to ``config``'s endpoint; ValueError if its settings differ
        from those of a device already using that endpoint."""
        settings = ConnectionSettings.of(config)
        existing = self._connections.get(config.endpoint)
        if existing is None:
            existing = self._connections[config.endpoint] = ModbusConnection(settings)
        elif existing.settings != settings:
            raise ValueError(
                f"devices behind {existing.where} need the same timeout, retries and pacing: "
                f"{existing.settings} and {settings}"
            )
        return existing

    def __len__(self) -> int:
        return len(self._connections)
