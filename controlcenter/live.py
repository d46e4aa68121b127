"""The live snapshot (the latest sample of every tag, readable from any thread) and the change
hub that hands the bus's samples and alarm changes to open streams (HMI displays, API clients)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controlcenter.automation import AlarmDef, AlarmState, AlarmTransition
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


# --- the change hub: from the center's bus to open streams (HMI displays, API clients) ---------


@dataclass(eq=False, slots=True)
class Subscription:
    """One open stream: its tags, what changed since it last sent, and how to wake it (on the
    loop that serves it)."""

    tags: frozenset[str]
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event
    pending: dict[str, Sample] = field(default_factory=dict)
    alarm_version: int = 0
    signalled: bool = False
    closed: bool = False
    transitions: list[AlarmTransition] | None = None
    """The alarm transitions not yet sent, for a stream that carries them (None: it does not)."""
    dropped_transitions: int = 0
    """Transitions dropped because the stream fell ``MAX_PENDING_TRANSITIONS`` behind."""


MAX_PENDING_TRANSITIONS = 10_000
"""Transitions one stream may fall behind by (an alarm flood to a slow client); older ones are
dropped and counted."""


class LiveHub:
    """Hands the samples of the center's bus to the open streams that show their tags.

    ``on_samples`` is a bus listener (called on the center's loop); ``on_transition`` an alarm
    listener. Both only note what changed and wake the streams on the HMI's loop: neither
    blocks nor formats anything.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[Subscription] = set()
        self._watchers: dict[str, set[Subscription]] = {}
        self._alarm_version = 0

    @property
    def alarm_version(self) -> int:
        """Bumped by every alarm transition."""
        return self._alarm_version

    def open_streams(self) -> int:
        """How many streams are open (browsers showing a display)."""
        with self._lock:
            return len(self._streams)

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Note the samples of watched tags for their streams (a bus listener)."""
        woken: list[Subscription] = []
        with self._lock:
            if not self._watchers:
                return
            for sample in samples:
                watchers = self._watchers.get(sample.tag)
                if not watchers:
                    continue
                for stream in watchers:
                    stream.pending[sample.tag] = sample
                    if not stream.signalled:
                        stream.signalled = True
                        woken.append(stream)
        for stream in woken:
            _wake(stream)

    def on_transition(
        self, definition: AlarmDef, state: AlarmState, transition: AlarmTransition
    ) -> None:
        """Bump the alarm version and wake every stream (an alarm listener)."""
        woken: list[Subscription] = []
        with self._lock:
            self._alarm_version += 1
            for stream in self._streams:
                if stream.transitions is not None:
                    if len(stream.transitions) >= MAX_PENDING_TRANSITIONS:
                        del stream.transitions[0]
                        stream.dropped_transitions += 1
                    stream.transitions.append(transition)
                if not stream.signalled:
                    stream.signalled = True
                    woken.append(stream)
        for stream in woken:
            _wake(stream)

    def close_all(self) -> None:
        """End every open stream (the server is stopping; browsers reconnect elsewhere)."""
        with self._lock:
            streams = list(self._streams)
            for stream in streams:
                stream.closed = True
        for stream in streams:
            _wake(stream)

    def open(self, tags: Iterable[str], *, transitions: bool = False) -> Subscription:
        """Open a subscription to ``tags`` for a stream served on the running loop; with
        ``transitions`` it also keeps each alarm transition (``take_transitions``)."""
        stream = Subscription(frozenset(tags), asyncio.get_running_loop(), asyncio.Event())
        if transitions:
            stream.transitions = []
        with self._lock:
            stream.alarm_version = self._alarm_version
            self._streams.add(stream)
            for tag in stream.tags:
                self._watchers.setdefault(tag, set()).add(stream)
        return stream

    def close(self, stream: Subscription) -> None:
        """Forget a subscription (its stream ended)."""
        with self._lock:
            self._streams.discard(stream)
            for tag in stream.tags:
                watchers = self._watchers.get(tag)
                if watchers is not None:
                    watchers.discard(stream)
                    if not watchers:
                        del self._watchers[tag]

    def take(
        self, stream: Subscription, *, alarms: bool = True
    ) -> tuple[dict[str, Sample], int | None, bool]:
        """The stream's pending samples; if it changed and ``alarms``, the alarm version;
        and whether an alarm change is left for later."""
        with self._lock:
            pending, stream.pending = stream.pending, {}
            stream.signalled = False
            stream.wake.clear()
            version = None
            changed = stream.alarm_version != self._alarm_version
            if changed and alarms:
                version = stream.alarm_version = self._alarm_version
        return pending, version, changed and not alarms

    def take_transitions(self, stream: Subscription) -> tuple[list[AlarmTransition], int]:
        """The alarm transitions kept for ``stream`` since the last call, oldest first, and
        how many were dropped meanwhile."""
        with self._lock:
            if stream.transitions is None:
                return [], 0
            taken, stream.transitions = stream.transitions, []
            dropped, stream.dropped_transitions = stream.dropped_transitions, 0
        return taken, dropped


def _wake(stream: Subscription) -> None:
    # RuntimeError: the HMI's loop has stopped, and the stream is gone with it.
    with contextlib.suppress(RuntimeError):
        stream.loop.call_soon_threadsafe(stream.wake.set)
