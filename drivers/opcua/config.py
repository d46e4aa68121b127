"""Connection, security and subscription settings of one OPC UA server."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

OPC_TCP_SCHEME = "opc.tcp"
"""The UA TCP transport's URL scheme (Part 6, 7.2)."""

DEFAULT_MAX_ITEMS_PER_SUBSCRIPTION = 2500
"""Monitored items per subscription before a device's set is split over several.

Larger subscriptions lag in asyncua (issue 1516: 3,000 items at 1 s fine, 6,000 late)."""


class SecurityPolicy(StrEnum):
    """Security policies the driver offers (Part 7 profiles; Part 2, 6.1)."""

    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"


class SecurityMode(StrEnum):
    """Message security modes (Part 4, 7.20)."""

    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


@dataclass(frozen=True, slots=True)
class OpcUaDeviceConfig:
    """Where an OPC UA server is, how to secure the session and how to subscribe.

    ``certificate_file``/``private_key_file`` name the client's application instance
    certificate (DER or PEM) and key; without them a self-signed pair is generated into
    ``certificate_dir`` for ``application_uri``. ``trusted_server_certificates``, when given,
    pins the server: its certificate must be one of them. The password is never stored here:
    ``password_env`` names the environment variable that holds it.
    """

    endpoint: str
    security_policy: SecurityPolicy = SecurityPolicy.NONE
    security_mode: SecurityMode = SecurityMode.NONE
    certificate_file: Path | None = None
    private_key_file: Path | None = None
    certificate_dir: Path | None = None
    application_uri: str = "urn:city-controlcenter:opcua-client"
    trusted_server_certificates: tuple[Path, ...] = ()
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = 4.0
    session_timeout_s: float = 60.0
    keepalive_s: float = 3.0
    reconnect_max_delay_s: float = 3.0
    max_items_per_subscription: int = DEFAULT_MAX_ITEMS_PER_SUBSCRIPTION
    queue_size: int = 1
    deadband: float = 0.0
    publishing_interval_s: float | None = None
    max_nodes_per_read: int = 1000

    def __post_init__(self) -> None:
        url = urlparse(self.endpoint)
        if url.scheme != OPC_TCP_SCHEME or not url.hostname:
            raise ValueError(
                f"OPC UA endpoint {self.endpoint!r} is not 'opc.tcp://<host>:<port>[/path]'"
            )
        try:
            url.port  # noqa: B018 - parsing the port validates it
        except ValueError as err:
            raise ValueError(f"OPC UA endpoint {self.endpoint!r} has an invalid port") from err
        secure = self.security_policy is not SecurityPolicy.NONE
        if secure == (self.security_mode is SecurityMode.NONE):
            raise ValueError(
                f"security policy {self.security_policy} needs mode "
                f"{'Sign or SignAndEncrypt' if secure else 'None'}, not {self.security_mode}"
            )
        if (self.certificate_file is None) != (self.private_key_file is None):
            raise ValueError("certificate_file and private_key_file are given together or not")
        if secure and self.certificate_file is None and self.certificate_dir is None:
            raise ValueError(
                f"security policy {self.security_policy} needs a client certificate: "
                "give certificate_file and private_key_file, or certificate_dir to generate one"
            )
        if not self.application_uri:
            raise ValueError("application_uri must not be empty")
        if self.password_env is not None and not self.username:
            raise ValueError("password_env is set but username is not")
        durations = (
            ("timeout_s", self.timeout_s),
            ("session_timeout_s", self.session_timeout_s),
            ("keepalive_s", self.keepalive_s),
            ("reconnect_max_delay_s", self.reconnect_max_delay_s),
        )
        for name, seconds in durations:
            if not seconds > 0:
                raise ValueError(f"{name} must be positive, got {seconds}")
        if self.publishing_interval_s is not None and not self.publishing_interval_s > 0:
            raise ValueError(
                f"publishing_interval_s must be positive, got {self.publishing_interval_s}"
            )
        if self.max_items_per_subscription < 1:
            raise ValueError(
                f"max_items_per_subscription must be at least 1, got "
                f"{self.max_items_per_subscription}"
            )
        # A queue of 1 keeps only the latest value; a few more bridge short publishing stalls.
        if not 1 <= self.queue_size <= 10:
            raise ValueError(f"queue_size must be 1..10, got {self.queue_size}")
        if self.deadband < 0:
            raise ValueError(f"deadband must not be negative, got {self.deadband}")
        if self.max_nodes_per_read < 1:
            raise ValueError(
                f"max_nodes_per_read must be at least 1, got {self.max_nodes_per_read}"
            )

    @property
    def secure(self) -> bool:
        """Whether messages are signed (and possibly encrypted)."""
        return self.security_policy is not SecurityPolicy.NONE
