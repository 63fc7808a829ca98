"""The SQL store on SQLite and PostgreSQL: numbering, dedupe, labels, audit log, concurrency, failures."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from dirty_equals import IsDatetime

from _live import in_forked_child
from promptlane.errors import ConfigError, LabelError, NotFoundError, RegistryUnavailableError
from promptlane.registry.sql import SQLStore
from promptlane.spec import content_hash


def _spec(text: str) -> dict[str, Any]:
    return {"template": text, "variables": {}}


def _push(store: SQLStore, name: str, text: str, **kwargs: Any) -> Any:
    spec = _spec(text)
    return store.push_version(name, spec, content_hash(spec), message=kwargs.get("message"), author="ana")


@pytest.fixture
def store(store_url: str) -> Any:
    store = SQLStore(store_url)
    yield store
    store.close()


def test_versions_are_numbered_without_gaps_and_deduplicated(store: SQLStore) -> None:
    assert [_push(store, "a", t)[0].number for t in ("one", "two", "three")] == [1, 2, 3]
    again, created = _push(store, "a", "two")
    assert (again.number, created) == (2, False)
    assert _push(store, "b", "one")[0].number == 1  # numbering is per prompt
    assert store.latest_number("a") == 3
    assert [v.number for v in store.list_versions("a")] == [1, 2, 3]


def test_a_version_keeps_what_was_pushed(store: SQLStore) -> None:
    _push(store, "a", "one", message="first")
    version = store.get_version("a", 1)
    assert version.spec == _spec("one")
    assert (version.message, version.author, version.created_at) == ("first", "ana", IsDatetime())
    assert version.content_hash == content_hash(_spec("one"))
    _push(store, "a", "two")
    assert store.get_version("a", 1).spec == _spec("one")


def test_missing_things_are_not_found(store: SQLStore) -> None:
    _push(store, "a", "one")
    with pytest.raises(NotFoundError, match="no prompt named 'nope'"):
        store.get_version("nope", 1)
    with pytest.raises(NotFoundError, match="'a' has no version 7"):
        store.get_version("a", 7)
    with pytest.raises(NotFoundError, match="no label 'staging'"):
        store.get_label("a", "staging")
    with pytest.raises(NotFoundError, match="has no version 9"):
        store.move_label("a", "staging", {9: 100}, kind="move", actor=None, reason=None, gate=None)


def test_labels_and_their_audit_log(store: SQLStore) -> None:
    for text in ("one", "two", "three"):
        _push(store, "a", text)
    store.move_label("a", "production", {1: 100}, kind="move", actor="ana", reason="launch", gate="ungated")
    store.move_label("a", "production", {1: 90, 2: 10}, kind="rollout", actor="bo", reason=None, gate="ungated")
    store.move_label("a", "staging", {3: 100}, kind="move", actor="bo", reason=None, gate=None)
    assert store.get_label("a", "production").target == {1: 90, 2: 10}
    assert [(s.label, s.target) for s in store.list_labels("a")] == [
        ("production", {1: 90, 2: 10}),
        ("staging", {3: 100}),
    ]
    events = store.label_events("a", "production")
    assert [(e.kind, e.from_target, e.to_target, e.actor, e.reason, e.gate) for e in events] == [
        ("move", None, {1: 100}, "ana", "launch", "ungated"),
        ("rollout", {1: 100}, {1: 90, 2: 10}, "bo", None, "ungated"),
    ]
    assert len(store.label_events("a")) == 3
    summary = store.list_prompts()[0]
    assert (summary.name, summary.latest, summary.labels) == (
        "a",
        3,
        {"production": {1: 90, 2: 10}, "staging": {3: 100}},
    )


def test_rollback_walks_back_through_history(store: SQLStore) -> None:
    for text in ("one", "two", "three"):
        _push(store, "a", text)
    for version in (1, 2, 3):
        store.move_label("a", "production", {version: 100}, kind="move", actor=None, reason=None, gate=None)
    first = store.rollback_label("a", "production", actor="ana", reason="bad output", gate=None)
    assert (first.kind, first.from_target, first.to_target, first.reason) == (
        "rollback",
        {3: 100},
        {2: 100},
        "bad output",
    )
    assert store.rollback_label("a", "production", actor=None, reason=None, gate=None).to_target == {1: 100}
    with pytest.raises(LabelError, match="nothing to roll back to"):
        store.rollback_label("a", "production", actor=None, reason=None, gate=None)
    assert store.get_label("a", "production").target == {1: 100}
    # A new move after rollbacks can itself be rolled back.
    store.move_label("a", "production", {3: 100}, kind="move", actor=None, reason=None, gate=None)
    assert store.rollback_label("a", "production", actor=None, reason=None, gate=None).to_target == {1: 100}


def test_latest_is_reserved(store: SQLStore) -> None:
    _push(store, "a", "one")
    with pytest.raises(LabelError, match="reserved"):
        store.move_label("a", "latest", {1: 100}, kind="move", actor=None, reason=None, gate=None)


def _pusher(url: str, worker: int, barrier: Any, count: int) -> list[int]:
    store = SQLStore(url)
    barrier.wait(timeout=60)
    numbers = [_push(store, "shared/prompt", f"worker {worker} spec {i}")[0].number for i in range(count)]
    store.close()
    return numbers


@pytest.mark.slow
@pytest.mark.serial  # eight processes at once: a load of their own, run apart from the parallel tests
def test_eight_processes_pushing_at_once_get_unique_gap_free_numbers(store_url: str) -> None:
    """Eight processes open a new (unmigrated) registry and push different specs of one prompt at once."""
    ctx = multiprocessing.get_context("spawn")
    workers, per_worker = 8, 5
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            pending = pool.starmap_async(_pusher, [(store_url, w, barrier, per_worker) for w in range(workers)])
            results = pending.get(timeout=120)  # a bound against a hang (a few seconds on a busy machine)
    numbers = sorted(n for numbers in results for n in numbers)
    assert numbers == list(range(1, workers * per_worker + 1))
    store = SQLStore(store_url)
    stored = {v.spec["template"] for v in store.list_versions("shared/prompt")}
    store.close()
    assert stored == {f"worker {w} spec {i}" for w in range(workers) for i in range(per_worker)}


def test_a_locked_sqlite_file_is_reported_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = SQLStore(url, busy_timeout=0.2)
    _push(store, "a", "one")
    holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryUnavailableError, match="database is locked"):
            _push(store, "a", "two")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _push(store, "a", "two")[0].number == 2
    assert store.get_version("a", 1).spec == _spec("one")
    store.close()


def test_an_unreachable_postgres_is_unavailable_and_hides_the_password() -> None:
    with pytest.raises(RegistryUnavailableError) as info:
        SQLStore("postgresql://user:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_an_uncreatable_sqlite_folder_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RegistryUnavailableError, match="cannot create the registry folder"):
        SQLStore(f"sqlite:///{blocker / 'sub' / 'registry.db'}")


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="unsupported registry URL"):
        SQLStore("mysql://root@localhost/db")


def test_the_local_registry_folder_ignores_itself(tmp_path: Path) -> None:
    SQLStore(f"sqlite:///{tmp_path / '.promptlane' / 'registry.db'}").close()
    assert (tmp_path / ".promptlane" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_batch_of_cases_larger_than_one_statement_is_stored_in_order(store: SQLStore) -> None:
    from test_sqlite_store import _case, _record

    _push(store, "support/reply", "one")
    _push(store, "support/reply", "two")
    record = _record("d" * 32, 2)
    store.create_run(record)
    cases = [_case(n) for n in range(1, 2 * 190 + 2)]
    store.add_cases(record.id, cases)
    assert [case.to_json() for case in store.run_cases(record.id)] == [case.to_json() for case in cases]


def _connection_identity(store: SQLStore) -> str:
    """Which database connection the store's pool hands out: the server process of a PostgreSQL session, the
    sqlite3 connection object (a forked child's copy of a parent's object keeps its address)."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return str(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        return str(id(conn.connection.dbapi_connection))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_use_its_parents_connections(store: SQLStore) -> None:
    # An app that read the registry before forking its workers (gunicorn --preload, a multiprocessing pool): on
    # one PostgreSQL connection, parent and child read each other's answers, and a SQLite connection must not
    # cross fork() at all (tests/test_sqlite_fork.py).
    _push(store, "a", "one")
    parents = _connection_identity(store)
    read, write = os.pipe()

    def child() -> None:
        os.write(write, _connection_identity(store).encode())
        assert [p.name for p in store.list_prompts()] == ["a"]
        _push(store, "a", "two from the child")

    status = in_forked_child(child)
    os.close(write)
    with os.fdopen(read) as pipe:
        childs = pipe.read()
    assert status == 0
    assert childs and childs != parents
    # The parent goes on with its own connection (on SQLite, a new one: its idle ones were closed before the
    # fork), which the child neither used nor closed.
    if store.dialect == "postgresql":
        assert _connection_identity(store) == parents
    assert [v.number for v in store.list_versions("a")] == [1, 2]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_keeps_its_copy_of_an_in_memory_registry() -> None:
    # An in-memory database is the process's own, and a child's copy is the child's: it must not be swapped for
    # a new, empty one.
    store = SQLStore("sqlite:///:memory:")
    _push(store, "a", "one")

    def child() -> None:
        assert [p.name for p in store.list_prompts()] == ["a"]

    assert in_forked_child(child) == 0
    store.close()
