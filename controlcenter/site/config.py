"""The site file: pydantic models of the site, its devices, tags, automation and displays.

A site file is validated as a whole before anything starts. Every problem is reported with the
file, the line and column and the offending key, so an engineer can fix a file in one pass.

The site file names the rule files (``automation.rule_files``, read by
``controlcenter.site.rulefile``) and the identity the rules command as; it defines the site's
areas and interlocks itself. Rules no longer live in the site file: a ``rules:`` section is
refused with a pointer to rule files.

The alarm sections (``alarm_templates``, ``assets``, ``alarms``, ``alarm_suppression``,
``communication_alarms``, ``notifications``) are read by ``controlcenter.site.alarmfile`` and
checked against the site's tags, devices and areas when the file is loaded. Assets also say
where they stand (``position``, ``district``) and what they supply (``feeds``); the
``districts`` section draws the site's districts (outlines) on the map.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import re
import stat
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from controlcenter.automation import (
    NOWHERE,
    AlarmDef,
    AreaDef,
    AreaSuppressionDef,
    AssetDef,
    DistrictDef,
    EmailSettings,
    Expression,
    GeoPoint,
    InterlockDef,
    NotificationRouteDef,
    OnCallGroupDef,
    SiteLocation,
    SourceSpot,
    WebhookSettings,
)
from controlcenter.model import DataType, Role, TagDef, User
from controlcenter.site.alarmfile import (
    MAX_ASSET_TYPES,
    MAX_ASSETS,
    MAX_DISTRICTS,
    MAX_SINGLE_ALARMS,
    MAX_SUPPRESSIONS,
    MAX_TEMPLATE_ALARMS,
    AlarmBook,
    AlarmConfig,
    AlarmSections,
    AssetConfig,
    CommunicationAlarmsConfig,
    DistrictConfig,
    EmailConfig,
    GroupConfig,
    GuidanceConfig,
    NotificationsConfig,
    OverrideConfig,
    RouteConfig,
    SuppressionConfig,
    TemplateAlarmConfig,
    WebhookConfig,
    build_alarm_book,
)
from controlcenter.site.fields import (
    ExpressionText,
    FiniteFloat,
    Integer,
    Name,
    PathRoots,
    SitePath,
    Text,
)
from controlcenter.site.opendata import (
    DatasetConfig,
    OpenDataConfig,
    OpenDataset,
    open_data_problems,
    resolve_datasets,
)
from controlcenter.site.publicalerts import PublicAlertsConfig
from controlcenter.site.validation import ModelVocabulary, problems_from_validation_error
from controlcenter.site.yamlsource import (
    MAX_PROBLEMS,
    LocatedDocument,
    Location,
    SourceFileError,
    SourceProblem,
    collector_paused,
    load_located_yaml,
)
from drivers.bacnet.address import validate_address as validate_bacnet_address
from drivers.base import AddressError
from drivers.feeds.address import validate_gbfs_address, validate_gtfs_address
from drivers.modbus.address import ModbusAddress
from drivers.modbus.address import parse_address as parse_modbus_address
from drivers.modbus.address import validate_address as validate_modbus_address
from drivers.mqtt.address import validate_address as validate_mqtt_address
from drivers.ocpp.address import CHARGE_POINT_ID
from drivers.ocpp.address import validate_address as validate_ocpp_address
from drivers.opcua.address import validate_address as validate_opcua_address
from historian.compression import CompressionSettings

DOTTED_NAME = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"

MAX_DEVICES = 10_000
MAX_TAGS = 200_000
"""Largest site: four times the simulated city at scale 35 (773 devices, 49,555 tags)."""
MAX_RULE_FILES = 100
MAX_AREAS = 1000
MAX_INTERLOCKS = 10_000
MAX_PATTERNS = 10_000
"""Most tag names or patterns of one area or interlock."""
RULES_MOVED = "rules now live in rule files: list them under automation.rule_files"

AddressValidator = Callable[[str, DataType], None]
# Each protocol checks its own address syntax; the site file is refused before anything starts.
ADDRESS_VALIDATORS: dict[str, AddressValidator] = {
    "modbus": validate_modbus_address,
    "opcua": validate_opcua_address,
    "bacnet": validate_bacnet_address,
    "mqtt": validate_mqtt_address,
    "ocpp": validate_ocpp_address,
    "gtfs_realtime": validate_gtfs_address,
    "gbfs": validate_gbfs_address,
}


EdgeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
"""An edge collector's name: one NATS subject token (lower case, digits, ``-`` and ``_``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(_Strict):
    """Where the site is: its name, location and time zone."""

    name: Name = Field(min_length=1)
    latitude: FiniteFloat = Field(ge=-90, le=90)
    longitude: FiniteFloat = Field(ge=-180, le=180)
    timezone: Name

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
            raise ValueError(f"unknown time zone '{value}'") from err
        return value


