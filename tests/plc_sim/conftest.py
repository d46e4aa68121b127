from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock


@pytest.fixture
async def fast_city() -> AsyncIterator[SimulatedCity]:
    """A city on a clock 100 times faster than the wall, on an ephemeral port."""
    city = SimulatedCity(SimClock(speed=100.0), seed=11)
    async with city:
        yield city
