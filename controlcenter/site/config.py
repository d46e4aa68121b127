"""The site file: pydantic models of the site, its devices, tags, rules and displays.

A site file is validated as a whole before anything starts. Every problem is reported with the
file, the line and the offending key, so an engineer can fix a file in one pass.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from controlcenter.model import DataType, TagDef
from controlcenter.site.fields import (
    FiniteFloat,
    Integer,
    Name,
    PathRoots,
    SitePath,
    Text,
)
from controlcenter.site.yamlsource import (
    MAX_PROBLEMS,
    LocatedDocument,
    Location,
    SourceFileError,
    SourceProblem,
    collector_paused,
    format_location,
    load_located_yaml,
)
from drivers.bacnet.address import validate_address as validate_bacnet_address
from drivers.base import AddressError
from drivers.modbus.address import ModbusAddress
from drivers.modbus.address import parse_address as parse_modbus_address
from drivers.modbus.address import validate_address as validate_modbus_address
from drivers.opcua.address import validate_address as validate_opcua_address
from historian.compression import CompressionSettings

DOTTED_NAME = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"

MAX_DEVICES = 10_000
MAX_TAGS = 200_000
MAX_RULES = 10_000
"""Largest site: four times the simulated city at scale 35 (773 devices, 49,555 tags)."""

AddressValidator = Callable[[str, DataType], None]
# Each protocol checks its own address syntax; the site file is refused before anything starts.
ADDRESS_VALIDATORS: dict[str, AddressValidator] = {
    "modbus": validate_modbus_address,
    "opcua": validate_opcua_address,
    "bacnet": validate_bacnet_address,
}


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


DeviceConfig = Annotated[
    ModbusDeviceConfig | OpcUaDeviceConfig | BacnetDeviceConfig, Field(discriminator="protocol")
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
        )


class HysteresisRuleConfig(_Strict):
    """Two-position control with a differential gap: on below one level, off above another."""

    name: Name = Field(pattern=DOTTED_NAME)
    kind: Literal["hysteresis"]
    input: Name = Field(description="analog tag watched")
    output: Name = Field(description="writable boolean tag commanded")
    on_below: FiniteFloat
    off_above: FiniteFloat
    min_command_interval: FiniteFloat = Field(
        default=10.0, ge=0, description="seconds between repeated commands to the output"
    )
    description: Text = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _gap(self) -> HysteresisRuleConfig:
        if self.on_below >= self.off_above:
            raise ValueError("on_below must be lower than off_above")
        return self


RuleConfig = Annotated[HysteresisRuleConfig, Field(discriminator="kind")]


class HmiConfig(_Strict):
    """What the overview display shows first."""

    featured: list[Name] = Field(default_factory=list, max_length=1000)


class SiteConfig(_Strict):
    """A whole site file."""

    site: SiteInfo
    # Bounded lists: a hostile file cannot make validation report millions of problems.
    devices: list[DeviceConfig] = Field(min_length=1, max_length=MAX_DEVICES)
    tags: list[TagConfig] = Field(min_length=1, max_length=MAX_TAGS)
    rules: list[RuleConfig] = Field(default_factory=list, max_length=MAX_RULES)
    hmi: HmiConfig = Field(default_factory=HmiConfig)
    historian: HistorianConfig = Field(default_factory=HistorianConfig)

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
    inside ``var_directory`` (see ``PathRoots``); they come back absolute.
    """
    with collector_paused():
        return _load_site(path, var_directory)


def _load_site(path: Path, var_directory: Path) -> SiteConfig:
    document = load_located_yaml(path)
    if not isinstance(document.data, dict):
        raise SourceFileError(
            [SourceProblem(document.file, 1, "", "a site file is a mapping with a 'site' key")]
        )
    roots = PathRoots(site_directory=path.absolute().parent, var_directory=var_directory)
    try:
        site = SiteConfig.model_validate(document.data, context=roots)
    except ValidationError as err:
        errors = err.errors(include_url=False)[:MAX_PROBLEMS]
        problems = [_problem_from_pydantic(document, error) for error in errors]
        raise SourceFileError(_with_count(document, problems, err.error_count())) from err
    found = list(itertools.islice(_cross_reference_problems(site, document), MAX_PROBLEMS + 1))
    problems = [
        SourceProblem(document.file, document.line_of(location), format_location(location), text)
        for location, text in found[:MAX_PROBLEMS]
    ]
    if problems:
        raise SourceFileError(problems)
    return site


