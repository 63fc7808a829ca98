"""Two people for a protected move: with ``require_approval``, a move waits until someone else approves it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from _live import LiveServer, served_registry
from promptlane.cli import app
from promptlane.config import Settings
from promptlane.errors import LabelError, NotFoundError
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry
from promptlane.registry.gate import GateError
from promptlane.registry.store import LabelEvent, LabelRequest
from promptlane.registry.tokens import create_token
from promptlane.server import create_app
from test_server import REPLY, REQUIREMENTS, SPEC_V1, SPEC_V2, Api, record_run

MODEL = "def polite(messages, info):\n    return 'Hello! Happy to help.'\n"
SCENARIOS = """\
prompt: greet
scenarios:
  - name: polite
    variables: {name: Ana}
    expect:
      - contains: Hello
"""


@pytest.fixture
def approved(project: Path, store_url: str) -> Iterator[Registry]:
    """greet v1 and v2 with passing runs; `production` protected and requiring approval."""
    (project / "models_for_approvals.py").write_text(MODEL)
    (project / "evals").mkdir()
    (project / "evals" / "greet.yaml").write_text(SCENARIOS)
    (project / "promptlane.toml").write_text(
        f'prompts = "prompts"\nevals = "evals"\nregistry = "{store_url}"\n'
        'protected_labels = ["production"]\nrequire_approval = ["production"]\n'
    )
    settings = Settings(
        root=project, registry=store_url, protected_labels=("production",), require_approval=("production",)
    )
    reg = Registry(settings=settings)
    for text in ("Say hello to {{ name }}", "Say hi to {{ name }}"):
        version = reg.push_spec("greet", {"template": text, "model": "python:models_for_approvals:polite"}).version
        run = EvalRun(
            store=reg.store,
            prompt=reg.get("greet", version=version.number),
            documents=[load_scenario_file(project / "evals" / "greet.yaml")],
            options=EvalOptions(root=project),
        )
        assert asyncio.run(run.run()).status == "passed"
    yield reg
    reg.close()


def test_a_move_waits_for_someone_else_to_approve_it(approved: Registry) -> None:
    request = approved.set_label("greet", "production", 1, actor="alice", reason="first release")
    assert isinstance(request, LabelRequest)
    assert (request.status, request.requester, request.to_target, request.from_target) == (
        "pending",
        "alice",
        {1: 100},
        None,
    )
    assert approved.labels("greet") == []  # nothing moved yet
    assert [r.id for r in approved.requests("greet")] == [request.id]

    with pytest.raises(LabelError, match="alice asked for this move of greet production: someone else must approve"):
        approved.approve("greet", "production", actor="alice")
    event = approved.approve("greet", "production", actor="bob", reason="looks good")

    assert (event.to_target, event.actor, event.requested_by, event.reason, event.gate) == (
        {1: 100},
        "bob",
        "alice",
        "first release",
        "passed",
    )
    assert event.requested_at == request.requested_at and event.at >= request.requested_at
    assert approved.history("greet", "production")[-1] == event  # the audit log keeps both people and both times
    assert approved.requests("greet") == []
    with pytest.raises(NotFoundError, match="no move of greet production is waiting for approval"):
        approved.approve("greet", "production", actor="bob")


def test_approval_checks_the_gate_again(approved: Registry, project: Path) -> None:
    approved.set_label("greet", "production", 1, actor="alice")
    (project / "evals" / "greet.yaml").write_text(SCENARIOS.replace("Ana", "Bo"))  # the evidence went stale

    with pytest.raises(GateError, match=r"evals/greet\.yaml changed since run"):
        approved.approve("greet", "production", actor="bob")
    assert approved.labels("greet") == [] and len(approved.requests("greet")) == 1  # still pending


def test_a_request_is_refused_when_the_label_moved_since(approved: Registry) -> None:
    request = approved.set_label("greet", "production", 2, actor="alice")
    approved.set_label("greet", "production", 1, force=True, reason="incident 7", actor="carol")  # no approval

    with pytest.raises(LabelError, match=r"production moved since request \d+ was made \(from - to v1\)"):
        approved.approve("greet", "production", actor="bob")
    rejected = approved.reject("greet", "production", actor="bob", reason="stale")
    assert (rejected.id, rejected.status, rejected.decided_by, rejected.decision) == (
        request.id,
        "rejected",
        "bob",
        "stale",
    )
    assert approved.labels("greet")[0].target == {1: 100}


def test_a_newer_request_supersedes_the_one_reviewed(approved: Registry) -> None:
    first = approved.set_label("greet", "production", 1, actor="alice")
    second = approved.set_label("greet", "production", 2, actor="alice")
    assert isinstance(first, LabelRequest) and isinstance(second, LabelRequest)

    with pytest.raises(LabelError, match=f"is request {second.id} \\(to v2, by alice\\), not {first.id}"):
        approved.approve("greet", "production", request=first.id, actor="bob")
    assert approved.approve("greet", "production", request=second.id, actor="bob").to_target == {2: 100}


def test_rollbacks_and_promotions_wait_too(approved: Registry) -> None:
    approved.set_label("greet", "production", 1, actor="alice")
    approved.approve("greet", "production", actor="bob")
    promoted = approved.promote("greet", "production", actor="alice")
    assert isinstance(promoted, LabelRequest) and promoted.to_target == {2: 100}
    assert approved.approve("greet", "production", actor="bob").kind == "promote"
    back = approved.rollback("greet", "production", actor="alice")
    assert isinstance(back, LabelRequest) and back.to_target == {1: 100}
    event = approved.approve("greet", "production", actor="bob")
    assert (event.kind, event.to_target, event.undoes is not None) == ("rollback", {1: 100}, True)


def test_only_one_of_two_concurrent_approvals_moves_the_label(approved: Registry) -> None:
    approved.set_label("greet", "production", 1, actor="alice")
    barrier = threading.Barrier(4)

    def approve(who: str) -> object:
        barrier.wait(timeout=60)
        return approved.approve("greet", "production", actor=who)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(approve, who) for who in ("bob", "carol", "dave", "erin")]
        outcomes = [future.exception(timeout=300) or future.result() for future in futures]

    assert sum(isinstance(outcome, LabelEvent) for outcome in outcomes) == 1, outcomes
    assert all(isinstance(o, (LabelEvent, LabelError, NotFoundError)) for o in outcomes), outcomes
    assert len(approved.history("greet", "production")) == 1


def test_a_forced_move_needs_no_approval_but_a_reason(approved: Registry) -> None:
    with pytest.raises(LabelError, match="a forced move needs a reason"):
        approved.set_label("greet", "production", 2, force=True, actor="alice")
    event = approved.set_label("greet", "production", 2, force=True, reason="incident 9", actor="alice")
    assert isinstance(event, LabelEvent) and event.gate == "forced"


def test_the_cli_asks_then_another_author_approves(approved: Registry) -> None:
    runner = CliRunner()
    asked = runner.invoke(app, ["label", "greet", "production", "1"], env={"PROMPTLANE_AUTHOR": "alice"})
    assert asked.exit_code == 0, asked.output
    assert "greet: production -> v1 waits for approval" in asked.stdout
    assert "someone other than alice approves it: promptlane approve greet production" in asked.stdout
    listed = runner.invoke(app, ["pending"], env={"PROMPTLANE_AUTHOR": "bob"})
    assert "greet: production -> v1 waits for approval" in listed.stdout

    same = runner.invoke(app, ["approve", "greet", "production"], env={"PROMPTLANE_AUTHOR": "alice"})
    assert same.exit_code == 1 and "someone else must approve it" in same.stderr
    done = runner.invoke(app, ["approve", "greet", "production"], env={"PROMPTLANE_AUTHOR": "bob"})
    assert done.exit_code == 0, done.output
    assert "greet: production -> v1 (was -)" in done.stdout
    history = runner.invoke(app, ["history", "greet"], env={"COLUMNS": "200"})
    assert "alice (asked" in history.stdout and "approved by bob" in history.stdout
    assert approved.labels("greet")[0].target == {1: 100}


# --- over HTTP -----------------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A server (SQLite, `production` protected and requiring approval) with support/reply v1 and v2, each with
    a passing run, and a second promote token."""
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    registry.settings = dataclasses.replace(registry.settings, require_approval=("production",))
    for spec in (SPEC_V1, SPEC_V2):
        registry.push_spec(REPLY, spec, author="tests")
    _, secrets["other"] = create_token(registry.store, "release-manager", ["promote"], created_by="tests")
    served = Api(
        client=TestClient(create_app(registry), base_url="http://127.0.0.1:8750"), registry=registry, secrets=secrets
    )
    for version in (1, 2):
        record_run(served, version)
    yield served
    registry.close()


