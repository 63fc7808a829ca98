"""``pytest --prompt-evals``: scenario cases as pytest items, run by the harness, promotion at the end.

Every test writes a small project into the ``pytester`` folder (a prompt, scenario files, and a module of
deterministic model functions, ``python:models_for_tests:<fn>``) and runs pytest on it in a subprocess: the
plugin runs the harness in a background thread and sets environment variables, which a subprocess keeps
away from this session.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The store's modules (SQLAlchemy, and Alembic with the dialects it loads) are imported here, not by the first
# test that opens a registry: pytester takes sys.modules back to how it was before each test, and SQLAlchemy
# does not survive a second import in one process ("'InternalTraversal' object is not callable", warnings
# about functions registered twice).
import alembic.command  # noqa: F401
import pytest

import promptlane.registry.sql  # noqa: F401
from promptlane.config import load_settings
from promptlane.registry import Registry
from promptlane.registry.gate import GateError

MODELS = '''
"""Deterministic model functions: (messages, info) -> a text answer or a ModelResponse."""

import asyncio

from pydantic_ai.messages import ModelResponse, ToolCallPart, ToolReturnPart


def polite(messages, info):
    return "Hello! Happy to help."


def rude(messages, info):
    return "Go away."


def boom(messages, info):
    raise RuntimeError("the model exploded")


def lookup(messages, info):
    """Looks order 7 up first, then answers from what the tool said."""
    returned = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
    if not returned:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "7"}, tool_call_id="call-7")])
    return f"Order 7 is {returned[0].content['status']}."


STARTED = {"n": 0}


async def together(messages, info):
    """Answers Hello once ten requests have started, which only happens when cases run concurrently; waits for
    that at most 30 s (one at a time, the first request would wait that long and answer something else)."""
    STARTED["n"] += 1
    for _ in range(600):
        if STARTED["n"] >= 10:
            return "Hello! Happy to help."
        await asyncio.sleep(0.05)
    return "Alone: the cases did not run concurrently."
'''

PROMPTLANE_TOML = """\
prompts = "prompts"
evals = "evals"
registry = "sqlite:///.promptlane/registry.db"
"""

GATED_TOML = PROMPTLANE_TOML + 'protected_labels = ["production"]\ngate_model = "python:models_for_tests:polite"\n'

GREET = """\
model: python:models_for_tests:polite
template: "Say hello to {{ name }}"
"""

BYE = """\
model: python:models_for_tests:polite
template: "Say goodbye to {{ name }}"
"""

# Two passing scenarios for greet, one of them tagged.
GREET_SCENARIOS = """\
prompt: greet
scenarios:
  - name: refund
    tags: [smoke]
    variables: {name: Ana}
    expect:
      - contains: Hello
  - name: help
    variables: {name: Bo}
    expect:
      - contains: help
"""

# Scenarios to append to GREET_SCENARIOS.
PRO_TIER_SCENARIO = """\
  - name: pro-tier
    tags: [smoke]
    variables: {name: Cy}
    expect:
      - contains: Hello
"""

GRUMPY_SCENARIO = """\
  - name: grumpy
    model: python:models_for_tests:rude
    variables: {name: Ed}
    expect:
      - contains: Hello
"""

BYE_SCENARIOS = """\
prompt: bye
scenarios:
  - name: wave
    variables: {name: Di}
    expect:
      - contains: Happy
"""

# A dataset scenario whose row 3 expects what the model never says: with threshold 0.5, 3/4 is enough.
THRESHOLD_SCENARIOS = """\
prompt: greet
scenarios:
  - name: rows
    dataset: data/rows.jsonl
    threshold: 0.5
    expect:
      - contains: "{{ expected }}"
