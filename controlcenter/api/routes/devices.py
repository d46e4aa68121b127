"""Devices: acquisition diagnostics of every device (the scan engine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_openapi3.openapi import OpenAPI
from pydantic import BaseModel

from controlcenter.api.app import available
from controlcenter.api.auth import require
from controlcenter.api.routes.common import blueprint, dump
from controlcenter.api.services import ApiServices
from controlcenter.permissions import Permission
from controlcenter.ports import DeviceHealthView


class DeviceInfo(BaseModel):
    """Acquisition health of one device."""

    device: str
    healthy: bool
    connected: bool
    mode: str
    scans: int
    scans_on_time: int
    on_time_pct: float
    failed_scans: int
    missed_scans: int
    last_good_scan: datetime | None
    last_error: str
    latency_mean_ms: float
    latency_p95_ms: float
    requests_per_s: float
    errors_by_kind: dict[str, int]
    abandoned_reads: int
    stale_points: int
    outages: int
    reconnects: int


class DeviceList(BaseModel):
    """Every device."""

    devices: list[DeviceInfo]


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the device endpoints."""
    bp = blueprint("devices", "Acquisition diagnostics per device")

    @bp.get("/devices", responses={200: DeviceList})
    def devices() -> dict[str, Any]:
        """Every device's scans, latency, errors, reconnects and connection."""
        require(Permission.VIEW_DIAGNOSTICS)
        view: DeviceHealthView = available(services.devices, "device diagnostics")
        return dump(
            DeviceList(
                devices=[
                    DeviceInfo(
                        device=d.device,
                        healthy=d.healthy,
                        connected=d.connected,
                        mode=d.mode.value,
                        scans=d.scans,
                        scans_on_time=d.scans_on_time,
                        on_time_pct=d.on_time_pct,
                        failed_scans=d.failed_scans,
                        missed_scans=d.missed_scans,
                        last_good_scan=d.last_good_scan,
                        last_error=d.last_error,
                        latency_mean_ms=d.latency_mean_ms,
                        latency_p95_ms=d.latency_p95_ms,
                        requests_per_s=d.requests_per_s,
                        errors_by_kind=dict(d.errors_by_kind),
                        abandoned_reads=d.abandoned_reads,
                        stale_points=d.stale_points,
                        outages=d.outages,
                        reconnects=d.reconnects,
                    )
                    for d in view.diagnostics()
                ]
            )
        )

    api.register_api(bp)
