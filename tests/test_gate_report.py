"""The gate's verdict explained: ``promptlane gate``, ``GET /api/v1/prompts/{name}/-/gate``, the JSON both share
(``registry.wire.gate_report_to_json``), and the same report read from a server (``HttpStore.gate_report``).
(The web UI's prompt page shows it too: tests/test_ui.py and tests/test_ui_browser.py.)"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from _live import LiveServer, served_registry
from promptlane.cli import app
from promptlane.config import Settings
from promptlane.errors import NotFoundError
from promptlane.registry import Registry
from promptlane.registry.gate import GateReport
from promptlane.registry.no_regression import Comparison, ScenarioComparison
from promptlane.registry.regression import rate_test, score_test
from promptlane.registry.wire import gate_report_from_json, gate_report_to_json
from promptlane.server import create_app, schemas
from test_gate import MODEL, SCENARIOS, _rows_project, run_eval
from test_server import REPLY, SPEC_V1, SPEC_V2, Api, record_run

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def gated(project: Path, store_url: str) -> Iterator[Registry]:
    """A project with one prompt (v1 and v2), its scenarios, a model module, and `production` protected (as in
    tests/test_gate.py)."""
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


def gate(*args: str) -> Result:
    return runner.invoke(app, ["gate", *args])


def lines(result: Result) -> list[str]:
    """The output's lines, each with its runs of spaces made one (table columns)."""
    return [re.sub(r"\s+", " ", line).strip() for line in result.stdout.splitlines()]


# --- the command ----------------------------------------------------------------------------------------------


def test_a_version_without_a_run_is_closed_and_says_what_to_run(gated: Registry) -> None:
    result = gate("greet")

    assert result.exit_code == 1, result.output
    content = gated.version("greet", 2).content_hash
    assert lines(result) == [
        "greet@2 -> production: closed",
        "evidence: no run",
        "part state then now",
        f"version not covered - {content[:12]}",
        f"python:models_for_gate not covered - {gated.gate_report('greet').parts[1].now[:12]}",
        f"evals/greet.yaml not covered - {gated.gate_report('greet').parts[2].now[:12]}",
        "repeat not covered - as written",
        "To open the gate:",
        "- no eval run of greet@2: promptlane eval --prompt greet --version 2",
    ]


def test_an_open_gate_shows_the_evidence_run_and_each_scenario(gated: Registry) -> None:
    record = run_eval(gated, 1, created_by="ci")

    result = gate("greet", "--version", "1")

    assert result.exit_code == 0, result.output
    shown = lines(result)
    assert shown[0] == "greet@1 -> production: open"
    when = record.started_at.strftime("%Y-%m-%d %H:%M UTC")
    assert shown[1] == f"evidence: run {record.id[:12]} passed, {when}, model python:models_for_gate:polite, by ci"
    assert [line.split()[1] for line in shown[3:7]] == ["current"] * 4
    assert shown[7:] == [
        "scenario file passed pass rate needs",
        "polite evals/greet.yaml 1/1 100% 100% ok",
        "also-polite evals/greet.yaml 1/1 100% 100% ok",
        "The gate is open: greet@1 may take production.",
    ]


def test_a_changed_part_is_named_with_both_hashes(gated: Registry, project: Path) -> None:
    record = run_eval(gated, 1)
    then = next(ref.sha256 for ref in record.scenario_files if ref.path == "python:models_for_gate")
    (project / "models_for_gate.py").write_text(MODEL + "\n# edited\n")
    now = next(
        part.now for part in gated.gate_report("greet", version=1).parts if part.name == "python:models_for_gate"
    )

    result = gate("greet", "--version", "1")

    assert result.exit_code == 1
    shown = lines(result)
    assert shown[1].startswith(f"newest run looked at: run {record.id[:12]} passed")
    assert f"python:models_for_gate changed {then[:12]} {now[:12]}" in shown
    assert shown[-2:] == ["To open the gate:", f"- python:models_for_gate changed since run {record.id[:8]}"]


