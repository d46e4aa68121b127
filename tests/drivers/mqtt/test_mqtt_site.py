"""MQTT devices in the site file: checked addresses and settings, and the driver built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlcenter.clock import WallClock
from controlcenter.runtime.app import build_driver, pushes_changes, scan_timeout
from controlcenter.site.config import MqttDeviceConfig, load_site
from controlcenter.site.yamlsource import SourceFileError
from drivers.mqtt.driver import MqttDriver

SITE = """\
site: {name: Test Town, latitude: 52.0, longitude: 5.0, timezone: Europe/Amsterdam}
devices:
  - name: waste.lorawan
    protocol: mqtt
    endpoint: 127.0.0.1:1883
    topic_prefix: city
    report_interval: 600
    timestamp_pointer: /received_at
  - name: water.gateways
    protocol: mqtt
    endpoint: 127.0.0.1:1883
    report_interval: 60
tags:
  - name: waste.c1.fill
    device: waste.lorawan
    address: "json:waste/c1/up#/object/fill"
    unit: "%"
    range: [0, 100]
  - name: water.gw1.pump3.speed
    device: water.gateways
    address: "spb:water/gw1/pump3#Speed"
    writable: true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_an_mqtt_site_loads_and_builds_its_drivers(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, SITE), tmp_path / "var")
    device = site.device("waste.lorawan")
    assert isinstance(device, MqttDeviceConfig)
    assert device.scan_interval == 600 and pushes_changes(device)
    assert scan_timeout(device) > device.timeout
    driver = build_driver(device, WallClock())
    assert isinstance(driver, MqttDriver)
    assert driver.config.topic("waste/c1/up") == "city/waste/c1/up"
    assert driver.config.timestamp_pointer == "/received_at"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('address: "json:waste/c1/up#/object/fill"', 'address: "json:waste/+/up#/fill"'), "'+'"),
        (('address: "spb:water/gw1/pump3#Speed"', 'address: "spb:water#Speed"'), "spb:"),
        (("topic_prefix: city", "topic_prefix: city/#"), "topic_prefix"),
        (("report_interval: 600", "report_interval: 0"), "report_interval"),
        (("endpoint: 127.0.0.1:1883\n    topic", "endpoint: nowhere\n    topic"), "endpoint"),
        (("timestamp_pointer: /received_at", "timestamp_pointer: received_at"), "timestamp"),
    ],
)
def test_bad_mqtt_settings_are_refused_with_their_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in SITE
    with pytest.raises(SourceFileError) as caught:
        load_site(_write(tmp_path, SITE.replace(old, new, 1)), tmp_path / "var")
    assert expected in str(caught.value)
    assert "site.yaml:" in str(caught.value)
