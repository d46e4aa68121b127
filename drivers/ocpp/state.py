"""What the central system knows of each charge point, and the samples it gives for an address.

Pure bookkeeping, independent of the OCPP version: the message handlers (``drivers.ocpp.handlers``)
translate BootNotification, StatusNotification, MeterValues, Start/StopTransaction (1.6) and
TransactionEvent (2.0.1) into the calls here. Meter readings are checked for plausibility: an
energy register that runs backwards, energy rising faster than the point's maximum power
allows, or a power outside 0..maximum keeps its value but is Uncertain (sensor not accurate),
with the reason, so a charge point that lies about its meter cannot pass for Good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from controlcenter.model import Quality, Sample, Substatus, Value
from drivers.ocpp.address import OcppAddress, Quantity
from drivers.ocpp.config import ChargePointConfig

PLAUSIBLE_MARGIN = 1.1
"""Readings up to 10 % above a point's maximum power pass (meter and rating tolerances)."""
ENERGY_SLACK_WH = 10.0
"""Energy steps this small are never judged for the power they imply (register rounding)."""

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER_IMPORT = "Power.Active.Import"

# OCPP 2.0.1 connector states and transaction charging states, in OCPP 1.6 words.
_V201_CHARGING_STATES = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing",
    "Idle": "Preparing",
}
_UNIT_FACTORS = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0}


@dataclass(slots=True)
class Reading:
    """A value the charge point reported, when, and how far it can be trusted."""

    value: Value
    time: datetime
    quality: Quality = field(default_factory=Quality.good)


@dataclass(frozen=True, slots=True)
class MeterReading:
    """The energy register and power of one sampled meter value (None: not in it)."""

    time: datetime
    energy_wh: float | None
    power_w: float | None


@dataclass(slots=True)
class ConnectorState:
    """What is known of one connector (OCPP 1.6) or EVSE (OCPP 2.0.1)."""

    status: Reading | None = None
    energy: Reading | None = None
    power: Reading | None = None
    session: Reading | None = None
    session_energy: Reading | None = None
    limit: Reading | None = None
    transaction_id: str | None = None
    meter_start_wh: float | None = None
    charging_state: str | None = None
    """OCPP 2.0.1: the running transaction's charging state (Charging, SuspendedEV...)."""
    connector_status: str | None = None
    """OCPP 2.0.1: the connector's own status (Available, Occupied...)."""