"""


def jsonl(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def expected_rows(*expected: str) -> str:
    """A dataset of one row per expected word: "Hello" passes with `polite`, anything else fails."""
    return jsonl(*({"name": f"n{index}", "expected": word} for index, word in enumerate(expected, 1)))


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def evals_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with the prompt `greet` (model `polite`), the model functions, and no scenarios yet."""
    write(
        pytester.path,
        {
            "promptlane.toml": PROMPTLANE_TOML,
            "pytest.ini": "[pytest]\n",  # the pytester folder is the rootdir, whatever lies above it
            "models_for_tests.py": MODELS,
            "prompts/greet.yaml": GREET,
        },
    )
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--prompt-evals", "-p", "no:cacheprovider", *args, timeout=120)


@contextmanager
def opened_registry(root: Path) -> Iterator[Registry]:
    """The project's registry, with the settings the plugin read (promptlane.toml)."""
    registry = Registry(settings=load_settings(root))
    try:
        yield registry
    finally:
        registry.close()


def summary_lines(result: pytest.RunResult, outcome: str) -> list[str]:
    """The node ids of the ``-r`` short summary lines of one outcome (PASSED, FAILED, XFAIL...)."""
    lines = result.stdout.lines
    start = next(n for n, line in enumerate(lines) if "short test summary info" in line)
    prefix = f"{outcome} "
    return [line[len(prefix) :].split(" - ")[0] for line in lines[start:] if line.startswith(prefix)]


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.stdout.lines + result.stderr.lines)


# --- off by default ------------------------------------------------------------------------------------------


def test_importing_the_plugin_imports_only_pytest_and_the_standard_library(pytester: pytest.Pytester) -> None:
    code = (
        "import sys; import promptlane.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('promptlane', 'pydantic', 'pydantic_ai', 'sqlalchemy', 'opentelemetry', 'yaml', 'jinja2')))"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, output(result)
    modules = ["promptlane", "promptlane._lazy", "promptlane.errors", "promptlane.pytest_plugin"]
    assert result.stdout.lines == [str(modules)]


def test_without_the_flag_scenarios_are_not_collected_and_nothing_heavy_is_imported(
    evals_project: pytest.Pytester,
) -> None:
    write(
        evals_project.path,
        {
            "evals/greet.yaml": GREET_SCENARIOS,
            "test_ok.py": "def test_ok():\n    pass\n",
            "conftest.py": """\
                import json
                import sys

                HEAVY = ("pydantic_ai", "sqlalchemy", "opentelemetry.sdk", "promptlane.harness", "promptlane.registry")


                def pytest_sessionfinish(session):
                    with open("loaded.json", "w") as file:
                        json.dump(sorted(m for m in HEAVY if m in sys.modules), file)
                """,
        },
    )
    # langsmith (which langchain-core, a dev dependency for the adapters' tests, brings) installs a pytest plugin
    # that imports the OTel SDK itself: left out, so that what is measured is promptlane's plugin.
    result = evals_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:langsmith_plugin", "--co", "-q", "evals", "test_ok.py"
    )

    assert result.ret == 0, output(result)
    assert [line for line in result.stdout.lines if "::" in line] == ["test_ok.py::test_ok"]
    assert "prompt evals" not in output(result)
    assert json.loads((evals_project.path / "loaded.json").read_text()) == []


# --- items and outcomes ----------------------------------------------------------------------------------------


