"""A registry server on a real socket, in a thread: for the remote SDK, the CLI against a URL, load and faults.

Also a *silent* server: a socket that accepts connections, reads what is sent and never answers (a hung
process, a black-holed network), and counts the requests it was sent, so that a test asserts how many times
a client asked instead of how long it waited.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from promptlane.config import Settings
from promptlane.registry import Registry
from promptlane.registry.tokens import create_token
from promptlane.server import create_app

__all__ = [
    "PATIENCE",
    "LiveServer",
    "SilentServer",
    "finishes",
    "in_forked_child",
    "listening_socket",
    "served_registry",
    "wait_for",
]

PATIENCE = 60.0
"""Seconds a test waits for something that takes milliseconds on an idle machine: a bound against a hang, never
a measurement. A loaded two-core CI machine must not come near it."""


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:``port`` (0: a free port, chosen by the kernel and already bound, so
    no other process can take it between choosing and serving)."""
    # IPPROTO_TCP, as `promptlane serve`'s own socket: asyncio then turns Nagle off on the connections it accepts
    # (with protocol 0 every answer with a body waited ~40 ms for the client's delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def wait_for(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds (a hang, not
    slowness: ``timeout`` is generous)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.01)


def in_forked_child(body: Callable[[], object]) -> int:
    """Run ``body`` in a forked child (an app's worker after gunicorn --preload): its exit status, 0 when ``body``
    returned, 1 when it raised. The child never returns into pytest; a hang guard kills it after PATIENCE s."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        except BaseException:
            os._exit(1)
        os._exit(0)
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"the forked child did not finish within {PATIENCE:.0f} s")


def finishes(call: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """``call()``'s result; fail naming ``what`` if it has not returned after ``timeout`` seconds (the call
    goes on in a daemon thread)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="finishes", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise AssertionError(f"still waiting after {timeout:.0f} s: {what}")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class LiveServer:
    """``create_app(registry)`` served by uvicorn on 127.0.0.1; ``stop()`` and ``start()`` again on the same port
    (a server going down and coming back)."""

    def __init__(self, registry: Registry, *, port: int | None = None, **app_options: Any) -> None:
        self.registry = registry
        self.port = port or 0
        self.app_options = app_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        sock = listening_socket(self.port)
        self.port = int(sock.getsockname()[1])
        app = create_app(self.registry, **self.app_options)
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, args=([sock],), name="live-server", daemon=True)
        self._thread.start()
        server, thread = self._server, self._thread
        wait_for(lambda: server.started or not thread.is_alive(), f"the test server starting on port {self.port}")
        if not server.started:
            raise RuntimeError(f"the test server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=PATIENCE)
        self._server = self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """Accepts connections on 127.0.0.1:``port`` and never answers; records the request line of every request
    sent to it (``GET /api/v1/snapshot?label=production``). ``close()`` drops every connection, so a client
    still waiting fails at once."""

    def __init__(self, port: int = 0) -> None:
        self.sock = listening_socket(port)
        self.port = int(self.sock.getsockname()[1])
        self._lock = threading.Lock()
        self._requests: list[str] = []
        self._connections: list[socket.socket] = []
        self._closed = False
        self.sock.settimeout(0.05)  # the accept loop notices close()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[str]:
        """The request lines received so far, in order."""
        with self._lock:
            return list(self._requests)

    def count(self, fragment: str) -> int:
        """How many requests so far have ``fragment`` in their request line."""
        return sum(fragment in line for line in self.requests)

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            connection.settimeout(None)
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), name="silent-connection", daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        buffered = b""
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffered += data
            # Requests without a body (what the SDK's read path sends) end at a blank line.
            while b"\r\n\r\n" in buffered:
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                with self._lock:
                    self._requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self) -> None:
        """Stop listening (the port is free when this returns) and drop every connection."""
        with self._lock:
            self._closed = True
        self._thread.join(PATIENCE)  # out of accept() before the socket closes, so that it closes at once
        self.sock.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def served_registry(root: Path, url: str) -> tuple[Registry, dict[str, str]]:
    """A registry on ``url`` (a database) with one token per scope: (registry, scope -> secret)."""
    registry = Registry(settings=Settings(root=root, registry=url, protected_labels=("production",)))
    secrets = {}
    for scope in ("read", "write", "promote", "admin"):
        _, secrets[scope] = create_token(registry.store, f"{scope}-token", [scope], created_by="tests")
    return registry, secrets
