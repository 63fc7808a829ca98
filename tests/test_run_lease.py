"""Runs are leases: a run whose process died reads ``interrupted`` with the cases it finished, never ``running``
with 0/0 forever.

The lease is set through its real knob (``PROMPTLANE_RUN_LEASE``, 0 here: any run not heartbeating *now* is
dead), so no test waits for a lease to run out; the heartbeat's interval is the runner's constant, set to 0
where a test needs beats without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import promptlane.harness.runner as runner
from _live import PATIENCE, LiveServer, served_registry, wait_for
from promptlane.cli import app
from promptlane.errors import ConfigError, NotFoundError
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry
from promptlane.registry.gate import check_gate
from promptlane.registry.http import HttpStore
from promptlane.registry.runs import (
    LEASE_ENV,
    LEASE_EXPIRED,
    CaseResult,
    RunRecord,
    ScenarioFileRef,
    ScenarioStats,
)
from promptlane.registry.sql import SQLStore
from promptlane.registry.store import Store
from promptlane.registry.tables import runs

cli = CliRunner(env={"COLUMNS": "200"})

TEMPLATE = {"template": "Answer {{ ticket }}", "model": "test"}


def new_run(store: Store, *, planned: int = 5, name: str = "lease/p", version: int = 1) -> RunRecord:
    """A run as the runner creates it: ``running``, every planned case not run yet."""
    record = RunRecord(
        id=uuid.uuid4().hex,
        prompt=name,
        version=version,
        model="test",
        started_at=datetime.now(timezone.utc),
        scenario_files=[ScenarioFileRef(path="evals/s.yaml", sha256="0" * 64)],
        scenarios=[ScenarioStats(name="s", file="evals/s.yaml", skipped=planned)],
    )
    store.create_run(record)
    return record


def case(number: int, status: str = "passed", cost: float = 0.5) -> CaseResult:
    return CaseResult(
        scenario="s", case=f"s[repeat-{number}]", file="evals/s.yaml", repeat=number, status=status, cost_usd=cost
    )  # type: ignore[arg-type]


def heartbeat_at(store: Any, run_id: str) -> datetime:
    with store.engine.connect() as conn:
        return conn.execute(select(runs.c.heartbeat_at).where(runs.c.id == run_id)).scalar_one()


@pytest.fixture
def pushed(registry: Registry) -> Registry:
    registry.push_spec("lease/p", TEMPLATE)
    return registry


# --- the store ----------------------------------------------------------------------------------------------


def test_a_run_past_its_lease_reads_interrupted_with_its_stored_cases(
    pushed: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pushed.store
    record = new_run(store, planned=5)
    store.add_cases(record.id, [case(1), case(2), case(3, "failed")])
    assert store.get_run(record.id).status == "running"  # heartbeating now, within the default lease

    monkeypatch.setenv(LEASE_ENV, "0")  # the process died: nobody heartbeats
    for seen in (store.get_run(record.id[:10]), store.list_runs("lease/p")[0]):
        assert (seen.status, seen.reason) == ("interrupted", LEASE_EXPIRED)
        assert (seen.cases, seen.passed, seen.failed, seen.errored) == (3, 2, 1, 0)
        assert seen.cost_usd == 1.5
        (stats,) = seen.scenarios
        assert (stats.name, stats.cases, stats.skipped) == ("s", 3, 2)
        assert not seen.complete
        assert seen.finished_at is not None

    monkeypatch.delenv(LEASE_ENV)  # saved so: every reader sees it, whatever its lease
    other = SQLStore(pushed.settings.registry)
    try:
        saved = other.get_run(record.id)
    finally:
        other.close()
    assert (saved.status, saved.cases, saved.passed) == ("interrupted", 3, 2)


def test_the_gate_never_counts_an_interrupted_run(pushed: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    store = pushed.store
    record = new_run(store, planned=2)
    store.add_cases(record.id, [case(1), case(2)])  # every case passed; the process died before saying so
    monkeypatch.setenv(LEASE_ENV, "0")
    (seen,) = store.list_runs("lease/p", version=1)
    assert (seen.status, seen.passed, seen.cases, seen.complete) == ("interrupted", 2, 2, True)
    files = seen.scenario_files
    verdict = check_gate([seen], pushed.version("lease/p", 1), files, None)
    assert not verdict.passed
    assert verdict.problems == [f"run {record.id[:12]} interrupted ({LEASE_EXPIRED})"]


def test_a_heartbeat_takes_back_a_run_read_as_dead(pushed: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that slept past the lease: its process heartbeats again, and the run is running again."""
    store = pushed.store
    record = new_run(store)
    monkeypatch.setenv(LEASE_ENV, "0")
    assert store.get_run(record.id).status == "interrupted"
    monkeypatch.delenv(LEASE_ENV)
    store.heartbeat_run(record.id)
    back = store.get_run(record.id)
    assert (back.status, back.reason, back.finished_at) == ("running", None, None)

    record.status = "passed"  # it finishes: its own record wins
    store.update_run(record)
    store.heartbeat_run(record.id)  # a late beat leaves a finished run as it is
    assert store.get_run(record.id).status == "passed"
    with pytest.raises(NotFoundError, match=r"no run 'f+'"):
        store.heartbeat_run("f" * 32)


