"""Point discovery on an OPC UA server: browse the address space from ``Objects``.

Every variable found under ``Objects`` (the server's own ``Server`` object and everything in
namespace 0 left out) becomes a tag: its name the dotted browse names of its path (lower-cased,
characters a tag name cannot hold replaced by ``_``), its address the NodeId, its data type from
the variable's ``DataType`` attribute (OPC UA Part 3 5.6.2), writable when ``UserAccessLevel``
has ``CurrentWrite`` (Part 3 5.6.2, Table 8), its range from an ``EURange`` property and its
unit from an ``EngineeringUnits`` property (Part 8 5.6.2, 5.6.3) where the server has them.

Attributes are read in batches (one Read per ``BATCH`` nodes), so a server of a few thousand
variables is browsed in seconds. The result is a list of ``TagDef`` for the device the caller
names; turning it into a site fragment is the command line's job.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from controlcenter.model import DataType, TagDef
from drivers.base import DriverError
from drivers.opcua.session import LIBRARY_ERRORS, deadline, driver_error, quiet_asyncua_logging

BATCH = 200
"""Nodes per Browse or Read request."""
MAX_VARIABLES = 50_000
"""Most variables one discovery reports (a bound for a hostile or enormous server)."""
MAX_DEPTH = 16
"""Deepest folder level browsed below Objects."""

_NAME_CHARACTERS = re.compile(r"[^a-z0-9_]+")
_FLOAT_TYPES = frozenset({ObjectIds.Float, ObjectIds.Double, ObjectIds.Duration})
_INT_TYPES = frozenset(
    {
        ObjectIds.SByte,
        ObjectIds.Byte,
        ObjectIds.Int16,
        ObjectIds.UInt16,
        ObjectIds.Int32,
        ObjectIds.UInt32,
        ObjectIds.Int64,
        ObjectIds.UInt64,
        ObjectIds.Integer,
        ObjectIds.UInteger,
        ObjectIds.Enumeration,
        ObjectIds.Counter,
        ObjectIds.IntegerId,
    }
)
_DATA_TYPES: dict[int, DataType] = {
    **dict.fromkeys(_FLOAT_TYPES, DataType.FLOAT),
    **dict.fromkeys(_INT_TYPES, DataType.INT),
    ObjectIds.Boolean: DataType.BOOL,
    ObjectIds.String: DataType.STRING,
    ObjectIds.LocalizedText: DataType.STRING,
    ObjectIds.DateTime: DataType.DATETIME,
    ObjectIds.UtcTime: DataType.DATETIME,
}


@dataclass(frozen=True, slots=True)
class _Found:
    """A variable found while browsing: its node and the browse names of its path."""

    node_id: ua.NodeId
    path: tuple[str, ...]


def tag_name(path: Sequence[str]) -> str:
    """A tag name from browse names: lower case, dotted, only ``a-z0-9_`` in each part."""
    parts = [_NAME_CHARACTERS.sub("_", part.lower()).strip("_") or "x" for part in path]
    if not parts[0][0].isalpha():
        parts[0] = "p" + parts[0]
    return ".".join(parts)


def node_address(node_id: ua.NodeId) -> str:
    """The driver's address of a node: its NodeId in the standard string form."""
    return str(node_id.to_string())


async def discover_opcua(
    url: str, device: str, *, timeout_s: float = 5.0, max_variables: int = MAX_VARIABLES
) -> list[TagDef]:
    """The variables under ``Objects`` of the server at ``url`` as tags of ``device``;
    raises DriverError (not connected, refused, no answer) saying why not."""
    quiet_asyncua_logging()
    client = Client(url, timeout=timeout_s)
    client.name = "City control center (point discovery)"
    client.description = client.name
    client.application_uri = "urn:city-controlcenter:discovery"
    client.product_uri = "urn:city-controlcenter"
    # A short session: discovery is over in seconds (and a request beyond the server's
    # maximum is answered with a warning).
    client.session_timeout = 60_000
    try:
        async with deadline(timeout_s):
            await client.connect()
    except LIBRARY_ERRORS as err:
        raise driver_error(err, f"OPC UA server {url}") from err
    try:
        found = await _browse(client, max_variables, timeout_s)
        return await _describe(client, found, device, timeout_s)
    except LIBRARY_ERRORS as err:
        raise driver_error(err, f"OPC UA server {url}") from err
    finally:
        # A session already gone has nothing to close.
        with contextlib.suppress(*LIBRARY_ERRORS):
            await client.disconnect()