def test_every_case_is_an_item_and_a_passing_session_passes(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": """\
                prompt: greet
                scenarios:
                  - name: refund
                    variables: {name: Ana}
                    expect:
                      - contains: Hello
                  - name: tickets
                    dataset: data/tickets.jsonl
                    threshold: 0.5
                    expect:
                      - contains: Happy
                  - name: retries
                    dataset: data/tickets.jsonl
                    repeat: 2
                    expect:
                      - contains: help
                """,
            "evals/data/tickets.jsonl": jsonl({"name": "Cy"}, {"name": "Di"}),
        },
    )
    collected = run(evals_project, "--collect-only", "-q")
    assert [line for line in collected.stdout.lines if "::" in line] == [
        "evals/support.yaml::refund",
        "evals/support.yaml::tickets[row-1]",
        "evals/support.yaml::tickets[row-2]",
        "evals/support.yaml::tickets[threshold]",
        "evals/support.yaml::retries[row-1][repeat-1]",
        "evals/support.yaml::retries[row-1][repeat-2]",
        "evals/support.yaml::retries[row-2][repeat-1]",
        "evals/support.yaml::retries[row-2][repeat-2]",
    ]

    result = run(evals_project)
    result.assert_outcomes(passed=8)  # 1 + 2 rows + [threshold] + 2 rows x 2 repeats
    assert result.ret == 0


def test_a_failing_expectation_is_a_failure_with_reasons_variables_output_and_tool_calls(
    evals_project: pytest.Pytester,
) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": """\
                prompt: greet
                scenarios:
                  - name: refund
                    variables: {name: Ana}
                    expect:
                      - contains: Hello
                  - name: lost-order
                    model: python:models_for_tests:lookup
                    variables: {name: Bo}
                    tools:
                      lookup_order:
                        description: Look up an order
                        parameters: {type: object, properties: {order_id: {type: string}}}
                        mocks:
                          - returns: {status: lost}
                    expect:
                      - contains: Order 7
                      - contains: delivered
                """,
            # Where pytest says each item is (reportinfo), as the reports carry it.
            "conftest.py": """\
                import json


                def pytest_runtest_logreport(report):
                    if report.when == "call":
                        with open("locations.jsonl", "a") as file:
                            file.write(json.dumps([report.nodeid, *report.location]) + "\\n")
                """,
        },
    )
    result = run(evals_project, "-rf")

    result.assert_outcomes(passed=1, failed=1)
    with opened_registry(evals_project.path) as registry:
        (record,) = registry.store.list_runs()
    result.stdout.fnmatch_lines(
        [
            "FAILED lost-order (evals/support.yaml:7)",
            "  failed expectations:",
            "    x contains: output does not contain 'delivered': 'Order 7 is lost.'",
            '  variables: {"name": "Bo"}',
            "  output: Order 7 is lost.",
            "  tool calls:",
            '    turn 1: lookup_order({"order_id": "7"}) -> {"status": "lost"}',
            f"  run {record.id[:12]}: promptlane runs show {record.id[:12]}",
        ],
        consecutive=True,
    )
    # The expectation that passed is not listed. Only the FAILURES section is read: with CI set, pytest's -rf
    # summary repeats the whole message, and without it the summary is cut to the terminal width.
    failures = result.stdout.str().split("short test summary info")[0].splitlines()
    assert [line for line in failures if line.startswith("    x ")] == [
        "    x contains: output does not contain 'delivered': 'Order 7 is lost.'"
    ]
    assert summary_lines(result, "FAILED") == ["evals/support.yaml::lost-order"]
    text = output(result)
    for traceback_marker in ("Traceback", "def runtest", "pytest_plugin.py", "CaseFailed"):
        assert traceback_marker not in text
    locations = [json.loads(line) for line in (evals_project.path / "locations.jsonl").read_text().splitlines()]
    assert locations == [
        ["evals/support.yaml::refund", "evals/support.yaml", 2, "scenario refund: refund"],
        ["evals/support.yaml::lost-order", "evals/support.yaml", 6, "scenario lost-order: lost-order"],
    ]  # 0-based lines of the scenarios' entries


ERROR_SCENARIOS = """\
prompt: greet
scenarios:
  - name: refund
    variables: {name: Ana}
    expect:
      - contains: Hello
  - name: explodes
    model: python:models_for_tests:boom
    variables: {name: Bo}
    expect:
      - contains: Hello
"""


def test_a_model_that_raises_is_an_error_not_a_failure(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/support.yaml": ERROR_SCENARIOS})
    result = run(evals_project, "-rE")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR explodes (evals/support.yaml:7)", "*RuntimeError: the model exploded"])
    assert summary_lines(result, "ERROR") == ["evals/support.yaml::explodes"]
    result.stdout.fnmatch_lines(["greet v1: error, 1/2 passed (50%), run *"])


def test_an_erroring_case_is_reported_without_a_python_traceback(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/support.yaml": ERROR_SCENARIOS})
    result = run(evals_project, "-rE")

    result.assert_outcomes(passed=1, errors=1)
    text = output(result)
    for traceback_marker in ("def setup", "pytest_plugin.py", "CaseFailed"):
        assert traceback_marker not in text


def test_a_prompt_without_a_file_makes_its_cases_errors_naming_it(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/ghost.yaml": GREET_SCENARIOS.replace("prompt: greet", "prompt: ghost")})
    result = run(evals_project)

    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["error: no prompt file for 'ghost' under *prompts (or give a version or a label)"])


# --- thresholds ------------------------------------------------------------------------------------------------


def test_rows_of_a_scenario_with_a_threshold_xfail_and_the_threshold_item_passes(
    evals_project: pytest.Pytester,
) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": THRESHOLD_SCENARIOS,
            "evals/data/rows.jsonl": expected_rows("Hello", "Hello", "nope", "Hello"),
        },
    )
    result = run(evals_project, "-rA")

    result.assert_outcomes(passed=4, xfailed=1)
    assert summary_lines(result, "PASSED") == [
        "evals/support.yaml::rows[row-1]",
        "evals/support.yaml::rows[row-2]",
        "evals/support.yaml::rows[row-4]",
        "evals/support.yaml::rows[threshold]",
    ]
    assert (
        "XFAIL evals/support.yaml::rows[row-3] - contains: output does not contain 'nope': 'Hello! Happy to help.'"
        in result.stdout.lines
    )
    assert result.ret == 0


def test_the_threshold_item_fails_below_the_threshold(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": THRESHOLD_SCENARIOS,
            "evals/data/rows.jsonl": expected_rows("nope", "Hello", "nope", "nope"),
        },
    )
    result = run(evals_project, "-rA")

    result.assert_outcomes(passed=1, xfailed=3, failed=1)
    assert summary_lines(result, "FAILED") == ["evals/support.yaml::rows[threshold]"]
    assert "rows: 1/4 passed (25%), below the threshold of 50%" in result.stdout.lines


def test_the_threshold_item_run_by_its_node_id_does_not_fail_on_zero_cases(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": THRESHOLD_SCENARIOS,
            "evals/data/rows.jsonl": expected_rows("Hello", "Hello", "Hello", "Hello"),
        },
    )
    result = run(evals_project, "evals/support.yaml::rows[threshold]")

    assert "0/0 passed" not in output(result)
    assert result.parseoutcomes().get("failed", 0) == 0


# --- selection -----------------------------------------------------------------------------------------------


def test_scenario_tags_are_markers_and_k_selects_by_name(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {"evals/support.yaml": GREET_SCENARIOS + PRO_TIER_SCENARIO},
    )
    tagged = run(evals_project, "-m", "smoke", "--strict-markers", "-rA")
    tagged.assert_outcomes(passed=2, deselected=1)
    assert summary_lines(tagged, "PASSED") == ["evals/support.yaml::refund", "evals/support.yaml::pro-tier"]

    named = run(evals_project, "-k", "refund", "-rA")
    named.assert_outcomes(passed=1, deselected=2)
    assert summary_lines(named, "PASSED") == ["evals/support.yaml::refund"]
    named.stdout.fnmatch_lines(["greet v1: passed, 1/1 passed (100%), run *"])  # only the selected case ran


# --- collection errors ---------------------------------------------------------------------------------------

BAD_SCENARIOS = """\
prompt: greet
scenarios:
  - name: typo
    expect:
      - contians: Hello
"""


def test_a_bad_scenario_file_is_a_collection_error_naming_file_and_line(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/bad.yaml": BAD_SCENARIOS,
            "evals/support.yaml": GREET_SCENARIOS,
            "test_ok.py": "def test_ok():\n    pass\n",
        },
    )
    result = run(evals_project)

    result.assert_outcomes(passed=3, errors=1)  # test_ok and greet's two cases still run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Interrupted" not in output(result)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting evals/bad.yaml*",
            "*evals/bad.yaml:5: scenarios.0.expect.0: unknown expectation 'contians' (did you mean 'contains'?)",
        ]
    )
    assert "Traceback" not in output(result)


def test_a_bad_scenario_file_with_maxfail_stops_the_session_before_any_case(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/bad.yaml": BAD_SCENARIOS, "evals/support.yaml": GREET_SCENARIOS})
    result = run(evals_project, "-x")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    with opened_registry(evals_project.path) as registry:
        assert registry.store.list_runs() == []


def test_a_session_interrupted_by_a_collection_error_runs_no_cases(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"test_broken.py": "import nowhere_to_be_found\n", "evals/support.yaml": GREET_SCENARIOS})
    result = run(evals_project)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Interrupted: 1 error during collection*"])
    with opened_registry(evals_project.path) as registry:
        assert registry.store.list_runs() == []


def test_collect_only_runs_no_cases(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/support.yaml": GREET_SCENARIOS})
    result = run(evals_project, "--collect-only", "-q")

    assert result.ret == 0, output(result)
    assert "prompt evals" not in output(result)
    with opened_registry(evals_project.path) as registry:
        assert registry.store.list_runs() == []


# --- options ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt-evals-cache", "nope"], "ERROR: --prompt-evals-cache must be one of off, on, replay, got 'nope'"),
        (
            ["--prompt-evals-version", "1", "--prompt-evals-label", "staging"],
            "ERROR: give --prompt-evals-version or --prompt-evals-label, not both",
        ),
        (
            ["--prompt-evals-concurrency", "0"],
            "ERROR: --prompt-evals-concurrency must be a positive integer, got '0'",
        ),
        (
            ["--prompt-evals-model", "gpt-4o-mini"],
            "ERROR: --prompt-evals-model: model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?",
        ),
    ],
    ids=["cache", "version-and-label", "concurrency", "model"],
)
def test_bad_options_are_usage_errors(evals_project: pytest.Pytester, args: list[str], message: str) -> None:
    write(evals_project.path, {"evals/support.yaml": GREET_SCENARIOS})
    result = run(evals_project, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.lines
    assert "Traceback" not in output(result)


def test_ini_keys_enable_the_plugin_and_set_the_cache_mode(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "pytest.ini": "[pytest]\nprompt_evals = true\nprompt_evals_cache = replay\n",
            "evals/support.yaml": GREET_SCENARIOS,
        },
    )
    # No --prompt-evals: the ini key turns it on; replay with nothing recorded makes every case an error.
    result = evals_project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "refund", timeout=120)

    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(["*ReplayMissError: no recorded response for this request*"])


# --- running -----------------------------------------------------------------------------------------------------


def test_cases_run_concurrently_and_report_in_order(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/many.yaml": """\
                prompt: greet
                scenarios:
                  - name: many
                    model: python:models_for_tests:together
                    dataset: data/hundred.jsonl
                    expect:
                      - contains: Hello
                """,
            "evals/data/hundred.jsonl": jsonl(*({"name": f"n{n}"} for n in range(100))),
        },
    )
    result = run(evals_project, "--prompt-evals-concurrency", "50", "-v")

    result.assert_outcomes(passed=100)
    reported = [m.group(1) for line in result.stdout.lines if (m := re.match(r"(\S+::\S+) PASSED", line))]
    assert reported == [f"evals/many.yaml::many[row-{n}]" for n in range(1, 101)]
    with opened_registry(evals_project.path) as registry:
        (record,) = registry.store.list_runs()
    assert record.settings["concurrency"] == 50
    assert record.finished_at is not None
    # Concurrency is shown by the cases passing (`together` answers Hello only once ten requests are in
    # flight), not by a duration, which depends on the machine.


def test_a_dataset_case_is_located_at_its_row_in_the_dataset(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "evals/support.yaml": """\
                prompt: greet
                scenarios:
                  - name: rows
                    dataset: data/rows.jsonl
                    expect:
                      - contains: "{{ expected }}"
                """,
            # Row 2 is on line 3 (a blank line before it), and row 3 has no `expected`.
            "evals/data/rows.jsonl": jsonl({"name": "Ana", "expected": "Hello"})
            + "\n"
            + jsonl({"name": "Bo", "expected": "Goodbye"}, {"name": "Cy", "expectd": "Hello"}),
            "conftest.py": """\
                import json


                def pytest_runtest_logreport(report):
                    if report.when == "setup":
                        with open("locations.jsonl", "a") as file:
                            file.write(json.dumps([report.nodeid, *report.location]) + "\\n")
                """,
        },
    )
    result = run(evals_project, "-rfE")

    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED rows[row-2] (evals/data/rows.jsonl:3)",
            "  failed expectations:",
            "    x contains: output does not contain 'Goodbye': 'Hello! Happy to help.'",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "ERROR rows[row-3] (evals/data/rows.jsonl:4)",
            "  SpecError: evals/data/rows.jsonl:4: the row has no column 'expected' (did you mean 'expectd'?): "
            "the expectations use it",
        ],
        consecutive=True,
    )
    locations = [json.loads(line) for line in (evals_project.path / "locations.jsonl").read_text().splitlines()]
    assert locations == [
        ["evals/support.yaml::rows[row-1]", "evals/data/rows.jsonl", 0, "scenario rows: rows[row-1]"],
        ["evals/support.yaml::rows[row-2]", "evals/data/rows.jsonl", 2, "scenario rows: rows[row-2]"],
        ["evals/support.yaml::rows[row-3]", "evals/data/rows.jsonl", 3, "scenario rows: rows[row-3]"],
    ]  # 0-based lines of the rows


def test_a_session_records_one_run_per_prompt_and_summarises_them(evals_project: pytest.Pytester) -> None:
    write(
        evals_project.path,
        {
            "prompts/bye.yaml": BYE,
            "evals/greet.yaml": GREET_SCENARIOS + GRUMPY_SCENARIO,
            "evals/bye.yaml": BYE_SCENARIOS,
        },
    )
    result = run(evals_project)

    result.assert_outcomes(passed=3, failed=1)
    with opened_registry(evals_project.path) as registry:
        runs = {record.prompt: record for record in registry.store.list_runs()}
    assert len(runs) == 2
    greet, bye = runs["greet"], runs["bye"]
    assert (greet.version, greet.status, greet.cases, greet.passed, greet.complete) == (1, "failed", 3, 2, True)
    assert (bye.version, bye.status, bye.cases, bye.passed, bye.complete) == (1, "passed", 1, 1, True)
    result.stdout.fnmatch_lines(
        [
            "*= prompt evals =*",
            f"bye v1: passed, 1/1 passed (100%), run {bye.id[:12]}",
            f"greet v1: failed, 2/3 passed (67%), run {greet.id[:12]}",
        ]
    )


# --- xdist and promotion -----------------------------------------------------------------------------------------


@pytest.fixture
def gated_project(evals_project: pytest.Pytester) -> pytest.Pytester:
    """Two prompts with passing scenarios (greet's has an xfailing row), `production` protected."""
    write(
        evals_project.path,
        {
            "promptlane.toml": GATED_TOML,
            "prompts/bye.yaml": BYE,
            "evals/greet.yaml": GREET_SCENARIOS,
            "evals/rows.yaml": THRESHOLD_SCENARIOS,
            "evals/data/rows.jsonl": expected_rows("Hello", "Hello", "nope", "Hello"),
            "evals/bye.yaml": BYE_SCENARIOS,
        },
    )
    return evals_project


def test_xdist_gives_the_same_outcomes_one_run_per_prompt_and_promotes_once(gated_project: pytest.Pytester) -> None:
    alone = run(gated_project)
    alone.assert_outcomes(passed=7, xfailed=1)

    distributed = run(gated_project, "-n", "2", "--prompt-evals-promote", "production")

    assert distributed.parseoutcomes() == alone.parseoutcomes()
    with opened_registry(gated_project.path) as registry:
        runs = registry.store.list_runs()
        assert sorted(record.prompt for record in runs) == ["bye", "bye", "greet", "greet"]  # one per session
        newest = {record.prompt: record for record in reversed(runs)}
        for prompt in ("greet", "bye"):
            events = registry.history(prompt, "production")
            assert [(e.kind, e.to_target, e.gate, e.evidence) for e in events] == [
                ("promote", {1: 100}, "passed", newest[prompt].id)
            ]
            distributed.stdout.fnmatch_lines([f"{prompt}: production -> v1 (run {newest[prompt].id[:12]})"])


def test_a_passing_session_promotes_where_a_label_move_alone_is_refused(gated_project: pytest.Pytester) -> None:
    with opened_registry(gated_project.path) as registry:
        registry.push()
        with pytest.raises(GateError, match="no eval run of greet@1"):
            registry.set_label("greet", "production", 1)
        assert registry.history("greet") == []

    result = run(gated_project, "--prompt-evals-promote", "production")

    result.assert_outcomes(passed=7, xfailed=1)
    with opened_registry(gated_project.path) as registry:
        (record,) = registry.store.list_runs("greet")
        assert registry.resolve("greet:production").number == 1
        (event,) = registry.history("greet", "production")
        assert (event.kind, event.gate, event.evidence, event.reason) == (
            "promote",
            "passed",
            record.id,
            "pytest --prompt-evals",
        )
    result.stdout.fnmatch_lines([f"greet: production -> v1 (run {record.id[:12]})"])


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--prompt-evals-model", "python:models_for_tests:rude"], "the run failed"),
        (["-k", "refund or wave"], "a selection left cases out"),
    ],
    ids=["failing", "selection"],
)
def test_nothing_is_promoted_after_a_failing_or_partial_session(
    gated_project: pytest.Pytester, args: list[str], why: str
) -> None:
    result = run(gated_project, "--prompt-evals-promote", "production", *args)

    result.stdout.fnmatch_lines([f"greet: not promoted to production: {why}"])
    with opened_registry(gated_project.path) as registry:
        assert registry.history("greet") == []


def test_nothing_is_promoted_when_another_test_of_the_session_fails(gated_project: pytest.Pytester) -> None:
    write(gated_project.path, {"test_app.py": "def test_app():\n    assert 1 + 1 == 3\n"})
    result = run(gated_project, "--prompt-evals-promote", "production")

    result.assert_outcomes(passed=7, xfailed=1, failed=1)
    with opened_registry(gated_project.path) as registry:
        assert registry.history("greet") == []


def test_a_stored_versions_python_model_runs_only_when_allowed(evals_project: pytest.Pytester) -> None:
    write(evals_project.path, {"evals/support.yaml": GREET_SCENARIOS})
    run(evals_project).assert_outcomes(passed=2)  # the project's own files, pushed: its code

    # A version picked from the registry names its model only there: code a write token chose.
    refused = run(evals_project, "--prompt-evals-version", "1")
    refused.assert_outcomes(errors=2)
    assert "greet@1 names the model 'python:models_for_tests:polite', Python code that comes from the registry" in (
        output(refused)
    )
    run(evals_project, "--prompt-evals-version", "1", "--prompt-evals-allow-version-code").assert_outcomes(passed=2)
