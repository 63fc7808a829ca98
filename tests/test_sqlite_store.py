"""The local SQLite store's own writes (pushes, runs, their cases) store exactly what the SQL store stores, row
for row, and its reads of runs answer what the SQL store answers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptlane.config import Settings
from promptlane.errors import NotFoundError, RegistryError, RegistryUnavailableError
from promptlane.registry import Registry, sql, sql_run_pages, sql_runs, sqlite_store
from promptlane.registry.runs import (
    LEASE_EXPIRED,
    CaseError,
    CaseResult,
    EvaluationResult,
    RunRecord,
    ScenarioFileRef,
    ScenarioStats,
    ToolCallRecord,
    case_inserts,
)
from promptlane.registry.sql import SQLStore
from promptlane.registry.sqlite_store import SQLiteStore, open_sqlite_store
from promptlane.spec import content_hash

TABLES = ["pl_prompts", "pl_versions", "pl_runs", "pl_run_cases", "pl_labels", "pl_label_events"]
NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)


def _spec(text: str) -> dict[str, Any]:
    return {"template": text, "variables": {}}


def _push(store: Any, name: str, text: str, **kwargs: Any) -> Any:
    spec = _spec(text)
    return store.push_version(name, spec, content_hash(spec), message=kwargs.get("message"), author=kwargs.get("by"))


def _case(number: int, *, output: Any = "ok", status: str = "passed") -> CaseResult:
    failed = status != "passed"
    return CaseResult(
        scenario="greet",
        case=f"greet[row-{number}]",
        file="evals/rows.jsonl",
        line=number,
        row=number,
        status=status,  # type: ignore[arg-type]
        variables={"customer": f"Zoë {number}", "nested": {"list": [1, 2.5, None, True]}},
        messages=[{"role": "user", "content": "Hello\u2028there\x00"}],
        output=output,
        tool_calls=[ToolCallRecord(turn=1, id="t1", name="lookup", args={"id": "1"}, result={"ok": 1})],
        evaluations=[EvaluationResult(name="contains", passed=not failed, score=0.5, reason="why ]]> not")],
        turns=2,
        latency_ms=12.5,
        input_tokens=10,
        output_tokens=3,
        cost_usd=0.0001,
        error=CaseError(type="TimeoutError", message="slow") if status == "error" else None,
    )


def _record(run_id: str, version: int) -> RunRecord:
    return RunRecord(
        id=run_id,
        prompt="support/reply",
        version=version,
        label="latest",
        model="python:evals.models:agent",
        started_at=NOW,
        scenario_files=[ScenarioFileRef(path="evals/reply.yaml", sha256="a" * 64)],
        scenarios=[ScenarioStats(name="greet", file="evals/reply.yaml", skipped=3)],
        settings={"concurrency": 16, "cache": "off", "max_cost": None},
        created_by="ana",
    )


def _writes(store: Any) -> list[Any]:
    """The writes `promptlane eval` and `push` make, and a few they can meet; what each returned."""
    answers: list[Any] = [
        _push(store, "support/reply", "one", message="first", by="ana"),
        _push(store, "support/reply", "one", message="again", by="bo"),  # the same content: the first version
        _push(store, "support/reply", "two ünïcode \u202e"),
        store.atomic(lambda: [_push(store, "shared/tone", "Be warm."), _push(store, "support/reply", "three")]),
    ]
    record = _record("a" * 32, 2)
    store.create_run(record)
    store.add_cases(record.id, [_case(1), _case(2, output={"x": [1, "]]>"]}, status="failed")])
    store.add_cases(record.id, [])
    store.heartbeat_run(record.id)
    store.add_cases(record.id, [_case(3, output=None, status="error")])
    record.scenarios[0].count("passed")
    record.status, record.reason, record.finished_at = "failed", "below threshold", NOW + timedelta(seconds=1)
    record.cost_usd, record.trace_id = 0.0003, "f" * 32
    store.update_run(record)
    store.heartbeat_run(record.id)  # a finished run stays as it is
    # A run a reader took for dead: its heartbeat takes it back.
    dead = _record("b" * 32, 1)
    store.create_run(dead)
    dead.status, dead.reason, dead.finished_at = "interrupted", LEASE_EXPIRED, NOW
    store.update_run(dead)
    store.heartbeat_run(dead.id)
    return answers


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in TABLES}


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both stores read the same clock."""
    for module, name in ((sql, "now"), (sql_runs, "now"), (sqlite_store, "_now")):
        monkeypatch.setattr(module, name, lambda: NOW)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SQLStore, SQLiteStore, Path, Path]]:
    """A SQL store and a local store, each on a registry of its own (both made by the SQL store)."""
    theirs, ours = tmp_path / "sql.db", tmp_path / "local.db"
    SQLStore(f"sqlite:///{ours}").close()
    store = SQLStore(f"sqlite:///{theirs}")
    local = open_sqlite_store(f"sqlite:///{ours}")
    assert isinstance(local, SQLiteStore)
    yield store, local, theirs, ours
    local.close()
    store.close()


