"""Benchmark devices: many Modbus, OPC UA or BACnet devices full of points changing every second.

A Modbus RTU has ``points_per_device`` points in assets of 80: 62 analog values (float32 in the
input registers: 124 registers, one full read request) and 18 binary states (discrete inputs),
as a substation or pump-station RTU lays out a bay's measurements in one table. The map comes
from ``plc_sim.servers.modbus.register_map`` like any simulated RTU's: one block of input
registers per asset, with holes between blocks that answer exception 2. The discrete inputs,
though, are one
contiguous block (``contiguous_bits``): an RTU numbers its binary inputs as its input cards'
channels, one after the other, and answers for all of them. OPC UA servers and BACnet
controllers hold the same points (variables ``ns=2;s=<tag>``; analog-input and binary-input
objects), by default 2,500 per OPC UA server (one subscription's worth, see the center's
driver) and 160 objects per BACnet controller, each device on its own port. Every value
changes once a second, so each poll reads fresh data and each subscription has news every
second.

Run as a program (``python -m plc_sim.bench_devices --protocol opcua --tags 10000``) it serves
the devices on free ports and prints one JSON line describing them (protocol; name, host,
port, unit id, device instance, and each point's tag, address and kind). Then, every second,
it advances every value, publishes them into the servers and prints a tick line
``{"tick": <second>, "changed_at": <wall clock, s since the epoch>}``, so that a client can
tell how long a change took to reach it (``wave_second``). A line ``restart <device>`` on its
standard input restarts that device's server on the same port, as a PLC reboot, and is
answered with ``{"restarted": <device>}``. It stops on SIGTERM or SIGINT, or when its parent
process exits. ``controlcenter bench poll`` runs it as a
child process, so that the devices use the machine's second core as real field devices would
use their own CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from plc_sim.device import PointBinding, PointSpec, PointValue, ProtocolName, SimDevice
from plc_sim.domain import DeviceServer
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from plc_sim.servers.modbus.server import ModbusDeviceServer
from plc_sim.servers.opcua.server import OpcUaDeviceServer

POINTS_PER_ASSET = 80
ANALOG_PER_ASSET = 62
"""Of each asset's 80 points, 62 are analog (float32, 124 registers) and 18 binary."""

WAVE_PERIOD_S = 60
"""An analog value is a sawtooth over its range that climbs one step per second for a minute."""
WAVE_SPAN = 100.0

DEFAULT_POINTS_PER_DEVICE: dict[ProtocolName, int] = {"modbus": 400, "opcua": 2500, "bacnet": 160}
"""A realistic large device per protocol: a pump-station RTU of 40 assets of 10 points; an OPC
UA server of a plant (2,500 monitored items fit one subscription); a BACnet building controller
of 160 objects."""

BACNET_FIRST_INSTANCE = 1000
"""Device instance of the first bench BACnet controller; the others count up from it."""

PROTOCOLS: tuple[ProtocolName, ...] = ("modbus", "opcua", "bacnet")


class Ticker:
    """The second the bench devices' values belong to; advanced by their publish loop."""

    def __init__(self) -> None:
        self.second = 0


@dataclass(frozen=True, slots=True)
class _Wave:
    """A deterministic value that changes every tick: a sawtooth over the point's range."""

    ticker: Ticker
    phase: int

    def analog(self) -> PointValue:
        step = (self.ticker.second + self.phase) % WAVE_PERIOD_S
        return WAVE_SPAN * step / WAVE_PERIOD_S + 0.01 * math.sin(step)

    def binary(self) -> PointValue:
        return (self.ticker.second + self.phase) % 2 == 0


def _phase(asset: int, index: int) -> int:
    return asset * POINTS_PER_ASSET + index


def wave_second(tag: str, value: float) -> int:
    """The tick (modulo ``WAVE_PERIOD_S``) at which an analog bench point had ``value``.

    Tags are ``bench.<device>.a<asset>.v<index>``; a value is read back to within float32
    precision, far finer than the sawtooth's step, so the step is recovered by rounding."""
    _, _, asset_text, index_text = tag.split(".")
    if not (asset_text.startswith("a") and index_text.startswith("v")):
        raise ValueError(f"{tag} is not an analog bench point")
    step = round(value * WAVE_PERIOD_S / WAVE_SPAN) % WAVE_PERIOD_S
    return (step - _phase(int(asset_text[1:]), int(index_text[1:]))) % WAVE_PERIOD_S


