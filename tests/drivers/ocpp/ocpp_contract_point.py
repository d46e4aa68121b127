"""The contract suite's controller as an OCPP 1.6J charge point that dials into the driver.

OCPP turns the connection round: the center's central system listens, the charge point connects
to it. So the "server" of this device listens on nothing (its ``port`` is 0: the central system
takes any free port) and ``attached`` connects the charge point to a listening driver. The
controller's points are served as OCPP quantities; OCPP speaks watts, the level and setpoint are
kilowatts on the wire (their tags have ``scale`` 0.001, as a site file in kW would):

=============== ====================== =====================================================
point           address                OCPP
=============== ====================== =====================================================
plant.level     ``cp:<id>:1:power_w``  MeterValues of connector 1 (``publish`` sends one)
plant.setpoint  ``cp:<id>:1:limit_w``  SetChargingProfile / GetCompositeSchedule, connector 1
plant.run       ``cp:<id>:1:charge``   RemoteStart/StopTransaction, then Start/StopTransaction
plant.mode      ``cp:<id>:2:limit_w``  the limit of connector 2, in whole watts
=============== ====================== =====================================================

Every command goes through ``SimDevice.write``: what the device refuses (out of range, a
read-only point) the charge point answers ``Rejected``, and nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from drivers.base import Driver
from drivers.ocpp.config import ChargePointConfig, OcppCentralSystemConfig
from drivers.ocpp.driver import OcppDriver
from plc_sim.device import PointWriteError, SimDevice
from tests.drivers.ocpp.ocpp_support import env_name, until

CHARGE_POINT = "contract_cp"
PASSWORD = "pw-contract-Jt7"
RATING_W = 150_000.0
"""The point's rating: above any value of the controller, so the device itself refuses."""
LIMITS = {1: "plant.setpoint", 2: "plant.mode"}
"""Connector → the point its charging limit is."""
WATTS = {"plant.level": 1000.0, "plant.setpoint": 1000.0, "plant.mode": 1.0}
"""Watts on the wire per unit of the point."""
SCALES = {tag: 1.0 / watts for tag, watts in WATTS.items()}
"""The tags' ``scale``: engineering value = watts x scale."""


def _stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Point(ChargePoint):
    """The requests the central system sends, answered from the device."""

    def __init__(self, owner: OcppControllerPoint, connection: ClientConnection) -> None:
        super().__init__(CHARGE_POINT, connection, response_timeout=5)
        self.owner = owner

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        """Start on connector 1 when the device takes the run command."""
        accepted = connector_id in (None, 1) and self.owner.transaction is None
        accepted = accepted and self.owner.command("plant.run", True)
        return result16.RemoteStartTransaction(status="Accepted" if accepted else "Rejected")

    @after(Action.remote_start_transaction)
    async def after_remote_start(self, id_tag: str, **_: Any) -> None:
        """Report the transaction the accepted start began."""
        if self.owner.device.read("plant.run") is True and self.owner.transaction is None:
            await self.owner.start_transaction(id_tag)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        """Stop the running transaction when the device takes the stop."""
        accepted = transaction_id == self.owner.transaction
        accepted = accepted and self.owner.command("plant.run", False)
        return result16.RemoteStopTransaction(status="Accepted" if accepted else "Rejected")

    @after(Action.remote_stop_transaction)
    async def after_remote_stop(self, transaction_id: int) -> None:
        """Report the end of the transaction."""
        if self.owner.transaction == transaction_id:
            await self.owner.stop_transaction()

    @on(Action.set_charging_profile)
    def on_set_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        """The first period's limit becomes the connector's point, if the device takes it."""
        schedule = cs_charging_profiles.get("charging_schedule")
        periods = schedule.get("charging_schedule_period") if isinstance(schedule, dict) else None
        limit = periods[0].get("limit") if isinstance(periods, list) and periods else None
        accepted = (
            connector_id in LIMITS
            and isinstance(limit, int | float | Decimal)
            and self.owner.command(LIMITS[connector_id], float(limit) / WATTS[LIMITS[connector_id]])
        )
        return result16.SetChargingProfile(status="Accepted" if accepted else "Rejected")

    @on(Action.get_composite_schedule)
    def on_composite(self, connector_id: int, duration: int, **_: Any) -> Any:
        """The connector's point as a one-period schedule (connector 0: the point's rating)."""
        if connector_id == 0:
            limit: float = RATING_W
        elif connector_id in LIMITS:
            tag = LIMITS[connector_id]
            limit = round(float(self.owner.device.read(tag)) * WATTS[tag], 1)
        else:
            return result16.GetCompositeSchedule(status="Rejected")
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=_stamp(),
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            },
        )


