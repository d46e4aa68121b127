"""Camera health: tamper, offline and recording changes report at once; an offline camera
does not record; random outages recover."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plc_sim.cameras.vms import CameraNetwork
from tests.plc_sim.sim_weather import run


def test_tamper_and_offline_report_at_once() -> None:
    cameras = CameraNetwork(seed=1)
    sensor = next(s for s in cameras.sensors() if s.id == "cam03")
    cameras.tamper("cameras.cam03")
    assert sensor.report_now and cameras.camera("cameras.cam03").tamper
    sensor.report_now = False
    cameras.set_online("cameras.cam03", False)
    camera = cameras.camera("cameras.cam03")
    assert sensor.report_now and not camera.online and not camera.recording
    run(cameras, datetime(2026, 6, 22, tzinfo=UTC), 24.0, step_s=600.0)
    assert not camera.online  # held offline by the scenario
    with pytest.raises(KeyError, match=r"cameras\.cam99"):
        cameras.tamper("cameras.cam99")


def test_random_outages_come_and_go() -> None:
    cameras = CameraNetwork(scale=4, seed=2)
    run(cameras, datetime(2026, 6, 1, tzinfo=UTC), 24 * 20, step_s=600.0)
    # Over 20 days a few of 32 cameras were down at some point, most are up now.
    assert sum(c.online for c in cameras.cameras) >= 28
    (device,) = cameras.devices()
    assert {spec.kind for spec in device.points} == {"bool"}
