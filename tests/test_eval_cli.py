"""``promptlane eval``, ``runs`` and ``schema`` end to end, on a copy of the support example."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from promptlane.cli import app
from promptlane.config import load_settings
from promptlane.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"
runner = CliRunner(env={"COLUMNS": "200"})

EXAMPLE_CASES = 12  # four single scenarios, four dataset rows x two repeats

# A scenario of support/reply whose expectations a test chooses.
EXTRA = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: flip
    variables: {customer: Ana, ticket: "I want a refund for order 123, it arrived broken."}
    tools:
      lookup_order:
        - match: {order_id: "123"}
          returns: {status: delivered, total: 42.5}
    expect:
      - contains: FLIP
"""


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def run_ids(stdout: str) -> list[str]:
    return re.findall(r"^  run ([0-9a-f]{12})  model", stdout, flags=re.MULTILINE)


@pytest.fixture
def example(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project with the example's prompts and scenarios; its model function importable."""
    shutil.rmtree(project / "prompts")
    shutil.copytree(EXAMPLE / "prompts", project / "prompts")
    shutil.copytree(EXAMPLE / "evals", project / "evals")
    monkeypatch.syspath_prepend(str(REPO))  # examples.support.model; restored afterwards
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    return project


def extra(project: Path, contains: str, *, name: str = "extra.yaml") -> Path:
    path = project / "evals" / name
    path.write_text(EXTRA.replace("FLIP", contains))
    return path


def versions(project: Path, name: str = "support/reply") -> list[int]:
    """The prompt's stored versions (none when it was never pushed)."""
    with Registry(settings=load_settings(project)) as registry:
        if name not in {summary.name for summary in registry.list_prompts()}:
            return []
        return [version.number for version in registry.versions(name)]


def eval_ok(*args: str) -> str:
    result = run("eval", *args)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr, result.exception)
    return result.stdout


# --- exit status ------------------------------------------------------------------------------------------------


def test_every_scenario_passing_exits_0_and_the_run_is_listed(example: Path) -> None:
    stdout = eval_ok()

    assert re.search(r"^support/reply v1  passed  12/12 passed \(100%\)", stdout, re.MULTILINE), stdout
    for scenario in ("refund", "unknown-order", "pro-tier", "follow-up", "tickets"):
        assert re.search(rf"^  {scenario} .* ok$", stdout, re.MULTILINE), stdout
    (run_id,) = run_ids(stdout)

    listed = run("runs", "list")
    assert listed.exit_code == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith(run_id))
    assert row.split()[3:6] == ["support/reply", "v1", "-"]
    assert "passed" in row.split() and "12/12" in row.split()


def test_a_failing_scenario_exits_1_and_prints_why(example: Path) -> None:
    extra(example, "teleport")
    result = run("eval")

    assert result.exit_code == 1, (result.stdout, result.stderr)
    stdout = result.stdout
    assert re.search(r"^support/reply v1  failed  12/13 passed", stdout, re.MULTILINE), stdout
    assert re.search(r"^  flip +1 +0 +1 +0 +0% +100% +below$", stdout, re.MULTILINE), stdout
    failure = stdout[stdout.index("FAILED flip") :]
    assert "evals/extra.yaml:4" in failure.splitlines()[0]
    assert "x contains: output does not contain 'teleport'" in failure
    assert 'variables {"customer": "Ana", "ticket": "I want a refund for order 123, it arrived broken."}' in failure
    assert 'tool lookup_order({"order_id": "123"}) -> {"status": "delivered", "total": 42.5}' in failure
    assert "output Hi Ana, order 123 is delivered. I can offer you a refund of $42.50." in failure
    assert "PASSED" not in stdout  # only failures are listed


def test_a_bad_scenario_file_exits_2_naming_file_and_line(example: Path) -> None:
    (example / "evals" / "bad.yaml").write_text(
        textwrap.dedent(
            """\
            prompt: support/reply
            scenarios:
              - name: typo
                variables: {customer: Ana, ticket: hi}
                expect:
                  - containz: refund
            """
        )
    )
    result = run("eval")

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "bad.yaml:6" in line
    assert "unknown expectation 'containz' (did you mean 'contains'?)" in line
    assert versions(example) == []  # nothing pushed, nothing run


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nosuch:model", "unknown provider 'nosuch': not one of pydantic-ai's (openai, anthropic, google, groq, "
         "mistral, bedrock, ...)"),
        ("opnai:gpt-4o-mini", "unknown provider 'opnai': did you mean 'openai'?"),
        ("gpt-4o-mini", "model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?"),
        ("python:nomodule", "'python:nomodule' is not python:module:function (like "
         "python:examples.support.model:respond)"),
    ],
)  # fmt: skip
def test_an_unknown_model_exits_2(example: Path, model: str, message: str) -> None:
    result = run("eval", "--model", model)

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [f"error: model: {message}"]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert run("runs", "list").stdout.count("support/reply") == 0  # no run started


