"""The central system's side of one charge point connection, OCPP 1.6J and OCPP 2.0.1.

Each class answers the messages a charge point sends (the ``ocpp`` library validates them
against the specification's JSON schemas) and records what they say in the point's
``StationState``. Frames that are not OCPP-J at all, and actions nobody handles, are counted
and answered with a CALLERROR where the frame allows it; the library's own log lines go to
``WireLog`` (one line, no traceback: a misbehaving charge point must not flood the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ocpp.charge_point import ChargePoint as _BaseChargePoint
from ocpp.exceptions import OCPPError
from ocpp.messages import unpack
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from drivers.ocpp.state import StationState, parse_meter_values, parse_time

_log = logging.getLogger(__name__)

ACCEPTED = {"status": "Accepted"}


class Connection(Protocol):
    """The WebSocket connection the library reads and writes frames on."""

    async def recv(self) -> str | bytes:
        """Receive one frame."""
        ...

    async def send(self, message: str) -> None:
        """Send one frame."""
        ...


@dataclass(slots=True)
class StationContext:
    """What a handler needs from the driver: the time, and whom to tell about changes."""

    now: Callable[[], datetime]
    wall: Callable[[], float]
    changed: Callable[[StationState], None]
    problem: Callable[[str, str], None]
    """Count and log a misbehaviour: (kind, message)."""
    heartbeat_s: int
    next_transaction_id: Callable[[], int]
    connector_seen: Callable[[StationState, int], None]
    """A connector reported its status (the StatusNotification is answered): the driver asks
    the limits in force on it and on the whole point once per connection."""


class WireLog:
    """Takes the ``ocpp`` library's log calls: per-message lines at DEBUG, faults as one line."""

    def __init__(self, charge_point: str, problem: Callable[[str, str], None]) -> None:
        self._charge_point = charge_point
        self._problem = problem

    def info(self, message: str, *args: object) -> None:
        """Per-message traffic: debug only."""
        _log.debug("%s: " + message, self._charge_point, *args)

    def debug(self, message: str, *args: object) -> None:
        """Library debug output."""
        _log.debug("%s: " + message, self._charge_point, *args)

    def warning(self, message: str, *args: object) -> None:
        """E.g. a CALLERROR answer to the center's own call."""
        _log.debug("%s: " + message, self._charge_point, *args)

    def error(self, message: str, *args: object) -> None:
        """E.g. an answer to a call nobody made."""
        self._problem("protocol", f"charge point {self._charge_point}: " + message % args)

    def exception(self, message: str, *args: object) -> None:
        """A request the library refused (schema violation, no handler): one line."""
        self._problem("protocol", f"charge point {self._charge_point}: " + message % args)


def _call_error(unique_id: str, code: str, description: str) -> str:
    """A CALLERROR frame (OCPP-J 4.2.3)."""
    return json.dumps([4, unique_id, code, description, {}])


async def screen_frame(
    point: _BaseChargePoint, raw: str | bytes, problem: Callable[[str, str], None]
) -> bool:
    """Check a received frame before the library routes it; return False when it was handled
    here (not OCPP-J, or an action the central system does not know), answering with a
    CALLERROR where the frame has a message id."""
    where = f"charge point {point.id}"
    if isinstance(raw, bytes):
        problem("malformed", f"{where}: binary frame ({len(raw)} bytes) instead of text")
        return False
    try:
        message = unpack(raw)
    except (OCPPError, RecursionError) as err:
        # RecursionError: JSON nested deeper than the decoder goes (a hostile frame).
        problem("malformed", f"{where}: not an OCPP-J frame ({type(err).__name__}): {raw[:80]!r}")
        unique_id = _unique_id_of(raw)
        if unique_id is not None:
            await point._send(_call_error(unique_id, "FormatViolation", "not an OCPP-J frame"))
        return False
    action = getattr(message, "action", None)
    if message.message_type_id == 2 and action not in point.route_map:
        problem("unknown_action", f"{where}: unknown action {str(action)[:60]!r}")
        await point._send(
            _call_error(message.unique_id, "NotImplemented", f"{str(action)[:60]} not handled")
        )
        return False
    return True


