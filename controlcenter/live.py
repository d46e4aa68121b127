"""The live snapshot: the latest sample of every tag, readable from any thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from controlcenter.model import Quality, Sample, Substatus, TagDef


class LiveSnapshot:
    """Latest sample per tag; every configured tag starts Bad (waiting for initial data)."""

    def __init__(self, tags: Sequence[TagDef], started_at: datetime) -> None:
        self._tags = tuple(tags)
        waiting = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, "no value read yet")
        self._latest: dict[str, Sample] = {
            tag.name: Sample(tag.name, None, waiting, started_at, started_at) for tag in tags
        }
        self._lock = threading.Lock()

    def update(self, samples: Sequence[Sample]) -> None:
        """Take a batch of samples from the bus (a ``SampleListener``)."""
        with self._lock:
            for sample in samples:
                if sample.tag in self._latest:
                    self._latest[sample.tag] = sample

    def add_tags(self, tags: Sequence[TagDef], now: datetime) -> None:
        """Add tags defined while running (calculated tags of a newly deployed rule set)."""
        waiting = Quality.bad(Substatus.WAITING_FOR_INITIAL_DATA, "no value read yet")
        with self._lock:
            new = [tag for tag in tags if tag.name not in self._latest]
            for tag in new:
                self._latest[tag.name] = Sample(tag.name, None, waiting, now, now)
            self._tags = (*self._tags, *new)

    def tags(self) -> Sequence[TagDef]:
        """Every configured tag."""
        return self._tags

    def latest(self, tag: str) -> Sample:
        """The latest sample of ``tag``; raises KeyError for an unknown tag."""
        with self._lock:
            return self._latest[tag]

    def snapshot(self) -> Mapping[str, Sample]:
        """A copy of the latest sample of every tag."""
        with self._lock:
            return dict(self._latest)
