"""Fixed weather for the domain models' unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from plc_sim.weather import WeatherState


def weather(
    when: datetime, *, temp_c: float = 15.0, cloud: float = 0.5, sun_deg: float = 30.0
) -> WeatherState:
    """A weather state at ``when``."""
    return WeatherState(when, temp_c, cloud, sun_deg, 20_000.0 if sun_deg > 0 else 0.0)


def run(
    model: object, start: datetime, hours: float, step_s: float = 60.0, **kw: float
) -> datetime:
    """Step ``model`` (anything with ``step(dt, now, weather)``) for ``hours``; the end time."""
    now = start
    for _ in range(int(hours * 3600 / step_s)):
        now += timedelta(seconds=step_s)
        model.step(step_s, now, weather(now, **kw))  # type: ignore[attr-defined]
    return now