class ModbusDeviceConfig(_Strict):
    """A Modbus TCP device (Modbus Messaging on TCP/IP Implementation Guide v1.0b)."""

    name: Name = Field(pattern=DOTTED_NAME)
    protocol: Literal["modbus"]
    endpoint: Name = Field(description="host:port of the Modbus TCP server")
    unit_id: Integer = Field(default=1, ge=0, le=255)
    scan_interval: FiniteFloat = Field(default=1.0, gt=0, le=3600, description="seconds")
    timeout: FiniteFloat = Field(default=1.0, gt=0, le=60, description="seconds per request")
    retries: Integer = Field(default=0, ge=0, le=5, description="repeats of an unanswered request")
    word_order: Literal["big", "little"] = Field(
        default="big", description="high word of 32/64-bit values first (big) or last (little)"
    )
    byte_order: Literal["big", "little"] = Field(
        default="big", description="bytes in each register as MAP 4.2 (big) or swapped (little)"
    )
    max_gap: Integer = Field(
        default=8, ge=0, le=120, description="unused registers a read may span"
    )
    max_registers_per_read: Integer = Field(default=125, ge=4, le=125)
    max_bits_per_read: Integer = Field(default=2000, ge=1, le=2000)
    min_request_gap: FiniteFloat = Field(
        default=0.0, ge=0, le=10, description="seconds between requests to this endpoint"
    )
    reconnect_delay_max: FiniteFloat = Field(
        default=5.0, gt=0, le=300, description="longest wait between connection attempts"
    )
    multiple_writes_only: bool = Field(
        default=False, description="write with FC15/FC16 only (devices without FC5/FC6)"
    )
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_endpoint(value)
        return value

    @property
    def host(self) -> str:
        """Host part of the endpoint."""
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        """Port part of the endpoint."""
        return split_endpoint(self.endpoint)[1]


