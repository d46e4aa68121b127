"""Citizens' reports: a broken streetlight, an overflowing container, anything else.

Citizens have no accounts, so reports arrive on the open-data app without login at
``POST /open/v1/reports`` (rate-limited per address, stricter than the datasets); an API
token per citizen would be a login in disguise and a public token would be no control at
all. Each report is linked to the nearest asset of a fitting type (positions from the site
file), its photo (optional; JPEG or PNG by their magic bytes, size-limited) is stored, and it
is journaled before the answer says 201: a report the citizen saw accepted is never lost.
Maintenance reads them in the journal (source ``citizen-report``), on the HMI's journal
display and at ``GET /api/v1/reports``.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask.typing import ResponseReturnValue
from flask_openapi3.openapi import OpenAPI
from pydantic import AwareDatetime, BaseModel, Field

from controlcenter.api.auth import require
from controlcenter.api.problems import problem_response
from controlcenter.api.routes.common import Query, blueprint, dump, optional_window
from controlcenter.api.services import ApiServices
from controlcenter.automation import AssetDef
from controlcenter.model import Event, EventKind
from controlcenter.permissions import Permission
from controlcenter.ports import EventJournal
from controlcenter.security.ratelimit import RateLimiter, RatePolicy

SOURCE = "citizen-report"
"""The journal's source of citizens' reports."""
CATEGORIES = ("streetlight", "container", "other")
CATEGORY_ASSET_TYPES: Mapping[str, tuple[str, ...]] = {
    "streetlight": ("lighting_cabinet", "streetlight"),
    "container": ("waste_container",),
    "other": (),
}
"""The asset types a report of each category is linked to (empty: any asset)."""
MAX_TEXT = 1000
MAX_PHOTO_BYTES = 2 * 1024 * 1024
PHOTO_TYPES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
"""Accepted photos by their first bytes (the declared type and the file name are not trusted)."""
MAX_KEPT = 1000
REPORT_PATH = "/open/v1/reports"
REPORT_RATE = RatePolicy(rate_per_s=1 / 30, burst=5)
"""Per address: a few reports in a row, then one every half minute."""
REPORT_FORM_SLACK = 64 * 1024
"""Room for the form fields beside the photo in one request body."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_EARTH_M = 6_371_000.0


class ReportRefusedError(Exception):
    """A report that cannot be taken; ``status`` is the HTTP answer (4xx)."""

    def __init__(self, status: int, detail: str, kind: str = "invalid-report") -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Photo:
    """A stored photo of a report."""

    media_type: str
    size: int
    sha256: str
    file: str


@dataclass(frozen=True, slots=True)
class CitizenReport:
    """One accepted report."""

    reference: str
    time: datetime
    category: str
    latitude: float
    longitude: float
    text: str
    asset: str
    """The nearest asset of a fitting type ("" when the site has none with a position)."""
    distance_m: float
    photo: Photo | None


def photo_type(data: bytes) -> tuple[str, str]:
    """(media type, extension) of a JPEG or PNG by its magic bytes; ReportRefusedError else."""
    for magic, media_type, extension in PHOTO_TYPES:
        if data.startswith(magic):
            return media_type, extension
    raise ReportRefusedError(415, "the photo must be a JPEG or PNG image", "unsupported-photo")


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def _number(fields: Mapping[str, str], key: str, low: float, high: float) -> float:
    text = fields.get(key)
    if text is None or not str(text).strip():
        raise ReportRefusedError(400, f"{key} is required")
    try:
        value = float(str(text)[:40])
    except ValueError as err:
        raise ReportRefusedError(400, f"{key} must be a number") from err
    if not math.isfinite(value) or not low <= value <= high:
        raise ReportRefusedError(400, f"{key} must be between {low:g} and {high:g}")
    return value


