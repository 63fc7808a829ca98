"""A run's cases are stored by a thread of their own, never on the event loop (harness/runner.py, _CaseWriter).

What the move must keep: every case is stored, in the order the cases finished, before the run is saved
finished; a cancelled run keeps every case that finished; a write that fails ends the run ``error`` with that
failure (raised to the caller too), never dropped. The store is a real SQLite registry; its failures and the
moment the run is saved are observed with SQLite triggers, so nothing of promptlane's is replaced.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptlane.config import Settings
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file, runner
from promptlane.registry import Registry

CASES = 2 * runner._FLUSH_CASES + 50  # more than two batches: some are written while cases still run
PATIENCE = 60.0  # seconds: only a hang guard

MODELS = """
import asyncio

async def uneven(messages, info):
    # Cases finish out of their planned order: some answer at once, others after a few turns of the loop.
    question = messages[-1].parts[-1].content
    for _ in range(int(question.split()[-1]) % 5):
        await asyncio.sleep(0)
    return "ok " + question
"""

PROMPT = """\
model: python:writer_models:uneven
variables:
  question: {type: string}
messages:
  - {role: system, content: "Answer briefly."}
  - {role: user, content: "{{ question }}"}
"""


@pytest.fixture
def registry(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    (project / "writer_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "writer_models", raising=False)
    importlib.invalidate_caches()
    (project / "prompts" / "ask.yaml").write_text(PROMPT)
    (project / "evals").mkdir()
    (project / "evals" / "rows.jsonl").write_text("".join(f'{{"question": "question {i}"}}\n' for i in range(CASES)))
    (project / "evals" / "ask.yaml").write_text(
        textwrap.dedent(
            """\
            prompt: ask
            scenarios:
              - name: rows
                dataset: rows.jsonl
                expect:
                  - contains: ok
            """
        )
    )
    reg = Registry(settings=Settings(root=project, registry=f"sqlite:///{project / 'registry.db'}"))
    reg.push()
    yield reg
    reg.close()


def sql(project: Path, script: str, query: str = "SELECT 1") -> list[Any]:
    """Run a script on the registry's database file, outside promptlane, then ``query``: its rows."""
    conn = sqlite3.connect(project / "registry.db")
    try:
        conn.executescript(script)
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def new_run(registry: Registry, project: Path, finished: list[str]) -> EvalRun:
    """A run of every row at concurrency 16; ``finished`` gets each case's id as it finishes."""
    return EvalRun(
        store=registry.store,
        prompt=registry.get("ask", label="latest"),
        documents=[load_scenario_file(project / "evals" / "ask.yaml")],
        options=EvalOptions(root=project, concurrency=16),
        on_case=lambda case: finished.append(case.case),
    )


def test_every_case_is_stored_in_the_order_they_finished_before_the_run_is_saved_finished(
    registry: Registry, project: Path
) -> None:
    # What the run table holds at the moment the run stops being `running`: the cases stored by then.
    sql(
        project,
        """
        CREATE TABLE at_finish (status TEXT, cases INTEGER);
        CREATE TRIGGER record_finish AFTER UPDATE OF status ON pl_runs WHEN NEW.status != 'running'
        BEGIN INSERT INTO at_finish SELECT NEW.status, count(*) FROM pl_run_cases WHERE run_id = NEW.id; END;
        """,
    )
    finished: list[str] = []
    record = asyncio.run(new_run(registry, project, finished).run())

    assert (record.status, record.cases, record.passed) == ("passed", CASES, CASES)
    assert sql(project, "", "SELECT status, cases FROM at_finish") == [("passed", CASES)]
    stored = [case.case for case in registry.store.run_cases(record.id)]
    assert stored == finished
    assert sorted(stored) == sorted(f"rows[row-{i}]" for i in range(1, CASES + 1))


def test_a_failed_write_ends_the_run_as_an_error_naming_it(registry: Registry, project: Path) -> None:
    # The registry refuses a case once it holds five: the first batch fails part way (and is rolled back).
    sql(
        project,
        """
        CREATE TRIGGER disk_full BEFORE INSERT ON pl_run_cases WHEN (SELECT count(*) FROM pl_run_cases) >= 5
        BEGIN SELECT RAISE(ABORT, 'disk full'); END;
        """,
    )
    finished: list[str] = []
    run = new_run(registry, project, finished)

    with pytest.raises(Exception, match="disk full"):
        asyncio.run(run.run())

    stored = registry.store.get_run(run.record.id)
    assert stored.status == "error"
    assert stored.reason is not None
    assert stored.reason.startswith("saving cases failed: IntegrityError: ")
    assert "disk full" in stored.reason
    assert f"({len(finished)} finished cases not saved)" in stored.reason
    assert list(registry.store.run_cases(run.record.id)) == []


