"""Where the writer keeps samples until the database has them: the store-and-forward seam.

The writer only appends, peeks at the oldest and drops what was stored, so a crash-safe disk
spool can replace the in-memory buffer without changing the writer: it would append to a file,
peek from its read position and advance that position on ``drop``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Protocol

from controlcenter.model import Sample


class SampleBuffer(Protocol):
    """An ordered queue of samples not yet stored; the oldest are written first."""

    def append(self, samples: Sequence[Sample]) -> None:
        """Add samples at the end; must not block (called on the event loop)."""
        ...

    def peek(self, limit: int) -> list[Sample]:
        """The oldest ``limit`` samples (fewer if fewer are held), without removing them."""
        ...

    def drop(self, count: int) -> None:
        """Remove the oldest ``count`` samples, once they are stored (or refused for good)."""
        ...

    def __len__(self) -> int:
        """How many samples are held."""
        ...


class MemoryBuffer:
    """A ``SampleBuffer`` in memory: fast, unbounded, lost if the process dies."""

    def __init__(self) -> None:
        self._samples: deque[Sample] = deque()

    def append(self, samples: Sequence[Sample]) -> None:
        """Add samples at the end."""
        self._samples.extend(samples)

    def peek(self, limit: int) -> list[Sample]:
        """The oldest ``limit`` samples, without removing them."""
        return list(islice(self._samples, limit))

    def drop(self, count: int) -> None:
        """Remove the oldest ``count`` samples."""
        if count > len(self._samples):
            raise ValueError(f"cannot drop {count} of {len(self._samples)} samples")
        for _ in range(count):
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)
