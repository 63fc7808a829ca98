"""A registry server on a real socket, in a thread: for the remote SDK, the CLI against a URL, load and faults."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from promptlane.config import Settings
from promptlane.registry import Registry
from promptlane.registry.tokens import create_token
from promptlane.server import create_app

__all__ = ["LiveServer", "free_port", "served_registry"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``create_app(registry)`` served by uvicorn on 127.0.0.1; ``stop()`` and ``start()`` again on the same port
    (a server going down and coming back)."""

    def __init__(self, registry: Registry, *, port: int | None = None, **app_options: Any) -> None:
        self.registry = registry
        self.port = port or free_port()
        self.app_options = app_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        app = create_app(self.registry, **self.app_options)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def served_registry(root: Path, url: str) -> tuple[Registry, dict[str, str]]:
    """A registry on ``url`` (a database) with one token per scope: (registry, scope -> secret)."""
    registry = Registry(settings=Settings(root=root, registry=url, protected_labels=("production",)))
    secrets = {}
    for scope in ("read", "write", "promote", "admin"):
        _, secrets[scope] = create_token(registry.store, f"{scope}-token", [scope], created_by="tests")
    return registry, secrets
