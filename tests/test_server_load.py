"""The registry server under load and faults: many clients at once, a server that goes away and comes back,
a SQLite file another writer keeps locked.

Nothing here measures time (throughput and latency figures are bench/server.py's): the bounds on correctness
are strict (no error, no lost version, no gap, no ``get`` that asks the network for a prompt it has), and every
wait is for an event, bounded only against a hang.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx2 as httpx
import pytest

from _live import PATIENCE, LiveServer, SilentServer, finishes, served_registry
from promptlane.config import Settings
from promptlane.registry import Registry
from promptlane.registry.sql import SQLStore
from promptlane.spec import content_hash

NAME = "support/greet"
RESOLVE = f"/api/v1/prompts/{NAME}/-/resolve"


def _spec(text: str) -> dict[str, Any]:
    return {"template": text, "variables": {"name": {"type": "string"}}}


def _served(root: Path, versions: int) -> tuple[Registry, dict[str, str]]:
    """A served registry with ``versions`` versions of NAME and ``production`` on version 1."""
    registry, secrets = served_registry(root, f"sqlite:///{root / 'registry.db'}")
    for number in range(1, versions + 1):
        registry.push_spec(NAME, _spec(f"v{number}: hello {{{{ name }}}}"), author="tests")
    registry.set_label(NAME, "production", 1, force=True, reason="setting up", actor="tests")
    return registry, secrets


# --- load -------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class LoadResult:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    """Responses by status."""
    answered: list[int] = field(default_factory=list)
    """Requests answered, per client."""
    errors: list[str] = field(default_factory=list)
    """Exceptions and unexpected answers."""


class _Connection:
    """One keep-alive HTTP/1.1 connection, parsed by h11 (what uvicorn and httpx parse with).

    Not httpx.AsyncClient: its connection pool slows to ~100 requests/s at 200 connections on a two-core
    machine, so the clients, not the server, would be what this measures.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.http = h11.Connection(our_role=h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def get(self, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        request = h11.Request(method="GET", target=target, headers=[("Host", self.host), *headers.items()])
        self.writer.write(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        status, answer, body = 0, {}, b""
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.http.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer = {name.decode().lower(): value.decode() for name, value in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.http.start_next_cycle()
                return status, answer, body
            else:
                raise ConnectionError(f"unexpected {event!r}")

    def close(self) -> None:
        self.writer.close()


async def _drive(port: int, token: str, *, clients: int, requests: int) -> LoadResult:
    """``clients`` concurrent clients, each on its own connection, resolving ``requests`` times. Odd clients
    revalidate with the ETag they were given (304), even ones fetch the body every time (200)."""
    result = LoadResult()
    bodies: set[bytes] = set()
    etags: set[str] = set()
    target = f"{RESOLVE}?label=production"
    connected = asyncio.Event()
    opened: list[int] = []

    async def client(revalidates: bool) -> None:
        etag: str | None = None
        connection = None
        answered = 0
        try:
            connection = await _Connection.open(port)
            # Every connection is open before the first request: all the clients are on the server at once.
            opened.append(1)
            if len(opened) == clients:
                connected.set()
            await connected.wait()
            for _ in range(requests):
                headers = {"Authorization": f"Bearer {token}"}
                if revalidates and etag:
                    headers["If-None-Match"] = etag
                status, answer, body = await connection.get(target, headers)
                answered += 1
                result.statuses[status] += 1
                if status == 200:
                    bodies.add(body)
                    etag = answer["etag"]
                    etags.add(etag)
                elif status == 304:
                    etags.add(answer["etag"])
                else:
                    result.errors.append(f"{status}: {body[:200]!r}")
                    return
        except (OSError, h11.ProtocolError, KeyError) as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
            connected.set()  # the others go on without this one
        finally:
            result.answered.append(answered)
            if connection is not None:
                connection.close()

    # A bound against a hang: a client stuck on an answer that never comes fails the test, not the suite.
    await asyncio.wait_for(asyncio.gather(*(client(i % 2 == 1) for i in range(clients))), 2 * PATIENCE)
    if len(bodies) > 1 or len(etags) > 1:
        result.errors.append(f"{len(bodies)} different bodies and {len(etags)} ETags for one unmoved label")
    return result


@pytest.mark.slow
@pytest.mark.serial  # a load test: two hundred connections on one worker, given the machine to itself
def test_two_hundred_clients_resolve_at_once_without_an_error(tmp_path: Path) -> None:
    registry, secrets = _served(tmp_path, versions=1)
    clients, requests = 200, 20
    with LiveServer(registry) as server:
        result = asyncio.run(_drive(server.port, secrets["read"], clients=clients, requests=requests))
    registry.close()

    assert result.errors == []
    # Every request of every client answered, each kind of client on its own path (odd ones revalidate: 304
    # after their first answer).
    assert result.answered == [requests] * clients
    assert result.statuses == {200: clients // 2 * requests + clients // 2, 304: clients // 2 * (requests - 1)}


# --- a server that goes away and comes back ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Call:
    """One ``get`` as an application thread saw it."""

    phase: str
    source: str | None = None
    version: int | None = None
    error: str | None = None


class Application(threading.Thread):
    """An application thread calling ``get`` in a loop, recording each call under the test's current phase."""

    def __init__(self, registry: Registry, phase: list[str]) -> None:
        super().__init__(name="application", daemon=True)
        self.registry = registry
        self.phase = phase
        self.calls: list[Call] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            phase = self.phase[0]
            try:
                prompt = self.registry.get(NAME, label="production")
            except Exception as exc:
                self.calls.append(Call(phase=phase, error=repr(exc)))
            else:
                self.calls.append(Call(phase=phase, source=prompt.source, version=prompt.version))
            time.sleep(0.002)

    def last(self) -> Call | None:
        return self.calls[-1] if self.calls else None


def _client(root: Path, url: str, token: str, *, fetch_timeout: float = 1.0) -> Registry:
    # A short ttl keeps the test quick: the refresh runs every ttl / 2, a label older than ttl is stale.
    settings = Settings(
        root=root, registry=url, token=token, cache_ttl=0.5, fetch_timeout=fetch_timeout, snapshots="snapshots"
    )
    return Registry(settings=settings)


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    """Return once ``condition()`` holds (AssertionError naming ``what`` after ``timeout``, a bound against a
    hang: everything waited for here takes well under a second on an idle machine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.01)


def _outage_calls(apps: list[Application]) -> list[Call]:
    return [call for app in apps for call in app.calls if call.phase in ("killed", "hung")]


def _serving(app: Application, version: int) -> bool:
    last = app.last()
    return last is not None and (last.version, last.source) == (version, "cache")


def _said_stale(app: Application, phase: str) -> bool:
    return any((call.phase, call.source) == (phase, "stale") for call in list(app.calls))


def test_applications_keep_serving_through_an_outage_and_see_the_moves_made_meanwhile(tmp_path: Path) -> None:
    """Four application threads call ``get`` throughout: the server is stopped (connections refused), then
    hangs (connections accepted, never answered) while the label moves, then starts again on the same port,
    and the label moves once more."""
    registry, secrets = _served(tmp_path / "server", versions=3)
    server = LiveServer(registry, cache_ttl=0.2).start()
    phase = ["up"]
    # The applications' fetch timeout outlasts the test: once their background revalidation reaches the hung
    # server it stays stuck there until the server goes away, so a get that waited on it would stop the thread.
    clients = [
        _client(tmp_path / f"app{i}", server.url, secrets["read"], fetch_timeout=10 * PATIENCE) for i in range(4)
    ]
    apps = [Application(client, phase) for client in clients]
    late: Registry | None = None
    try:
        for app in apps:
            app.start()
        _wait_until(lambda: all(_serving(app, 1) for app in apps), "every application serves version 1")
        _wait_until(lambda: any((tmp_path / "app0" / "snapshots").glob("*.json")), "a snapshot on disk")

        phase[0] = "killed"  # connections refused
        server.stop()
        # The outage outlasts the ttl, and the applications say so.
        _wait_until(lambda: all(_said_stale(app, "killed") for app in apps), "every application serving stale")
        phase[0] = "hung"  # connections accepted, never answered: a get that asked the server would wait
        with SilentServer(server.port) as silent:
            registry.set_label(NAME, "production", 2, force=True, reason="moved during the outage", actor="tests")
            # One revalidation per application, each stuck (only the four applications revalidate so far).
            _wait_until(lambda: silent.count("/snapshot?") >= len(apps), "every revalidation hanging on the server")
            answered = [len(app.calls) for app in apps]
            _wait_until(
                lambda: all(len(app.calls) >= n + 50 for app, n in zip(apps, answered, strict=True)),
                "every application answering gets while its revalidation hangs",
            )
            # An application (re)started during the outage: its first get asks the server once, gives up after
            # its 1 s fetch timeout, then serves from disk.
            late = _client(tmp_path / "app0", server.url, secrets["read"])
            first = finishes(lambda: late.get(NAME, label="production"), "the first get of a late application")
            asked = [line for line in silent.requests if "/snapshot?" not in line]
        assert (first.version, first.source) == (1, "disk")
        assert len(asked) == 1 and f"/prompts/{NAME}/-/resolve?label=production" in asked[0], asked

        phase[0] = "restarted"
        server.start()
        _wait_until(lambda: all(_serving(app, 2) for app in apps), "every application serves the move made while down")
        assert late is not None
        _wait_until(lambda: late.get(NAME, label="production").version == 2, "the late application catches up")
        assert late.get(NAME, label="production").source == "cache"

        phase[0] = "moved"
        registry.set_label(NAME, "production", 3, force=True, reason="moved after the restart", actor="tests")
        _wait_until(lambda: all(_serving(app, 3) for app in apps), "every application serves a later move")
    finally:
        for app in apps:
            app.halt.set()
            app.join(timeout=PATIENCE)
        for client in [*clients, late]:
            if client is not None:
                client.close()
        server.stop()
        registry.close()

    calls = [call for app in apps for call in app.calls]
    assert [call.error for call in calls if call.error] == []
    seen = {(call.version, call.source) for call in _outage_calls(apps)}
    assert seen <= {(1, "cache"), (1, "stale")}
    assert (1, "stale") in seen


def _resolved_version(data: dict[str, Any]) -> int:
    return int(data["version"]["number"])


def _snapshot_version(data: dict[str, Any]) -> int:
    return int(next(iter(data["prompts"][NAME]["target"])))


@pytest.mark.parametrize(
    ("path", "read_method", "version_of"),
    [(RESOLVE, "get_label", _resolved_version), ("/api/v1/snapshot", "list_prompts", _snapshot_version)],
    ids=["resolve", "snapshot"],
)
def test_an_answer_in_flight_during_a_move_does_not_keep_the_old_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, read_method: str, version_of: Any
) -> None:
    """A request that read the label just before a move through this server, and stores its answer just after
    the move cleared the cache: later requests must see the move ("moves through this process at once")."""
    registry, secrets = _served(tmp_path / "server", versions=2)
    read_before_move, moved = threading.Event(), threading.Event()
    read = getattr(registry.store, read_method)

    def read_then_wait(*args: Any) -> Any:
        state = read(*args)
        if not read_before_move.is_set():
            read_before_move.set()
            moved.wait(PATIENCE)
        return state

    monkeypatch.setattr(registry.store, read_method, read_then_wait)
    headers = {"Authorization": f"Bearer {secrets['read']}"}
    # A long cache ttl, so that what the cache keeps is what later requests get.
    with LiveServer(registry, cache_ttl=30.0) as server, ThreadPoolExecutor(1) as pool:
        url = f"{server.url}{path}"
        admin = Registry(server.url, token=secrets["admin"], settings=Settings(root=tmp_path / "admin"))
        in_flight = pool.submit(httpx.get, url, params={"label": "production"}, headers=headers)
        assert read_before_move.wait(PATIENCE)
        admin.set_label(NAME, "production", 2, force=True, reason="moved while a request was in flight")
        moved.set()
        assert version_of(in_flight.result(timeout=PATIENCE).json()) == 1  # it began before the move
        after = httpx.get(url, params={"label": "production"}, headers=headers)
        admin.close()
    registry.close()
    assert version_of(after.json()) == 2


# --- a busy SQLite file -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Pushed:
    """One push as a writer saw it."""

    number: int
    created: bool
    text: str
    finished: float
    """When the push returned (``time.monotonic()``, one clock for every process of the machine)."""


SHARED_TEXT = "every writer pushes this"


def _push_through(url: str, token: str | None, worker: int, count: int, barrier: Any) -> list[Pushed]:
    """Push the spec every writer pushes, then ``count`` of this writer's own, to a SQLite file (or through a
    server, with ``token``)."""
    registry = store = None
    if token is None:
        store = SQLStore(url)
    else:
        registry = Registry(url, token=token, settings=Settings(root=Path.cwd()))
    barrier.wait(timeout=PATIENCE)
    pushed = []
    for text in [SHARED_TEXT, *(f"worker {worker} push {i}" for i in range(count))]:
        spec = _spec(text)
        if store is not None:
            version, created = store.push_version(NAME, spec, content_hash(spec), message=None, author="tests")
        else:
            assert registry is not None
            result = registry.push_spec(NAME, spec, author="tests")
            version, created = result.version, result.created
        assert version.number is not None
        pushed.append(Pushed(number=version.number, created=created, text=text, finished=time.monotonic()))
    (store or registry).close()  # type: ignore[union-attr]
    return pushed


@pytest.mark.slow
@pytest.mark.parametrize(
    "pushers",
    # Four writer processes (and a manager) at once: a load of their own, run apart from the parallel tests.
    [pytest.param("processes", marks=pytest.mark.serial), "threads", "server"],
)
def test_pushes_wait_out_a_held_write_lock_and_lose_nothing(tmp_path: Path, pushers: str) -> None:
    """Writers push at once while another connection holds the SQLite write lock for a second."""
    database = tmp_path / "registry.db"
    url = f"sqlite:///{database}"
    registry, secrets = served_registry(tmp_path, url)  # creates the schema (and tokens for the server case)
    # The lock is held a second after the writers start: long enough for them to meet it. Nothing depends on
    # it: a writer that came later would still only finish after the release.
    workers, per_worker, hold = 4, 5, 1.0
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    released: list[float] = []

    def release_when_all_wait(barrier: Any) -> None:
        try:
            barrier.wait(timeout=PATIENCE)
            time.sleep(hold)
        finally:
            released.append(time.monotonic())  # before the release: no push can finish before this
            holder.execute("ROLLBACK")
            holder.close()

    if pushers == "processes":
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, ctx.Pool(workers) as pool:
            barrier = manager.Barrier(workers + 1)
            pending = pool.starmap_async(_push_through, [(url, None, w, per_worker, barrier) for w in range(workers)])
            release_when_all_wait(barrier)
            results = pending.get(timeout=2 * PATIENCE)
    else:
        with (
            LiveServer(registry) if pushers == "server" else nullcontext() as server,
            ThreadPoolExecutor(workers) as pool,
        ):
            target, token = (server.url, secrets["write"]) if server else (url, None)
            barrier = threading.Barrier(workers + 1)
            futures = [pool.submit(_push_through, target, token, w, per_worker, barrier) for w in range(workers)]
            release_when_all_wait(barrier)
            results = [future.result(timeout=2 * PATIENCE) for future in futures]

    pushed = [push for worker in results for push in worker]
    created = sorted((push.number, push.text) for push in pushed if push.created)
    # Every spec stored once, numbered 1..N without a gap; the spec all of them pushed, stored by one of them.
    assert [number for number, _ in created] == list(range(1, workers * per_worker + 2))
    assert {push.number for push in pushed if push.text == SHARED_TEXT} == {
        number for number, text in created if text == SHARED_TEXT
    }
    stored = {v.number: v.spec["template"] for v in registry.versions(NAME)}
    registry.close()
    assert stored == dict(created)
    # Every writer's first push began while the lock was held and returned after the release: it waited the
    # lock out rather than failing (a failure raises above) or returning without writing.
    assert all(worker[0].finished > released[0] for worker in results)
