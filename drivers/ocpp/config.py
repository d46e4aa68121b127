"""Settings of the central system: where it listens and which charge points it accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.ocpp.address import CHARGE_POINT_ID

_CHARGE_POINT_ID = re.compile(rf"^{CHARGE_POINT_ID}$")


@dataclass(frozen=True, slots=True)
class ChargePointConfig:
    """One charge point the central system accepts.

    ``password_env`` names the environment variable holding its Basic-auth password (OCPP
    security profile 1: the user name is the charge point's identity). ``max_power_w`` is the
    most the point can deliver: meter readings implying more are marked not accurate, and it is
    the upper bound of a charging limit."""

    id: str
    password_env: str
    max_power_w: float = 350_000.0

    def __post_init__(self) -> None:
        if not _CHARGE_POINT_ID.fullmatch(self.id):
            raise ValueError(f"charge point id {self.id!r} is not 1-48 letters, digits, . _ -")
        if not self.password_env:
            raise ValueError(f"charge point {self.id}: password_env must not be empty")
        if not self.max_power_w > 0:
            raise ValueError(f"charge point {self.id}: max_power_w must be positive")


@dataclass(frozen=True, slots=True)
class OcppCentralSystemConfig:
    """Where the central system listens and how it treats its charge points.

    ``port`` 0 takes a free port (tests). ``heartbeat_interval_s`` is handed to each charge
    point in the BootNotification answer; a connected point silent for ``silence_factor``
    heartbeats (wall seconds) has its points Bad. ``timeout_s`` bounds each call to a charge
    point and the wait for a command's readback. ``id_tag`` is the token remote starts use."""

    host: str = "127.0.0.1"
    port: int = 9000
    charge_points: tuple[ChargePointConfig, ...] = ()
    heartbeat_interval_s: int = 60
    silence_factor: float = 2.5
    timeout_s: float = 10.0
    id_tag: str = "CITY-CONTROL"

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("OCPP listen host must not be empty")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"OCPP listen port {self.port} outside 0..65535")
        if self.heartbeat_interval_s < 1:
            raise ValueError("OCPP heartbeat interval must be at least 1 s")
        if not self.silence_factor >= 1:
            raise ValueError("OCPP silence factor must be at least 1")
        if not self.timeout_s > 0:
            raise ValueError("OCPP timeout must be positive")
        if not 1 <= len(self.id_tag) <= 20:
            raise ValueError("OCPP id tag must be 1-20 characters (IdToken, CiString20)")
        ids = [point.id for point in self.charge_points]
        if len(set(ids)) != len(ids):
            raise ValueError("OCPP charge point ids must be unique")

    def charge_point(self, charge_point_id: str) -> ChargePointConfig | None:
        """The configuration of a charge point, or None for an unknown id."""
        for point in self.charge_points:
            if point.id == charge_point_id:
                return point
        return None
