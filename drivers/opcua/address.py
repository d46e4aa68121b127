"""OPC UA point addresses: node ids and browse paths.

Node ids use the string form of OPC UA Part 6, 5.3.1.10: an optional namespace (``ns=<index>;``
or ``nsu=<namespace uri>;``) followed by the identifier, ``i=<number>``, ``s=<string>``,
``g=<guid>`` or ``b=<base64>``; e.g. ``ns=2;s=Pump1.Speed``, ``ns=2;i=1234``,
``nsu=urn:city:water;s=Tank1.Level``. Without a namespace the node is in namespace 0.

Browse paths start with ``/`` and name one browse name per level below the Root folder, each
``<namespace index>:<name>`` (or just ``<name>`` for namespace 0), following hierarchical
references as the relative-path syntax of Part 4, A.2 does: ``/Objects/2:Tank1/2:Level``.
``&`` escapes a ``/``, ``:`` or ``&`` that belongs to a name (Part 4, A.2).

Parsing is pure: namespace URIs and browse paths are resolved against the server at connect
time by the driver (Part 4, 5.8.4 TranslateBrowsePathsToNodeIds).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from enum import StrEnum

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_NAMESPACE_INDEX = 0xFFFF
"""Namespace indexes are UInt16 (Part 6, 5.2.2.9)."""
MAX_NUMERIC_IDENTIFIER = 0xFFFFFFFF
"""Numeric identifiers are UInt32 (Part 3, 8.2.4)."""

_ESCAPE = "&"
_ESCAPABLE = frozenset("/:&")


class IdentifierKind(StrEnum):
    """The identifier type of a node id (Part 3, 8.2.3), by its string-form prefix."""

    NUMERIC = "i"
    STRING = "s"
    GUID = "g"
    OPAQUE = "b"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A node id: namespace (by index, or by URI to resolve at connect) and identifier."""

    kind: IdentifierKind
    identifier: str | int
    namespace_index: int = 0
    namespace_uri: str | None = None

    def __str__(self) -> str:
        namespace = (
            f"nsu={self.namespace_uri};"
            if self.namespace_uri is not None
            else (f"ns={self.namespace_index};" if self.namespace_index else "")
        )
        return f"{namespace}{self.kind}={self.identifier}"


@dataclass(frozen=True, slots=True)
class BrowseName:
    """One element of a browse path: a qualified name (Part 3, 8.3)."""

    namespace_index: int
    name: str

    def __str__(self) -> str:
        name = "".join(_ESCAPE + c if c in _ESCAPABLE else c for c in self.name)
        return f"{self.namespace_index}:{name}" if self.namespace_index else name


@dataclass(frozen=True, slots=True)
class BrowsePathAddress:
    """A path of browse names from the Root folder, resolved to a node id at connect time."""

    elements: tuple[BrowseName, ...]

    def __str__(self) -> str:
        return "/" + "/".join(str(element) for element in self.elements)


OpcUaAddress = NodeAddress | BrowsePathAddress
"""Either form of an OPC UA point address."""


def parse_address(text: str) -> OpcUaAddress:
    """Parse a node id or a browse path; raise ``AddressError`` naming what is wrong."""
    stripped = text.strip()
    if not stripped:
        raise AddressError("OPC UA address is empty")
    if stripped.startswith("/"):
        return _parse_browse_path(stripped)
    return _parse_node_id(stripped)


def validate_address(address: str, data_type: DataType) -> None:
    """Check that ``address`` parses; any tag data type can live in an OPC UA variable.

    The variable's own DataType is only known once connected: a value that does not fit the
    tag is then reported per sample (Bad, config_error)."""
    parse_address(address)