def test_writes_store_what_the_sql_store_stores(pair: tuple[SQLStore, SQLiteStore, Path, Path], frozen: None) -> None:
    store, local, theirs, ours = pair
    assert _writes(local) == _writes(store)
    assert local._full is None  # all of it through sqlite3
    assert _rows(ours) == _rows(theirs)
    stamp = _rows(ours)["pl_runs"][0][7]
    assert stamp == "2026-03-04 05:06:07.890123"  # SQLAlchemy's format: what every reader orders and parses


def test_reads_of_runs_answer_as_the_sql_stores(
    pair: tuple[SQLStore, SQLiteStore, Path, Path], frozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, local, *_ = pair
    for module in (sql_runs, sql_run_pages, sqlite_store):
        monkeypatch.setattr(module, "_PAGE", 2)  # pages end inside the run
    _writes(store)
    _writes(local)
    run_id = "a" * 32
    assert list(local.run_cases(run_id)) == list(store.run_cases(run_id))
    for statuses in (["failed", "error"], ["passed"], ["nothing"]):
        assert list(local.run_cases(run_id, statuses=statuses)) == list(store.run_cases(run_id, statuses=statuses))
    assert list(local.case_texts(run_id)) == list(store.case_texts(run_id))
    assert [CaseResult.from_json(json.loads(text)) for text in local.case_texts(run_id)] == list(
        store.run_cases(run_id)
    )
    assert list(local.case_texts("no-such-run")) == []
    assert local.get_run(run_id) == store.get_run(run_id)  # through the SQL store, on the same rows


def test_missing_things_are_the_same_errors(pair: tuple[SQLStore, SQLiteStore, Path, Path]) -> None:
    store, local, *_ = pair
    calls: list[Callable[[Any], Any]] = [
        lambda s: s.create_run(_record("c" * 32, 1)),  # no prompt support/reply
        lambda s: s.heartbeat_run("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as expected:
            call(store)
        with pytest.raises(NotFoundError) as actual:
            call(local)
        assert str(actual.value) == str(expected.value)


def test_a_batch_that_fails_stores_nothing(pair: tuple[SQLStore, SQLiteStore, Path, Path]) -> None:
    _, local, _, ours = pair

    def batch() -> None:
        _push(local, "a", "one")
        assert local.latest_number("a") == 1  # reads inside the batch see what it wrote
        local.atomic(lambda: _push(local, "b", "nested"))  # a nested batch is part of it
        raise ValueError("a bad file")

    with pytest.raises(ValueError, match="a bad file"):
        local.atomic(batch)
    assert _rows(ours)["pl_versions"] == []
    with pytest.raises(NotFoundError):
        local.latest_number("a")
    assert _push(local, "a", "one")[0].number == 1


def test_only_its_own_methods_may_join_its_transaction(pair: tuple[SQLStore, SQLiteStore, Path, Path]) -> None:
    """A SQL store write inside it would wait for the lock the transaction holds: refused at once instead."""
    _, local, _, ours = pair
    _push(local, "a", "one")

    def batch() -> None:
        local.move_label("a", "production", {1: 100}, kind="move", actor=None, reason=None, gate=None)

    with pytest.raises(RuntimeError, match="move_label cannot be part of a transaction"):
        local.atomic(batch)
    local.move_label("a", "production", {1: 100}, kind="move", actor=None, reason=None, gate=None)  # outside: fine
    assert len(_rows(ours)["pl_labels"]) == 1


def test_a_locked_file_is_an_outage_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    SQLStore(f"sqlite:///{path}").close()
    local = open_sqlite_store(f"sqlite:///{path}", busy_timeout=0.1)
    assert local is not None
    _push(local, "a", "one")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryUnavailableError, match=r"registry sqlite:///\S+ is unavailable: .*locked"):
            _push(local, "a", "two")
        with pytest.raises(RegistryUnavailableError, match="locked"):
            local.add_cases("x" * 32, [_case(1)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _push(local, "a", "two")[0].number == 2
    assert [v.spec["template"] for v in local.list_versions("a")] == ["one", "two"]
    local.close()


def test_a_constraint_that_refuses_a_version_names_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    SQLStore(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER no_x BEFORE INSERT ON pl_versions WHEN NEW.message = 'x' "
            "BEGIN SELECT RAISE(ABORT, 'no x here'); END"
        )
    local = open_sqlite_store(f"sqlite:///{path}")
    assert local is not None
    with pytest.raises(RegistryError, match="could not store a version of 'a': no x here"):
        _push(local, "a", "one", message="x")
    local.close()


def test_a_batch_that_breaks_a_rule_is_tried_once_and_says_why(pair: tuple[SQLStore, SQLiteStore, Path, Path]) -> None:
    # A unique constraint that is not a lost race for a version number (a run id stored twice) was retried ten
    # times and reported as "too much contention, try again".
    for store in pair[:2]:
        _push(store, "support/reply", "one")
        store.create_run(_record("e" * 32, 1))
        tries = []

        def batch(store: Any = store, tries: list[int] = tries) -> None:
            tries.append(1)
            _push(store, "support/reply", "two")
            store.create_run(_record("e" * 32, 1))

        with pytest.raises(
            RegistryError, match=r"^could not store the batch: UNIQUE constraint failed: pl_runs\.id"
        ) as info:
            store.atomic(batch)
        assert not isinstance(info.value, RegistryUnavailableError)
        assert len(tries) == 1
        assert [v.number for v in store.list_versions("support/reply")] == [1]


def test_cases_are_written_from_many_threads_in_order_per_batch(pair: tuple[SQLStore, SQLiteStore, Path, Path]) -> None:
    _, local, *_ = pair
    _push(local, "support/reply", "one")
    local.create_run(_record("d" * 32, 1))

    def write(worker: int) -> None:
        for batch in range(5):
            local.add_cases("d" * 32, [_case(worker * 100 + batch * 10 + n) for n in range(3)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rows = [case.row for case in local.run_cases("d" * 32)]
    assert sorted(rows) == sorted(w * 100 + b * 10 + n for w in range(4) for b in range(5) for n in range(3))
    for start in range(0, len(rows), 3):  # a batch is one transaction: its cases stay together
        assert rows[start + 1] == rows[start] + 1 and rows[start + 2] == rows[start] + 2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    output=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
        max_leaves=8,
    ),
)
def test_any_content_is_stored_alike(
    tmp_path_factory: pytest.TempPathFactory, frozen: None, text: str, output: Any
) -> None:
    folder = tmp_path_factory.mktemp("any")
    theirs, ours = folder / "sql.db", folder / "local.db"
    SQLStore(f"sqlite:///{ours}").close()
    store, local = SQLStore(f"sqlite:///{theirs}"), open_sqlite_store(f"sqlite:///{ours}")
    assert local is not None
    try:
        for target in (store, local):
            _push(target, "support/reply", text, message=text, by=text)
            target.create_run(_record("e" * 32, 1))
            target.add_cases("e" * 32, [_case(1, output=output)])
        assert _rows(ours) == _rows(theirs)
        assert list(local.run_cases("e" * 32)) == list(store.run_cases("e" * 32))
    finally:
        local.close()
        store.close()


def _pusher(url: str, worker: int, barrier: Any, count: int) -> list[int]:
    """Half the workers push through the SQL store, half through the local store: one lock for both. Opened after
    the barrier, so a new registry is made by whichever comes first; as the Registry opens a local file: the
    standard-library store, or the SQL store when it says so (the file is there but another process has not
    committed the schema yet)."""
    barrier.wait(timeout=60)
    store: Any = SQLStore(url) if worker % 2 else (open_sqlite_store(url) or SQLStore(url))
    numbers = [_push(store, "shared/prompt", f"worker {worker} spec {i}")[0].number for i in range(count)]
    store.close()
    return numbers


def push_at_once(url: str, workers: int, per_worker: int) -> list[int]:
    """The version numbers ``workers`` processes got pushing ``per_worker`` specs each to ``url`` at once."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            pending = pool.starmap_async(_pusher, [(url, w, barrier, per_worker) for w in range(workers)])
            results = pending.get(timeout=120)  # a bound against a hang
    return sorted(n for numbers in results for n in numbers)


@pytest.mark.slow
@pytest.mark.serial  # eight processes at once: a load of their own, run apart from the parallel tests
def test_eight_processes_pushing_through_both_stores_get_unique_gap_free_numbers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    SQLStore(url).close()
    assert push_at_once(url, 8, 5) == list(range(1, 8 * 5 + 1))


def test_the_registry_opens_an_existing_current_file_with_it(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    SQLStore(f"sqlite:///{path}").close()
    with Registry(settings=Settings(root=tmp_path, registry=f"sqlite:///{path}")) as registry:
        assert isinstance(registry.store, SQLiteStore)


def test_its_writes_inside_a_transaction_of_the_sql_store_are_part_of_it(tmp_path: Path) -> None:
    """``locked`` (around a label move) is the SQL store's: a write of the local store inside it neither waits
    for the lock it holds nor escapes its rollback."""
    path = tmp_path / "registry.db"
    SQLStore(f"sqlite:///{path}").close()
    local = open_sqlite_store(f"sqlite:///{path}", busy_timeout=0.1)
    assert local is not None
    _push(local, "a", "one")

    def work() -> None:
        assert _push(local, "a", "two")[0].number == 2
        local.atomic(lambda: _push(local, "a", "three"))
        raise ValueError("the gate said no")

    with pytest.raises(ValueError, match="the gate said no"):
        local.locked("a", work)
    assert [version.number for version in local.list_versions("a")] == [1]
    local.locked("a", lambda: _push(local, "a", "two"))
    assert [version.number for version in local.list_versions("a")] == [1, 2]
    local.close()


def test_a_batch_larger_than_one_statement_is_stored_whole_and_in_order(
    pair: tuple[SQLStore, SQLiteStore, Path, Path], frozen: None
) -> None:
    """A batch goes in as a few multi-row statements: every case of it, in its order, as the SQL store does."""
    store, local, theirs, ours = pair
    cases = [_case(n, status="failed" if n % 7 == 0 else "passed") for n in range(1, 2 * 190 + 2)]
    for target in (store, local):
        _push(target, "support/reply", "one")
        _push(target, "support/reply", "two")
        target.create_run(_record("c" * 32, 2))
        target.add_cases("c" * 32, cases)
        target.add_cases("c" * 32, cases[:3])
    assert _rows(ours) == _rows(theirs)
    stored = [case.case for case in local.run_cases("c" * 32)]
    assert stored == [case.case for case in cases + cases[:3]]
    assert [case.case for case in local.run_cases("c" * 32, statuses=["failed"])] == [
        case.case for case in cases if case.status == "failed"
    ]


def test_case_statements_stay_within_the_parameter_limit() -> None:
    cases = [_case(n) for n in range(1, 1000)]
    statements = list(case_inserts("pl_run_cases", "?", "r", cases))
    assert len(statements) == 6
    assert all(len(parameters) <= 999 for _, parameters in statements)
    assert [parameters[2] for _, parameters in statements] == [f"greet[row-{n}]" for n in (1, 191, 381, 571, 761, 951)]
