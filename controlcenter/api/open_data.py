"""Governed open data at ``/open/v1/``: aggregates of the site's public datasets, no login.

Each dataset (``open_data:`` in the site file) is a fixed group of tags. It publishes, per hour
and per site-local day, the group's mean, minimum, maximum and count: each member's statistic
from the historian (``read_processed``: average, minimum, maximum, count of Good values), then
summed or averaged over the members. No member's own figure is ever published; minima and
maxima are those of the members summed or averaged too, since the group's extreme would be one
member's value.

What keeps one building from being singled out:

- the members are fixed by the site file (at least ``k`` for data about individuals, checked
  when the site loads) and no parameter selects among them: a request naming tags, members or
  devices is refused;
- an hour is published only when every member has Good data in it, a day only when all its
  hours are: every published figure covers the same, whole group, so two figures never differ
  by the absence of one member;
- buckets are aligned to the hour and to the site's midnight whatever range is asked for, and
  only completed ones are published, so two requests can only return the same figures.

Requests are rate-limited per address (429 with Retry-After). CSV, JSON and, where a FIWARE
Smart Data Model fits, its key-values shape (``?format=fiware``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from alarms.cap import AlertDesk
from controlcenter.api.problems import problem_response
from controlcenter.api.routes.alerts import add_open_alert_routes
from controlcenter.api.routes.reports import (
    REPORT_FORM_SLACK,
    REPORT_RATE,
    ReportDesk,
    add_report_route,
)
from controlcenter.ports import HistoryQueryReader
from controlcenter.security.ratelimit import RateLimiter, RatePolicy
from controlcenter.site.opendata import OpenDataset

log = logging.getLogger(__name__)

_T = TypeVar("_T", bound=str)

OPEN_PREFIX = "/open/v1"
Resolution = Literal["hour", "day"]
RESOLUTIONS: tuple[Resolution, ...] = ("hour", "day")
FORMATS = ("json", "csv", "fiware")
PARAMETERS = frozenset({"resolution", "start", "end", "format"})
"""Everything a dataset request may say; anything else is refused."""
SELECTING_PARAMETERS = frozenset(
    {"tag", "tags", "member", "members", "device", "devices", "asset", "assets", "building"}
)
"""Parameters a caller might use to pick members: refused as singling out."""
MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=366)}
DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=7)}
OPEN_RATE = RatePolicy(rate_per_s=5.0, burst=30)
"""Per address: enough for a dashboard or a script, not for hammering the historian."""
_AGGREGATES = ("average", "minimum", "maximum", "count")
FIWARE_CONTEXT = "https://smartdatamodels.org/context.jsonld"
"""Named in the entities for consumers; the center itself never fetches it."""


class OpenDataRefusedError(Exception):
    """A request the open-data rules refuse; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str, kind: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Bucket:
    """One published (or withheld) hour or day of a dataset's group."""

    start: datetime
    end: datetime
    mean: float | None
    minimum: float | None
    maximum: float | None
    count: int
    withheld: bool


@dataclass(frozen=True, slots=True)
class _MemberStats:
    """One member's hourly statistics, aligned with the hour grid."""

    mean: list[float | None]
    minimum: list[float | None]
    maximum: list[float | None]
    count: list[int]


