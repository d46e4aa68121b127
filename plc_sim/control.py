"""The simulator's control endpoint: inject and clear faults at run time, for operator training.

A small TCP service speaking newline-delimited JSON, one request and one answer per line, bound
to loopback by default (it has no authentication: it is a training tool, never exposed to a
plant network). Requests::

    {"action": "set", "device": "water.ps1_rtu", "fault": "slow", "delay_s": 3}
    {"action": "clear", "device": "water.ps1_rtu"}            (every fault; or "fault": "slow")
    {"action": "restart", "device": "lights.d1_ctrl"}
    {"action": "leak", "area": 1, "flow_m3h": 25}              (0 repairs it)
    {"action": "list"}                                         (devices and their active faults)
    {"action": "timing", "reset": true}                        (the physics loop's regularity)

Answers are ``{"ok": true, ...}`` or ``{"ok": false, "error": "<reason>"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from plc_sim.device import FaultKind, UnknownDeviceError

if TYPE_CHECKING:
    from plc_sim.city import SimulatedCity

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096


class ControlRequestError(ValueError):
    """A control request is malformed or names something that does not exist."""


class ControlEndpoint:
    """Serves fault-injection requests for one running city."""

    def __init__(self, city: SimulatedCity, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._city = city
        self._host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound TCP port; only while running."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the control endpoint is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(
            self._serve, self._host, self._requested_port, limit=MAX_REQUEST_BYTES
        )

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(OSError):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self.handle_line(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as err:  # a client gone or a line over the limit
            _log.debug("control connection ended: %s", err)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def handle_line(self, line: bytes) -> dict[str, Any]:
        """Answer one request line."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlRequestError("a request is a JSON object")
            return await self.handle(request)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return {"ok": False, "error": f"not JSON: {err}"}
        except (ControlRequestError, UnknownDeviceError, ValueError, TypeError) as err:
            text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            return {"ok": False, "error": str(text)}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one decoded request."""
        action = request.get("action")
        city = self._city
        if action == "list":
            return {
                "ok": True,
                "devices": {
                    device.name: sorted(kind.value for kind in device.faults.active)
                    for device in city.devices()
                },
            }
        if action == "timing":
            reset = request.get("reset", False)
            if not isinstance(reset, bool):
                raise ControlRequestError("'reset' must be true or false")
            return {"ok": True, "physics": city.physics_timing(reset=reset).as_dict()}
        if action == "leak":
            if city.water is None:
                raise ControlRequestError("this city has no water network")
            city.water.set_leak(_int(request, "area"), _float(request, "flow_m3h"))
            return {"ok": True}
        device = request.get("device")
        if not isinstance(device, str):
            raise ControlRequestError("'device' (a device name) is required")
        if action == "set":
            city.set_fault(
                device,
                _fault(request.get("fault")),
                delay_s=_optional_float(request, "delay_s"),
                error_code=_optional_int(request, "error_code"),
                noise=_optional_float(request, "noise"),
            )
            return {"ok": True}
        if action == "clear":
            fault = request.get("fault")
            city.clear_fault(device, None if fault is None else _fault(fault))
            return {"ok": True}
        if action == "restart":
            await city.restart_device(device)
            return {"ok": True}
        raise ControlRequestError(
            f"unknown action {action!r}; use set, clear, restart, leak, list or timing"
        )


def _fault(value: object) -> FaultKind:
    try:
        return FaultKind(str(value))
    except ValueError as err:
        known = ", ".join(kind.value for kind in FaultKind)
        raise ControlRequestError(f"unknown fault {value!r}; use one of {known}") from err


def _float(request: dict[str, Any], key: str) -> float:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlRequestError(f"'{key}' must be a number")
    return float(value)


def _int(request: dict[str, Any], key: str) -> int:
    value = request.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlRequestError(f"'{key}' must be a whole number")
    return value


def _optional_float(request: dict[str, Any], key: str) -> float | None:
    return None if request.get(key) is None else _float(request, key)


def _optional_int(request: dict[str, Any], key: str) -> int | None:
    return None if request.get(key) is None else _int(request, key)


async def send_control_request(host: str, port: int, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to a running control endpoint and return its answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise ConnectionError(f"the control endpoint at {host}:{port} closed without answering")
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise ControlRequestError("the control endpoint answered something other than an object")
    return answer
