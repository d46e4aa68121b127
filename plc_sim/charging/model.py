"""Charge points for electric vehicles and ships' shore power, with plausible sessions.

Each ``ChargePointModel`` has connectors; a connector's session is a vehicle (or a ship at
berth) plugged in. Electric cars arrive at random (more by day), plug in and either start at
once (a local RFID card) or wait for a remote start from the center (an app user) for a while
before leaving. A car's battery takes power along a taper above 80 % state of charge, limited by
the connector's rating and the charging limit the center set; it leaves at 100 % or at its
departure time. A ship at berth draws its hotel load (1-6 MW, varying) from the quay until it
sails. The meter register only ever rises.

What happens is queued as ``ChargeEvent``s for the OCPP client of the point to report, so the
model stays free of any protocol. Faults: ``silent`` (the client stops talking but keeps its
connection) and ``lying_meter`` (the register reported runs backwards and jumps).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from plc_sim.weather import WeatherState

PointKind = Literal["ev", "shore"]


class ConnectorStatus(StrEnum):
    """Connector states in OCPP 1.6 words (2.0.1 clients map them)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargeFault(StrEnum):
    """Faults a simulated charge point can be given."""

    SILENT = "silent"
    """Keeps its WebSocket open but sends and answers nothing (a hung controller)."""
    LYING_METER = "lying_meter"
    """Reports an energy register that runs backwards and jumps."""


@dataclass(frozen=True, slots=True)
class ChargeEvent:
    """Something the point's client reports: a status change, a session start or stop."""

    kind: Literal["status", "started", "stopped"]
    connector: int
    time: datetime
    status: ConnectorStatus | None = None
    meter_wh: float = 0.0
    remote: bool = False


@dataclass(slots=True)
class Session:
    """A car's battery or a ship's hotel load on a connector."""

    capacity_wh: float
    soc: float
    accept_w: float
    """The most the vehicle takes (a car's on-board charger, a ship's connection)."""
    remaining_s: float
    """Simulated seconds until the vehicle leaves."""
    ship: bool = False
    authorised: bool = False
    wait_s: float = 900.0
    """How long an unauthorised vehicle waits for a remote start before it leaves."""
    stopped: bool = False


@dataclass(slots=True)
class Connector:
    """One connector (OCPP 1.6) or EVSE (OCPP 2.0.1)."""

    id: int
    max_power_w: float
    status: ConnectorStatus = ConnectorStatus.AVAILABLE
    register_wh: float = 0.0
    power_w: float = 0.0
    session: Session | None = None
    transaction: bool = False
    meter_start_wh: float = 0.0
    limit_w: float | None = None
    """The charging limit set by the central system (None: none)."""


