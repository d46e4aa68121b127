"""Traffic detectors: peaks slow the roads, an incident congests a segment, the pricing zone
counts only in charged hours, and every point is an MQTT uplink field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plc_sim.traffic.network import TrafficNetwork
from tests.plc_sim.sim_weather import run

MONDAY_NIGHT = datetime(2026, 6, 22, 0, 0, tzinfo=UTC)  # 02:00 in Amsterdam


def test_the_morning_peak_is_slower_and_busier_than_the_night() -> None:
    network = TrafficNetwork(seed=2)
    run(network, MONDAY_NIGHT, 1.0)  # 03:00 local
    night = [(s.flow_vph, s.speed_kmh) for s in network.segments]
    run(network, datetime(2026, 6, 22, 5, 0, tzinfo=UTC), 1.0)
    peak = [(s.flow_vph, s.speed_kmh) for s in network.segments]  # 08:00 local
    assert all(p[0] > 3 * n[0] for p, n in zip(peak, night, strict=True))
    assert all(p[1] < n[1] for p, n in zip(peak, night, strict=True))
    assert network.travel_time_factor(MONDAY_NIGHT) > 1.2  # what buses feel in the peak
    for segment in network.segments:
        assert 0.0 <= segment.occupancy_pct <= 100.0
        assert 0.0 <= segment.congestion <= 1.0


def test_an_incident_congests_its_segment_until_cleared() -> None:
    network = TrafficNetwork(seed=2)
    start = datetime(2026, 6, 22, 6, 0, tzinfo=UTC)
    run(network, start, 0.5)
    before = network.segment("traffic.seg1").congestion
    network.start_incident("traffic.seg1")
    run(network, start, 0.2)
    assert network.segment("traffic.seg1").congestion > before + 0.1
    network.clear_incident("traffic.seg1")
    run(network, start, 0.2)
    assert network.segment("traffic.seg1").congestion == pytest.approx(before, abs=0.1)
    with pytest.raises(KeyError, match=r"traffic\.seg1"):
        network.start_incident("traffic.nowhere")


def test_the_pricing_zone_counts_entries_only_in_charged_hours() -> None:
    network = TrafficNetwork(seed=2)
    run(network, MONDAY_NIGHT, 3.0)  # until 05:00 local: not charged
    assert network.zone_entries == 0.0
    run(network, datetime(2026, 6, 22, 6, 0, tzinfo=UTC), 2.0)  # 08:00-10:00 local
    assert network.zone_entries > 500
    saturday_noon = datetime(2026, 6, 27, 10, 0, tzinfo=UTC)
    run(network, saturday_noon, 1.0)
    assert network.zone_rate_vph == 0.0


def test_every_point_is_a_field_of_an_uplink() -> None:
    network = TrafficNetwork(scale=2, seed=1)
    (device,) = network.devices()
    carried = {tag for sensor in network.sensors() for _, tag in sensor.fields}
    assert carried == {spec.tag for spec in device.points}
    assert device.protocol == "mqtt"
    assert len(network.segments) == 12
    assert {plan.name for plan in network.asset_plans()} >= {"traffic.seg1", "traffic.zone1"}