def test_a_scenario_file_model_without_a_provider_exits_2_naming_file_and_line(example: Path) -> None:
    path = example / "evals" / "reply.yaml"
    path.write_text(path.read_text().replace("model: python:examples.support.model:respond", "model: gpt-4o-mini"))
    result = run("eval")

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        "error: evals/reply.yaml:5: model: model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?"
    ]
    assert versions(example) == []


def test_an_unknown_prompt_exits_2(example: Path) -> None:
    result = run("eval", "--prompt", "support/nope")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: no scenarios for prompt 'support/nope' (found: support/reply)"]


def test_version_and_label_together_exit_2(example: Path) -> None:
    result = run("eval", "--version", "1", "--label", "production")

    assert result.exit_code == 2
    assert "give --version or --label, not both" in result.stderr
    assert versions(example) == []


# --- which version -------------------------------------------------------------------------------------------------


def test_version_and_label_evaluate_that_version_without_pushing(example: Path) -> None:
    assert run("push").exit_code == 0
    assert run("label", "support/reply", "staging", "1").exit_code == 0
    reply = example / "prompts" / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("Reply to a customer ticket", "Reply to a ticket, v2"))

    by_label = eval_ok("--label", "staging")
    assert re.search(r"^support/reply v1 \(staging\)  passed", by_label, re.MULTILINE), by_label
    by_version = eval_ok("--version", "1")
    assert re.search(r"^support/reply v1  passed", by_version, re.MULTILINE), by_version
    assert versions(example) == [1]

    with Registry(settings=load_settings(example)) as registry:
        labels = [(r.version, r.label) for r in registry.store.list_runs("support/reply")]
    assert len(labels) == 2 and set(labels) == {(1, None), (1, "staging")}


def test_by_default_the_prompt_files_are_pushed_first(example: Path) -> None:
    eval_ok()
    assert versions(example) == [1]
    eval_ok()
    assert versions(example) == [1]  # unchanged files: no new version

    reply = example / "prompts" / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("Reply to a customer ticket", "Reply to a ticket, v2"))
    stdout = eval_ok()
    assert versions(example) == [1, 2]
    assert re.search(r"^support/reply v2  passed", stdout, re.MULTILINE), stdout


# --- reports --------------------------------------------------------------------------------------------------------


def test_json_and_junit_reports(example: Path) -> None:
    extra(example, "teleport")
    result = run("eval", "--json", "out.json", "--junit", "out.xml")
    assert result.exit_code == 1

    data = json.loads((example / "out.json").read_text())
    (report,) = data["runs"]
    assert (report["prompt"], report["version"], report["status"]) == ("support/reply", 1, "failed")
    assert report["counts"] == {"cases": 13, "passed": 12, "failed": 1, "errored": 0}
    assert report["pass_rate"] == 12 / 13
    assert len(report["cases"]) == 13
    cases = {case["case"]: case for case in report["cases"]}
    assert cases["flip"]["status"] == "failed"
    assert cases["flip"]["evaluations"][0]["reason"].startswith("output does not contain 'teleport'")
    assert cases["flip"]["tool_calls"][0]["args"] == {"order_id": "123"}
    assert {s["name"]: s["met"] for s in report["scenarios"]}["flip"] is False
    assert report["id"].startswith(run_ids(result.stdout)[0])

    suites = ET.parse(example / "out.xml").getroot()
    (suite,) = suites.findall("testsuite")
    assert suite.get("name") == "support/reply@1"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("13", "1", "0")
    testcases = suite.findall("testcase")
    assert len(testcases) == 13
    (failed,) = [case for case in testcases if case.find("failure") is not None]
    assert (failed.get("classname"), failed.get("name"), failed.get("file")) == (
        "support/reply.flip",
        "flip",
        "evals/extra.yaml",
    )
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("output does not contain 'teleport'")
    assert "contains: output does not contain 'teleport'" in (failure.text or "")
    run_property = suite.find("properties/property[@name='promptlane.run.id']")
    assert run_property is not None and run_property.get("value") == report["id"]


def test_the_json_report_has_no_duplicate_keys(example: Path) -> None:
    eval_ok("--json", "out.json")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}"
        return dict(pairs)

    (report,) = json.loads((example / "out.json").read_text(), object_pairs_hook=unique)["runs"]
    assert report["counts"]["cases"] == 12


# --- record / replay ------------------------------------------------------------------------------------------------


def _outputs(path: Path) -> dict[str, Any]:
    (report,) = json.loads(path.read_text())["runs"]
    return {case["case"]: (case["output"], case["tool_calls"], case["evaluations"]) for case in report["cases"]}


