"""A run in a real OpenTelemetry backend, Arize Phoenix, read back through its REST API.

Runs when Phoenix is installed (``make traces`` puts it in ``.phoenix/venv``; ``PROMPTLANE_PHOENIX`` names
another ``phoenix`` executable), and is skipped with the reason otherwise. One Phoenix is started for the module
on a free loopback port with a temporary working folder; ``promptlane eval`` of the support example (plus one
scenario that fails on purpose) sends its trace there with ``--otlp-endpoint``, as a user would; the spans are
then read with ``GET /v1/projects/{project}/spans`` and the filter expressions of docs/evals.md are run through
Phoenix's GraphQL API, as its filter bar runs them. Waiting for Phoenix is bounded by a generous patience; no
test measures time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("promptlane_phoenix", REPO / "examples" / "phoenix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


phoenix_example = _load_example()
# Read at import: the autouse fixture in conftest.py clears PROMPTLANE_* for every test.
PHOENIX = phoenix_example.executable()

pytestmark = [
    pytest.mark.serial,  # a Phoenix server is a heavy process: not beside the parallel tests
    pytest.mark.skipif(
        PHOENIX is None,
        reason=f"Phoenix is not installed: `make traces` installs it in {phoenix_example.DEFAULT_EXECUTABLE}, "
        "or set PROMPTLANE_PHOENIX to a `phoenix` executable",
    ),
]

FAILING_SCENARIO = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: zz-fails
    variables: {customer: Ana, ticket: "Hello there"}
    expect:
      - contains: a phrase the reply never has
"""

SPANS_MATCHING = """\
query ($project: ID!, $condition: String!) {
  node(id: $project) {
    ... on Project { spans(first: 1000, filterCondition: $condition) { edges { node { spanId } } } }
  }
}
"""


