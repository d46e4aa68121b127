"""The OCPP driver: the center as the central system that charge points connect to.

Unlike the other drivers, this one is the server. ``connect`` starts listening for charge points
(OCPP-J over WebSocket, subprotocols ``ocpp1.6`` and ``ocpp2.0.1``); each connects to
``ws://<host>:<port>/<any prefix>/<charge point id>`` with HTTP Basic authentication (OCPP
security profile 1: the user is the charge point id, the password comes from the environment
variable its configuration names). Unknown ids, wrong passwords and a missing subprotocol are
refused before the WebSocket opens (HTTP 401 / 400). A second connection of the same id replaces
the first, as a charge point that rebooted would.

What charge points report updates each point's state (``drivers.ocpp.state``): ``read`` answers
from it without a network request, ``subscribe`` pushes every change and a keep-alive each
interval. A charge point not connected has its points Bad ``not_connected``; one connected but
silent for ``silence_factor`` heartbeats has them Bad ``comm_failure`` until it speaks again. A
read none of whose points can be answered (every charge point it names is away or silent)
raises NotConnectedError (CommunicationTimeoutError when all are silent), each point's own Bad
sample attached, as a dead endpoint of the other protocols does. Once a connector has reported
its status on a connection, the driver asks the charge point for the limit in force on it and on
the whole point (GetCompositeSchedule), so ``limit_w`` reads Good before anyone has set one.

Writes are OCPP calls: ``charge`` sends RemoteStart/StopTransaction (1.6) or
RequestStart/StopTransaction (2.0.1) and is confirmed when the transaction starts or stops;
``limit_w`` sends SetChargingProfile and reads the limit back with GetCompositeSchedule.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import itertools
import logging
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from controlcenter.model import DataType, Quality, Sample, Severity, Substatus, TagDef, Value
from controlcenter.ports import Clock
from drivers.base import (
    AddressError,
    CommunicationTimeoutError,
    DeviceRejectedError,
    DriverDiagnostics,
    DriverError,
    NotConnectedError,
    SampleCallback,
    WriteUnconfirmedError,
    confirm_write,
)
from drivers.health import DriverHealth
from drivers.ocpp.address import WRITABLE, OcppAddress, Quantity, parse_address
from drivers.ocpp.config import OcppCentralSystemConfig
from drivers.ocpp.handlers import (
    CentralSystem16,
    CentralSystem201,
    CentralSystemPoint,
    StationContext,
)
from drivers.ocpp.state import StationState

_log = logging.getLogger(__name__)

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
"""Offered in this order: a charge point that speaks both gets 2.0.1."""
_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
LIMIT_PROFILE_ID = 1701
"""Id of the charging profile the center's limits use (each new limit replaces it)."""
MAX_FRAME_BYTES = 256 * 1024
"""Largest frame a charge point may send; a bigger one closes its connection (1009)."""
MAX_LOGGED_PROBLEMS = 1000
"""Distinct misbehaviours logged (each once); beyond that they are only counted."""
COMPOSITE_DURATION_S = 60
"""How far ahead the readback asks for the composite schedule."""
LIMIT_DECIMALS = 1
"""Decimals of a charging limit: OCPP 1.6 and 2.0.1 take at most one digit of fraction (a
finer limit fails the library's schema check before it is sent)."""
_SCALED = frozenset(
    {Quantity.ENERGY_WH, Quantity.POWER_W, Quantity.SESSION_ENERGY_WH, Quantity.LIMIT_W}
)
"""Quantities a tag's ``scale`` and ``offset`` apply to (e.g. kW from W with scale 0.001)."""
_AWAY = frozenset({Substatus.NOT_CONNECTED, Substatus.COMM_FAILURE})
"""Sub-statuses of a point whose charge point is away (not connected, or silent)."""


@dataclass(slots=True)
class _Subscription:
    points: tuple[tuple[TagDef, OcppAddress | None], ...]
    callback: SampleCallback
    interval_s: float
    last: dict[str, tuple[Value | None, Quality]] = field(default_factory=dict)