LABELS = "/prompts/support/reply/-/labels"
BODY = {"target": {"1": 100}, "requirements": REQUIREMENTS}


def test_a_move_through_the_api_waits_for_another_token(api: Api) -> None:
    asked = api.call("PUT", f"{LABELS}/production", scope="promote", json={**BODY, "actor": "ana"})
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["status"], request["requester"], request["requested_by"], request["to_target"]) == (
        "pending",
        "promote-token",
        "ana (token promote-token)",
        {"1": 100},
    )
    assert api.call("GET", "/prompts/support/reply/-/labels/production", scope="read").status_code == 404
    assert [r["id"] for r in api.call("GET", "/requests", scope="read").json()] == [request["id"]]
    assert [r["id"] for r in api.call("GET", "/prompts/support/reply/-/requests", scope="read").json()] == [
        request["id"]
    ]

    # The requester's own token cannot approve, whatever name its client gives.
    same = api.call("POST", f"{LABELS}/production/approve", scope="promote", json={"actor": "someone else"})
    assert (same.status_code, same.json()["type"]) == (409, "ApprovalError")
    assert "promote-token asked for this move" in same.json()["error"]
    assert api.call("POST", f"{LABELS}/production/approve", scope="read", json={}).status_code == 403

    approved = api.call("POST", f"{LABELS}/production/approve", scope="other", json={"request": request["id"]})
    assert approved.status_code == 200, approved.text
    event = approved.json()
    assert (event["actor"], event["requested_by"], event["requested_at"], event["gate"]) == (
        "token release-manager",
        "ana (token promote-token)",
        request["requested_at"],
        "passed",
    )
    assert api.call("GET", "/requests", scope="read").json() == []