def test_cache_on_records_and_replay_needs_no_model(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\nrecordings = "recorded"\n')
    eval_ok("--cache", "on", "--json", "recorded.json")
    files = list((example / "recorded").rglob("*.json"))
    # One per model request: 12 cases, 11 of which call the tool once (a second request), and 1 judge verdict.
    assert len(files) == 12 + 11 + 1

    import examples.support.model as example_model

    def gone(*_args: Any) -> Any:
        raise RuntimeError("no model here")

    monkeypatch.setattr(example_model, "respond", gone)
    monkeypatch.setattr(example_model, "judge", gone)

    # Without the recordings the model is unusable...
    broken = run("eval", "--json", "broken.json")
    assert broken.exit_code == 1
    assert "RuntimeError: no model here" in broken.stdout
    # ...with them, the run is the same.
    eval_ok("--cache", "replay", "--json", "replayed.json")
    assert _outputs(example / "replayed.json") == _outputs(example / "recorded.json")
    assert len(list((example / "recorded").rglob("*.json"))) == len(files)


# --- runs show / compare, schema -------------------------------------------------------------------------------------


def test_runs_show_lists_failures_first_with_reasons(example: Path) -> None:
    extra(example, "teleport")
    (run_id,) = run_ids(run("eval").stdout)

    shown = run("runs", "show", run_id[:6], "--all")
    assert shown.exit_code == 0, shown.stdout
    stdout = shown.stdout
    assert re.search(r"^support/reply v1  failed  12/13 passed", stdout, re.MULTILINE), stdout
    statuses = re.findall(r"^(PASSED|FAILED|ERROR) (\S+)", stdout, re.MULTILINE)
    assert statuses[0] == ("FAILED", "flip")
    assert [s for s, _ in statuses[1:]] == ["PASSED"] * 12
    assert "x contains: output does not contain 'teleport'" in stdout

    unknown = run("runs", "show", "ffffffffffff")
    assert unknown.exit_code == 2  # something that does not exist: a usage error (docs/cli.md, exit status)
    assert unknown.stderr.startswith("error: no run 'ffffffffffff'")


def test_runs_compare_reports_flipped_cases(example: Path) -> None:
    extra(example, "refund")
    extra(example, "teleport", name="other.yaml")
    (example / "evals" / "other.yaml").write_text(
        (example / "evals" / "other.yaml").read_text().replace("name: flip", "name: flop")
    )
    first_run = run("eval")  # flip passes, flop fails
    assert first_run.exit_code == 1
    (first,) = run_ids(first_run.stdout)

    extra(example, "teleport")
    (example / "evals" / "other.yaml").write_text(
        (example / "evals" / "other.yaml").read_text().replace("teleport", "refund")
    )
    second_run = run("eval")
    assert second_run.exit_code == 1
    (second,) = run_ids(second_run.stdout)

    compared = run("runs", "compare", first, second)
    assert compared.exit_code == 0, compared.stdout
    lines = compared.stdout.splitlines()
    assert "newly failing: 1" in lines
    assert any(
        line.startswith("  flip::flip  passed -> failed  output does not contain 'teleport'") for line in lines
    ), lines
    assert "newly passing: 1" in lines
    assert "  flop::flop  failed -> passed" in lines
    assert "unchanged: 12" in lines


def test_schema_scenario_is_a_json_schema_for_scenario_files(example: Path) -> None:
    result = run("schema", "scenario")
    assert result.exit_code == 0

    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = yaml.safe_load((EXAMPLE / "evals" / "reply.yaml").read_text())
    assert list(validator.iter_errors(good)) == []
    bad = {**good, "scenarios": [{**good["scenarios"][0], "expect": [{"containz": "refund"}]}]}
    assert list(validator.iter_errors(bad)) != []
    assert list(validator.iter_errors({**good, "promt": "x"})) != []


def test_a_dataset_that_breaks_mid_run_is_exit_2_with_the_run_saved_and_reported(example: Path) -> None:
    rows = example / "evals" / "datasets" / "tickets.jsonl"
    rows.write_text(rows.read_text() + "{not json\n")

    result = run("eval", "--json", "out.json")

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "tickets.jsonl:5: invalid JSON" in result.stderr
    assert "support/reply v1  error" in result.stdout  # the summary of what ran
    (report,) = json.loads((example / "out.json").read_text())["runs"]
    assert report["status"] == "error" and report["reason"].startswith("SpecError")
    assert report["counts"]["cases"] == len(report["cases"]) > 0


# --- dataset columns ----------------------------------------------------------------------------------------------


def test_a_column_no_row_has_exits_2_before_the_run_naming_dataset_and_column(example: Path) -> None:
    scenarios = example / "evals" / "reply.yaml"
    scenarios.write_text(scenarios.read_text().replace('contains: "{{ expected }}"', 'contains: "{{ expcted }}"'))

    result = run("eval")

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        "error: evals/datasets/tickets.jsonl: no row has a column 'expcted' (did you mean 'expected'?): "
        "the expectations of scenario 'tickets' (evals/reply.yaml:60) use it"
    ]
    assert result.stdout == ""  # no case ran
    assert "support/reply" not in run("runs", "list").stdout