def bench_device(
    index: int, points: int, ticker: Ticker, protocol: ProtocolName = "modbus"
) -> SimDevice:
    """Bench device number ``index`` with ``points`` points (rounded up to whole assets)."""
    bindings: list[PointBinding] = []
    assets = max(1, math.ceil(points / POINTS_PER_ASSET))
    for asset in range(assets):
        prefix = f"bench.rtu{index:03d}.a{asset:03d}"
        for value in range(POINTS_PER_ASSET):
            wave = _Wave(ticker, phase=_phase(asset, value))
            if value < ANALOG_PER_ASSET:
                spec = PointSpec(f"{prefix}.v{value:02d}", "float", "%", low=0.0, high=WAVE_SPAN)
                bindings.append(PointBinding(spec, wave.analog))
            else:
                spec = PointSpec(f"{prefix}.s{value:02d}", "bool")
                bindings.append(PointBinding(spec, wave.binary))
    return SimDevice(
        f"bench.rtu{index:03d}",
        protocol,
        bindings[:points],
        unit_id=1,
        device_instance=BACNET_FIRST_INSTANCE + index if protocol == "bacnet" else None,
    )


def bench_devices(
    total_points: int,
    points_per_device: int | None = None,
    protocol: ProtocolName = "modbus",
) -> tuple[Ticker, list[SimDevice]]:
    """Devices with ``total_points`` points in all, ``points_per_device`` each (the last fewer;
    None: the protocol's ``DEFAULT_POINTS_PER_DEVICE``)."""
    per_device = points_per_device or DEFAULT_POINTS_PER_DEVICE[protocol]
    if total_points < 1 or per_device < 1:
        raise ValueError("a bench needs at least one point per device and in all")
    ticker = Ticker()
    devices = []
    remaining, index = total_points, 0
    while remaining > 0:
        count = min(per_device, remaining)
        devices.append(bench_device(index, count, ticker, protocol))
        remaining -= count
        index += 1
    return ticker, devices


def bench_server(device: SimDevice) -> DeviceServer:
    """The device's protocol server on a free loopback port (OPC UA values stamped with the
    wall clock in UTC, so a client can measure how old a notification is)."""
    if device.protocol == "opcua":
        return OpcUaDeviceServer(device)
    if device.protocol == "bacnet":
        return BacnetDeviceServer(device)
    return ModbusDeviceServer(device, contiguous_bits=True)


def describe(servers: Sequence[DeviceServer]) -> dict[str, object]:
    """The served devices as one JSON-ready object: where they listen and what they hold."""
    devices = []
    for server in servers:
        addresses = server.addresses()
        device = server.device
        devices.append(
            {
                "protocol": device.protocol,
                "name": device.name,
                "host": "127.0.0.1",
                "port": server.port,
                "unit_id": device.unit_id,
                "device_instance": device.device_instance,
                "points": [[spec.tag, addresses[spec.tag], spec.kind] for spec in device.points],
            }
        )
    return {"devices": devices}


def _emit(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def _serve_commands(servers: dict[str, DeviceServer]) -> None:
    """Carry out ``restart <device>`` lines from standard input until it ends."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):  # a regular file or nothing on standard input
        return
    while line := await reader.readline():
        verb, _, name = line.decode().strip().partition(" ")
        server = servers.get(name)
        if verb == "restart" and server is not None:
            await server.restart()
            _emit({"restarted": name})
        else:
            _emit({"refused": line.decode().strip()})


async def serve(
    total_points: int, points_per_device: int | None, protocol: ProtocolName = "modbus"
) -> None:
    """Serve the bench devices, describe them, publish every second until stopped."""
    ticker, devices = bench_devices(total_points, points_per_device, protocol)
    servers = [bench_server(device) for device in devices]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    parent = os.getppid()
    commands: asyncio.Task[None] | None = None
    try:
        for server in servers:
            await server.start()
        # The servers' objects live as long as the process: keep them out of full garbage
        # collections, which would otherwise stall every server for hundreds of milliseconds.
        gc.collect()
        gc.freeze()
        _emit(describe(servers))
        commands = asyncio.create_task(
            _serve_commands({server.device.name: server for server in servers})
        )
        next_tick = loop.time() + 1.0
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_tick - loop.time()))
                break
            # Fixed rate: a slow publish shortens the next wait instead of stretching the second.
            next_tick = max(next_tick + 1.0, loop.time())
            ticker.second += 1
            changed_at = time.time()
            for server in servers:
                await server.publish()
            _emit({"tick": ticker.second, "changed_at": changed_at})
    finally:
        if commands is not None:
            commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commands
        for server in servers:
            await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m plc_sim.bench_devices --tags N [--protocol P] [--per-device]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, required=True)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="modbus")
    parser.add_argument("--per-device", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.tags, args.per_device, args.protocol))


if __name__ == "__main__":
    main()