class OcppControllerPoint:
    """Serves a ``SimDevice``'s points as one OCPP 1.6J charge point (``DeviceServer``-like:
    ``start``/``stop`` keep no socket, ``attached`` connects to a listening driver)."""

    def __init__(self, device: SimDevice) -> None:
        self._device = device
        self._point: _Point | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connection: ClientConnection | None = None
        self._url = ""
        self.transaction: int | None = None
        """The id the central system gave the running transaction."""

    @property
    def device(self) -> SimDevice:
        """The device served."""
        return self._device

    @property
    def port(self) -> int:
        """0: the charge point listens on nothing; the central system takes any free port."""
        return 0

    def addresses(self) -> dict[str, str]:
        """Tag → OCPP address of the charge point."""
        return {
            "plant.level": f"cp:{CHARGE_POINT}:1:power_w",
            "plant.setpoint": f"cp:{CHARGE_POINT}:1:limit_w",
            "plant.run": f"cp:{CHARGE_POINT}:1:charge",
            "plant.mode": f"cp:{CHARGE_POINT}:2:limit_w",
        }

    def central_system(self, port: int) -> OcppCentralSystemConfig:
        """The central system that accepts this charge point, listening on ``port``."""
        return OcppCentralSystemConfig(
            host="127.0.0.1",
            port=port,
            charge_points=(ChargePointConfig(CHARGE_POINT, env_name(CHARGE_POINT), RATING_W),),
            timeout_s=1.0,
        )

    async def start(self) -> None:
        """Put the password where the central system's configuration says it is."""
        os.environ[env_name(CHARGE_POINT)] = PASSWORD

    async def stop(self) -> None:
        """Disconnect; never raises."""
        listener, self._listener = self._listener, None
        connection, self._connection = self._connection, None
        self._point = None
        self.transaction = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def restart(self) -> None:
        """Reconnect to the same central system, as a rebooted charge point."""
        await self.stop()
        if self._url:
            await self._connect(self._url)

    def attached(self, driver: Driver) -> AbstractAsyncContextManager[None]:
        """Connected to ``driver`` (listening) and reported, for the duration of the block."""
        assert isinstance(driver, OcppDriver)
        return self._attached(driver)

    @contextlib.asynccontextmanager
    async def _attached(self, driver: OcppDriver) -> AsyncIterator[None]:
        await self._connect(f"ws://127.0.0.1:{driver.port}/ocpp/{CHARGE_POINT}")
        try:
            await until(lambda: _reported(driver), "the charge point's first reports", 5.0)
            yield
        finally:
            await self.stop()

    async def publish(self) -> None:
        """Report the level as connector 1's power (answered once the driver has it)."""
        point = self._point
        if point is None:
            return
        watts = float(self._device.read("plant.level")) * WATTS["plant.level"]
        await point.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=self.transaction,
                meter_value=[
                    {
                        "timestamp": _stamp(),
                        "sampled_value": [
                            {
                                "value": f"{watts:.1f}",
                                "measurand": "Power.Active.Import",
                                "unit": "W",
                            }
                        ],
                    }
                ],
            ),
            suppress=False,
        )

    def command(self, tag: str, value: bool | float) -> bool:
        """Apply a command through the device; False when it refuses."""
        try:
            self._device.write(tag, value)
        except PointWriteError:
            return False
        return True

    async def start_transaction(self, id_tag: str) -> None:
        """StartTransaction on connector 1 and its Charging status."""
        assert self._point is not None
        answer = await self._point.call(
            call16.StartTransaction(
                connector_id=1, id_tag=id_tag, meter_start=0, timestamp=_stamp()
            ),
            suppress=False,
        )
        self.transaction = int(answer.transaction_id)
        await self._status(1, "Charging")

    async def stop_transaction(self) -> None:
        """StopTransaction of the running transaction and connector 1 back to Preparing."""
        assert self._point is not None and self.transaction is not None
        running, self.transaction = self.transaction, None
        await self._point.call(
            call16.StopTransaction(
                meter_stop=0, timestamp=_stamp(), transaction_id=running, reason="Remote"
            ),
            suppress=False,
        )
        await self._status(1, "Preparing")

    async def _connect(self, url: str) -> None:
        self._url = url
        token = base64.b64encode(f"{CHARGE_POINT}:{PASSWORD}".encode()).decode()
        self._connection = await connect(
            url,
            subprotocols=[websockets.Subprotocol("ocpp1.6")],
            additional_headers={"Authorization": f"Basic {token}"},
            proxy=None,
            open_timeout=5,
        )
        self._point = _Point(self, self._connection)
        self._listener = asyncio.create_task(self._point.start())
        await self._point.call(
            call16.BootNotification(charge_point_model="Contract", charge_point_vendor="Tests"),
            suppress=False,
        )
        # A vehicle waits on connector 1, so a remote start can be taken.
        await self._status(1, "Preparing")
        await self._status(2, "Available")
        if self._device.read("plant.run") is True:
            # Running since before this connection: reported now, as OCPP 1.6 queues it.
            await self.start_transaction("LOCAL")
        await self.publish()

    async def _status(self, connector: int, status: str) -> None:
        assert self._point is not None
        await self._point.call(
            call16.StatusNotification(
                connector_id=connector, error_code="NoError", status=status, timestamp=_stamp()
            ),
            suppress=False,
        )


def _reported(driver: OcppDriver) -> bool:
    """Whether the driver holds the charge point's status, power and every limit."""
    station = driver.station(CHARGE_POINT)
    if station is None or not station.connected:
        return False
    connectors = station.connectors
    return (
        all(c in connectors and connectors[c].limit is not None for c in (0, 1, 2))
        and connectors[1].power is not None
        and connectors[1].status is not None
    )
