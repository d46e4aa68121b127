"""BACnet/IP driver: ReadPropertyMultiple reads, prioritised writes, COV subscriptions."""

from drivers.bacnet.address import BacnetAddress, ObjectType, parse_address, validate_address
from drivers.bacnet.config import BacnetDeviceConfig
from drivers.bacnet.driver import BacnetDriver, BacnetErrorResponse, DeviceIdentityError

__all__ = [
    "BacnetAddress",
    "BacnetDeviceConfig",
    "BacnetDriver",
    "BacnetErrorResponse",
    "DeviceIdentityError",
    "ObjectType",
    "parse_address",
    "validate_address",
]