def test_a_row_without_a_column_is_a_case_error_located_at_its_row(example: Path) -> None:
    rows = example / "evals" / "datasets" / "tickets.jsonl"
    lines = rows.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"expected"', '"expectd"')
    rows.write_text("".join(lines))

    result = run("eval", "--json", "out.json")

    # The run goes on: 6 of the scenario's 8 cases pass, over its threshold of 75%.
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "support/reply v1  passed  10/12 passed (83%), 2 errors" in result.stdout
    assert "ERROR tickets[row-3][repeat-1]  evals/datasets/tickets.jsonl" in result.stdout
    message = (
        "SpecError: evals/datasets/tickets.jsonl:3: the row has no column 'expected' (did you mean 'expectd'?): "
        "the expectations use it"
    )
    assert message in result.stdout
    (report,) = json.loads((example / "out.json").read_text())["runs"]
    cases = {case["case"]: case for case in report["cases"]}
    third = cases["tickets[row-3][repeat-2]"]
    assert (third["status"], third["file"], third["line"], third["row"]) == (
        "error",
        "evals/datasets/tickets.jsonl",
        3,
        3,
    )
    assert cases["refund"]["file"] == "evals/reply.yaml"  # a case without a dataset stays in its scenario file


STOPPER = """\
from pydantic_ai.messages import ModelResponse, TextPart

SERVER = None  # the test's live registry server


def answer(messages, info):
    # The registry goes away while the run is under way: its cases cannot be saved.
    if SERVER is not None:
        SERVER.stop()
    return ModelResponse(parts=[TextPart("ok")])
"""


def test_the_registry_going_away_during_a_run_exits_3(
    project: Path, support_prompts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from _live import LiveServer, served_registry

    registry, secrets = served_registry(project / "server", f"sqlite:///{project / 'server.db'}")
    server = LiveServer(registry).start()
    (project / "stopper_model.py").write_text(STOPPER)
    monkeypatch.syspath_prepend(str(project))
    stopper = importlib.import_module("stopper_model")
    (project / "evals").mkdir()
    scenarios = "prompt: support/reply\nmodel: python:stopper_model:answer\nscenarios:\n"
    scenarios += "".join(f"  - name: s{n}\n    variables: {{customer: A, ticket: B}}\n" for n in range(3))
    (project / "evals" / "reply.yaml").write_text(scenarios)
    env = {"PROMPTLANE_TOKEN": secrets["admin"], "PROMPTLANE_REGISTRY": server.url}
    try:
        assert runner.invoke(app, ["push"], env=env).exit_code == 0
        stopper.SERVER = server
        result = runner.invoke(app, ["eval", "--retries", "0", "-c", "1"], env=env)
    finally:
        server.stop()
        registry.close()
    assert result.exit_code == 3, result.output
    assert f"registry server {server.url}" in result.stderr
    assert "Traceback" not in result.output


MARKER_MODEL = """\
from pathlib import Path

Path(__file__).with_name("ran.txt").write_text("imported")


def answer(messages, info):
    return "ok"
"""


def test_a_python_model_named_only_by_a_stored_version_does_not_run(
    project: Path, support_prompts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone with a write token pushed a version whose model is code; this project's scenarios name no model.
    (project / "planted.py").write_text(MARKER_MODEL)
    registry = Registry(settings=load_settings(project))
    registry.push_spec("greet", {"template": "Hi {{ name }}", "model": "python:planted:answer"})
    registry.close()
    (project / "evals").mkdir()
    (project / "evals" / "greet.yaml").write_text(
        "prompt: greet\nscenarios:\n  - name: s\n    variables: {name: Ana}\n    expect:\n      - contains: ok\n"
    )
    refused = run("eval", "--prompt", "greet", "--version", "1")
    assert refused.exit_code == 2, refused.output
    assert "greet@1 names the model 'python:planted:answer', Python code that comes from the registry" in (
        refused.stderr
    )
    assert "--allow-version-code" in refused.stderr
    assert not (project / "ran.txt").exists()  # never imported
    # Asked for explicitly, it runs.
    allowed = run("eval", "--prompt", "greet", "--version", "1", "--allow-version-code")
    assert allowed.exit_code == 0, allowed.output
    assert (project / "ran.txt").read_text() == "imported"
