"""A device's points as OPC UA nodes: the browse tree, data types, units and ranges.

Address space layout (OPC UA Part 3 and Part 5), for a device with tag ``lights.d1.c1.mode``:

- namespace index 2 is ``urn:smartcity:plc_sim:<device name>`` (index 1 is the server's own
  application URI, Part 5 6.3.1);
- under ``Objects`` one folder (FolderType, ``Organizes``) per dotted segment of the tags but the
  last: ``Objects/lights/d1/c1``; folder NodeIds are ``ns=2;s=folder:<dotted prefix>``;
- one variable per point (``HasComponent`` from its folder), NodeId ``ns=2;s=<tag>``,
  BrowseName ``2:<last segment>``. Float and counter points are Double, bool points Boolean,
  int points UInt16 (Int32 when the point's range does not fit UInt16);
- analog points with a range are AnalogItemType (Part 8 5.3.2) with the ``EURange`` property;
  every point with a unit has the ``EngineeringUnits`` property (Part 8 5.6.3); properties have
  NodeIds ``ns=2;s=<tag>#EURange`` and ``ns=2;s=<tag>#EngineeringUnits``;
- AccessLevel and UserAccessLevel are CurrentRead, plus CurrentWrite only on writable points.

The center's OPC UA driver reaches a point either by NodeId (``ns=2;s=<tag>``, what
``OpcUaDeviceServer.addresses()`` returns) or by the browse path relative to the Objects folder:
``/Objects/2:lights/2:d1/2:c1/2:mode``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self, cast

from asyncua import ua
from asyncua.server.address_space import AddressSpace, AttributeValue, NodeData
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from plc_sim.device import PointSpec, PointValue
from plc_sim.servers.opcua.units import eu_information

NAMESPACE_INDEX = 2
"""Index of the device's own namespace: the first one registered after the server's URI."""

_UINT16_MAX = 65_535
_PLAIN_VARIABLE = ObjectIds.BaseDataVariableType
_READ_ONLY = ua.AccessLevel.CurrentRead.mask
_READ_WRITE = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask


def namespace_uri(device_name: str) -> str:
    """The URI of a device's namespace (registered at index 2)."""
    return f"urn:smartcity:plc_sim:{device_name}"


def numeric_node(identifier: int) -> ua.NodeId:
    """A NodeId of namespace 0 (the standard's own nodes, Part 5)."""
    return ua.NodeId(ua.Int32(identifier))


def string_node(identifier: str) -> ua.NodeId:
    """A string NodeId in the device's namespace."""
    return ua.NodeId(ua.String(identifier), ua.Int16(NAMESPACE_INDEX))


def status(code: int) -> ua.StatusCode:
    """A StatusCode from its numeric code (Part 4 7.39)."""
    return ua.StatusCode(ua.UInt32(code))


def _ua_time(moment: datetime) -> ua.DateTime:
    """asyncua types timestamps as its own datetime subclass but encodes any datetime."""
    return cast(ua.DateTime, moment)


def point_node_id(tag: str) -> ua.NodeId:
    """The NodeId of a point's variable: the tag as a string identifier in namespace 2."""
    return string_node(tag)


def point_address(tag: str) -> str:
    """A point's address in the center's OPC UA driver format: ``ns=2;s=<tag>``."""
    return f"ns={NAMESPACE_INDEX};s={tag}"


def browse_path(tag: str) -> str:
    """A point's browse path relative to the Objects folder: ``/Objects/2:<seg>/…/2:<last>``."""
    return "/Objects/" + "/".join(f"{NAMESPACE_INDEX}:{seg}" for seg in tag.split("."))


def variant_type(spec: PointSpec) -> ua.VariantType:
    """The OPC UA built-in type a point is served as (Part 6 5.1.2)."""
    if spec.kind == "bool":
        return ua.VariantType.Boolean
    if spec.kind == "int":
        fits_uint16 = (spec.low is None or spec.low >= 0) and (
            spec.high is None or spec.high <= _UINT16_MAX
        )
        return ua.VariantType.UInt16 if fits_uint16 else ua.VariantType.Int32
    return ua.VariantType.Double


