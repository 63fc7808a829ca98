"""Answers leave at once: the protocol ``promptlane serve`` runs turns Nagle's algorithm off on every connection.

uvicorn writes an answer's head and its body in two writes. With Nagle on, the body waits for the client to
acknowledge the head, and clients delay that acknowledgement (~40 ms on Linux): every 200 with a body took
44 ms on loopback, a 304 (no body, one write) 0.25 ms. asyncio sets ``TCP_NODELAY`` itself only on sockets
created with ``IPPROTO_TCP``; a listening socket made by ``socket.socket()`` (gunicorn, systemd, the tests'
``listening_socket``) has protocol 0, so its connections kept Nagle on. The option is read back from the
connection the server accepted, not timed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from _live import PATIENCE, served_registry, wait_for
from promptlane.registry import Registry
from promptlane.server import create_app
from promptlane.server.limits import serve_config

RESOLVE = "/api/v1/prompts/support/reply/-/resolve?label=production"
SPEC = {"template": "Hello {{ name }}", "variables": {"name": {"type": "string"}}}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Registry, str]]:
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    registry.push_spec("support/reply", SPEC, author="tests")
    registry.set_label("support/reply", "production", 1, force=True, reason="tests", actor="tests")
    yield registry, secrets["read"]
    registry.close()


def _answer(connection: socket.socket) -> bytes:
    """One whole answer with a Content-Length, however it is split."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_connection_on_a_socket_made_without_ipproto_tcp_sends_without_nagle(
    served: tuple[Registry, str],
) -> None:
    registry, secret = served
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as gunicorn and systemd make theirs
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    assert sock.proto == 0  # the case asyncio leaves alone
    port = int(sock.getsockname()[1])
    config = serve_config(create_app(registry), host="127.0.0.1", port=port, log_level="warning")
    config.lifespan = "off"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the server starting")
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as client:
            request = f"GET {RESOLVE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n\r\n"
            client.sendall(request.encode())
            answer = _answer(client)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert b'"label":"production"' in answer

            (accepted,) = server.server_state.connections  # the server's end of `client`
            transport = accepted.transport
            option = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert option != 0
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
