"""A water tank's RTU served over Modbus TCP (pymodbus ``SimDevice`` server).

Register map (stable; the point list in ``plc_sim.points`` and the demo site file rely on it).
Addresses are zero-based protocol addresses (Modbus Application Protocol v1.1b3, 4.4: the PDU
addresses 0..65535):

====================  =======  ===========================================================
table                 address  content
====================  =======  ===========================================================
input registers (FC4) 0-1      level, m, float32
input registers (FC4) 2-3      inflow, m³/h, float32
input registers (FC4) 4-5      outflow, m³/h, float32
coils (FC1/FC5/FC15)  0        pump run command (writable)
discrete inputs (FC2) 0        pump running feedback
holding registers     none     every holding register access answers exception 2
====================  =======  ===========================================================

Unit identifier 1. Float32 values are IEEE 754 with the high word in the lower register address
and each register big-endian, the byte order the Modbus Application Protocol (4.2) prescribes,
extended word-wise as most devices do.

Every access to an undefined address answers exception 2 (illegal data address, MAP 7). The
server keeps coils and discrete inputs in 16-bit words, so only a multi-bit read that *starts*
on a defined bit can run into the rest of that word (and reads it as False); every access that
starts on an undefined bit is refused. A request to any other unit identifier answers exception
11 (gateway target device failed to respond), as a Modbus TCP gateway does.

Writes to the command coil reach the tank model at once; the physics loop of the simulated city
publishes the model's outputs into the input registers and discrete inputs with ``publish()``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc_sim.points import (
    TANK_INFLOW_IR,
    TANK_INPUT_REGISTER_COUNT,
    TANK_LEVEL_IR,
    TANK_OUTFLOW_IR,
    TANK_PUMP_CMD_COIL,
    TANK_PUMP_RUNNING_DI,
    TANK_UNIT_ID,
)
from plc_sim.tank import Tank

_log = logging.getLogger(__name__)

# Function codes (MAP 6) grouped by the table they address.
_COIL_READ, _DI_READ, _HR_READ, _IR_READ = 1, 2, 3, 4
_COIL_WRITES = frozenset({5, 15})
_COIL_CODES = frozenset({_COIL_READ, *_COIL_WRITES})
_HR_CODES = frozenset({_HR_READ, 6, 16, 22, 23})

_COIL_COUNT = 1
_DI_COUNT = 1

_ANY_OTHER_UNIT = 0
"""SimDevice id 0 stands for every unit identifier not configured otherwise."""


def float32_registers(value: float) -> list[int]:
    """Encode a float as two registers, high word first (big-endian word order)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


