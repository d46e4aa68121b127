"""Modbus devices built for tests: register holes, two unit ids, a log of function codes."""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

HOLES = ((10, 20), (40, 42))
"""Holding and input register ranges the feature device refuses with exception 2."""
FEATURE_REGISTERS = 100


class FeatureDevice:
    """A pymodbus device with register holes, two unit ids and a log of function codes."""

    def __init__(self) -> None:
        self.function_codes: list[int] = []
        self.answer_exception: ExcCodes | None = None
        self.server: ModbusTcpServer | None = None
        self.port = 0

    async def on_access(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        # pymodbus calls the action again, without values, to answer a single write (FC5/FC6).
        if set_values is not None or function_code not in (5, 6):
            self.function_codes.append(function_code)
        if self.answer_exception is not None:
            return self.answer_exception
        if function_code in (3, 4, 6, 16):
            length = len(set_values) if set_values is not None and function_code == 16 else count
            for start, end in HOLES:
                if address < end and address + length > start:
                    return ExcCodes.ILLEGAL_ADDRESS
        return None

    async def start(self, port: int = 0) -> None:
        devices = [
            SimDevice(
                id=unit,
                simdata=(
                    [SimData(0, values=[False] * 32, datatype=SimType.BITS)],
                    [SimData(0, values=[True] * 32, datatype=SimType.BITS)],
                    [SimData(0, values=[unit] * FEATURE_REGISTERS, datatype=SimType.REGISTERS)],
                    [SimData(0, values=[unit] * FEATURE_REGISTERS, datatype=SimType.REGISTERS)],
                ),
                action=self.on_access,
            )
            for unit in (1, 2)
        ]
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        assert isinstance(server.transport, asyncio.Server)
        self.server = server
        self.port = int(server.transport.sockets[0].getsockname()[1])

    async def set_registers(self, unit: int, address: int, values: list[int]) -> None:
        assert self.server is not None
        await self.server.async_setValues(unit, 3, address, values)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            self.server = None


class SilentEndpoint:
    """A TCP server that accepts connections and never answers (a hung device)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._connections: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._connections.append(writer)
            while await reader.read(1024):
                pass

        self._server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self._connections:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
