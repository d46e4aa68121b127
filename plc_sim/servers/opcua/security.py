"""Security of a simulated OPC UA device: policies, users and a self-signed certificate.

Security policies are named as OPC UA Part 7 names them (the fragment of the policy URI) with
the message security mode (Part 4 7.20) appended: ``Basic256Sha256_SignAndEncrypt``,
``Aes256_Sha256_RsaPss_Sign``… A secure-only server offers no ``None`` endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
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

_log = logging.getLogger(__name__)

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
    trust_dir: Path | None = None
    """Directory of trusted client certificates (DER or PEM files): a session is created only
    for a client whose channel certificate is one of them. None: any client certificate."""

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


class ClientTrustList:
    """The client certificates a server trusts: the files of one directory (DER or PEM).

    The directory is read again when it changes, so a certificate dropped in (or removed) is
    trusted (or refused) from the next session on, without a restart.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._fingerprints: frozenset[bytes] = frozenset()

    def trusts(self, certificate_der: bytes) -> bool:
        """Whether this certificate (DER, as a secure channel carries it) is in the list."""
        if not certificate_der:
            return False
        digest = hashlib.sha256(certificate_der).digest()
        return digest in self._current()

    def _current(self) -> frozenset[bytes]:
        try:
            files = sorted(p for p in self._directory.iterdir() if p.is_file())
            stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        except OSError as err:
            _log.warning("OPC UA trust list %s is unreadable: %s", self._directory, err)
            return frozenset()
        if stamp != self._stamp:
            self._stamp = stamp
            self._fingerprints = frozenset(
                digest for digest in map(_certificate_fingerprint, files) if digest is not None
            )
        return self._fingerprints


def _certificate_fingerprint(path: Path) -> bytes | None:
    """SHA-256 of a certificate file's DER form; None (logged) for a file that is none."""
    try:
        data = path.read_bytes()
        certificate = (
            x509.load_pem_x509_certificate(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_certificate(data)
        )
    except (OSError, ValueError) as err:
        _log.warning("OPC UA trust list: %s is no certificate (%s)", path, err)
        return None
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()


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
        if self._require_secure_channel and not certificate:
            # The peer certificate is only there on a signed channel: asyncua hands an empty
            # one (b"") on an unsecured channel, which refuses the session here as well as in
            # the server's processor (``read_path.FastReadProcessor``).
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


CITY_APPLICATION_URI = "urn:smartcity:plc_sim:city"
"""The ApplicationUri in the certificate every OPC UA device of a secured city shares."""


def city_server_security(
    pki_dir: Path,
    *,
    policies: tuple[str, ...],
    trust_dir: Path,
    users: Mapping[str, str],
    host: str = "127.0.0.1",
) -> OpcUaServerSecurity:
    """Security for every OPC UA device of a city: secure-only, the given policies, the
    clients whose certificates are in ``trust_dir``, and ``users`` (anonymous when none).

    The devices share one certificate, ``server_cert.der`` with ``server_key.pem`` in
    ``pki_dir``, made self-signed there on first use; a client trusts that file.
    """
    certificate, private_key = pki_dir / "server_cert.der", pki_dir / "server_key.pem"
    if not (certificate.is_file() and private_key.is_file()):
        certificate, private_key = make_self_signed_certificate(
            pki_dir, CITY_APPLICATION_URI, host=host
        )
    if not trust_dir.is_dir():
        raise ValueError(f"the OPC UA trust directory {trust_dir} does not exist")
    return OpcUaServerSecurity(
        certificate=certificate,
        private_key=private_key,
        policies=policies,
        users=dict(users),
        allow_anonymous=not users,
        trust_dir=trust_dir,
    )


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
