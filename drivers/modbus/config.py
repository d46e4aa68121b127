"""Connection settings of one Modbus TCP device."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.modbus.codec import WordOrder

MODBUS_TCP_PORT = 502
"""The registered Modbus TCP port (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 4.1)."""


@dataclass(frozen=True, slots=True)
class ModbusDeviceConfig:
    """Where a Modbus TCP device is and how to talk to it."""

    host: str
    port: int = MODBUS_TCP_PORT
    unit_id: int = 1
    timeout_s: float = 1.0
    retries: int = 0
    word_order: WordOrder = "big"
    max_gap: int = 8

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("Modbus device host must not be empty")
        if not 1 <= self.port <= 0xFFFF:
            raise ValueError(f"Modbus device port {self.port} outside 1..65535")
        # The MBAP unit identifier is one byte (Messaging on TCP/IP guide, 3.1.3).
        if not 0 <= self.unit_id <= 0xFF:
            raise ValueError(f"Modbus unit id {self.unit_id} outside 0..255")
        if not self.timeout_s > 0:
            raise ValueError(f"Modbus timeout must be positive, got {self.timeout_s}")
        if self.retries < 0:
            raise ValueError(f"Modbus retries must not be negative, got {self.retries}")
        if self.word_order not in ("big", "little"):
            raise ValueError(
                f"Modbus word order must be 'big' or 'little', got {self.word_order!r}"
            )
        if self.max_gap < 0:
            raise ValueError(f"Modbus max_gap must not be negative, got {self.max_gap}")
