"""The gate: a protected label moves only to a version with a passing, complete, current eval run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptlane.cli import app
from promptlane.config import Settings
from promptlane.errors import LabelError
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry
from promptlane.registry.fingerprint import scenario_files_for
from promptlane.registry.gate import GateError, check_gate
from promptlane.registry.runs import RunRecord, ScenarioFileRef, ScenarioStats
from promptlane.registry.store import LabelEvent, PromptVersion

MODEL = """\
from pathlib import Path

from pydantic_ai.messages import ModelResponse, TextPart


def polite(messages, info):
    return "Hello! Happy to help."


def rude(messages, info):
    return "Go away."


def flaky(messages, info):
    # Counted in the project folder (the working directory), so each test starts afresh.
    counter = Path("flaky-answers")
    answers = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(answers))
    return "Hello! Happy to help." if answers <= 2 else "Go away."
"""

SCENARIOS = """\
prompt: greet
scenarios:
  - name: polite
    variables: {name: Ana}
    expect:
      - contains: Hello
  - name: also-polite
    variables: {name: Bo}
    expect:
      - contains: help
"""


@pytest.fixture
def gated(project: Path, store_url: str) -> Iterator[Registry]:
    """A project with one prompt (v1 and v2), its scenarios, a model module, and `production` protected."""
    (project / "models_for_gate.py").write_text(MODEL)
    (project / "evals").mkdir()
    (project / "evals" / "greet.yaml").write_text(SCENARIOS)
    (project / "promptlane.toml").write_text(
        f'prompts = "prompts"\nevals = "evals"\nregistry = "{store_url}"\nprotected_labels = ["production"]\n'
    )
    reg = Registry(settings=Settings(root=project, registry=store_url, protected_labels=("production",)))
    for text in ("Say hello to {{ name }}", "Say hi to {{ name }}"):
        reg.push_spec("greet", {"template": text, "model": "python:models_for_gate:polite"})
    yield reg
    reg.close()


def run_eval(
    reg: Registry,
    version: int,
    *,
    model: str | None = None,
    select: object = None,
    judge_model: str | None = None,
    created_by: str | None = None,
) -> RunRecord:
    run = EvalRun(
        store=reg.store,
        prompt=reg.get("greet", version=version),
        documents=[load_scenario_file(reg.settings.evals_dir / "greet.yaml")],
        options=EvalOptions(
            root=reg.settings.root,
            model=model,
            select=select,  # type: ignore[arg-type]
            judge_model=judge_model,
            created_by=created_by,
        ),
    )
    return asyncio.run(run.run())


def test_a_protected_label_refuses_a_version_without_a_run(gated: Registry) -> None:
    with pytest.raises(GateError) as info:
        gated.set_label("greet", "production", 1)
    assert info.value.problems == ["no eval run of greet@1: promptlane eval --prompt greet --version 1"]
    assert "production is protected: greet@1 needs a passing eval run first" in str(info.value)
    assert gated.history("greet") == []  # nothing moved, nothing recorded


def test_a_passing_run_opens_the_label_and_is_recorded_as_evidence(gated: Registry) -> None:
    record = run_eval(gated, 1)
    assert record.status == "passed"

    event = gated.set_label("greet", "production", 1)

    assert (event.gate, event.evidence) == ("passed", record.id)
    assert gated.history("greet")[-1].evidence == record.id
    with pytest.raises(GateError, match="no eval run of greet@2"):
        gated.set_label("greet", "production", 2)  # evidence is per version


def test_a_newer_failing_run_closes_what_an_older_passing_run_opened(gated: Registry) -> None:
    # A flaky model: the first run (two cases) passes, every later one fails.
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:models_for_gate:flaky"})
    passing, failing = run_eval(gated, 3), run_eval(gated, 3)
    assert (passing.status, failing.status) == ("passed", "failed")

    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 3)

    assert refused.value.problems[-1] == (
        f"run {passing.id[:12]} passed, but run {failing.id[:12]} is newer, on the same scenario files and model: "
        "the newest complete run decides"
    )
    assert gated.labels("greet") == [] or all(state.label != "production" for state in gated.labels("greet"))


def test_a_failing_run_lists_the_failing_scenarios(gated: Registry) -> None:
    run_eval(gated, 1, model="python:models_for_gate:rude")
    with pytest.raises(GateError) as info:
        gated.set_label("greet", "production", 1)
    problems = "\n".join(info.value.problems)
    assert "failed: polite (0/1 passed, needs 100%), also-polite (0/1 passed, needs 100%)" in problems
    assert "used python:models_for_gate:rude, and the gate needs python:models_for_gate:polite" in problems


def test_a_run_with_another_model_does_not_count_unless_configured(gated: Registry, project: Path) -> None:
    run_eval(gated, 1, model="test")  # TestModel answers "success (no tool calls)": fails `contains` anyway
    relaxed = Registry(settings=Settings(root=project, registry=gated.url, gate_model="test"))
    with pytest.raises(GateError, match="failed"):
        relaxed.set_label("greet", "production", 1)


def test_a_stale_run_does_not_count(gated: Registry) -> None:
    run_eval(gated, 1)
    scenario = gated.settings.evals_dir / "greet.yaml"
    scenario.write_text(scenario.read_text().replace("contains: help", "contains: Happy"))

    with pytest.raises(GateError) as info:
        gated.set_label("greet", "production", 1)
    assert any("evals/greet.yaml changed since run" in problem for problem in info.value.problems)

    run_eval(gated, 1)
    assert gated.set_label("greet", "production", 1).gate == "passed"


def test_a_dataset_change_makes_the_run_stale(gated: Registry, project: Path) -> None:
    # Failing rows appended to a dataset: the gate still opened on a run made before, which it fingerprinted by
    # the scenario files alone.
    data = project / "evals" / "datasets" / "names.jsonl"
    data.parent.mkdir()
    data.write_text('{"name": "Cy"}\n')
    rows = "  - name: rows\n    dataset: datasets/names.jsonl\n    expect:\n      - contains: Hello\n"
    (project / "evals" / "greet.yaml").write_text(SCENARIOS + rows)
    record = run_eval(gated, 1)
    assert record.status == "passed"
    assert [ref.path for ref in record.scenario_files] == [
        "evals/greet.yaml",
        "evals/datasets/names.jsonl",
        "version",
        "repeat",
        "python:models_for_gate",
    ]
    data.write_text('{"name": "Cy"}\n{"name": "Di"}\n')

    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 1)

    assert refused.value.problems == [f"evals/datasets/names.jsonl changed since run {record.id[:8]}"]
    assert run_eval(gated, 1).status == "passed"
    assert gated.set_label("greet", "production", 1).gate == "passed"  # a run on the current data opens it


def test_a_python_source_change_makes_the_run_stale(gated: Registry, project: Path) -> None:
    # The model function, a mock or an evaluator edited after the run: the run says nothing about the code now.
    record = run_eval(gated, 1)
    checks = project / "checks_for_gate.py"
    checks.write_text("def polite(ctx):\n    return True\n")
    expectation = "      - python: checks_for_gate:polite\n"
    (project / "evals" / "greet.yaml").write_text(SCENARIOS + expectation)
    record = run_eval(gated, 1)
    assert {"python:models_for_gate", "python:checks_for_gate"} <= {ref.path for ref in record.scenario_files}
    assert gated.set_label("greet", "production", 1).gate == "passed"

    checks.write_text("def polite(ctx):\n    return False\n")
    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 1)
    assert refused.value.problems == [f"python:checks_for_gate changed since run {record.id[:8]}"]

    (project / "models_for_gate.py").write_text(MODEL + "\n# edited\n")
    with pytest.raises(GateError, match=r"python:models_for_gate changed since run"):
        gated.set_label("greet", "production", 1)


def test_a_judge_model_change_makes_the_run_stale(gated: Registry, project: Path) -> None:
    judged = "      - judge: {rubric: polite, threshold: 0.5}\n"
    (project / "evals" / "greet.yaml").write_text(SCENARIOS + judged)
    judge = "python:judge_for_gate:score"
    (project / "judge_for_gate.py").write_text("def score(messages, info):\n    return '{\"score\": 1}'\n")
    record = run_eval(gated, 1, judge_model=judge)
    assert record.status == "passed", record
    settings = dataclasses.replace(gated.settings, judge_model=judge)
    with Registry(settings=settings) as judged_by_score:
        assert judged_by_score.set_label("greet", "production", 1).gate == "passed"
        other = dataclasses.replace(settings, judge_model="python:models_for_gate:polite")
    with Registry(settings=other) as judged_by_another, pytest.raises(GateError) as refused:
        judged_by_another.set_label("greet", "production", 1)
    assert refused.value.problems == [
        f"the judge model changed since run {record.id[:8]} ({judge} then, python:models_for_gate:polite now)"
    ]


def test_trusted_runners_make_the_only_evidence(gated: Registry) -> None:
    trusting_ci = Registry(settings=dataclasses.replace(gated.settings, gate_trusted_runners=("ci",)))
    mine = run_eval(gated, 1, created_by="dev")
    with trusting_ci, pytest.raises(GateError) as refused:
        trusting_ci.set_label("greet", "production", 1)
    assert refused.value.problems == [
        "no run of greet@1 by a trusted runner (gate_trusted_runners: ci); its runs were made by 'dev'"
    ]
    assert gated.set_label("greet", "production", 1).evidence == mine.id  # without the setting, anyone's counts

    ci = run_eval(gated, 1, model="python:models_for_gate:rude", created_by="ci")  # a failing CI run decides...
    run_eval(gated, 1, created_by="dev")  # ...and a newer passing run by someone else has no say
    with Registry(settings=trusting_ci.settings) as trusting, pytest.raises(GateError, match=f"run {ci.id[:12]}"):
        trusting.set_rollout("greet", "production", {1: 100})


ROWS_MODEL = """\
import re


