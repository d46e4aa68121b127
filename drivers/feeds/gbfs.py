"""GBFS 3.0 feeds (General Bikeshare Feed Specification, MobilityData) as pydantic models, and
station values by point address (see ``drivers.feeds.address``).

Models are strict: a count sent as a string or a flag sent as 0/1 is a malformed feed, not a
value to guess at. Only the files and fields the driver uses are modelled (``gbfs.json``,
``station_information``, ``station_status``); other fields are ignored.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from controlcenter.model import Value
from drivers.feeds.gtfs_rt import FeedSnapshot
from drivers.feeds.http import FeedFormatError

GBFS_VERSION = "3.0"
MAX_STATIONS = 100_000
MAX_TTL_S = 86_400


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class FeedLink(_Model):
    """One file of the system named in ``gbfs.json``."""

    name: str = Field(max_length=64)
    url: str = Field(max_length=2048, pattern=r"^https?://")


class DiscoveryData(_Model):
    """The ``data`` of ``gbfs.json``."""

    feeds: list[FeedLink] = Field(max_length=64)


class _Envelope(_Model):
    last_updated: AwareDatetime
    ttl: int = Field(ge=0, le=MAX_TTL_S)


class Discovery(_Envelope):
    """``gbfs.json``: where the system's files are."""

    version: str = Field(max_length=16)
    data: DiscoveryData

    def url_of(self, name: str) -> str | None:
        """The URL of the file called ``name``, if the system publishes it."""
        for link in self.data.feeds:
            if link.name == name:
                return link.url
        return None


class StationInformation(_Model):
    """One station's fixed facts."""

    station_id: str = Field(min_length=1, max_length=128)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    capacity: int | None = Field(default=None, ge=0)


class StationInformationData(_Model):
    """The ``data`` of ``station_information.json``."""

    stations: list[StationInformation] = Field(max_length=MAX_STATIONS)


class StationInformationFile(_Envelope):
    """``station_information.json``."""

    data: StationInformationData


class StationStatus(_Model):
    """One station's state."""

    station_id: str = Field(min_length=1, max_length=128)
    num_vehicles_available: int = Field(ge=0)
    num_docks_available: int | None = Field(default=None, ge=0)
    is_installed: bool
    is_renting: bool
    is_returning: bool
    last_reported: AwareDatetime


class StationStatusData(_Model):
    """The ``data`` of ``station_status.json``."""

    stations: list[StationStatus] = Field(max_length=MAX_STATIONS)


class StationStatusFile(_Envelope):
    """``station_status.json``."""

    data: StationStatusData


_M = TypeVar("_M", bound=BaseModel)


def _parse(model: type[_M], body: bytes, where: str) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        raise FeedFormatError(
            f"{where}: not a GBFS {GBFS_VERSION} file: {place}: {first['msg']}"
            f" ({err.error_count()} problem(s))"
        ) from err


def decode_discovery(body: bytes, where: str) -> Discovery:
    """Parse ``gbfs.json``."""
    return _parse(Discovery, body, where)


def decode_station_information(body: bytes, where: str) -> FeedSnapshot:
    """Values of ``station_information.json``: ``station:<id>:lat|lon|capacity``."""
    parsed = _parse(StationInformationFile, body, where)
    values: dict[str, Value] = {}
    for station in parsed.data.stations:
        prefix = f"station:{station.station_id}:"
        values[prefix + "lat"] = station.lat
        values[prefix + "lon"] = station.lon
        if station.capacity is not None:
            values[prefix + "capacity"] = station.capacity
    return FeedSnapshot(parsed.last_updated, values, float(parsed.ttl))


def decode_station_status(body: bytes, where: str) -> FeedSnapshot:
    """Values of ``station_status.json``: ``station:<id>:bikes|docks|renting|returning|installed``
    (``docks`` only where the station reports it)."""
    parsed = _parse(StationStatusFile, body, where)
    values: dict[str, Value] = {}
    for station in parsed.data.stations:
        prefix = f"station:{station.station_id}:"
        values[prefix + "bikes"] = station.num_vehicles_available
        if station.num_docks_available is not None:
            values[prefix + "docks"] = station.num_docks_available
        values[prefix + "renting"] = station.is_renting
        values[prefix + "returning"] = station.is_returning
        values[prefix + "installed"] = station.is_installed
    return FeedSnapshot(parsed.last_updated, values, float(parsed.ttl))
