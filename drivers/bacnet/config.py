"""Connection settings of one BACnet/IP device."""

from __future__ import annotations

from dataclasses import dataclass

BACNET_IP_PORT = 47808
"""The registered BACnet/IP UDP port, 0xBAC0 (ASHRAE 135-2020, Annex J.1)."""

MAX_APDU_BACNET_IP = 1476
"""Largest APDU on BACnet/IP (ASHRAE 135-2020, 6.2.4 / Annex J)."""

MIN_APDU = 50
"""Smallest max-APDU-length-accepted a device may declare (ASHRAE 135-2020, 20.1.2.5)."""

MAX_INSTANCE = 0x3FFFFE


@dataclass(frozen=True, slots=True)
class BacnetDeviceConfig:
    """Where a BACnet/IP device is and how to talk to it.

    The device is reached at its direct address ``host:port`` (no Who-Is broadcast), so it
    works across routed networks and on loopback. ``local_host:local_port`` is where the
    driver's own BACnet/IP port binds (port 0: any free port; each driver has its own).

    A request that gets no answer is sent again ``retries`` times, each waiting
    ``apdu_timeout_s`` (ASHRAE 135 5.4.5.1), so a dead device fails after
    ``apdu_timeout_s * (retries + 1)``. ``max_apdu`` caps the size of ReadPropertyMultiple
    answers the driver asks for; the device's own max-APDU-length-accepted, read at connect,
    lowers it further.

    With ``cov`` the driver subscribes to change-of-value notifications (SubscribeCOV,
    clause 13.14) with ``cov_lifetime_s`` and renews each subscription at 80 % of it; objects
    that refuse COV are polled every ``interval_s`` of the subscription instead. Without
    ``cov``, subscribing is refused and the scan engine polls.

    ``bbmd_host``/``bbmd_port`` name a BBMD to register with as a foreign device (Annex J.5)
    for devices behind a BACnet router on another IP subnet; this driver version refuses the
    setting at connect (direct addressing only), it is accepted so site files can carry it.
    """

    host: str
    device_instance: int
    port: int = BACNET_IP_PORT
    local_host: str = "0.0.0.0"
    local_port: int = 0
    local_device_instance: int = MAX_INSTANCE
    apdu_timeout_s: float = 1.0
    retries: int = 1
    max_apdu: int = MAX_APDU_BACNET_IP
    cov: bool = True
    cov_lifetime_s: int = 300
    cov_confirmed: bool = False
    bbmd_host: str | None = None
    bbmd_port: int = BACNET_IP_PORT
    bbmd_ttl_s: int = 300

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("BACnet device host must not be empty")
        for name, port in (("port", self.port), ("bbmd_port", self.bbmd_port)):
            if not 1 <= port <= 0xFFFF:
                raise ValueError(f"BACnet {name} {port} outside 1..65535")
        if not 0 <= self.local_port <= 0xFFFF:
            raise ValueError(f"BACnet local port {self.local_port} outside 0..65535")
        for name, instance in (
            ("device instance", self.device_instance),
            ("local device instance", self.local_device_instance),
        ):
            if not 0 <= instance <= MAX_INSTANCE:
                raise ValueError(f"BACnet {name} {instance} outside 0..{MAX_INSTANCE}")
        if not self.apdu_timeout_s > 0:
            raise ValueError(f"BACnet APDU timeout must be positive, got {self.apdu_timeout_s}")
        if self.retries < 0:
            raise ValueError(f"BACnet retries must not be negative, got {self.retries}")
        if not MIN_APDU <= self.max_apdu <= MAX_APDU_BACNET_IP:
            raise ValueError(
                f"BACnet max APDU {self.max_apdu} outside {MIN_APDU}..{MAX_APDU_BACNET_IP}"
            )
        if self.cov_lifetime_s < 1:
            raise ValueError(f"COV lifetime must be at least 1 s, got {self.cov_lifetime_s}")
        if self.bbmd_ttl_s < 1:
            raise ValueError(f"BBMD registration TTL must be at least 1 s, got {self.bbmd_ttl_s}")

    @property
    def no_answer_after_s(self) -> float:
        """How long a request to a silent device takes to fail."""
        return self.apdu_timeout_s * (self.retries + 1)
