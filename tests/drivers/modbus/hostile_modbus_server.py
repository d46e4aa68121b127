"""A Modbus TCP server on plain asyncio sockets that can be told to answer wrongly.

It serves every unit and address: holding and input register N holds N + 100, coil and discrete
input N is on for odd N. ``misbehaviour`` selects how the next replies are broken; ``None``
answers correctly (MAP v1.1b3 6.1-6.6, 6.11, 6.12).
"""

from __future__ import annotations

import asyncio
import struct
from enum import Enum


class Misbehaviour(Enum):
    """How the server breaks its replies."""

    FC3_FOR_FC4 = "answers a read of input registers as holding registers"
    FC2_FOR_FC1 = "answers a read of coils as discrete inputs"
    BYTE_COUNT_BEYOND_FRAME = "byte count larger than the bytes that follow"
    BYTE_COUNT_SHORT = "byte count and data for fewer entries than asked"
    BYTE_COUNT_LONG = "byte count and data for more entries than asked"
    ODD_BYTE_COUNT = "odd byte count for registers, data to match"
    WRONG_UNIT = "reply from another unit id"
    WRONG_PROTOCOL = "protocol id 1 in the MBAP header"
    WRONG_TRANSACTION = "another transaction id"
    TRUNCATED = "half a frame, then silence"
    EXCEPTION_WITHOUT_FUNCTION = "exception reply with function byte 0x80"
    UNKNOWN_FUNCTION = "reply with function code 0x41"
    WRONG_ECHO = "write reply echoing another value"


class HostileModbusServer:
    """See the module docstring; ``port`` is set by ``start``."""

    def __init__(self) -> None:
        self.misbehaviour: Misbehaviour | None = None
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every connection."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                length = int.from_bytes(header[4:6], "big")
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                writer.write(self._reply(header, pdu))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _reply(self, header: bytes, request: bytes) -> bytes:
        tid, unit, function = header[:2], header[6], request[0]
        address, quantity = struct.unpack(">HH", request[1:5])
        pdu = self._answer(function, address, quantity, request)
        bad = self.misbehaviour
        protocol = b"\x00\x01" if bad is Misbehaviour.WRONG_PROTOCOL else b"\x00\x00"
        if bad is Misbehaviour.WRONG_UNIT:
            unit = (unit + 1) % 256
        if bad is Misbehaviour.WRONG_TRANSACTION:
            tid = ((int.from_bytes(tid, "big") + 1) % 65536).to_bytes(2, "big")
        frame = tid + protocol + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu
        if bad is Misbehaviour.TRUNCATED:
            return frame[: len(frame) // 2]
        return frame

    def _answer(self, function: int, address: int, quantity: int, request: bytes) -> bytes:
        bad = self.misbehaviour
        if bad is Misbehaviour.EXCEPTION_WITHOUT_FUNCTION:
            return bytes([0x80, 2])
        if bad is Misbehaviour.UNKNOWN_FUNCTION:
            return bytes([0x41, 0])
        if function in (5, 6):
            if bad is Misbehaviour.WRONG_ECHO:
                return request[:3] + bytes([request[3] ^ 0xFF, request[4]])
            return request[:5]
        if function in (15, 16):
            return request[:5]
        if function == 4 and bad is Misbehaviour.FC3_FOR_FC4:
            function = 3
        if function == 1 and bad is Misbehaviour.FC2_FOR_FC1:
            function = 2
        if bad is Misbehaviour.BYTE_COUNT_SHORT:
            quantity = max(quantity - 1, 1) if function in (3, 4) else max(quantity - 8, 1)
        if bad is Misbehaviour.BYTE_COUNT_LONG:
            quantity += 1 if function in (3, 4) else 8
        if function in (3, 4):
            data = b"".join((address + n + 100).to_bytes(2, "big") for n in range(quantity))
            if bad is Misbehaviour.ODD_BYTE_COUNT:
                data += b"\x00"
        else:
            bits = [(address + n) % 2 == 1 for n in range(quantity)]
            data = bytes(
                sum(1 << k for k, on in enumerate(bits[at : at + 8]) if on)
                for at in range(0, quantity, 8)
            )
        count = len(data) + (10 if bad is Misbehaviour.BYTE_COUNT_BEYOND_FRAME else 0)
        return bytes([function, count]) + data
