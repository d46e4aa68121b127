"""Serves the HMI's WSGI app with Hypercorn from a thread of its own beside the center's loop.

Hypercorn reads and parses requests on an asyncio loop and hands only complete requests to a
bounded pool of worker threads, so a client that sends half a request, or nothing, costs one
socket and no thread; such a client is disconnected after ``idle_timeout_s``. The number of
open connections is capped: a connection beyond the cap is closed as soon as it is accepted.
With a certificate and key the same server speaks TLS (HTTPS) instead of plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dash
from hypercorn.app_wrappers import WSGIWrapper
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets

_log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0


class HmiServerError(RuntimeError):
    """The HMI server was used in the wrong state, or could not start or stop."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate (chain) and its private key: the HMI then serves HTTPS only."""

    certificate: Path
    private_key: Path


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client, or many, may cost the HMI's server."""

    worker_threads: int = 8
    """Threads running the app; complete requests beyond them wait in a queue."""
    max_connections: int = 512
    """Open connections at most; one more is closed at once (a browser opens about six)."""
    idle_timeout_s: float = 10.0
    """A connection with no complete request for this long is closed (half-sent or idle)."""
    read_timeout_s: float = 30.0
    """A request whose next bytes take longer than this is abandoned and its connection closed."""
    tls_handshake_timeout_s: float = 10.0
    """A TLS handshake that has not completed within this time is abandoned."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted (the HMI's callbacks send a few kilobytes)."""
    shutdown_timeout_s: float = 3.0
    """How long requests in progress may take to finish when the server stops."""

    def __post_init__(self) -> None:
        if self.worker_threads < 1 or self.max_connections < 1 or self.max_body_bytes < 1:
            raise ValueError("worker_threads, max_connections and max_body_bytes must be >= 1")
        timeouts = (
            self.idle_timeout_s,
            self.read_timeout_s,
            self.tls_handshake_timeout_s,
            self.shutdown_timeout_s,
        )
        if min(timeouts) <= 0:
            raise ValueError("the server's timeouts must be positive")


class _ConnectionCappedListener(socket.socket):
    """A listening socket whose ``accept`` closes connections beyond a cap of open ones.

    asyncio's server calls ``accept`` on the very socket object it was given; a connection is
    counted as open until its socket is closed (or collected).
    """

    def configure_cap(self, max_connections: int) -> None:
        """Set the cap; called once before serving."""
        self._max_connections = max_connections
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._refusing = False

    def accept(self) -> tuple[socket.socket, Any]:
        """Accept a connection; close it at once and report an abort when over the cap."""
        connection, address = super().accept()
        open_now = [sock for sock in self._open if sock.fileno() >= 0]
        if len(open_now) >= self._max_connections:
            # Hypercorn closes a connection the client has left only at its idle timeout;
            # at the cap, such connections no longer count.
            open_now = [sock for sock in open_now if not _peer_has_closed(sock)]
        if len(open_now) >= self._max_connections:
            connection.close()
            if not self._refusing:
                _log.warning(
                    "HMI connection limit of %d reached: refusing new connections",
                    self._max_connections,
                )
                self._refusing = True
            # asyncio's accept loop treats this as "that one went away" and keeps listening.
            raise ConnectionAbortedError("HMI connection limit reached")
        if self._refusing:
            _log.info("HMI accepts connections again (%d open)", len(open_now))
            self._refusing = False
        self._open = weakref.WeakSet([*open_now, connection])
        return connection, address


