"""Simulated charge points as OCPP 1.6J / 2.0.1 clients of the center's central system."""

from plc_sim.servers.ocpp.client import OcppChargePointClient, OcppVersion
from plc_sim.servers.ocpp.fleet import ChargingFleet

__all__ = ["ChargingFleet", "OcppChargePointClient", "OcppVersion"]
