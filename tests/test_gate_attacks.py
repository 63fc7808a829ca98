"""Adversarial tests of the release gate (issue 11): ways past it, and wrong refusals.

A test marked ``xfail(strict=True)`` demonstrates a hole that is still open (its reason says what and why); when
the hole is closed the test passes, and strict xfail turns that into a failure, so the mark must go with the fix.
The unmarked tests are attacks the gate resists, not covered elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from promptlane.errors import ApprovalError
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.harness.scenarios import discover_scenario_files
from promptlane.registry import Registry
from promptlane.registry.gate import GateError
from promptlane.registry.regression import rate_test
from promptlane.registry.store import LabelEvent, LabelRequest
from promptlane.registry.tokens import create_token
from test_approvals import approved  # noqa: F401  # a fixture
from test_gate import ROWS_MODEL, gated, run_eval  # noqa: F401  # gated is a fixture
from test_server import REPLY, REQUIREMENTS, SCENARIO_FILE, Api, api, reply, serve, served  # noqa: F401


def _eval(reg: Registry, version: int, documents: list[Any], **options: Any) -> Any:
    """Run ``documents`` against greet@``version`` as ``promptlane eval`` does, with ``options``."""
    run = EvalRun(
        store=reg.store,
        prompt=reg.get("greet", version=version),
        documents=documents,
        options=EvalOptions(root=reg.settings.root, **options),
    )
    return asyncio.run(run.run())


def _rows(reg: Registry, rows: int, *, repeat: int = 1) -> None:
    """greet's one scenario over ``rows`` names, threshold 50%, each case ``repeat`` times."""
    (reg.settings.root / "rows_for_gate.py").write_text(ROWS_MODEL)
    (reg.settings.evals_dir / "names.jsonl").write_text("".join(f'{{"name": "N{n}"}}\n' for n in range(1, rows + 1)))
    (reg.settings.evals_dir / "greet.yaml").write_text(
        "prompt: greet\nscenarios:\n  - name: rows\n    dataset: names.jsonl\n"
        f"    repeat: {repeat}\n    threshold: 0.5\n    expect:\n      - contains: Hello\n"
    )


def _gate(event: LabelEvent | LabelRequest) -> str | None:
    assert isinstance(event, LabelEvent)
    return event.gate


# --- a write token rewrites a trusted runner's run -----------------------------------------------------------


