"""A SQLite registry across fork() (gunicorn --preload, a multiprocessing pool): a worker forked from a process
that had the registry open keeps every write, and one forked while the parent was using the file refuses it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _live import PATIENCE, finishes, in_forked_child
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


def test_a_fork_inside_a_transaction_leaves_it_to_the_parent(open_store: Callable[[], Any]) -> None:
    # The child of a fork inside atomic() holds the parent's connection, mid-transaction: it must neither write
    # through it nor commit it (a child's push "succeeded" and vanished; a child that returned committed the
    # parent's transaction).
    store = open_store()
    _push(store, "seed")
    read, write = os.pipe()
    outcomes: list[str] = []

    def work() -> None:
        _push(store, "parent, in the batch")
        pid = os.fork()
        if pid == 0:  # the child: tries a push, then to finish the batch as the parent would
            for attempt in (lambda: _push(store, "child"), lambda: None):
                try:
                    attempt()
                    os.write(write, b"wrote\n")
                except RegistryUnavailableError as exc:
                    os.write(write, f"{exc}\n".encode())
            return
        os.waitpid(pid, 0)
        outcomes.append("parent")

    parent = os.getpid()
    try:
        store.atomic(work)
    except RegistryUnavailableError as exc:  # the child, refused at the commit
        os.write(write, f"commit: {exc}\n".encode())
        os._exit(0)
    if os.getpid() != parent:  # a child that committed: never back into pytest
        os._exit(1)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().splitlines()
    assert outcomes == ["parent"]
    assert len(child) == 3, child
    assert "forked inside a transaction of its parent (atomic())" in child[0]
    assert child[1] == "wrote"  # a step that touches no store
    assert child[2].startswith("commit: ") and "forked inside a transaction" in child[2]
    assert [v.spec["template"] for v in store.list_versions("a")] == ["seed", "parent, in the batch"]


def test_two_threads_forking_at_once_take_turns(open_store: Callable[[], Any]) -> None:
    # Each fork holds the stores' locks from before it to after it: two at once deadlocked the parent.
    store = open_store()
    _push(store, "one")

    def forker() -> None:
        for _ in range(20):
            assert in_forked_child(lambda: None) == 0

    def both() -> None:
        threads = [threading.Thread(target=forker, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    finishes(both, "two threads forking 20 times each")
    assert [v.number for v in store.list_versions("a")] == [1]


def test_a_fork_waits_for_a_thread_opening_the_sql_store(tmp_path: Path) -> None:
    # The standard-library store opens the SQL store on first need, holding a lock: a child forked meanwhile
    # inherited it taken, and hung on its first label move, token or run listing.
    store = _stdlib(f"sqlite:///{tmp_path / 'registry.db'}")
    _push(store, "one")
    held = threading.Event()

    def opening() -> None:
        with store._store_lock:
            held.set()
            time.sleep(0.2)  # as long as opening the SQL store takes (an import, a schema check)

    thread = threading.Thread(target=opening)
    thread.start()
    assert held.wait(PATIENCE)
    try:
        assert in_forked_child(lambda: store.list_tokens()) == 0
    finally:
        thread.join(PATIENCE)
        store.close()
