"""Surveillance cameras' health: online, recording, tamper, as the video-management system sees it.

The VMS publishes each camera's health every ``REPORT_S`` and at once when it changes. Cameras
fail now and then on their own (a camera drops off the network about once a month and comes
back within hours; recording stops when a storage node fills, rarely), and tests or scenarios
can tamper with one (``tamper``: covered, turned or sprayed), take one offline or stop its
recording. An offline camera does not record.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from plc_sim.device import PointBinding, PointSpec, SimDevice
from plc_sim.domain import AssetPlan, UplinkSensor
from plc_sim.weather import WeatherState

DEVICE = "cameras.vms"
CAMERAS_PER_SCALE = 8
REPORT_S = 300.0
MEAN_UP_S = 30 * 86_400.0
MEAN_DOWN_S = 3 * 3600.0


@dataclass(slots=True)
class Camera:
    """One camera's health."""

    name: str
    label: str
    online: bool = True
    recording: bool = True
    tamper: bool = False
    held: bool = False
    """Set by a scenario: the camera stays as set (no random recovery)."""


class CameraNetwork:
    """The city's cameras and their VMS."""

    def __init__(self, scale: int = 1, seed: int = 1) -> None:
        self._rng = random.Random(f"cameras:{seed}")
        self.cameras = [
            Camera(f"cameras.cam{index + 1:02d}", f"Camera {index + 1}")
            for index in range(CAMERAS_PER_SCALE * scale)
        ]
        self._build()

    def camera(self, name: str) -> Camera:
        """A camera by name (``cameras.cam01``)."""
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(f"no camera {name!r}; there are {[c.name for c in self.cameras]}")

    def tamper(self, name: str, tampered: bool = True) -> None:
        """Someone covers or turns the camera (or it is put right again)."""
        camera = self.camera(name)
        camera.tamper = tampered
        self._sensor_of[name].report_now = True

    def set_online(self, name: str, online: bool) -> None:
        """Take a camera off the network (held so until set back) or bring it back."""
        camera = self.camera(name)
        camera.online = online
        camera.recording = online
        camera.held = not online
        self._sensor_of[name].report_now = True

    def set_recording(self, name: str, recording: bool) -> None:
        """Stop or resume a camera's recording (a full storage node)."""
        camera = self.camera(name)
        camera.recording = recording and camera.online
        camera.held = not recording
        self._sensor_of[name].report_now = True

    def step(self, dt_s: float, now: datetime, weather: WeatherState) -> None:
        """Advance ``dt_s`` simulated seconds: random outages and recoveries."""
        for camera in self.cameras:
            if camera.held:
                continue
            before = (camera.online, camera.recording)
            if camera.online and self._rng.random() < dt_s / MEAN_UP_S:
                camera.online = camera.recording = False
            elif not camera.online and self._rng.random() < dt_s / MEAN_DOWN_S:
                camera.online = camera.recording = True
            if before != (camera.online, camera.recording):
                self._sensor_of[camera.name].report_now = True

    def devices(self) -> tuple[SimDevice, ...]:
        """The VMS."""
        return (self._device,)

    def sensors(self) -> tuple[UplinkSensor, ...]:
        """One health report per camera."""
        return tuple(self._sensor_of.values())

    def asset_plans(self) -> tuple[AssetPlan, ...]:
        """Every camera on the map."""
        return tuple(
            AssetPlan(c.name, "camera", c.label, 2 * i + 1) for i, c in enumerate(self.cameras)
        )

    def _build(self) -> None:
        bindings: list[PointBinding] = []
        self._sensor_of: dict[str, UplinkSensor] = {}
        for camera in self.cameras:
            n, c = camera.name, camera
            bindings += [
                PointBinding(PointSpec(f"{n}.online", "bool"), lambda c=c: c.online),  # type: ignore[misc]
                PointBinding(PointSpec(f"{n}.recording", "bool"), lambda c=c: c.recording),  # type: ignore[misc]
                PointBinding(PointSpec(f"{n}.tamper", "bool"), lambda c=c: c.tamper),  # type: ignore[misc]
            ]
            self._sensor_of[n] = UplinkSensor(
                n.split(".", 1)[1],
                REPORT_S,
                tuple((key, f"{n}.{key}") for key in ("online", "recording", "tamper")),
            )
        self._device = SimDevice(DEVICE, "mqtt", bindings, description="video management system")
