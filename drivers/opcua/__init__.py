"""OPC UA driver: addresses, security, sessions, sharded subscriptions and the driver."""

from drivers.opcua.address import (
    BrowseName,
    BrowsePathAddress,
    NodeAddress,
    OpcUaAddress,
    parse_address,
    validate_address,
)
from drivers.opcua.config import OpcUaDeviceConfig, SecurityMode, SecurityPolicy
from drivers.opcua.driver import OpcUaDriver, SubscriptionDiagnostics
from drivers.opcua.security import SecurityConfigurationError

__all__ = [
    "BrowseName",
    "BrowsePathAddress",
    "NodeAddress",
    "OpcUaAddress",
    "OpcUaDeviceConfig",
    "OpcUaDriver",
    "SecurityConfigurationError",
    "SecurityMode",
    "SecurityPolicy",
    "SubscriptionDiagnostics",
    "parse_address",
    "validate_address",
]
