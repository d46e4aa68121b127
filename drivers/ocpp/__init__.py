"""OCPP driver: the center as the central system (OCPP 1.6J and 2.0.1) for charge points."""

from drivers.ocpp.address import OcppAddress, Quantity, parse_address, validate_address
from drivers.ocpp.config import ChargePointConfig, OcppCentralSystemConfig
from drivers.ocpp.driver import OcppDriver

__all__ = [
    "ChargePointConfig",
    "OcppAddress",
    "OcppCentralSystemConfig",
    "OcppDriver",
    "Quantity",
    "parse_address",
    "validate_address",
]
