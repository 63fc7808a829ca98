"""What one client may take from the server: bytes and seconds of a request body, connections, and the log.

- :class:`BodyLimit` (ASGI middleware, every request, API and pages): a body over ``max_bytes`` is refused
  with 413 (at once when ``Content-Length`` says so, else as soon as the count passes it), and a body that has
  not arrived whole ``body_timeout`` seconds after the request started is refused with 408, so a client
  dripping a byte a second holds nothing for long.
- :class:`GuardedH11` (the HTTP protocol ``promptlane serve`` runs): a connection must send a complete request
  head within ``header_timeout`` seconds of opening or of its last answer, and connections past
  ``max_connections`` are closed as they open, so idle or half-open sockets cannot take every file descriptor.
  uvicorn closes an idle kept-alive connection after ``timeout_keep_alive`` seconds, but has no timeout for a
  head that never ends nor for a connection that never sends a byte. It also sends small writes at once
  (``TCP_NODELAY``): uvicorn writes an answer's head and its body separately, and with Nagle's algorithm on,
  the body would wait for the client to acknowledge the head, which it delays ~40 ms. asyncio turns Nagle off
  only on sockets created with ``IPPROTO_TCP``; a socket handed over by a supervisor (gunicorn, systemd, a
  test) is often created without it.
- :class:`TemplateWork`: compiling and rendering templates for clients (pushes, the editor's preview) runs on a
  few worker threads of its own, so it never takes the threads every other request needs, and previews are
  rate-limited per token (429 with ``Retry-After``), so no client keeps those workers to itself.
- :class:`RepeatedLogFilter`: one message (by its format string) logged at most ``burst`` times a minute, and
  a line saying how many were left out, so a flood of bad requests does not fill the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._http import HttpError, dumps

__all__ = ["BodyLimit", "GuardedH11", "RepeatedLogFilter", "TemplateWork", "serve_config"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Default largest request body (``server_max_body_bytes``): a version is at most 256 KB of JSON
(``prompt_max_bytes``), a batch of run cases a few hundred KB."""
BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive, from the request head."""
HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send a request head."""
MAX_CONNECTIONS = 2048
"""Open connections one server process keeps; more are closed as they open."""
KEEP_ALIVE = 5.0
"""Seconds an idle kept-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
MAX_HEAD_BYTES = 16 * 1024
"""Largest request head (request line and headers) h11 buffers."""

TEMPLATE_WORKERS = 2
"""Threads that compile and render templates for clients, in each server process."""
PREVIEW_BURST = 20
"""Previews a token may ask for at once..."""
PREVIEW_RATE = 4.0
"""...and then each second."""

_T = TypeVar("_T")
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is a 413, one slower than ``timeout`` seconds a 408.

    The errors are raised from ``receive`` as :class:`HttpError`, so an endpoint answers them as its other
    errors (JSON for the API); one that gets past the endpoint is answered here, if nothing was sent yet.
    """

    def __init__(self, app: Any, *, max_bytes: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _answer(scope, send, self._too_large())
            return
        received = 0
        deadline = time.monotonic() + self.timeout
        started = refused = False

        async def limited_receive() -> Any:
            nonlocal received, refused
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                refused = True
                raise HttpError(
                    408, f"the request body did not arrive within {self.timeout:g} s", kind="ValidationError"
                ) from None
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise self._too_large()
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            if refused and message["type"] == "http.response.start":
                # The rest of the body is not read: the connection closes after the answer, or the server
                # would go on reading (and dropping) whatever the client still sends.
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HttpError as exc:
            if started or exc.status not in (408, 413):
                raise
            await _answer(scope, send, exc)

    def _too_large(self) -> HttpError:
        return HttpError(
            413, f"the request body is over {self.max_bytes:,} bytes (server_max_body_bytes)", kind="ValidationError"
        )


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(scope: Scope, send: Send, exc: HttpError) -> None:
    """The error as JSON for the API, as text for a browser; the connection is closed after it (the rest of
    the body is not read)."""
    if str(scope.get("path", "")).startswith("/api/"):
        body, media = dumps({"error": str(exc), "type": exc.kind}), b"application/json"
    else:
        body, media = f"{exc}\n".encode(), b"text/plain; charset=utf-8"
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for every request head, a cap on open connections, and Nagle's
    algorithm off (``TCP_NODELAY``) on every connection, whoever made the listening socket."""

    header_timeout = HEADER_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None
        if len(self.connections) > self.max_connections:
            _log_connections.warning("over %d open connections: closing a new one", self.max_connections)
            transport.abort()
            return
        _send_at_once(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._waiting_after and not cycle.response_complete:
            self._stop_waiting()  # a request head arrived whole: the endpoint's own limits apply now
        elif self._head_timer is None and (cycle is None or cycle.response_complete):
            self._await_head()  # the start of a head on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_waiting(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is self._waiting_after or (self.cycle is not None and self.cycle.response_complete):
            _log_connections.info("closing a connection that sent no request head in %g s", self.header_timeout)
            self.transport.abort()


def _send_at_once(transport: asyncio.Transport) -> None:
    """Turn Nagle's algorithm off on a TCP connection: an answer's body leaves right after its head, instead of
    waiting ~40 ms for the client's delayed acknowledgement of the head."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        with contextlib.suppress(OSError):  # the peer already gone: nothing to send to
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_log_connections = logging.getLogger("promptlane.server.connections")


class TemplateWork:
    """Compiling and rendering on behalf of clients: :data:`TEMPLATE_WORKERS` at a time (the rest wait their
    turn without holding a thread), previews at most :data:`PREVIEW_RATE` a second per token after a burst of
    :data:`PREVIEW_BURST`. Each piece of work is itself bounded: a version by ``prompt_max_bytes``, a render
    by its step, size and time budget."""

    def __init__(
        self,
        *,
        workers: int = TEMPLATE_WORKERS,
        burst: int = PREVIEW_BURST,
        rate: float = PREVIEW_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = workers
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self._limiter: anyio.CapacityLimiter | None = None  # made in the server's event loop, at first use
        self._buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens left, when counted)

    async def run(self, call: Callable[[], _T]) -> _T:
        """``call()`` on one of the workers."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def preview(self, who: str, call: Callable[[], _T]) -> _T:
        """``call()`` on one of the workers, if ``who`` has not asked for too many previews lately.

        Raises:
            HttpError: 429, with the seconds until the next one is allowed.
        """
        self.take(who)
        return await self.run(call)

    def take(self, who: str) -> None:
        """Count one preview for ``who`` (a token bucket).

        Raises:
            HttpError: 429: none left; ``retry_after`` says when one is.
        """
        now = self.clock()
        left, then = self._buckets.get(who, (float(self.burst), now))
        left = min(float(self.burst), left + (now - then) * self.rate)
        if left < 1:
            wait = max(1, int((1 - left) / self.rate + 0.999))
            raise HttpError(429, f"too many previews: try again in {wait} s", kind="RateLimited", retry_after=wait)
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # many identities (no-auth clients by address): forget the idle ones
        self._buckets[who] = (left - 1, now)


class RepeatedLogFilter(logging.Filter):
    """Lets one message (by its format string and logger) through ``burst`` times a ``window``, then drops it
    until the window ends; the first record after that says how many were dropped."""

    def __init__(self, *, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, object], list[float | int]] = {}  # key -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            dropped = int(entry[2]) if entry is not None else 0
            if len(self._seen) > 1000:
                self._seen.clear()  # messages with their values in the format string: keep the table bounded
            self._seen[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} ({dropped} more like this in the last {self.window:g} s were not logged)"
            return True
        entry[1] += 1
        if entry[1] > self.burst:
            entry[2] += 1
            return False
        return True


def _open_files_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def serve_config(app: Any, *, host: str, port: int, log_level: str) -> Any:
    """The uvicorn configuration ``promptlane serve`` runs: the guarded protocol, a short keep-alive, a bounded
    request head, and the repeated-message filter on the server's loggers."""
    import uvicorn

    log_filter = RepeatedLogFilter()
    protocol = GuardedH11
    limit = _open_files_limit()
    if limit is not None and limit - 64 < GuardedH11.max_connections:
        # Past the process's open-file limit, accepting fails for everyone: stop well before it.
        protocol = type("GuardedH11", (GuardedH11,), {"max_connections": max(limit - 64, 16)})
    # Errors and warnings only: the access log is one line a request, the operator's record of its traffic.
    for name in ("uvicorn.error", "promptlane.server", "promptlane.server.connections"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatedLogFilter) for f in logger.filters):
            logger.addFilter(log_filter)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        http=protocol,
        timeout_keep_alive=int(KEEP_ALIVE),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