def python_value(spec: PointSpec, value: PointValue) -> PointValue:
    """A model value converted to the Python type its variant type encodes."""
    if spec.kind == "bool":
        return bool(value)
    if spec.kind == "int":
        return int(value)
    return float(value)


class SharedDataValue(ua.DataValue):
    """A DataValue nobody changes once made, so that a copy of it may be the value itself.

    asyncua deep-copies every value it hands to a monitored item (``MonitoredItemValues``), in
    case the writer changes it afterwards; with thousands of items that copy was most of a
    simulated server's CPU time. The simulator builds a new DataValue for every write and never
    changes one, so the copy is skipped. Encoded exactly as a DataValue (the fields' declared
    type chooses the encoder).
    """

    __slots__ = ()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


_GOOD = status(StatusCodes.Good)
"""Shared by every Good value: a StatusCode is never changed once made (see SharedDataValue)."""


def good_value(value: PointValue, vtype: ua.VariantType, source_time: datetime) -> ua.DataValue:
    """A Good DataValue stamped with the (simulated) source time."""
    stamp = _ua_time(source_time)
    return SharedDataValue(
        ua.Variant(value, vtype), StatusCode=_GOOD, SourceTimestamp=stamp, ServerTimestamp=stamp
    )


def bad_value(status_code: int, source_time: datetime) -> ua.DataValue:
    """A DataValue carrying only a Bad status (Part 4 7.7.1: a Bad value's Variant is null)."""
    stamp = _ua_time(source_time)
    return SharedDataValue(
        ua.Variant(None, ua.VariantType.Null),
        StatusCode=status(status_code),
        SourceTimestamp=stamp,
        ServerTimestamp=stamp,
    )


@dataclass(frozen=True, slots=True)
class ServedPoint:
    """One point as served: its spec, its variable's NodeId and its variant type."""

    spec: PointSpec
    node_id: ua.NodeId
    vtype: ua.VariantType


def served_points(specs: Iterable[PointSpec]) -> tuple[ServedPoint, ...]:
    """The served form of every point, in the device's order."""
    return tuple(ServedPoint(spec, point_node_id(spec.tag), variant_type(spec)) for spec in specs)


def add_device_nodes(
    aspace: AddressSpace,
    points: Sequence[ServedPoint],
    values: Sequence[PointValue],
    source_time: datetime,
) -> int:
    """Put the device's folders, variables and properties into ``aspace``; returns their count.

    The nodes are built as finished ``NodeData`` (attributes and references in both directions,
    as asyncua's AddNodes service would leave them) and stored directly: AddNodes re-validates
    and re-derives some twenty attributes per node, which made a 300-point device take seconds.
    Values are stamped with ``source_time``.
    """
    # A build allocates some twenty objects per node and keeps them all. The cyclic collector
    # would rescan the ever larger heap many times over while finding nothing to free: with
    # dozens of devices in a process that was more than half of their start-up time. It is
    # paused for the build, which runs to its end without yielding to other tasks.
    collecting = gc.isenabled()
    gc.disable()
    try:
        builder = _NodeBuilder(aspace, source_time)
        for point, value in zip(points, values, strict=True):
            builder.add_point(point, value)
        return builder.install()
    finally:
        if collecting:
            gc.enable()


def _constant(value: object, vtype: ua.VariantType, *, is_array: bool = False) -> ua.DataValue:
    """A DataValue many nodes share: asyncua replaces an attribute's DataValue on write, and
    clients (role User) may write only Value attributes, so a shared one is never changed."""
    return ua.DataValue(ua.Variant(value, vtype, is_array=is_array))


