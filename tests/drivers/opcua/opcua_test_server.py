"""A small real asyncua server for the driver tests, built variable by variable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from drivers.opcua.session import make_node_id

NAMESPACE_URI = "urn:city:test-plant"
"""Namespace of the test variables; registered first, so its index is 2."""

SERVER_URI = "urn:city:test-plant:server"
"""Application URI of the test server (its certificate carries it)."""

BULK_VARIABLES = 600
"""Extra Double variables on the shared plain server, for sharding and latency tests."""

USERNAME = "operator"
PASSWORD = "correct horse battery staple"


class PasswordUsers:
    """Accepts one user name and password (asyncua's user manager interface)."""

    def get_user(
        self,
        iserver: object,
        username: str | None = None,
        password: str | None = None,
        certificate: object = None,
    ) -> User | None:
        """The user for matching credentials, else None (the server answers Bad)."""
        if username == USERNAME and password == PASSWORD:
            return User(role=UserRole.User, name=username)
        return None


@dataclass
class PlantServer:
    """A running test server, its namespace index and its variables by name."""

    server: Server
    namespace: int
    variables: dict[str, Node] = field(default_factory=dict)
    shard_names: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        bserver = self.server.bserver
        assert bserver is not None
        return int(cast(Any, bserver).port)

    @property
    def url(self) -> str:
        """The endpoint URL to connect to."""
        return f"opc.tcp://127.0.0.1:{self.port}/plant/"

    def node_id(self, name: str) -> str:
        """The string node id of a variable, e.g. ``ns=2;s=Plant.Level``."""
        return self.variables[name].nodeid.to_string()

    async def set(
        self,
        name: str,
        value: Any,
        variant_type: ua.VariantType,
        status: int = StatusCodes.Good,
        source_time: datetime | None = None,
    ) -> None:
        """Change a variable as a device would: value, status and source timestamp."""
        await self.set_many([name], [value], variant_type, status, source_time)

    async def set_many(
        self,
        names: Sequence[str],
        values: Sequence[Any],
        variant_type: ua.VariantType,
        status: int = StatusCodes.Good,
        source_time: datetime | None = None,
    ) -> None:
        """Change several variables, each stamped when it changes (or all with one time)."""
        for index, (name, value) in enumerate(zip(names, values, strict=True)):
            if index % 50 == 49:
                await asyncio.sleep(0)  # a device changes values while it serves clients
            stamp = source_time or datetime.now(UTC)
            data_value = ua.DataValue(
                ua.Variant(value, variant_type),
                ua.StatusCode(ua.UInt32(status)),
                SourceTimestamp=cast(ua.DateTime, stamp),
                ServerTimestamp=cast(ua.DateTime, stamp),
            )
            await self.server.write_attribute_value(self.variables[name].nodeid, data_value)


async def build_server(
    *,
    shard_variables: int = 0,
    port: int = 0,
    security: Sequence[ua.SecurityPolicyType] = (ua.SecurityPolicyType.NoSecurity,),
    certificate: Path | None = None,
    private_key: Path | None = None,
    with_users: bool = False,
) -> PlantServer:
    """Create and start a server with the plant variables (and ``shard_variables`` more)."""
    server = Server(user_manager=cast(Any, PasswordUsers()) if with_users else None)
    await server.init()
    server.disable_clock(True)
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plant/")
    server.set_security_policy(list(security))
    if with_users:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    else:
        server.set_identity_tokens([ua.AnonymousIdentityToken])
    if certificate is not None and private_key is not None:
        await server.set_application_uri(SERVER_URI)
        await server.load_certificate(str(certificate))
        await server.load_private_key(str(private_key))
    namespace = await server.register_namespace(NAMESPACE_URI)
    plant = PlantServer(server, namespace)
    await _add_plant(plant)
    await _add_shard_variables(plant, shard_variables)
    await server.start()
    return plant


async def restart(plant: PlantServer) -> None:
    """Stop the server and start it again on the same port, as a rebooted device would."""
    port = plant.port
    await plant.server.stop()
    plant.server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plant/")
    await plant.server.start()


async def _add_plant(plant: PlantServer) -> None:
    server, ns = plant.server, plant.namespace
    folder = await server.nodes.objects.add_folder(make_node_id("Plant", ns), f"{ns}:Plant")
    variables: list[tuple[str, Any, ua.VariantType, bool]] = [
        ("Level", 2.5, ua.VariantType.Double, True),
        ("Setpoint", 1.5, ua.VariantType.Float, True),
        ("Count", 7, ua.VariantType.Int32, True),
        ("Running", True, ua.VariantType.Boolean, True),
        ("Name", "north", ua.VariantType.String, True),
        ("ReadOnly", 3.0, ua.VariantType.Double, False),
        ("Faulty", 0.0, ua.VariantType.Double, False),
        ("Stale", 4.0, ua.VariantType.Double, False),
        ("Vector", [1.0, 2.0], ua.VariantType.Double, False),
    ]
    for name, value, variant_type, writable in variables:
        node = await folder.add_variable(
            make_node_id(f"Plant.{name}", ns), f"{ns}:{name}", ua.Variant(value, variant_type)
        )
        if writable:
            await node.set_writable()
        plant.variables[name] = node
    plant.variables["Numeric"] = await folder.add_variable(
        make_node_id(1234, ns), f"{ns}:Numeric", ua.Variant(42, ua.VariantType.Int32)
    )
    await plant.set("Faulty", 0.0, ua.VariantType.Double, StatusCodes.BadSensorFailure)
    await plant.set("Stale", 4.0, ua.VariantType.Double, StatusCodes.UncertainLastUsableValue)


async def _add_shard_variables(plant: PlantServer, count: int) -> None:
    # asyncua checks references linearly per parent: small folders keep building fast.
    per_folder = 100
    folder: Node | None = None
    for index in range(count):
        if index % per_folder == 0:
            folder = await plant.server.nodes.objects.add_folder(
                make_node_id(f"Bulk{index // per_folder}", plant.namespace), f"Bulk{index}"
            )
        assert folder is not None
        name = f"Bulk.{index}"
        plant.variables[name] = await folder.add_variable(
            make_node_id(name, plant.namespace), name, ua.Variant(0.0, ua.VariantType.Double)
        )
        plant.shard_names.append(name)


async def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.02
) -> float:
    """Poll ``condition`` until it holds; return the seconds it took; fail after timeout."""
    start = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - start
        assert elapsed < timeout_s, f"{what} did not happen within {timeout_s} s"
        await asyncio.sleep(step_s)
    return time.monotonic() - start