@dataclass
class ChargePointModel:
    """One charge point (a roadside charger, a fast-charging hub, a quay's shore-power unit)."""

    id: str
    kind: PointKind
    connectors: list[Connector]
    arrivals_per_hour: float = 0.5
    seed: int = 0
    vendor: str = "CitySim"
    model: str = "AC22"
    station_limit_w: float | None = None
    faults: set[ChargeFault] = field(default_factory=set)
    events: deque[ChargeEvent] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.id}:{self.seed}")
        self._now: datetime | None = None

    @property
    def max_power_w(self) -> float:
        """The point's rating: the sum of its connectors'."""
        return sum(connector.max_power_w for connector in self.connectors)

    def connector(self, connector_id: int) -> Connector:
        """A connector by id (1-based); KeyError when there is none."""
        for connector in self.connectors:
            if connector.id == connector_id:
                return connector
        raise KeyError(f"charge point {self.id} has no connector {connector_id}")

    # -- physics -------------------------------------------------------------------------------

    def step(self, dt_s: float, now: datetime, weather: WeatherState | None = None) -> None:
        """Advance ``dt_s`` simulated seconds ending at ``now``: arrivals, charging, departures."""
        self._now = now
        hour = now.hour + now.minute / 60.0
        # Day-time arrivals are three times the night's (commuters, shoppers, ferries by day).
        daylight = 0.5 + 0.5 * math.sin(math.pi * (hour - 6.0) / 12.0) if 6 <= hour <= 18 else 0.0
        rate = self.arrivals_per_hour * (0.25 + 0.75 * daylight) * dt_s / 3600.0
        for connector in self.connectors:
            session = connector.session
            if session is None:
                if connector.status is ConnectorStatus.AVAILABLE and self._rng.random() < rate:
                    self.plug_in(connector.id, authorise=self._rng.random() < 0.7)
                continue
            session.remaining_s -= dt_s
            if not connector.transaction:
                if session.stopped or session.remaining_s <= 0:
                    self._leave(connector)
                    continue
                session.wait_s -= dt_s
                if session.authorised:
                    self._start(connector, remote=False)
                elif session.wait_s <= 0:
                    self._leave(connector)
                continue
            power = self._power(connector, session)
            energy = power * dt_s / 3600.0
            connector.register_wh += energy
            connector.power_w = power
            if not session.ship:
                session.soc = min(1.0, session.soc + energy / session.capacity_wh)
            status = ConnectorStatus.CHARGING if power > 0 else ConnectorStatus.SUSPENDED_EV
            self._set_status(connector, status)
            if session.remaining_s <= 0 or (not session.ship and session.soc >= 0.999):
                self._stop(connector, remote=False)

    def _power(self, connector: Connector, session: Session) -> float:
        limit = min(connector.max_power_w, session.accept_w)
        if connector.limit_w is not None:
            limit = min(limit, connector.limit_w)
        if self.station_limit_w is not None:
            limit = min(limit, self.station_limit_w / max(1, self._charging_count()))
        if session.ship:
            # Hotel load: lighting, galley, air conditioning; slow swings around its mean.
            demand = session.accept_w * (0.75 + 0.15 * self._rng.random())
            return max(0.0, min(limit, demand))
        # Constant power to 80 %, then a linear taper to 5 % of it at full (CC/CV charging).
        taper = 1.0 if session.soc < 0.8 else max(0.05, (1.0 - session.soc) / 0.2)
        return max(0.0, limit * taper)

    def _charging_count(self) -> int:
        return sum(1 for connector in self.connectors if connector.transaction)

    # -- what happens at the point -------------------------------------------------------------

    def plug_in(self, connector_id: int, *, authorise: bool, soc: float | None = None) -> None:
        """A vehicle (or ship) connects; ``authorise`` as if a card was shown at once."""
        connector = self.connector(connector_id)
        if connector.session is not None:
            return
        if self.kind == "shore":
            load = self._rng.uniform(1.0e6, min(6.0e6, connector.max_power_w))
            hours = self._rng.uniform(6.0, 14.0)
            connector.session = Session(
                capacity_wh=math.inf,
                soc=0.0,
                accept_w=load,
                remaining_s=hours * 3600,
                ship=True,
                authorised=authorise,
                wait_s=3600.0,
            )
        else:
            capacity = self._rng.choice((40e3, 60e3, 77e3, 100e3))
            accept = self._rng.choice((7.4e3, 11e3, 22e3, 150e3, 250e3))
            connector.session = Session(
                capacity_wh=capacity,
                soc=self._rng.uniform(0.1, 0.6) if soc is None else soc,
                accept_w=accept,
                remaining_s=self._rng.uniform(0.5, 8.0) * 3600,
                authorised=authorise,
            )
        self._set_status(connector, ConnectorStatus.PREPARING)
        if authorise:
            self._start(connector, remote=False)

    def remote_start(self, connector_id: int) -> bool:
        """The central system asks to start; True when accepted (a vehicle waits, idle)."""
        try:
            connector = self.connector(connector_id)
        except KeyError:
            return False
        session = connector.session
        if session is None or connector.transaction or connector.status is ConnectorStatus.FAULTED:
            return False
        session.authorised = True
        self._start(connector, remote=True)
        return True

    def remote_stop(self, connector_id: int) -> bool:
        """The central system asks to stop; True when a transaction was running."""
        try:
            connector = self.connector(connector_id)
        except KeyError:
            return False
        if not connector.transaction:
            return False
        self._stop(connector, remote=True)
        return True

    def set_limit(self, connector_id: int, limit_w: float) -> bool:
        """A charging profile: connector 0 limits the whole point; False when refused."""
        if not 0 <= limit_w <= self.max_power_w:
            return False
        if connector_id == 0:
            self.station_limit_w = limit_w
            return True
        try:
            connector = self.connector(connector_id)
        except KeyError:
            return False
        if limit_w > connector.max_power_w:
            return False
        connector.limit_w = limit_w
        return True

    def composite_limit(self, connector_id: int) -> float | None:
        """The limit in force on a connector (0: the point), None for an unknown connector."""
        if connector_id == 0:
            return self.station_limit_w if self.station_limit_w is not None else self.max_power_w
        try:
            connector = self.connector(connector_id)
        except KeyError:
            return None
        limits = [connector.max_power_w]
        if connector.limit_w is not None:
            limits.append(connector.limit_w)
        if self.station_limit_w is not None:
            limits.append(self.station_limit_w)
        return min(limits)

    def reported_register(self, connector: Connector) -> float:
        """The register the meter reports: the true one, unless the meter lies."""
        if ChargeFault.LYING_METER in self.faults:
            # Runs backwards, then jumps by a megawatt-hour: neither can be physical.
            return (
                max(0.0, connector.register_wh - 5_000.0)
                if self._rng.random() < 0.5
                else (connector.register_wh + 1.0e6)
            )
        return connector.register_wh

    def _start(self, connector: Connector, *, remote: bool) -> None:
        connector.transaction = True
        connector.meter_start_wh = connector.register_wh
        self.events.append(
            ChargeEvent(
                "started", connector.id, self._time(), meter_wh=connector.register_wh, remote=remote
            )
        )
        self._set_status(connector, ConnectorStatus.CHARGING)

    def _stop(self, connector: Connector, *, remote: bool) -> None:
        connector.transaction = False
        connector.power_w = 0.0
        if connector.session is not None:
            connector.session.stopped = True
        self.events.append(
            ChargeEvent(
                "stopped", connector.id, self._time(), meter_wh=connector.register_wh, remote=remote
            )
        )
        self._set_status(connector, ConnectorStatus.FINISHING)

    def _leave(self, connector: Connector) -> None:
        connector.session = None
        connector.power_w = 0.0
        self._set_status(connector, ConnectorStatus.AVAILABLE)

    def _set_status(self, connector: Connector, status: ConnectorStatus) -> None:
        if connector.status is not status:
            connector.status = status
            self.events.append(ChargeEvent("status", connector.id, self._time(), status=status))

    def _time(self) -> datetime:
        return datetime.now(UTC) if self._now is None else self._now