def test_a_cancelled_run_keeps_every_case_that_finished(registry: Registry, project: Path) -> None:
    stop_after = runner._FLUSH_CASES + 30  # a batch written, and more waiting

    finished: list[str] = []

    async def main() -> EvalRun:
        run = new_run(registry, project, finished)
        task = asyncio.ensure_future(run.run())

        def cancel_at_some_point(case: Any) -> None:
            finished.append(case.case)
            if len(finished) == stop_after:
                task.cancel()

        run.on_case = cancel_at_some_point
        with pytest.raises(asyncio.CancelledError):
            await task
        return run

    run = asyncio.run(main())

    stored = registry.store.get_run(run.record.id)
    assert (stored.status, stored.reason) == ("interrupted", "interrupted")
    assert [case.case for case in registry.store.run_cases(run.record.id)] == finished
    assert len(finished) >= stop_after


def test_a_write_waiting_for_the_database_does_not_hold_up_the_cases(registry: Registry, project: Path) -> None:
    # Another connection takes the database's write lock at the first case and lets go once 50 cases more than a
    # batch have finished. A batch written on the event loop would wait there for the lock, and no case would
    # finish to let go of it: then only the hang guard lets go (and the test fails).
    other = sqlite3.connect(project / "registry.db", isolation_level=None, check_same_thread=False)
    released_by: list[str] = []
    guard = threading.Lock()

    def release(by: str) -> None:
        with guard:
            if not released_by:
                released_by.append(by)
                other.execute("COMMIT")

    hang_guard = threading.Timer(PATIENCE, release, args=("the hang guard",))
    finished: list[str] = []
    run = new_run(registry, project, finished)

    def hold_the_lock_a_while(case: Any) -> None:
        finished.append(case.case)
        if len(finished) == 1:
            other.execute("BEGIN IMMEDIATE")
            hang_guard.start()
        elif len(finished) == runner._FLUSH_CASES + 50:
            release("the cases")

    run.on_case = hold_the_lock_a_while
    try:
        record = asyncio.run(run.run())
    finally:
        hang_guard.cancel()
        other.close()

    assert released_by == ["the cases"]
    assert (record.status, record.cases) == ("passed", CASES)
    assert [case.case for case in registry.store.run_cases(record.id)] == finished


def test_a_writer_that_falls_behind_holds_the_workers_back(registry: Registry, project: Path) -> None:
    # Another connection holds the write lock from the first case, as a slow disk or a busy registry would; it
    # lets go once no case has finished for a second (the workers wait for the writer) or after all of them
    # (they did not). While it is held, at most the backlog and the cases in flight may finish: finished cases
    # wait in memory until they are stored, and a 100,000-row run must not hold them all.
    rows = 3 * runner._BACKLOG
    (project / "evals" / "rows.jsonl").write_text("".join(f'{{"question": "question {i}"}}\n' for i in range(rows)))
    other = sqlite3.connect(project / "registry.db", isolation_level=None, check_same_thread=False)
    finished: list[str] = []
    while_held: list[int] = []
    started = threading.Event()
    run = new_run(registry, project, finished)

    def hold_then_let_go() -> None:
        started.wait(PATIENCE)
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.0 and len(finished) < rows:
            if len(finished) != seen:
                seen, quiet_since = len(finished), time.monotonic()
            time.sleep(0.05)
        while_held.append(len(finished))
        other.execute("COMMIT")

    def take_the_lock(case: Any) -> None:
        finished.append(case.case)
        if len(finished) == 1:
            other.execute("BEGIN IMMEDIATE")
            started.set()

    run.on_case = take_the_lock
    holder = threading.Thread(target=hold_then_let_go)
    holder.start()
    try:
        record = asyncio.run(run.run())
    finally:
        holder.join(PATIENCE)
        other.close()

    assert while_held and while_held[0] <= runner._BACKLOG + 16  # concurrency 16
    assert (record.status, record.cases) == ("passed", rows)
    assert [case.case for case in registry.store.run_cases(record.id)] == finished
