"""Connection, topic and report-interval settings of one MQTT broker connection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MQTT_TOPIC_MAX_BYTES = 65535
"""A topic is a UTF-8 string of at most 65,535 bytes (MQTT 3.1.1, 1.5.3)."""


@dataclass(frozen=True, slots=True)
class MqttDeviceConfig:
    """Where the broker is, who the center is on it and how often its sensors report.

    A device of the site is one broker connection; every point it carries is a topic (JSON
    uplinks) or a Sparkplug B metric on that broker. ``topic_prefix`` is put in front of every
    topic of the device's addresses (and of the Sparkplug namespace), so one broker can carry
    several sites or test runs side by side. ``report_interval_s`` is how often a JSON sensor
    reports, in seconds of the center's clock: a point is Uncertain once a report is missed and
    Bad after three. The password is never stored here: ``password_env`` names the environment
    variable that holds it.
    """

    host: str
    port: int = 1883
    client_id: str = ""
    """The MQTT client identifier; empty: the broker's client id is made from the device name."""
    topic_prefix: str = ""
    username: str | None = None
    password_env: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    """Certificate authorities to verify the broker with (TLS); None: the system's."""
    report_interval_s: float = 600.0
    timestamp_pointer: str | None = None
    """RFC 6901 pointer to each JSON uplink's own time (ISO 8601 or seconds/ms since 1970):
    that time is the samples' source time; without it (or when it is missing) the arrival
    time is."""
    keepalive_s: int = 30
    timeout_s: float = 3.0
    """How long connecting, subscribing and publishing may take."""
    write_timeout_s: float = 10.0
    """How long a downlink waits for the uplink that confirms it (wall seconds)."""
    reconnect_max_delay_s: float = 5.0
    max_payload_bytes: int = 256 * 1024
    """Larger uplinks are refused unread (their points Bad): a sensor never sends that much."""
    max_clock_skew_s: float = 60.0
    """A payload time further ahead of the center's clock than this is not believed."""
    qos: int = 1

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT broker host must not be empty")
        if not 0 < self.port <= 65535:
            raise ValueError(f"MQTT broker port must be 1..65535, got {self.port}")
        if self.password_env is not None and not self.username:
            raise ValueError("password_env is set but username is not")
        if any(char in self.topic_prefix for char in "+#\0"):
            raise ValueError(f"topic prefix {self.topic_prefix!r} must not contain + # or NUL")
        if len(self.client_id.encode()) > MQTT_TOPIC_MAX_BYTES:
            raise ValueError("client id is too long")
        durations = (
            ("report_interval_s", self.report_interval_s),
            ("timeout_s", self.timeout_s),
            ("write_timeout_s", self.write_timeout_s),
            ("reconnect_max_delay_s", self.reconnect_max_delay_s),
            ("max_clock_skew_s", self.max_clock_skew_s),
        )
        for name, seconds in durations:
            if not seconds > 0:
                raise ValueError(f"{name} must be positive, got {seconds}")
        if not 5 <= self.keepalive_s <= 65535:
            raise ValueError(f"keepalive_s must be 5..65535, got {self.keepalive_s}")
        if self.max_payload_bytes < 64:
            raise ValueError(f"max_payload_bytes must be at least 64, got {self.max_payload_bytes}")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos}")
        if self.timestamp_pointer is not None and not (
            self.timestamp_pointer == "" or self.timestamp_pointer.startswith("/")
        ):
            raise ValueError(f"timestamp pointer {self.timestamp_pointer!r} must start with '/'")

    def topic(self, relative: str) -> str:
        """The full topic of a topic named relative to the device's prefix."""
        if not self.topic_prefix:
            return relative
        return f"{self.topic_prefix.rstrip('/')}/{relative}"
