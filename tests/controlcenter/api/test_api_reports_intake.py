"""Citizens' reports: POST /open/v1/reports without login, linked to the nearest fitting asset,
photos checked by their magic bytes and size, journaled (real SQLite) before the 201, read back
by maintenance at /api/v1/reports; hostile input gets a clear 4xx and leaves nothing behind."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from controlcenter.api.open_data import OpenDataService, create_open_data
from controlcenter.api.routes.reports import SOURCE, ReportDesk
from controlcenter.automation import AssetDef, GeoPoint
from controlcenter.model import Role
from controlcenter.ports import HistoryQueryReader
from controlcenter.security.ratelimit import RatePolicy
from tests.controlcenter.api.api_testkit import CenterKit, StoreJournal, center_kit

NOW = datetime(2030, 5, 1, 9, 30, tzinfo=UTC)
ASSETS = (
    AssetDef("lights.d1.c1", "lighting_cabinet", "lighting", "Cabinet 1", GeoPoint(52.370, 4.900)),
    AssetDef("lights.d1.c2", "lighting_cabinet", "lighting", "Cabinet 2", GeoPoint(52.380, 4.910)),
    AssetDef("waste.c0001", "waste_container", "waste", "Container 1", GeoPoint(52.3705, 4.9005)),
    AssetDef("water.ps1", "booster_station", "water", "Station 1", GeoPoint(52.3701, 4.9001)),
    AssetDef("water.nowhere", "reservoir", "water", "No place"),
)  # fmt: skip


def png() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"


class Kit:
    """The open-data app with the report desk, over the API kit's real historian."""

    def __init__(self, tmp_path: Path, burst: int = 100) -> None:
        self.api: CenterKit = center_kit(tmp_path)
        self.photos = tmp_path / "photos"
        self.desk = ReportDesk(
            ASSETS, StoreJournal(self.api.store), lambda: NOW, photo_dir=self.photos,
            max_photo_bytes=4096,
        )  # fmt: skip
        service = OpenDataService(
            (),
            cast(HistoryQueryReader, None),
            k=5,
            timezone=ZoneInfo("Europe/Amsterdam"),
            site_name="Testville",
            now=lambda: NOW,
        )
        app = create_open_data(
            service,
            RatePolicy(rate_per_s=1000, burst=1000),
            reports=self.desk,
            report_rate=RatePolicy(rate_per_s=0.001, burst=burst),
        )
        self.client: FlaskClient = app.test_client()

    def journaled(self) -> list[str]:
        """The journaled reports."""
        return [e.message for e in self.api.store.read_events(source=SOURCE)]

    def post(self, photo: bytes | None = None, name: str = "p.jpg", **fields: str) -> object:
        """A multipart report."""
        data: dict[str, object] = dict(fields)
        if photo is not None:
            data["photo"] = (io.BytesIO(photo), name)
        return self.client.post("/open/v1/reports", data=data, content_type="multipart/form-data")


GOOD = {"category": "streetlight", "latitude": "52.3702", "longitude": "4.9002",
        "text": "Lamp out in front of no. 12"}  # fmt: skip


