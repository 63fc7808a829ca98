"""``pytest --prompt-evals`` and the no-regression rule: ``--prompt-evals-baseline LABEL`` runs the version LABEL
serves in the same session, and ``--prompt-evals-promote`` refuses what ``promptlane promote`` refuses.

Each test writes a project into the ``pytester`` folder: the prompt `greet`, one scenario over 30 names
(threshold 50%), and deterministic model functions (``python:models_for_tests:<fn>``); `production` is protected
and, by default, under the no-regression rule. pytest runs in a subprocess (see test_pytest_plugin.py).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Imported before pytester snapshots sys.modules: SQLAlchemy does not survive a second import in one process.
import alembic.command  # noqa: F401
import pytest

import promptlane.registry.sql  # noqa: F401
from promptlane.config import load_settings
from promptlane.registry import Registry
from promptlane.registry.fingerprint import VERSION
from promptlane.registry.gate import GateError
from promptlane.registry.runs import RunRecord, ScenarioFileRef

MODELS = '''
import re


def polite(messages, info):
    return "Hello! Happy to help."


def rude(messages, info):
    return "Go away."


def mostly(messages, info):
    """Polite to N1..N16 except N3: 15 of 30."""
    number = int(re.search(r"N(\\d+)", str(messages[-1].parts[-1].content)).group(1))
    return "Hello!" if number <= 16 and number != 3 else "Go away."
'''

SCENARIOS = """\
prompt: greet
scenarios:
  - name: rows
    dataset: names.jsonl
    threshold: 0.5
    expect:
      - contains: Hello
"""


def greet(model: str, template: str = "Say hello to {{ name }}") -> str:
    return f'model: python:models_for_tests:{model}\ntemplate: "{template}"\n'


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """`greet` v1 on disk (model `polite`, 30/30), not pushed yet; `production` protected."""
    write(
        pytester.path,
        {
            "promptlane.toml": 'prompts = "prompts"\nevals = "evals"\nregistry = "sqlite:///.promptlane/registry.db"\n'
            'protected_labels = ["production"]\n',
            "pytest.ini": "[pytest]\n",
            "models_for_tests.py": MODELS,
            "prompts/greet.yaml": greet("polite"),
            "evals/greet.yaml": SCENARIOS,
            "evals/names.jsonl": "".join(json.dumps({"name": f"N{n}"}) + "\n" for n in range(1, 31)),
        },
    )
    return pytester


@contextmanager
def opened_registry(root: Path) -> Iterator[Registry]:
    registry = Registry(settings=load_settings(root))
    try:
        yield registry
    finally:
        registry.close()


def serve(pytester: pytest.Pytester, candidate: str, *, target: dict[int, int] | None = None) -> None:
    """Push the prompt files as they are and point `production` at them (forced: no run yet); then write
    ``candidate`` as greet's file, the version the session evaluates."""
    with opened_registry(pytester.path) as registry:
        registry.push()
        registry.set_rollout("greet", "production", target or {1: 100}, force=True, reason="before evals")
    write(pytester.path, {"prompts/greet.yaml": candidate})


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--prompt-evals", "-p", "no:cacheprovider", *args, timeout=120)


def runs_by_version(root: Path) -> dict[int, RunRecord]:
    with opened_registry(root) as registry:
        records = registry.store.list_runs("greet")
    assert len({record.version for record in records}) == len(records), "one run per version"
    return {record.version: record for record in records}


def inputs(record: RunRecord) -> list[ScenarioFileRef]:
    """The parts of a run's fingerprint other than the version's content."""
    return [part for part in record.scenario_files if part.path != VERSION]


def assert_lines(result: pytest.RunResult, expected: str) -> None:
    """``expected``'s lines appear in the output as they are, one after the other."""
    lines, wanted = result.stdout.lines, expected.splitlines()
    starts = [n for n, line in enumerate(lines) if line == wanted[0]]
    assert any(lines[n : n + len(wanted)] == wanted for n in starts), "\n".join(lines)


BASELINE = ("--prompt-evals-baseline", "production", "--prompt-evals-allow-version-code")
PROMOTE = ("--prompt-evals-promote", "production")


def test_the_baseline_is_the_serving_version_run_on_the_same_scenarios_and_recorded_as_its_own_run(
    project: pytest.Pytester,
) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, *BASELINE)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=31)  # the candidate's 30 rows and threshold: the baseline has no items
    runs = runs_by_version(project.path)
    candidate, baseline = runs[2], runs[1]
    assert (baseline.status, baseline.cases, baseline.passed, baseline.complete) == ("passed", 30, 30, True)
    assert inputs(baseline) == inputs(candidate)  # but each version's own content hash
    result.stdout.fnmatch_lines(
        [
            "*= prompt evals =*",
            f"greet v2: passed, 30/30 passed (100%), run {candidate.id[:12]}",
            f"greet v1 (baseline: production): passed, 30/30 passed (100%), run {baseline.id[:12]}",
        ]
    )
    # A later promotion has its comparison ready.
    with opened_registry(project.path) as registry:
        assert registry.promote("greet", "production", version=2).evidence == candidate.id


def test_promote_refuses_a_candidate_significantly_worse_than_the_serving_version(project: pytest.Pytester) -> None:
    serve(project, greet("mostly"))

    result = run(project, *BASELINE, *PROMOTE)

    result.assert_outcomes(passed=16, xfailed=15)  # 15/30 clears the candidate's own threshold of 50%
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # as `promptlane promote` exits 1
    assert runs_by_version(project.path)[1].passed == 30
    with opened_registry(project.path) as registry:
        assert [event.kind for event in registry.history("greet", "production")] == ["rollout"]
        with pytest.raises(GateError) as refused:
            registry.promote("greet", "production", version=2)
    assert refused.value.problems == ["rows regressed: 15/30 (50%) vs 30/30 (100%) serving, p<0.001"]
    assert_lines(result, f"greet: not promoted to production: {refused.value}")  # the message the CLI prints