class TankModbusServer:
    """Serves one ``Tank`` as a Modbus TCP RTU on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        tank: Tank,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = TANK_UNIT_ID,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        """Serve ``tank``; ``before_write`` runs before a client's write reaches the tank.

        The simulated city passes its physics catch-up as ``before_write``, so that the model
        has integrated up to the moment of a command before applying it (the pump's start
        delay then counts from the write, not from the last physics step).
        """
        self._tank = tank
        self._before_write = before_write
        self._host = host
        self._requested_port = port
        self._unit_id = unit_id
        self._server: ModbusTcpServer | None = None
        self._bound_port: int | None = None

    @property
    def host(self) -> str:
        """The interface the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when port 0 was asked for); only while running."""
        if self._bound_port is None:
            raise RuntimeError("the Modbus server is not running")
        return self._bound_port

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    async def start(self) -> None:
        """Build the register image, publish the tank's state and start listening."""
        if self._server is not None:
            raise RuntimeError("the Modbus server is already running")
        tank_device = SimDevice(
            id=self._unit_id,
            simdata=(
                [SimData(TANK_PUMP_CMD_COIL, values=[False], datatype=DataType.BITS)],
                [SimData(TANK_PUMP_RUNNING_DI, values=[False], datatype=DataType.BITS)],
                # No holding registers: one invalid register keeps the table defined but empty.
                [SimData(0, count=1, datatype=DataType.INVALID)],
                [SimData(0, values=[0] * TANK_INPUT_REGISTER_COUNT, datatype=DataType.REGISTERS)],
            ),
            action=self._on_tank_access,
        )
        other_units = SimDevice(
            id=_ANY_OTHER_UNIT,
            simdata=[SimData(0, count=65536, datatype=DataType.REGISTERS)],
            action=_answer_unknown_unit,
        )
        address = (self._host, self._requested_port)
        server = ModbusTcpServer([tank_device, other_units], address=address)
        self._server = server
        await self.publish()
        try:
            await server.serve_forever(background=True)
        except RuntimeError as err:
            self._server = None
            raise OSError(f"Modbus server cannot listen on {address[0]}:{address[1]}") from err
        listener = server.transport
        if not isinstance(listener, asyncio.Server) or not listener.sockets:
            await self.stop()
            raise OSError(f"Modbus server on {self._host}:{self._requested_port} has no socket")
        self._bound_port = int(listener.sockets[0].getsockname()[1])
        _log.debug("tank RTU listening on %s:%d", self._host, self._bound_port)

    async def stop(self) -> None:
        """Close the listener and every client connection; idempotent, never raises."""
        server, self._server = self._server, None
        self._bound_port = None
        if server is None:
            return
        try:
            await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus
        except (OSError, RuntimeError) as err:  # a socket already gone is not worth a traceback
            _log.debug("Modbus server shutdown: %s", err)

    async def publish(self) -> None:
        """Copy the tank's outputs into the input registers and discrete inputs."""
        server = self._server
        if server is None:
            return
        tank = self._tank
        registers = [0] * TANK_INPUT_REGISTER_COUNT
        for offset, value in (
            (TANK_LEVEL_IR, tank.level_m),
            (TANK_INFLOW_IR, tank.inflow_m3h),
            (TANK_OUTFLOW_IR, tank.outflow_m3h),
        ):
            registers[offset : offset + 2] = float32_registers(value)
        await server.async_setValues(self._unit_id, _IR_READ, 0, registers)
        await server.async_setValues(
            self._unit_id, _DI_READ, TANK_PUMP_RUNNING_DI, [tank.pump_running]
        )

    async def _on_tank_access(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Refuse undefined addresses and forward pump commands to the tank (pymodbus action)."""
        # For bit tables pymodbus passes the number of 16-bit words as ``count``; a write's own
        # length is exact, a read's first address is what can be checked.
        if function_code in _COIL_CODES:
            length = len(set_values) if set_values is not None else 1
            if not _within(address, length, _COIL_COUNT):
                return ExcCodes.ILLEGAL_ADDRESS
            if function_code in _COIL_WRITES and set_values is not None:
                if self._before_write is not None:
                    self._before_write()
                self._tank.command_pump(bool(set_values[TANK_PUMP_CMD_COIL - address]))
            return None
        if function_code == _DI_READ:
            length = len(set_values) if set_values is not None else 1
            return None if _within(address, length, _DI_COUNT) else ExcCodes.ILLEGAL_ADDRESS
        if function_code == _IR_READ:
            in_map = _within(address, count, TANK_INPUT_REGISTER_COUNT)
            return None if in_map else ExcCodes.ILLEGAL_ADDRESS
        if function_code in _HR_CODES:
            return ExcCodes.ILLEGAL_ADDRESS
        return ExcCodes.ILLEGAL_FUNCTION


def _within(address: int, count: int, defined: int) -> bool:
    return address >= 0 and address + count <= defined


async def _answer_unknown_unit(
    _function_code: int,
    _start_address: int,
    _address: int,
    _count: int,
    _registers: list[int],
    _set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    # MAP 7, code 0x0B: the addressed unit does not answer behind this gateway.
    return ExcCodes.GATEWAY_NO_RESPONSE