class OpenDataService:
    """Computes the datasets' buckets from the historian, applying the publication rules."""

    def __init__(
        self,
        datasets: Sequence[OpenDataset],
        history: HistoryQueryReader,
        *,
        k: int,
        timezone: ZoneInfo,
        site_name: str,
        now: Callable[[], datetime],
    ) -> None:
        """``now``: the center's clock (simulated time in the demo)."""
        self._datasets = {dataset.name: dataset for dataset in datasets}
        self._history = history
        self._k = k
        self._tz = timezone
        self._site_name = site_name
        self._now = now

    @property
    def site_name(self) -> str:
        """The publishing site."""
        return self._site_name

    @property
    def timezone(self) -> ZoneInfo:
        """The site's time zone: days are its days."""
        return self._tz

    def now(self) -> datetime:
        """The center's clock now."""
        return self._now()

    def catalogue(self) -> dict[str, object]:
        """Every dataset with its unit, licence, update frequency and time zone."""
        return {
            "site": self._site_name,
            "time_zone": self._tz.key,
            "k": self._k,
            "statistics": ["mean", "min", "max", "count"],
            "datasets": [self._entry(dataset) for dataset in self._datasets.values()],
        }

    def _entry(self, dataset: OpenDataset) -> dict[str, object]:
        formats = list(FORMATS if dataset.fiware else FORMATS[:2])
        return {
            "name": dataset.name,
            "title": dataset.title,
            "description": dataset.description,
            "unit": dataset.unit,
            "licence": dataset.licence,
            "update_frequency": dataset.update_frequency,
            "time_zone": self._tz.key,
            "aggregation": dataset.aggregation,
            "members": len(dataset.members),
            "about_individuals": dataset.individuals,
            "resolutions": list(RESOLUTIONS),
            "formats": formats,
            "fiware_model": dataset.fiware,
            "url": f"{OPEN_PREFIX}/datasets/{dataset.name}",
        }

    def dataset(self, name: str) -> OpenDataset:
        """The dataset called ``name``; refused (404) when there is none."""
        dataset = self._datasets.get(name)
        if dataset is None:
            raise OpenDataRefusedError(404, f"no dataset called {name[:80]!r}")
        if dataset.individuals and len(dataset.members) < self._k:
            # The site check refuses such a dataset; this guards a service built otherwise.
            raise OpenDataRefusedError(
                403, f"dataset {name!r} has fewer than k = {self._k} members", "group-too-small"
            )
        return dataset

    def window(
        self, resolution: Resolution, start: datetime | None, end: datetime | None
    ) -> tuple[datetime, datetime]:
        """The aligned, completed range of buckets for a request (defaults: the latest)."""
        latest = self._floor(self._now(), resolution)
        last = latest if end is None else min(latest, self._ceil(end, resolution))
        first = (
            self._floor(last - DEFAULT_SPAN[resolution], resolution)
            if start is None
            else self._floor(start, resolution)
        )
        if first > last:
            raise OpenDataRefusedError(400, "start is after end", "invalid-range")
        if last - first > MAX_SPAN[resolution]:
            days = MAX_SPAN[resolution].days
            raise OpenDataRefusedError(
                400, f"at most {days} days per request at resolution {resolution}", "range-too-long"
            )
        return first, last

    def buckets(
        self, dataset: OpenDataset, resolution: Resolution, first: datetime, last: datetime
    ) -> list[Bucket]:
        """The dataset's buckets in [first, last) (aligned), withheld ones marked."""
        if first >= last:
            return []
        hours = _hour_grid(first, last)
        stats = [self._member_stats(tag, first, last, len(hours)) for tag in dataset.members]
        hourly = [_combine(dataset, stats, [index]) for index in range(len(hours))]
        if resolution == "hour":
            return [
                _bucket(start, start + timedelta(hours=1), figures)
                for start, figures in zip(hours, hourly, strict=True)
            ]
        days: list[Bucket] = []
        for day_start, day_end in self._day_grid(first, last):
            indexes = [i for i, hour in enumerate(hours) if day_start <= hour < day_end]
            complete = bool(indexes) and all(hourly[i] is not None for i in indexes)
            figures = _combine(dataset, stats, indexes) if complete else None
            days.append(_bucket(day_start, day_end, figures))
        return days

    def _member_stats(self, tag: str, first: datetime, last: datetime, size: int) -> _MemberStats:
        try:
            series = self._history.read_processed(
                tag, first, last, timedelta(hours=1), list(_AGGREGATES)
            )
        except (KeyError, ValueError):
            # A tag the historian has not stored yet (or cannot aggregate) has no data.
            series = {}

        def values(name: str) -> list[float | None]:
            samples = series.get(name, [])
            out: list[float | None] = [None] * size
            for index, sample in enumerate(samples[:size]):
                value = sample.value
                if isinstance(value, int | float) and math.isfinite(float(value)):
                    out[index] = float(value)
            return out

        counts = [int(value or 0) for value in values("count")]
        return _MemberStats(values("average"), values("minimum"), values("maximum"), counts)

    def _floor(self, moment: datetime, resolution: Resolution) -> datetime:
        local = moment.astimezone(self._tz)
        if resolution == "hour":
            return local.replace(minute=0, second=0, microsecond=0)
        return _midnight(local.date(), self._tz)

    def _ceil(self, moment: datetime, resolution: Resolution) -> datetime:
        floored = self._floor(moment, resolution)
        if floored == moment:
            return floored
        if resolution == "hour":
            return floored + timedelta(hours=1)
        return _midnight(floored.date() + timedelta(days=1), self._tz)

    def _day_grid(self, first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
        days: list[tuple[datetime, datetime]] = []
        day = first.astimezone(self._tz).date()
        while True:
            start, end = _midnight(day, self._tz), _midnight(day + timedelta(days=1), self._tz)
            if end > last:
                return days
            days.append((start, end))
            day += timedelta(days=1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _hour_grid(first: datetime, last: datetime) -> list[datetime]:
    count = int((last - first) / timedelta(hours=1))
    return [first + timedelta(hours=index) for index in range(count)]


def _combine(
    dataset: OpenDataset, stats: Sequence[_MemberStats], indexes: Sequence[int]
) -> tuple[float, float, float, int] | None:
    """The group's figures over hours ``indexes``; None unless every member has data."""
    if not stats:
        return None
    means, minima, maxima, total = [], [], [], 0
    for member in stats:
        counts = [member.count[i] for i in indexes]
        if any(count <= 0 for count in counts):
            return None
        picked = [(member.mean[i], member.minimum[i], member.maximum[i]) for i in indexes]
        if any(None in triple for triple in picked):
            return None
        weight = sum(counts)
        # A member's mean over several hours weights each hour by its Good values (exact).
        weighted = sum(c * float(p[0] or 0.0) for c, p in zip(counts, picked, strict=True))
        means.append(weighted / weight)
        minima.append(min(float(p[1] or 0.0) for p in picked))
        maxima.append(max(float(p[2] or 0.0) for p in picked))
        total += weight

    def group(values: list[float]) -> float:
        return sum(values) if dataset.aggregation == "sum" else sum(values) / len(values)

    return group(means), group(minima), group(maxima), total


def _bucket(
    start: datetime, end: datetime, figures: tuple[float, float, float, int] | None
) -> Bucket:
    if figures is None:
        return Bucket(start, end, None, None, None, 0, withheld=True)
    mean, minimum, maximum, count = figures
    return Bucket(start, end, mean, minimum, maximum, count, withheld=False)


# --- the web face ---------------------------------------------------------------------------


def create_open_data(
    service: OpenDataService,
    rate: RatePolicy | None = None,
    *,
    alerts: AlertDesk | None = None,
    reports: ReportDesk | None = None,
    report_rate: RatePolicy | None = None,
) -> Flask:
    """The open-data WSGI app; mount it at ``/open/`` (it answers under ``/open/v1/``).
    ``alerts``: the public CAP feed at ``/open/v1/alerts``; ``reports``: citizens' reports
    at ``POST /open/v1/reports``."""
    app = Flask(__name__)
    limiter = RateLimiter(rate if rate is not None else OPEN_RATE)
    if reports is not None:
        # A photo and its form fit; a larger body is refused (413) before it is read.
        app.config["MAX_CONTENT_LENGTH"] = reports.max_photo_bytes + REPORT_FORM_SLACK
        add_report_route(app, reports, report_rate or REPORT_RATE)
    if alerts is not None:
        add_open_alert_routes(app, alerts, site_name=service.site_name, now=service.now)

    @app.before_request
    def limit() -> ResponseReturnValue | None:
        wait = limiter.take(request.remote_addr or "unknown")
        if wait > 0:
            return problem_response(
                429,
                f"more than {limiter.policy.rate_per_s:g} requests a second from this address",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return None

    @app.get(OPEN_PREFIX)
    @app.get(OPEN_PREFIX + "/")
    def catalogue() -> ResponseReturnValue:
        _refuse_parameters(request.args, frozenset())
        return _json(service.catalogue())

    @app.get(OPEN_PREFIX + "/datasets/<name>")
    def dataset(name: str) -> ResponseReturnValue:
        _refuse_parameters(request.args, PARAMETERS)
        chosen = service.dataset(name)
        resolution = _choice(request.args, "resolution", RESOLUTIONS, "hour")
        output = _choice(request.args, "format", FORMATS, "json")
        if output == "fiware" and chosen.fiware is None:
            raise OpenDataRefusedError(
                400, f"dataset {name!r} has no FIWARE Smart Data Model", "no-fiware-model"
            )
        start = _moment(request.args, "start", service.timezone)
        end = _moment(request.args, "end", service.timezone)
        first, last = service.window(resolution, start, end)
        try:
            buckets = service.buckets(chosen, resolution, first, last)
        except OpenDataRefusedError:
            raise
        except Exception as err:
            # The historian is away (database down): say so rather than answer with a 500.
            log.warning("open data %s could not be read: %s", name, err)
            raise OpenDataRefusedError(503, "the historian cannot be read now") from err
        if output == "csv":
            return _csv(chosen, buckets, service.timezone)
        if output == "fiware":
            return _json(_fiware(chosen, buckets, service.site_name))
        return _json(_document(chosen, resolution, first, last, buckets, service))

    @app.errorhandler(OpenDataRefusedError)
    def refused(error: OpenDataRefusedError) -> ResponseReturnValue:
        return problem_response(error.status, str(error), kind=error.kind)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        return problem_response(error.code or 500, error.description or "")

    return app


def _refuse_parameters(args: Mapping[str, str], allowed: frozenset[str]) -> None:
    for key in args:
        if key.lower() in SELECTING_PARAMETERS:
            raise OpenDataRefusedError(
                403,
                "the members of a dataset are fixed: open data is published for the whole "
                "group only, never for a chosen tag, device or building",
                "singling-out-refused",
            )
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise OpenDataRefusedError(
                400, f"unknown parameter {key[:40]!r} (accepted: {names})", "invalid-request"
            )
    for key in allowed:
        if len(request.args.getlist(key)) > 1:
            raise OpenDataRefusedError(400, f"{key!r} given twice", "invalid-request")


def _choice(args: Mapping[str, str], key: str, options: Sequence[_T], default: _T) -> _T:
    value = args.get(key)
    if value is None:
        return default
    for option in options:
        if value == option:
            return option
    raise OpenDataRefusedError(400, f"{key} must be one of {', '.join(options)}", "invalid-request")


def _moment(args: Mapping[str, str], key: str, tz: ZoneInfo) -> datetime | None:
    text = args.get(key)
    if text is None:
        return None
    try:
        if len(text) > 40:
            raise ValueError(text)
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise OpenDataRefusedError(
            400, f"{key} must be an ISO 8601 date or time", "invalid-request"
        ) from err
    # A time without offset is the site's local time, as every time published here.
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def _json(body: object) -> Response:
    return Response(json.dumps(body, allow_nan=False), mimetype="application/json")


def _document(
    dataset: OpenDataset,
    resolution: Resolution,
    first: datetime,
    last: datetime,
    buckets: Sequence[Bucket],
    service: OpenDataService,
) -> dict[str, object]:
    return {
        "dataset": dataset.name,
        "title": dataset.title,
        "unit": dataset.unit,
        "aggregation": dataset.aggregation,
        "members": len(dataset.members),
        "licence": dataset.licence,
        "time_zone": service.timezone.key,
        "resolution": resolution,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "buckets": [
            {
                "start": bucket.start.isoformat(),
                "end": bucket.end.isoformat(),
                "mean": bucket.mean,
                "min": bucket.minimum,
                "max": bucket.maximum,
                "count": bucket.count,
                "withheld": bucket.withheld,
            }
            for bucket in buckets
        ],
    }


def _csv(dataset: OpenDataset, buckets: Sequence[Bucket], tz: ZoneInfo) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "end", "mean", "min", "max", "count", "withheld"])
    for bucket in buckets:
        writer.writerow(
            [
                bucket.start.astimezone(tz).isoformat(),
                bucket.end.astimezone(tz).isoformat(),
                "" if bucket.mean is None else repr(bucket.mean),
                "" if bucket.minimum is None else repr(bucket.minimum),
                "" if bucket.maximum is None else repr(bucket.maximum),
                bucket.count,
                "true" if bucket.withheld else "false",
            ]
        )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{dataset.name}.csv"'
    return response


def _fiware(
    dataset: OpenDataset, buckets: Sequence[Bucket], site_name: str
) -> list[dict[str, object]]:
    """NGSI-LD key-values entities of the dataset's Smart Data Model, one per published bucket."""
    entities: list[dict[str, object]] = []
    site = "".join(c if c.isalnum() else "-" for c in site_name)
    for bucket in buckets:
        if bucket.withheld or bucket.mean is None:
            continue
        stamp = bucket.start.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%MZ")
        entity: dict[str, object] = {
            "id": f"urn:ngsi-ld:{dataset.fiware}:{site}:{dataset.name}:{stamp}",
            "type": dataset.fiware,
            "name": dataset.title,
            "description": (
                f"{dataset.aggregation} over {len(dataset.members)} members, "
                f"{bucket.start.isoformat()} to {bucket.end.isoformat()}"
            ),
            "dataProvider": site_name,
        }
        if dataset.fiware == "WaterObserved":
            entity["dateObserved"] = bucket.end.isoformat()
            entity["flow"] = bucket.mean
        else:
            entity["dateModified"] = bucket.end.isoformat()
            entity["illuminanceLevel"] = round(bucket.mean / 100.0, 6)
        entity["@context"] = [FIWARE_CONTEXT]
        entities.append(entity)
    return entities
