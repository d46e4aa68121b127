"""The in-process sample bus: acquisition publishes, the historian, rules and live view listen."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from controlcenter.model import Sample
from controlcenter.ports import SampleListener

log = logging.getLogger(__name__)


class SampleBus:
    """Fans each published batch out to every listener, in subscription order.

    Listeners must not block: each one enqueues into its own consumer. A listener that raises is
    logged and the others still receive the batch, so one broken consumer cannot starve the rest.
    """

    def __init__(self) -> None:
        self._listeners: list[tuple[str, SampleListener]] = []

    def subscribe(self, name: str, listener: SampleListener) -> None:
        """Register a listener under a name used in logs."""
        if any(existing == name for existing, _ in self._listeners):
            raise ValueError(f"a listener named '{name}' is already subscribed")
        self._listeners.append((name, listener))

    def publish(self, samples: Sequence[Sample]) -> None:
        """Deliver a batch of samples to every listener."""
        if not samples:
            return
        for name, listener in self._listeners:
            try:
                listener(samples)
            except Exception:
                log.exception("sample listener '%s' failed; other listeners unaffected", name)
