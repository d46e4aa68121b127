"""The historian's typed errors: every failure the store or the writer reports is one of these."""

from __future__ import annotations

from dataclasses import dataclass

from controlcenter.model import Sample


class HistorianError(Exception):
    """Base class of every error raised by the historian."""


class UnsupportedDatabaseError(HistorianError, ValueError):
    """The database URL names a backend or driver the historian does not support."""


class SchemaVersionError(HistorianError):
    """The database schema cannot be used: newer than this software, or not a historian database."""


class StorageError(HistorianError):
    """The database refused or failed an operation (unreachable, locked, missing table...).

    Such failures are usually transient: the writer keeps the batch and retries it.
    """


class HistorianClosedError(HistorianError):
    """The store was used after ``close()``."""


class UnknownTagError(HistorianError, KeyError):
    """A tag name the historian does not know (register tags with ``ensure_tags`` first)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument; say what is missing instead.
        return f"unknown tag {self.tag!r}"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One sample the store refused, and why."""

    sample: Sample
    reason: str


class InvalidSamplesError(HistorianError, ValueError):
    """Samples that cannot be stored (unknown tag, value that does not fit the tag's data type).

    Raised before anything of the batch is written, so the caller may drop ``rejected`` and
    write the rest: retrying the same batch would fail the same way.
    """

    def __init__(self, rejected: tuple[Rejection, ...]) -> None:
        self.rejected = rejected
        first = rejected[0] if rejected else None
        detail = f"; first: {first.sample.tag}: {first.reason}" if first else ""
        super().__init__(f"{len(rejected)} sample(s) cannot be stored{detail}")


class HistorianWriterError(HistorianError):
    """The writer could not do what was asked (stopped with samples unwritten, or stopping)."""