class ReportDesk:
    """Takes citizens' reports: checks them, links them to an asset, stores the photo and
    journals them. Thread-safe (the web server's threads call it)."""

    def __init__(
        self,
        assets: Sequence[AssetDef],
        journal: EventJournal,
        now: Callable[[], datetime],
        *,
        photo_dir: Path | None = None,
        max_photo_bytes: int = MAX_PHOTO_BYTES,
    ) -> None:
        self._assets = tuple(asset for asset in assets if asset.position is not None)
        self._journal = journal
        self._now = now
        self._photo_dir = photo_dir
        self.max_photo_bytes = max_photo_bytes
        self._lock = threading.Lock()
        self._kept: deque[CitizenReport] = deque(maxlen=MAX_KEPT)

    def nearest(self, category: str, latitude: float, longitude: float) -> tuple[str, float]:
        """The nearest asset of a type fitting ``category`` and its distance in metres."""
        types = CATEGORY_ASSET_TYPES.get(category, ())
        candidates = [a for a in self._assets if not types or a.type in types]
        if not candidates:
            candidates = list(self._assets)
        best = ("", math.inf)
        for asset in candidates:
            position = asset.position
            if position is None:
                continue
            d = _distance_m(latitude, longitude, position.latitude, position.longitude)
            if d < best[1] or (d == best[1] and asset.name < best[0]):
                best = (asset.name, d)
        return best if best[0] else ("", 0.0)

    def submit(self, fields: Mapping[str, str], photo: bytes | None = None) -> CitizenReport:
        """Check, link, store and journal one report; raises ReportRefusedError (4xx)."""
        unknown = sorted(set(fields) - {"category", "text", "latitude", "longitude"})
        if unknown:
            raise ReportRefusedError(400, f"unknown field {unknown[0][:40]!r}")
        category = str(fields.get("category", "")).strip()
        if category not in CATEGORIES:
            raise ReportRefusedError(400, f"category must be one of {', '.join(CATEGORIES)}")
        latitude = _number(fields, "latitude", -90.0, 90.0)
        longitude = _number(fields, "longitude", -180.0, 180.0)
        text = _CONTROL.sub(" ", str(fields.get("text", ""))).strip()
        if not text:
            raise ReportRefusedError(400, "text is required: say what is wrong")
        if len(text) > MAX_TEXT:
            raise ReportRefusedError(400, f"text is longer than {MAX_TEXT} characters")
        if photo is not None and len(photo) > self.max_photo_bytes:
            raise ReportRefusedError(
                413, f"the photo is larger than {self.max_photo_bytes} bytes", "photo-too-large"
            )
        if photo is not None and not photo:
            photo = None
        kind = photo_type(photo) if photo is not None else None
        asset, distance = self.nearest(category, latitude, longitude)
        moment = self._now()
        reference = f"R-{moment:%Y%m%d}-{secrets.token_hex(4)}"
        stored = None
        if photo is not None and kind is not None:
            stored = self._store(reference, photo, *kind)
        report = CitizenReport(
            reference, moment, category, latitude, longitude, text, asset, distance, stored
        )
        near = f"near {asset} ({distance:.0f} m)" if asset else "with no asset nearby"
        photo_note = f", photo {stored.file} ({stored.size} bytes)" if stored else ""
        # Journaled before the citizen hears 201: a report once accepted is on record.
        self._journal.record(
            Event(
                moment,
                EventKind.SYSTEM,
                SOURCE,
                f"{reference} {category} {near} at {latitude:.6f},{longitude:.6f}"
                f"{photo_note}: {text}",
                severity=1,
            )
        )
        with self._lock:
            self._kept.append(report)
        return report

    def _store(self, reference: str, photo: bytes, media_type: str, extension: str) -> Photo:
        digest = hashlib.sha256(photo).hexdigest()
        name = f"{reference}.{extension}"
        if self._photo_dir is not None:
            self._photo_dir.mkdir(parents=True, exist_ok=True)
            target = self._photo_dir / name
            partial = target.with_suffix(".part")
            partial.write_bytes(photo)
            partial.replace(target)
        return Photo(media_type, len(photo), digest, name)

    def recent(self) -> list[CitizenReport]:
        """Reports taken since the start, newest first."""
        with self._lock:
            return list(reversed(self._kept))


