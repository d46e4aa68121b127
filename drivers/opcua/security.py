"""Session security: endpoint choice, server pinning, the client certificate and user identity.

OPC UA secures the channel with a security policy and a message security mode chosen from the
endpoints a server offers (Part 4, 5.4.4 GetEndpoints; 7.14 EndpointDescription). The client
proves itself with an application instance certificate whose subjectAltName carries its
application URI (Part 6, 6.2.2), and the user with a user identity token (Part 4, 7.41).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.crypto import cert_gen, security_policies, uacrypto
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from controlcenter.model import Substatus
from drivers.base import NotConnectedError
from drivers.opcua.config import OpcUaDeviceConfig, SecurityMode, SecurityPolicy


class SecurityConfigurationError(NotConnectedError):
    """The session cannot be secured as configured (policy, certificate, identity)."""

    substatus = Substatus.CONFIG_ERROR


POLICY_URIS: dict[SecurityPolicy, str] = {
    SecurityPolicy.NONE: security_policies.SecurityPolicyNone.URI,
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256.URI,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss.URI,
}
"""Policy URIs of Part 7 (http://opcfoundation.org/UA/SecurityPolicy#...)."""

_POLICY_CLASSES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}

MESSAGE_MODES: dict[SecurityMode, ua.MessageSecurityMode] = {
    SecurityMode.NONE: ua.MessageSecurityMode.None_,
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """The client's application instance certificate, its key and the URI it certifies."""

    certificate: Path
    private_key: Path
    application_uri: str


def policy_class(policy: SecurityPolicy) -> type[security_policies.SecurityPolicy]:
    """The asyncua implementation of a (secure) policy."""
    return _POLICY_CLASSES[policy]


def describe_endpoint(endpoint: ua.EndpointDescription) -> str:
    """``<policy>/<mode>`` of an endpoint, e.g. ``Basic256Sha256/SignAndEncrypt``."""
    policy = str(endpoint.SecurityPolicyUri).rpartition("#")[2] or "unknown"
    mode = {value: key for key, value in MESSAGE_MODES.items()}.get(endpoint.SecurityMode)
    return f"{policy}/{mode.value if mode is not None else endpoint.SecurityMode}"


def select_endpoint(
    endpoints: Sequence[ua.EndpointDescription], config: OpcUaDeviceConfig, where: str
) -> ua.EndpointDescription:
    """The offered endpoint matching the configured policy and mode; else a clear refusal."""
    wanted_uri = POLICY_URIS[config.security_policy]
    wanted_mode = MESSAGE_MODES[config.security_mode]
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == wanted_uri and endpoint.SecurityMode == wanted_mode:
            return endpoint
    offers = sorted({describe_endpoint(endpoint) for endpoint in endpoints})
    offered = ", ".join(offers) if offers else "no endpoint"
    raise SecurityConfigurationError(
        f"{where}: server offers only {offered}; this device is configured for "
        f"{config.security_policy}/{config.security_mode}"
    )


def first_certificate(chain: bytes) -> bytes:
    """The first DER certificate of a chain (Part 6, 6.2.6 allows a chain in one ByteString)."""
    if len(chain) < 2 or chain[0] != 0x30:
        return chain
    length_byte = chain[1]
    if length_byte < 0x80:
        return chain[: 2 + length_byte]
    count = length_byte & 0x7F
    length = int.from_bytes(chain[2 : 2 + count], "big")
    return chain[: 2 + count + length]


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate, as operators compare them (hex, colons)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


async def load_trusted_certificates(paths: Sequence[Path], where: str) -> list[bytes]:
    """The DER bytes of each trusted server certificate file (DER, or PEM by extension)."""
    trusted: list[bytes] = []
    for path in paths:
        try:
            certificate = await uacrypto.load_certificate(path)
        except (OSError, ValueError) as err:
            raise SecurityConfigurationError(
                f"{where}: cannot load trusted server certificate {path}: {err}"
            ) from err
        trusted.append(certificate.public_bytes(Encoding.DER))
    return trusted


def check_server_trusted(server_certificate: bytes, trusted: Sequence[bytes], where: str) -> None:
    """Refuse a server whose certificate is not one of the pinned ones (when any are pinned)."""
    if not trusted:
        return
    presented = first_certificate(server_certificate)
    if presented in trusted:
        return
    shown = fingerprint(presented) if presented else "none"
    raise SecurityConfigurationError(
        f"{where}: server certificate (SHA-256 {shown}) is not one of the "
        f"{len(trusted)} trusted server certificate(s); refusing to connect"
    )


async def ensure_client_certificate(config: OpcUaDeviceConfig, device: str) -> ClientCertificate:
    """Load the configured certificate, or generate a self-signed one into certificate_dir.

    The generated certificate carries ``application_uri`` and this host's name in its
    subjectAltName; it is reused while valid and regenerated when missing or expired.
    """
    where = f"{device} ({config.endpoint})"
    if config.certificate_file is not None and config.private_key_file is not None:
        certificate_path, key_path = config.certificate_file, config.private_key_file
    else:
        directory = config.certificate_dir
        if directory is None:  # guarded by OpcUaDeviceConfig
            raise SecurityConfigurationError(f"{where}: no client certificate configured")
        certificate_path = directory / f"{device}-cert.der"
        key_path = directory / f"{device}-key.pem"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            await cert_gen.setup_self_signed_certificate(
                key_path,
                certificate_path,
                config.application_uri,
                socket.gethostname(),
                [ExtendedKeyUsageOID.CLIENT_AUTH],
                {},
            )
        except OSError as err:
            raise SecurityConfigurationError(
                f"{where}: cannot generate a client certificate in {directory}: {err}"
            ) from err
    try:
        certificate = await uacrypto.load_certificate(certificate_path)
        await uacrypto.load_private_key(key_path)
    except (OSError, ValueError, TypeError) as err:
        raise SecurityConfigurationError(
            f"{where}: cannot load the client certificate {certificate_path} or key {key_path}: "
            f"{err}"
        ) from err
    uri = _application_uri(certificate)
    if uri is None:
        raise SecurityConfigurationError(
            f"{where}: client certificate {certificate_path} has no application URI in its "
            "subjectAltName (Part 6, 6.2.2)"
        )
    return ClientCertificate(certificate_path, key_path, uri)


def _application_uri(certificate: x509.Certificate) -> str | None:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def read_password(config: OpcUaDeviceConfig, where: str) -> str | None:
    """The password from the environment variable named in the config (never from the file)."""
    if config.password_env is None:
        return None
    password = os.environ.get(config.password_env)
    if password is None:
        raise SecurityConfigurationError(
            f"{where}: environment variable {config.password_env} (the password of user "
            f"{config.username!r}) is not set"
        )
    return password