def _ci_run(server: Api, version: int, *, passed: int, sha256: str = SCENARIO_FILE["sha256"]) -> dict[str, Any]:
    """A finished run of support/reply@``version`` recorded by the `ci` token (2 cases, ``passed`` of them
    passing); the body it was saved with."""
    run_id = uuid.uuid4().hex
    body: dict[str, Any] = {
        "id": run_id,
        "prompt": REPLY,
        "version": version,
        "model": "test",
        "started_at": datetime.now(timezone.utc).isoformat(),
        "scenario_files": [
            {"path": SCENARIO_FILE["path"], "sha256": sha256},
            {"path": "version", "sha256": server.registry.version(REPLY, version).content_hash},
        ],
        "scenarios": [
            {"name": "greets", "file": "evals/reply.yaml", "cases": 2, "passed": passed, "failed": 2 - passed}
        ],
    }
    assert server.call("POST", "/runs", json=body, scope="ci").status_code == 201
    cases = [
        {
            "scenario": "greets",
            "case": f"c{n}",
            "file": "evals/reply.yaml",
            "status": "passed" if n < passed else "failed",
        }
        for n in range(2)
    ]
    assert server.call("POST", f"/runs/{run_id}/cases", json={"cases": cases}, scope="ci").status_code == 201
    body = {
        **body,
        "status": "passed" if passed == 2 else "failed",
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    assert server.call("PUT", f"/runs/{run_id}", json=body, scope="ci").status_code == 200
    return body


@pytest.fixture
def trusting(reply: Api) -> Api:  # noqa: F811
    """The server trusting only the `ci` token's runs."""
    _, reply.secrets["ci"] = create_token(reply.registry.store, "ci", ["write"], created_by="tests")
    reply.registry.settings = dataclasses.replace(reply.registry.settings, gate_trusted_runners=("ci",))
    return reply


@pytest.mark.parametrize("tamper", ["unfinish", "threshold", "restamp"])
def test_a_write_token_cannot_rewrite_a_trusted_runners_run(trusting: Api, tamper: str) -> None:
    if tamper == "restamp":
        # CI passed v1 on the scenario file as it was; the file changed and CI's newest run (of v2) saw it so.
        target = _ci_run(trusting, 1, passed=2, sha256="4" * 64)
        _ci_run(trusting, 2, passed=2)
        forged = {**target, "scenario_files": [SCENARIO_FILE, target["scenario_files"][1]]}
    else:
        _ci_run(trusting, 1, passed=2)
        target = _ci_run(trusting, 1, passed=0)  # newer, failing: it decides
        if tamper == "unfinish":
            forged = {**target, "status": "running", "finished_at": None}
        else:
            scenario = {**target["scenarios"][0], "threshold": 0.0}
            forged = {**target, "status": "passed", "scenarios": [scenario]}
    move = {"target": {"1": 100}, "requirements": REQUIREMENTS}
    production = "/prompts/support/reply/-/labels/production"
    assert trusting.call("PUT", production, scope="promote", json=move).status_code == 409  # closed, so far
    refused = trusting.call("PUT", f"/runs/{target['id']}", json=forged, scope="write")
    moved = trusting.call("PUT", production, scope="promote", json=move)
    assert refused.status_code == 403 or moved.status_code == 409, (refused.text, moved.text)


def test_cases_cannot_be_added_to_a_finished_run(trusting: Api) -> None:
    run = _ci_run(trusting, 1, passed=2)
    case = {"scenario": "greets", "case": "extra", "file": "evals/reply.yaml", "status": "passed"}
    added = trusting.call("POST", f"/runs/{run['id']}/cases", json={"cases": [case]}, scope="write")
    assert added.status_code in (403, 409), added.text


def test_a_client_cannot_lower_the_bar_of_a_server_without_the_project(trusting: Api) -> None:
    # CI's newest run saw the scenario file as it is now ("5" * 64); a client sends the hash an older passing run
    # of v1 saw: the two parts conflict, and no run satisfies both.
    _ci_run(trusting, 1, passed=2, sha256="4" * 64)
    _ci_run(trusting, 2, passed=2)
    old = {"scenario_files": [{"path": SCENARIO_FILE["path"], "sha256": "4" * 64}]}
    moved = trusting.call(
        "PUT",
        "/prompts/support/reply/-/labels/production",
        scope="promote",
        json={"target": {"1": 100}, "requirements": old},
    )
    assert moved.status_code == 409, moved.text


# --- approvals -------------------------------------------------------------------------------------------------


def test_approving_a_rollback_writes_the_target_the_gate_checked(approved: Registry) -> None:  # noqa: F811
    approved.push_spec("greet", {"template": "Say hey to {{ name }}", "model": "python:models_for_approvals:polite"})
    approved.set_label("greet", "production", 1, force=True, reason="first", actor="carol")
    approved.set_label("greet", "production", 2, force=True, reason="second", actor="carol")
    request = approved.rollback("greet", "production", actor="alice")  # back to v1, which has a run
    assert isinstance(request, LabelRequest) and request.to_target == {1: 100}
    approved.set_label("greet", "production", 3, force=True, reason="incident", actor="carol")  # v3: no run
    approved.set_label("greet", "production", 2, force=True, reason="undo incident", actor="carol")

    try:
        event = approved.approve("greet", "production", actor="bob")
    except (ApprovalError, GateError):
        return
    assert event.to_target == request.to_target, f"production moved to {event.to_target}, gate: {event.gate}"


def test_a_superseded_request_is_not_approved_by_an_approval_in_flight(
    approved: Registry,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # bob reviewed request A (v1); alice replaces it with B (v2) while bob's approval is between reading the
    # pending request and moving the label: A is no longer pending, so nothing moves.
    first = approved.set_label("greet", "production", 1, actor="alice")
    assert isinstance(first, LabelRequest)
    pending = approved.pending

    def pending_then_supersede(name: str, label: str, request: int | None = None) -> LabelRequest:
        found = pending(name, label, request)
        approved.set_label("greet", "production", 2, actor="alice")
        return found

    monkeypatch.setattr(approved, "pending", pending_then_supersede)
    with pytest.raises(ApprovalError, match=f"request {first.id} is superseded"):
        approved.approve("greet", "production", actor="bob")
    assert approved.labels("greet") == []


# --- no regression ---------------------------------------------------------------------------------------------


def test_a_canary_is_compared_again_before_it_takes_the_whole_label(gated: Registry) -> None:  # noqa: F811
    _rows(gated, 3)
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:mostly"})
    assert (run_eval(gated, 1).passed, run_eval(gated, 3).passed) == (3, 2)
    gated.set_label("greet", "production", 1)
    gated.set_rollout("greet", "production", {1: 90, 3: 10})  # 2/3 against 3/3 proves nothing: allowed

    _rows(gated, 30)  # the dataset grows; both versions run on it
    assert (run_eval(gated, 1).passed, run_eval(gated, 3).passed) == (30, 15)
    with pytest.raises(GateError, match="rows regressed: 15/30"):
        gated.set_label("greet", "production", 3)


def test_a_run_with_fewer_repeats_than_its_scenarios_does_not_dodge_the_comparison(
    gated: Registry,  # noqa: F811
) -> None:
    _rows(gated, 3, repeat=10)
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:mostly"})
    documents = [load_scenario_file(gated.settings.evals_dir / "greet.yaml")]
    assert _eval(gated, 1, documents).passed == 30
    gated.set_label("greet", "production", 1)
    assert rate_test(20, 30, 30, 30, confidence=0.95).regressed  # what the scenario's own repeat would show
    candidate = _eval(gated, 3, documents, repeat=1)
    assert (candidate.status, candidate.passed, candidate.cases, candidate.complete) == ("passed", 2, 3, True)

    with pytest.raises(GateError):
        gated.set_label("greet", "production", 3)


# --- fingerprint: the runner and the gate must name and find the same parts -------------------------------------


def test_a_module_the_runner_found_is_checked_even_where_the_gate_cannot_find_it(
    gated: Registry,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = f"srcmodels_{uuid.uuid4().hex[:8]}"
    source = gated.settings.root / "src" / f"{module}.py"
    source.parent.mkdir()
    source.write_text("def polite(messages, info):\n    return 'Hello! Happy to help.'\n")
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": f"python:{module}:polite"})
    monkeypatch.syspath_prepend(str(source.parent))  # as pytest's `pythonpath = ["src"]` does for the runner
    record = run_eval(gated, 3)
    assert record.status == "passed"
    assert f"python:{module}" in {part.path for part in record.scenario_files}
    sys.path.remove(str(source.parent))  # `promptlane label` is another process: no src on its path
    sys.modules.pop(module, None)
    source.write_text("def polite(messages, info):\n    return 'Go away.'\n")

    with pytest.raises(GateError):
        gated.set_label("greet", "production", 3)


@pytest.fixture
def shared(gated: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # noqa: F811
    """A dataset folder outside the project root, allowed by `dataset_roots`, read by greet's scenario."""
    folder = tmp_path_factory.mktemp("shared")
    (folder / "names.jsonl").write_text('{"name": "Ana"}\n{"name": "Bo"}\n')
    gated.settings = dataclasses.replace(gated.settings, dataset_roots=(str(folder),))
    relative = Path("..") / ".." / folder.relative_to(gated.settings.root.parent) / "names.jsonl"
    assert (gated.settings.evals_dir / relative).resolve() == (folder / "names.jsonl").resolve()
    (gated.settings.evals_dir / "greet.yaml").write_text(
        f"prompt: greet\nscenarios:\n  - name: rows\n    dataset: {relative.as_posix()}\n"
        "    expect:\n      - contains: Hello\n"
    )
    yield folder


def test_a_dataset_outside_the_root_is_the_same_part_for_the_runner_and_the_gate(
    gated: Registry,  # noqa: F811
    shared: Path,
) -> None:
    # As `promptlane eval` finds them: relative to the working directory, the project root.
    documents = [load_scenario_file(path, settings=gated.settings) for path in discover_scenario_files([Path("evals")])]
    assert _eval(gated, 1, documents).status == "passed"
    assert _gate(gated.set_label("greet", "production", 1)) == "passed"


def test_a_symlinked_dataset_inside_the_root_is_the_same_part_for_the_runner_and_the_gate(
    gated: Registry,  # noqa: F811
) -> None:
    root = gated.settings.root
    (root / "data").mkdir()
    (root / "data" / "names.jsonl").write_text('{"name": "Ana"}\n')
    (gated.settings.evals_dir / "names.jsonl").symlink_to(root / "data" / "names.jsonl")
    (gated.settings.evals_dir / "greet.yaml").write_text(
        "prompt: greet\nscenarios:\n  - name: rows\n    dataset: names.jsonl\n    expect:\n      - contains: Hello\n"
    )
    documents = [load_scenario_file(path, settings=gated.settings) for path in discover_scenario_files([Path("evals")])]
    record = _eval(gated, 1, documents)
    assert "data/names.jsonl" in {part.path for part in record.scenario_files}
    assert gated.set_label("greet", "production", 1).evidence == record.id

    (root / "data" / "names.jsonl").write_text('{"name": "Bo"}\n')  # the target changes: the run is stale
    with pytest.raises(GateError, match=r"data/names\.jsonl changed since run"):
        gated.set_label("greet", "production", 1)


def test_a_scenario_file_the_gate_requires_is_one_eval_runs(gated: Registry) -> None:  # noqa: F811
    scenario = {"name": "json-style", "variables": {"name": "Cy"}, "expect": [{"contains": "Hello"}]}
    (gated.settings.evals_dir / "extra.yaml").write_text(json.dumps({"prompt": "greet", "scenarios": [scenario]}))
    documents = [load_scenario_file(path, settings=gated.settings) for path in discover_scenario_files([Path("evals")])]
    assert _eval(gated, 1, documents).status == "passed"
    assert _gate(gated.set_label("greet", "production", 1)) == "passed"
