"""A simulated charge point as an OCPP client of the center's central system.

Each ``OcppChargePointClient`` connects a ``ChargePointModel`` to
``<central system url>/<charge point id>`` over WebSocket with HTTP Basic authentication (OCPP
security profile 1), speaking OCPP 1.6J or OCPP 2.0.1, and reconnects with backoff whenever the
connection is refused or lost. Once connected it boots (BootNotification), reports every
connector's status, reports what the model queues (StatusNotification, Start/StopTransaction or
TransactionEvent), sends MeterValues every ``meter_interval_s`` of simulated time while a
session runs and a Heartbeat whenever it has been quiet for the interval the central system
gave. It answers remote start/stop, SetChargingProfile and GetCompositeSchedule from the model.

``send_raw`` puts any frame on the wire (malformed frames, unknown actions in fault tests);
the model's ``silent`` fault makes the client send and answer nothing while it stays connected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import websockets
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ClientPoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ClientPoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection, connect

from plc_sim.charging.model import ChargeEvent, ChargeFault, ChargePointModel, ConnectorStatus

_log = logging.getLogger(__name__)

OcppVersion = Literal["1.6", "2.0.1"]
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
FIRST_RETRY_S = 0.2
MAX_RETRY_S = 5.0


class SimClockLike(Protocol):
    """The simulated clock the charge point runs on."""

    def now(self) -> datetime:
        """Current simulated time (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep simulated seconds."""
        ...


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _QuietLog:
    """The library's per-message log lines at debug level; no tracebacks for field faults."""

    def __init__(self, name: str) -> None:
        self._name = name

    def info(self, message: str, *args: object) -> None:
        _log.debug("%s: " + message, self._name, *args)

    debug = info
    warning = info

    def error(self, message: str, *args: object) -> None:
        _log.info("%s: " + message, self._name, *args)

    exception = error


class _Point16(ClientPoint16):
    """OCPP 1.6J requests the central system sends to the charge point."""

    def __init__(self, client: OcppChargePointClient, connection: ClientConnection) -> None:
        super().__init__(
            client.model.id, connection, response_timeout=10, logger=_QuietLog(client.model.id)
        )
        self.client = client

    async def route_message(self, raw_msg: str) -> None:
        """A silent point hears nothing."""
        if ChargeFault.SILENT not in self.client.model.faults:
            await super().route_message(raw_msg)

    @on(Action16.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        """Start if a vehicle waits on the connector."""
        accepted = self.client.model.remote_start(connector_id or 1)
        self.client.wake()
        return result16.RemoteStartTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> Any:
        """Stop the transaction with this id."""
        connector = self.client.connector_of(str(transaction_id))
        accepted = connector is not None and self.client.model.remote_stop(connector)
        self.client.wake()
        return result16.RemoteStopTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action16.set_charging_profile)
    def on_set_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        """Apply the first period's limit (W or A at 230 V x 3 phases)."""
        limit = _first_limit(cs_charging_profiles.get("charging_schedule"))
        accepted = limit is not None and self.client.model.set_limit(connector_id, limit)
        return result16.SetChargingProfile(status="Accepted" if accepted else "Rejected")

    @on(Action16.get_composite_schedule)
    def on_composite(self, connector_id: int, duration: int, **_: Any) -> Any:
        """The limit in force as a one-period schedule."""
        limit = self.client.model.composite_limit(connector_id)
        if limit is None:
            return result16.GetCompositeSchedule(status="Rejected")
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=_stamp(self.client.clock.now()),
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            },
        )


