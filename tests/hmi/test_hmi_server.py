"""The HMI server thread: port 0, URL, clean stop."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.request

import dash
import pytest

from hmi.server import HmiServer, HmiServerError


def fetch_status(url: str) -> int:
    request = urllib.request.Request(url)
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


async def test_serves_on_a_free_port_and_stops_cleanly(hmi_app: dash.Dash) -> None:
    server = HmiServer(hmi_app, port=0)
    server.start()
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert await asyncio.to_thread(fetch_status, server.url + "/login") == 200
    finally:
        port = server.port
        server.stop()

    assert not [t for t in threading.enumerate() if t.name.startswith("hmi-http-")]
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_misuse_is_reported(hmi_app: dash.Dash) -> None:
    server = HmiServer(hmi_app, port=0)
    with pytest.raises(HmiServerError, match="not started"):
        _ = server.port
    server.stop()  # stopping a server that never started is harmless
    server.start()
    try:
        with pytest.raises(HmiServerError, match="already started"):
            server.start()
    finally:
        server.stop()


def test_taken_port_is_an_error(hmi_app: dash.Dash, hmi_server: HmiServer) -> None:
    with pytest.raises(OSError):
        HmiServer(hmi_app, port=hmi_server.port).start()
