"""Open data: aggregates only, over a fixed group of at least k members, from a real historian;
nothing a caller asks for singles one building out, directly or by differencing requests."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from controlcenter.api.open_data import OpenDataService, create_open_data
from controlcenter.model import DataType, Quality, Sample, TagDef
from controlcenter.security.ratelimit import RatePolicy
from controlcenter.site.config import load_site
from controlcenter.site.opendata import (
    DatasetConfig,
    OpenDataConfig,
    open_data_problems,
    resolve_datasets,
)
from controlcenter.site.yamlsource import SourceFileError
from historian.queries import HistoryQueries
from historian.store import SqlHistorian

TZ = ZoneInfo("Europe/Helsinki")
START = datetime(2026, 3, 1, 0, 0, tzinfo=TZ)
"""Local midnight: two whole local days of data follow."""
NOW = START + timedelta(days=2, minutes=30)
BUILDINGS = [f"bldg.b{n}.power" for n in range(1, 7)]
DMAS = [f"water.dma{n}.inflow" for n in range(1, 5)]
GAP_HOUR = START + timedelta(days=1, hours=5)
"""Building 6 sends nothing in this hour: that hour and its day are withheld."""


def value(tag: str, moment: datetime) -> float:
    """Building n draws 10·n kW plus the hour of the day; a DMA n flows n m³/h."""
    base = float(tag.split(".")[1].lstrip("bdma")) * 10.0
    return base + moment.astimezone(TZ).hour + (moment.minute / 60.0)


def tag_def(name: str) -> TagDef:
    return TagDef(name, "dev", "ir:0:float32", DataType.FLOAT, unit="kW")


CONFIG = OpenDataConfig(
    k=5,
    datasets=[
        DatasetConfig(
            name="building-power",
            title="Power drawn by the city's buildings",
            tags=["bldg.*.power"],
            aggregation="sum",
            unit="kW",
        ),
        DatasetConfig(
            name="building-power-mean",
            title="Mean power of a building",
            tags=["bldg.*.power"],
            aggregation="mean",
            unit="kW",
        ),
        DatasetConfig(
            name="district-inflow",
            title="Water into the districts",
            tags=["water.dma*.inflow"],
            aggregation="sum",
            unit="m3/h",
            individuals=False,
            fiware="WaterObserved",
        ),
    ],
)
TAGS = [tag_def(name) for name in BUILDINGS + DMAS]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HistoryQueries]:
    path = tmp_path_factory.mktemp("open") / "h.db"
    store = SqlHistorian(f"sqlite:///{path}")
    store.ensure_tags(TAGS)
    samples = []
    for name in BUILDINGS + DMAS:
        moment = START
        while moment < NOW:
            skipped = name == BUILDINGS[-1] and GAP_HOUR <= moment < GAP_HOUR + timedelta(hours=1)
            if not skipped:
                utc = moment.astimezone(UTC)
                samples.append(Sample(name, value(name, moment), Quality.good(), utc, utc))
            moment += timedelta(minutes=10)
    store.write_samples(samples)
    yield HistoryQueries(store)
    store.close()


def service(history: HistoryQueries) -> OpenDataService:
    return OpenDataService(
        resolve_datasets(CONFIG, TAGS),
        history,
        k=CONFIG.k,
        timezone=TZ,
        site_name="Test Town",
        now=lambda: NOW,
    )


@pytest.fixture
def client(history: HistoryQueries) -> FlaskClient:
    return create_open_data(service(history), RatePolicy(rate_per_s=1000, burst=1000)).test_client()


def get(client: FlaskClient, path: str, **query: str) -> Any:
    answer = client.get(path, query_string=query)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_catalogue_lists_each_dataset_without_its_members(client: FlaskClient) -> None:
    body = get(client, "/open/v1/")
    assert body["time_zone"] == "Europe/Helsinki" and body["k"] == 5
    entry = {dataset["name"]: dataset for dataset in body["datasets"]}["building-power"]
    assert entry["unit"] == "kW"
    assert entry["licence"] == "CC-BY-4.0"
    assert entry["update_frequency"] == "hourly"
    assert entry["time_zone"] == "Europe/Helsinki"
    assert entry["members"] == 6
    assert "fiware" not in entry["formats"]
    assert "bldg.b" not in client.get("/open/v1/").get_data(as_text=True)


def test_hourly_figures_are_the_group_sum_of_each_members_statistics(client: FlaskClient) -> None:
    start = START + timedelta(hours=3)
    body = get(
        client,
        "/open/v1/datasets/building-power",
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    )
    assert [bucket["start"] for bucket in body["buckets"]] == [start.isoformat()]
    bucket = body["buckets"][0]
    minutes = [start + timedelta(minutes=10 * i) for i in range(6)]
    per_member = [[value(tag, m) for m in minutes] for tag in BUILDINGS]
    assert bucket["mean"] == pytest.approx(sum(sum(v) / len(v) for v in per_member))
    assert bucket["min"] == pytest.approx(sum(min(v) for v in per_member))
    assert bucket["max"] == pytest.approx(sum(max(v) for v in per_member))
    assert bucket["count"] == 36
    assert bucket["withheld"] is False
    mean = get(
        client,
        "/open/v1/datasets/building-power-mean",
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    )["buckets"][0]
    assert mean["mean"] == pytest.approx(bucket["mean"] / 6)


def test_a_bucket_without_every_member_is_withheld_and_so_is_its_day(client: FlaskClient) -> None:
    hours = get(
        client,
        "/open/v1/datasets/building-power",
        start=(GAP_HOUR - timedelta(hours=1)).isoformat(),
        end=(GAP_HOUR + timedelta(hours=2)).isoformat(),
    )["buckets"]
    assert [b["withheld"] for b in hours] == [False, True, False]
    assert hours[1]["mean"] is None and hours[1]["count"] == 0
    days = get(
        client,
        "/open/v1/datasets/building-power",
        resolution="day",
        start=START.isoformat(),
        end=NOW.isoformat(),
    )["buckets"]
    assert [(d["start"], d["withheld"]) for d in days] == [
        (START.isoformat(), False),
        ((START + timedelta(days=1)).isoformat(), True),
    ]
    assert days[0]["count"] == 6 * 144
    # The day's mean is each member's day mean, summed: the same group, over 24 hours.
    expected = sum(
        sum(value(tag, START + timedelta(minutes=10 * i)) for i in range(144)) / 144
        for tag in BUILDINGS
    )
    assert days[0]["mean"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("query", "status", "kind"),
    [
        ({"tags": "bldg.b1.power"}, 403, "singling-out-refused"),
        ({"tag": "bldg.b1.power"}, 403, "singling-out-refused"),
        ({"Members": "1"}, 403, "singling-out-refused"),
        ({"building": "b1"}, 403, "singling-out-refused"),
        ({"filter": "b1"}, 400, "invalid-request"),
        ({"resolution": "minute"}, 400, "invalid-request"),
        ({"format": "xml"}, 400, "invalid-request"),
        ({"format": "fiware"}, 400, "no-fiware-model"),
        ({"start": "yesterday"}, 400, "invalid-request"),
        ({"start": "2026-03-01T00:00:00" + "0" * 60}, 400, "invalid-request"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, 400, "invalid-range"),
        ({"start": "2025-01-01", "end": "2026-03-01"}, 400, "range-too-long"),
    ],
)
def test_hostile_requests_are_refused_as_problems(
    client: FlaskClient, query: dict[str, str], status: int, kind: str
) -> None:
    answer = client.get("/open/v1/datasets/building-power", query_string=query)
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["type"].endswith(kind)


def test_unknown_datasets_paths_and_repeated_parameters_are_refused(client: FlaskClient) -> None:
    assert client.get("/open/v1/datasets/bldg.b1.power").status_code == 404
    assert client.get("/open/v1/datasets/../../api/v1/tags").status_code == 404
    assert client.get("/open/v1/?tags=x").status_code == 403
    repeated = client.get("/open/v1/datasets/building-power?resolution=hour&resolution=day")
    assert repeated.status_code == 400
    assert client.post("/open/v1/datasets/building-power").status_code == 405


def test_no_request_or_pair_of_requests_isolates_one_building(client: FlaskClient) -> None:
    """Every figure any accepted request returns covers the whole group of six: the same
    hour always has the same figure whatever the range, and it equals the sum over all six
    members, so the difference of two figures never leaves one building alone."""
    full = get(
        client,
        "/open/v1/datasets/building-power",
        start=START.isoformat(),
        end=NOW.isoformat(),
    )["buckets"]
    by_start = {bucket["start"]: bucket for bucket in full}
    ranges = [
        (START + timedelta(hours=h), START + timedelta(hours=h + span, minutes=m))
        for h, span, m in itertools.product((0, 5, 28, 29), (1, 3), (0, 17))
    ]
    for first, last in ranges:
        for bucket in get(
            client,
            "/open/v1/datasets/building-power",
            start=first.isoformat(),
            end=last.isoformat(),
        )["buckets"]:
            assert bucket == by_start[bucket["start"]]
    for bucket in full:
        if bucket["withheld"]:
            continue
        start = datetime.fromisoformat(bucket["start"])
        minutes = [start + timedelta(minutes=10 * i) for i in range(6)]
        whole_group = sum(sum(value(tag, m) for m in minutes) / 6 for tag in BUILDINGS)
        assert bucket["mean"] == pytest.approx(whole_group)
    # The one hour some building did not report is not published at all: the hour minus the
    # five others would otherwise be that building's own figure.
    assert by_start[GAP_HOUR.isoformat()]["mean"] is None


def test_site_check_refuses_groups_smaller_than_k_and_differencing_pairs() -> None:
    few = OpenDataConfig(
        datasets=[
            DatasetConfig(
                name="two", title="t", tags=["bldg.b1.power", "bldg.b2.power"], aggregation="sum"
            )
        ]
    )
    assert [text for _, text in open_data_problems(few, TAGS)] == [
        "dataset 'two' is about individuals but has 2 member(s): it needs at least k = 5"
    ]
    pair = OpenDataConfig(
        datasets=[
            DatasetConfig(name="all", title="t", tags=["bldg.*.power"], aggregation="sum"),
            DatasetConfig(
                name="all-but-one",
                title="t",
                tags=[f"bldg.b{n}.power" for n in range(1, 6)],
                aggregation="sum",
            ),
        ]
    )
    problems = list(open_data_problems(pair, TAGS))
    assert [location for location, _ in problems] == [("open_data", "datasets", 1, "tags")]
    assert "subtracting one from the other" in problems[0][1]
    unknown = OpenDataConfig(
        datasets=[DatasetConfig(name="x", title="t", tags=["nothing.*"], aggregation="sum")]
    )
    assert "'nothing.*' matches no tag" in [text for _, text in open_data_problems(unknown, TAGS)]


SITE = """\
site:
  name: Test Town
  latitude: 52.0
  longitude: 5.0
  timezone: Europe/Amsterdam
