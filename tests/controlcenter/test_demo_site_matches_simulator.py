"""The demo site file and the simulator's point list describe the same points."""

from __future__ import annotations

from controlcenter.demo import load_demo_site
from plc_sim.city import SimulatedCity
from plc_sim.clock import SimClock


def test_every_simulated_point_is_a_site_tag_and_back() -> None:
    site = load_demo_site()
    points = {point.tag: point for point in SimulatedCity(SimClock()).points()}
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
        if point.low is not None:
            assert (tag.low, tag.high) == (point.low, point.high), name
    assert {device.protocol for device in site.devices} == {p.protocol for p in points.values()}
