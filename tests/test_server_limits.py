"""What one client can take from a registry server: request bodies (size, time, shape), request heads,
connections, and the log. Every refusal is a 4xx that says why, and nothing of the request is stored."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from _live import PATIENCE, listening_socket, served_registry, wait_for
from promptlane.config import Settings
from promptlane.registry import Registry
from promptlane.server import create_app
from promptlane.server.limits import BodyLimit, GuardedH11, RepeatedLogFilter, TemplateWork, serve_config

API = "/api/v1"
PUSH = f"{API}/prompts/support/reply/-/versions"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Registry, dict[str, str]]]:
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    yield registry, secrets
    registry.close()


def _client(served: tuple[Registry, dict[str, str]], **options: Any) -> TestClient:
    registry, secrets = served
    client = TestClient(create_app(registry, **options), base_url="http://127.0.0.1:8750")
    client.headers["Authorization"] = f"Bearer {secrets['admin']}"
    return client


def _nothing_stored(served: tuple[Registry, dict[str, str]]) -> bool:
    return served[0].store.list_prompts() == []


# --- bodies --------------------------------------------------------------------------------------------------


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(served: tuple[Registry, dict[str, str]]) -> None:
    client = _client(served, max_body_bytes=1000)
    body = json.dumps({"spec": {"template": "x" * 2000}})

    answer = client.post(PUSH, content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 413
    assert answer.json() == {
        "error": "the request body is over 1,000 bytes (server_max_body_bytes)",
        "type": "ValidationError",
    }
    assert _nothing_stored(served)


def test_a_streamed_body_is_counted_as_it_arrives(served: tuple[Registry, dict[str, str]]) -> None:
    # No Content-Length (chunked): the count stops it once past the limit.
    client = _client(served, max_body_bytes=1000)
    chunks = [b'{"spec": {"template": "', *([b"x" * 100] * 30), b'"}}']

    answer = client.post(PUSH, content=iter(chunks), headers={"Content-Type": "application/json"})

    assert answer.status_code == 413
    assert "server_max_body_bytes" in answer.json()["error"]
    assert answer.headers["connection"] == "close"  # the rest of the body is not read
    assert _nothing_stored(served)


def test_the_body_limit_is_a_setting(served: tuple[Registry, dict[str, str]], tmp_path: Path) -> None:
    registry = Registry(settings=Settings(root=tmp_path, registry=served[0].url, server_max_body_bytes=100))
    client = TestClient(create_app(registry), base_url="http://127.0.0.1:8750")
    client.headers["Authorization"] = f"Bearer {served[1]['admin']}"
    assert client.post(PUSH, json={"spec": {"template": "x" * 200}}).status_code == 413
    registry.close()


def test_a_version_over_the_size_limit_is_refused(served: tuple[Registry, dict[str, str]]) -> None:
    answer = _client(served).post(PUSH, json={"spec": {"template": "x" * 300_000}})

    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "support/reply: the prompt is 300,015 bytes, over the limit of 262,144 (prompt_max_bytes)"
    )
    assert _nothing_stored(served)


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "object"}
    for _ in range(levels):
        value = {"type": "object", "properties": {"a": value}}
    return value


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "the body nests deeper than 64 levels"),
        (json.dumps({"spec": {"template": "x", "output_schema": _nested(70)}}), "the body nests deeper than 64"),
        (json.dumps({"spec": {"template": "a\u0000b"}}), "spec.template: the text holds a NUL character"),
        (json.dumps({"spec": {"template": "x", "metadata": {"a\u0000": 1}}}), "spec.metadata: a key holds a NUL"),
        (
            '{"spec": {"template": "x", "model_settings": {"seed": 99999999999999999999}}}',
            "spec.model_settings.seed: 99999999999999999999 is out of range (64 bits)",
        ),
        (
            '{"spec": {"template": "x", "model_settings": {"temperature": 1e400}}}',
            "spec.model_settings.temperature: a number out of range (1e400?)",
        ),
        ('{"spec": {"template": "x", "model_settings": {"temperature": NaN}}}', "NaN is not a JSON number"),
    ],
    ids=["deep array", "deep schema", "NUL in text", "NUL in a key", "huge integer", "infinity", "NaN"],
)
def test_bodies_no_field_takes_are_422_naming_where(
    served: tuple[Registry, dict[str, str]], body: str, reason: str
) -> None:
    answer = _client(served).post(PUSH, content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["error"]
    assert _nothing_stored(served)


def test_a_body_that_drips_is_refused_at_its_deadline() -> None:
    # The endpoint reads the body; the client sends the head and then nothing: a 408 at the deadline, which
    # comes whatever the machine's speed (the guard only catches a hang).
    sent: list[dict[str, Any]] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass

    async def dripping() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/api/v1/prompts/x/versions", "headers": []}
    limited = BodyLimit(endpoint, timeout=0.2)
    asyncio.run(asyncio.wait_for(limited(scope, dripping, send), PATIENCE))

    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"]) == {
        "error": "the request body did not arrive within 0.2 s",
        "type": "ValidationError",
    }


# --- heads and connections: a real uvicorn with the configuration `promptlane serve` runs ---------------------


class _Served:
    def __init__(self, registry: Registry, protocol: type[GuardedH11]) -> None:
        sock = listening_socket()
        self.port = int(sock.getsockname()[1])
        config = serve_config(create_app(registry, auth=False), host="127.0.0.1", port=self.port, log_level="warning")
        config.http = protocol
        config.lifespan = "off"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([sock],), daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, "the server starting")

    def connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE)
        return connection

    def health(self) -> bytes:
        with self.connect() as connection:
            connection.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return _read_all(connection)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(PATIENCE)


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _closed_by_the_server(connection: socket.socket) -> bool:
    """Whether the server closed ``connection`` (waits up to the test's patience for it to)."""
    return _read_all(connection) == b""


def test_a_request_head_that_never_ends_is_closed(served: tuple[Registry, dict[str, str]]) -> None:
    class Quick(GuardedH11):
        header_timeout = 0.3

    server = _Served(served[0], Quick)
    try:
        silent, partial = server.connect(), server.connect()
        partial.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line

        assert _closed_by_the_server(silent)
        assert _closed_by_the_server(partial)
        assert b'"status":"ok"' in server.health()  # a whole request is answered
    finally:
        server.stop()


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_head(
    served: tuple[Registry, dict[str, str]],
) -> None:
    class Quick(GuardedH11):
        header_timeout = 0.3

    server = _Served(served[0], Quick)
    try:
        connection = server.connect()
        connection.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b'"status":"ok"' not in answer:  # the whole first answer, however it is split
            chunk = connection.recv(65536)
            assert chunk, answer
            answer += chunk
        connection.sendall(b"GET /api/v1/health HTTP/1.1\r\n")  # a second head, dripping
        assert _closed_by_the_server(connection)
    finally:
        server.stop()


def test_connections_past_the_limit_are_closed_as_they_open(served: tuple[Registry, dict[str, str]]) -> None:
    class Few(GuardedH11):
        max_connections = 5

    server = _Served(served[0], Few)
    try:
        idle = [server.connect() for _ in range(5)]
        wait_for(lambda: len(server.server.server_state.connections) == 5, "five connections open")
        extra = server.connect()
        assert _closed_by_the_server(extra)
        for connection in idle:
            connection.close()
        wait_for(lambda: not server.server.server_state.connections, "the idle connections closing")
        assert b'"status":"ok"' in server.health()
    finally:
        server.stop()


# --- the log ---------------------------------------------------------------------------------------------------


def test_a_repeated_message_is_logged_a_few_times_a_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("promptlane.test.flood")
    flood = RepeatedLogFilter(burst=3, window=60, clock=lambda: now[0])
    logger.addFilter(flood)
    try:
        with caplog.at_level(logging.WARNING, logger="promptlane.test.flood"):
            for _ in range(10_000):
                logger.warning("Invalid HTTP request received from %s", "10.0.0.1")
            logger.warning("another message")
            now[0] = 61.0
            logger.warning("Invalid HTTP request received from %s", "10.0.0.2")
    finally:
        logger.removeFilter(flood)

    serve_config(None, host="127.0.0.1", port=1, log_level="warning")
    loggers = ("uvicorn.error", "uvicorn.access", "promptlane.server")
    filtered = {
        name for name in loggers if any(isinstance(f, RepeatedLogFilter) for f in logging.getLogger(name).filters)
    }
    assert filtered == {"uvicorn.error", "promptlane.server"}  # the access log keeps every request
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        *["Invalid HTTP request received from 10.0.0.1"] * 3,
        "another message",
        "Invalid HTTP request received from 10.0.0.2 (9997 more like this in the last 60 s were not logged)",
    ]


