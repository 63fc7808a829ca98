"""A total deadline for an httpx request: connect, send, headers and body together, not each read alone.

httpx's timeouts bound each socket operation, so a server that drips one byte per second never trips a 2 s read
timeout and holds the caller for as long as it likes. Under :func:`deadline`, every connect, read and write of
the request waits at most until the deadline, and one that would start after it fails at once as a timeout
(``httpcore.ReadTimeout`` and friends, which httpx turns into ``httpx.TimeoutException``).

httpx has no public hook below its transport, so :func:`deadline_transport` wraps the network backend of the
transport's connection pool (httpcore's). The deadline lives in a context variable: requests on other threads
(the SDK's background refresh, the application's own) each keep their own.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import typing
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

import httpcore
import httpx

__all__ = ["deadline", "deadline_transport", "past_deadline"]

_DEADLINE: ContextVar[float | None] = ContextVar("promptlane_http_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every socket operation inside ends by ``seconds`` from now (None: no deadline)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def past_deadline() -> bool:
    """True once the current deadline (if any) has passed."""
    at = _DEADLINE.get()
    return at is not None and time.monotonic() >= at


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the deadline; ``expired`` when nothing is left."""
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        upgraded = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _Stream(upgraded)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """httpx's default transport, its socket operations bounded by :func:`deadline`."""
    transport = httpx.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # another httpx or httpcore: stay usable; the body is still read against the deadline
        return transport
    pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return transport