def test_a_finished_run_is_never_taken_for_dead(pushed: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    record = new_run(pushed.store, planned=1)
    pushed.store.add_cases(record.id, [case(1)])
    record.status, record.finished_at = "passed", datetime.now(timezone.utc)
    pushed.store.update_run(record)
    monkeypatch.setenv(LEASE_ENV, "0")
    assert pushed.store.get_run(record.id).status == "passed"


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_lease_names_the_variable(pushed: Registry, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    new_run(pushed.store)
    monkeypatch.setenv(LEASE_ENV, value)
    with pytest.raises(ConfigError, match=f"^{LEASE_ENV}: '{value}' is not a number of seconds"):
        pushed.store.list_runs()


# --- over HTTP ----------------------------------------------------------------------------------------------


def test_runs_over_http_heartbeat_through_the_api_and_the_server_leases_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'server.db'}")
    registry.push_spec("lease/p", TEMPLATE)
    with LiveServer(registry) as server:
        client = HttpStore(server.url, token=secrets["write"])
        try:
            record = new_run(client, planned=4)
            client.add_cases(record.id, [case(1), case(2, "error")])
            monkeypatch.setenv(LEASE_ENV, "0")  # the server reads the lease (it runs in this process)
            dead = client.get_run(record.id)
            assert (dead.status, dead.cases, dead.passed, dead.errored) == ("interrupted", 2, 1, 1)
            assert [run.status for run in client.list_runs("lease/p")] == ["interrupted"]
            monkeypatch.delenv(LEASE_ENV)
            client.heartbeat_run(record.id)
            assert client.get_run(record.id).status == "running"
            with pytest.raises(NotFoundError):
                client.heartbeat_run("e" * 32)
        finally:
            client.close()
    registry.close()


# --- the runner ---------------------------------------------------------------------------------------------

MODELS = """
import threading

RELEASE = threading.Event()
CALLS = {"n": 0}


def first_three_then_block(messages, info):
    # Synchronous on purpose: it holds the event loop, as a slow local model would.
    CALLS["n"] += 1
    if CALLS["n"] > 3:
        RELEASE.wait(600)
    return "ok"
"""

SCENARIOS = """\
prompt: lease/p
model: python:lease_models:first_three_then_block
scenarios:
  - name: s
    variables: {ticket: hello}
    repeat: 6
"""


def test_finished_cases_are_saved_and_the_lease_kept_while_a_model_holds_the_loop(
    pushed: Registry, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "lease_models.py").write_text(MODELS)
    (project / "evals").mkdir()
    (project / "evals" / "s.yaml").write_text(SCENARIOS)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "lease_models", raising=False)
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.0)  # beat at every tick of the lease's thread
    store = pushed.store
    run = EvalRun(
        store=store,
        prompt=pushed.get("lease/p", version=1),
        documents=[load_scenario_file(project / "evals" / "s.yaml")],
        options=EvalOptions(root=project, concurrency=1),
    )
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(asyncio.run(run.run())), daemon=True)
    thread.start()
    try:
        # Three cases finished, then the fourth holds the event loop: they are stored all the same.
        wait_for(lambda: sum(store.count_cases(run.record.id).values()) == 3, "the three finished cases stored")
        first = heartbeat_at(store, run.record.id)
        wait_for(lambda: heartbeat_at(store, run.record.id) > first, "a heartbeat while the loop is held")
        assert store.get_run(run.record.id).status == "running"
    finally:
        sys.modules["lease_models"].RELEASE.set()
        thread.join(PATIENCE)
    (record,) = done
    assert (record.status, record.cases) == ("passed", 6)
    assert store.get_run(record.id).status == "passed"