def _unique_id_of(raw: str) -> str | None:
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], str):
        return frame[1][:36]
    return None


class CentralSystem16(ChargePoint16):
    """The central system's OCPP 1.6J handlers for one connected charge point."""

    def __init__(
        self, state: StationState, connection: Connection, context: StationContext, timeout_s: float
    ) -> None:
        super().__init__(
            state.config.id,
            connection,
            response_timeout=timeout_s,
            logger=WireLog(state.config.id, context.problem),
        )
        self.state = state
        self.context = context
        self.limits_asked: set[int] = set()
        """Connectors whose limit was asked for on this connection."""

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Screen, note that the point was heard, then route as the library does."""
        heard_again = self.state.heard(self.context.wall())
        if heard_again:
            self.context.changed(self.state)
        if await screen_frame(self, raw_msg, self.context.problem):
            await super().route_message(raw_msg)

    def _now_text(self) -> str:
        return self.context.now().isoformat().replace("+00:00", "Z")

    @on(Action16.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **extra: Any) -> Any:
        """Accept the charge point and hand it the heartbeat interval."""
        self.state.boot = {"vendor": charge_point_vendor, "model": charge_point_model, **extra}
        return result16.BootNotification(
            current_time=self._now_text(), interval=self.context.heartbeat_s, status="Accepted"
        )

    @on(Action16.heartbeat)
    def on_heartbeat(self) -> Any:
        """Answer with the central system's time."""
        return result16.Heartbeat(current_time=self._now_text())

    @on(Action16.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        """Accept every presented token: billing and token lists are not the center's job."""
        return result16.Authorize(id_tag_info=ACCEPTED)

    @on(Action16.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **extra: Any) -> Any:
        """Record a connector's status."""
        at = parse_time(extra.get("timestamp"), self.context.now())
        self.state.set_status(connector_id, status, at)
        self.context.changed(self.state)
        return result16.StatusNotification()

    @after(Action16.status_notification)
    def after_status(self, connector_id: int, **extra: Any) -> None:
        """Once answered: learn the limits in force (the point's own call completes first)."""
        self.context.connector_seen(self.state, connector_id)

    @on(Action16.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: Any, **extra: Any) -> Any:
        """Record energy and power readings."""
        readings, problems = parse_meter_values(meter_value, self.context.now())
        for problem in problems:
            self.context.problem("meter", f"charge point {self.id}: {problem}")
        for reading in readings:
            self.state.meter(connector_id, reading)
        self.context.changed(self.state)
        return result16.MeterValues()

    @on(Action16.start_transaction)
    def on_start(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **extra: Any
    ) -> Any:
        """Give the transaction its id and record that a session runs."""
        transaction_id = self.context.next_transaction_id()
        at = parse_time(timestamp, self.context.now())
        self.state.start_transaction(connector_id, str(transaction_id), float(meter_start), at)
        self.context.changed(self.state)
        return result16.StartTransaction(transaction_id=transaction_id, id_tag_info=ACCEPTED)

    @on(Action16.stop_transaction)
    def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **extra: Any) -> Any:
        """Record the end of a session and its final meter reading."""
        at = parse_time(timestamp, self.context.now())
        if self.state.stop_transaction(str(transaction_id), float(meter_stop), at) < 0:
            self.context.problem(
                "unknown_transaction", f"charge point {self.id}: transaction {transaction_id}"
            )
        self.context.changed(self.state)
        return result16.StopTransaction(id_tag_info=ACCEPTED)