class _Point201(ClientPoint201):
    """OCPP 2.0.1 requests the CSMS sends to the charging station."""

    def __init__(self, client: OcppChargePointClient, connection: ClientConnection) -> None:
        super().__init__(
            client.model.id, connection, response_timeout=10, logger=_QuietLog(client.model.id)
        )
        self.client = client

    async def route_message(self, raw_msg: str) -> None:
        """A silent station hears nothing."""
        if ChargeFault.SILENT not in self.client.model.faults:
            await super().route_message(raw_msg)

    @on(Action201.request_start_transaction)
    def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        """Start if a vehicle waits on the EVSE."""
        accepted = self.client.model.remote_start(evse_id or 1)
        self.client.wake()
        return result201.RequestStartTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action201.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        """Stop the transaction with this id."""
        connector = self.client.connector_of(transaction_id)
        accepted = connector is not None and self.client.model.remote_stop(connector)
        self.client.wake()
        return result201.RequestStopTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action201.set_charging_profile)
    def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        """Apply the first schedule's first period's limit."""
        schedules = charging_profile.get("charging_schedule")
        first = schedules[0] if isinstance(schedules, list) and schedules else None
        limit = _first_limit(first)
        accepted = limit is not None and self.client.model.set_limit(evse_id, limit)
        return result201.SetChargingProfile(status="Accepted" if accepted else "Rejected")

    @on(Action201.get_composite_schedule)
    def on_composite(self, duration: int, evse_id: int, **_: Any) -> Any:
        """The limit in force as a one-period schedule."""
        limit = self.client.model.composite_limit(evse_id)
        if limit is None:
            return result201.GetCompositeSchedule(status="Rejected")
        return result201.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": _stamp(self.client.clock.now()),
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            },
        )


def _first_limit(schedule: object) -> float | None:
    if not isinstance(schedule, dict):
        return None
    periods = schedule.get("charging_schedule_period")
    if not isinstance(periods, list) or not periods or not isinstance(periods[0], dict):
        return None
    limit = periods[0].get("limit")
    # The library decodes JSON numbers as Decimal.
    if isinstance(limit, bool) or not isinstance(limit, int | float | Decimal):
        return None
    factor = 1.0 if schedule.get("charging_rate_unit", "W") == "W" else 230.0 * 3
    return float(limit) * factor