def _parse_node_id(text: str) -> NodeAddress:
    namespace_index = 0
    namespace_uri: str | None = None
    rest = text
    if rest.startswith("nsu="):
        # The URI may itself contain ';' (rare); the identifier is after the last ';' that
        # starts a known identifier prefix.
        uri, separator, rest = _split_namespace_uri(rest[4:])
        if not separator or not uri:
            raise AddressError(
                f"OPC UA node id {text!r}: 'nsu=' needs a namespace URI and ';', "
                "e.g. 'nsu=urn:city:water;s=Tank1.Level'"
            )
        namespace_uri = uri
    elif rest.startswith("ns="):
        index_text, separator, rest = rest[3:].partition(";")
        if not separator:
            raise AddressError(
                f"OPC UA node id {text!r}: 'ns=<index>' must be followed by ';' and an identifier"
            )
        namespace_index = _parse_uint(text, "namespace index", index_text, MAX_NAMESPACE_INDEX)
    kind_text, equals, identifier_text = rest.partition("=")
    try:
        kind = IdentifierKind(kind_text)
    except ValueError as err:
        raise AddressError(
            f"OPC UA address {text!r} is neither a node id ('ns=2;s=Name', 'ns=2;i=1234', "
            "'nsu=<uri>;s=Name') nor a browse path ('/Objects/2:Folder/2:Variable')"
        ) from err
    if not equals or not identifier_text:
        raise AddressError(f"OPC UA node id {text!r}: the identifier after '{kind}=' is empty")
    identifier: str | int = identifier_text
    if kind is IdentifierKind.NUMERIC:
        identifier = _parse_uint(
            text, "numeric identifier", identifier_text, MAX_NUMERIC_IDENTIFIER
        )
    elif kind is IdentifierKind.GUID:
        try:
            identifier = str(uuid.UUID(identifier_text))
        except ValueError as err:
            raise AddressError(
                f"OPC UA node id {text!r}: {identifier_text!r} is not a GUID"
            ) from err
    elif kind is IdentifierKind.OPAQUE:
        try:
            base64.b64decode(identifier_text, validate=True)
        except binascii.Error as err:
            raise AddressError(
                f"OPC UA node id {text!r}: {identifier_text!r} is not base64"
            ) from err
    return NodeAddress(kind, identifier, namespace_index, namespace_uri)


def _split_namespace_uri(text: str) -> tuple[str, str, str]:
    """Split ``<uri>;<kind>=<identifier>`` at the last ';' that starts an identifier."""
    for position in range(len(text) - 1, -1, -1):
        if text[position] == ";" and text[position + 1 : position + 3] in ("i=", "s=", "g=", "b="):
            return text[:position], ";", text[position + 1 :]
    return text, "", ""


def _parse_uint(text: str, what: str, digits: str, maximum: int) -> int:
    if not (digits.isascii() and digits.isdigit()):
        raise AddressError(f"OPC UA node id {text!r}: {what} {digits!r} is not a number")
    value = int(digits)
    if value > maximum:
        raise AddressError(f"OPC UA node id {text!r}: {what} {value} is above {maximum}")
    return value


def _parse_browse_path(text: str) -> BrowsePathAddress:
    elements = [_parse_browse_name(text, raw) for raw in _split_unescaped(text[1:], "/")]
    if not elements:
        raise AddressError(f"OPC UA browse path {text!r} names no element")
    return BrowsePathAddress(tuple(elements))


def _parse_browse_name(text: str, raw: str) -> BrowseName:
    parts = _split_unescaped(raw, ":")
    if len(parts) == 1:
        namespace_index, name = 0, parts[0]
    elif len(parts) == 2:
        namespace_index = _parse_uint(text, "namespace index", parts[0], MAX_NAMESPACE_INDEX)
        name = parts[1]
    else:
        raise AddressError(
            f"OPC UA browse path {text!r}: element {raw!r} has more than one unescaped ':' "
            "(write '&:' for a ':' in a name)"
        )
    name = _unescape(text, name)
    if not name:
        raise AddressError(f"OPC UA browse path {text!r} has an empty element")
    return BrowseName(namespace_index, name)


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split at ``separator`` unless it is escaped with '&'; escapes stay in the parts."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == _ESCAPE:
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str, name: str) -> str:
    out: list[str] = []
    chars = iter(name)
    for char in chars:
        if char != _ESCAPE:
            out.append(char)
            continue
        following = next(chars, "")
        if following not in _ESCAPABLE:
            raise AddressError(
                f"OPC UA browse path {text!r}: '&' must be followed by '/', ':' or '&'"
            )
        out.append(following)
    return "".join(out)
