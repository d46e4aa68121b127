"""The inside of a simulated device's OPC UA server: a cheap standard address space and writes.

Two things asyncua's ``InternalServer`` does not offer out of the box:

- **Start-up cost.** Every asyncua server fills the standard address space (Part 5, ~6,000
  nodes) from generated code, about a second of CPU. A city runs dozens of OPC UA devices in
  one process, so the standard nodes are filled once per process into a template and each
  server gets a copy-on-read view of it: a node is copied from the template the first time its
  server touches it (asyncua's own shelf loader swaps the node table the same way). Values are
  deep-copied on that first touch because asyncua updates some list values in place. The filled
  template is also cached on disk (``$PLC_SIM_CACHE_DIR``, default ``~/.cache/plc_sim``, one
  file per asyncua and Python version), one pickle per node, so a later process skips both the
  fill and the import of asyncua's ~9 MB of generated code and unpickles only the few dozen
  standard nodes its servers touch.
- **Writes that reach the model.** Part 4 5.10.4 wants one status per written node. A write to a
  point's Value is handed to the device (``SimDevice.write``), and the model's verdict becomes the
  status: Bad_NotWritable for a read-only point (its AccessLevel lacks CurrentWrite),
  Bad_TypeMismatch for a value of another built-in type, Bad_OutOfRange when the model refuses
  it. Every other write goes to asyncua's attribute service unchanged.
- **Reads as Part 4 5.10.2 asks.** asyncua's attribute service returns each stored DataValue as
  it is; ``PointWriteService.read`` checks the Read's parameters and gives the timestamps it
  asks for (``plc_sim.servers.opcua.read_rules``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.metadata
import logging
import os
import pickle
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import (
    AddressSpace,
    AttributeService,
    AttributeValue,
    NodeData,
    NodeManagementService,
)
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from plc_sim.servers.opcua.nodes import ServedPoint, status
from plc_sim.servers.opcua.read_rules import check_read, stamped

_log = logging.getLogger(__name__)

_ADMIN = User(role=UserRole.Admin)
"""asyncua's default caller of a write: its own internal session."""

