"""The HMI's server under hostile clients: half-sent requests, too many connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dash
import pytest

from hmi.server import HmiServer, ServerLimits
from tests.hmi.conftest import serving
from tests.hmi.http_support import send

HALF_SENT = 200
HALF_REQUEST = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes ``sock`` before ``deadline`` (whatever it sent first)."""
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


@pytest.fixture
def limited_server(hmi_app: dash.Dash, request: pytest.FixtureRequest) -> Iterator[HmiServer]:
    limits: ServerLimits = request.param
    with serving(hmi_app, limits=limits) as server:
        yield server


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "limited_server", [ServerLimits(worker_threads=4, idle_timeout_s=2.0)], indirect=True
)
def test_half_sent_requests_hold_no_thread_and_are_closed_after_the_idle_timeout(
    limited_server: HmiServer,
) -> None:
    url = limited_server.url
    assert send(url, "GET", "/login").status == 200
    threads_before = threading.active_count()

    sockets = [connect(limited_server.port) for _ in range(HALF_SENT)]
    try:
        for sock in sockets:
            sock.sendall(HALF_REQUEST)
        opened = time.monotonic()

        # Served while all 200 wait: they cost sockets on the server's loop, not threads.
        for _ in range(3):
            assert send(url, "GET", "/login").status == 200
        threads_during = threading.active_count()
        assert threads_during <= threads_before + limited_server.limits.worker_threads

        deadline = opened + limited_server.limits.idle_timeout_s + 5.0
        still_open = [sock for sock in sockets if not closed_by_server(sock, deadline)]
        assert still_open == []
    finally:
        for sock in sockets:
            sock.close()
    assert send(url, "GET", "/login").status == 200


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "limited_server", [ServerLimits(max_connections=20, idle_timeout_s=30.0)], indirect=True
)
def test_connections_beyond_the_limit_are_closed_at_once(limited_server: HmiServer) -> None:
    url = limited_server.url
    idle = [connect(limited_server.port) for _ in range(20)]
    try:
        extra = connect(limited_server.port)
        with extra:
            extra.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert closed_by_server(extra, time.monotonic() + 5.0)
        idle.pop().close()
        # A place is free again: a normal request gets in (the server notices the close soon).
        deadline = time.monotonic() + 10.0
        while True:
            try:
                if send(url, "GET", "/login").status == 200:
                    break
            except (ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        for sock in idle:
            sock.close()
