"""Fixtures for the center's own tests: a simulated tank on a free port and a closed port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock


@pytest.fixture
async def tank_city() -> AsyncIterator[SimulatedCity]:
    """A simulated city on a free port, its clock 60 times faster than the wall."""
    async with SimulatedCity(SimClock(speed=60.0), modbus_port=0, seed=7) as city:
        yield city


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