class OcppDriver:
    """The central system for a site's charge points, implementing ``drivers.base.Driver``."""

    def __init__(self, device: str, config: OcppCentralSystemConfig, clock: Clock) -> None:
        self._device = device
        self._config = config
        self._clock = clock
        self._stations = {point.id: StationState(point) for point in config.charge_points}
        self._passwords: dict[str, str] = {}
        self._sessions: dict[str, CentralSystemPoint] = {}
        self._server: Server | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._subscriptions: list[_Subscription] = []
        self._changed = asyncio.Condition()
        self._listen_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._transaction_ids = itertools.count(int(time.time()) % 100_000 * 1000 + 1)
        self._remote_start_ids = itertools.count(1)
        self._health = DriverHealth(device, _log)
        self._logged_problems: set[tuple[str, str]] = set()
        self._context = StationContext(
            now=clock.now,
            wall=time.monotonic,
            changed=self._station_changed,
            problem=self._problem,
            heartbeat_s=config.heartbeat_interval_s,
            next_transaction_id=lambda: next(self._transaction_ids),
            connector_seen=self._connector_seen,
        )

    @property
    def device(self) -> str:
        """Name of the device (the central system endpoint)."""
        return self._device

    @property
    def listening(self) -> bool:
        """Whether the central system accepts charge points now."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port the central system listens on (the real one when configured as 0)."""
        if self._server is None:
            raise NotConnectedError(f"{self._device}: the central system is not listening")
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    def station(self, charge_point_id: str) -> StationState | None:
        """What is known of a configured charge point (for diagnostics and tests)."""
        return self._stations.get(charge_point_id)

    # -- Driver --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start listening for charge points; raise NotConnectedError if the address is taken."""
        async with self._listen_lock:  # a read and a subscribe may both start it
            if self._server is None:
                await self._listen()

    async def _listen(self) -> None:
        self._load_passwords()
        try:
            self._server = await serve(
                self._serve_connection,
                self._config.host,
                self._config.port,
                subprotocols=[websockets.Subprotocol(name) for name in SUBPROTOCOLS],
                process_request=self._authorise,
                # OCPP-J messages are small; a bigger frame is a fault, not data to buffer.
                max_size=MAX_FRAME_BYTES,
                ping_interval=max(float(self._config.heartbeat_interval_s), 5.0),
                ping_timeout=self._config.timeout_s,
            )
        except OSError as err:
            where = f"{self._config.host}:{self._config.port}"
            raise self._health.failed(
                NotConnectedError(f"{self._device}: cannot listen on {where}: {err}"), err
            ) from err
        self._watchdog = asyncio.create_task(self._watch(), name=f"{self._device} watchdog")
        self._health.mark_available(self._device)
        _log.info("%s: central system listening on port %d", self._device, self.port)

    async def close(self) -> None:
        """Stop listening, drop every charge point connection and forget subscriptions."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        for task in list(self._background):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._background, return_exceptions=True)
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), self._config.timeout_s)
        self._subscriptions.clear()
        self._sessions.clear()
        for station in self._stations.values():
            station.connected = False

    async def read(self, points: Sequence[TagDef]) -> list[Sample]:
        """The current state of ``points`` as the charge points last reported it; raise
        NotConnectedError (CommunicationTimeoutError: all silent) when no point can be answered
        because every charge point they name is away, each point's Bad sample attached."""
        await self.connect()  # the scan engine's first read or subscribe starts listening
        self._health.count_request()
        samples = [self._sample(point, _address(point)) for point in points]
        unreachable = [s.quality.substatus for s in samples if s.quality.severity is Severity.BAD]
        if samples and len(unreachable) == len(samples) and set(unreachable) <= _AWAY:
            silent = set(unreachable) == {Substatus.COMM_FAILURE}
            error: DriverError
            if silent:
                error = CommunicationTimeoutError(
                    f"{self._device}: every charge point read is connected but silent"
                )
            else:
                error = NotConnectedError(f"{self._device}: no charge point read is connected")
            error.point_samples = tuple(samples)
            self._health.count_error("timeout" if silent else "not_connected", str(error))
            raise error
        return samples

    async def subscribe(
        self, points: Sequence[TagDef], callback: SampleCallback, *, interval_s: float
    ) -> None:
        """Push every change of ``points`` as the charge points report it, and a keep-alive
        every ``interval_s`` while nothing changes; the current state is pushed at once."""
        await self.connect()
        subscription = _Subscription(
            tuple((point, _address(point)) for point in points), callback, max(interval_s, 0.05)
        )
        self._subscriptions.append(subscription)
        self._push(subscription, force=True)

    async def write(self, point: TagDef, value: Value, *, priority: int | None = None) -> Value:
        """Send the OCPP call behind ``point`` and return the charge point's readback."""
        address = parse_address(point.address)
        where = f"{self._device}: write {point.name} ({address})"
        if address.quantity not in WRITABLE:
            raise AddressError(f"{where}: {address.quantity.value} cannot be commanded")
        session = self._session_of(address, where)
        self._health.count_request()
        if address.quantity is Quantity.CHARGE:
            if not isinstance(value, bool):
                raise AddressError(f"{where}: charge takes true (start) or false (stop)")
            return await self._charge(session, point, address, value, where)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AddressError(f"{where}: a limit is a number of watts")
        if point.scale == 0:
            raise AddressError(f"{where}: a scale of 0 cannot be inverted")
        station = self._stations[address.charge_point]
        # The tag's engineering value back to watts; OCPP takes at most one decimal of them.
        limit = round((float(value) - point.offset) / point.scale, LIMIT_DECIMALS)
        if not (math.isfinite(limit) and 0.0 <= limit <= station.config.max_power_w):
            raise DeviceRejectedError(
                f"{where}: limit {limit:.0f} W outside 0..{station.config.max_power_w:.0f} W"
            )
        return await self._set_limit(session, point, address, limit, where)

    def diagnostics(self) -> DriverDiagnostics:
        """Requests (reads, calls), errors by kind (refused, malformed, unknown_action...)."""
        return self._health.snapshot(self._server is not None)

    # -- connections ---------------------------------------------------------------------------

    def _load_passwords(self) -> None:
        for station in self._stations.values():
            variable = station.config.password_env
            password = os.environ.get(variable)
            if password:
                self._passwords[station.config.id] = password
                station.refused = None
            else:
                station.refused = f"password variable {variable} is not set"
                self._problem(
                    "config_error",
                    f"{self._device}: charge point {station.config.id}: "
                    f"password variable {variable} is not set, connections refused",
                )

    def _authorise(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse unknown charge points and wrong credentials before the WebSocket opens."""
        charge_point_id = _charge_point_id(request.path)
        password = self._passwords.get(charge_point_id)
        if password is None or charge_point_id not in self._stations:
            shown = charge_point_id[:48]
            self._problem("refused", f"{self._device}: unknown charge point {shown!r} refused")
            return _unauthorised(connection)
        user, given = _basic_credentials(request.headers.get("Authorization"))
        if user != charge_point_id or not hmac.compare_digest(
            given.encode("utf-8"), password.encode("utf-8")
        ):
            self._problem(
                "refused", f"{self._device}: charge point {charge_point_id}: wrong credentials"
            )
            return _unauthorised(connection)
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if not any(name.strip() in _VERSIONS for name in offered.split(",")):
            self._problem(
                "refused",
                f"{self._device}: charge point {charge_point_id} offers no OCPP version "
                f"({offered[:60]!r})",
            )
            return connection.respond(HTTPStatus.BAD_REQUEST, "no supported OCPP subprotocol\n")
        return None

    async def _serve_connection(self, connection: ServerConnection) -> None:
        charge_point_id = _charge_point_id(connection.request.path if connection.request else "")
        station = self._stations[charge_point_id]
        version = _VERSIONS[str(connection.subprotocol)]
        handler: CentralSystemPoint
        if version == "1.6":
            handler = CentralSystem16(station, connection, self._context, self._config.timeout_s)
        else:
            handler = CentralSystem201(station, connection, self._context, self._config.timeout_s)
        previous = self._sessions.get(charge_point_id)
        self._sessions[charge_point_id] = handler
        if previous is not None:
            # The point reconnected (e.g. after a reboot): the new connection is the one.
            await previous._connection.close(1000, "replaced by a new connection")
        station.version = version
        station.connected = True
        station.heartbeat_s = float(self._config.heartbeat_interval_s)
        station.heard(time.monotonic())
        _log.info("%s: charge point %s connected (OCPP %s)", self._device, charge_point_id, version)
        self._station_changed(station)
        try:
            await handler.start()
        except websockets.ConnectionClosed as err:
            if err.sent is not None and err.sent.code == CloseCode.MESSAGE_TOO_BIG:
                self._problem(
                    "malformed",
                    f"{self._device}: charge point {charge_point_id}: frame over "
                    f"{MAX_FRAME_BYTES // 1024} KiB, connection closed",
                )
        except Exception as err:  # a fault in one charge point's session must not spread
            self._problem("protocol", f"{self._device}: charge point {charge_point_id}: {err!r}")
        finally:
            if self._sessions.get(charge_point_id) is handler:
                del self._sessions[charge_point_id]
                station.connected = False
                _log.info("%s: charge point %s disconnected", self._device, charge_point_id)
                self._station_changed(station)

    def _session_of(self, address: OcppAddress, where: str) -> CentralSystemPoint:
        station = self._stations.get(address.charge_point)
        if station is None:
            raise AddressError(f"{where}: charge point {address.charge_point} is not configured")
        session = self._sessions.get(address.charge_point)
        if session is None:
            raise NotConnectedError(f"{where}: charge point {address.charge_point} not connected")
        return session

    # -- commands --------------------------------------------------------------------------------

    async def _call(self, session: CentralSystemPoint, payload: object, where: str) -> Any:
        try:
            return await session.call(payload, suppress=False)
        except OCPPError as err:
            self._health.count_error("device_failure", str(err))
            raise DeviceRejectedError(f"{where}: charge point answered {err!r}") from err
        except TimeoutError as err:
            self._health.count_error("timeout", where)
            raise CommunicationTimeoutError(
                f"{where}: no answer within {self._config.timeout_s:g} s"
            ) from err
        except websockets.ConnectionClosed as err:
            self._health.count_error("not_connected", where)
            raise NotConnectedError(f"{where}: connection lost") from err

    async def _charge(
        self,
        session: CentralSystemPoint,
        point: TagDef,
        address: OcppAddress,
        start: bool,
        where: str,
    ) -> Value:
        station = self._stations[address.charge_point]
        connector = station.connector(address.connector)
        if bool(connector.transaction_id) == start:
            return start  # already so: the command holds without a call
        payload: object
        if isinstance(session, CentralSystem16):
            if start:
                payload = call16.RemoteStartTransaction(
                    id_tag=self._config.id_tag, connector_id=address.connector
                )
            else:
                payload = call16.RemoteStopTransaction(
                    transaction_id=int(connector.transaction_id or 0)
                )
        elif start:
            payload = call201.RequestStartTransaction(
                id_token={"id_token": self._config.id_tag, "type": "Central"},
                remote_start_id=next(self._remote_start_ids),
                evse_id=address.connector,
            )
        else:
            payload = call201.RequestStopTransaction(transaction_id=str(connector.transaction_id))
        answer = await self._call(session, payload, where)
        if getattr(answer, "status", None) != "Accepted":
            raise DeviceRejectedError(f"{where}: charge point answered {answer.status}")

        def settled() -> bool:
            return bool(station.connector(address.connector).transaction_id) == start

        return await confirm_write(where, self._await_state(point, address, settled, where))

    async def _set_limit(
        self,
        session: CentralSystemPoint,
        point: TagDef,
        address: OcppAddress,
        limit: float,
        where: str,
    ) -> Value:
        station = self._stations[address.charge_point]
        period = {"start_period": 0, "limit": limit}
        profile: dict[str, Any]
        if isinstance(session, CentralSystem16):
            purpose = "ChargePointMaxProfile" if address.connector == 0 else "TxDefaultProfile"
            profile = {
                "charging_profile_id": LIMIT_PROFILE_ID,
                "stack_level": 0,
                "charging_profile_purpose": purpose,
                "charging_profile_kind": "Relative",
                "charging_schedule": {
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [period],
                },
            }
            payload: object = call16.SetChargingProfile(
                connector_id=address.connector, cs_charging_profiles=profile
            )
        else:
            purpose = "ChargingStationMaxProfile" if address.connector == 0 else "TxDefaultProfile"
            profile = {
                "id": LIMIT_PROFILE_ID,
                "stack_level": 0,
                "charging_profile_purpose": purpose,
                "charging_profile_kind": "Relative",
                "charging_schedule": [
                    {"id": 1, "charging_rate_unit": "W", "charging_schedule_period": [period]}
                ],
            }
            payload = call201.SetChargingProfile(
                evse_id=address.connector, charging_profile=profile
            )
        answer = await self._call(session, payload, where)
        if getattr(answer, "status", None) != "Accepted":
            raise DeviceRejectedError(f"{where}: charge point answered {answer.status}")

        async def readback() -> Sample:
            try:
                read = await self._read_limit(session, address, where)
            except DriverError as err:
                raise WriteUnconfirmedError(str(err), substatus=err.substatus) from err
            station.set_limit(address.connector, read, self._clock.now())
            self._station_changed(station)
            return self._sample(point, address)

        return await confirm_write(where, readback())

    async def _read_limit(
        self, session: CentralSystemPoint, address: OcppAddress, where: str
    ) -> float:
        """The limit now in force on the connector, from its composite schedule."""
        if isinstance(session, CentralSystem16):
            answer = await self._call(
                session,
                call16.GetCompositeSchedule(
                    connector_id=address.connector,
                    duration=COMPOSITE_DURATION_S,
                    charging_rate_unit="W",
                ),
                f"{where}: readback",
            )
            schedule = getattr(answer, "charging_schedule", None)
        else:
            answer = await self._call(
                session,
                call201.GetCompositeSchedule(
                    duration=COMPOSITE_DURATION_S, evse_id=address.connector, charging_rate_unit="W"
                ),
                f"{where}: readback",
            )
            schedule = getattr(answer, "schedule", None)
        periods = schedule.get("charging_schedule_period") if isinstance(schedule, dict) else None
        if getattr(answer, "status", None) != "Accepted" or not periods:
            raise DeviceRejectedError(f"{where}: no composite schedule ({answer})")
        first = periods[0]
        limit = first.get("limit") if isinstance(first, dict) else None
        # The library decodes JSON numbers as Decimal.
        if isinstance(limit, bool) or not isinstance(limit, int | float | Decimal):
            raise DeviceRejectedError(f"{where}: composite schedule without a limit")
        return float(limit)

    async def _await_state(
        self, point: TagDef, address: OcppAddress, settled: Callable[[], bool], where: str
    ) -> Sample:
        """Wait until the charge point's reports make ``settled`` true; then the point's sample."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(settled), self._config.timeout_s)
        except TimeoutError as err:
            raise WriteUnconfirmedError(
                f"{where}: accepted, but the charge point did not report the change within "
                f"{self._config.timeout_s:g} s",
                substatus=Substatus.TIMEOUT,
            ) from err
        return self._sample(point, address)

    # -- samples -----------------------------------------------------------------------------------

    def _sample(self, point: TagDef, address: OcppAddress | None) -> Sample:
        now = self._clock.now()
        if address is None:
            reason = f"{point.address!r} is not an OCPP address"
            return Sample(point.name, None, Quality.bad(Substatus.CONFIG_ERROR, reason), now, now)
        station = self._stations.get(address.charge_point)
        if station is None:
            reason = f"charge point {address.charge_point} is not configured on {self._device}"
            return Sample(point.name, None, Quality.bad(Substatus.CONFIG_ERROR, reason), now, now)
        sample = station.sample(point.name, address, now, time.monotonic())
        value = sample.value
        if address.quantity not in _SCALED or not isinstance(value, int | float):
            return sample
        scaled = float(value) * point.scale + point.offset
        if point.data_type is DataType.INT and math.isfinite(scaled):
            # An integer tag of a numeric quantity (e.g. a limit in whole watts).
            return Sample(sample.tag, round(scaled), sample.quality, sample.source_time, now)
        if scaled == value:
            return sample
        return Sample(sample.tag, scaled, sample.quality, sample.source_time, now)

    def _connector_seen(self, station: StationState, connector_id: int) -> None:
        """A connector reported its status: learn the limits in force once per connection."""
        session = self._sessions.get(station.config.id)
        if session is None or session.state is not station:
            return
        wanted = [c for c in dict.fromkeys((0, connector_id)) if c not in session.limits_asked]
        if not wanted:
            return
        session.limits_asked.update(wanted)
        task = asyncio.get_running_loop().create_task(
            self._learn_limits(session, station, wanted),
            name=f"{self._device} limits of {station.config.id}",
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _learn_limits(
        self, session: CentralSystemPoint, station: StationState, connectors: list[int]
    ) -> None:
        """Ask the charge point the limit in force on ``connectors`` (its composite schedule)."""
        for connector in connectors:
            address = OcppAddress(station.config.id, connector, Quantity.LIMIT_W)
            where = f"{self._device}: charge point {address.charge_point}: limit of {connector}"
            try:
                limit = await self._read_limit(session, address, where)
            except NotConnectedError:
                return  # gone: its next connection asks again
            except DriverError as err:
                # E.g. a charge point without smart charging: the limit stays unknown (Bad).
                self._problem("limit", str(err))
                continue
            if self._sessions.get(station.config.id) is not session:
                return  # the point reconnected meanwhile: its new connection asks again
            station.set_limit(connector, limit, self._clock.now())
            self._station_changed(station)

    def _station_changed(self, station: StationState) -> None:
        for subscription in self._subscriptions:
            self._push(subscription, only=station.config.id)
        # Wake writes waiting for their readback (the condition's lock is free on the loop's
        # thread whenever this runs between awaits).
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _push(self, subscription: _Subscription, *, force: bool = False, only: str = "") -> None:
        changed: list[Sample] = []
        for point, address in subscription.points:
            if only and (address is None or address.charge_point != only):
                continue
            sample = self._sample(point, address)
            key = (sample.value, sample.quality)
            if force or subscription.last.get(point.name) != key:
                subscription.last[point.name] = key
                changed.append(sample)
        if changed or force:
            subscription.callback(changed)

    async def _watch(self) -> None:
        """Mark silent charge points Bad and send keep-alives to subscribers."""
        next_keepalive: dict[int, float] = {}
        while True:
            wall = time.monotonic()
            for station in self._stations.values():
                limit = station.heartbeat_s * self._config.silence_factor
                if station.connected and not station.silent and wall - station.last_heard > limit:
                    station.silent = True
                    self._problem(
                        "silent",
                        f"{self._device}: charge point {station.config.id} silent for "
                        f"{wall - station.last_heard:.0f} s",
                    )
                    self._station_changed(station)
            for subscription in self._subscriptions:
                due = next_keepalive.get(id(subscription), 0.0)
                if wall >= due:
                    next_keepalive[id(subscription)] = wall + subscription.interval_s
                    subscription.callback([])
            await asyncio.sleep(min(0.25, self._config.heartbeat_interval_s / 4))

    def _problem(self, kind: str, message: str) -> None:
        """Count a charge point's misbehaviour; log each kind once per charge point (a point
        repeating a fault is counted, not logged again)."""
        self._health.count_error(kind, message)
        who = _WHO.search(message)
        key = (kind, who.group(1) if who else message)
        # Bounded: a flood of made-up charge point ids must not grow memory or the log.
        if key not in self._logged_problems and len(self._logged_problems) < MAX_LOGGED_PROBLEMS:
            self._logged_problems.add(key)
            _log.warning("%s", message)


_WHO = re.compile(r"charg(?:e point|ing station) ([^\s:]+):")
"""The charge point a problem's message names (``charge point ev_16: ...``)."""


def _address(point: TagDef) -> OcppAddress | None:
    try:
        return parse_address(point.address)
    except AddressError:
        return None


def _charge_point_id(path: str) -> str:
    """The charge point identity: the last segment of the URL path (query dropped)."""
    segment = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return urllib.parse.unquote(segment)


def _basic_credentials(header: str | None) -> tuple[str, str]:
    """User and password of an HTTP Basic Authorization header ('' when absent or malformed)."""
    if not header or not header.startswith("Basic "):
        return "", ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def _unauthorised(connection: ServerConnection) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, "charge point not authorised\n")
    response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
    return response
