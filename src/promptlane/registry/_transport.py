"""HTTP/1.1 for the registry client on the standard library: a total deadline, kept-alive connections, proxies.

**The deadline.** ``http.client`` bounds each socket operation alone, so a server that drips one byte a second
never trips a 2 s timeout and holds the caller for as long as it likes. Under :func:`deadline`, every socket
operation of a request (the connect, the TLS handshake, each send, each read of the head and of the body) waits
at most until the request's deadline, and one that would start after it raises ``TimeoutError`` at once. The
deadline lives in a context variable: requests on other threads (the SDK's background refresh, the
application's own) each keep their own.

**Connections.** A :class:`Transport` keeps up to ``_IDLE`` kept-alive connections to its server, each used by
one request at a time, so threads share it safely. A GET takes an idle connection (one the server has already
closed is dropped unused) and, if the server turns out to have closed it meanwhile, asks once more on a new
one. Every other method opens a new connection: a request that changes something is never sent on a connection
the server may be closing, nor sent twice.

**TLS** is verified with :func:`ssl.create_default_context` (the system's certificates; ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` name others). **Proxies** come from the environment when the transport is made, as curl and
httpx read them: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (or lower case); plain HTTP goes
through the proxy, HTTPS through a ``CONNECT`` tunnel; the proxy itself is reached over ``http://``.
**Redirects** are never followed: the caller gets the 3xx, and a token goes only to the server it was given for.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

__all__ = ["Origin", "Transport", "deadline", "parse_origin"]

_IDLE = 8
"""Idle kept-alive connections a transport keeps at most (one per thread that asks at the same time)."""
# What a kept-alive connection the server has closed fails with, before any answer: worth one more try.
_DROPPED = (ConnectionError, http.client.BadStatusLine, ssl.SSLEOFError, ssl.SSLZeroReturnError)


# --- the deadline ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    each: float | None
    """Seconds one socket operation waits at most (None: no bound)."""
    until: float | None
    """The ``time.monotonic()`` by which the whole request ends (None: no total bound)."""


_BUDGET: ContextVar[_Budget | None] = ContextVar("promptlane_http_budget", default=None)


@contextlib.contextmanager
def deadline(total: float | None, *, each: float | None) -> Iterator[None]:
    """Inside, each socket operation waits at most ``each`` seconds, and all of them together end ``total``
    seconds from now (None: no bound)."""
    until = None if total is None else time.monotonic() + total
    token = _BUDGET.set(_Budget(each=each, until=until))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def time_left() -> float | None:
    """Seconds the next socket operation may wait (None: for ever); TimeoutError once the deadline has passed."""
    budget = _BUDGET.get()
    if budget is None:  # outside deadline(): no bound
        return None
    if budget.until is None:
        return budget.each
    left = budget.until - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's total deadline passed")
    return left if budget.each is None else min(left, budget.each)


class _Reads(io.RawIOBase):
    """A socket's reads, each bounded by :func:`time_left`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until this closes, as http.client expects

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(time_left())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    """``http.client``'s response, its head and body read under the deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # nothing read from it yet
        self.fp = io.BufferedReader(_Reads(sock))


class _Connection(http.client.HTTPConnection):
    """One connection (TLS when ``tls`` is given), every socket operation bounded by :func:`time_left`."""

    response_class = _Response

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None, server_hostname: str) -> None:
        super().__init__(host, port)
        self.tls = tls
        self.server_hostname = server_hostname
        if tls is not None:
            self.default_port = 443  # the Host header leaves out the port only when it is the scheme's

    def connect(self) -> None:
        self.timeout = time_left()
        super().connect()  # TCP, and through a proxy the CONNECT tunnel (its answer read under the deadline)
        if self.tls is not None:
            self.sock.settimeout(time_left())  # the handshake, all of it, within what is left
            self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.server_hostname)

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()  # here, not in super().send(): the send below gets what is left after the connect
        if self.sock is not None:
            self.sock.settimeout(time_left())  # sendall: the whole buffer within the timeout
        super().send(data)


# --- where to connect -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a URL points: scheme, host, port, the path prefix under which the API lives, and its user info."""

    scheme: str
    """``http`` or ``https``."""
    host: str
    """The host name or address (an IPv6 address without its brackets)."""
    port: int
    prefix: str
    """The URL's path, without its trailing ``/`` (``""`` at the server's root)."""
    userinfo: tuple[str, str] | None = None
    """``(user, password)`` from ``http://user:password@host``, percent-decoded."""

    @property
    def authority(self) -> str:
        """``host:port`` as a URL writes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_origin(url: str) -> Origin:
    """The origin of an ``http(s)://`` URL; ValueError saying what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError("not an http:// or https:// URL")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, path = rest[:end], rest[end:]
    if "?" in path or "#" in path:
        raise ValueError("a server URL has no query or fragment")
    userinfo, _, hostport = netloc.rpartition("@")
    if hostport.startswith("[") and "]" in hostport:
        host, _, after = hostport[1:].partition("]")
        if after and not after.startswith(":"):
            raise ValueError(f"Invalid port: {after!r}")
        port_text = after[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if port_text and not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"Invalid port: {port_text!r}")
    if not host or any(c.isspace() or not c.isprintable() or c in "[]\\" for c in host):
        raise ValueError(f"Invalid host: {host!r}")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    user, _, password = userinfo.partition(":")
    credentials = (unquote(user), unquote(password)) if userinfo else None
    return Origin(scheme=scheme, host=host, port=port, prefix=path.rstrip("/"), userinfo=credentials)


