"""``promptlane eval`` stores the versions it pushes and the runs it creates in one transaction (SQL registries)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptlane.cli import app
from promptlane.config import load_settings
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(params=["stdlib", "sqlalchemy"])
def registry_url(request: pytest.FixtureRequest, store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``store_url``; a SQLite file opened by the stdlib store or, as the registry opens a new one, the SQL store."""
    if request.param == "sqlalchemy":
        # The registry opens an existing SQLite file with the stdlib store; here, with the SQL store instead.
        monkeypatch.setattr("promptlane.registry.sqlite_store.open_sqlite_store", lambda url, **_: None)
    elif not store_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has one store")
    return store_url


@pytest.fixture
def example(project: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The support example on ``registry_url``, its prompt pushed once (version 1)."""
    shutil.rmtree(project / "prompts")
    shutil.copytree(EXAMPLE / "prompts", project / "prompts")
    shutil.copytree(EXAMPLE / "evals", project / "evals")
    monkeypatch.syspath_prepend(str(REPO))  # examples.support.model
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PROMPTLANE_REGISTRY", registry_url)
    with Registry(settings=load_settings(project)) as registry:
        registry.push()
    return project


def _refusing_runs(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Install and remove a trigger that makes the database refuse every new run."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")

        def sqlite(statement: str) -> Callable[[], None]:
            def execute() -> None:
                with sqlite3.connect(path) as conn:
                    conn.execute(statement)  # pyright: ignore[reportCallIssue, reportArgumentType]
                conn.close()

            return execute

        return (
            sqlite("CREATE TRIGGER no_runs BEFORE INSERT ON pl_runs BEGIN SELECT RAISE(ABORT, 'no runs'); END"),
            sqlite("DROP TRIGGER no_runs"),
        )
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")

    def postgres(*statements: str) -> Callable[[], None]:
        def execute() -> None:
            with psycopg.connect(plain, autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)  # pyright: ignore[reportCallIssue, reportArgumentType]

        return execute

    return (
        postgres(
            "CREATE FUNCTION no_runs() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'no runs' USING ERRCODE = 'check_violation'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_runs BEFORE INSERT ON pl_runs FOR EACH ROW EXECUTE FUNCTION no_runs()",
        ),
        postgres("DROP TRIGGER no_runs ON pl_runs", "DROP FUNCTION no_runs()"),
    )


def _stored(project: Path) -> tuple[list[int | None], list[int]]:
    """support/reply's stored versions, and the versions of its stored runs."""
    with Registry(settings=load_settings(project)) as registry:
        numbers = [version.number for version in registry.versions("support/reply")]
        runs = sorted(record.version for record in registry.store.list_runs("support/reply"))
    return numbers, runs


def test_a_run_that_cannot_be_created_leaves_no_pushed_version(example: Path, registry_url: str) -> None:
    reply = example / "prompts" / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("description:", "description: Changed.", 1))  # to push as v2
    refuse, allow = _refusing_runs(registry_url)
    refuse()

    result = runner.invoke(app, ["eval"])

    assert result.exit_code != 0, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert _stored(example) == ([1], [])  # neither the version nor its run

    allow()
    result = runner.invoke(app, ["eval"])

    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    assert _stored(example) == ([1, 2], [2])  # both


def test_a_run_created_ahead_takes_its_lease_back_when_it_starts(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(example)
    documents = [load_scenario_file(path, settings=settings) for path in sorted((example / "evals").glob("*.yaml"))]
    with Registry(settings=settings) as registry:
        run = EvalRun(
            store=registry.store,
            prompt=registry.get("support/reply", version=1),
            documents=documents,
            options=EvalOptions(root=example),
        )
        registry.store.atomic(run.create)  # pyright: ignore[reportAttributeAccessIssue]
        monkeypatch.setenv("PROMPTLANE_RUN_LEASE", "0")  # while it waits, a reader takes it for dead
        (waiting,) = registry.store.list_runs("support/reply")
        monkeypatch.delenv("PROMPTLANE_RUN_LEASE")

        record = asyncio.run(run.run())
        (stored,) = registry.store.list_runs("support/reply")

    assert waiting.status == "interrupted"
    assert (record.status, stored.status, stored.cases) == ("passed", "passed", record.cases)
