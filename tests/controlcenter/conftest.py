"""Fixtures for the center's own tests: a simulated tank on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock

WATER_ONLY = frozenset({"water"})


@pytest.fixture
async def tank_city() -> AsyncIterator[SimulatedCity]:
    """A simulated city on a free port, its clock 60 times faster than the wall."""
    options = CityOptions(seed=7, domains=WATER_ONLY)
    async with SimulatedCity(SimClock(speed=60.0), options) as city:
        yield city