@dataclass(kw_only=True)
class TracedRun:
    """A run as ``promptlane eval --json`` recorded it and as Phoenix stored its trace."""

    phoenix: Any
    """The PhoenixServer (examples/phoenix.py)."""
    record: dict[str, Any]
    """The run, as ``--json`` writes it."""
    spans: list[dict[str, Any]]
    """Its trace's spans, from Phoenix's REST API."""
    exported: int
    """How many spans the CLI says it exported (``--json``'s ``export``)."""

    @property
    def root(self) -> dict[str, Any]:
        (root,) = [span for span in self.spans if span["parent_id"] is None]
        return root

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return [child for child in self.spans if child["parent_id"] == span["context"]["span_id"]]

    def subtree(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        found = [span]
        for child in self.children(span):
            found.extend(self.subtree(child))
        return found

    @property
    def cases(self) -> list[dict[str, Any]]:
        """The case spans: the run span's children."""
        return self.children(self.root)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    assert PHOENIX is not None
    with phoenix_example.serve(PHOENIX, tmp_path_factory.mktemp("phoenix")) as server:
        yield server


@pytest.fixture(scope="module")
def traced(phoenix: Any, tmp_path_factory: pytest.TempPathFactory) -> TracedRun:
    """`promptlane eval` of the support example and one failing scenario, traced to Phoenix."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "promptlane.toml").write_text('prompts = "prompts"\nevals = "evals"\n')
    shutil.copytree(EXAMPLE / "prompts", folder / "prompts")
    shutil.copytree(EXAMPLE / "evals", folder / "evals")
    (folder / "evals" / "fails.yaml").write_text(FAILING_SCENARIO)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PROMPTLANE_"))}
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]  # examples.support.model
    env.update(PYTHONPATH=os.pathsep.join(path), PROMPTLANE_AUTHOR="tester")
    command = [str(Path(sys.executable).parent / "promptlane"), "eval", "--otlp-endpoint", phoenix.url]
    done = subprocess.run(
        [*command, "--json", "run.json"], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1, done.stdout + done.stderr  # 1: zz-fails failed, as it must
    report = json.loads((folder / "run.json").read_text())
    (record,) = report["runs"]
    assert record["trace_id"], done.stdout + done.stderr
    assert report["export"]["ok"], report["export"]
    exported = report["export"]["signals"]["traces"]["exported"]
    assert exported >= phoenix_example.expected_spans(record)
    spans = phoenix_example.wait_for_spans(phoenix, "default", record["trace_id"], exported)
    return TracedRun(phoenix=phoenix, record=record, spans=spans, exported=exported)


def _describe(span: dict[str, Any]) -> str:
    attributes = span["attributes"]
    case = attributes.get("promptlane.case.id", attributes.get("promptlane.case", ""))
    return f"{span['name']} [{span['span_kind']}] {case}".strip()


def test_the_trace_arrives_whole(traced: TracedRun) -> None:
    assert traced.root["attributes"]["promptlane.run.id"] == traced.record["id"]
    assert len(traced.spans) == traced.exported
    assert len(traced.cases) == len(traced.record["cases"])


def test_every_chat_span_has_output_messages(traced: TracedRun) -> None:
    chats = [span for span in traced.spans if span["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(chats) >= sum(case["turns"] for case in traced.record["cases"])
    without = [
        _describe(span)
        for span in chats
        if span["span_kind"] != "LLM" or not any(key.startswith("llm.output_messages.") for key in span["attributes"])
    ]
    assert without == [], f"{len(without)} of {len(chats)} chat spans show no output messages in Phoenix"


def test_run_and_case_spans_have_input_and_output(traced: TracedRun) -> None:
    without = [
        f"{_describe(span)}: no {key}"
        for span in [traced.root, *traced.cases]
        for key in ("input.value", "output.value")
        if not span["attributes"].get(key)
    ]
    assert without == []


def test_run_and_case_spans_have_a_kind_phoenix_knows(traced: TracedRun) -> None:
    unknown = [_describe(span) for span in [traced.root, *traced.cases] if span["span_kind"] == "UNKNOWN"]
    assert unknown == []


def test_every_evaluation_is_present_under_its_case_with_a_distinct_name(traced: TracedRun) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    for case in traced.cases:
        found[_describe(case)] = [
            event["attributes"]
            for span in traced.subtree(case)
            for event in span["events"]
            if event["name"] == "gen_ai.evaluation.result"
        ]
    assert sum(map(len, found.values())) == sum(len(case["evaluations"]) for case in traced.record["cases"])
    names = {case: [result["gen_ai.evaluation.name"] for result in results] for case, results in found.items()}
    repeated = {case: sorted({n for n in each if each.count(n) > 1}) for case, each in names.items()}
    assert {case: each for case, each in repeated.items() if each} == {}, "evaluation names repeat within a case"
    labels = [result.get("gen_ai.evaluation.score.label") for results in found.values() for result in results]
    assert labels.count("fail") == 1  # zz-fails' one expectation


def _matching(traced: TracedRun, condition: str) -> set[str]:
    project = traced.phoenix.get("/v1/projects/default")["data"]["id"]
    data = traced.phoenix.graphql(SPANS_MATCHING, project=project, condition=condition)
    return {edge["node"]["spanId"] for edge in data["node"]["spans"]["edges"]}


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        pytest.param("gen_ai.prompt.version == '1'", "every span", id="by-version"),
        pytest.param("promptlane.prompt.label == 'latest'", "every span", id="by-label"),
        pytest.param("promptlane.case.passed == False", "the failed case", id="by-failed-case"),
        pytest.param("promptlane.scenario == 'refund'", "the refund case", id="by-scenario"),
        pytest.param("gen_ai.prompt.version == '2'", "nothing", id="another-version"),
        pytest.param("promptlane.prompt.label == 'production'", "nothing", id="another-label"),
    ],
)
def test_the_documented_filter_expressions_work_in_phoenix(traced: TracedRun, condition: str, matches: str) -> None:
    everything = {span["context"]["span_id"] for span in traced.spans}
    failed = [span for span in traced.cases if "zz-fails" in _describe(span)]
    expected = {
        "every span": everything,
        "the failed case": {span["context"]["span_id"] for span in failed},
        "the refund case": {span["context"]["span_id"] for span in traced.cases if span["name"].endswith(" refund")},
        "nothing": set(),
    }[matches]
    assert failed
    assert _matching(traced, condition) == expected
