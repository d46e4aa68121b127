"""``controlcenter bench mqtt`` against the machine's Mosquitto, at a small scale."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from controlcenter.bench.mqtt import MqttBenchOptions
from controlcenter.cli.main import app


def test_the_time_compression_reaches_the_target_rate() -> None:
    options = MqttBenchOptions(rate=20_000.0)
    # 10,000 containers every 600 s and 2,000 buses every 10 s: about 216.7 messages/s.
    assert options.real_rate == pytest.approx(216.667, rel=1e-4)
    assert options.speed == pytest.approx(92.31, rel=1e-3)


@pytest.mark.timeout(90)
def test_prints_one_json_object_with_every_message_historized() -> None:
    broker = os.environ.get("CC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    result = CliRunner().invoke(
        app,
        [
            "bench", "mqtt", "--broker", broker, "--containers", "60", "--buses", "6",
            "--rate", "400", "--duration", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["benchmark"] == "mqtt" and figures["historian"] == "sqlite"
    published = figures["messages_published"]
    assert published > 500
    assert figures["messages_received"] == published
    assert figures["messages_lost"] == 0
    # A container's message is one sample, a bus's two: the historian holds every one.
    assert published <= figures["samples_historized"] <= 2 * published
    assert figures["messages_per_s"] > 0
    # The last message arrived no later than the last commit.
    assert figures["receive_elapsed_s"] <= figures["elapsed_s"]
    assert figures["messages_received_per_s"] >= figures["messages_per_s"]
    # The center's CPU per message, all of it and the event loop's share of it.
    assert 0 < figures["event_loop_cpu_us_per_message"] <= figures["center_cpu_us_per_message"]
    assert figures["time_compression"] == pytest.approx(400 / (60 / 600 + 6 / 10), rel=1e-3)
    # Judged against the target, not against what was offered: 400/s cannot pass.
    assert figures["offered_messages_per_s"] == 400
    assert figures["target_messages_per_s"] == 20_000
    assert figures["pass"] is False


def test_an_unreachable_broker_exits_with_a_reason(closed_port: int) -> None:
    result = CliRunner().invoke(
        app, ["bench", "mqtt", "--broker", f"mqtt://127.0.0.1:{closed_port}", "--duration", "1"]
    )
    assert result.exit_code == 2
    assert "cannot subscribe" in result.output