def test_a_regression_shows_the_serving_versions_rates_with_the_test(gated: Registry) -> None:
    _rows_project(gated, 30, "contains: Hello")
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:mostly"})
    serving, candidate = run_eval(gated, 1), run_eval(gated, 3)
    gated.set_label("greet", "production", 1)

    result = gate("greet")

    assert result.exit_code == 1
    shown = lines(result)
    assert shown[0] == "greet@3 -> production: closed"
    assert shown[1].startswith(f"evidence: run {candidate.id[:12]} passed")  # it qualified: the comparison refuses
    assert "rows evals/greet.yaml 15/30 50% 50% ok" in shown
    [problem] = gated.gate_report("greet").verdict.problems  # the regression, worded by the no-regression rule
    assert "rows" in problem and "15/30 (50%) vs 30/30 (100%) serving, p<0.001" in problem
    assert shown[-4:] == [
        f"against greet@1, which production serves (run {serving.id[:12]}):",
        "rows: 15/30 (50%) vs 30/30 (100%) serving, p<0.001 regressed",
        "To open the gate:",
        f"- {problem}",
    ]


def test_a_serving_version_without_a_run_to_compare_with_says_so(gated: Registry) -> None:
    gated.set_label("greet", "production", 1, force=True, reason="before evals")
    run_eval(gated, 2)

    shown = lines(gate("greet"))

    assert "against greet@1, which production serves: it has no complete run on the current inputs to compare with" in (
        shown
    )


def test_an_unprotected_label_says_only_promote_goes_through_the_gate(gated: Registry) -> None:
    run_eval(gated, 1)
    result = gate("greet", "--version", "1", "--label", "staging")
    assert result.exit_code == 0
    assert (
        lines(result)[0] == "greet@1 -> staging: open (staging is not protected: only `promote` goes through the gate)"
    )


def test_json_is_the_report_the_api_sends(gated: Registry) -> None:
    _rows_project(gated, 30, "contains: Hello")
    gated.push_spec("greet", {"template": "Say hello to {{ name }}", "model": "python:rows_for_gate:mostly"})
    run_eval(gated, 1)
    run_eval(gated, 3)
    gated.set_label("greet", "production", 1)

    result = gate("greet", "--json")

    assert result.exit_code == 1  # closed, whatever the format
    data = json.loads(result.stdout)
    report = gated.gate_report("greet")
    assert data == gate_report_to_json(report)
    schemas.GateReport.model_validate(data)
    assert data["verdict"]["comparison"]["scenarios"][0]["description"] == (
        "rows: 15/30 (50%) vs 30/30 (100%) serving, p<0.001"
    )
    assert gate_report_from_json(data) == report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["greet", "--label", "latest"], "error: 'latest' is reserved: it always points at the newest version"),
        (["nope"], "error: no prompt named 'nope'"),
        (["greet", "--version", "9"], "error: prompt 'greet' has no version 9"),
    ],
)
def test_a_bad_label_prompt_or_version_is_a_usage_error(gated: Registry, args: list[str], message: str) -> None:
    result = gate(*args)
    assert (result.exit_code, result.stderr.strip()) == (2, message)


# --- the JSON ---------------------------------------------------------------------------------------------------


def test_a_mean_of_no_scores_is_null_in_json_and_nan_again_when_read(gated: Registry) -> None:
    report = gated.gate_report("greet")
    serving = gated.version("greet", 1)
    scores = score_test([], [0.9, 0.8, 0.7, 0.9, 0.8])
    assert math.isnan(scores.candidate_mean)
    compared = ScenarioComparison(scenario="s", file="evals/s.yaml", rate=rate_test(1, 2, 2, 2), score=scores)
    report = replace(
        report,
        verdict=replace(report.verdict, comparison=Comparison(serving=serving, baseline=None, scenarios=[compared])),
    )

    data = json.loads(json.dumps(gate_report_to_json(report), allow_nan=False))

    assert data["verdict"]["comparison"]["scenarios"][0]["score"]["candidate_mean"] is None
    comparison = gate_report_from_json(data).verdict.comparison
    assert comparison is not None and comparison.scenarios[0].score is not None
    assert math.isnan(comparison.scenarios[0].score.candidate_mean)
    assert comparison.scenarios[0].score.baseline_mean == scores.baseline_mean


# --- the API ----------------------------------------------------------------------------------------------------