class OcppChargePointClient:
    """One simulated charge point connected to the center over OCPP."""

    def __init__(
        self,
        model: ChargePointModel,
        url: str,
        password: str,
        clock: SimClockLike,
        *,
        version: OcppVersion = "1.6",
        meter_interval_s: float = 60.0,
    ) -> None:
        self.model = model
        self.url = url.rstrip("/") + "/" + model.id
        self.clock = clock
        self.version: OcppVersion = version
        self.meter_interval_s = meter_interval_s
        self._password = password
        self._task: asyncio.Task[None] | None = None
        self._point: _Point16 | _Point201 | None = None
        self._wake = asyncio.Event()
        self._transactions: dict[int, str] = {}
        self._seq_no = 0
        self.heartbeat_s = 60.0
        self.connects = 0
        self.refusals = 0
        self.connected = asyncio.Event()
        self.on_refused: Callable[[int], None] | None = None

    @property
    def transactions(self) -> dict[int, str]:
        """Running transaction ids by connector."""
        return dict(self._transactions)

    def connector_of(self, transaction_id: str) -> int | None:
        """The connector a transaction runs on."""
        for connector, known in self._transactions.items():
            if known == transaction_id:
                return connector
        return None

    def wake(self) -> None:
        """Report what the model queued now rather than at the next tick."""
        self._wake.set()

    async def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ocpp client {self.model.id}")

    async def stop(self) -> None:
        """Disconnect and stop; never raises."""
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            # A cancellation that meets an answer arriving in the ocpp library's wait for it
            # (asyncio.wait_for before Python 3.12) is lost: ask again until the task ends.
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: the task ended as it should, whatever it raised
        self.connected.clear()

    async def drop_connection(self) -> None:
        """Close the WebSocket (the client reconnects), as a network outage would."""
        point = self._point
        if point is not None:
            await point._connection.close()

    async def send_raw(self, frame: str | bytes) -> None:
        """Put any frame on the wire (fault tests: malformed frames, unknown actions)."""
        point = self._point
        if point is None:
            raise ConnectionError(f"charge point {self.model.id} is not connected")
        await point._connection.send(frame)

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        token = base64.b64encode(f"{self.model.id}:{self._password}".encode()).decode()
        while True:
            try:
                async with connect(
                    self.url,
                    subprotocols=[websockets.Subprotocol(SUBPROTOCOL[self.version])],
                    additional_headers={"Authorization": f"Basic {token}"},
                    proxy=None,
                    open_timeout=5,
                ) as connection:
                    delay = FIRST_RETRY_S
                    self.connects += 1
                    await self._session(connection)
            except websockets.InvalidStatus as err:
                self.refusals += 1
                if self.on_refused is not None:
                    self.on_refused(err.response.status_code)
            except (OSError, websockets.WebSocketException, TimeoutError, OCPPError) as err:
                _log.debug("charge point %s: connection ended: %s", self.model.id, err)
            finally:
                self._point = None
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    async def _session(self, connection: ClientConnection) -> None:
        point: _Point16 | _Point201
        point = _Point16(self, connection) if self.version == "1.6" else _Point201(self, connection)
        self._point = point
        listener = asyncio.create_task(point.start())
        behaviour: asyncio.Task[None] | None = None
        try:
            await self._boot(point)
            self.connected.set()
            behaviour = asyncio.create_task(self._behave(point))
            done, _ = await asyncio.wait({listener, behaviour}, return_when=asyncio.FIRST_COMPLETED)
            for task in {listener, behaviour} - done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in done:
                task.result()
        finally:
            # Both, also when the session itself is cancelled (the behaviour must not outlive it).
            for running in (listener, behaviour):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await running

    async def _boot(self, point: _Point16 | _Point201) -> None:
        if isinstance(point, _Point16):
            answer = await point.call(
                call16.BootNotification(
                    charge_point_model=self.model.model, charge_point_vendor=self.model.vendor
                ),
                suppress=False,
            )
        else:
            answer = await point.call(
                call201.BootNotification(
                    charging_station={"model": self.model.model, "vendor_name": self.model.vendor},
                    reason="PowerUp",
                ),
                suppress=False,
            )
        self.heartbeat_s = float(answer.interval) if answer.interval > 0 else 60.0
        for connector in self.model.connectors:
            await self._status(point, connector.id, connector.status, self.clock.now())

    async def _behave(self, point: _Point16 | _Point201) -> None:
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        next_meter = self.clock.now().timestamp() + self.meter_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            self._wake.clear()
            if ChargeFault.SILENT in self.model.faults:
                continue
            sent = False
            while self.model.events:
                await self._report(point, self.model.events.popleft())
                sent = True
            now = self.clock.now()
            if now.timestamp() >= next_meter:
                next_meter = now.timestamp() + self.meter_interval_s
                for connector in self.model.connectors:
                    if connector.transaction:
                        await self._meter(point, connector.id, now, "MeterValuePeriodic")
                        sent = True
            # Heartbeat in simulated seconds, as the point's own clock runs.
            if sent:
                last_sent = loop.time()
            elif (loop.time() - last_sent) * _speed(self.clock) >= self.heartbeat_s:
                payload = call16.Heartbeat() if isinstance(point, _Point16) else call201.Heartbeat()
                await point.call(payload, suppress=False)
                last_sent = loop.time()

    async def _report(self, point: _Point16 | _Point201, event: ChargeEvent) -> None:
        if event.kind == "status" and event.status is not None:
            await self._status(point, event.connector, event.status, event.time)
        elif event.kind == "started":
            if isinstance(point, _Point16):
                answer = await point.call(
                    call16.StartTransaction(
                        connector_id=event.connector,
                        id_tag="REMOTE" if event.remote else "RFID-LOCAL",
                        meter_start=int(event.meter_wh),
                        timestamp=_stamp(event.time),
                    ),
                    suppress=False,
                )
                self._transactions[event.connector] = str(answer.transaction_id)
            else:
                transaction_id = f"{self.model.id}-{event.connector}-{int(event.time.timestamp())}"
                self._transactions[event.connector] = transaction_id
                await self._event201(
                    point,
                    "Started",
                    "RemoteStart" if event.remote else "Authorized",
                    event.connector,
                    event.time,
                    "Charging",
                    event.meter_wh,
                )
        elif event.kind == "stopped":
            running = self._transactions.get(event.connector)
            if running is None:
                return
            if isinstance(point, _Point16):
                await point.call(
                    call16.StopTransaction(
                        meter_stop=int(event.meter_wh),
                        timestamp=_stamp(event.time),
                        transaction_id=int(running),
                        reason="Remote" if event.remote else "EVDisconnected",
                    ),
                    suppress=False,
                )
            else:
                await self._event201(
                    point,
                    "Ended",
                    "RemoteStop" if event.remote else "EVDeparted",
                    event.connector,
                    event.time,
                    "EVConnected",
                    event.meter_wh,
                )
            self._transactions.pop(event.connector, None)

    async def _status(
        self, point: _Point16 | _Point201, connector: int, status: ConnectorStatus, at: datetime
    ) -> None:
        if isinstance(point, _Point16):
            await point.call(
                call16.StatusNotification(
                    connector_id=connector,
                    error_code="NoError",
                    status=status.value,
                    timestamp=_stamp(at),
                ),
                suppress=False,
            )
            return
        words = {
            ConnectorStatus.AVAILABLE: "Available",
            ConnectorStatus.UNAVAILABLE: "Unavailable",
            ConnectorStatus.FAULTED: "Faulted",
        }.get(status, "Occupied")
        await point.call(
            call201.StatusNotification(
                timestamp=_stamp(at), connector_status=words, evse_id=connector, connector_id=1
            ),
            suppress=False,
        )
        if connector in self._transactions and status in (
            ConnectorStatus.CHARGING,
            ConnectorStatus.SUSPENDED_EV,
        ):
            charging = "Charging" if status is ConnectorStatus.CHARGING else "SuspendedEV"
            await self._event201(
                point, "Updated", "ChargingStateChanged", connector, at, charging, None
            )

    async def _meter(
        self, point: _Point16 | _Point201, connector_id: int, at: datetime, trigger: str
    ) -> None:
        connector = self.model.connector(connector_id)
        register = self.model.reported_register(connector)
        if isinstance(point, _Point16):
            transaction = self._transactions.get(connector_id)
            await point.call(
                call16.MeterValues(
                    connector_id=connector_id,
                    transaction_id=int(transaction) if transaction else None,
                    meter_value=[
                        {
                            "timestamp": _stamp(at),
                            "sampled_value": [
                                {
                                    "value": f"{register:.0f}",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                },
                                {
                                    "value": f"{connector.power_w:.0f}",
                                    "measurand": "Power.Active.Import",
                                    "unit": "W",
                                },
                            ],
                        }
                    ],
                ),
                suppress=False,
            )
            return
        charging = "Charging" if connector.power_w > 0 else "SuspendedEV"
        await self._event201(
            point, "Updated", trigger, connector_id, at, charging, register, power=connector.power_w
        )

    async def _event201(
        self,
        point: _Point16 | _Point201,
        event_type: str,
        trigger: str,
        connector: int,
        at: datetime,
        charging_state: str,
        register: float | None,
        *,
        power: float | None = None,
    ) -> None:
        self._seq_no += 1
        sampled: list[dict[str, Any]] = []
        if register is not None:
            sampled.append(
                {
                    "value": round(register),
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                }
            )
        if power is not None:
            sampled.append(
                {
                    "value": round(power),
                    "measurand": "Power.Active.Import",
                    "unit_of_measure": {"unit": "W"},
                }
            )
        await point.call(
            call201.TransactionEvent(
                event_type=event_type,
                timestamp=_stamp(at),
                trigger_reason=trigger,
                seq_no=self._seq_no,
                transaction_info={
                    "transaction_id": self._transactions.get(connector, "unknown"),
                    "charging_state": charging_state,
                },
                evse={"id": connector, "connector_id": 1},
                meter_value=[{"timestamp": _stamp(at), "sampled_value": sampled}]
                if sampled
                else None,
            ),
            suppress=False,
        )


def _speed(clock: SimClockLike) -> float:
    speed = getattr(clock, "speed", 1.0)
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0