def test_promote_moves_the_label_to_a_candidate_as_good_as_the_serving_version(project: pytest.Pytester) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, *BASELINE, *PROMOTE)

    assert result.ret == pytest.ExitCode.OK
    candidate = runs_by_version(project.path)[2]
    with opened_registry(project.path) as registry:
        event = registry.history("greet", "production")[-1]
        assert (event.kind, event.to_target, event.gate, event.evidence) == (
            "promote",
            {2: 100},
            "passed",
            candidate.id,
        )
    result.stdout.fnmatch_lines([f"greet: production -> v2 (run {candidate.id[:12]})"])


def test_without_a_baseline_run_promote_refuses_and_names_the_commands_that_make_one(
    project: pytest.Pytester,
) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, *PROMOTE)

    result.assert_outcomes(passed=31)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert list(runs_by_version(project.path)) == [2]
    assert_lines(
        result,
        "greet: not promoted to production: production is protected: greet@2 must not be worse than greet@1, "
        "which production serves\n"
        "  - production serves greet@1, which has no complete run on the current inputs to compare greet@2 with "
        "(gate_no_regression): run `promptlane eval --prompt greet --version 1`\n"
        "  (override with --force --reason TEXT; the audit log records it)\n"
        "  (--prompt-evals-baseline production runs greet@1 in the same session)",
    )
    with opened_registry(project.path) as registry:
        assert registry.resolve("greet:production").number == 1


def test_a_failing_baseline_does_not_fail_the_session(project: pytest.Pytester) -> None:
    write(project.path, {"prompts/greet.yaml": greet("rude")})
    serve(project, greet("polite"))

    result = run(project, *BASELINE, *PROMOTE)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=31)
    runs = runs_by_version(project.path)
    assert (runs[1].status, runs[1].passed) == ("failed", 0)  # below its threshold: a failed run, no failed test
    result.stdout.fnmatch_lines(
        [
            f"greet v1 (baseline: production): failed, 0/30 passed (0%), run {runs[1].id[:12]}",
            f"greet: production -> v2 (run {runs[2].id[:12]})",
        ]
    )


def test_the_baseline_runs_a_stored_versions_python_model_only_when_allowed(project: pytest.Pytester) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, "--prompt-evals-baseline", "production")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=31)
    assert list(runs_by_version(project.path)) == [2]
    result.stdout.fnmatch_lines(
        [
            "greet: baseline v1 (production) not run: *greet@1 names the model 'python:models_for_tests:polite', "
            "Python code that comes from the registry*"
        ]
    )


def test_a_selection_leaves_the_baseline_incomplete_as_it_does_the_candidate(project: pytest.Pytester) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, *BASELINE, "-k", "row-2]")

    result.assert_outcomes(passed=1, deselected=30)
    runs = runs_by_version(project.path)
    assert [(record.cases, record.complete) for record in (runs[2], runs[1])] == [(1, False), (1, False)]


@pytest.mark.parametrize(
    ("target", "note"),
    [
        (None, "greet: no baseline: production is not set"),
        ({1: 100}, "greet: no baseline: production serves v1, the version under test"),
    ],
    ids=["unset", "serves-the-candidate"],
)
def test_no_baseline_when_the_label_is_unset_or_serves_the_version_under_test(
    project: pytest.Pytester, target: dict[int, int] | None, note: str
) -> None:
    if target is not None:
        serve(project, greet("polite"), target=target)  # the same file: the session evaluates v1

    result = run(project, *BASELINE)

    assert result.ret == pytest.ExitCode.OK
    assert list(runs_by_version(project.path)) == [1]
    result.stdout.fnmatch_lines([note])


def test_the_ini_key_runs_the_version_with_the_largest_share_of_a_rollout(project: pytest.Pytester) -> None:
    with opened_registry(project.path) as registry:
        registry.push()  # v1
    write(project.path, {"prompts/greet.yaml": greet("polite", "Say hi to {{ name }}")})
    serve(project, greet("polite", "Say hey to {{ name }}"), target={1: 40, 2: 60})
    write(
        project.path,
        {"pytest.ini": "[pytest]\nprompt_evals_baseline = production\nprompt_evals_allow_version_code = true\n"},
    )

    result = run(project)

    assert result.ret == pytest.ExitCode.OK
    assert sorted(runs_by_version(project.path)) == [2, 3]  # v3 under test, v2 serving 60%


def test_a_bad_baseline_label_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--prompt-evals-baseline", "latest")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --prompt-evals-baseline: 'latest' is reserved: it always points at the newest version" in (
        result.stderr.lines
    )


def test_under_xdist_the_baseline_runs_once_and_the_controller_promotes(project: pytest.Pytester) -> None:
    serve(project, greet("polite", "Say hi to {{ name }}"))

    result = run(project, "-n", "2", *BASELINE, *PROMOTE)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=31)
    runs = runs_by_version(project.path)  # one run of each version
    result.stdout.fnmatch_lines(
        [
            f"greet v1 (baseline: production): passed, 30/30 passed (100%), run {runs[1].id[:12]}",
            f"greet: production -> v2 (run {runs[2].id[:12]})",
        ]
    )
