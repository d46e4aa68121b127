"""The Modbus poller a user writes first: one request per tag, one after another.

It is the baseline of ``controlcenter bench poll``: a plain pymodbus ``AsyncModbusTcpClient``
reading each tag with its own request (no planning, no concurrency), decoding with pymodbus'
own ``convert_from_registers``. The bench reports the driver's speed relative to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.base import NotConnectedError
from drivers.modbus.address import ModbusAddress, Table, ValueType, parse_address

_DATATYPES = {
    ValueType.INT16: AsyncModbusTcpClient.DATATYPE.INT16,
    ValueType.UINT16: AsyncModbusTcpClient.DATATYPE.UINT16,
    ValueType.INT32: AsyncModbusTcpClient.DATATYPE.INT32,
    ValueType.UINT32: AsyncModbusTcpClient.DATATYPE.UINT32,
    ValueType.FLOAT32: AsyncModbusTcpClient.DATATYPE.FLOAT32,
    ValueType.FLOAT64: AsyncModbusTcpClient.DATATYPE.FLOAT64,
}


@dataclass(frozen=True, slots=True)
class NaiveResult:
    """What the naive poller read: values, requests, failed requests and the wall seconds."""

    values: int
    requests: int
    failures: int
    elapsed_s: float

    @property
    def values_per_s(self) -> float:
        """Values read per wall second."""
        return self.values / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def naive_poll(
    host: str, port: int, unit_id: int, addresses: Sequence[str], duration_s: float
) -> NaiveResult:
    """Read ``addresses`` one request each, round after round, for about ``duration_s``."""
    client = AsyncModbusTcpClient(host, port=port, timeout=2.0, retries=0, reconnect_delay=0)
    if not await client.connect():
        client.close()
        raise NotConnectedError(f"naive poller cannot connect to {host}:{port}")
    parsed = [parse_address(address) for address in addresses]
    values = requests = failures = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < duration_s:
            for address in parsed:
                requests += 1
                try:
                    value = await _read_one(client, address, unit_id)
                except ModbusException:
                    # A loaded device may not answer in time: count it, go on with the next tag.
                    failures += 1
                    continue
                values += value is not None
                if time.monotonic() - started >= duration_s:
                    break
    finally:
        client.close()
    return NaiveResult(values, requests, failures, time.monotonic() - started)


async def _read_one(client: AsyncModbusTcpClient, address: ModbusAddress, unit_id: int) -> object:
    """One request for one tag, decoded by pymodbus."""
    if address.table is Table.COIL:
        response = await client.read_coils(address.offset, count=1, device_id=unit_id)
        return response.bits[0]
    if address.table is Table.DISCRETE_INPUT:
        response = await client.read_discrete_inputs(address.offset, count=1, device_id=unit_id)
        return response.bits[0]
    read = (
        client.read_input_registers
        if address.table is Table.INPUT_REGISTER
        else client.read_holding_registers
    )
    response = await read(address.offset, count=address.register_count, device_id=unit_id)
    return client.convert_from_registers(response.registers, _DATATYPES[address.value_type])
