"""The demo site file is generated from the simulator's point list and stays in step with it."""

from __future__ import annotations

from controlcenter.runtime.defaults import DEFAULT_BASE_PORT
from controlcenter.runtime.demo import demo_site_path, load_demo_site
from controlcenter.runtime.demo_site import render_demo_site
from plc_sim.city import CityOptions, SimulatedCity
from plc_sim.clock import SimClock


def reference_city() -> SimulatedCity:
    """The city the shipped demo site file describes: seed 1, scale 1, ports from 15020."""
    return SimulatedCity(SimClock(), CityOptions(seed=1, base_port=DEFAULT_BASE_PORT))


def test_the_shipped_demo_site_is_the_generated_one() -> None:
    expected = render_demo_site(reference_city())
    assert demo_site_path().read_text(encoding="utf-8") == expected, (
        "regenerate it: controlcenter sim --site-file controlcenter/sites/demo.yaml"
    )


def test_every_simulated_point_is_a_site_tag_and_back() -> None:
    site = load_demo_site()
    points = {point.tag: point for point in reference_city().points()}
    tags = {tag.name: tag for tag in site.tag_defs()}
    assert set(points) == set(tags)
    for name, point in points.items():
        tag = tags[name]
        assert (tag.device, tag.address, tag.data_type.value, tag.unit, tag.writable) == (
            point.device,
            point.address,
            point.data_type,
            point.unit,
            point.writable,
        ), name
        if point.low is not None and point.high is not None and point.low < point.high:
            assert (tag.low, tag.high) == (point.low, point.high), name
    assert {device.protocol for device in site.devices} == {"modbus", "opcua", "bacnet"}