class CentralSystem201(ChargePoint201):
    """The CSMS's OCPP 2.0.1 handlers for one connected charging station."""

    def __init__(
        self, state: StationState, connection: Connection, context: StationContext, timeout_s: float
    ) -> None:
        super().__init__(
            state.config.id,
            connection,
            response_timeout=timeout_s,
            logger=WireLog(state.config.id, context.problem),
        )
        self.state = state
        self.context = context
        self.limits_asked: set[int] = set()
        """EVSEs whose limit was asked for on this connection."""

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Screen, note that the station was heard, then route as the library does."""
        if self.state.heard(self.context.wall()):
            self.context.changed(self.state)
        if await screen_frame(self, raw_msg, self.context.problem):
            await super().route_message(raw_msg)

    def _now_text(self) -> str:
        return self.context.now().isoformat().replace("+00:00", "Z")

    @on(Action201.boot_notification)
    def on_boot(self, charging_station: dict[str, Any], reason: str, **extra: Any) -> Any:
        """Accept the station and hand it the heartbeat interval."""
        self.state.boot = {**charging_station, "reason": reason}
        return result201.BootNotification(
            current_time=self._now_text(), interval=self.context.heartbeat_s, status="Accepted"
        )

    @on(Action201.heartbeat)
    def on_heartbeat(self, **extra: Any) -> Any:
        """Answer with the CSMS's time."""
        return result201.Heartbeat(current_time=self._now_text())

    @on(Action201.authorize)
    def on_authorize(self, id_token: dict[str, Any], **extra: Any) -> Any:
        """Accept every presented token."""
        return result201.Authorize(id_token_info=ACCEPTED)

    @on(Action201.status_notification)
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **extra: Any
    ) -> Any:
        """Record an EVSE's connector status."""
        at = parse_time(timestamp, self.context.now())
        self.state.set_status_v201(evse_id, connector_status, at)
        self.context.changed(self.state)
        return result201.StatusNotification()

    @after(Action201.status_notification)
    def after_status(self, evse_id: int, **extra: Any) -> None:
        """Once answered: learn the limits in force on the EVSE and the station."""
        self.context.connector_seen(self.state, evse_id)

    @on(Action201.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: Any, **extra: Any) -> Any:
        """Record energy and power readings."""
        self._meter(evse_id, meter_value)
        self.context.changed(self.state)
        return result201.MeterValues()

    def _meter(self, evse_id: int, meter_value: Any) -> None:
        readings, problems = parse_meter_values(meter_value, self.context.now())
        for problem in problems:
            self.context.problem("meter", f"charging station {self.id}: {problem}")
        for reading in readings:
            self.state.meter(evse_id, reading)

    @on(Action201.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **extra: Any,
    ) -> Any:
        """Follow a transaction: Started, Updated (meter values, charging state), Ended."""
        at = parse_time(timestamp, self.context.now())
        transaction_id = str(transaction_info.get("transaction_id", ""))
        evse = extra.get("evse")
        evse_id = evse.get("id") if isinstance(evse, dict) else None
        if not isinstance(evse_id, int):
            evse_id = self.state.connector_of(transaction_id)
        meter_value = extra.get("meter_value")
        charging_state = transaction_info.get("charging_state")
        if event_type == "Ended":
            readings, _ = parse_meter_values(meter_value or [], at)
            final = [r.energy_wh for r in readings if r.energy_wh is not None]
            if self.state.stop_transaction(transaction_id, final[-1] if final else None, at) < 0:
                self.context.problem(
                    "unknown_transaction", f"charging station {self.id}: {transaction_id}"
                )
            if isinstance(evse_id, int):
                self.state.set_charging_state(evse_id, None, at)
        elif isinstance(evse_id, int):
            if event_type == "Started":
                start = _register_of(meter_value, at)
                self.state.start_transaction(evse_id, transaction_id, start, at)
            if meter_value:
                self._meter(evse_id, meter_value)
            self.state.set_charging_state(evse_id, charging_state, at)
        else:
            self.context.problem(
                "unknown_transaction", f"charging station {self.id}: {transaction_id} has no EVSE"
            )
        self.context.changed(self.state)
        return result201.TransactionEvent()


def _register_of(meter_value: Any, at: datetime) -> float | None:
    readings, _ = parse_meter_values(meter_value or [], at)
    energies = [reading.energy_wh for reading in readings if reading.energy_wh is not None]
    return energies[0] if energies else None


CentralSystemPoint = CentralSystem16 | CentralSystem201
"""A connected charge point, either version."""
