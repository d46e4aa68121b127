"""Fixtures for the rules tests: a simulated water district on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock


@pytest.fixture
async def water_city() -> AsyncIterator[SimulatedCity]:
    """The simulated city's water domain on free ports, its clock 60 times faster than the wall."""
    options = CityOptions(seed=7, domains=frozenset({"water"}))
    async with SimulatedCity(SimClock(speed=60.0), options) as city:
        yield city