def _with_count(
    document: LocatedDocument, problems: list[SourceProblem], total: int
) -> list[SourceProblem]:
    """``problems``, and a last line saying how many more were found, if any."""
    if total <= len(problems):
        return problems
    more = f"{total - len(problems):,} more problems not shown"
    return [*problems, SourceProblem(document.file, None, "", more)]


def _problem_from_pydantic(document: LocatedDocument, error: ErrorDetails) -> SourceProblem:
    location: Location = tuple(error["loc"])
    # Discriminated unions add the discriminator value ('modbus') to the location; drop it so
    # that the location points at the key in the file.
    location = _strip_union_tags(document.data, location)
    line = document.line_of(location)
    message = error["msg"]
    if error["type"] == "extra_forbidden" and location:
        key = str(location[-1])
        message = f"unknown key '{key}'"
        suggestion = _suggest_key(location)
        if suggestion:
            message += f" (did you mean '{suggestion}'?)"
    elif error["type"] == "missing" and location:
        message = f"missing required key '{location[-1]}'"
    elif isinstance(error.get("input"), dict | list):
        message = message.removeprefix("Value error, ")
    else:
        message = f"{message.removeprefix('Value error, ')} (got {_short(error.get('input'))})"
    return SourceProblem(document.file, line, format_location(location), message)


def _strip_union_tags(data: Any, location: Location) -> Location:
    kept: list[str | int] = []
    node = data
    for part in location:
        in_mapping = isinstance(node, dict) and part in node
        in_sequence = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_mapping or in_sequence:
            kept.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            # Either a union tag ('modbus') or a missing/extra key: keep a key that is not a tag.
            if part not in _UNION_TAGS:
                kept.append(part)
                node = None
        else:
            kept.append(part)
            node = None
    return tuple(kept)


# The discriminator values of the tagged unions, read from the models so they never drift.
_UNION_TAGS = {
    str(value)
    for model, key in (
        (ModbusDeviceConfig, "protocol"),
        (OpcUaDeviceConfig, "protocol"),
        (BacnetDeviceConfig, "protocol"),
        (HysteresisRuleConfig, "kind"),
    )
    for value in get_args(model.model_fields[key].annotation)
}
_SECTION_MODELS: dict[str, list[type[BaseModel]]] = {
    "site": [SiteInfo],
    "devices": [ModbusDeviceConfig, OpcUaDeviceConfig, BacnetDeviceConfig],
    "tags": [TagConfig],
    "rules": [HysteresisRuleConfig],
    "hmi": [HmiConfig],
    "historian": [HistorianConfig],
}


def _suggest_key(location: Location) -> str | None:
    if len(location) == 1:
        candidates = list(SiteConfig.model_fields)
    else:
        models = _SECTION_MODELS.get(str(location[0]), [])
        candidates = [name for model in models for name in model.model_fields]
    matches = difflib.get_close_matches(str(location[-1]), candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cross_reference_problems(
    site: SiteConfig, document: LocatedDocument
) -> Iterator[tuple[Location, str]]:
    device_protocols = {device.name: device.protocol for device in site.devices}
    yield from _duplicates("devices", [device.name for device in site.devices], "device")
    yield from _duplicates("tags", [tag.name for tag in site.tags], "tag")
    yield from _duplicates("rules", [rule.name for rule in site.rules], "rule")
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
    for index, rule in enumerate(site.rules):
        watched = tags.get(rule.input)
        if watched is None:
            yield ("rules", index, "input"), f"unknown tag '{rule.input}'"
        elif watched.data_type not in (DataType.FLOAT, DataType.INT):
            yield ("rules", index, "input"), f"tag '{rule.input}' is not numeric"
        commanded = tags.get(rule.output)
        if commanded is None:
            yield ("rules", index, "output"), f"unknown tag '{rule.output}'"
        elif not commanded.writable:
            yield ("rules", index, "output"), f"tag '{rule.output}' is not writable"
        elif commanded.data_type is not DataType.BOOL:
            yield ("rules", index, "output"), f"tag '{rule.output}' is not boolean"
    for index, name in enumerate(site.hmi.featured):
        if name not in tags:
            yield ("hmi", "featured", index), f"unknown tag '{name}'"


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