def _peer_has_closed(sock: socket.socket) -> bool:
    """Whether the client closed ``sock`` (a peek reads end-of-file); the data stays queued."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _never_empty(app: Any) -> Any:
    """Wrap a WSGI app so that every response body yields at least one chunk.

    A 304 or a HEAD response has an empty body iterable; Hypercorn's WSGI adapter starts the
    response only with the first chunk, so an empty one would fail the request.
    """

    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return _at_least_one(app(environ, start_response))

    return wrapped


def _at_least_one(body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        empty = True
        for chunk in body:
            empty = False
            yield chunk
        if empty:
            yield b""
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


ASGI_ROUTES_EXTENSION = "hmi_asgi_routes"
"""Flask ``extensions`` key of the paths served as ASGI apps (the live stream) on the loop."""
LIVE_HUB_EXTENSION = "hmi_live_hub"
"""Flask ``extensions`` key of the live hub, whose streams end when the server stops."""


class _RoutedApp:
    """Hypercorn's app: a few exact paths go to ASGI apps on the server's loop (long-lived
    streams cost a coroutine, not a worker thread); everything else to the WSGI app."""

    def __init__(
        self,
        routes: Mapping[str, Any],
        wsgi: WSGIWrapper,
        mounts: Mapping[str, WSGIWrapper] | None = None,
    ) -> None:
        self._routes = dict(routes)
        self._wsgi = wsgi
        self._mounts = dict(mounts or {})

    async def __call__(
        self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any
    ) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        route = self._routes.get(path)
        if route is not None:
            await route(scope, receive, send)
            return
        for prefix, mounted in self._mounts.items():
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                await mounted(scope, receive, send, sync_spawn, call_soon)
                return
        await self._wsgi(scope, receive, send, sync_spawn, call_soon)


class HmiServer:
    """Runs a Dash app's Flask server with Hypercorn in a thread; port 0 picks a free port."""

    def __init__(
        self,
        app: dash.Dash,
        host: str = "127.0.0.1",
        port: int = 8050,
        *,
        tls: TlsFiles | None = None,
        limits: ServerLimits | None = None,
        mounts: Mapping[str, Any] | None = None,
        asgi_routes: Mapping[str, Any] | None = None,
    ) -> None:
        """``mounts``: path prefixes (``/api/``) served by other WSGI apps; ``asgi_routes``:
        exact paths served by ASGI apps on the server's loop (streams)."""
        self._app = app
        self._mounts = dict(mounts or {})
        self._asgi_routes = dict(asgi_routes or {})
        self._host = host
        self._requested_port = port
        self._tls = tls
        self._limits = limits if limits is not None else ServerLimits()
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the requested one when that was 0)."""
        if self._port is None:
            raise HmiServerError("HMI server not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the HMI, e.g. ``http://127.0.0.1:8050`` (``https://`` with TLS)."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def limits(self) -> ServerLimits:
        """The limits this server enforces."""
        return self._limits

    def start(self) -> None:
        """Bind the socket and serve in a thread; raises OSError if the port is taken."""
        if self._thread is not None:
            raise HmiServerError("HMI server already started")
        config = self._config()
        if self._tls is not None:
            # Fail here, in the caller's thread, on an unreadable or mismatched certificate.
            try:
                config.create_ssl_context()
            except (OSError, ssl.SSLError) as err:
                raise HmiServerError(f"cannot use the HMI's TLS certificate/key: {err}") from err
        listener = self._bind()
        sockets = (
            Sockets([listener], [], []) if self._tls is not None else Sockets([], [listener], [])
        )
        started = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve,
            args=(config, sockets, started, failure),
            name=f"hmi-http-{self._port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not started.wait(_START_TIMEOUT_S) or failure:
            self.stop()
            cause = failure[0] if failure else None
            raise HmiServerError(f"HMI server did not start: {cause!r}") from cause

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the socket and join the thread; a no-op if not started."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        hub = self._app.server.extensions.get(LIVE_HUB_EXTENSION)
        if hub is not None:
            # Open live streams would hold the shutdown for its whole grace period.
            hub.close_all()
        if loop is not None and stop_event is not None and not loop.is_closed():
            # RuntimeError: the loop has just finished on its own.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        self._thread, self._loop, self._stop_event, self._port = None, None, None, None
        if thread.is_alive():
            raise HmiServerError(f"HMI server thread did not stop within {timeout} s")

    def _bind(self) -> _ConnectionCappedListener:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = _ConnectionCappedListener(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted connections inherit it (as with Hypercorn's own listeners): without it
            # a response sent in two writes waits ~40 ms for the client's delayed ACK.
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind((self._host, self._requested_port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        listener.configure_cap(self._limits.max_connections)
        self._port = int(listener.getsockname()[1])
        return listener

    def _config(self) -> Config:
        limits = self._limits
        config = Config()
        # No "Server: hypercorn-h11" header: the version of what serves the HMI is nobody's
        # business on the network.
        config.include_server_header = False
        config.keep_alive_timeout = limits.idle_timeout_s
        config.read_timeout = int(max(1, round(limits.read_timeout_s)))
        config.ssl_handshake_timeout = limits.tls_handshake_timeout_s
        config.graceful_timeout = limits.shutdown_timeout_s
        config.wsgi_max_body_size = limits.max_body_bytes
        config.h11_max_incomplete_size = 16 * 1024
        config.accesslog = None
        # Hypercorn's own lines ("Running on ...") are start-up chatter here; its warnings and
        # errors still show.
        http_log = logging.getLogger("hmi.server.http")
        http_log.setLevel(logging.WARNING)
        config.errorlog = http_log
        # HTTP/1.1 only: one request parser to harden, and browsers need nothing more here.
        config.alpn_protocols = ["http/1.1"]
        if self._tls is not None:
            config.certfile = str(self._tls.certificate)
            config.keyfile = str(self._tls.private_key)
        return config

    def _serve(
        self,
        config: Config,
        sockets: Sockets,
        started: threading.Event,
        failure: list[BaseException],
    ) -> None:
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(
            max_workers=self._limits.worker_threads, thread_name_prefix="hmi-worker"
        )
        # Hypercorn runs the WSGI app through the loop's default executor: this bounds it.
        loop.set_default_executor(executor)
        stop_event = asyncio.Event()
        self._loop, self._stop_event = loop, stop_event
        wsgi = WSGIWrapper(_never_empty(self._app.server), config.wsgi_max_body_size)
        routes = dict(self._app.server.extensions.get(ASGI_ROUTES_EXTENSION, {}))
        for path, endpoint in self._asgi_routes.items():
            routes[path] = endpoint
        mounts = {
            prefix: WSGIWrapper(_never_empty(mounted), config.wsgi_max_body_size)
            for prefix, mounted in self._mounts.items()
        }
        app = _RoutedApp(routes, wsgi, mounts) if routes or mounts else wsgi

        async def serve() -> None:
            loop.call_soon(started.set)
            await worker_serve(app, config, sockets=sockets, shutdown_trigger=stop_event.wait)

        try:
            loop.run_until_complete(serve())
        except BaseException as err:  # reported to start() or logged: the thread must end
            failure.append(err)
            _log.error("HMI server stopped: %r", err)
        finally:
            for listener in (*sockets.secure_sockets, *sockets.insecure_sockets):
                listener.close()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            started.set()
