"""The historian: samples, tags and journals in SQLite or PostgreSQL, written in batches.

``SqlHistorian`` is the store (``controlcenter.ports.HistoryStore``); ``HistorianWriter`` feeds
it from the event loop in batches without blocking acquisition.
"""

from historian.buffer import MemoryBuffer, SampleBuffer
from historian.errors import (
    HistorianClosedError,
    HistorianError,
    HistorianWriterError,
    InvalidSamplesError,
    Rejection,
    SchemaVersionError,
    StorageError,
    UnknownTagError,
    UnsupportedDatabaseError,
)
from historian.schema import SCHEMA_VERSION
from historian.store import SqlHistorian
from historian.writer import HistorianWriter, WriterMetrics

__all__ = [
    "SCHEMA_VERSION",
    "HistorianClosedError",
    "HistorianError",
    "HistorianWriter",
    "HistorianWriterError",
    "InvalidSamplesError",
    "MemoryBuffer",
    "Rejection",
    "SampleBuffer",
    "SchemaVersionError",
    "SqlHistorian",
    "StorageError",
    "UnknownTagError",
    "UnsupportedDatabaseError",
    "WriterMetrics",
]
