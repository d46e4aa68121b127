"""`controlcenter sim --opcua-security ...`: the simulated city's OPC UA devices secured from
the command line, tried by a real client over real channels."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from plc_sim.servers.opcua.nodes import numeric_node
from plc_sim.servers.opcua.security import make_self_signed_certificate

pytestmark = pytest.mark.timeout(90)

CLIENT_URI = "urn:test:city-client"
USER, PASSWORD = "operator", "a long pass phrase"


@dataclass(frozen=True)
class SecuredCity:
    """A `controlcenter sim` process with secured OPC UA devices, and a client's files."""

    url: str
    server_certificate: Path
    client_certificate: Path
    client_key: Path
    stranger_certificate: Path
    stranger_key: Path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredCity]:
    """The lighting district's devices, secure-only, trusting one client certificate."""
    root = tmp_path_factory.mktemp("secured-city")
    trust_dir = root / "trusted-clients"
    trust_dir.mkdir()
    client_cert, client_key = make_self_signed_certificate(
        root / "client", CLIENT_URI, name="client", client=True
    )
    shutil.copy(client_cert, trust_dir / "client.der")
    stranger_cert, stranger_key = make_self_signed_certificate(
        root / "stranger", CLIENT_URI, name="stranger", client=True
    )
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlcenter.cli.main",
        "sim",
        "--domain",
        "lights",
        "--base-port",
        "0",
        "--control",
        "127.0.0.1:0",
        "--opcua-security",
        "Basic256Sha256_SignAndEncrypt",
        "--opcua-pki",
        str(root / "pki"),
        "--opcua-trust-dir",
        str(trust_dir),
        "--opcua-user",
        USER,
        "--opcua-password-file",
        str(password_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, "controlcenter sim ended before its devices listened"
                fields = line.split()
                if len(fields) == 3 and fields[1] == "opcua":
                    url = f"opc.tcp://{fields[2]}"
                    break
        yield SecuredCity(
            url,
            root / "pki" / "server_cert.der",
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def secure_client(city: SecuredCity, certificate: Path, key: Path) -> Client:
    client = Client(city.url, timeout=5)
    client.application_uri = CLIENT_URI
    client.set_user(USER)
    client.set_password(PASSWORD)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(certificate),
        str(key),
        server_certificate=str(city.server_certificate),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


async def test_a_trusted_client_with_the_password_reads(city: SecuredCity) -> None:
    client = await secure_client(city, city.client_certificate, city.client_key)
    async with client:
        state = client.get_node(numeric_node(ObjectIds.Server_ServerStatus_State))
        assert await state.read_value() == ua.ServerState.Running


async def test_an_untrusted_certificate_is_refused(city: SecuredCity) -> None:
    client = await secure_client(city, city.stranger_certificate, city.stranger_key)
    with pytest.raises(UaStatusCodeError) as refused:
        async with client:
            pass
    assert refused.value.code == StatusCodes.BadCertificateUntrusted


async def test_a_password_over_a_none_channel_is_refused(city: SecuredCity) -> None:
    client = Client(city.url, timeout=5)
    client.set_user(USER)
    client.set_password(PASSWORD)
    with pytest.raises(UaStatusCodeError) as refused:
        async with client:
            pass
    assert refused.value.code == StatusCodes.BadSecurityModeRejected