class StationState:
    """One configured charge point: its connection, silence and connectors."""

    def __init__(self, config: ChargePointConfig) -> None:
        self.config = config
        self.version: str | None = None
        self.connected = False
        self.silent = False
        self.last_heard = 0.0
        """Wall-clock (monotonic) time of the last message from the charge point."""
        self.refused: str | None = None
        """Why the charge point cannot be accepted at all (its password is not configured)."""
        self.heartbeat_s = 0.0
        self.connectors: dict[int, ConnectorState] = {}
        self.boot: dict[str, Any] = {}

    def connector(self, connector_id: int) -> ConnectorState:
        """The state of a connector, created on first mention."""
        return self.connectors.setdefault(connector_id, ConnectorState())

    def heard(self, wall: float) -> bool:
        """A message arrived; return True when this ends a silence."""
        self.last_heard = wall
        if self.silent:
            self.silent = False
            return True
        return False

    # -- what the charge point reports --------------------------------------------------------

    def set_status(self, connector_id: int, status: str, at: datetime) -> None:
        """A StatusNotification (OCPP 1.6 words)."""
        self.connector(connector_id).status = Reading(status, at)

    def set_status_v201(self, evse_id: int, connector_status: str, at: datetime) -> None:
        """An OCPP 2.0.1 StatusNotification: shown in OCPP 1.6 words with the transaction."""
        state = self.connector(evse_id)
        state.connector_status = connector_status
        self._derive_v201_status(evse_id, at)

    def set_charging_state(self, evse_id: int, charging_state: str | None, at: datetime) -> None:
        """An OCPP 2.0.1 transaction's charging state changed."""
        state = self.connector(evse_id)
        if charging_state is not None:
            state.charging_state = charging_state
        self._derive_v201_status(evse_id, at)

    def _derive_v201_status(self, evse_id: int, at: datetime) -> None:
        state = self.connector(evse_id)
        connector_status = state.connector_status
        if connector_status == "Occupied":
            if state.transaction_id is not None and state.charging_state is not None:
                words = _V201_CHARGING_STATES.get(state.charging_state, "Preparing")
            elif state.session is not None and state.session.value is False:
                words = "Finishing"
            else:
                words = "Preparing"
        elif connector_status is None:
            if state.transaction_id is None:
                return
            words = _V201_CHARGING_STATES.get(state.charging_state or "", "Preparing")
        else:
            words = connector_status
        state.status = Reading(words, at)

    def start_transaction(
        self, connector_id: int, transaction_id: str, meter_start_wh: float | None, at: datetime
    ) -> None:
        """A transaction started (StartTransaction, TransactionEvent Started)."""
        state = self.connector(connector_id)
        state.transaction_id = transaction_id
        state.meter_start_wh = meter_start_wh
        state.session = Reading(True, at)
        state.session_energy = Reading(0.0, at)
        if meter_start_wh is not None:
            self.meter(connector_id, MeterReading(at, meter_start_wh, None))

    def stop_transaction(
        self, transaction_id: str, meter_stop_wh: float | None, at: datetime
    ) -> int:
        """A transaction ended; return its connector (-1 for a transaction nobody knows)."""
        for connector_id, state in self.connectors.items():
            if state.transaction_id == transaction_id:
                if meter_stop_wh is not None:
                    self.meter(connector_id, MeterReading(at, meter_stop_wh, None))
                state.transaction_id = None
                state.charging_state = None
                state.session = Reading(False, at)
                if state.power is not None:
                    state.power = Reading(0.0, at)
                return connector_id
        return -1

    def connector_of(self, transaction_id: str) -> int | None:
        """The connector a running transaction is on."""
        for connector_id, state in self.connectors.items():
            if state.transaction_id == transaction_id:
                return connector_id
        return None

    def meter(self, connector_id: int, reading: MeterReading) -> None:
        """A meter reading: energy register and/or power, checked for plausibility."""
        state = self.connector(connector_id)
        maximum = self.config.max_power_w
        if reading.energy_wh is not None:
            quality = _energy_quality(state.energy, reading, maximum)
            state.energy = Reading(reading.energy_wh, reading.time, quality)
            if state.meter_start_wh is not None:
                used = reading.energy_wh - state.meter_start_wh
                state.session_energy = Reading(max(used, 0.0), reading.time, quality)
        if reading.power_w is not None:
            quality = Quality.good()
            if not 0.0 <= reading.power_w <= maximum * PLAUSIBLE_MARGIN:
                quality = Quality.uncertain(
                    Substatus.SENSOR_NOT_ACCURATE,
                    f"power {reading.power_w:.0f} W outside 0..{maximum:.0f} W of the point",
                )
            state.power = Reading(reading.power_w, reading.time, quality)

    def set_limit(self, connector_id: int, limit_w: float, at: datetime) -> None:
        """The limit the charge point's composite schedule reports."""
        self.connector(connector_id).limit = Reading(limit_w, at)

    # -- samples --------------------------------------------------------------------------------

    def sample(self, tag: str, address: OcppAddress, now: datetime, wall: float) -> Sample:
        """The sample of ``address`` now: Bad when the point is not reachable or never told."""
        cp = address.charge_point
        if self.refused is not None:
            return _bad(tag, Substatus.CONFIG_ERROR, f"charge point {cp}: {self.refused}", now)
        if address.quantity is Quantity.CONNECTED:
            return Sample(tag, self.connected and not self.silent, Quality.good(), now, now)
        if not self.connected:
            return _bad(tag, Substatus.NOT_CONNECTED, f"charge point {cp} is not connected", now)
        if self.silent:
            quiet = wall - self.last_heard
            reason = (
                f"charge point {cp} silent for {quiet:.0f} s "
                f"(heartbeat every {self.heartbeat_s:g} s)"
            )
            return _bad(tag, Substatus.COMM_FAILURE, reason, now)
        state = self.connectors.get(address.connector)
        reading = None if state is None else _reading(state, address.quantity)
        if reading is None:
            reason = (
                f"charge point {cp} has not reported {address.quantity.value} "
                f"of connector {address.connector}"
            )
            return _bad(tag, Substatus.WAITING_FOR_INITIAL_DATA, reason, now)
        return Sample(tag, reading.value, reading.quality, reading.time, now)


def _reading(state: ConnectorState, quantity: Quantity) -> Reading | None:
    if quantity is Quantity.STATUS:
        return state.status
    if quantity is Quantity.ENERGY_WH:
        return state.energy
    if quantity is Quantity.POWER_W:
        return state.power
    if quantity in (Quantity.SESSION_ACTIVE, Quantity.CHARGE):
        if state.session is None and state.status is not None:
            # A connector that reported its status and no transaction has none running.
            return Reading(False, state.status.time)
        return state.session
    if quantity is Quantity.SESSION_ENERGY_WH:
        return state.session_energy
    return state.limit