GATE = f"/prompts/{REPLY}/-/gate"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """The server (SQLite, `production` protected, no project files) with support/reply at v1 and v2."""
    registry, secrets = served_registry(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    for spec in (SPEC_V1, SPEC_V2):
        registry.push_spec(REPLY, spec, author="tests")
    yield Api(
        client=TestClient(create_app(registry), base_url="http://127.0.0.1:8750"), registry=registry, secrets=secrets
    )
    registry.close()


def test_the_api_reports_by_the_servers_requirements(api: Api) -> None:
    closed = api.call("GET", GATE, scope="read")
    assert closed.status_code == 200
    assert closed.json()["verdict"] == {
        "passed": False,
        "run": None,
        "problems": [f"no scenario files target {REPLY}: a gated label needs scenarios"],
        "comparison": None,
    }
    assert (closed.json()["label"], closed.json()["version"]["number"]) == ("production", 2)

    run_id = record_run(api, 1)  # the server has no project files: what this run saw is current
    opened = api.call("GET", f"{GATE}?label=production&version=1", scope="read").json()

    assert opened["verdict"]["passed"] is True and opened["verdict"]["run"]["id"] == run_id
    content = api.registry.version(REPLY, 1).content_hash
    assert opened["parts"] == [
        {"name": "version", "now": content, "then": content, "state": "current"},
        {"name": "evals/reply.yaml", "now": "5" * 64, "then": "5" * 64, "state": "current"},
    ]
    schemas.GateReport.model_validate(opened)


def test_the_api_compares_with_the_serving_versions_run(api: Api) -> None:
    api.registry.set_label(REPLY, "production", 1, force=True, reason="before the server had runs")
    baseline = record_run(api, 1)
    record_run(api, 2)

    comparison = api.call("GET", GATE, scope="read").json()["verdict"]["comparison"]

    assert comparison["serving"]["number"] == 1 and comparison["baseline"]["id"] == baseline
    [scenario] = comparison["scenarios"]
    assert scenario["description"] == "greets: 2/2 (100%) vs 2/2 (100%) serving, p=1"
    assert (scenario["rate"]["p_value"], scenario["regressed"], scenario["score"]) == (1.0, False, None)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?label=latest", 422, "'latest' is reserved: it always points at the newest version"),
        ("?label=Prod", 422, "invalid label 'Prod'"),
        ("?version=0", 422, "version: an integer from 1 to 2147483647"),
        ("?version=x", 422, "version: an integer from 1 to 2147483647"),
        ("?version=9", 404, f"prompt '{REPLY}' has no version 9"),
    ],
)
def test_a_bad_label_or_version_is_refused(api: Api, query: str, status: int, message: str) -> None:
    answer = api.call("GET", GATE + query, scope="read")
    assert answer.status_code == status
    assert answer.json()["error"].startswith(message)


def test_an_unknown_prompt_is_404_and_the_report_needs_the_read_scope(api: Api) -> None:
    assert api.call("GET", "/prompts/nope/-/gate", scope="read").status_code == 404
    assert api.call("GET", GATE, scope=None).status_code == 401
    assert api.call("POST", GATE, scope="admin").status_code == 405


# --- over HTTP ------------------------------------------------------------------------------------------------


def test_a_client_of_a_server_gets_the_servers_report(api: Api, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record_run(api, 1)
    with LiveServer(api.registry) as server:
        client = Registry(server.url, token=api.secrets["read"], settings=Settings(root=project))
        try:
            report = client.gate_report(REPLY, version=1)
            with pytest.raises(NotFoundError, match="has no version 9"):
                client.gate_report(REPLY, version=9)
        finally:
            client.close()
        assert isinstance(report, GateReport) and report.verdict.passed
        assert gate_report_to_json(report) == api.call("GET", f"{GATE}?version=1", scope="read").json()

        monkeypatch.setenv("PROMPTLANE_REGISTRY", server.url)
        monkeypatch.setenv("PROMPTLANE_TOKEN", api.secrets["read"])
        opened, closed = gate(REPLY, "--version", "1"), gate(REPLY)
    assert opened.exit_code == 0, opened.output
    assert lines(opened)[0] == f"{REPLY}@1 -> production: open"
    assert closed.exit_code == 1
    assert lines(closed)[-1] == f"- no eval run of {REPLY}@2: promptlane eval --prompt {REPLY} --version 2"
