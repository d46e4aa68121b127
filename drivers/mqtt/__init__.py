"""MQTT driver: JSON uplinks and Sparkplug B over one broker connection, quality by age."""

from drivers.mqtt.address import (
    JsonAddress,
    MqttAddress,
    SparkplugAddress,
    parse_address,
    validate_address,
)
from drivers.mqtt.config import MqttDeviceConfig
from drivers.mqtt.driver import MqttDiagnostics, MqttDriver

__all__ = [
    "JsonAddress",
    "MqttAddress",
    "MqttDeviceConfig",
    "MqttDiagnostics",
    "MqttDriver",
    "SparkplugAddress",
    "parse_address",
    "validate_address",
]