def test_a_report_is_linked_to_the_nearest_fitting_asset_and_journaled(tmp_path: Path) -> None:
    """A streetlight report goes to the nearest lighting cabinet, not the closer pump station;
    the photo is stored; maintenance reads the report back; a viewer may not."""
    kit = Kit(tmp_path)
    answer = kit.post(png(), "lamp.png", **GOOD)
    assert answer.status_code == 201, answer.get_json()  # type: ignore[attr-defined]
    receipt = answer.get_json()  # type: ignore[attr-defined]
    assert receipt["asset"] == "lights.d1.c1"
    assert receipt["photo"] == "image/png"
    assert 0 < receipt["distance_m"] < 50
    [message] = kit.journaled()
    assert message.startswith(receipt["reference"]) and "near lights.d1.c1" in message
    assert (kit.photos / f"{receipt['reference']}.png").read_bytes() == png()

    container = kit.client.post(
        "/open/v1/reports",
        json={"category": "container", "latitude": 52.3702, "longitude": 4.9002,
              "text": "overflowing"},
    )  # fmt: skip
    assert container.status_code == 201
    assert container.get_json()["asset"] == "waste.c0001"

    listed = kit.api.get("/api/v1/reports", kit.api.token(Role.OPERATOR))
    assert listed.status_code == 200
    assert [r["message"].split()[0] for r in listed.get_json()["reports"]] == [
        receipt["reference"],
        container.get_json()["reference"],
    ]
    assert kit.api.get("/api/v1/reports", kit.api.token(Role.VIEWER)).status_code == 403
    assert kit.api.get("/api/v1/reports").status_code == 401


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"category": "pothole"}, 400, "category must be one of"),
        ({"latitude": "91"}, 400, "latitude must be between"),
        ({"longitude": "nan"}, 400, "longitude must be between"),
        ({"latitude": "north"}, 400, "latitude must be a number"),
        ({"text": "   "}, 400, "text is required"),
        ({"text": "x" * 1001}, 400, "longer than 1000"),
        ({"user": "admin"}, 400, "unknown field"),
    ],
)
def test_bad_fields_get_a_clear_problem(
    tmp_path: Path, change: dict[str, str], status: int, words: str
) -> None:
    """Each bad field is named in an RFC 9457 problem; nothing is journaled."""
    kit = Kit(tmp_path)
    answer = kit.post(None, "p.jpg", **{**GOOD, **change})
    assert answer.status_code == status  # type: ignore[attr-defined]
    assert answer.content_type == "application/problem+json"  # type: ignore[attr-defined]
    assert words in answer.get_json()["detail"]  # type: ignore[attr-defined]
    assert kit.journaled() == []


def test_photos_are_checked_by_their_bytes_and_size(tmp_path: Path) -> None:
    """A GIF named .jpg is refused (415), a photo over the limit too (413); a JPEG passes;
    a body far over the limit is refused before it is read; two photos are refused."""
    kit = Kit(tmp_path)
    gif = kit.post(b"GIF89a" + b"\x00" * 20, "cat.jpg", **GOOD)
    assert gif.status_code == 415  # type: ignore[attr-defined]
    script = kit.post(b"<script>alert(1)</script>", "x.png", **GOOD)
    assert script.status_code == 415  # type: ignore[attr-defined]
    large = kit.post(JPEG + b"\x00" * 5000, "big.jpg", **GOOD)
    assert large.status_code == 413  # type: ignore[attr-defined]
    huge = kit.post(JPEG + b"\x00" * 200_000, "huge.jpg", **GOOD)
    assert huge.status_code == 413  # type: ignore[attr-defined]
    two = kit.client.post(
        "/open/v1/reports",
        data={**GOOD, "photo": [(io.BytesIO(JPEG), "a.jpg"), (io.BytesIO(JPEG), "b.jpg")]},
        content_type="multipart/form-data",
    )
    assert two.status_code == 400
    assert kit.journaled() == []
    ok = kit.post(JPEG, "real.jpg", **GOOD)
    assert ok.status_code == 201  # type: ignore[attr-defined]
    assert ok.get_json()["photo"] == "image/jpeg"  # type: ignore[attr-defined]
    assert len(kit.journaled()) == 1


def test_hostile_requests_are_refused(tmp_path: Path) -> None:
    """Non-object JSON, nested values, query strings, empty bodies and other methods."""
    kit = Kit(tmp_path)
    client = kit.client
    assert client.post("/open/v1/reports", json=[1, 2]).status_code == 400
    assert client.post("/open/v1/reports", json={**GOOD, "text": {"$ne": 1}}).status_code == 400
    assert client.post("/open/v1/reports?asset=x", json=GOOD).status_code == 400
    assert client.post("/open/v1/reports", data=b"", content_type="text/plain").status_code == 415
    assert client.get("/open/v1/reports").status_code == 405
    control = client.post("/open/v1/reports", json={**GOOD, "text": "a\x00b\u2028c\nd"})
    assert control.status_code == 201
    assert kit.journaled()[0].endswith(": a b c\nd")


def test_reports_are_rate_limited_per_address(tmp_path: Path) -> None:
    """After the burst, a 429 with Retry-After; another address still gets through."""
    kit = Kit(tmp_path, burst=2)
    for _ in range(2):
        assert kit.client.post("/open/v1/reports", json=GOOD).status_code == 201
    refused = kit.client.post("/open/v1/reports", json=GOOD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    other = kit.client.post(
        "/open/v1/reports", json=GOOD, environ_base={"REMOTE_ADDR": "192.0.2.7"}
    )
    assert other.status_code == 201
    assert len(kit.journaled()) == 3