# --- template work: its own few threads -----------------------------------------------------------------------


def test_template_work_runs_on_a_few_threads_of_its_own() -> None:
    # Ten renders at once: two run, the others wait without a thread, and other requests' threads stay free.
    work = TemplateWork(workers=2)
    inside, most, release = [0], [0], threading.Event()
    lock = threading.Lock()

    def render() -> str:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(PATIENCE)
        with lock:
            inside[0] -= 1
        return "done"

    async def scenario() -> list[str]:
        import anyio.to_thread

        renders = [asyncio.ensure_future(work.run(render)) for _ in range(10)]
        while inside[0] < 2:
            await asyncio.sleep(0.01)
        # The pool every other request uses still has threads while the template workers are busy.
        assert await anyio.to_thread.run_sync(lambda: "free") == "free"
        release.set()
        return list(await asyncio.gather(*renders))

    assert asyncio.run(asyncio.wait_for(scenario(), PATIENCE)) == ["done"] * 10
    assert most[0] == 2


def test_a_push_compiles_on_the_template_workers(served: tuple[Registry, dict[str, str]]) -> None:
    client = _client(served)
    work = client.app.state.promptlane.work  # type: ignore[attr-defined]
    threads: list[str] = []
    original = work.run

    async def watched(call: Any) -> Any:
        threads.append("template worker")
        return await original(call)

    work.run = watched
    assert client.post(PUSH, json={"spec": {"template": "Hi {{ name }}"}}).status_code == 201
    assert threads == ["template worker"]


def test_the_connection_cap_stays_under_the_open_file_limit() -> None:
    # With the common soft limit of 1024 open files, 2048 connections would run out of descriptors first.
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from promptlane.server.limits import serve_config\n"
        "print(serve_config(None, host='127.0.0.1', port=1, log_level='warning').http.max_connections)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE, check=True)
    assert answer.stdout.strip() == "448"
