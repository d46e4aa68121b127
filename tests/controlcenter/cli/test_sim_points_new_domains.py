"""``controlcenter sim --points`` lists every domain with its protocol; ``--domain`` picks
some (or ``all``) and refuses unknown ones."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from controlcenter.cli.sim import sim_app


def _rows(*args: str) -> list[dict[str, str]]:
    result = CliRunner().invoke(sim_app, ["--points", *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


def test_the_point_list_names_every_domain_with_its_protocol() -> None:
    protocols: dict[str, set[str]] = {}
    for row in _rows():
        protocols.setdefault(row["tag"].split(".", 1)[0], set()).add(row["protocol"])
    assert protocols == {
        "water": {"modbus"},
        "lights": {"opcua"},
        "heat": {"modbus"},
        "bldg": {"bacnet"},
        "mobility": {"gtfs_realtime", "gbfs"},
        "charging": {"ocpp"},
        "traffic": {"mqtt"},
        "parking": {"mqtt"},
        "waste": {"mqtt"},
        "env": {"mqtt"},
        "cameras": {"mqtt"},
    }


def test_mqtt_points_name_their_broker_and_uplink_field() -> None:
    rows = _rows("--domain", "waste", "--mqtt-broker", "10.0.0.5:8883", "--mqtt-prefix", "x")
    fill = next(row for row in rows if row["tag"] == "waste.c001.fill")
    assert fill["endpoint"] == "10.0.0.5:8883"
    assert fill["address"] == "json:waste/c001/up#/object/fill"
    assert {row["tag"].split(".", 1)[0] for row in rows} == {"waste"}


def test_all_and_unknown_domains() -> None:
    result = CliRunner().invoke(sim_app, ["--points", "--format", "json", "--domain", "all"])
    assert result.exit_code == 0, result.output
    assert {row["tag"].split(".", 1)[0] for row in json.loads(result.output)} >= {"env", "water"}
    refused = CliRunner().invoke(sim_app, ["--points", "--domain", "weather; rm -rf /"])
    assert refused.exit_code != 0
    assert "unknown domain" in refused.output
