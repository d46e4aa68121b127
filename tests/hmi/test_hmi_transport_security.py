"""HTTPS with a self-made certificate, the Host check and the response headers, over sockets."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import dash
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlcenter.ports import EventJournal, HistoryReader, LiveView, LoginSessions
from hmi.app import HmiSecurity, create_hmi
from hmi.server import HmiServer, HmiServerError, TlsFiles
from tests.hmi.conftest import SECRET_KEY, hmi_context
from tests.hmi.http_support import layout_status, log_in, send


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / "hmi.crt", directory / "hmi.key")
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.private_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return self_signed(tmp_path)


@pytest.fixture
def tls_server(
    live_view: LiveView,
    history: HistoryReader,
    login_sessions: LoginSessions,
    journal: EventJournal,
    tls_files: TlsFiles,
) -> Iterator[HmiServer]:
    app: dash.Dash = create_hmi(
        hmi_context(live_view, history, journal),
        login_sessions,
        secret_key=SECRET_KEY,
        security=HmiSecurity(tls=True),
    )
    server = HmiServer(app, port=0, tls=tls_files)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_https_login_sets_a_secure_host_only_cookie_and_hsts(
    tls_server: HmiServer, tls_files: TlsFiles, operator_credentials: tuple[str, str]
) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.certificate))
    url = tls_server.url
    assert url.startswith("https://127.0.0.1:")

    reply = log_in(url, *operator_credentials, context=context)

    assert reply.status == 302
    cookie_header = reply.headers["Set-Cookie"]
    assert cookie_header.startswith("__Host-controlcenter_session=")
    attributes = {part.strip().split("=")[0] for part in cookie_header.split(";")[1:]}
    assert {"Secure", "HttpOnly", "SameSite", "Path"} <= attributes
    assert "SameSite=Lax" in cookie_header
    assert "Domain" not in attributes
    assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert layout_status(url, reply.cookie(), context=context) == 200


def test_https_port_speaks_no_plain_http(tls_server: HmiServer) -> None:
    plain = tls_server.url.replace("https://", "http://")
    with pytest.raises((ConnectionError, OSError)):
        reply = send(plain, "GET", "/login")
        assert reply.status >= 400  # a TLS alert is not an HTTP answer either


def test_plain_http_sends_no_hsts_and_no_secure_cookie(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    reply = log_in(hmi_server.url, *operator_credentials)

    assert reply.status == 302
    assert "Strict-Transport-Security" not in reply.headers
    assert "Secure" not in reply.headers["Set-Cookie"]


@pytest.mark.parametrize("path", ["/login", "/", "/_dash-layout", "/assets/hmi.css"])
def test_a_forged_host_gets_400(hmi_server: HmiServer, path: str) -> None:
    port = hmi_server.port
    for host in (f"evil.example:{port}", "attacker.test", f"127.0.0.1.evil.example:{port}"):
        assert send(hmi_server.url, "GET", path, headers={"Host": host}).status == 400, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert send(hmi_server.url, "GET", "/login", headers={"Host": host}).status == 200, host


def test_a_forged_host_cannot_log_in(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    name, password = operator_credentials
    reply = send(
        hmi_server.url,
        "POST",
        "/login",
        body=f"username={name}&password={password}".encode(),
        headers={
            "Host": "evil.example",
            "Origin": "http://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert reply.status == 400
    assert "Set-Cookie" not in reply.headers


def test_responses_name_no_server_software_and_carry_security_headers(
    hmi_server: HmiServer, operator_credentials: tuple[str, str]
) -> None:
    cookie = log_in(hmi_server.url, *operator_credentials).cookie()
    for path in ("/login", "/", "/_dash-layout", "/assets/hmi.css", "/no-such-page"):
        reply = send(hmi_server.url, "GET", path, cookie=cookie)
        assert "Server" not in reply.headers, path
        assert reply.headers["X-Content-Type-Options"] == "nosniff", path
        assert reply.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
        assert reply.headers["Referrer-Policy"] == "same-origin", path
    half = send(hmi_server.url, "HEAD", "/login")
    assert half.status == 200
    assert "Server" not in half.headers


def test_an_unusable_certificate_is_reported_at_start(hmi_app: dash.Dash, tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    files.private_key.write_text("not a key\n")
    server = HmiServer(hmi_app, port=0, tls=files)
    with pytest.raises(HmiServerError, match="TLS certificate/key"):
        server.start()
    server.stop()
