"""UTC timestamps in the database: INTEGER microseconds on SQLite, TIMESTAMPTZ on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of a timezone-aware datetime (exact, no float rounding)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the historian needs UTC times")
    return (moment - EPOCH) // _MICROSECOND


def from_epoch_us(micros: int) -> datetime:
    """The UTC datetime of a count of microseconds since the Unix epoch."""
    return EPOCH + timedelta(microseconds=micros)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on the Python side, stored natively per dialect.

    SQLite has no date type: an INTEGER of microseconds since the epoch is compact, exact,
    sorts correctly and is indexable. PostgreSQL's TIMESTAMPTZ has microsecond resolution and
    is what partitioning (and TimescaleDB, where installed) expects. Naive datetimes are
    refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick the column type of this dialect."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Convert a Python datetime to what the dialect stores."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_epoch_us(value)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the historian needs UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert a stored value back to a UTC datetime."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_epoch_us(int(value))
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from {dialect.name}, got {type(value).__name__}")
        # psycopg returns TIMESTAMPTZ in the session's time zone; the center works in UTC.
        return value.astimezone(UTC)