def mostly(messages, info):
    # Polite to N1..N16 except N3: 2 of 3 rows, 15 of 30.
    number = int(re.search(r"N(\\d+)", str(messages[-1].parts[-1].content)).group(1))
    return "Hello!" if number <= 16 and number != 3 else "Go away."


def plain(messages, info):
    return "Hi."


def judge(messages, info):
    return '{"score": 0.9}' if "OUTPUT:\\nHello" in str(messages[-1].parts[-1].content) else '{"score": 0.2}'
"""


def _rows_project(reg: Registry, rows: int, expect: str) -> None:
    """greet's scenarios: one scenario over ``rows`` names (threshold 50%), and a model module for it."""
    (reg.settings.root / "rows_for_gate.py").write_text(ROWS_MODEL)
    data = reg.settings.evals_dir / "names.jsonl"
    data.write_text("".join(f'{{"name": "N{n}"}}\n' for n in range(1, rows + 1)))
    scenario = f"  - name: rows\n    dataset: names.jsonl\n    threshold: 0.5\n    expect:\n      - {expect}\n"
    (reg.settings.evals_dir / "greet.yaml").write_text(f"prompt: greet\nscenarios:\n{scenario}")


@pytest.mark.parametrize(("rows", "regressed"), [(30, True), (3, False)])
def test_a_version_significantly_worse_than_the_serving_one_is_refused(
    gated: Registry, rows: int, regressed: bool
) -> None:
    _rows_project(gated, rows, "contains: Hello")
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:mostly"})
    serving, candidate = run_eval(gated, 1), run_eval(gated, 3)
    assert (serving.passed, candidate.status, candidate.passed) == (rows, "passed", 15 if rows == 30 else 2)
    gated.set_label("greet", "production", 1)

    if not regressed:  # 2/3 against 3/3 proves nothing
        assert gated.set_label("greet", "production", 3).evidence == candidate.id
        return
    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 3)
    assert refused.value.problems == ["rows regressed: 15/30 (50%) vs 30/30 (100%) serving, p<0.001"]
    assert "production is protected: greet@3 must not be worse than greet@1, which production serves" in str(
        refused.value
    )
    with pytest.raises(GateError, match="rows regressed"):
        gated.promote("greet", "production", version=3)
    assert gated.set_label("greet", "staging", 3).gate is None  # the rule is production's (gate_no_regression)


