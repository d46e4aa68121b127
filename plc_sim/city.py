"""The simulated city: its devices' physics running on a clock, served over their protocols.

Today the city has one water tank RTU on Modbus TCP. A physics loop integrates the simulated
time elapsed since its last step every 50 ms of wall time and publishes the results into the
protocol servers, so a clock running 600 times faster than the wall only means bigger steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from zoneinfo import ZoneInfo

from plc_sim.modbus_server import TankModbusServer
from plc_sim.points import TANK1_DEVICE, SimPoint, tank_points
from plc_sim.tank import Tank, TankParams

_log = logging.getLogger(__name__)

PHYSICS_PERIOD_S = 0.05
"""Wall-clock seconds between two physics steps."""

MAX_CATCH_UP_S = 3600.0
"""Longest simulated interval one step integrates; a longer stall (a suspended process) is
skipped rather than replayed, so the loop never blocks for long."""


class SimulationClock(Protocol):
    """What the simulation needs of a clock (``plc_sim.clock.SimClock`` is one)."""

    def now(self) -> datetime:
        """Current simulated time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Simulated seconds from an arbitrary origin; never goes backwards."""
        ...


class SimulatedCity:
    """Runs the simulated devices and their protocol servers; use ``async with`` or start/stop."""

    def __init__(
        self,
        clock: SimulationClock,
        *,
        host: str = "127.0.0.1",
        modbus_port: int = 0,
        seed: int = 1,
        tz: str = "Europe/Vienna",
        tank_params: TankParams | None = None,
    ) -> None:
        self._clock = clock
        self._host = host
        params = tank_params or TankParams()
        self.tank = Tank(params=params, seed=seed, tz=ZoneInfo(tz))
        self._tank_server = TankModbusServer(
            self.tank, host=host, port=modbus_port, before_write=self._integrate
        )
        self._points = tank_points(TANK1_DEVICE, "water.tank1", params.height_m)
        self._physics_task: asyncio.Task[None] | None = None
        self._last_step_at = 0.0

    @property
    def clock(self) -> SimulationClock:
        """The clock the city's physics runs on."""
        return self._clock

    @property
    def running(self) -> bool:
        """Whether the servers and the physics loop are running."""
        return self._physics_task is not None

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Device name → (host, port) of each running device server."""
        return {TANK1_DEVICE: (self._host, self._tank_server.port)}

    def points(self) -> tuple[SimPoint, ...]:
        """Every point every simulated device exposes."""
        return self._points

    async def start(self) -> None:
        """Start the protocol servers and the physics loop."""
        if self._physics_task is not None:
            raise RuntimeError("the simulated city is already running")
        self._last_step_at = self._clock.monotonic()
        self.tank.step(0.0, self._clock.now())
        await self._tank_server.start()
        self._physics_task = asyncio.create_task(self._run_physics(), name="plc_sim physics")
        _log.info("simulated city running: %s", self.endpoints())

    async def stop(self) -> None:
        """Stop the physics loop and the servers; idempotent, never raises."""
        task, self._physics_task = self._physics_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._tank_server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def step_now(self) -> None:
        """Integrate up to the clock's current time and publish (the loop calls this)."""
        self._integrate()
        await self._tank_server.publish()

    def _integrate(self) -> None:
        """Advance the physics by the simulated time elapsed since the last step."""
        now_s = self._clock.monotonic()
        elapsed_s = now_s - self._last_step_at
        self._last_step_at = now_s
        if elapsed_s > MAX_CATCH_UP_S:
            _log.warning("physics fell %.0f s behind the clock; skipping ahead", elapsed_s)
            elapsed_s = MAX_CATCH_UP_S
        self.tank.step(max(0.0, elapsed_s), self._clock.now())

    async def _run_physics(self) -> None:
        failing = False
        while True:
            try:
                await self.step_now()
            except Exception as err:
                # A fault in one step must not end the simulation; say so once, not 20 times/s.
                if not failing:
                    _log.error("physics step failed: %s", err, exc_info=True)
                failing = True
            else:
                if failing:
                    _log.info("physics steps recovered")
                failing = False
            await asyncio.sleep(PHYSICS_PERIOD_S)
