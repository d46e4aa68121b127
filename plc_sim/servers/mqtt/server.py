"""One domain's sensor network as an MQTT client publishing JSON uplinks to a broker.

A LoRaWAN network server or an NB-IoT platform receives each battery sensor's radio frames and
publishes them to the city's broker as JSON. ``MqttDeviceServer`` does that for one device of
the simulated city (a domain's sensor network): each ``UplinkSensor`` publishes on
``<prefix>/<domain>/<sensor id>/up`` every ``interval_s`` of simulated time (the first report
at a seeded offset inside its interval, so the sensors do not all speak at once), and at the
next physics step when its model asks for it (``report_now``: a threshold crossed).

The payload is shaped as ChirpStack's uplink event: ``{"deviceId", "time" (simulated, ISO 8601
UTC), "fCnt", "rssi", "snr", "object": {field: value}}``; it is published retained, so a center
that starts later has every sensor's last report at once (its own ``time`` still tells its age),
and the retained messages are cleared on ``stop``.

Device faults (``device.faults``): offline and refusing disconnect the network server from the
broker (nothing is reported: every sensor goes silent); error sends payloads that are no JSON;
stuck and noisy apply to the values as for every protocol; slow holds each uplink ``delay_s``
wall seconds. Sensor faults (``UplinkSensor.silent`` / ``malformed``) hit one sensor only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime

import aiomqtt

from plc_sim.device import FaultKind, PointValue, SimDevice
from plc_sim.domain import DeviceServerBase, UplinkSensor

_log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
RETRY_MAX_S = 5.0
"""Longest wall-clock wait between two attempts to reach a broker that is away."""


def uplink_topic(domain: str, sensor: UplinkSensor) -> str:
    """The topic of a sensor's uplinks, relative to the city's topic prefix."""
    return f"{domain}/{sensor.id}/up"


class MqttDeviceServer(DeviceServerBase):
    """Publishes the uplinks of one device's sensors to an MQTT broker."""

    protocol_label = "MQTT"

    def __init__(
        self,
        device: SimDevice,
        sensors: Sequence[UplinkSensor],
        clock: Callable[[], datetime],
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        *,
        topic_prefix: str = "city",
        seed: int = 1,
    ) -> None:
        """Publish ``sensors``' points (all of them points of ``device``) to the broker."""
        super().__init__(device, broker_host, broker_port)
        for sensor in sensors:
            for _, tag in sensor.fields:
                device.spec(tag)  # KeyError naming the device when a field has no point
        self._sensors = tuple(sensors)
        self._clock = clock
        self._domain = device.name.split(".", 1)[0]
        self._prefix = topic_prefix.strip("/")
        self._rng = random.Random(seed ^ zlib.crc32(device.name.encode()))
        self._client: aiomqtt.Client | None = None
        self._running = False
        self._next_due: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._retry_at = 0.0
        self._retry_s = 0.2
        self._published_topics: set[str] = set()
        self.published = 0
        """Uplinks published since start (for tests and benchmarks)."""

    @property
    def sensors(self) -> tuple[UplinkSensor, ...]:
        """The sensors whose uplinks this server publishes."""
        return self._sensors

    @property
    def connected(self) -> bool:
        """Whether the network server is connected to the broker."""
        return self._client is not None

    def topic(self, sensor: UplinkSensor) -> str:
        """The full topic of a sensor's uplinks (prefix included)."""
        relative = uplink_topic(self._domain, sensor)
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def addresses(self) -> dict[str, str]:
        """Tag → MQTT address (``json:<topic relative to the prefix>#/object/<field>``)."""
        return {
            tag: f"json:{uplink_topic(self._domain, sensor)}#/object/{key}"
            for sensor in self._sensors
            for key, tag in sensor.fields
        }

    async def start(self) -> None:
        """Connect to the broker (OSError when it cannot be reached) and plan every report."""
        await self._connect()
        self._bound_port = self._requested_port
        self._running = True
        origin = self._sim_seconds()
        for sensor in self._sensors:
            # The next report falls anywhere in the interval, as sensors switched on over time.
            self._next_due[sensor.id] = origin + self._rng.uniform(0.0, sensor.interval_s)
        # Every sensor reports once at start: the broker then holds a value of each.
        await self._publish_due(force=True)

    async def stop(self) -> None:
        """Clear the retained uplinks and disconnect; idempotent, never raises."""
        self._running = False
        client = self._client
        if client is not None:
            # QoS 1: the broker acknowledges each clear before the connection goes, so no
            # retained uplink outlives the platform (QoS 0 clears could still be in flight).
            # A clear that times out does not stop the others.
            for topic in sorted(self._published_topics):
                with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                    await client.publish(topic, b"", qos=1, retain=True, timeout=5.0)
        self._published_topics.clear()
        await self._disconnect()

    async def restart(self) -> None:
        """Drop the broker connection and connect again, as a network server rebooting."""
        await self._disconnect()
        if self._running:
            with contextlib.suppress(OSError):
                await self._connect()

    async def publish(self) -> None:
        """Publish the uplinks that are due (called at every physics step)."""
        if not self._running:
            return
        faults = self._device.faults
        if faults.has(FaultKind.OFFLINE) or faults.has(FaultKind.REFUSING):
            await self._disconnect()
            return
        if self._client is None:
            if time.monotonic() < self._retry_at:
                return
            try:
                await self._connect()
            except OSError as err:
                self._retry_at = time.monotonic() + self._retry_s
                self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)
                _log.debug("%s: broker away: %s", self._device.name, err)
                return
        await self._publish_due(force=False)

    async def _publish_due(self, *, force: bool) -> None:
        now_s = self._sim_seconds()
        when = self._clock()
        for sensor in self._sensors:
            due = self._next_due.get(sensor.id, now_s)
            if not (force or sensor.report_now or now_s >= due):
                continue
            sensor.report_now = False
            if now_s >= due:
                # Late steps (a stalled loop) skip missed reports rather than sending a burst.
                self._next_due[sensor.id] = max(due + sensor.interval_s, now_s + 1e-6)
            if sensor.silent:
                continue
            await self._send(sensor, when)
            if self._client is None:
                return

    async def _send(self, sensor: UplinkSensor, when: datetime) -> None:
        client = self._client
        if client is None:
            return
        payload = self._payload(sensor, when)
        topic = self.topic(sensor)
        faults = self._device.faults
        if faults.has(FaultKind.SLOW):
            await asyncio.sleep(faults.delay_s)
        try:
            await client.publish(topic, payload, qos=0, retain=True, timeout=CONNECT_TIMEOUT_S)
        except (aiomqtt.MqttError, OSError, TimeoutError) as err:
            _log.info("%s: lost the broker: %s", self._device.name, err)
            await self._disconnect()
            return
        self._published_topics.add(topic)
        self.published += 1

    def _payload(self, sensor: UplinkSensor, when: datetime) -> bytes:
        count = self._counts.get(sensor.id, 0) + 1
        self._counts[sensor.id] = count
        if sensor.malformed or self._device.faults.has(FaultKind.ERROR):
            # A frame the network server could not decode: cut off mid-object.
            return f'{{"deviceId": "{sensor.id}", "object": {{"'.encode()
        values: dict[str, PointValue] = {}
        for key, tag in sensor.fields:
            value = self._device.read(tag)
            values[key] = round(value, 4) if isinstance(value, float) else value
        document = {
            "deviceId": sensor.id,
            "time": when.isoformat().replace("+00:00", "Z"),
            "fCnt": count,
            "rssi": self._rng.randint(-118, -70),
            "snr": round(self._rng.uniform(-8.0, 10.0), 1),
            "object": values,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    async def _connect(self) -> None:
        client = aiomqtt.Client(
            self._host,
            self._requested_port,
            identifier=f"plc-sim-{self._prefix}-{self._device.name}"[:128],
            timeout=CONNECT_TIMEOUT_S,
            keepalive=30,
            logger=_log,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as err:
            where = f"{self._host}:{self._requested_port}"
            raise OSError(
                f"{self._device.name}: cannot reach the MQTT broker {where}: {err}"
            ) from err
        self._client = client
        self._retry_s = 0.2

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError, RuntimeError):
                await client.__aexit__(None, None, None)

    def _sim_seconds(self) -> float:
        return self._clock().timestamp()