def test_a_drop_in_judge_scores_is_a_regression(gated: Registry) -> None:
    _rows_project(gated, 30, "judge: {rubric: greets warmly, threshold: 0.1}")
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:plain"})
    judge = "python:rows_for_gate:judge"
    gated.settings = dataclasses.replace(gated.settings, judge_model=judge)
    assert run_eval(gated, 1, judge_model=judge).status == "passed"
    assert run_eval(gated, 3, judge_model=judge).status == "passed"  # every case passes, at a lower score
    gated.set_label("greet", "production", 1)

    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 3)
    (problem,) = refused.value.problems
    assert problem.startswith("rows regressed: 30/30 (100%) vs 30/30 (100%) serving, p=1; mean score 0.20 vs 0.90")


def test_the_serving_version_needs_a_run_to_compare_with(gated: Registry) -> None:
    gated.set_label("greet", "production", 1, force=True, reason="before evals")
    run_eval(gated, 2)
    with pytest.raises(GateError) as refused:
        gated.set_label("greet", "production", 2)
    assert refused.value.problems == [
        "production serves greet@1, which has no complete run on the current inputs to compare greet@2 with "
        "(gate_no_regression): run `promptlane eval --prompt greet --version 1`"
    ]
    run_eval(gated, 1)
    assert gated.set_label("greet", "production", 2).gate == "passed"