def receipt(report: CitizenReport) -> dict[str, object]:
    """What the citizen is told: the reference and where the report was linked."""
    return {
        "reference": report.reference,
        "received": report.time.isoformat(),
        "category": report.category,
        "asset": report.asset,
        "distance_m": round(report.distance_m, 1),
        "photo": None if report.photo is None else report.photo.media_type,
    }


def add_report_route(app: Flask, desk: ReportDesk, rate: RatePolicy) -> None:
    """``POST /open/v1/reports`` on the open-data app: a form (multipart with an optional
    ``photo`` file, or urlencoded) or a JSON object; 201 with the reference once journaled."""
    limiter = RateLimiter(rate)

    @app.post(REPORT_PATH)
    def report() -> ResponseReturnValue:
        wait = limiter.take(request.remote_addr or "unknown")
        if wait > 0:
            return problem_response(
                429,
                "too many reports from this address; please try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:
            fields, photo = _read_request(desk)
            accepted = desk.submit(fields, photo)
        except ReportRefusedError as err:
            return problem_response(err.status, str(err), kind=err.kind)
        return receipt(accepted), 201


def _read_request(desk: ReportDesk) -> tuple[dict[str, str], bytes | None]:
    if request.args:
        raise ReportRefusedError(400, "a report takes no query parameters")
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ReportRefusedError(400, "the body must be a JSON object")
        if "photo" in body:
            raise ReportRefusedError(400, "send a photo as a multipart form file")
        fields: dict[str, str] = {}
        for key, value in body.items():
            if isinstance(value, dict | list) or value is None:
                raise ReportRefusedError(400, f"{str(key)[:40]!r} must be a string or number")
            fields[str(key)] = str(value)
        return fields, None
    form = {key: request.form[key] for key in request.form}
    for key in request.form:
        if len(request.form.getlist(key)) > 1:
            raise ReportRefusedError(400, f"{key[:40]!r} given twice")
    files = list(request.files)
    if any(name != "photo" for name in files) or len(request.files.getlist("photo")) > 1:
        raise ReportRefusedError(400, "the only file a report takes is one photo")
    upload = request.files.get("photo")
    photo = upload.stream.read(desk.max_photo_bytes + 1) if upload is not None else None
    if not form and photo is None:
        raise ReportRefusedError(
            415, "send the report as a form or a JSON object", "unsupported-media-type"
        )
    return form, photo


# --- the maintenance face under /api/v1 --------------------------------------------------------


class ReportQuery(Query):
    """Which reports: a window (default: all), the newest ``limit``, oldest first."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: int = Field(200, ge=1, le=5000)


class ReportInfo(BaseModel):
    """One journaled citizen's report."""

    time: datetime
    message: str


class ReportList(BaseModel):
    """Citizens' reports, oldest first."""

    reports: list[ReportInfo]


def register(api: OpenAPI, services: ApiServices) -> None:
    """Add the reports endpoint (read from the journal: it survives restarts)."""
    bp = blueprint("reports", "Citizens' reports (submitted at /open/v1/reports)")

    @bp.get("/reports", responses={200: ReportList})
    def reports(query: ReportQuery) -> dict[str, Any]:
        """Citizens' reports as journaled: reference, category, linked asset, text."""
        require(Permission.VIEW_JOURNAL)
        optional_window(query.start, query.end)
        rows = services.history.read_events(
            query.start, query.end, source=SOURCE, limit=query.limit
        )
        return dump(ReportList(reports=[ReportInfo(time=e.time, message=e.message) for e in rows]))

    api.register_api(bp)