devices:
  - name: bldg.bms
    protocol: modbus
    endpoint: 127.0.0.1:1502
tags:
  - name: bldg.b1.power
    device: bldg.bms
    address: ir:0:float32
  - name: bldg.b2.power
    device: bldg.bms
    address: ir:2:float32
open_data:
  k: 2
  datasets:
    - name: building-power
      title: Power
      tags: [bldg.*.power]
      aggregation: sum
    - name: Bad Name
      title: Power
      tags: [bldg.b1.power]
      aggregation: median
"""


def test_the_site_file_section_is_checked_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    with pytest.raises(SourceFileError) as caught:
        load_site(path)
    problems = [str(problem) for problem in caught.value.problems]
    assert any("site.yaml:24:7: open_data.datasets[1].name" in text for text in problems), problems
    assert any("site.yaml:27:7: open_data.datasets[1].aggregation" in text for text in problems), (
        problems
    )
    path.write_text(SITE.split("    - name: Bad Name", maxsplit=1)[0], encoding="utf-8")
    site = load_site(path)
    (dataset,) = site.open_datasets()
    assert dataset.members == ("bldg.b1.power", "bldg.b2.power")
    assert site.open_data.k == 2


def test_csv_and_fiware_shapes(client: FlaskClient) -> None:
    start = START + timedelta(hours=2)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    answer = client.get(
        "/open/v1/datasets/district-inflow", query_string={**window, "format": "csv"}
    )
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [row["start"] for row in rows] == [
        start.isoformat(),
        (start + timedelta(hours=1)).isoformat(),
    ]
    assert float(rows[0]["count"]) == 24 and rows[0]["withheld"] == "false"
    entities = get(client, "/open/v1/datasets/district-inflow", format="fiware", **window)
    assert [entity["type"] for entity in entities] == ["WaterObserved", "WaterObserved"]
    assert entities[0]["flow"] == pytest.approx(float(rows[0]["mean"]))
    assert entities[0]["id"].startswith("urn:ngsi-ld:WaterObserved:Test-Town:district-inflow:")


def test_requests_beyond_the_rate_are_refused_per_address(history: HistoryQueries) -> None:
    client = create_open_data(service(history), RatePolicy(rate_per_s=0.01, burst=2)).test_client()
    here = {"REMOTE_ADDR": "192.0.2.1"}
    assert client.get("/open/v1/", environ_base=here).status_code == 200
    assert client.get("/open/v1/", environ_base=here).status_code == 200
    third = client.get("/open/v1/", environ_base=here)
    assert third.status_code == 429
    assert third.mimetype == "application/problem+json"
    assert int(third.headers["Retry-After"]) >= 1
    assert client.get("/open/v1/", environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 200