def test_a_new_scenario_file_must_be_covered(gated: Registry) -> None:
    run_eval(gated, 1)
    (gated.settings.evals_dir / "more.yaml").write_text(SCENARIOS.replace("polite", "kind"))

    with pytest.raises(GateError, match=r"did not cover evals/more\.yaml"):
        gated.set_label("greet", "production", 1)


def test_a_partial_run_does_not_count(gated: Registry) -> None:
    record = run_eval(gated, 1, select=lambda document, scenario, case: scenario.name == "polite")
    assert record.status == "passed" and not record.complete

    with pytest.raises(GateError, match=r"did not run every case \(left out: also-polite\)"):
        gated.set_label("greet", "production", 1)


def test_force_needs_a_reason_and_is_recorded(gated: Registry) -> None:
    with pytest.raises(LabelError, match="a forced move needs a reason"):
        gated.set_label("greet", "production", 1, force=True)
    event = gated.set_label("greet", "production", 1, force=True, reason="incident 42")
    assert (event.gate, event.evidence, event.reason) == ("forced", None, "incident 42")


def test_rollouts_and_rollbacks_go_through_the_gate(gated: Registry) -> None:
    run_eval(gated, 1)
    gated.set_label("greet", "production", 1)
    with pytest.raises(GateError, match="greet@2"):
        gated.set_rollout("greet", "production", {1: 90, 2: 10})
    run_eval(gated, 2)
    assert gated.set_rollout("greet", "production", {1: 90, 2: 10}).gate == "passed"
    assert gated.rollback("greet", "production").to_target == {1: 100}


def test_concurrent_rollbacks_and_moves_write_only_what_the_gate_checked(gated: Registry) -> None:
    # production: v1 (forced, no run), then v2, then v3 (both with passing runs). Eight rollbacks and moves at once:
    # the gate was checked outside the write lock and the rollback's target recomputed inside it, so a second
    # rollback landed on v1, recorded as "passed" with v2's run as evidence.
    gated.settings = dataclasses.replace(gated.settings, gate_no_regression=())  # v1 has no run to compare with
    gated.push_spec("greet", {"template": "Say hey to {{ name }}", "model": "python:models_for_gate:polite"})
    gated.set_label("greet", "production", 1, force=True, reason="first release, before evals")
    for version in (2, 3):
        run_eval(gated, version)
        gated.set_label("greet", "production", version)
    barrier = threading.Barrier(8)

    def rollback() -> object:
        barrier.wait(timeout=60)
        return gated.rollback("greet", "production", actor="racer")

    def move() -> object:
        barrier.wait(timeout=60)
        return gated.set_label("greet", "production", 3, actor="racer")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(rollback if n % 2 else move) for n in range(8)]
        outcomes = [future.exception(timeout=300) or future.result() for future in futures]

    refused = [outcome for outcome in outcomes if isinstance(outcome, GateError)]
    assert all(isinstance(outcome, (GateError, LabelEvent)) for outcome in outcomes), outcomes
    assert all("greet@1" in str(error) for error in refused)  # only v1 lacks evidence
    for event in gated.history("greet", "production"):
        if event.gate == "passed":  # the evidence is a passing run of the version the label moved to
            run = gated.store.get_run(event.evidence or "")
            assert (run.status, {run.version: 100}) == ("passed", event.to_target), event
        else:
            assert (event.gate, event.to_target) == ("forced", {1: 100}), event
    assert gated.labels("greet")[0].target in ({2: 100}, {3: 100})


def test_unprotected_labels_move_freely_but_promote_needs_evidence(gated: Registry) -> None:
    assert gated.set_label("greet", "staging", 2).gate is None
    with pytest.raises(GateError):
        gated.promote("greet", "staging")
    run_eval(gated, 1)
    event = gated.promote("greet", "staging")
    assert (event.to_target, event.kind, event.gate) == ({1: 100}, "promote", "passed")


def test_promote_picks_the_newest_version_with_a_passing_run(gated: Registry) -> None:
    run_eval(gated, 1)
    run_eval(gated, 2, model="python:models_for_gate:rude")
    assert gated.promote("greet", "production").to_target == {1: 100}
    run_eval(gated, 2)
    assert gated.promote("greet", "production").to_target == {2: 100}
    gated.push_spec("greet", {"template": "Say hey to {{ name }}", "model": "python:models_for_gate:polite"})
    with pytest.raises(GateError, match="no eval run of greet@3"):
        gated.promote("greet", "production", version=3)