_NO_WRITE_MASK = _constant(0, ua.VariantType.UInt32)
"""Part 3 5.2.7: no attribute but Value is writable."""
_OBJECT_CLASS = _constant(ua.NodeClass.Object, ua.VariantType.Int32)
_VARIABLE_CLASS = _constant(ua.NodeClass.Variable, ua.VariantType.Int32)
_NO_EVENTS = _constant(0, ua.VariantType.Byte)
"""Part 3 5.5.1 EventNotifier: a folder of points is no event source."""
_SCALAR = _constant(ua.ValueRank.Scalar, ua.VariantType.Int32)
_NO_DIMENSIONS = _constant(None, ua.VariantType.UInt32, is_array=True)
_ACCESS = {
    True: _constant(_READ_WRITE, ua.VariantType.Byte),
    False: _constant(_READ_ONLY, ua.VariantType.Byte),
}
_ANY_SAMPLING = _constant(0.0, ua.VariantType.Double)
"""Part 3 5.6.2 MinimumSamplingInterval 0: the server can sample the value continuously."""
_NOT_HISTORIZING = _constant(False, ua.VariantType.Boolean)
_NO_DESCRIPTION = _constant(ua.LocalizedText(), ua.VariantType.LocalizedText)
_HAS_TYPE_DEFINITION = numeric_node(ObjectIds.HasTypeDefinition)
_ORGANIZES = numeric_node(ObjectIds.Organizes)
_HAS_COMPONENT = numeric_node(ObjectIds.HasComponent)
_HAS_PROPERTY = numeric_node(ObjectIds.HasProperty)
_OBJECTS_FOLDER = numeric_node(ObjectIds.ObjectsFolder)
_DATA_TYPES: dict[int, ua.DataValue] = {}
_NAMES: dict[tuple[str, int], tuple[ua.DataValue, ua.DataValue]] = {}


def _data_type(identifier: int) -> ua.DataValue:
    """The shared DataType attribute value of a standard data type."""
    held = _DATA_TYPES.get(identifier)
    if held is None:
        held = _DATA_TYPES[identifier] = _constant(numeric_node(identifier), ua.VariantType.NodeId)
    return held


def _names(name: str, namespace: int) -> tuple[ua.DataValue, ua.DataValue]:
    """The BrowseName and DisplayName attribute values of a node called ``name``."""
    held = _NAMES.get((name, namespace))
    if held is None:
        held = _NAMES[(name, namespace)] = (
            _constant(ua.QualifiedName(name, namespace), ua.VariantType.QualifiedName),
            _constant(ua.LocalizedText(name), ua.VariantType.LocalizedText),
        )
    return held


def _attribute(node: NodeData, attribute_id: AttributeIds) -> object:
    """The plain value of one of a node's attributes (KeyError when it has none)."""
    data_value = node.attributes[attribute_id].value
    if data_value is None or data_value.Value is None:
        raise KeyError(attribute_id)
    return data_value.Value.Value


def _type_definition(node: NodeData) -> ua.NodeId:
    """The node's HasTypeDefinition target; the null ExpandedNodeId for a type node."""
    for reference in node.references:
        if reference.IsForward and reference.ReferenceTypeId == _HAS_TYPE_DEFINITION:
            return cast(ua.NodeId, reference.NodeId)
    return ua.ExpandedNodeId()


def _reference(
    reference_type: ua.NodeId, forward: bool, target: NodeData, target_id: ua.NodeId | None = None
) -> ua.ReferenceDescription:
    """A reference to ``target`` described as Browse returns it (Part 4 7.30).

    ``target_id`` is how the reference names the target, when not by the target's own NodeId
    object (the standard nodes' ids are another, equal, encoding of the same NodeId).
    """
    return ua.ReferenceDescription(
        ReferenceTypeId=reference_type,
        IsForward=forward,
        NodeId=target.nodeid if target_id is None else target_id,
        BrowseName=cast(ua.QualifiedName, _attribute(target, AttributeIds.BrowseName)),
        DisplayName=cast(ua.LocalizedText, _attribute(target, AttributeIds.DisplayName)),
        NodeClass=cast(ua.NodeClass, _attribute(target, AttributeIds.NodeClass)),
        TypeDefinition=_type_definition(target),
    )


