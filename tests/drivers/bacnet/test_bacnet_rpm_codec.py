"""The fast ReadPropertyMultiple-ACK decoder against bacpypes3's own decoding, and in a poll.

The reference is bacpypes3 itself: ACKs are encoded with its ReadPropertyMultipleACK encoder
and decoded by its ``read_property_multiple`` (the generic APDU decoding plus the datatype
lookup), replayed without a network. The fast decoder must give the same results, or fail the
same way, for every ACK, well-typed or not, whole or damaged.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from datetime import date
from typing import Any, cast

import pytest
from bacpypes3.apdu import APCISequence, ComplexAckPDU, ReadPropertyMultipleACK
from bacpypes3.apdu import ReadPropertyMultipleRequest as BacpypesRequest
from bacpypes3.basetypes import (
    BinaryPV,
    EngineeringUnits,
    ErrorClass,
    ErrorCode,
    ErrorType,
    PriorityArray,
    PriorityValue,
    PropertyReference,
    ReadAccessResult,
    ReadAccessResultElement,
    ReadAccessResultElementChoice,
    ReadAccessSpecification,
    StatusFlags,
)
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import (
    Atomic,
    BitString,
    Boolean,
    CharacterString,
    Date,
    Double,
    Enumerated,
    Integer,
    Null,
    ObjectIdentifier,
    OctetString,
    PropertyIdentifier,
    Real,
    Time,
    Unsigned,
)
from bacpypes3.service.object import ReadWritePropertyMultipleServices
from bacpypes3.vendor import get_vendor_info
from hypothesis import given, settings
from hypothesis import strategies as st

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Severity, Substatus, TagDef
from drivers.bacnet import BacnetDeviceConfig, BacnetDriver, rpm_codec
from drivers.bacnet import driver as driver_module
from drivers.bacnet.rpm_codec import (
    AckDecodingError,
    PropertyAccessError,
    PropertyResult,
    decode_ack,
)
from drivers.base import CommunicationTimeoutError
from plc_sim.device import FaultKind
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from tests.drivers.bacnet.bacnet_support import DEVICE, DEVICE_INSTANCE

pytestmark = pytest.mark.timeout(120)

VENDOR = get_vendor_info(0)
"""ASHRAE's object classes: what bacpypes3 uses for a device it knows no vendor of."""

ANALOG = ("analog-input", "analog-output", "analog-value")
BINARY = ("binary-input", "binary-output", "binary-value")
MULTI_STATE = ("multi-state-input", "multi-state-output", "multi-state-value")
COMMANDABLE = ("analog-output", "analog-value", "binary-output", "multi-state-output")
OBJECT_TYPES = (*ANALOG, *BINARY, *MULTI_STATE, "large-analog-value", "integer-value", "date-value")
PROPRIETARY_PROPERTY = 600

# -- the reference: bacpypes3's read_property_multiple, replayed ---------------------------


class Undecodable(Exception):
    """bacpypes3 could not decode the ACK (its application would answer invalid-tag)."""


class Replay:
    """Stands in for a bacpypes3 application that got ``ack`` as the answer to its request."""

    def __init__(self, ack: ComplexAckPDU) -> None:
        self.ack = ack

    async def request(self, _request: object) -> object:
        # What ApplicationServiceAccessPoint.sap_response does with an arriving ComplexACK.
        try:
            return APCISequence.decode(copy_of(self.ack))
        except Exception as err:
            raise Undecodable from err