def basic_auth(userinfo: tuple[str, str]) -> str:
    """The ``Basic`` credentials header value for ``(user, password)``."""
    return "Basic " + base64.b64encode(":".join(userinfo).encode()).decode("ascii")


def _proxy_for(origin: Origin) -> Origin | None:
    """The proxy the environment names for ``origin``; None to connect directly."""
    if not any(key.lower().endswith("_proxy") for key in os.environ):
        return None  # the common case, without importing urllib.request (and all it imports)
    import urllib.request

    proxies = urllib.request.getproxies_environment()  # as urllib and pip read it: lower case first
    if urllib.request.proxy_bypass(origin.authority):  # NO_PROXY (with proxies in the environment, only it)
        return None
    url = proxies.get(origin.scheme) or proxies.get("all")
    if not url:
        return None
    scheme = url.partition("://")[0].lower() if "://" in url else "http"
    if scheme != "http":
        raise ValueError(
            f"the environment names a {scheme}:// proxy for {origin.scheme}:// URLs; "
            "the registry client reaches proxies over http:// only"
        )
    try:
        return parse_origin(url if "://" in url else f"http://{url}")
    except ValueError as exc:
        raise ValueError(f"the proxy the environment names for {origin.scheme}:// URLs: {exc}") from None


# --- the transport --------------------------------------------------------------------------------------------


class Transport:
    """Requests to one server, from any thread: connections made and kept as the module docstring says."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.proxy = _proxy_for(origin)
        self._tls = ssl.create_default_context() if origin.scheme == "https" else None
        self._proxy_auth = (
            {"Proxy-Authorization": basic_auth(self.proxy.userinfo)} if self.proxy and self.proxy.userinfo else {}
        )
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    @contextlib.contextmanager
    def open(
        self, method: str, target: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> Iterator[http.client.HTTPResponse]:
        """The answer to ``method target`` (a path and query under the origin's prefix), its head read: its body
        is the caller's to read inside the block. Raises OSError (TimeoutError at the deadline) or
        ``http.client.HTTPException``."""
        response, connection = self._exchange(method, target, headers, body)
        try:
            yield response
        except BaseException:
            response.close()  # an answer that closes the connection owns the socket: close both
            connection.close()
            raise
        if response.isclosed() and not response.will_close:  # read to its end, and the server keeps it open
            self._give(connection)
        else:
            response.close()
            connection.close()

    def _exchange(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[http.client.HTTPResponse, _Connection]:
        url = self.origin.prefix + target
        if self.proxy is not None and self._tls is None:  # plain HTTP through a proxy: the absolute URL
            url = f"http://{self.origin.authority}{url}"
            headers = {**headers, **self._proxy_auth}
        connection, reused = self._take(reuse=method == "GET")
        while True:
            try:
                connection.request(method, url, body=body, headers=dict(headers))
                return connection.getresponse(), connection
            except _DROPPED:
                connection.close()
                if not reused:
                    raise
            except BaseException:
                connection.close()
                raise
            # A kept-alive connection the server closed as the request went out: once more, on a new one.
            connection, reused = self._connection(), False

    def _take(self, *, reuse: bool) -> tuple[_Connection, bool]:
        """An idle connection (and True) if ``reuse`` and there is one still open; else a new one."""
        while reuse:
            with self._lock:
                self._after_fork()
                if not self._idle:
                    break
                connection = self._idle.pop()
            if not _dropped(connection):
                return connection, True
            connection.close()
        return self._connection(), False

    def _after_fork(self) -> None:
        """In a process forked since the idle connections were made (gunicorn --preload, multiprocessing), forget
        them: parent and child would read each other's answers from one socket. Closing the child's descriptors
        leaves the parent's connections open (nothing is shut down)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        inherited, self._idle = self._idle, []
        for connection in inherited:
            connection.close()

    def _give(self, connection: _Connection) -> None:
        with self._lock:
            self._after_fork()
            if not self._closed and len(self._idle) < _IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def _connection(self) -> _Connection:
        origin, proxy = self.origin, self.proxy
        if proxy is None:
            return _Connection(origin.host, origin.port, tls=self._tls, server_hostname=origin.host)
        connection = _Connection(proxy.host, proxy.port, tls=self._tls, server_hostname=origin.host)
        if self._tls is not None:
            connection.set_tunnel(origin.host, origin.port, headers=self._proxy_auth)
        return connection


def _dropped(connection: _Connection) -> bool:
    """Whether an idle connection can no longer be used: the server closed it (or sent something unasked)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # no limit on descriptor numbers, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
