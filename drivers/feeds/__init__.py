"""Feed drivers: GTFS-Realtime (vehicle positions, trip updates) and GBFS (bike-share stations)
polled over HTTP with ETag / If-Modified-Since, quality from each feed's own timestamp."""

from drivers.feeds.address import validate_gbfs_address, validate_gtfs_address
from drivers.feeds.config import Freshness, GbfsConfig, GtfsRealtimeConfig, HttpSettings
from drivers.feeds.driver import GbfsDriver, GtfsRealtimeDriver
from drivers.feeds.http import FeedFormatError

__all__ = [
    "FeedFormatError",
    "Freshness",
    "GbfsConfig",
    "GbfsDriver",
    "GtfsRealtimeConfig",
    "GtfsRealtimeDriver",
    "HttpSettings",
    "validate_gbfs_address",
    "validate_gtfs_address",
]