async def _browse(client: Client, max_variables: int, timeout_s: float) -> list[_Found]:
    """Breadth-first over hierarchical references from Objects, objects and variables only."""
    objects = _standard(ObjectIds.ObjectsFolder)
    level: list[tuple[ua.NodeId, tuple[str, ...]]] = [(objects, ())]
    seen: set[ua.NodeId] = {objects}
    found: list[_Found] = []
    for _ in range(MAX_DEPTH):
        if not level:
            break
        following: list[tuple[ua.NodeId, tuple[str, ...]]] = []
        for start in range(0, len(level), BATCH):
            batch = level[start : start + BATCH]
            async with deadline(timeout_s):
                results = await client.browse_nodes([client.get_node(n) for n, _ in batch])
            for (_, path), (_, result) in zip(batch, results, strict=True):
                for reference in _children(result):
                    node_id = _plain(reference.NodeId)
                    # Namespace 0 is the standard's own address space (Server object, types).
                    if node_id.NamespaceIndex == 0 or node_id in seen:
                        continue
                    seen.add(node_id)
                    child = (*path, reference.BrowseName.Name or str(node_id.Identifier))
                    if reference.NodeClass == ua.NodeClass.Variable:
                        found.append(_Found(node_id, child))
                        if len(found) >= max_variables:
                            return found
                    following.append((node_id, child))
        level = following
    return found


def _children(result: ua.BrowseResult) -> Iterable[ua.ReferenceDescription]:
    """Forward hierarchical references to objects and variables, properties left out (a
    property, e.g. EURange, describes its variable; it is no point of its own)."""
    for reference in result.References or []:
        if not reference.IsForward:
            continue
        if reference.ReferenceTypeId == _standard(ObjectIds.HasProperty):
            continue
        if reference.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
            yield reference


async def _describe(
    client: Client, found: Sequence[_Found], device: str, timeout_s: float
) -> list[TagDef]:
    tags: list[TagDef] = []
    for start in range(0, len(found), BATCH):
        batch = found[start : start + BATCH]
        nodes = [client.get_node(item.node_id) for item in batch]
        async with deadline(timeout_s):
            types = await client.read_attributes(nodes, AttributeIds.DataType)
            access = await client.read_attributes(nodes, AttributeIds.UserAccessLevel)
            descriptions = await client.read_attributes(nodes, AttributeIds.Description)
            properties = await _properties(client, batch)
        for index, item in enumerate(batch):
            data_type = _data_type(types[index])
            if data_type is None:
                continue  # structures, arrays of bytes…: nothing a tag can hold
            eu_range, unit = properties.get(item.node_id, (None, ""))
            level = _content(access[index])
            writable = isinstance(level, int) and bool(level & ua.AccessLevel.CurrentWrite.mask)
            text = _content(descriptions[index])
            low, high = eu_range if eu_range is not None else (None, None)
            tags.append(
                TagDef(
                    name=tag_name(item.path),
                    device=device,
                    address=node_address(item.node_id),
                    data_type=data_type,
                    unit=unit,
                    low=low,
                    high=high,
                    writable=writable,
                    description=str(text.Text or "") if isinstance(text, ua.LocalizedText) else "",
                )
            )
    return tags


async def _properties(
    client: Client, batch: Sequence[_Found]
) -> dict[ua.NodeId, tuple[tuple[float, float] | None, str]]:
    """EURange and EngineeringUnits of each variable that has them (one browse, one read)."""
    results = await client.browse_nodes([client.get_node(item.node_id) for item in batch])
    wanted: list[tuple[ua.NodeId, str, ua.NodeId]] = []
    for item, (_, result) in zip(batch, results, strict=True):
        for reference in result.References or []:
            name = reference.BrowseName.Name
            if reference.ReferenceTypeId == _standard(ObjectIds.HasProperty) and name in (
                "EURange",
                "EngineeringUnits",
            ):
                wanted.append((item.node_id, name, _plain(reference.NodeId)))
    if not wanted:
        return {}
    values = await client.read_attributes(
        [client.get_node(node) for _, _, node in wanted], AttributeIds.Value
    )
    found: dict[ua.NodeId, tuple[tuple[float, float] | None, str]] = {}
    for (owner, name, _), value in zip(wanted, values, strict=True):
        eu_range, unit = found.get(owner, (None, ""))
        content = _content(value)
        if name == "EURange" and isinstance(content, ua.Range):
            if content.Low < content.High:
                eu_range = (float(content.Low), float(content.High))
        elif name == "EngineeringUnits" and isinstance(content, ua.EUInformation):
            unit = str(content.DisplayName.Text or "") if content.DisplayName else ""
        found[owner] = (eu_range, unit)
    return found


def _standard(identifier: int) -> ua.NodeId:
    """A NodeId of namespace 0 (the standard's own nodes)."""
    return ua.NodeId(ua.Int32(identifier))


def _plain(node: ua.NodeId) -> ua.NodeId:
    """The NodeId of a reference's target (an ExpandedNodeId's server index and URI dropped)."""
    return ua.NodeId(node.Identifier, node.NamespaceIndex, node.NodeIdType)


def _content(value: ua.DataValue) -> object:
    """The value a DataValue carries (None when it has none)."""
    return value.Value.Value if value.Value is not None else None


def _data_type(value: ua.DataValue) -> DataType | None:
    node = _content(value)
    if not isinstance(node, ua.NodeId) or node.NamespaceIndex != 0:
        return None
    identifier = node.Identifier
    return _DATA_TYPES.get(identifier) if isinstance(identifier, int) else None


__all__ = ["DriverError", "discover_opcua", "node_address", "tag_name"]
