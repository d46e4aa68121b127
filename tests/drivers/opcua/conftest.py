"""Real asyncua servers for the OPC UA driver tests, shared per session (start-up is slow)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.drivers.opcua.opcua_test_server import (
    BULK_VARIABLES,
    SERVER_URI,
    PlantServer,
    build_server,
)


@dataclass(frozen=True)
class SecurePlant:
    """A server offering only secure endpoints, and its certificate files."""

    plant: PlantServer
    certificate: Path
    private_key: Path
    other_certificate: Path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def plant() -> AsyncIterator[PlantServer]:
    """A plain (None security, anonymous) server with the plant and bulk variables."""
    server = await build_server(shard_variables=BULK_VARIABLES)
    yield server
    await server.server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def secure_plant(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecurePlant]:
    """A server with Basic256Sha256/SignAndEncrypt and Aes256_Sha256_RsaPss/Sign only, and
    username/password users; its certificates are generated for this test run."""
    directory = tmp_path_factory.mktemp("opcua-server-pki")
    certificate, private_key = directory / "server-cert.der", directory / "server-key.pem"
    await cert_gen.setup_self_signed_certificate(
        private_key,
        certificate,
        SERVER_URI,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {},
    )
    other_certificate = directory / "other-cert.der"
    await cert_gen.setup_self_signed_certificate(
        directory / "other-key.pem",
        other_certificate,
        "urn:city:other-server",
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {},
    )
    server = await build_server(
        security=(
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
        ),
        certificate=certificate,
        private_key=private_key,
        with_users=True,
    )
    yield SecurePlant(server, certificate, private_key, other_certificate)
    await server.server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def own_plant() -> AsyncIterator[PlantServer]:
    """A server of this test's own, free to be stopped and restarted."""
    server = await build_server()
    yield server
    await server.server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()
