"""Connection and encoding settings of one Modbus TCP device."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.modbus.codec import ByteOrder, WordOrder
from drivers.modbus.planner import MAX_READ_BITS, MAX_READ_REGISTERS

MODBUS_TCP_PORT = 502
"""The registered Modbus TCP port (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 4.1)."""


@dataclass(frozen=True, slots=True)
class ModbusDeviceConfig:
    """Where a Modbus TCP device is and how to talk to it.

    ``host:port`` is the endpoint: a device, or a gateway serving several unit ids (each its own
    ``ModbusDriver`` sharing one ``ModbusConnection``). ``timeout_s`` bounds each request
    (pymodbus retries ``retries`` more times). ``word_order``/``byte_order`` select ABCD, CDAB,
    BADC or DCBA (see ``drivers.modbus.codec``). ``max_gap`` is how many unused entries a read
    may span to merge two points; ``max_registers``/``max_bits`` lower the protocol's
    per-request limits for devices that accept less. ``min_request_gap_s`` spaces requests to
    the endpoint for slow gateways; ``reconnect_delay_max_s`` caps the delay between connection
    attempts. ``multiple_writes_only`` makes single writes use FC15/FC16 instead of FC5/FC6 for
    devices that implement only the "multiple" function codes.
    """

    host: str
    port: int = MODBUS_TCP_PORT
    unit_id: int = 1
    timeout_s: float = 1.0
    retries: int = 0
    word_order: WordOrder = "big"
    byte_order: ByteOrder = "big"
    max_gap: int = 8
    max_registers: int = MAX_READ_REGISTERS
    max_bits: int = MAX_READ_BITS
    min_request_gap_s: float = 0.0
    reconnect_delay_max_s: float = 5.0
    multiple_writes_only: bool = False

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
        if self.byte_order not in ("big", "little"):
            raise ValueError(
                f"Modbus byte order must be 'big' or 'little', got {self.byte_order!r}"
            )
        if self.max_gap < 0:
            raise ValueError(f"Modbus max_gap must not be negative, got {self.max_gap}")
        if not 4 <= self.max_registers <= MAX_READ_REGISTERS:
            # Four registers is the widest value (float64): every point must fit one request.
            raise ValueError(
                f"Modbus max_registers must be 4..{MAX_READ_REGISTERS}, got {self.max_registers}"
            )
        if not 1 <= self.max_bits <= MAX_READ_BITS:
            raise ValueError(f"Modbus max_bits must be 1..{MAX_READ_BITS}, got {self.max_bits}")
        if self.min_request_gap_s < 0:
            raise ValueError(
                f"Modbus min_request_gap_s must not be negative, got {self.min_request_gap_s}"
            )
        if not self.reconnect_delay_max_s > 0:
            raise ValueError(
                f"Modbus reconnect_delay_max_s must be positive, got {self.reconnect_delay_max_s}"
            )

    @property
    def endpoint(self) -> tuple[str, int]:
        """The ``(host, port)`` the device (or its gateway) listens on."""
        return (self.host, self.port)
