"""A SQLite registry across fork() (gunicorn --preload, a multiprocessing pool): a worker forked from a process
that had the registry open keeps every write, and one forked while the parent was using the file refuses it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _live import PATIENCE, in_forked_child
from promptlane.config import Settings
from promptlane.errors import RegistryUnavailableError
from promptlane.registry import Registry
from promptlane.registry.sql import SQLStore
from promptlane.registry.sqlite_store import open_sqlite_store
from promptlane.spec import content_hash

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _push(store: Any, text: str) -> int:
    spec = {"template": text, "variables": {}}
    return store.push_version("a", spec, content_hash(spec), message=None, author=None)[0].number


def _stdlib(url: str) -> Any:
    SQLStore(url).close()  # made and migrated, so that the standard-library store takes it
    store = open_sqlite_store(url)
    assert store is not None
    return store


@pytest.fixture(params=["sqlite3", "sqlalchemy"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens the registry file through one of the two SQLite stores: the standard library's (``eval``, ``push``,
    reads) or the SQL store's (everything else)."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    opened: list[Any] = []

    def open_() -> Any:
        opened.append(_stdlib(url) if request.param == "sqlite3" else SQLStore(url))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def _signal(fd: int) -> None:
    os.write(fd, b".")


def _wait(fd: int) -> None:
    assert os.read(fd, 1) == b".", "the other process ended"


def test_a_worker_forked_after_the_parent_used_the_registry_keeps_its_writes(open_store: Callable[[], Any]) -> None:
    # gunicorn --preload: the master reads the registry, forks a worker, and closes its registry while the worker
    # goes on pushing. SQLite keeps its locks per process: the worker inherited the master's record of the locks
    # without the locks, wrote without taking them, and every push after the master's close was lost.
    store = open_store()
    assert _push(store, "from the parent") == 1
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()

    def worker() -> None:
        assert _push(store, "child 1") == 2
        _signal(from_child)
        _wait(to_child)  # the parent has closed its connections
        for n in range(2, 6):
            assert _push(store, f"child {n}") == n + 1

    def parent() -> None:
        _wait(to_parent)
        store.close()
        _signal(from_parent)

    closer = threading.Thread(target=parent, daemon=True)
    closer.start()
    assert in_forked_child(worker) == 0
    closer.join(PATIENCE)
    fresh = open_store()
    assert [v.number for v in fresh.list_versions("a")] == [1, 2, 3, 4, 5, 6]
    assert fresh.get_version("a", 6).spec["template"] == "child 5"


def test_parent_and_worker_push_in_turns(open_store: Callable[[], Any]) -> None:
    store = open_store()
    _push(store, "parent 0")
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()

    def worker() -> None:
        for n in range(3):
            _wait(to_child)
            _push(store, f"child {n}")
            _signal(from_child)

    def parent() -> None:
        for n in range(3):
            _signal(from_parent)
            _wait(to_parent)
            _push(store, f"parent {n + 1}")

    turns = threading.Thread(target=parent, daemon=True)
    turns.start()
    assert in_forked_child(worker) == 0
    turns.join(PATIENCE)
    store.close()
    texts = [v.spec["template"] for v in open_store().list_versions("a")]
    assert texts == ["parent 0", "child 0", "parent 1", "child 1", "parent 2", "child 2", "parent 3"]


def test_a_worker_forked_while_the_parent_was_using_the_file_refuses_it(
    open_store: Callable[[], Any], tmp_path: Path
) -> None:
    # Another thread of the parent is inside a write when the fork happens: its connection cannot be closed, and a
    # connection the child opened would write without the locks. The child is told so instead of losing writes.
    store = open_store()
    _push(store, "one")
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        def work() -> None:
            _push(store, "two")
            inside.set()
            leave.wait(PATIENCE)

        store.atomic(work)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert inside.wait(PATIENCE)
    read, write = os.pipe()

    attempts: dict[str, Callable[[], object]] = {
        "read": lambda: store.list_versions("a"),
        "push": lambda: _push(store, "three"),
        "new store": lambda: open_store().list_versions("a"),
    }

    def worker() -> None:
        for what, attempt in attempts.items():
            try:
                attempt()
            except RegistryUnavailableError as exc:
                os.write(write, f"{what}: {exc}\n".encode())
        # An app's get with a fallback goes on serving the fallback.
        registry = Registry(f"sqlite:///{store.sqlite_file}", settings=Settings(root=tmp_path))
        assert registry.get("a", fallback="Hello").source == "fallback"

    try:
        status = in_forked_child(worker)
    finally:
        leave.set()
        holder.join(PATIENCE)
    os.close(write)
    with os.fdopen(read) as pipe:
        refusals = pipe.read().splitlines()
    assert status == 0
    assert [refusal.split(":")[0] for refusal in refusals] == list(attempts)
    for refusal in refusals:
        assert "registry.db is unavailable in this process: it was forked while its parent was using" in refusal
        assert "open the Registry in each worker" in refusal
    # The parent is untouched: its write landed, and it goes on.
    assert [v.number for v in store.list_versions("a")] == [1, 2]
    assert _push(store, "three") == 3