def _energy_quality(previous: Reading | None, reading: MeterReading, maximum: float) -> Quality:
    if previous is None or reading.energy_wh is None:
        return Quality.good()
    assert isinstance(previous.value, float | int)
    before = float(previous.value)
    now = reading.energy_wh
    if now < before:
        return Quality.uncertain(
            Substatus.SENSOR_NOT_ACCURATE,
            f"energy register went back from {before:.0f} Wh to {now:.0f} Wh",
        )
    elapsed_h = (reading.time - previous.time).total_seconds() / 3600.0
    rise = now - before
    if rise > ENERGY_SLACK_WH:
        implied = math.inf if elapsed_h <= 0 else rise / elapsed_h
        if implied > maximum * PLAUSIBLE_MARGIN:
            return Quality.uncertain(
                Substatus.SENSOR_NOT_ACCURATE,
                f"energy rose {rise:.0f} Wh in {elapsed_h * 3600:.0f} s, more than "
                f"{maximum:.0f} W of the point can deliver",
            )
    return Quality.good()


def _bad(tag: str, substatus: Substatus, reason: str, now: datetime) -> Sample:
    return Sample(tag, None, Quality.bad(substatus, reason), now, now)


def parse_meter_values(
    meter_values: object, fallback_time: datetime
) -> tuple[list[MeterReading], list[str]]:
    """Read the energy register and import power out of OCPP meter values (1.6 or 2.0.1,
    keys in snake case); return the readings and a problem per sampled value not understood.

    Values are strings in 1.6 and numbers in 2.0.1; units are ``Wh``/``kWh``/``W``/``kW``
    (1.6 ``unit``, 2.0.1 ``unit_of_measure`` with a power-of-ten ``multiplier``). Per-phase
    power values are summed when no total is given."""
    readings: list[MeterReading] = []
    problems: list[str] = []
    if not isinstance(meter_values, list):
        return readings, ["meter values are not a list"]
    for entry in meter_values:
        if not isinstance(entry, dict):
            problems.append("a meter value is not an object")
            continue
        at = parse_time(entry.get("timestamp"), fallback_time)
        energy: float | None = None
        power_total: float | None = None
        power_phases: list[float] = []
        sampled = entry.get("sampled_value")
        for item in sampled if isinstance(sampled, list) else []:
            if not isinstance(item, dict):
                problems.append("a sampled value is not an object")
                continue
            measurand = item.get("measurand", ENERGY_REGISTER)
            if measurand not in (ENERGY_REGISTER, POWER_IMPORT):
                continue
            number = _number(item)
            if number is None:
                problems.append(f"{measurand}: value {item.get('value')!r} is not a number")
                continue
            if measurand == ENERGY_REGISTER:
                energy = number
            elif item.get("phase") in (None, "", "N"):
                power_total = number
            else:
                power_phases.append(number)
        power = power_total if power_total is not None else (sum(power_phases) or None)
        if power is None and power_phases:
            power = 0.0
        if energy is not None or power is not None:
            readings.append(MeterReading(at, energy, power))
    return readings, problems


def _number(item: dict[str, Any]) -> float | None:
    raw = item.get("value")
    try:
        # 1.6 sends strings; 2.0.1 numbers, which the library decodes as Decimal.
        number = float(raw) if isinstance(raw, str | int | float | Decimal) else math.nan
    except (ValueError, ArithmeticError):
        return None
    if not math.isfinite(number) or isinstance(raw, bool):
        return None
    unit: object = item.get("unit")
    multiplier: object = 0
    unit_of_measure = item.get("unit_of_measure")
    if isinstance(unit_of_measure, dict):
        unit = unit_of_measure.get("unit", unit)
        multiplier = unit_of_measure.get("multiplier", 0)
    default = "Wh" if item.get("measurand", ENERGY_REGISTER) == ENERGY_REGISTER else "W"
    factor = _UNIT_FACTORS.get(unit if isinstance(unit, str) else default)
    if factor is None or isinstance(multiplier, bool) or not isinstance(multiplier, int):
        return None
    return number * factor * 10.0**multiplier


def parse_time(text: object, fallback: datetime) -> datetime:
    """An OCPP dateTime (RFC 3339, UTC ``Z``) as an aware datetime; ``fallback`` when absent
    or unreadable (the message still counts, stamped on arrival)."""
    if not isinstance(text, str):
        return fallback
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    if parsed.utcoffset() is None:
        return fallback
    return parsed
