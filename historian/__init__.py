"""The historian: samples, tags and journals in SQLite or PostgreSQL, written in batches.

``SqlHistorian`` is the store (``controlcenter.ports.HistoryStore``); ``HistorianWriter`` feeds
it from the event loop in batches without blocking acquisition; given a ``DiskSpool`` as its
buffer it keeps every sample on local disk until the database has it (store-and-forward).
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
from historian.spool import DiskSpool, SpoolError, SpoolFullError, SpoolMetrics
from historian.store import SqlHistorian
from historian.writer import HistorianWriter, WriterMetrics

__all__ = [
    "SCHEMA_VERSION",
    "DiskSpool",
    "HistorianClosedError",
    "HistorianError",
    "HistorianWriter",
    "HistorianWriterError",
    "InvalidSamplesError",
    "MemoryBuffer",
    "Rejection",
    "SampleBuffer",
    "SchemaVersionError",
    "SpoolError",
    "SpoolFullError",
    "SpoolMetrics",
    "SqlHistorian",
    "StorageError",
    "UnknownTagError",
    "UnsupportedDatabaseError",
    "WriterMetrics",
]
