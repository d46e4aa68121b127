from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from controlcenter.model import DataType, Severity, Substatus, TagDef
from controlcenter.site.config import load_site
from drivers.base import AddressError
from drivers.opcua.config import OpcUaDeviceConfig
from drivers.opcua.session import make_node_id
from drivers.opcua.subscriptions import settings_for, shard, subscription_parameters
from drivers.opcua.values import quality_of, to_sample, to_variant, variant_type_for

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SOURCE = datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC)


def tag(data_type: DataType) -> TagDef:
    return TagDef("t", "d", "ns=2;s=T", data_type)


def value(raw: object, variant_type: ua.VariantType, status: int = 0) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(raw, variant_type),
        ua.StatusCode(ua.UInt32(status)),
        SourceTimestamp=SOURCE,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "severity", "substatus"),
    [
        (StatusCodes.Good, Severity.GOOD, Substatus.NON_SPECIFIC),
        (StatusCodes.Good | 0x0400, Severity.GOOD, Substatus.NON_SPECIFIC),
        (StatusCodes.UncertainLastUsableValue, Severity.UNCERTAIN, Substatus.LAST_USABLE),
        (StatusCodes.BadSensorFailure, Severity.BAD, Substatus.SENSOR_FAILURE),
        (StatusCodes.BadNotConnected, Severity.BAD, Substatus.NOT_CONNECTED),
        (StatusCodes.BadNodeIdUnknown, Severity.BAD, Substatus.CONFIG_ERROR),
        (StatusCodes.BadInternalError, Severity.BAD, Substatus.NON_SPECIFIC),
    ],
)
def test_status_codes_map_to_quality(status: int, severity: Severity, substatus: Substatus) -> None:
    quality = quality_of(status)
    assert (quality.severity, quality.substatus) == (severity, substatus)


def test_samples_keep_the_source_time_and_convert_to_the_tag_type() -> None:
    sample = to_sample(tag(DataType.FLOAT), value(3, ua.VariantType.Int16), NOW)
    assert (sample.value, type(sample.value), sample.source_time) == (3.0, float, SOURCE)
    assert to_sample(tag(DataType.INT), value(4.0, ua.VariantType.Double), NOW).value == 4
    assert to_sample(tag(DataType.BOOL), value(1, ua.VariantType.Byte), NOW).value is True
    text = to_sample(
        tag(DataType.STRING), value(ua.LocalizedText("on"), ua.VariantType.LocalizedText), NOW
    )
    assert text.value == "on"


def test_unusable_values_become_bad_samples_with_a_reason() -> None:
    bad = to_sample(
        tag(DataType.FLOAT), value(1.0, ua.VariantType.Double, StatusCodes.BadOutOfService), NOW
    )
    assert (bad.value, bad.quality.label()) == (None, "bad:out_of_service")
    fraction = to_sample(tag(DataType.INT), value(4.5, ua.VariantType.Double), NOW)
    assert fraction.quality.label() == "bad:config_error"
    not_a_number = to_sample(tag(DataType.FLOAT), value(math.nan, ua.VariantType.Double), NOW)
    assert not_a_number.quality.label() == "bad:sensor_failure"
    empty = to_sample(tag(DataType.FLOAT), ua.DataValue(ua.Variant()), NOW)
    assert empty.quality.label() == "bad:config_error"
    assert empty.source_time == NOW


def test_writes_are_encoded_as_the_variables_type() -> None:
    assert to_variant(1.5, ua.VariantType.Float, "w").VariantType is ua.VariantType.Float
    assert to_variant(2.0, ua.VariantType.Int16, "w").Value == 2
    assert to_variant(1, ua.VariantType.Boolean, "w").Value is True
    with pytest.raises(AddressError, match="out of the Byte range"):
        to_variant(256, ua.VariantType.Byte, "w")
    with pytest.raises(AddressError, match="cannot take"):
        to_variant(2.5, ua.VariantType.Int32, "w")
    with pytest.raises(AddressError, match="finite"):
        to_variant(math.inf, ua.VariantType.Double, "w")
    with pytest.raises(AddressError, match="cannot take"):
        to_variant(True, ua.VariantType.Double, "w")


def test_data_types_resolve_to_built_in_encodings() -> None:
    assert variant_type_for(make_node_id(10), None) is ua.VariantType.Float
    assert variant_type_for(make_node_id(290), None) is ua.VariantType.Double  # Duration
    custom = make_node_id("MyEnum", 2)
    current = ua.Variant(3, ua.VariantType.Int32)
    assert variant_type_for(custom, current) is ua.VariantType.Int32
    with pytest.raises(AddressError):
        variant_type_for(custom, None)


def test_sharding_and_subscription_parameters() -> None:
    points = [tag(DataType.FLOAT)] * 6000
    assert [len(part) for part in shard(points, 2500)] == [2500, 2500, 1000]
    settings = settings_for(OpcUaDeviceConfig("opc.tcp://h:4840/", keepalive_s=3.0), 0.5)
    parameters = subscription_parameters(settings)
    # Publishing every quarter interval; a keep-alive at most every two publishing intervals.
    assert parameters.RequestedPublishingInterval == 125.0
    assert parameters.RequestedMaxKeepAliveCount == 2
    assert parameters.RequestedLifetimeCount >= 3 * parameters.RequestedMaxKeepAliveCount
    with pytest.raises(ValueError, match="positive"):
        settings_for(OpcUaDeviceConfig("opc.tcp://h:4840/"), 0)


def test_date_time_variables_fit_datetime_and_string_tags() -> None:
    moment = datetime(2025, 12, 24, 18, 30, 15, 125_000, tzinfo=UTC)
    as_datetime = to_sample(tag(DataType.DATETIME), value(moment, ua.VariantType.DateTime), NOW)
    assert (as_datetime.value, as_datetime.quality.label()) == (moment, "good")
    naive = to_sample(
        tag(DataType.DATETIME), value(moment.replace(tzinfo=None), ua.VariantType.DateTime), NOW
    )
    assert naive.value == moment  # a DateTime is UTC (Part 6, 5.2.2.5)
    as_text = to_sample(tag(DataType.STRING), value(moment, ua.VariantType.DateTime), NOW)
    assert as_text.value == "2025-12-24T18:30:15.125000+00:00"
    wrong = to_sample(tag(DataType.DATETIME), value(3.5, ua.VariantType.Double), NOW)
    assert wrong.quality.label() == "bad:config_error"
    assert to_variant(moment, ua.VariantType.DateTime, "w").Value == moment
    with pytest.raises(AddressError, match="no time zone"):
        to_variant(moment.replace(tzinfo=None), ua.VariantType.DateTime, "w")


def test_a_site_file_declares_datetime_tags_of_opcua_devices(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: {name: Plant, latitude: 52.0, longitude: 4.9, timezone: Europe/Amsterdam}\n"
        "devices:\n"
        "  - {name: plc1, protocol: opcua, endpoint: 'opc.tcp://127.0.0.1:4840/'}\n"
        "tags:\n"
        "  - {name: plc1.last_service, device: plc1, address: 'ns=2;s=LastService',"
        " data_type: datetime}\n",
        encoding="utf-8",
    )
    (tag,) = load_site(site, tmp_path / "var").tags
    assert tag.data_type is DataType.DATETIME