def test_a_rejected_move_leaves_the_label_where_it_is(api: Api) -> None:
    api.call("PUT", f"{LABELS}/production", scope="promote", json=BODY)
    rejected = api.call("POST", f"{LABELS}/production/reject", scope="other", json={"reason": "not today"})
    assert (rejected.status_code, rejected.json()["status"], rejected.json()["decision"]) == (
        200,
        "rejected",
        "not today",
    )
    nothing = api.call("POST", f"{LABELS}/production/approve", scope="other", json={})
    assert nothing.status_code == 404


def test_the_cli_of_a_server_asks_and_another_token_approves(
    api: Api, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LiveServer(api.registry) as server:
        monkeypatch.setenv("PROMPTLANE_REGISTRY", server.url)
        runner = CliRunner()
        asked = runner.invoke(
            app,
            ["promote", REPLY, "--to", "production", "--version", "1"],
            env={"PROMPTLANE_TOKEN": api.secrets["promote"]},
        )
        assert asked.exit_code == 0, asked.output
        assert "support/reply: production -> v1 waits for approval" in asked.stdout
        listed = runner.invoke(app, ["pending", "--json"], env={"PROMPTLANE_TOKEN": api.secrets["read"]})
        assert [item["to_target"] for item in json.loads(listed.stdout)] == [{"1": 100}]
        same = runner.invoke(app, ["approve", REPLY, "production"], env={"PROMPTLANE_TOKEN": api.secrets["promote"]})
        assert same.exit_code == 1 and "someone else must approve it" in same.stderr
        done = runner.invoke(app, ["approve", REPLY, "production"], env={"PROMPTLANE_TOKEN": api.secrets["other"]})
        assert done.exit_code == 0, done.output
    assert api.registry.labels(REPLY)[0].target == {1: 100}
