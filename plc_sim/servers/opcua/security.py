"""Security of a simulated OPC UA device: policies, users and a self-signed certificate.

Security policies are named as OPC UA Part 7 names them (the fragment of the policy URI) with
the message security mode (Part 4 7.20) appended: ``Basic256Sha256_SignAndEncrypt``,
``Aes256_Sha256_RsaPss_Sign``… A secure-only server offers no ``None`` endpoint.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

if TYPE_CHECKING:
    from asyncua.server.internal_server import InternalServer

SECURITY_POLICIES: dict[str, ua.SecurityPolicyType] = {
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "Aes128_Sha256_RsaOaep_Sign": ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    "Aes128_Sha256_RsaOaep_SignAndEncrypt": (
        ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt
    ),
    "Aes256_Sha256_RsaPss_Sign": ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    "Aes256_Sha256_RsaPss_SignAndEncrypt": ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}
"""Policy names a simulated device accepts (the deprecated Basic128Rsa15 and Basic256 are
left out, as Part 7 deprecates them)."""

DEFAULT_POLICIES = (
    "Basic256Sha256_SignAndEncrypt",
    "Basic256Sha256_Sign",
    "Aes256_Sha256_RsaPss_SignAndEncrypt",
)


@dataclass(frozen=True, slots=True)
class OpcUaServerSecurity:
    """How a simulated device's OPC UA server is secured."""

    certificate: Path
    """The server's application instance certificate (DER or PEM)."""
    private_key: Path
    """Its private key (PEM)."""
    policies: tuple[str, ...] = DEFAULT_POLICIES
    users: Mapping[str, str] = field(default_factory=dict)
    """Username → password accepted with a UserName identity token."""
    allow_anonymous: bool = False
    secure_only: bool = True
    """Offer no ``None`` endpoint (no unsigned, unencrypted channel)."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.policies if name not in SECURITY_POLICIES]
        if unknown:
            known = ", ".join(SECURITY_POLICIES)
            raise ValueError(f"unknown OPC UA security policies {unknown}; known: {known}")
        if not self.policies and self.secure_only:
            raise ValueError("a secure-only OPC UA server needs at least one security policy")
        if not self.users and not self.allow_anonymous:
            raise ValueError("an OPC UA server without users must allow anonymous sessions")

    def policy_types(self) -> list[ua.SecurityPolicyType]:
        """The asyncua policy types to offer, ``NoSecurity`` first unless secure-only."""
        offered = [SECURITY_POLICIES[name] for name in self.policies]
        if not self.secure_only:
            offered.insert(0, ua.SecurityPolicyType.NoSecurity)
        return offered

    def identity_tokens(self) -> list[type[Any]]:
        """The user identity token types to accept (Part 4 7.36)."""
        tokens: list[type[Any]] = []
        if self.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        if self.users:
            tokens.append(ua.UserNameIdentityToken)
        return tokens


class PasswordUserManager(UserManager):
    """Asyncua user manager: anonymous (when allowed) or a known username with its password.

    ``require_secure_channel`` refuses every session whose channel is not signed.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        allow_anonymous: bool,
        require_secure_channel: bool = False,
    ) -> None:
        self._users = {name: password.encode() for name, password in users.items()}
        self._allow_anonymous = allow_anonymous
        self._require_secure_channel = require_secure_channel

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        """The session's user, or None to refuse it (asyncua answers Bad_UserAccessDenied)."""
        del iserver
        if self._require_secure_channel and certificate is None:
            # asyncua opens a None channel for discovery (GetEndpoints) even when no None
            # endpoint is offered, and would let a session run over it; the peer certificate
            # is only there on a signed channel, so its absence refuses the session.
            return None
        if username is None:
            return User(role=UserRole.User) if self._allow_anonymous else None
        expected = self._users.get(username)
        given = (password or "").encode()
        # Compare in constant time, and also when the user is unknown, so timing reveals nothing.
        matches = hmac.compare_digest(expected or b"\x00" * max(1, len(given)), given)
        if expected is None or not matches:
            return None
        return User(role=UserRole.User, name=username)


def server_application_uri(device_name: str) -> str:
    """The ApplicationUri of a device's server (its certificate must carry the same URI)."""
    return f"urn:smartcity:plc_sim:server:{device_name}"


def make_self_signed_certificate(
    directory: Path,
    application_uri: str,
    *,
    name: str = "server",
    host: str = "127.0.0.1",
    client: bool = False,
) -> tuple[Path, Path]:
    """Write a self-signed application certificate (DER) and key (PEM); returns their paths.

    Part 6 6.2.2: the certificate's subjectAltName carries the ApplicationUri and the host's
    DNS name and IP address; key usage for a server (or a client with ``client=True``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    alt_names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(application_uri),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
    ]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "plc_sim"},
        alt_names,
        extended=[usage],
        days=30,
    )
    certificate_path = directory / f"{name}_cert.der"
    key_path = directory / f"{name}_key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return certificate_path, key_path