class _NodeBuilder:
    """Builds one device's nodes against an address space holding the standard nodes."""

    def __init__(self, aspace: AddressSpace, source_time: datetime) -> None:
        self._aspace = aspace
        self._stamp = _ua_time(source_time)
        self._objects = self._standard(_OBJECTS_FOLDER)
        self._type_references: dict[int, ua.ReferenceDescription] = {}
        self._folders: dict[str, NodeData] = {}
        self._nodes: list[NodeData] = []
        self._top_nodes: list[NodeData] = []
        self._property_values: dict[object, ua.DataValue] = {}

    def _standard(self, node_id: ua.NodeId) -> NodeData:
        node = self._aspace.get(node_id)
        if node is None:
            raise RuntimeError(f"standard node {node_id} is missing from the address space")
        return node

    def _typed(self, node: NodeData, type_id: int) -> None:
        """Add the HasTypeDefinition reference (Part 3 7.13), shared by the device's nodes."""
        reference = self._type_references.get(type_id)
        if reference is None:
            type_id_node = numeric_node(type_id)
            type_node = self._standard(type_id_node)
            reference = self._type_references[type_id] = _reference(
                _HAS_TYPE_DEFINITION, True, type_node, type_id_node
            )
        node.references.append(reference)

    def _new(
        self, node_id: ua.NodeId, node_class: ua.DataValue, name: str, namespace: int
    ) -> NodeData:
        node = NodeData(node_id)
        browse_name, display_name = _names(name, namespace)
        node.attributes = {
            AttributeIds.NodeId: AttributeValue(_constant(node_id, ua.VariantType.NodeId)),
            AttributeIds.NodeClass: AttributeValue(node_class),
            AttributeIds.BrowseName: AttributeValue(browse_name),
            AttributeIds.DisplayName: AttributeValue(display_name),
        }
        self._nodes.append(node)
        return node

    def _child(
        self,
        parent: NodeData,
        reference_type: ua.NodeId,
        node_id: ua.NodeId,
        node_class: ua.DataValue,
        name: str,
        namespace: int = NAMESPACE_INDEX,
    ) -> NodeData:
        """A new node with its inverse reference to ``parent`` (children list it first)."""
        node = self._new(node_id, node_class, name, namespace)
        parent_id = _OBJECTS_FOLDER if parent is self._objects else None
        node.references.append(_reference(reference_type, False, parent, parent_id))
        return node

    def _folder(self, prefix: str) -> NodeData:
        """The FolderType object of a dotted tag prefix (Part 5 6.6), made on first use."""
        folder = self._folders.get(prefix)
        if folder is not None:
            return folder
        parent_prefix, _, name = prefix.rpartition(".")
        parent = self._folder(parent_prefix) if parent_prefix else self._objects
        folder = self._child(
            parent, _ORGANIZES, string_node(f"folder:{prefix}"), _OBJECT_CLASS, name
        )
        folder.attributes.update(
            {
                AttributeIds.Description: AttributeValue(_names(name, NAMESPACE_INDEX)[1]),
                AttributeIds.WriteMask: AttributeValue(_NO_WRITE_MASK),
                AttributeIds.UserWriteMask: AttributeValue(_NO_WRITE_MASK),
                AttributeIds.EventNotifier: AttributeValue(_NO_EVENTS),
            }
        )
        self._typed(folder, ObjectIds.FolderType)
        if parent is self._objects:
            self._top_nodes.append(folder)
        else:
            parent.references.append(_reference(_ORGANIZES, True, folder))
        self._folders[prefix] = folder
        return folder

    def add_point(self, point: ServedPoint, value: PointValue) -> None:
        """The point's variable (HasComponent of its folder) and its Part 8 properties."""
        spec = point.spec
        prefix, _, name = spec.tag.rpartition(".")
        parent = self._folder(prefix) if prefix else self._objects
        reference_type = _HAS_COMPONENT if prefix else _ORGANIZES
        variable = self._child(parent, reference_type, point.node_id, _VARIABLE_CLASS, name)
        description = ua.LocalizedText(spec.description or spec.tag)
        self._variable_attributes(
            variable,
            _constant(description, ua.VariantType.LocalizedText),
            good_value(python_value(spec, value), point.vtype, self._stamp),
            _data_type(point.vtype.value),
            writable=spec.writable,
        )
        has_range = spec.kind in ("float", "counter") and spec.low is not None
        has_range = has_range and spec.high is not None
        self._typed(variable, ObjectIds.AnalogItemType if has_range else _PLAIN_VARIABLE)
        if prefix:
            parent.references.append(_reference(reference_type, True, variable))
        else:
            self._top_nodes.append(variable)
        if has_range:
            eu_range = (float(spec.low or 0.0), float(spec.high or 0.0))
            self._property(variable, spec.tag, "EURange", ObjectIds.Range, eu_range)
        if spec.unit:
            units = ObjectIds.EUInformation
            self._property(variable, spec.tag, "EngineeringUnits", units, spec.unit)

    def _property(
        self, variable: NodeData, tag: str, name: str, data_type: int, key: object
    ) -> None:
        """A Part 8 property (PropertyType, ``HasProperty``); its BrowseName is in namespace 0."""
        node_id = string_node(f"{tag}#{name}")
        node = self._child(variable, _HAS_PROPERTY, node_id, _VARIABLE_CLASS, name, namespace=0)
        self._variable_attributes(
            node, _NO_DESCRIPTION, self._property_value(key), _data_type(data_type), writable=False
        )
        self._typed(node, ObjectIds.PropertyType)
        variable.references.append(_reference(_HAS_PROPERTY, True, node))

    def _property_value(self, key: object) -> ua.DataValue:
        """An EURange (key: low, high) or EngineeringUnits (key: unit symbol) value, shared."""
        held = self._property_values.get(key)
        if held is None:
            if isinstance(key, tuple):
                content: object = ua.Range(Low=key[0], High=key[1])
            else:
                content = eu_information(str(key))
            held = self._property_values[key] = ua.DataValue(
                ua.Variant(content, ua.VariantType.ExtensionObject),
                SourceTimestamp=self._stamp,
                ServerTimestamp=self._stamp,
            )
        return held

    @staticmethod
    def _variable_attributes(
        node: NodeData,
        description: ua.DataValue,
        value: ua.DataValue,
        data_type: ua.DataValue,
        *,
        writable: bool,
    ) -> None:
        """The attributes of a Variable node (Part 3 5.6.2)."""
        access = _ACCESS[writable]
        node.attributes.update(
            {
                AttributeIds.Description: AttributeValue(description),
                AttributeIds.WriteMask: AttributeValue(_NO_WRITE_MASK),
                AttributeIds.UserWriteMask: AttributeValue(_NO_WRITE_MASK),
                AttributeIds.Value: AttributeValue(value),
                AttributeIds.DataType: AttributeValue(data_type),
                AttributeIds.ValueRank: AttributeValue(_SCALAR),
                AttributeIds.ArrayDimensions: AttributeValue(_NO_DIMENSIONS),
                AttributeIds.AccessLevel: AttributeValue(access),
                AttributeIds.UserAccessLevel: AttributeValue(access),
                AttributeIds.MinimumSamplingInterval: AttributeValue(_ANY_SAMPLING),
                AttributeIds.Historizing: AttributeValue(_NOT_HISTORIZING),
            }
        )

    def install(self) -> int:
        """Store every node and reference the top ones from Objects; the node count."""
        aspace = self._aspace
        for node in self._nodes:
            if node.nodeid in aspace:
                raise RuntimeError(f"node {node.nodeid.to_string()} already exists")
        for node in self._nodes:
            aspace[node.nodeid] = node
        for top in self._top_nodes:
            self._objects.references.append(_reference(_ORGANIZES, True, top))
        return len(self._nodes)
