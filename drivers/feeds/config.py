"""Settings of the feed drivers: where the feeds are, how long an answer may take and how old
a feed may be before its values are Uncertain, then Bad."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
"""Largest feed body read (after decompression): a bigger answer is refused, not buffered."""


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r} is not an http(s) URL")


@dataclass(frozen=True, slots=True)
class Freshness:
    """How the age of a feed's own timestamp turns into quality.

    A feed is Good until ``uncertain_after_s`` past its validity (GBFS: ``last_updated`` +
    ``ttl``; GTFS-Realtime: ``header.timestamp``), Uncertain until ``bad_after_s`` past it,
    Bad beyond. A timestamp more than ``max_future_s`` ahead of the center's clock is
    Uncertain (the publisher's clock is wrong)."""

    uncertain_after_s: float = 60.0
    bad_after_s: float = 300.0
    max_future_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.uncertain_after_s < self.bad_after_s:
            raise ValueError("feed freshness needs 0 <= uncertain_after_s < bad_after_s")
        if self.max_future_s < 0:
            raise ValueError("feed max_future_s must not be negative")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How each feed is fetched."""

    timeout_s: float = 5.0
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"feed timeout must be positive, got {self.timeout_s}")
        if self.max_bytes < 1024:
            raise ValueError(f"feed max_bytes must be at least 1024, got {self.max_bytes}")


@dataclass(frozen=True, slots=True)
class GtfsRealtimeConfig:
    """A GTFS-Realtime publisher: its VehiclePositions and TripUpdates feeds (either may be
    absent; points of an absent feed are Bad). ``on_time_early_s``/``on_time_late_s`` bound
    an on-time trip (default one minute early to five minutes late)."""

    vehicle_positions_url: str | None
    trip_updates_url: str | None
    http: HttpSettings = HttpSettings()
    freshness: Freshness = Freshness()
    on_time_early_s: int = 60
    on_time_late_s: int = 300

    def __post_init__(self) -> None:
        if self.vehicle_positions_url is None and self.trip_updates_url is None:
            raise ValueError("a GTFS-Realtime device needs a vehicle positions or trip updates URL")
        for url, what in (
            (self.vehicle_positions_url, "vehicle positions URL"),
            (self.trip_updates_url, "trip updates URL"),
        ):
            if url is not None:
                _check_url(url, what)
        if self.on_time_early_s < 0 or self.on_time_late_s < 0:
            raise ValueError("on-time bounds must not be negative")


@dataclass(frozen=True, slots=True)
class GbfsConfig:
    """A GBFS system: its auto-discovery file ``gbfs.json`` (GBFS 3.0)."""

    discovery_url: str
    http: HttpSettings = HttpSettings()
    freshness: Freshness = Freshness()

    def __post_init__(self) -> None:
        _check_url(self.discovery_url, "GBFS discovery URL")