class OpcUaDeviceConfig(_Strict):
    """An OPC UA server (OPC UA Part 4 client services; Part 7 security policies)."""

    name: Name = Field(pattern=DOTTED_NAME)
    protocol: Literal["opcua"]
    endpoint: Name = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port[/path]")
    scan_interval: FiniteFloat = Field(
        default=1.0, gt=0, le=3600, description="seconds: sampling/publishing or poll interval"
    )
    timeout: FiniteFloat = Field(default=4.0, gt=0, le=60, description="seconds per service call")
    subscribe: bool = Field(
        default=True, description="monitored items (default) or batched reads every scan"
    )
    security_policy: Literal["None", "Basic256Sha256", "Aes256_Sha256_RsaPss"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: SitePath | None = Field(default=None, description="client certificate file")
    private_key: SitePath | None = Field(default=None, description="client private key file")
    certificate_dir: SitePath | None = Field(
        default=None, description="where to generate a self-signed client certificate"
    )
    trusted_server_certificates: list[SitePath] = Field(default_factory=list, max_length=100)
    username: Name | None = None
    password_env: Name | None = Field(
        default=None, description="environment variable holding the password (never the file)"
    )
    deadband: FiniteFloat = Field(default=0.0, ge=0, description="absolute data-change deadband")
    max_items_per_subscription: Integer = Field(default=2500, ge=1, le=100_000)
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @model_validator(mode="after")
    def _security_consistent(self) -> OpcUaDeviceConfig:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode are both None or both set")
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key are given together or not at all")
        if self.password_env is not None and not self.username:
            raise ValueError("password_env needs a username")
        return self


class BacnetDeviceConfig(_Strict):
    """A BACnet/IP device at a direct address (ASHRAE 135 Annex J)."""

    name: Name = Field(pattern=DOTTED_NAME)
    protocol: Literal["bacnet"]
    endpoint: Name = Field(description="host:port of the device's BACnet/IP (UDP) port")
    device_instance: Integer = Field(ge=0, le=4_194_302)
    scan_interval: FiniteFloat = Field(default=5.0, gt=0, le=3600, description="seconds")
    timeout: FiniteFloat = Field(default=1.0, gt=0, le=30, description="APDU timeout, seconds")
    retries: Integer = Field(default=1, ge=0, le=5)
    local_endpoint: Name = Field(
        default="127.0.0.1:0", description="host:port the center binds for this device"
    )
    cov: bool = Field(default=True, description="SubscribeCOV (default) or polling")
    cov_lifetime: Integer = Field(default=300, ge=10, le=86_400, description="seconds")
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_endpoint(value)
        return value

    @field_validator("local_endpoint")
    @classmethod
    def _local_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not _is_decimal(port, 5) or int(port) > 65535:
            raise ValueError(f"local endpoint '{value}' is not host:port (port 0: any free)")
        return value

    @property
    def host(self) -> str:
        """Host part of the endpoint."""
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        """Port part of the endpoint."""
        return split_endpoint(self.endpoint)[1]


class OcppChargePointConfig(_Strict):
    """A charge point the OCPP central system accepts (security profile 1: Basic auth)."""

    id: Name = Field(pattern=rf"^{CHARGE_POINT_ID}$", description="the charge point's identity")
    password_env: Name = Field(
        description="environment variable holding its password (never the file)"
    )
    max_power_w: FiniteFloat = Field(default=350_000.0, gt=0, le=100e6, description="rating, W")


class OcppDeviceConfig(_Strict):
    """The center as OCPP central system (1.6J and 2.0.1): charge points connect to it."""

    name: Name = Field(pattern=DOTTED_NAME)
    protocol: Literal["ocpp"]
    listen: Name = Field(description="host:port the central system listens on (port 0: any free)")
    charge_points: list[OcppChargePointConfig] = Field(min_length=1, max_length=10_000)
    scan_interval: FiniteFloat = Field(
        default=10.0, gt=0, le=3600, description="seconds between keep-alives to the scan engine"
    )
    heartbeat_interval: Integer = Field(
        default=60, ge=1, le=86_400, description="seconds, handed to each charge point at boot"
    )
    silence_factor: FiniteFloat = Field(
        default=2.5, ge=1, le=100, description="heartbeats of silence before points go Bad"
    )
    timeout: FiniteFloat = Field(
        default=10.0, gt=0, le=120, description="seconds per call and per command's readback"
    )
    id_tag: Name = Field(default="CITY-CONTROL", max_length=20, description="remote-start token")
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @field_validator("listen")
    @classmethod
    def _listen_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not _is_decimal(port, 5) or int(port) > 65535:
            raise ValueError(f"listen address '{value}' is not host:port (port 0: any free)")
        return value

    @field_validator("charge_points")
    @classmethod
    def _unique_ids(cls, value: list[OcppChargePointConfig]) -> list[OcppChargePointConfig]:
        seen: set[str] = set()
        for point in value:
            if point.id in seen:
                raise ValueError(f"charge point '{point.id}' is listed twice")
            seen.add(point.id)
        return value


class _FeedDeviceConfig(_Strict):
    """What both feed publishers share: a base URL, polling and how old a feed may get."""

    name: Name = Field(pattern=DOTTED_NAME)
    endpoint: Name = Field(
        pattern=r"^https?://[^\s/]+", description="base URL of the publisher (http or https)"
    )
    scan_interval: FiniteFloat = Field(default=15.0, gt=0, le=3600, description="seconds")
    timeout: FiniteFloat = Field(default=5.0, gt=0, le=60, description="seconds per request")
    max_bytes: Integer = Field(
        default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest body"
    )
    uncertain_after: FiniteFloat = Field(
        default=60.0, ge=0, le=86_400, description="seconds past the feed's validity: Uncertain"
    )
    bad_after: FiniteFloat = Field(
        default=300.0, gt=0, le=7 * 86_400, description="seconds past the feed's validity: Bad"
    )
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @model_validator(mode="after")
    def _ordered_ages(self) -> _FeedDeviceConfig:
        if not self.uncertain_after < self.bad_after:
            raise ValueError("uncertain_after must be below bad_after")
        return self

    def url(self, path: str) -> str:
        """``path`` under the endpoint, or ``path`` itself when it is a whole URL."""
        if path.startswith(("http://", "https://")):
            return path
        return self.endpoint.rstrip("/") + "/" + path.lstrip("/")


_FEED_PATH = r"^(https?://\S+|/\S*)$"


def _feed_path(value: str) -> str:
    if not re.match(_FEED_PATH, value):
        raise ValueError(f"'{value}' is neither a path starting with / nor an http(s) URL")
    return value


FeedPath = Annotated[Name, AfterValidator(_feed_path)]
"""A feed's path under its publisher's endpoint, or a whole http(s) URL."""


class GtfsRealtimeDeviceConfig(_FeedDeviceConfig):
    """A GTFS-Realtime publisher (VehiclePositions, TripUpdates) polled over HTTP."""

    protocol: Literal["gtfs_realtime"]
    vehicle_positions: FeedPath | None = Field(
        default="/gtfs-rt/vehicle_positions.pb", description="path or URL"
    )
    trip_updates: FeedPath | None = Field(
        default="/gtfs-rt/trip_updates.pb", description="path or URL"
    )

    @model_validator(mode="after")
    def _some_feed(self) -> GtfsRealtimeDeviceConfig:
        if self.vehicle_positions is None and self.trip_updates is None:
            raise ValueError("give vehicle_positions, trip_updates or both")
        return self


class GbfsDeviceConfig(_FeedDeviceConfig):
    """A GBFS 3.0 bike-share system, found through its ``gbfs.json``, polled over HTTP."""

    protocol: Literal["gbfs"]
    discovery: FeedPath = Field(default="/gbfs/gbfs.json", description="path or URL")


class MqttDeviceConfig(_Strict):
    """An MQTT broker connection: sensors' JSON uplinks and Sparkplug B edge nodes (MQTT 3.1.1).

    Every topic of the device's tag addresses is relative to ``topic_prefix``. JSON sensors
    report every ``report_interval`` seconds: a point is Uncertain after one missed report and
    Bad after three."""

    name: Name = Field(pattern=DOTTED_NAME)
    protocol: Literal["mqtt"]
    endpoint: Name = Field(description="host:port of the broker")
    client_id: Name | None = Field(
        default=None, max_length=128, description="MQTT client id (default: from the name)"
    )
    topic_prefix: str = Field(
        default="", max_length=256, pattern=r"^[^+#\x00]*$", description="put before every topic"
    )
    username: Name | None = None
    password_env: Name | None = Field(
        default=None, description="environment variable holding the password (never the file)"
    )
    tls: bool = Field(default=False, description="connect with TLS")
    ca_file: SitePath | None = Field(default=None, description="CA certificates for TLS")
    report_interval: FiniteFloat = Field(
        default=600.0, gt=0, le=7 * 86_400, description="seconds between a sensor's reports"
    )
    timestamp_pointer: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^(/.*)?$",
        description="RFC 6901 pointer to each JSON uplink's own time",
    )
    timeout: FiniteFloat = Field(default=3.0, gt=0, le=60, description="seconds per request")
    write_timeout: FiniteFloat = Field(
        default=10.0, gt=0, le=600, description="seconds a downlink waits for its read-back"
    )
    max_payload_bytes: Integer = Field(default=262_144, ge=64, le=16 * 1024 * 1024)
    edge: EdgeName | None = Field(
        default=None, description="the edge collector that owns the device (none: the center)"
    )

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_endpoint(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> MqttDeviceConfig:
        if self.password_env is not None and not self.username:
            raise ValueError("password_env needs a username")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for TLS: set tls: true")
        return self

    @property
    def scan_interval(self) -> float:
        """The scan engine's interval for the device: its sensors' report interval."""
        return self.report_interval

    @property
    def host(self) -> str:
        """Host part of the endpoint."""
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        """Port part of the endpoint."""
        return split_endpoint(self.endpoint)[1]


DeviceConfig = Annotated[
    ModbusDeviceConfig
    | OpcUaDeviceConfig
    | BacnetDeviceConfig
    | OcppDeviceConfig
    | GtfsRealtimeDeviceConfig
    | GbfsDeviceConfig
    | MqttDeviceConfig,
    Field(discriminator="protocol"),
]


_PERCENT = re.compile(r"^(\d+(\.\d*)?|\.\d+)\s*%$")


def _deviation(value: Deviation) -> tuple[float, bool]:
    """A deviation as (amount, is percent of span): 0.05 is in engineering units, '0.5%' of span."""
    if isinstance(value, str):
        match = _PERCENT.match(value.strip())
        if match is None:
            raise ValueError(f"'{value}' is neither a number nor a percentage like '0.5%'")
        return float(match.group(1)), True
    if value < 0:
        raise ValueError("a deviation must be >= 0")
    return float(value), False


Deviation = FiniteFloat | Name
"""A deviation in engineering units (a number) or in percent of the tag's range ('0.5%')."""


class CompressionConfig(_Strict):
    """How a tag's samples are compressed before they are stored (docs/historian.md)."""

    mode: Literal["raw", "exception", "swinging_door"] = "raw"
    exception_deviation: Deviation = 0.0
    compression_deviation: Deviation = 0.0
    max_interval: FiniteFloat = Field(
        default=3600.0, gt=0, description="seconds between stored values"
    )

    @field_validator("exception_deviation", "compression_deviation")
    @classmethod
    def _valid_deviation(cls, value: Deviation) -> Deviation:
        _deviation(value)
        return value

    @property
    def uses_percent_of_span(self) -> bool:
        """Whether a deviation is given in percent of the tag's range."""
        return _deviation(self.exception_deviation)[1] or _deviation(self.compression_deviation)[1]

    def to_settings(self) -> CompressionSettings:
        """The historian's settings for these (percentages still to resolve per tag)."""
        exception, exception_percent = _deviation(self.exception_deviation)
        compression, compression_percent = _deviation(self.compression_deviation)
        return CompressionSettings(
            mode=self.mode,
            exception_deviation=exception,
            exception_is_percent_of_span=exception_percent,
            compression_deviation=compression,
            compression_is_percent_of_span=compression_percent,
            max_interval_s=self.max_interval,
        )


class RetentionConfig(_Strict):
    """How long the historian keeps each kind of data, in days (absent: for ever)."""

    raw_days: FiniteFloat | None = Field(default=None, gt=0)
    minute_rollup_days: FiniteFloat | None = Field(default=None, gt=0)
    hour_rollup_days: FiniteFloat | None = Field(default=None, gt=0)


class HistorianConfig(_Strict):
    """The historian's compression default, store-and-forward spool and retention."""

    compression: CompressionConfig = Field(
        default_factory=CompressionConfig,
        description="for numeric tags without a compression of their own",
    )
    spool_path: SitePath | None = Field(
        default=None, description="disk spool for store and forward; absent: memory only"
    )
    spool_max_mb: FiniteFloat = Field(default=1024.0, gt=0, le=1024 * 1024)
    spool_warn_percent: FiniteFloat = Field(default=80.0, gt=0, lt=100)
    memory_limit: Integer = Field(
        default=100_000,
        ge=1,
        le=100_000_000,
        description="samples held in memory before spooling the excess",
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class TagConfig(_Strict):
    """One tag: where it lives on which device, its unit, range and whether it may be commanded."""

    name: Name = Field(pattern=DOTTED_NAME)
    device: Name
    address: Name
    data_type: DataType = DataType.FLOAT
    unit: Name = ""
    range: tuple[FiniteFloat, FiniteFloat] | None = None
    writable: bool = False
    description: Text = ""
    scale: FiniteFloat = Field(default=1.0, description="engineering = raw x scale + offset")
    offset: FiniteFloat = 0.0
    compression: CompressionConfig | None = None
    max_step: FiniteFloat | None = Field(
        default=None, gt=0, description="largest change one command may make (numeric tags)"
    )
    min_command_interval: FiniteFloat = Field(
        default=0.0, ge=0, le=86_400, description="seconds between two commands to the tag"
    )

    @model_validator(mode="after")
    def _compression_span(self) -> TagConfig:
        compression = self.compression
        if compression is not None and compression.uses_percent_of_span and self.range is None:
            raise ValueError("a compression deviation in % of span needs the tag's range")
        return self

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be zero (writes divide by it)")
        return value

    @model_validator(mode="after")
    def _numeric_scaling(self) -> TagConfig:
        numeric = self.data_type in (DataType.FLOAT, DataType.INT)
        scaled = self.scale != 1.0 or self.offset != 0.0
        if scaled and not numeric:
            raise ValueError(f"only numeric tags can have a scale or offset, not {self.data_type}")
        # A range bounds commands and spans deviations: it means nothing for text or times.
        if self.range is not None and not numeric:
            raise ValueError(f"only numeric tags can have a range, not {self.data_type}")
        if self.max_step is not None and not numeric:
            raise ValueError(f"only numeric tags can have a max_step, not {self.data_type}")
        return self

    @field_validator("range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] >= value[1]:
            raise ValueError("range must be [low, high] with low < high")
        return value

    def to_tag_def(self) -> TagDef:
        """The shared-vocabulary definition of this tag."""
        low, high = self.range if self.range is not None else (None, None)
        return TagDef(
            name=self.name,
            device=self.device,
            address=self.address,
            data_type=self.data_type,
            unit=self.unit,
            low=low,
            high=high,
            writable=self.writable,
            description=self.description,
            scale=self.scale,
            offset=self.offset,
            max_step=self.max_step,
            min_command_interval_s=self.min_command_interval,
        )


class IdentityConfig(_Strict):
    """The service identity the rules command as: its role and areas authorise their commands
    in the command pipeline exactly as an operator's would be."""

    name: Name = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role = Role.OPERATOR
    areas: list[Name] = Field(
        default_factory=list, max_length=MAX_AREAS, description="empty: every area"
    )

    @field_validator("role")
    @classmethod
    def _may_command(cls, value: Role) -> Role:
        if not value.includes(Role.OPERATOR):
            raise ValueError(f"the rules' identity must be able to command, not a {value.value}")
        return value


def _default_identity() -> IdentityConfig:
    return IdentityConfig(name="rules")


class AutomationConfig(_Strict):
    """Where the rules are (rule files, relative to the site file) and whom they act as."""

    rule_files: list[SitePath] = Field(default_factory=list, max_length=MAX_RULE_FILES)
    identity: IdentityConfig = Field(
        default_factory=_default_identity,
        description="the identity the rules command as (default: 'rules', operator)",
    )


TagPattern = Annotated[Name, Field(min_length=1)]
"""A tag name or an ``fnmatch`` pattern of tag names (``water.ps1.pump*.run_cmd``)."""


class AreaConfig(_Strict):
    """A part of the site whose tags a user may be allowed to command."""

    name: Name = Field(pattern=DOTTED_NAME)
    tags: list[TagPattern] = Field(min_length=1, max_length=MAX_PATTERNS)


def _applies_to_text(value: object) -> object:
    """``applies_to: true`` (a YAML bool) as the text ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class InterlockConfig(_Strict):
    """Blocks commands to some tags while a condition holds (checked in the command pipeline)."""

    name: Name = Field(pattern=DOTTED_NAME)
    tags: list[TagPattern] = Field(min_length=1, max_length=MAX_PATTERNS)
    block_when: ExpressionText
    applies_to: Annotated[Literal["any", "true", "false"], BeforeValidator(_applies_to_text)] = (
        "any"
    )
    message: Text = ""


class HmiConfig(_Strict):
    """What the overview display shows first."""

    featured: list[Name] = Field(default_factory=list, max_length=1000)


class SiteConfig(_Strict):
    """A whole site file."""

    site: SiteInfo
    # Bounded lists: a hostile file cannot make validation report millions of problems.
    devices: list[DeviceConfig] = Field(min_length=1, max_length=MAX_DEVICES)
    tags: list[TagConfig] = Field(min_length=1, max_length=MAX_TAGS)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)
    areas: list[AreaConfig] = Field(default_factory=list, max_length=MAX_AREAS)
    interlocks: list[InterlockConfig] = Field(default_factory=list, max_length=MAX_INTERLOCKS)
    hmi: HmiConfig = Field(default_factory=HmiConfig)
    historian: HistorianConfig = Field(default_factory=HistorianConfig)
    alarm_templates: dict[
        Name,
        Annotated[list[TemplateAlarmConfig], Field(min_length=1, max_length=MAX_TEMPLATE_ALARMS)],
    ] = Field(default_factory=dict, max_length=MAX_ASSET_TYPES)
    assets: list[AssetConfig] = Field(default_factory=list, max_length=MAX_ASSETS)
    districts: list[DistrictConfig] = Field(default_factory=list, max_length=MAX_DISTRICTS)
    alarms: list[AlarmConfig] = Field(default_factory=list, max_length=MAX_SINGLE_ALARMS)
    alarm_suppression: list[SuppressionConfig] = Field(
        default_factory=list, max_length=MAX_SUPPRESSIONS
    )
    communication_alarms: CommunicationAlarmsConfig = Field(
        default_factory=CommunicationAlarmsConfig
    )
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    open_data: OpenDataConfig = Field(default_factory=OpenDataConfig)
    public_alerts: PublicAlertsConfig = Field(default_factory=PublicAlertsConfig)
    _alarm_book: AlarmBook | None = PrivateAttr(default=None)
    """The alarm definitions with their spots (set when the site is loaded from a file)."""
    _interlock_spots: tuple[tuple[SourceSpot, SourceSpot], ...] = PrivateAttr(default=())
    """Per interlock: where it is written and where its block_when expression starts (set
    when the site is loaded from a file)."""

    def location(self) -> SiteLocation:
        """Where the site is, for sun events and local time."""
        return SiteLocation(self.site.latitude, self.site.longitude, self.site.timezone)

    def rule_file_paths(self) -> tuple[Path, ...]:
        """The rule files, in the order the site names them (absolute once loaded from a file:
        resolved against the site file's directory)."""
        return tuple(self.automation.rule_files)

    def automation_identity(self) -> User:
        """The user the rules command as."""
        identity = self.automation.identity
        return User(identity.name, identity.role, tuple(identity.areas))

    def area_defs(self) -> tuple[AreaDef, ...]:
        """The site's areas."""
        return tuple(AreaDef(area.name, tuple(area.tags)) for area in self.areas)

    def interlock_defs(self) -> tuple[InterlockDef, ...]:
        """The site's interlocks, each with its spot and its expression's spot."""
        spots = self._interlock_spots
        definitions = []
        for index, interlock in enumerate(self.interlocks):
            spot, expression_spot = spots[index] if index < len(spots) else (NOWHERE, NOWHERE)
            definitions.append(
                InterlockDef(
                    name=interlock.name,
                    tags=tuple(interlock.tags),
                    block_when=Expression(interlock.block_when, expression_spot),
                    message=interlock.message,
                    applies_to=interlock.applies_to,
                    spot=spot,
                )
            )
        return tuple(definitions)

    def alarm_areas(self) -> frozenset[str]:
        """The names an alarm's area may take: the site's areas and each device's domain (the
        first part of its name, the area of its communication alarm)."""
        return frozenset(area.name for area in self.areas) | {
            device.name.split(".", 1)[0] for device in self.devices
        }

    def alarm_book(self) -> AlarmBook:
        """Every alarm-related definition; raise SourceFileError if the alarm sections do not
        fit the site (a site loaded from a file was checked already)."""
        if self._alarm_book is None:
            book, found = build_alarm_book(
                self._alarm_sections(),
                self.tag_defs(),
                [device.name for device in self.devices],
                self.alarm_areas(),
                None,
            )
            if found:
                document = LocatedDocument("<site>", None, {})
                raise SourceFileError(
                    [document.problem(location, text) for location, text in found[:MAX_PROBLEMS]]
                )
            self._alarm_book = book
        return self._alarm_book

    def _alarm_sections(self) -> AlarmSections:
        return AlarmSections(
            templates=self.alarm_templates,
            assets=self.assets,
            alarms=self.alarms,
            suppressions=self.alarm_suppression,
            communication=self.communication_alarms,
            notifications=self.notifications,
        )

    def asset_defs(self) -> tuple[AssetDef, ...]:
        """The site's plant items (``assets``), for displays and the map."""
        return tuple(
            AssetDef(
                name=asset.name,
                type=asset.type,
                area=asset.area or asset.name.split(".", 1)[0],
                label=asset.label,
                position=None if asset.position is None else GeoPoint(*asset.position),
                district=asset.district,
                feeds=tuple(asset.feeds),
            )
            for asset in self.assets
        )

    def district_defs(self) -> tuple[DistrictDef, ...]:
        """The districts drawn on the map (``districts``)."""
        return tuple(
            DistrictDef(
                name=district.name,
                label=district.label or district.name,
                outline=tuple(GeoPoint(*corner) for corner in district.outline),
            )
            for district in self.districts
        )

    def alarm_defs(self) -> tuple[AlarmDef, ...]:
        """Every alarm: single ones, templates expanded for their assets, and one
        communication alarm per device (``<device>.comm``) unless turned off."""
        return self.alarm_book().alarms

    def area_suppressions(self) -> tuple[AreaSuppressionDef, ...]:
        """Suppression by design of whole areas."""
        return self.alarm_book().suppressions

    def oncall_groups(self) -> tuple[OnCallGroupDef, ...]:
        """The on-call groups alarms are sent to."""
        return self.alarm_book().groups

    def notification_routes(self) -> tuple[NotificationRouteDef, ...]:
        """Which alarms go to which on-call groups."""
        return self.alarm_book().routes

    def email_settings(self) -> EmailSettings | None:
        """The SMTP server for alarm e-mail (None: no e-mail)."""
        return self.alarm_book().email

    def webhook_settings(self) -> WebhookSettings | None:
        """How alarm webhooks are signed and retried (None: no webhooks)."""
        return self.alarm_book().webhook

    def notification_flood(self) -> tuple[int, float]:
        """More new notifications than the first for one group within the second (seconds)
        is a flood, summarised in one message."""
        notifications = self.notifications
        return notifications.flood_threshold, notifications.flood_window

    def open_datasets(self) -> tuple[OpenDataset, ...]:
        """The datasets published as open data, each with its fixed member tags."""
        return resolve_datasets(self.open_data, self.tag_defs())

    def compression_settings(self) -> dict[str, CompressionSettings]:
        """Each tag's compression: its own, else the historian default for numeric tags with a
        range (or an absolute default), else raw. Percentages still to resolve per tag."""
        default = self.historian.compression
        settings: dict[str, CompressionSettings] = {}
        for tag in self.tags:
            if tag.compression is not None:
                settings[tag.name] = tag.compression.to_settings()
            elif tag.data_type in (DataType.FLOAT, DataType.INT) and (
                tag.range is not None or not default.uses_percent_of_span
            ):
                settings[tag.name] = default.to_settings()
        return settings

    def tag_defs(self) -> list[TagDef]:
        """Every tag as a shared-vocabulary definition."""
        return [tag.to_tag_def() for tag in self.tags]

    def edges(self) -> dict[str, str]:
        """Device → edge collector, for the devices an edge owns."""
        return {device.name: device.edge for device in self.devices if device.edge is not None}

    def device(self, name: str) -> DeviceConfig:
        """The device called ``name``; raises KeyError if there is none."""
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def with_endpoints(self, endpoints: dict[str, str]) -> SiteConfig:
        """A copy with some devices' endpoints replaced (e.g. by where a simulator listens)."""
        devices = [
            device.model_copy(update={"endpoint": endpoints[device.name]})
            if device.name in endpoints
            else device
            for device in self.devices
        ]
        return self.model_copy(update={"devices": devices})


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6); raise ValueError when it is not one."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not _is_decimal(port_text, 5):
        raise ValueError(f"endpoint '{endpoint}' is not host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is outside 1-65535")
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])
        host = host[1:-1]
    return host, port


def _is_decimal(text: str, max_digits: int) -> bool:
    """Whether ``text`` is 1 to ``max_digits`` ASCII digits (str.isdigit also takes '²')."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


CENTER_VAR_DIRECTORY = Path("var")
"""The center's own files (database, users, spool), relative to the directory it runs in."""


def load_site(path: Path, var_directory: Path = CENTER_VAR_DIRECTORY) -> SiteConfig:
    """Load and validate a site file; raise SourceFileError listing every problem with its line.

    Paths in the file are resolved against the file's directory and must stay inside it or
    inside ``var_directory`` (see ``PathRoots``); they come back absolute. Each rule file named
    must exist (its contents are read by ``controlcenter.site.rulefile``).
    """
    with collector_paused():
        return _load_site(path, var_directory)


def _load_site(path: Path, var_directory: Path) -> SiteConfig:
    document = load_located_yaml(path, record_values=_EXPRESSION_SECTIONS)
    if not isinstance(document.data, dict):
        raise SourceFileError(
            [SourceProblem(document.file, 1, "", "a site file is a mapping with a 'site' key", 1)]
        )
    roots = PathRoots(site_directory=path.absolute().parent, var_directory=var_directory)
    try:
        site = SiteConfig.model_validate(document.data, context=roots)
    except ValidationError as err:
        problems = problems_from_validation_error(document, err, SITE_VOCABULARY)
        raise SourceFileError(problems) from err
    found = list(itertools.islice(_cross_reference_problems(site, document), MAX_PROBLEMS + 1))
    if len(found) <= MAX_PROBLEMS:
        book, alarm_problems = build_alarm_book(
            site._alarm_sections(),
            site.tag_defs(),
            [device.name for device in site.devices],
            site.alarm_areas(),
            document,
        )
        found.extend(alarm_problems[: MAX_PROBLEMS + 1 - len(found)])
        site._alarm_book = book
    problems = [document.problem(location, text) for location, text in found[:MAX_PROBLEMS]]
    if problems:
        raise SourceFileError(problems)
    site._interlock_spots = tuple(
        (
            source_spot(document, ("interlocks", index)),
            source_spot(document, ("interlocks", index, "block_when"), value=True),
        )
        for index in range(len(site.interlocks))
    )
    return site


_EXPRESSION_SECTIONS = frozenset({"interlocks", "alarms", "alarm_templates", "alarm_suppression"})
"""The top-level sections holding expressions, whose values' spots are recorded."""


def source_spot(
    document: LocatedDocument, location: Location, *, value: bool = False
) -> SourceSpot:
    """The spot of ``location`` in ``document`` (``value``: of its scalar text's first
    character, when recorded; else of its key or item)."""
    if value:
        recorded = document.value_spots.get(location)
        if recorded is not None:
            return SourceSpot(document.file, recorded[0], recorded[1])
    line, column = document.spot_of(location)
    return SourceSpot(document.file, line, column)


# The discriminator values of the tagged unions, read from the models so they never drift.
_UNION_TAGS = frozenset(
    str(value)
    for model in (
        ModbusDeviceConfig,
        OpcUaDeviceConfig,
        BacnetDeviceConfig,
        OcppDeviceConfig,
        GtfsRealtimeDeviceConfig,
        GbfsDeviceConfig,
        MqttDeviceConfig,
    )
    for value in get_args(model.model_fields["protocol"].annotation)
)
SITE_VOCABULARY = ModelVocabulary(
    root=SiteConfig,
    sections={
        "site": [SiteInfo],
        "devices": [
            ModbusDeviceConfig,
            OpcUaDeviceConfig,
            BacnetDeviceConfig,
            OcppDeviceConfig,
            GtfsRealtimeDeviceConfig,
            GbfsDeviceConfig,
            MqttDeviceConfig,
        ],
        "tags": [TagConfig],
        "compression": [CompressionConfig],
        "automation": [AutomationConfig],
        "identity": [IdentityConfig],
        "areas": [AreaConfig],
        "interlocks": [InterlockConfig],
        "hmi": [HmiConfig],
        "historian": [HistorianConfig],
        "retention": [RetentionConfig],
        "alarms": [AlarmConfig],
        "alarm_templates": [TemplateAlarmConfig],
        "assets": [AssetConfig],
        "districts": [DistrictConfig],
        "overrides": [OverrideConfig],
        "guidance": [GuidanceConfig],
        "alarm_suppression": [SuppressionConfig],
        "communication_alarms": [CommunicationAlarmsConfig],
        "notifications": [NotificationsConfig],
        "email": [EmailConfig],
        "webhook": [WebhookConfig],
        "groups": [GroupConfig],
        "routes": [RouteConfig],
        "open_data": [OpenDataConfig],
        "datasets": [DatasetConfig],
    },
    union_tags=_UNION_TAGS,
    refused_keys={"rules": RULES_MOVED},
)
"""How the site file's validation errors are told (see ``ModelVocabulary``)."""


def _cross_reference_problems(
    site: SiteConfig, document: LocatedDocument
) -> Iterator[tuple[Location, str]]:
    device_protocols = {device.name: device.protocol for device in site.devices}
    yield from _duplicates("devices", [device.name for device in site.devices], "device")
    yield from _duplicates("tags", [tag.name for tag in site.tags], "tag")
    tags = {tag.name: tag for tag in site.tags}
    for index, tag in enumerate(site.tags):
        protocol = device_protocols.get(tag.device)
        if protocol is None:
            yield ("tags", index, "device"), f"unknown device '{tag.device}'"
            continue
        try:
            ADDRESS_VALIDATORS[protocol](tag.address, tag.data_type)
        except (AddressError, ValueError) as err:
            yield ("tags", index, "address"), str(err)
    yield from _overlapping_modbus_points(site, document, device_protocols)
    yield from _rule_file_problems(site.automation.rule_files)
    yield from _duplicates("areas", [area.name for area in site.areas], "area")
    yield from _duplicates("interlocks", [lock.name for lock in site.interlocks], "interlock")
    matcher = TagMatcher(list(tags))
    patterns: list[tuple[str, Sequence[Sequence[str]]]] = [
        ("areas", [area.tags for area in site.areas]),
        ("interlocks", [interlock.tags for interlock in site.interlocks]),
    ]
    for section, entries in patterns:
        for index, entry in enumerate(entries):
            for position, pattern in enumerate(entry):
                if not matcher.matches_any(pattern):
                    yield (section, index, "tags", position), f"'{pattern}' matches no tag"
    area_names = {area.name for area in site.areas}
    for index, area in enumerate(site.automation.identity.areas):
        if area not in area_names:
            yield ("automation", "identity", "areas", index), f"unknown area '{area}'"
    for index, name in enumerate(site.hmi.featured):
        if name not in tags:
            yield ("hmi", "featured", index), f"unknown tag '{name}'"
    yield from _asset_place_problems(site)
    yield from open_data_problems(site.open_data, site.tag_defs())


def _asset_place_problems(site: SiteConfig) -> Iterator[tuple[Location, str]]:
    """Assets and districts named twice, and districts or fed assets that do not exist."""
    yield from _duplicates("districts", [district.name for district in site.districts], "district")
    yield from _duplicates("assets", [asset.name for asset in site.assets], "asset")
    districts = {district.name for district in site.districts}
    assets = {asset.name for asset in site.assets}
    for index, asset in enumerate(site.assets):
        if asset.district and asset.district not in districts:
            yield ("assets", index, "district"), f"unknown district '{asset.district}'"
        for position, fed in enumerate(asset.feeds):
            if fed == asset.name:
                yield ("assets", index, "feeds", position), f"asset '{fed}' cannot feed itself"
            elif fed not in assets:
                yield ("assets", index, "feeds", position), f"unknown asset '{fed}'"


def _rule_file_problems(paths: Sequence[Path]) -> Iterator[tuple[Location, str]]:
    """A rule file named twice, missing, or not a regular file (a FIFO would block its reader)."""
    seen: set[Path] = set()
    for index, path in enumerate(paths):
        location: Location = ("automation", "rule_files", index)
        if path in seen:
            yield location, f"rule file '{path}' is named twice"
            continue
        seen.add(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            yield location, f"rule file '{path}' does not exist"
            continue
        except OSError as err:
            yield (
                location,
                f"rule file '{path}' cannot be read: {err.strerror or type(err).__name__}",
            )
            continue
        if not stat.S_ISREG(mode):
            yield location, f"rule file '{path}' is not a regular file"


class TagMatcher:
    """Whether a tag name or ``fnmatch`` pattern names at least one of a site's tags."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = names
        self._known = frozenset(names)

    def matches_any(self, pattern: str) -> bool:
        """Whether ``pattern`` (case-sensitive, as tag names are) matches a tag."""
        if pattern in self._known:
            return True
        if not any(character in pattern for character in "*?["):
            return False
        match = re.compile(fnmatch.translate(pattern)).match
        return any(match(name) is not None for name in self._names)


def _duplicates(section: str, names: list[str], what: str) -> Iterator[tuple[Location, str]]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield (section, index, "name"), f"duplicate {what} name '{name}'"
        seen.add(name)


def _overlapping_modbus_points(
    site: SiteConfig, document: LocatedDocument, device_protocols: Mapping[str, str]
) -> Iterator[tuple[Location, str]]:
    """Two tags of one Modbus device whose entries overlap in one table (MAP 4.3).

    A value spans ``register_count`` entries from its offset (two registers for a float32,
    four for a float64); two values sharing an entry would each decode half of the other.
    Bits inside a register (``hr:10.3``) may share it with other bits and with a value of that
    register (a status word read whole and bit by bit); the same bit twice is refused.
    """
    spans: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    addresses: dict[int, ModbusAddress] = {}
    for index, tag in enumerate(site.tags):
        if device_protocols.get(tag.device) != "modbus":
            continue
        try:
            address = parse_modbus_address(tag.address)
        except (AddressError, ValueError):
            continue  # already reported with the tag's address
        addresses[index] = address
        spans.setdefault((tag.device, address.table.value), []).append(
            (address.offset, address.end, index)
        )
    for entries in spans.values():
        entries.sort(key=lambda entry: (entry[0], entry[2]))
        # Sweep in offset order, remembering the value that reaches furthest so far.
        reaching: tuple[int, int, int] | None = None
        bits_seen: dict[tuple[int, int], int] = {}
        for entry in entries:
            start, end, index = entry
            bit = addresses[index].bit
            if bit is not None:
                earlier = bits_seen.setdefault((start, bit), index)
                if earlier != index:
                    yield _overlap(site, document, addresses, index, earlier)
                continue
            if reaching is not None and start < reaching[1]:
                first, second = sorted((index, reaching[2]))
                yield _overlap(site, document, addresses, second, first)
            if reaching is None or end > reaching[1]:
                reaching = entry


def _overlap(
    site: SiteConfig,
    document: LocatedDocument,
    addresses: Mapping[int, ModbusAddress],
    index: int,
    other: int,
) -> tuple[Location, str]:
    other_line = document.line_of(("tags", other, "address"))
    return (
        ("tags", index, "address"),
        f"{_span(addresses[index])} overlaps {_span(addresses[other])} of tag "
        f"'{site.tags[other].name}' (line {other_line}) on device '{site.tags[index].device}'",
    )


def _span(address: ModbusAddress) -> str:
    if address.bit is not None:
        return f"{address.table}:{address.offset}.{address.bit}"
    if address.register_count == 1:
        return f"{address.table}:{address.offset}"
    return f"{address.table}:{address.offset}-{address.end - 1}"
