"""Quality from a feed's own timestamp: a feed no longer updated turns Uncertain, then Bad."""

from __future__ import annotations

from datetime import datetime

from controlcenter.model import Quality, Substatus
from drivers.feeds.config import Freshness

_GOOD = Quality.good()


def feed_quality(
    feed_time: datetime, valid_for_s: float, now: datetime, freshness: Freshness
) -> Quality:
    """The quality of values published at ``feed_time`` and valid for ``valid_for_s`` seconds
    (GBFS ``ttl``; 0 for GTFS-Realtime), judged at ``now``."""
    age = (now - feed_time).total_seconds()
    if age < -freshness.max_future_s:
        return Quality.uncertain(
            Substatus.SENSOR_NOT_ACCURATE,
            f"feed timestamp {-age:.0f} s ahead of the center's clock",
        )
    overdue = age - valid_for_s
    if overdue <= freshness.uncertain_after_s:
        return _GOOD
    if overdue <= freshness.bad_after_s:
        return Quality.uncertain(Substatus.LAST_USABLE, f"feed stale: last updated {age:.0f} s ago")
    return Quality.bad(Substatus.COMM_FAILURE, f"feed stale: last updated {age:.0f} s ago")
