"""``controlcenter bench mqtt``: messages per second from the broker into the historian.

A load generator in a child process plays a city's LoRaWAN-style sensor network: 10,000 waste
containers reporting every 10 minutes and 2,000 buses every 10 seconds, each a JSON uplink on its
own topic. At real time they publish about 217 messages per second together; the generator
compresses time by the factor that brings them to ``rate`` messages per second (about 111
for the default 24,000/s, above the 20,000/s target), keeping the two populations' ratio
(1 container message for 12 bus messages) and spreading each population's reports evenly
over its period. It speaks MQTT 3.1.1 itself over a
plain socket (CONNECT, QoS 0 PUBLISH, DISCONNECT), so its own cost stays small beside the
center's.

The center's side is the real path: two ``MqttDriver`` broker connections (one per population,
each with its report interval divided by the compression factor so quality by age keeps its
meaning) subscribed to every topic, decoding each uplink into samples (a container's fill level;
a bus's delay and speed) that go through ``HistorianWriter`` into the historian on SQLite
(a temporary file, WAL). ``messages_per_s`` counts the messages whose samples are committed,
from the first publish until the last commit; ``messages_received_per_s`` those the drivers
took from the broker, from the first publish until the last arrival (before the historian
has committed them all). ``center_cpu_us_per_message`` is the center process's CPU time
(every thread: drivers and historian) per message received, and
``event_loop_cpu_us_per_message`` the share of the event loop's thread (the MQTT connections,
decoding and delivery; the historian writes in a worker thread): on a machine shared with other
work they tell what one center needs better than the rate it got.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, TagDef
from drivers.mqtt.client import control_packet, utf8_string
from drivers.mqtt.config import MqttDeviceConfig
from drivers.mqtt.driver import MqttDriver
from historian.store import SqlHistorian
from historian.writer import HistorianWriter

CONTAINER_PERIOD_S = 600.0
BUS_PERIOD_S = 10.0
TARGET_MESSAGES_PER_S = 20_000.0
"""Messages a second from the broker into the historian, nothing lost (the issue's target)."""
SLOT_S = 0.005
"""The generator publishes what fell due every this many wall seconds, in one send."""


class MqttBenchError(RuntimeError):
    """The benchmark could not run (broker unreachable, a part missing)."""


@dataclass(frozen=True, slots=True)
class MqttBenchOptions:
    """What to measure: the populations, the target rate, the publishing window."""

    broker_url: str = "mqtt://127.0.0.1:1883"
    containers: int = 10_000
    buses: int = 2_000
    rate: float = 24_000.0
    """Offered above ``TARGET_MESSAGES_PER_S``: the figure counts what was taken, so an offer
    of exactly the target could only ever come out just under it."""
    duration_s: float = 20.0
    drain_s: float = 30.0

    @property
    def real_rate(self) -> float:
        """Messages per second of the two populations at real time."""
        return self.containers / CONTAINER_PERIOD_S + self.buses / BUS_PERIOD_S

    @property
    def speed(self) -> float:
        """The time compression that brings the populations to ``rate``."""
        return self.rate / self.real_rate


def _generate(
    host: str, port: int, prefix: str, options: MqttBenchOptions, start_at: float, result: Any
) -> None:
    """The load generator (child process): publish both populations until the window ends."""
    client_id = f"cc-bench-load-{os.getpid()}"
    with socket.create_connection((host, port), timeout=10) as sock:
        # CONNECT: protocol level 4 (3.1.1), a clean session, 60 s keep-alive.
        connect = utf8_string("MQTT") + b"\x04\x02\x00\x3c" + utf8_string(client_id)
        sock.sendall(control_packet(0x10, connect))
        if sock.recv(4)[:1] != b"\x20":
            result.put(-1)
            return
        sock.settimeout(None)
        populations = (
            ("waste", options.containers, CONTAINER_PERIOD_S / options.speed),
            ("bus", options.buses, BUS_PERIOD_S / options.speed),
        )
        sent = [0, 0]
        time.sleep(max(0.0, start_at - time.time()))
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < options.duration_s:
            batch = bytearray()
            stamp = time.time()
            for index, (kind, count, period) in enumerate(populations):
                due = int(elapsed * count / period) if count else 0
                while sent[index] < due:
                    sensor = sent[index] % count
                    sent[index] += 1
                    batch += _publish(prefix, kind, sensor, sent[index], stamp)
            if batch:
                sock.sendall(batch)
            time.sleep(SLOT_S)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    result.put(sum(sent))


def _publish(prefix: str, kind: str, sensor: int, serial: int, stamp: float) -> bytes:
    if kind == "waste":
        topic = f"{prefix}/waste/c{sensor:05d}/up"
        body = {"ts": stamp, "object": {"fill": serial % 100, "battery": 3.6}}
    else:
        topic = f"{prefix}/bus/b{sensor:04d}/up"
        body = {"ts": stamp, "delay": serial % 300, "speed": 8.5}
    payload = json.dumps(body, separators=(",", ":")).encode()
    return control_packet(0x30, utf8_string(topic) + payload)


def _tags(options: MqttBenchOptions) -> tuple[list[TagDef], list[TagDef]]:
    containers = [
        TagDef(
            f"waste.c{i:05d}.fill",
            "waste.lorawan",
            f"json:waste/c{i:05d}/up#/object/fill",
            DataType.FLOAT,
            unit="%",
        )
        for i in range(options.containers)
    ]
    buses = [
        TagDef(f"bus.b{i:04d}.{field}", "bus.avl", f"json:bus/b{i:04d}/up#/{field}", DataType.FLOAT)
        for i in range(options.buses)
        for field in ("delay", "speed")
    ]
    return containers, buses


async def run_mqtt_bench(options: MqttBenchOptions) -> dict[str, Any]:
    """Run the generator against the real drivers and historian; return the figures."""
    url = urlparse(options.broker_url)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    prefix = f"ccbench/{os.getpid()}-{int(time.time())}"
    containers, buses = _tags(options)
    clock = WallClock()
    with tempfile.TemporaryDirectory(prefix="cc-bench-mqtt-") as directory:
        store = SqlHistorian(f"sqlite:///{Path(directory) / 'historian.db'}")
        try:
            store.ensure_tags([*containers, *buses])
            writer = HistorianWriter(store, max_batch=10_000, max_delay_s=0.2)
            writer_task = asyncio.create_task(writer.run())
            received = [0]

            def historize(samples: list[Sample]) -> None:
                received[0] += len(samples)
                writer.enqueue(samples)

            drivers = [
                MqttDriver(
                    name,
                    MqttDeviceConfig(
                        host,
                        port,
                        client_id=f"cc-bench-{name}-{os.getpid()}",
                        topic_prefix=prefix,
                        report_interval_s=period / options.speed,
                        timestamp_pointer="/ts",
                        timeout_s=30.0,
                        qos=0,
                    ),
                    clock,
                )
                for name, period in (
                    ("waste.lorawan", CONTAINER_PERIOD_S),
                    ("bus.avl", BUS_PERIOD_S),
                )
            ]
            try:
                for driver, points in zip(drivers, (containers, buses), strict=True):
                    await driver.connect()
                    await driver.subscribe(points, historize, interval_s=1.0)
            except Exception as err:
                raise MqttBenchError(f"cannot subscribe at {options.broker_url}: {err}") from err
            figures = await _measure(options, host, port, prefix, drivers, writer, received)
            for driver in drivers:
                await driver.close()
            await writer.stop()
            await writer_task
        finally:
            store.close()
    return figures


async def _measure(
    options: MqttBenchOptions,
    host: str,
    port: int,
    prefix: str,
    drivers: list[MqttDriver],
    writer: HistorianWriter,
    received: list[int],
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    start_at = time.time() + 1.5  # the child's interpreter starts meanwhile
    child = context.Process(
        target=_generate, args=(host, port, prefix, options, start_at, result), daemon=True
    )
    child.start()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    started = time.monotonic()
    cpu_started = time.process_time()
    loop_cpu_started = time.thread_time()  # this thread runs the event loop, so the drivers
    last_arrival = [started]
    watch = asyncio.create_task(_watch_arrivals(drivers, last_arrival))
    try:
        published = await asyncio.to_thread(result.get, True, options.duration_s + 30)
        child.join(5)
        if published < 0:
            raise MqttBenchError(f"the broker at {options.broker_url} refused the load generator")
        await _drain(options, published, drivers, writer, received)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    await writer.flush()
    finished = time.monotonic()
    cpu_s = time.process_time() - cpu_started
    loop_cpu_s = time.thread_time() - loop_cpu_started
    messages = sum(driver.mqtt_diagnostics().messages for driver in drivers)
    metrics = writer.metrics()
    elapsed = finished - started
    receiving = max(last_arrival[0] - started, 1e-3)
    return {
        "benchmark": "mqtt",
        "broker": options.broker_url,
        "historian": "sqlite",
        "containers": options.containers,
        "container_period_s": CONTAINER_PERIOD_S,
        "buses": options.buses,
        "bus_period_s": BUS_PERIOD_S,
        "time_compression": round(options.speed, 2),
        "offered_messages_per_s": options.rate,
        "target_messages_per_s": TARGET_MESSAGES_PER_S,
        "publish_window_s": options.duration_s,
        "messages_published": published,
        "messages_received": messages,
        "messages_lost": max(0, published - messages),
        "samples_historized": metrics.rows_written,
        "elapsed_s": round(elapsed, 3),
        "published_per_s": round(published / options.duration_s, 1),
        "messages_per_s": round(messages / elapsed, 1),
        "samples_per_s": round(metrics.rows_written / elapsed, 1),
        "receive_elapsed_s": round(receiving, 3),
        "messages_received_per_s": round(messages / receiving, 1),
        "max_batch_latency_s": round(metrics.max_batch_latency_s, 3),
        "dropped_payloads": sum(driver.mqtt_diagnostics().dropped for driver in drivers),
        "center_cpu_s": round(cpu_s, 3),
        "center_cpu_us_per_message": round(cpu_s / messages * 1e6, 1) if messages else None,
        "event_loop_cpu_us_per_message": (
            round(loop_cpu_s / messages * 1e6, 1) if messages else None
        ),
        "pass": messages / elapsed >= TARGET_MESSAGES_PER_S and published == messages,
    }


async def _watch_arrivals(drivers: list[MqttDriver], last_arrival: list[float]) -> None:
    """Note when the drivers last took a message from the broker (looked at every 10 ms)."""
    seen = 0
    while True:
        count = sum(driver.mqtt_diagnostics().messages for driver in drivers)
        if count != seen:
            seen, last_arrival[0] = count, time.monotonic()
        await asyncio.sleep(0.01)


async def _drain(
    options: MqttBenchOptions,
    published: int,
    drivers: list[MqttDriver],
    writer: HistorianWriter,
    received: list[int],
) -> None:
    """Wait until every message arrived and was written, or nothing more comes."""
    deadline = time.monotonic() + options.drain_s
    last_progress = time.monotonic()
    previous = -1
    while time.monotonic() < deadline:
        messages = sum(driver.mqtt_diagnostics().messages for driver in drivers)
        written = writer.metrics().rows_written
        if messages >= published and written >= received[0]:
            return
        if written != previous:
            previous, last_progress = written, time.monotonic()
        elif time.monotonic() - last_progress > 3.0 and written >= received[0]:
            return  # nothing more arrives: the rest was lost on the way
        await asyncio.sleep(0.05)