# --- kill -9 through the CLI --------------------------------------------------------------------------------

CLI_MODELS = """
import time

CALLS = {"n": 0}


async def three_then_hang(messages, info):
    CALLS["n"] += 1
    if CALLS["n"] > 3:
        time.sleep(600)  # the process is killed long before
    return "ok"
"""

CLI_SCENARIOS = """\
prompt: lease/p
model: python:cli_lease_models:three_then_hang
scenarios:
  - name: s
    variables: {ticket: hello}
    expect:
      - contains: ok
    repeat: 10
"""


def test_kill_9_during_eval_leaves_an_interrupted_run_with_its_finished_cases(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "cli_lease_models.py").write_text(CLI_MODELS)
    (project / "evals").mkdir()
    (project / "evals" / "s.yaml").write_text(CLI_SCENARIOS)
    (project / "prompts" / "lease").mkdir()
    (project / "prompts" / "lease" / "p.yaml").write_text("template: 'Answer {{ ticket }}'\n")
    url = f"sqlite:///{project / 'registry.db'}"
    monkeypatch.setenv("PROMPTLANE_REGISTRY", url)
    assert cli.invoke(app, ["push"]).exit_code == 0
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PROMPTLANE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "promptlane", "eval", "--concurrency", "1", "--timeout", "600"],
        cwd=project,
        env={**environment, "PROMPTLANE_REGISTRY": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    store = SQLStore(url)
    try:

        def three_stored() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"eval ended: {process.stderr.read().decode() if process.stderr else ''}")
            runs = store.list_runs("lease/p")
            return bool(runs) and sum(store.count_cases(runs[0].id).values()) >= 3

        wait_for(three_stored, "three cases of the run stored")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(PATIENCE)
        (run_id,) = [run.id for run in store.list_runs("lease/p")]
    finally:
        if process.poll() is None:
            process.kill()
        if process.stderr:
            process.stderr.close()
        store.close()

    monkeypatch.setenv(LEASE_ENV, "0")  # nobody heartbeats it now: no need to wait out the lease
    shown = cli.invoke(app, ["runs", "show", run_id[:12]])
    assert shown.exit_code == 0, shown.output
    assert "interrupted" in shown.stdout and "3/3 passed" in shown.stdout, shown.stdout
    assert "7 not run" in shown.stdout
    listed = cli.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(run_id[:12])]
    assert row.split()[-3:] == ["interrupted", "3/3", "100%"]

    monkeypatch.delenv(LEASE_ENV)  # saved as interrupted: shown so under the default lease too
    again = cli.invoke(app, ["runs", "show", run_id[:12], "--json"])
    data = json.loads(again.stdout)
    assert (data["status"], data["counts"]["cases"], data["counts"]["passed"]) == ("interrupted", 3, 3), data
    assert len(data["cases"]) == 3
