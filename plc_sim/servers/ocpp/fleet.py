"""All simulated charge points of a city, each an OCPP client of the center's central system."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from plc_sim.charging.model import ChargePointModel
from plc_sim.servers.ocpp.client import OcppChargePointClient, OcppVersion, SimClockLike


class ChargingFleet:
    """Starts and stops one ``OcppChargePointClient`` per charge point.

    ``versions`` chooses each point's OCPP version (default: shore power and every second
    charger speak 2.0.1, the others 1.6J, so both are always represented)."""

    def __init__(
        self,
        models: Sequence[ChargePointModel],
        url: str,
        passwords: Mapping[str, str],
        clock: SimClockLike,
        *,
        versions: Mapping[str, OcppVersion] | None = None,
        meter_interval_s: float = 60.0,
    ) -> None:
        chosen = dict(versions or {})
        self.clients = [
            OcppChargePointClient(
                model,
                url,
                passwords[model.id],
                clock,
                version=chosen.get(model.id, _default_version(index, model)),
                meter_interval_s=meter_interval_s,
            )
            for index, model in enumerate(models)
        ]

    def client(self, charge_point_id: str) -> OcppChargePointClient:
        """The client of one charge point; KeyError for an unknown id."""
        for client in self.clients:
            if client.model.id == charge_point_id:
                return client
        raise KeyError(charge_point_id)

    async def start(self) -> None:
        """Connect every charge point (each reconnects on its own)."""
        for client in self.clients:
            await client.start()

    async def stop(self) -> None:
        """Disconnect every charge point."""
        await asyncio.gather(*(client.stop() for client in self.clients))


def _default_version(index: int, model: ChargePointModel) -> OcppVersion:
    if model.kind == "shore" or index % 2 == 1:
        return "2.0.1"
    return "1.6"
