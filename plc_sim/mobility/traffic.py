"""How much slower than free flow the city's roads are, by local time of day.

A stand-in for measured traffic: 1.0 at night, about 1.5 at the morning peak (08:00) and 1.45 at
the evening peak (17:30) on working days, and a flatter midday hump at weekends. A model with road
detectors can replace it (``BusNetwork(traffic=...)``).
"""

from __future__ import annotations

import math
from datetime import datetime


def _bump(hour: float, centre: float, width: float, height: float) -> float:
    return height * math.exp(-(((hour - centre) / width) ** 2))


def traffic_factor(local: datetime) -> float:
    """Travel time over free-flow travel time at local time ``local`` (>= 1)."""
    hour = local.hour + local.minute / 60 + local.second / 3600
    if local.weekday() < 5:
        factor = 1.0 + _bump(hour, 8.0, 1.1, 0.5) + _bump(hour, 17.5, 1.4, 0.45)
        factor += _bump(hour, 13.0, 2.5, 0.12)
    else:
        factor = 1.0 + _bump(hour, 14.0, 3.5, 0.2)
    return factor