PointWriter = Callable[[ServedPoint, ua.DataValue], Awaitable[ua.StatusCode]]
"""Applies a client's write of one point's Value and says how it went."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


StandardFill = Callable[[], Mapping[ua.NodeId, NodeData]]
"""Builds the standard nodes from scratch (asyncua's generated Part 5 code)."""

CACHE_DIR_ENV = "PLC_SIM_CACHE_DIR"
"""Directory of the standard-nodes cache; set empty to keep no cache."""

_CACHE_FORMAT = "plc_sim opcua standard nodes 1"


def fill_standard_nodes() -> dict[ua.NodeId, NodeData]:
    """Every standard node, built by asyncua's generated code (seconds of CPU)."""
    # Imported here: the generated modules are ~9 MB of Python, costly to import when cached.
    from asyncua.server.standard_address_space import standard_address_space  # noqa: PLC0415

    space = AddressSpace()
    standard_address_space.fill_address_space(  # type: ignore[no-untyped-call]
        NodeManagementService(space)
    )
    return {key: space[key] for key in space.keys()}  # noqa: SIM118 - AddressSpace has no __iter__


def default_cache_file() -> Path | None:
    """Where the standard nodes are cached for this asyncua and Python; None when disabled."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        if not configured:
            return None
        root = Path(configured)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plc_sim"
    python = f"{sys.version_info.major}{sys.version_info.minor}"
    return root / f"opcua-standard-nodes-asyncua{_asyncua_version()}-py{python}.pickle"


def _asyncua_version() -> str:
    try:
        return importlib.metadata.version("asyncua")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class PickledNodes(Mapping[ua.NodeId, NodeData]):
    """Standard nodes kept pickled one by one and unpickled the first time one is asked for.

    A device server touches a few hundred of the ~6,000 standard nodes, so a process unpickles
    only those (asyncua's shelf loader, ``load_aspace_shelf``, is lazy the same way).
    """

    def __init__(self, blobs: Mapping[str, bytes]) -> None:
        self._blobs = blobs
        self._loaded: dict[ua.NodeId, NodeData] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: ua.NodeId) -> NodeData:
        node = self._loaded.get(key)
        if node is not None:
            return node
        blob = self._blobs[key.to_string()]
        with self._lock:
            node = self._loaded.get(key)
            if node is None:
                # Unpickling trusts the file: this program's own cache, in the user's own directory.
                node = pickle.loads(blob)
                if not isinstance(node, NodeData):
                    raise TypeError(f"cached standard node {key.to_string()} is not a NodeData")
                self._loaded[key] = node
            return node

    def __contains__(self, key: object) -> bool:
        return isinstance(key, ua.NodeId) and key.to_string() in self._blobs

    def __iter__(self) -> Iterator[ua.NodeId]:
        for text in self._blobs:
            yield ua.NodeId.from_string(text)

    def __len__(self) -> int:
        return len(self._blobs)


def write_cache(path: Path, nodes: Mapping[ua.NodeId, NodeData]) -> None:
    """Store the nodes pickled one by one; the file is replaced whole (readers never see half)."""
    blobs = {
        key.to_string(): pickle.dumps(node, pickle.HIGHEST_PROTOCOL) for key, node in nodes.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            pickle.dump((_CACHE_FORMAT, blobs), out, pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_cache(path: Path) -> PickledNodes:
    """The cached nodes (FileNotFoundError when there is no cache, ValueError when unusable)."""
    with path.open("rb") as cached:
        try:
            content = pickle.load(cached)  # the user's own cache, as above
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
            raise ValueError(f"{path} is not a standard-nodes cache") from err
    if not (isinstance(content, tuple) and len(content) == 2 and content[0] == _CACHE_FORMAT):
        raise ValueError(f"{path} is not a standard-nodes cache of this version")
    blobs = content[1]
    if not isinstance(blobs, dict) or not all(isinstance(b, bytes) for b in blobs.values()):
        raise ValueError(f"{path} holds no pickled nodes")
    return PickledNodes(blobs)


class StandardNodes:
    """The standard address space, made once per process and then only read.

    Filling it runs asyncua's generated code (seconds of CPU); the result is cached on disk
    (``cache_file``) so later processes unpickle only the nodes their servers touch.
    """

    def __init__(
        self, cache_file: Path | None = None, fill: StandardFill = fill_standard_nodes
    ) -> None:
        """Use ``cache_file`` (None: no cache) and ``fill`` to build the nodes when not cached."""
        self._lock = threading.Lock()
        self._cache_file = cache_file
        self._fill = fill
        self._nodes: Mapping[ua.NodeId, NodeData] | None = None

    def get(self) -> Mapping[ua.NodeId, NodeData]:
        """The template's node table (made on first use; thread-safe)."""
        with self._lock:
            if self._nodes is None:
                self._nodes = self._cached() or self._filled()
            return self._nodes

    def _cached(self) -> PickledNodes | None:
        if self._cache_file is None:
            return None
        try:
            return read_cache(self._cache_file)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            _log.info("OPC UA standard nodes cache unusable, rebuilding it: %s", err)
            return None

    def _filled(self) -> Mapping[ua.NodeId, NodeData]:
        nodes = self._fill()
        if self._cache_file is not None:
            try:
                write_cache(self._cache_file, nodes)
            except (OSError, pickle.PicklingError) as err:
                _log.info("OPC UA standard nodes not cached: %s", err)
        return nodes


STANDARD_NODES = StandardNodes(default_cache_file())
"""The process-wide template (immutable once made; every server copies what it touches)."""


class CopyOnReadNodes(dict[ua.NodeId, NodeData]):
    """A node table that copies a template's node the first time it is looked up."""

    def __init__(self, template: Mapping[ua.NodeId, NodeData]) -> None:
        super().__init__()
        self._template = template
        self._deleted: set[ua.NodeId] = set()

    def __missing__(self, key: ua.NodeId) -> NodeData:
        if key in self._deleted:
            raise KeyError(key)
        node = _copied(self._template[key])
        self[key] = node
        return node

    def get(self, key: ua.NodeId, default: Any = None) -> Any:
        """The node, copied from the template on first use; ``default`` when unknown."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return key in self._template and key not in self._deleted

    def __delitem__(self, key: ua.NodeId) -> None:
        self.__getitem__(key)  # materialise it first, so deleting a template node works
        dict.__delitem__(self, key)
        self._deleted.add(key)

    def __iter__(self) -> Iterator[ua.NodeId]:
        yield from dict.__iter__(self)
        for key in self._template:
            if not dict.__contains__(self, key) and key not in self._deleted:
                yield key

    def keys(self) -> Any:
        """Every node id, the template's included (a materialising view is not needed)."""
        return list(iter(self))

    def __len__(self) -> int:
        return len(list(iter(self)))


def _copied(node: NodeData) -> NodeData:
    """A node of its own: new attribute holders, own reference list, values deep-copied."""
    clone = NodeData(node.nodeid)
    for attribute_id, held in node.attributes.items():
        own = AttributeValue(ua.DataValue())
        own.value = held.value
        if attribute_id == AttributeIds.Value and held.value is not None:
            own.value = copy.deepcopy(held.value)
        own.value_callback = held.value_callback
        own.value_setter = held.value_setter
        clone.attributes[attribute_id] = own
    clone.references = list(node.references)
    clone.call = node.call
    return clone


class PointWriteService(AttributeService):
    """Asyncua's attribute service, with writes to served points routed to the device."""

    def __init__(self, aspace: AddressSpace) -> None:
        super().__init__(aspace)
        self.points: dict[ua.NodeId, ServedPoint] = {}
        self.point_writer: PointWriter | None = None
        self.server_time: Callable[[], datetime] = _utc_now
        """The server's current time: the ServerTimestamp of every value a Read returns."""
        self.max_nodes_per_read = 0
        """The MaxNodesPerRead the server advertises (0: no limit), enforced on every Read."""

    def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        """The values a Read returns (Part 4 5.10.2): its parameters checked and the timestamps
        it asks for given, as ``read_rules`` says; a refused Read raises its ServiceResult."""
        timestamps = int(params.TimestampsToReturn)
        nodes = params.NodesToRead
        check_read(len(nodes), params.MaxAge, timestamps, self.max_nodes_per_read)
        now = self.server_time()
        results = super().read(params)
        return [
            stamped(value, item.AttributeId, timestamps, now)
            for value, item in zip(results, nodes, strict=True)
        ]

    async def write(self, params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
        """One status per node to write (Part 4 5.10.4), points judged by the device."""
        results: list[ua.StatusCode] = []
        for write_value in params.NodesToWrite:
            point = self.points.get(write_value.NodeId)
            if point is None or write_value.AttributeId != AttributeIds.Value:
                single = ua.WriteParameters(NodesToWrite=[write_value])
                results.extend(await super().write(single, user))
            else:
                results.append(await self._write_point(point, write_value))
        return results

    async def _write_point(self, point: ServedPoint, write_value: ua.WriteValue) -> ua.StatusCode:
        if not point.spec.writable:
            return status(StatusCodes.BadNotWritable)
        if write_value.IndexRange:
            # Part 4 7.22: an index range addresses arrays; every point is a scalar.
            return status(StatusCodes.BadIndexRangeInvalid)
        data_value = write_value.Value
        variant = data_value.Value
        if variant is None or variant.VariantType != point.vtype or variant.is_array:
            return status(StatusCodes.BadTypeMismatch)
        if self.point_writer is None:
            return status(StatusCodes.BadNotWritable)
        return await self.point_writer(point, data_value)


ConnectionListener = Callable[[asyncio.Transport], None]
"""Told of every new client connection before a byte of it is read."""


class _Connections(list[Any]):
    """asyncua's list of open connections (``asyncio_transports``), telling a listener of each
    new one: asyncua appends a connection as it is made, before reading from it."""

    def __init__(self, on_new: Callable[[], ConnectionListener | None]) -> None:
        super().__init__()
        self._on_new = on_new

    def append(self, transport: Any) -> None:
        """Keep the connection and tell the listener about it."""
        super().append(transport)
        listener = self._on_new()
        if listener is not None:
            listener(transport)


class DeviceInternalServer(InternalServer):
    """An asyncua internal server with the shared standard nodes and device-aware writes."""

    def __init__(self) -> None:
        super().__init__()
        self.point_service = PointWriteService(self.aspace)
        self.attribute_service = self.point_service
        self._client_sessions: dict[ua.NodeId, InternalSession] = {}
        self.connection_listener: ConnectionListener | None = None
        """Told of each new connection before it is served (the device server puts its Read
        fast path on it and, while offline, silences it)."""
        self.asyncio_transports = _Connections(lambda: self.connection_listener)

    def register_external_session(self, session: InternalSession) -> None:
        """Track a client's session as asyncua registers it."""
        super().register_external_session(session)
        self._client_sessions[session.auth_token] = session

    def unregister_external_session(self, session: InternalSession) -> None:
        """Forget a client's session as asyncua unregisters it."""
        super().unregister_external_session(session)
        self._client_sessions.pop(session.auth_token, None)

    async def close_client_sessions(self) -> None:
        """Close every client session and its subscriptions, as a device losing power does.

        Part 4 6.7 lets a session with subscriptions outlive its connection; a rebooted device
        keeps nothing, so a stop closes them rather than leaving them to time out.
        """
        for session in list(self._client_sessions.values()):
            await session.close_session(True)
        self._client_sessions.clear()

    async def load_standard_address_space(self, shelf_file: Any = None) -> None:
        """Serve a copy-on-read view of the process-wide standard nodes instead of refilling."""
        del shelf_file
        template = await _standard_nodes_off_loop()
        # The same seam asyncua's load_aspace_shelf uses: the node table is swapped whole.
        self.aspace._nodes = CopyOnReadNodes(template)


async def _standard_nodes_off_loop() -> Mapping[ua.NodeId, NodeData]:
    """The template, filled in a worker thread the first time so the loop keeps running."""
    return await asyncio.to_thread(STANDARD_NODES.get)
