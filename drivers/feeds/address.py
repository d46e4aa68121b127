"""Feed point addresses: ``<entity>:<id>:<field>`` for GTFS-Realtime and GBFS feeds.

GTFS-Realtime (the ``gtfs_realtime`` protocol):

- ``vehicle:<vehicle id>:<field>`` with ``lat``, ``lon`` (degrees, WGS 84), ``speed`` (m/s),
  ``bearing`` (degrees), ``stopped`` (bool: ``current_status`` STOPPED_AT), ``trip`` and
  ``route`` (strings: the trip and route the vehicle serves) from VehiclePositions, and
  ``delay_s`` (seconds late, negative early) from the TripUpdate of the vehicle's trip;
- ``trip:<trip id>:delay_s`` from TripUpdates;
- ``route:<route id>:on_time_share`` (0..1: share of the route's trips between one minute
  early and five minutes late) and ``route:<route id>:trips`` (trips reported) from TripUpdates.

GBFS (the ``gbfs`` protocol): ``station:<station id>:<field>`` with ``bikes``
(``num_vehicles_available``), ``docks`` (``num_docks_available``), ``renting``, ``returning``,
``installed`` (bools) from station_status and ``capacity``, ``lat``, ``lon`` from
station_information.

An id may itself contain ``:`` (the field is after the last one); it is 1 to 128 printable
characters without spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlcenter.model import DataType
from drivers.base import AddressError

MAX_ID_LENGTH = 128

GTFS_FIELDS: dict[str, dict[str, DataType]] = {
    "vehicle": {
        "lat": DataType.FLOAT,
        "lon": DataType.FLOAT,
        "speed": DataType.FLOAT,
        "bearing": DataType.FLOAT,
        "stopped": DataType.BOOL,
        "trip": DataType.STRING,
        "route": DataType.STRING,
        "delay_s": DataType.INT,
    },
    "trip": {"delay_s": DataType.INT},
    "route": {"on_time_share": DataType.FLOAT, "trips": DataType.INT},
}
"""The fields of each GTFS-Realtime entity and the data type each delivers."""

GBFS_FIELDS: dict[str, dict[str, DataType]] = {
    "station": {
        "bikes": DataType.INT,
        "docks": DataType.INT,
        "renting": DataType.BOOL,
        "returning": DataType.BOOL,
        "installed": DataType.BOOL,
        "capacity": DataType.INT,
        "lat": DataType.FLOAT,
        "lon": DataType.FLOAT,
    },
}
"""The fields of each GBFS entity and the data type each delivers."""

# A field's value may be read into a tag of these types (an integer count into a float tag).
_COMPATIBLE: dict[DataType, frozenset[DataType]] = {
    DataType.FLOAT: frozenset({DataType.FLOAT}),
    DataType.INT: frozenset({DataType.INT, DataType.FLOAT}),
    DataType.BOOL: frozenset({DataType.BOOL}),
    DataType.STRING: frozenset({DataType.STRING}),
}


@dataclass(frozen=True, slots=True)
class FeedAddress:
    """A parsed feed address: which entity, which of its ids and which field."""

    entity: str
    id: str
    field: str
    data_type: DataType
    """The type the field delivers."""

    def __str__(self) -> str:
        return f"{self.entity}:{self.id}:{self.field}"


def _parse(address: str, fields: dict[str, dict[str, DataType]], protocol: str) -> FeedAddress:
    entity, sep, rest = address.partition(":")
    ident, sep2, field = rest.rpartition(":")
    if not sep or not sep2:
        raise AddressError(f"{protocol} address {address!r} is not <entity>:<id>:<field>")
    known = fields.get(entity)
    if known is None:
        raise AddressError(
            f"{protocol} address {address!r}: unknown entity {entity!r}"
            f" (one of {', '.join(sorted(fields))})"
        )
    if not ident or len(ident) > MAX_ID_LENGTH or not ident.isprintable() or " " in ident:
        raise AddressError(
            f"{protocol} address {address!r}: id must be 1-{MAX_ID_LENGTH} printable characters"
            " without spaces"
        )
    data_type = known.get(field)
    if data_type is None:
        raise AddressError(
            f"{protocol} address {address!r}: {entity} has no field {field!r}"
            f" (one of {', '.join(sorted(known))})"
        )
    return FeedAddress(entity, ident, field, data_type)


def parse_gtfs_address(address: str) -> FeedAddress:
    """Parse a GTFS-Realtime point address; raise AddressError when it is not one."""
    return _parse(address, GTFS_FIELDS, "GTFS-Realtime")


def parse_gbfs_address(address: str) -> FeedAddress:
    """Parse a GBFS point address; raise AddressError when it is not one."""
    return _parse(address, GBFS_FIELDS, "GBFS")


def check_compatible(address: FeedAddress, data_type: DataType) -> None:
    """Raise AddressError when the field's values cannot be read into a ``data_type`` tag."""
    if data_type not in _COMPATIBLE[address.data_type]:
        raise AddressError(f"{address} delivers {address.data_type.value}, not {data_type.value}")


def validate_gtfs_address(address: str, data_type: DataType) -> None:
    """Check a GTFS-Realtime address and its tag's data type (site file check)."""
    check_compatible(parse_gtfs_address(address), data_type)


def validate_gbfs_address(address: str, data_type: DataType) -> None:
    """Check a GBFS address and its tag's data type (site file check)."""
    check_compatible(parse_gbfs_address(address), data_type)