def test_scenario_files_for_reads_prompt_and_hash(tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    (evals / "sub").mkdir(parents=True)
    (evals / "a.yaml").write_text("prompt: p\nscenarios: []\n")
    (evals / "sub" / "b.yml").write_text("prompt: p\nscenarios: [{name: x}]\n")
    (evals / "other.yaml").write_text("prompt: q\nscenarios: []\n")
    (evals / "rows.yaml").write_text("- {a: 1}\n")  # a dataset
    (evals / "broken.yaml").write_text("prompt: [\n")
    files = scenario_files_for("p", evals, tmp_path)
    assert [ref.path for ref in files] == ["evals/a.yaml", "evals/sub/b.yml", "repeat"]
    assert all(len(ref.sha256) == 64 for ref in files[:2]) and files[2].sha256 == "as written"


def _run(**changes: object) -> RunRecord:
    record = RunRecord(
        id="r" * 32,
        prompt="p",
        version=1,
        model="m",
        status="passed",
        started_at=datetime.now(timezone.utc),
        scenario_files=[ScenarioFileRef(path="evals/a.yaml", sha256="h")],
        scenarios=[ScenarioStats(name="s", file="evals/a.yaml", cases=2, passed=2)],
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_the_newest_complete_run_decides() -> None:
    version = PromptVersion(name="p", number=1, content_hash="x", spec={})
    files = [ScenarioFileRef(path="evals/a.yaml", sha256="h")]
    good, bad = _run(id="g" * 32), _run(id="b" * 32, status="failed")
    # A flaky suite re-run until green once opened the gate on the older passing run: no more.
    refused = check_gate([bad, good], version, files, "m")
    assert (refused.passed, refused.run) == (False, bad)
    assert refused.problems == [
        f"run {'b' * 12} failed",
        f"run {'g' * 12} passed, but run {'b' * 12} is newer, on the same scenario files and model: "
        "the newest complete run decides",
    ]
    assert check_gate([good, bad], version, files, "m").run is good  # and a newer passing run opens it again
    assert not check_gate([bad], version, files, "m").passed
    # Runs that are no evidence either way do not close it: unfinished, partial, another model, other files.
    for no_say in (
        _run(id="u" * 32, status="running"),
        _run(id="i" * 32, status="interrupted"),
        _run(id="d" * 32, status="failed", scenarios=[ScenarioStats(name="s", file="evals/a.yaml", deselected=2)]),
        _run(id="o" * 32, status="failed", model="other"),
        _run(id="f" * 32, status="failed", scenario_files=[ScenarioFileRef(path="evals/a.yaml", sha256="old")]),
    ):
        assert check_gate([no_say, good], version, files, "m").run is good, no_say.id
    assert check_gate([good], version, [], "m").problems == [
        "no scenario files target p: a gated label needs scenarios"
    ]
    assert check_gate([good], version, files, None).passed  # no model to check


def test_cli_label_refuses_and_promote_moves(gated: Registry, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(project))
    runner = CliRunner()
    refused = runner.invoke(app, ["label", "greet", "production", "1"])
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0] == "error: production is protected: greet@1 needs a passing eval run first"
    assert "no eval run of greet@1" in refused.stderr

    (project / "prompts").mkdir(exist_ok=True)
    (project / "prompts" / "greet.yaml").write_text(
        textwrap.dedent(
            """\
            model: python:models_for_gate:polite
            template: Say hello to {{ name }}
            """
        )
    )
    evaluated = runner.invoke(app, ["eval"])
    assert evaluated.exit_code == 0, evaluated.stdout + evaluated.stderr
    promoted = runner.invoke(app, ["promote", "greet", "--to", "production"])
    assert promoted.exit_code == 0, promoted.stderr
    lines = promoted.stdout.splitlines()
    assert lines[0] == "greet: production -> v1 (was -)"
    assert lines[1].startswith("  gate: passed (run ")


def test_the_report_explains_the_verdict_part_by_part(gated: Registry, project: Path) -> None:
    record = run_eval(gated, 1)
    (project / "models_for_gate.py").write_text(MODEL + "\n# edited\n")
    report = gated.gate_report("greet", version=1)
    assert (report.label, report.gated, report.verdict.passed, report.verdict.run) == (
        "production",
        True,
        False,
        record,
    )
    states = {part.name: part.state for part in report.parts}
    assert states == {
        "version": "current",
        "python:models_for_gate": "changed",
        "evals/greet.yaml": "current",
        "repeat": "current",
    }
    assert report.verdict.problems == [f"python:models_for_gate changed since run {record.id[:8]}"]
    assert gated.gate_report("greet").version.number == 2  # the newest, without a run
    assert {part.state for part in gated.gate_report("greet").parts} == {"not covered"}