def run_to_end(coroutine: Any) -> Any:
    """Run a coroutine that never waits (the replay answers at once) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the replayed request waited")


def copy_of(ack: ComplexAckPDU) -> ComplexAckPDU:
    """A fresh ACK with the same header and data (bacpypes3's decoding consumes the data)."""
    copy = ComplexAckPDU()
    copy.update(ack)
    copy.put_data(bytes(ack.pduData))
    return copy


Outcome = tuple[str, object]


def bacpypes3_outcome(ack: ComplexAckPDU) -> Outcome:
    """bacpypes3's results for ``ack`` as PropertyResults, or how it fails."""
    parameters = [ObjectIdentifier("device:1"), [PropertyIdentifier("object-name")]]
    try:
        rows = run_to_end(
            ReadWritePropertyMultipleServices.read_property_multiple(
                Replay(ack),
                Address("192.0.2.1"),
                parameters,
                vendor_info=VENDOR,
            )
        )
    except Undecodable:
        return ("undecodable", None)
    except Exception as err:
        return ("raises", (type(err), str(err)))
    results = []
    for object_id, property_id, index, value in rows:
        key = f"{object_id[0]}:{object_id[1]}"
        array_index = None if index is None else int(index)
        results.append(PropertyResult(key, str(property_id), array_index, as_error(value)))
    return ("results", results)


def as_error(value: object) -> object:
    """A property access error as the fast decoder gives it; any other value unchanged."""
    if isinstance(value, ErrorType):
        return PropertyAccessError(str(value.errorClass), str(value.errorCode))
    return value


def fast_outcome(ack: ComplexAckPDU) -> Outcome:
    """The fast decoder's results for ``ack``, or how it fails."""
    try:
        return ("results", decode_ack(copy_of(ack), VENDOR))
    except AckDecodingError:
        return ("undecodable", None)
    except Exception as err:
        return ("raises", (type(err), str(err)))


def same_value(left: object, right: object) -> bool:
    """Same type and same value; what the driver's mapping sees of either is the same."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and isinstance(right, float):
        same = struct.pack(">d", left) == struct.pack(">d", right) or (
            math.isnan(left) and math.isnan(right)
        )
        return same and repr(left) == repr(right)
    if isinstance(left, Atomic):
        return bool(left == right) and repr(left) == repr(right) and str(left) == str(right)
    if hasattr(left, "encode") and hasattr(right, "encode"):  # constructed: compare encodings
        return bool(left.encode().encode().pduData == right.encode().encode().pduData)
    return left == right


def assert_same_outcome(ack: ComplexAckPDU) -> None:
    expected, actual = bacpypes3_outcome(ack), fast_outcome(ack)
    assert actual[0] == expected[0], (actual, expected)
    if expected[0] != "results":
        assert actual == expected
        return
    assert isinstance(actual[1], list)
    assert isinstance(expected[1], list)
    assert len(actual[1]) == len(expected[1])
    for ours, theirs in zip(actual[1], expected[1], strict=True):
        assert (ours.object_key, ours.property_name, ours.array_index) == (
            theirs.object_key,
            theirs.property_name,
            theirs.array_index,
        )
        assert same_value(ours.value, theirs.value), (ours, theirs)


# -- generated ACKs ----------------------------------------------------------------------

UTF8_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)

any_atomic: st.SearchStrategy[Any] = st.one_of(
    st.just(Null(())),
    st.booleans().map(Boolean),
    st.integers(0, 2**32 - 1).map(Unsigned),
    st.integers(-(2**31), 2**31 - 1).map(Integer),
    st.floats(width=32).map(Real),
    st.floats().map(Double),
    st.binary(max_size=6).map(OctetString),
    UTF8_TEXT.map(CharacterString),
    st.text(st.characters(max_codepoint=255), max_size=10).map(
        lambda text: CharacterString(text, _encoding=5)
    ),
    st.lists(st.integers(0, 1), max_size=12).map(BitString),
    st.integers(0, 2**32 - 1).map(Enumerated),
    st.dates(date(1901, 1, 1), date(2154, 12, 31)).map(lambda day: Date(day.isoformat())),
    st.just(Time("12:34:56")),
    st.tuples(st.sampled_from(OBJECT_TYPES), st.integers(0, 4194302)).map(ObjectIdentifier),
)
"""Any primitive value: on a property of another datatype, bacpypes3 refuses it."""


def present_values(object_type: str) -> st.SearchStrategy[Any]:
    if object_type in ANALOG:
        return st.floats(width=32).map(Real)
    if object_type in BINARY:
        return st.sampled_from((0, 1)).map(BinaryPV)
    if object_type in MULTI_STATE:
        return st.integers(1, 2**32 - 1).map(Unsigned)
    if object_type == "large-analog-value":
        return st.floats().map(Double)
    if object_type == "integer-value":
        return st.integers(-(2**31), 2**31 - 1).map(Integer)
    return st.dates(date(1901, 1, 1), date(2154, 12, 31)).map(lambda day: Date(day.isoformat()))


def priority_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(PriorityValue(null=())), st.floats(width=32).map(lambda x: PriorityValue(real=x))
    )


@st.composite
def well_typed(draw: st.DrawFn, object_type: str) -> tuple[object, int | None, object]:
    """A property of ``object_type``, an array index or None, and a value of its datatype."""
    names = ["present-value", "status-flags", "out-of-service", "object-name", "description"]
    if object_type in ANALOG:
        names += ["units", "cov-increment"]
    if object_type in MULTI_STATE:
        names += ["number-of-states", "state-text"]
    if object_type in COMMANDABLE:
        names += ["priority-array"]
        if object_type in ANALOG:
            names += ["relinquish-default"]
    name = draw(st.sampled_from([*names, PROPRIETARY_PROPERTY]))
    strategies: dict[object, st.SearchStrategy[Any]] = {
        "present-value": present_values(object_type),
        "status-flags": st.lists(st.integers(0, 1), max_size=12).map(StatusFlags),
        "out-of-service": st.booleans().map(Boolean),
        "object-name": UTF8_TEXT.map(CharacterString),
        "description": UTF8_TEXT.map(CharacterString),
        "units": st.integers(0, 2**16).map(EngineeringUnits),
        "cov-increment": st.floats(width=32).map(Real),
        "relinquish-default": st.floats(width=32).map(Real),
        "number-of-states": st.integers(0, 2**32 - 1).map(Unsigned),
        PROPRIETARY_PROPERTY: any_atomic,
    }
    if name == "state-text":
        index = draw(st.none() | st.integers(0, 20))
        if index is None:
            value = ArrayOf(CharacterString)(draw(st.lists(UTF8_TEXT, max_size=4)))
        else:
            value = Unsigned(draw(st.integers(0, 20))) if index == 0 else draw(UTF8_TEXT)
            value = value if index == 0 else CharacterString(value)
        return name, index, value
    if name == "priority-array":
        index = draw(st.none() | st.integers(0, 16))
        if index is None:
            return (
                name,
                None,
                PriorityArray(draw(st.lists(priority_values(), min_size=16, max_size=16))),
            )
        return name, index, Unsigned(16) if index == 0 else draw(priority_values())
    # An index on a property that is no array: the device should refuse, bacpypes3 decodes.
    index = draw(st.none() | st.none() | st.integers(0, 2**32 - 1))
    return name, index, draw(strategies[name])


@st.composite
def result_elements(draw: st.DrawFn, object_type: str) -> Any:
    name, index, value = draw(well_typed(object_type))
    kind = draw(st.sampled_from(("value", "value", "value", "mistyped", "error")))
    if kind == "error":
        error = ErrorType(
            errorClass=ErrorClass(draw(st.integers(0, 12))),
            errorCode=ErrorCode(draw(st.integers(0, 300))),
        )
        choice = ReadAccessResultElementChoice(propertyAccessError=error)
    else:
        if kind == "mistyped":
            value = draw(any_atomic)
        choice = ReadAccessResultElementChoice(propertyValue=value)
    element = ReadAccessResultElement(
        propertyIdentifier=PropertyIdentifier(name), readResult=choice
    )
    if index is not None:
        element.propertyArrayIndex = index
    return element


@st.composite
def read_access_results(draw: st.DrawFn) -> Any:
    object_type = draw(st.sampled_from(OBJECT_TYPES))
    instance = draw(st.integers(0, 4194303))
    elements = draw(st.lists(result_elements(object_type), max_size=6))
    return ReadAccessResult(
        objectIdentifier=ObjectIdentifier((object_type, instance)), listOfResults=elements
    )


def encoded(results: list[Any]) -> ComplexAckPDU:
    """The ACK as it arrives: a generic ComplexACK with the service data undecoded."""
    ack = ReadPropertyMultipleACK(listOfReadAccessResults=results).encode()
    ack.apduInvokeID = 1
    ack.pduSource = Address("192.0.2.1")
    return copy_of(ack)


acks = st.lists(read_access_results(), max_size=5).map(encoded)


@settings(max_examples=400)
@given(ack=acks)
def test_fast_decoding_gives_bacpypes3s_results(ack: ComplexAckPDU) -> None:
    assert_same_outcome(ack)


@settings(max_examples=400)
@given(ack=acks, data=st.data())
def test_damaged_acks_decode_or_fail_as_bacpypes3s(ack: ComplexAckPDU, data: st.DataObject) -> None:
    octets = bytearray(ack.pduData)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, max(len(octets) - 1, 0)))
        change = data.draw(st.sampled_from(("flip", "set", "insert", "delete", "cut")))
        if change == "insert" or not octets:
            octets.insert(where, data.draw(st.integers(0, 255)))
        elif change == "flip":
            octets[where] ^= 1 << data.draw(st.integers(0, 7))
        elif change == "set":
            octets[where] = data.draw(st.integers(0, 255))
        elif change == "delete":
            del octets[where]
        else:
            del octets[where:]
    damaged = copy_of(ack)
    damaged.pduData = octets
    assert_same_outcome(damaged)


# -- what the fast decoder reads itself, and what it leaves to bacpypes3 --------------------


def element(name: object, value: Any = None, *, index: int | None = None) -> Any:
    choice = ReadAccessResultElementChoice(propertyValue=value)
    result = ReadAccessResultElement(propertyIdentifier=PropertyIdentifier(name), readResult=choice)
    if index is not None:
        result.propertyArrayIndex = index
    return result


def failed(name: str, error_class: str, error_code: str) -> Any:
    error = ErrorType(errorClass=ErrorClass(error_class), errorCode=ErrorCode(error_code))
    choice = ReadAccessResultElementChoice(propertyAccessError=error)
    return ReadAccessResultElement(propertyIdentifier=PropertyIdentifier(name), readResult=choice)


def ack_of(*objects: tuple[str, list[Any]]) -> ComplexAckPDU:
    return encoded(
        [
            ReadAccessResult(objectIdentifier=ObjectIdentifier(key), listOfResults=elements)
            for key, elements in objects
        ]
    )


def counting_fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every ACK that goes to bacpypes3's decoding."""
    calls: list[object] = []
    original = rpm_codec.decode_ack_with_bacpypes

    def recorded(ack: Any, vendor_info: Any) -> list[PropertyResult]:
        calls.append(ack)
        return original(ack, vendor_info)

    monkeypatch.setattr(rpm_codec, "decode_ack_with_bacpypes", recorded)
    return calls


def test_point_values_flags_and_errors_are_read_without_bacpypes3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fallbacks = counting_fallbacks(monkeypatch)
    ack = ack_of(
        (
            "analog-input:1",
            [
                element("present-value", Real(20.5)),
                element("status-flags", StatusFlags([0, 1, 0, 0])),
                element("units", EngineeringUnits("degreesCelsius")),
                element("object-name", CharacterString("zone 1 température")),
                element("out-of-service", Boolean(True)),
            ],
        ),
        (
            "multi-state-value:4",
            [
                element("present-value", Unsigned(3)),
                element("state-text", CharacterString("off"), index=3),
                element("state-text", Unsigned(3), index=0),
            ],
        ),
        ("binary-output:2", [element("present-value", BinaryPV("active"))]),
        ("large-analog-value:1", [element("present-value", Double(1e300))]),
        ("integer-value:1", [element("present-value", Integer(-70000))]),
        ("analog-value:9", [failed("present-value", "object", "unknown-object")]),
    )
    results = decode_ack(copy_of(ack), VENDOR)
    assert fallbacks == []
    assert [(r.object_key, r.property_name, r.array_index) for r in results] == [
        ("analog-input:1", "present-value", None),
        ("analog-input:1", "status-flags", None),
        ("analog-input:1", "units", None),
        ("analog-input:1", "object-name", None),
        ("analog-input:1", "out-of-service", None),
        ("multi-state-value:4", "present-value", None),
        ("multi-state-value:4", "state-text", 3),
        ("multi-state-value:4", "state-text", 0),
        ("binary-output:2", "present-value", None),
        ("large-analog-value:1", "present-value", None),
        ("integer-value:1", "present-value", None),
        ("analog-value:9", "present-value", None),
    ]
    values = [r.value for r in results]
    assert [type(v) for v in values[:2]] == [Real, StatusFlags]
    assert isinstance(values[2], EngineeringUnits)
    assert isinstance(values[3], CharacterString)
    assert isinstance(values[4], Boolean)
    assert values[1] == [0, 1, 0, 0]
    assert str(values[2]) == "degrees-celsius"
    assert values[3] == "zone 1 température"
    assert values[5:11] == [3, "off", 3, 1, 1e300, -70000]
    assert type(values[8]) is BinaryPV
    assert values[11] == PropertyAccessError("object", "unknown-object")
    assert_same_outcome(ack)


@pytest.mark.parametrize(
    "what",
    [
        "priority-array",
        "state-text array",
        "date",
        "latin-1 text",
        "proprietary property",
        "mistyped value",
        "unknown object type",
        "long length form",
    ],
)
def test_what_the_fast_decoder_does_not_read_goes_to_bacpypes3(
    what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallbacks = counting_fallbacks(monkeypatch)
    point = element("present-value", Real(1.0))
    elements = {
        "priority-array": element("priority-array", PriorityArray([PriorityValue(null=())] * 16)),
        "state-text array": element("state-text", ArrayOf(CharacterString)(["a", "b"])),
        "date": element("present-value", Date("2025-03-01")),
        "latin-1 text": element("description", CharacterString("Grüße", _encoding=5)),
        "proprietary property": element(PROPRIETARY_PROPERTY, Unsigned(7)),
        "mistyped value": element("present-value", Unsigned(7)),
        "unknown object type": element("present-value", Real(2.0)),
        "long length form": element("object-name", CharacterString("x" * 300)),
    }
    key = "analog-value:1"
    if what in ("state-text array",):
        key = "multi-state-value:1"
    if what == "date":
        key = "date-value:1"
    if what == "unknown object type":
        key = "700:1"  # a proprietary object type bacpypes3 has no class for
    ack = ack_of(("analog-input:1", [point]), (key, [elements[what]]))
    assert_same_outcome(ack)
    if what == "long length form":
        assert fallbacks == []  # lengths over 253 octets are still read (20.2.1.3.1)
    else:
        assert len(fallbacks) == 1


def test_non_canonical_encodings_are_left_to_bacpypes3(monkeypatch: pytest.MonkeyPatch) -> None:
    fallbacks = counting_fallbacks(monkeypatch)
    canonical = bytes(ack_of(("analog-input:1", [element("present-value", Real(1.5))])).pduData)
    assert canonical[:6] == bytes.fromhex("0c000000011e")
    # The object identifier's length in the extended form: X'0D' X'04' for X'0C' (20.2.1.3.1).
    extended = canonical[:1].replace(b"\x0c", b"\x0d\x04") + canonical[1:]
    ack = ack_of()
    ack.pduData = bytearray(extended)
    assert_same_outcome(ack)
    assert len(fallbacks) == 1
    assert fast_outcome(ack)[0] == "results"


def test_answers_that_are_no_read_property_multiple_ack_are_undecodable() -> None:
    ack = ack_of(("analog-input:1", [element("present-value", Real(1.5))]))
    ack.apduService = 12  # readProperty
    with pytest.raises(AckDecodingError):
        decode_ack(ack, VENDOR)
    garbage = ack_of()
    garbage.pduData = bytearray(b"\x0c\x00\x00")
    with pytest.raises(AckDecodingError):
        decode_ack(garbage, VENDOR)


# -- in a poll, against a device over UDP -------------------------------------------------


def make_driver(port: int, *, max_apdu: int = 1476) -> BacnetDriver:
    config = BacnetDeviceConfig(
        host="127.0.0.1",
        port=port,
        device_instance=DEVICE_INSTANCE,
        local_host="127.0.0.1",
        apdu_timeout_s=0.5,
        retries=1,
        max_apdu=max_apdu,
    )
    return BacnetDriver(DEVICE, config, WallClock())


@pytest.fixture
async def driver(server: BacnetDeviceServer) -> AsyncIterator[BacnetDriver]:
    connected = make_driver(server.port)
    await connected.connect()
    yield connected
    await connected.close()


def extra(name: str, address: str, data_type: DataType) -> TagDef:
    return TagDef(name, DEVICE, address, data_type)


async def test_poll_against_a_device_maps_values_flags_and_errors(
    driver: BacnetDriver, tags: dict[str, TagDef], server: BacnetDeviceServer
) -> None:
    server.set_point_status("bldg.z2.temp", fault=True)
    server.set_point_status("bldg.z3.temp", overridden=True)
    points = [
        *tags.values(),
        extra("z1.units", "analog-input:1/units", DataType.INT),
        extra("z1.name", "analog-input:1/object-name", DataType.STRING),
        extra("z1.oos", "analog-input:1/out-of-service", DataType.BOOL),
        extra("z1.flags", "analog-input:1/status-flags", DataType.STRING),
        extra("z1.relinquish", "analog-input:1/relinquish-default", DataType.FLOAT),
        extra("sp.relinquish", "analog-value:1/relinquish-default", DataType.FLOAT),
        extra("mode.states", "multi-state-value:1/number-of-states", DataType.INT),
        extra("damper.priorities", "analog-output:1/priority-array", DataType.STRING),
        extra("ghost", "analog-input:77", DataType.FLOAT),
    ]
    before = driver.diagnostics().requests
    samples = {sample.tag: sample for sample in await driver.read(points)}
    assert driver.diagnostics().requests - before == 1  # one ReadPropertyMultiple
    values = {tag: sample.value for tag, sample in samples.items()}
    assert values == {
        "bldg.z1.temp": 20.1,
        "bldg.z2.temp": 20.2,
        "bldg.z3.temp": 20.3,
        "bldg.setpoint": 21.0,
        "bldg.damper": 30.0,
        "bldg.fan": False,
        "bldg.alarm": False,
        "bldg.mode": 0,
        "z1.units": 62,
        "z1.name": "bldg.z1.temp",
        "z1.oos": False,
        "z1.flags": None,
        "z1.relinquish": None,
        "sp.relinquish": 21.0,
        "mode.states": 3,
        "damper.priorities": None,
        "ghost": None,
    }
    quality = {tag: sample.quality for tag, sample in samples.items()}
    assert (quality["bldg.z2.temp"].severity, quality["bldg.z2.temp"].substatus) == (
        Severity.BAD,
        Substatus.DEVICE_FAILURE,
    )
    assert quality["bldg.z2.temp"].reason == "analog-input:2: status flag fault"
    assert quality["bldg.z3.temp"].substatus is Substatus.LOCAL_OVERRIDE
    assert quality["bldg.z3.temp"].severity is Severity.GOOD
    assert quality["z1.relinquish"].substatus is Substatus.CONFIG_ERROR
    assert quality["z1.relinquish"].reason == (
        "analog-input:1/relinquish-default: BACnet error property/unknown-property"
    )
    assert quality["ghost"].substatus is Substatus.CONFIG_ERROR
    assert quality["ghost"].reason == (
        "analog-input:77/present-value: BACnet error object/unknown-object"
    )
    # A bit string or an array is no tag value: the tag's configuration is wrong.
    assert quality["z1.flags"].substatus is Substatus.CONFIG_ERROR
    assert quality["z1.flags"].reason == (
        "analog-input:1/status-flags: a string tag cannot hold StatusFlags <StatusFlags: >"
    )
    assert quality["damper.priorities"].substatus is Substatus.CONFIG_ERROR
    bad = {tag for tag, q in quality.items() if not q.is_good}
    assert bad == {"bldg.z2.temp", "z1.flags", "z1.relinquish", "damper.priorities", "ghost"}


def request_data(reads: list[tuple[str, list[str]]]) -> bytes:
    """ReadPropertyMultiple service data, encoded by bacpypes3."""
    specs = [
        ReadAccessSpecification(
            objectIdentifier=ObjectIdentifier(key),
            listOfPropertyReferences=[
                PropertyReference(propertyIdentifier=PropertyIdentifier(name)) for name in names
            ],
        )
        for key, names in reads
    ]
    return bytes(BacpypesRequest(listOfReadAccessSpecs=specs).encode().pduData)


async def test_the_drivers_decoding_equals_bacpypes3s_on_the_same_device(
    driver: BacnetDriver, server: BacnetDeviceServer
) -> None:
    server.set_point_status("bldg.z1.temp", out_of_service=True)
    reads = [
        ("analog-input:1", ["present-value", "status-flags", "units", "object-name"]),
        ("analog-input:1", ["relinquish-default", "out-of-service", "description"]),
        ("analog-output:1", ["present-value", "priority-array", "relinquish-default"]),
        ("binary-output:1", ["present-value", "status-flags"]),
        ("multi-state-value:1", ["present-value", "number-of-states", "state-text"]),
        ("analog-input:77", ["present-value", "status-flags"]),
    ]
    app: Any = driver._app  # the driver's own bacpypes3 application, reading both ways
    address = Address(f"127.0.0.1:{server.port}")
    ours = await app.read_multiple(address, request_data(reads))
    parameters: list[Any] = []
    for key, names in reads:
        parameters += [ObjectIdentifier(key), [PropertyIdentifier(name) for name in names]]
    theirs = await app.read_property_multiple(address, parameters)
    assert len(ours) == len(theirs) == sum(len(names) for _, names in reads)
    for result, (object_id, property_id, index, value) in zip(ours, theirs, strict=True):
        assert result.object_key == f"{object_id[0]}:{object_id[1]}"
        assert (result.property_name, result.array_index) == (str(property_id), index)
        assert same_value(result.value, as_error(value)), (result, value)
    assert list(ours[1].value) == [0, 0, 0, 1]  # out of service
    assert ours[-1].value == PropertyAccessError("object", "unknown-object")
    assert not app.asap.undecoded  # nothing left waiting for an undecoded answer


async def test_a_segmented_answer_is_reassembled_then_decoded(
    server: BacnetDeviceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    segmented: list[bool] = []

    def recording(ack: Any, vendor_info: Any) -> list[PropertyResult]:
        segmented.append(bool(ack.apduSeg))
        return decode_ack(ack, vendor_info)

    monkeypatch.setattr(driver_module, "decode_ack", recording)
    small = make_driver(server.port, max_apdu=50)  # the smallest APDU (20.1.2.5)
    try:
        samples = await small.read(
            [
                extra("t", "analog-input:1", DataType.FLOAT),
                extra("n", "analog-input:1/object-name", DataType.STRING),
                extra("d", "analog-input:1/description", DataType.STRING),
                extra("u", "analog-input:1/units", DataType.INT),
            ]
        )
    finally:
        await small.close()
    assert segmented == [True]
    assert [sample.value for sample in samples] == [20.1, "bldg.z1.temp", "bldg.z1.temp", 62]


async def test_no_answer_times_out_and_leaves_nothing_waiting(
    driver: BacnetDriver, tags: dict[str, TagDef], server: BacnetDeviceServer
) -> None:
    server.device.set_fault(FaultKind.OFFLINE)
    await server.publish()
    with pytest.raises(CommunicationTimeoutError):
        await driver.read([tags["bldg.z1.temp"]])
    app: Any = driver._app
    assert not app.asap.undecoded
    server.device.clear_fault()
    await server.publish()
    assert (await driver.read([tags["bldg.z1.temp"]]))[0].value == 20.1


class GarbledDevice(asyncio.DatagramProtocol):
    """A BACnet/IP device that refuses ReadProperty and answers ReadPropertyMultiple with a
    ComplexACK whose service data is cut short (ASHRAE 135-2020, Annex J, 6 and 20.1)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # BVLC (4 octets), NPDU without addresses (2), confirmed request APDU (20.1.2).
        if len(data) < 10 or data[:2] != b"\x81\x0a" or data[6] >> 4 != 0:
            return
        invoke_id, service = data[8], data[9]
        if service == 12:  # ReadProperty: error property/unknown-property
            apdu = bytes([0x50, invoke_id, service, 0x91, 0x02, 0x91, 0x20])
        else:  # a ComplexACK whose object identifier stops after one octet
            apdu = bytes([0x30, invoke_id, service, 0x0C, 0x00])
        npdu = b"\x01\x00" + apdu
        assert self.transport is not None
        self.transport.sendto(b"\x81\x0a" + (4 + len(npdu)).to_bytes(2, "big") + npdu, addr)


async def test_an_undecodable_answer_gives_bad_samples() -> None:
    # bacpypes3 makes an invalid-tag Error of an ACK it cannot decode, but one without the
    # invoke id, so its request never completes; the driver fails the read with that error.
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(GarbledDevice, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    driver = make_driver(port)
    try:
        await driver.connect()
        samples = await driver.read(
            [
                extra("a", "analog-input:1", DataType.FLOAT),
                extra("b", "binary-value:2", DataType.BOOL),
            ]
        )
    finally:
        await driver.close()
        transport.close()
    for sample in samples:
        assert sample.value is None
        assert sample.quality.substatus is Substatus.DEVICE_FAILURE
        assert sample.quality.reason.endswith(
            "read 2 objects from analog-input:1: BACnet error communication/invalid-tag"
        )
    diagnostics = driver.diagnostics()
    # Refused at connect: the identity (wildcard, then configured instance) and the max APDU.
    assert diagnostics.errors_by_kind == {"device_failure": 4}
    assert diagnostics.requests == 4