def ev_charger(
    charge_point_id: str, *, connectors: int = 2, power_w: float = 22_000.0, seed: int = 0
) -> ChargePointModel:
    """A roadside or car-park charger (AC 11/22 kW or DC 50-350 kW per connector)."""
    return ChargePointModel(
        id=charge_point_id,
        kind="ev",
        connectors=[Connector(number, power_w) for number in range(1, connectors + 1)],
        arrivals_per_hour=0.6,
        seed=seed,
        model="DC" + str(int(power_w / 1000)) if power_w > 22_000 else "AC22",
    )


def shore_power(charge_point_id: str, *, power_w: float = 7.5e6, seed: int = 0) -> ChargePointModel:
    """A quay's shore-power unit (IEC/IEEE 80005-1 high-voltage connection, one ship at a time)."""
    return ChargePointModel(
        id=charge_point_id,
        kind="shore",
        connectors=[Connector(1, power_w)],
        arrivals_per_hour=0.05,
        seed=seed,
        vendor="CityPort",
        model="HVSC-11kV",
    )


class ChargingDomain:
    """The city's charge points as one domain model (``plc_sim.domain.DomainModel``).

    The points have no ``SimDevice``: they are OCPP clients (``plc_sim.servers.ocpp``), so
    ``devices`` is empty and their point list is ``plc_sim.charging.points``."""

    def __init__(self, points: list[ChargePointModel]) -> None:
        self.points = points

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance every charge point."""
        for point in self.points:
            point.step(dt_s, now, weather)

    def devices(self) -> tuple[()]:
        """No protocol-server devices: the charge points connect to the center themselves."""
        return ()
