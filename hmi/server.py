"""Serves the HMI's WSGI app from a daemon thread beside the center's event loop."""

from __future__ import annotations

import socket
import threading
from typing import Any

import dash
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

_SHUTDOWN_POLL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler that does not log every request (the HMI polls every second).

    Errors are still logged by werkzeug; only the per-request access line is dropped, without
    touching the level of the shared ``werkzeug`` logger.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Drop the access log line."""


class HmiServerError(RuntimeError):
    """The HMI server was used in the wrong state (started twice, or not started)."""


class HmiServer:
    """Runs a Dash app's Flask server with werkzeug in a daemon thread; port 0 picks a free port."""

    def __init__(self, app: dash.Dash, host: str = "127.0.0.1", port: int = 8050) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the requested one when that was 0)."""
        return self._running().port

    @property
    def url(self) -> str:
        """Base URL of the HMI, e.g. ``http://127.0.0.1:8050``."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind the socket and serve in a daemon thread; raises OSError if the port is taken."""
        if self._server is not None:
            raise HmiServerError("HMI server already started")
        wsgi_app: Any = self._app.server
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # Bind here rather than in werkzeug, which calls sys.exit() when the port is taken.
        with socket.create_server((self._host, self._requested_port), family=family) as listener:
            server = make_server(
                self._host,
                self._requested_port,
                wsgi_app,
                threaded=True,
                request_handler=_QuietRequestHandler,
                fd=listener.fileno(),  # werkzeug duplicates the descriptor
            )
        thread = threading.Thread(
            # A short poll interval makes stop() return promptly (shutdown waits for one poll).
            target=server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name=f"hmi-http-{server.port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the socket and join the thread; a no-op if not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join(timeout)
        server.server_close()
        self._server, self._thread = None, None
        if thread.is_alive():
            raise HmiServerError(f"HMI server thread did not stop within {timeout} s")

    def _running(self) -> BaseWSGIServer:
        if self._server is None:
            raise HmiServerError("HMI server not started")
        return self._server
