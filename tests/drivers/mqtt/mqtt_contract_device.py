"""The contract suite's controller as an MQTT device: a JSON state uplink (retained, with its
own time) and a JSON downlink topic whose commands it applies when they are within range."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from plc_sim.device import PointWriteError, SimDevice
from tests.drivers.mqtt.mqtt_support import broker, unique_prefix

UP = "plant/up"
DOWN = "plant/down"


class MqttControllerDevice:
    """Serves a ``SimDevice``'s points through the test broker (satisfies ``DeviceServer``)."""

    def __init__(self, device: SimDevice) -> None:
        self._device = device
        self.prefix = unique_prefix("contract")
        self._client: aiomqtt.Client | None = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def device(self) -> SimDevice:
        """The device served."""
        return self._device

    @property
    def port(self) -> int:
        """The broker's port: the device is reached through it."""
        return broker()[1]

    def addresses(self) -> dict[str, str]:
        """Tag → ``json:`` address; writable points name the downlink topic."""
        result: dict[str, str] = {}
        for spec in self._device.points:
            suffix = f";set={DOWN}" if spec.writable else ""
            result[spec.tag] = f"json:{UP}#/{_key(spec.tag)}{suffix}"
        return result

    async def start(self) -> None:
        """Connect, listen for downlinks and publish the state."""
        host, port = broker()
        self._client = aiomqtt.Client(host, port)
        await self._client.__aenter__()
        await self._client.subscribe(f"{self.prefix}/{DOWN}", qos=1)
        self._listener = asyncio.create_task(self._listen(self._client))
        await self.publish()

    async def stop(self) -> None:
        """Remove the retained state and disconnect."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._listener
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.publish(f"{self.prefix}/{UP}", b"", qos=1, retain=True)
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def restart(self) -> None:
        """Reconnect."""
        await self.stop()
        await self.start()

    async def publish(self) -> None:
        """Publish the current state, retained, stamped with the time."""
        assert self._client is not None
        state: dict[str, Any] = {"ts": datetime.now(UTC).isoformat()}
        for spec in self._device.points:
            state[_key(spec.tag)] = self._device.read(spec.tag)
        await self._client.publish(
            f"{self.prefix}/{UP}", json.dumps(state).encode(), qos=1, retain=True
        )

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            try:
                command = json.loads(payload if isinstance(payload, bytes) else str(payload))
            except ValueError:
                continue
            for spec in self._device.points:
                if _key(spec.tag) in command:
                    # The device checks range and writability; a refused command changes nothing.
                    with contextlib.suppress(PointWriteError):
                        self._device.write(spec.tag, command[_key(spec.tag)])
            await self.publish()


def _key(tag: str) -> str:
    return tag.rsplit(".", 1)[-1]
