"""Scenario files: loading, strict validation with file/line/key errors, discovery, and the JSON Schema."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from promptlane.errors import SpecError
from promptlane.harness.scenarios import (
    EXPECTATION_KINDS,
    ScenarioFile,
    ScenarioNeeds,
    discover_scenario_files,
    expectation_templates,
    load_scenario_file,
    scenario_needs,
)


def write(folder: Path, text: str, name: str = "reply.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_scenario_file(path)
    return info.value


# --- a valid file ----------------------------------------------------------------------------------------

FULL_FILE = """\
prompt: support/reply
model: openai:gpt-4o-mini

scenarios:
  - name: refund
    description: A refund for a broken order
    tags: [smoke, refunds]
    variables: {customer: Ana, ticket: "Refund order 123"}
    history:
      - {role: system, content: "Extra rules"}
      - {role: user, content: "Hi, my order 123 has not arrived."}
      - role: assistant
        tool_calls: [{name: lookup_order, args: {order_id: "123"}, id: earlier}]
      - {role: tool, name: lookup_order, id: earlier, content: {status: shipped}}
      - {role: assistant, content: "Order 123 is shipped."}
    tools:
      lookup_order:
        - match: {order_id: "123"}
          returns: {status: delivered, total: 42.5}
        - match: {order_id: "500"}
          python: examples.support.tools:lookup
        - error: order not found
      refund:
        description: Refund an order
        parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
        mocks:
          - returns: null
    expect:
      - equals: "Refunded."
      - contains: refund
      - contains: {value: "42.50", case_sensitive: false}
      - not_contains: sorry
      - not_contains: {value: SORRY, case_sensitive: false}
      - regex: "^Hi \\\\w+"
      - starts_with: Hi Ana
      - json_valid: true
      - json_schema: true
      - json_schema: {type: object}
      - tool_called: lookup_order
      - tool_called: {name: lookup_order, args: {order_id: "123"}, times: 1}
      - tool_not_called: cancel_order
      - tool_sequence: [lookup_order, refund]
      - tool_sequence: {tools: [lookup_order], order: exact}
      - max_turns: 3
      - max_latency_ms: 1500
      - max_tokens: 800
      - max_cost_usd: 0.01
      - judge: Polite
      - judge: {rubric: "Offers a refund", model: "openai:gpt-4o", threshold: 0.9}
      - python: examples.support.checks:polite
      - python: {function: examples.support.checks:polite}
      - pydantic_evals: {Contains: {value: refund}, EqualsExpected: null}
    model: anthropic:claude-sonnet-4-5

  - name: tickets
    dataset: datasets/tickets.jsonl
    threshold: 0.75
    repeat: 3
    max_turns: 4
    expect:
      - contains: "{{ expected }}"
"""


def test_full_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)
    write(tmp_path, '{"ticket": "Where is 1001?", "expected": "delivered"}\n', "datasets/tickets.jsonl")

    document = load_scenario_file(path)

    assert (document.path, document.spec.prompt, document.spec.model) == (path, "support/reply", "openai:gpt-4o-mini")
    refund, tickets = document.spec.scenarios
    assert refund.model_dump() == {
        "name": "refund",
        "description": "A refund for a broken order",
        "tags": ["smoke", "refunds"],
        "variables": {"customer": "Ana", "ticket": "Refund order 123"},
        "history": [
            {"role": "system", "content": "Extra rules", "tool_calls": [], "name": None, "id": None},
            {
                "role": "user",
                "content": "Hi, my order 123 has not arrived.",
                "tool_calls": [],
                "name": None,
                "id": None,
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"name": "lookup_order", "args": {"order_id": "123"}, "id": "earlier"}],
                "name": None,
                "id": None,
            },
            {
                "role": "tool",
                "content": {"status": "shipped"},
                "tool_calls": [],
                "name": "lookup_order",
                "id": "earlier",
            },
            {"role": "assistant", "content": "Order 123 is shipped.", "tool_calls": [], "name": None, "id": None},
        ],
        "tools": {
            "lookup_order": [
                {
                    "match": {"order_id": "123"},
                    "returns": {"status": "delivered", "total": 42.5},
                    "error": None,
                    "python": None,
                },
                {
                    "match": {"order_id": "500"},
                    "returns": None,
                    "error": None,
                    "python": "examples.support.tools:lookup",
                },
                {"match": None, "returns": None, "error": "order not found", "python": None},
            ],
            "refund": {
                "description": "Refund an order",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
                "mocks": [{"match": None, "returns": None, "error": None, "python": None}],
            },
        },
        "expect": [
            {"equals": "Refunded."},
            {"contains": "refund"},
            {"contains": {"value": "42.50", "case_sensitive": False}},
            {"not_contains": "sorry"},
            {"not_contains": {"value": "SORRY", "case_sensitive": False}},
            {"regex": "^Hi \\w+"},
            {"starts_with": "Hi Ana"},
            {"json_valid": True},
            {"json_schema": True},
            {"json_schema": {"type": "object"}},
            {"tool_called": "lookup_order"},
            {"tool_called": {"name": "lookup_order", "args": {"order_id": "123"}, "times": 1}},
            {"tool_not_called": "cancel_order"},
            {"tool_sequence": ["lookup_order", "refund"]},
            {"tool_sequence": {"tools": ["lookup_order"], "order": "exact"}},
            {"max_turns": 3},
            {"max_latency_ms": 1500.0},
            {"max_tokens": 800},
            {"max_cost_usd": 0.01},
            {"judge": "Polite"},
            {"judge": {"rubric": "Offers a refund", "model": "openai:gpt-4o", "threshold": 0.9}},
            {"python": "examples.support.checks:polite"},
            {"python": {"function": "examples.support.checks:polite"}},
            {"pydantic_evals": {"Contains": {"value": "refund"}, "EqualsExpected": None}},
        ],
        "dataset": None,
        "threshold": 1.0,
        "repeat": 1,
        "max_turns": 10,
        "model": "anthropic:claude-sonnet-4-5",
    }
    # Each expectation is parsed as its own kind, not as the first union member that happens to accept it.
    assert [type(expectation).__name__ for expectation in refund.expect] == [
        "Equals", "Contains", "Contains", "NotContains", "NotContains", "Regex", "StartsWith", "JsonValid",
        "JsonSchema", "JsonSchema", "ToolCalled", "ToolCalled", "ToolNotCalled", "ToolSequence", "ToolSequence",
        "MaxTurns", "MaxLatency", "MaxTokens", "MaxCost", "Judge", "Judge", "Python", "Python", "PydanticEvals",
    ]  # fmt: skip
    assert {type(expectation).__name__ for expectation in refund.expect} == {
        model.__name__ for model in EXPECTATION_KINDS.values()
    }
    # `returns: null` is an outcome (the tool returns None), not a missing one.
    assert refund.tools["refund"].mocks[0].model_fields_set == {"returns"}
    assert tickets.model_dump(include={"name", "dataset", "threshold", "repeat", "max_turns", "model"}) == {
        "name": "tickets",
        "dataset": "datasets/tickets.jsonl",
        "threshold": 0.75,
        "repeat": 3,
        "max_turns": 4,
        "model": None,
    }
    assert document.dataset_path(refund) is None
    assert document.dataset_path(tickets) == tmp_path / "datasets/tickets.jsonl"
    lines = FULL_FILE.splitlines()
    assert [document.line_of(0), document.line_of(1)] == [
        lines.index("  - name: refund") + 1,
        lines.index("  - name: tickets") + 1,
    ]
    assert document.line_of(0) == 5
    assert document.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sha256_changes_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "prompt: support/reply\nscenarios:\n  - name: refund\n")
    first = load_scenario_file(path).sha256

    assert load_scenario_file(path).sha256 == first
    path.write_text("prompt: support/reply\nscenarios:\n  - name: refund\n# a comment changes the file too\n")
    second = load_scenario_file(path).sha256
    path.write_text("prompt: support/reply\nscenarios:\n  - name: refunds\n")
    third = load_scenario_file(path).sha256

    assert len({first, second, third}) == 3
    assert third == hashlib.sha256(path.read_bytes()).hexdigest()


# --- invalid files ---------------------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[str, int | None, str | None, str]] = {
    "bad-yaml": (
        """\
        prompt: support/reply
        scenarios:
          - name: "refund
        """,
        3,
        None,
        "invalid YAML: while scanning a quoted scalar found unexpected end of stream",
    ),
    "not-a-mapping": ("- name: refund\n", 1, None, "a scenario file is a mapping with `prompt:` and `scenarios:`"),
    "duplicate-key": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            name: refund2
        """,
        4,
        "scenarios.0.name",
        "duplicate key 'name' (first on line 3)",
    ),
    "unknown-top-level-key": (
        """\
        prompt: support/reply
        scenarioz:
          - name: refund
        """,
        2,
        "scenarioz",
        "unknown key 'scenarioz' (did you mean 'scenarios'?)",
    ),
    "missing-prompt": ("scenarios:\n  - name: refund\n", 1, None, "missing key 'prompt'"),
    "bad-prompt-name": (
        """\
        prompt: support reply
        scenarios:
          - name: refund
        """,
        1,
        "prompt",
        "a prompt name is letters, digits, '_', '.', '-', with '/' between folders",
    ),
    "unknown-scenario-key": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expct:
              - contains: refund
        """,
        4,
        "scenarios.0.expct",
        "unknown key 'expct' (did you mean 'expect'?)",
    ),
    "unknown-scenario-key-far-from-any": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            zzz: 1
        """,
        4,
        "scenarios.0.zzz",
        "unknown key 'zzz'; expected one of name, description, tags, variables, history, tools, expect, dataset, "
        "threshold, repeat, max_turns, model",
    ),
    "missing-scenario-name": (
        """\
        prompt: support/reply
        scenarios:
          - description: no name
        """,
        3,
        "scenarios.0",
        "missing key 'name'",
    ),
    "bad-scenario-name": (
        """\
        prompt: support/reply
        scenarios:
          - name: my refund
        """,
        3,
        "scenarios.0.name",
        "a scenario name is letters, digits, '_', '.', '-'",
    ),
    "tag-not-an-identifier": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tags: [smoke-test]
        """,
        4,
        "scenarios.0.tags",
        "tag 'smoke-test' must be an identifier (it becomes a pytest marker)",
    ),
    "unknown-expectation-close-to-one": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - contains: refund
              - contain: sorry
        """,
        6,
        "scenarios.0.expect.1",
        "unknown expectation 'contain' (did you mean 'contains'?)",
    ),
    "unknown-expectation-far-from-all": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - frobnicate: 1
        """,
        5,
        "scenarios.0.expect.0",
        f"unknown expectation 'frobnicate' (known: {', '.join(EXPECTATION_KINDS)})",
    ),
    "expectation-with-two-kinds": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - {contains: refund, regex: "^Hi"}
        """,
        5,
        "scenarios.0.expect.0",
        "an expectation is one `kind: value` pair, like `contains: refund`",
    ),
    "expectation-that-is-a-bare-word": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - json_valid
        """,
        5,
        "scenarios.0.expect.0",
        "an expectation is one `kind: value` pair, like `contains: refund`",
    ),
    "tool-called-negative-times": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - tool_called: {name: lookup_order, times: -1}
        """,
        5,
        "scenarios.0.expect.0.tool_called.times",
        "Input should be greater than or equal to 0",
    ),
    "judge-misspelt-rubric": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - judge: {rubrik: Polite}
        """,
        5,
        "scenarios.0.expect.0.judge.rubrik",
        "unknown key 'rubrik' (did you mean 'rubric'?)",
    ),
    "judge-threshold-over-1": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - judge: {rubric: Polite, threshold: 2}
        """,
        5,
        "scenarios.0.expect.0.judge.threshold",
        "Input should be less than or equal to 1",
    ),
    "tool-sequence-bad-order": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - tool_sequence: {tools: [lookup_order], order: random}
        """,
        5,
        "scenarios.0.expect.0.tool_sequence.order",
        "Input should be 'exact', 'in_order' or 'any'",
    ),
    "max-turns-zero": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - max_turns: 0
        """,
        5,
        "scenarios.0.expect.0.max_turns",
        "Input should be greater than or equal to 1",
    ),
    "python-expectation-bad-reference": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - python: {function: checks.polite}
        """,
        5,
        "scenarios.0.expect.0.python.function",
        "`function` is module:function, like examples.support.checks:polite",
    ),
    "invalid-regex": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - regex: "refund (order"
        """,
        5,
        "scenarios.0.expect.0.regex",
        "invalid regular expression: missing ), unterminated subpattern at position 7",
    ),
    "mock-with-two-outcomes": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tools:
              lookup_order:
                - returns: {status: shipped}
                  error: order not found
        """,
        6,
        "scenarios.0.tools.lookup_order.0",
        "a mock has exactly one of `returns`, `error` or `python`",
    ),
    "mock-with-no-outcome": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tools:
              lookup_order:
                - match: {order_id: "123"}
        """,
        6,
        "scenarios.0.tools.lookup_order.0",
        "a mock has exactly one of `returns`, `error` or `python`",
    ),
    "declared-tool-mock-with-two-outcomes": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tools:
              refund:
                description: Refund an order
                mocks:
                  - returns: ok
                    python: tools:refund
        """,
        8,
        "scenarios.0.tools.refund.mocks.0",
        "a mock has exactly one of `returns`, `error` or `python`",
    ),
    "declared-tool-without-mocks": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tools:
              refund:
                description: Refund an order
        """,
        5,
        "scenarios.0.tools.refund",
        "missing key 'mocks'",
    ),
    "mock-bad-python-reference": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            tools:
              lookup_order:
                - python: tools.lookup
        """,
        6,
        "scenarios.0.tools.lookup_order.0",
        "`python` is module:function, like examples.support.tools:lookup",
    ),
    "duplicate-scenario-names": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
          - name: tickets
          - name: refund
        """,
        2,
        "scenarios",
        "scenario 'refund' is defined twice (entries 0 and 2)",
    ),
    "threshold-over-1": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            threshold: 1.5
        """,
        4,
        "scenarios.0.threshold",
        "Input should be less than or equal to 1",
    ),
    "repeat-zero": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            repeat: 0
        """,
        4,
        "scenarios.0.repeat",
        "Input should be greater than or equal to 1",
    ),
    "tool-message-without-name": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            history:
              - {role: user, content: hi}
              - {role: tool, content: {status: shipped}}
        """,
        6,
        "scenarios.0.history.1",
        "a tool message needs the tool's `name`",
    ),
    "tool-calls-on-a-user-message": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            history:
              - role: user
                content: hi
                tool_calls: [{name: lookup_order}]
        """,
        5,
        "scenarios.0.history.0",
        "only an assistant message has `tool_calls`",
    ),
    "user-message-without-text": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            history:
              - {role: user, content: {a: 1}}
        """,
        5,
        "scenarios.0.history.0",
        "a user message needs text `content`",
    ),
    "history-tool-call-without-name": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            history:
              - role: assistant
                tool_calls: [{args: {order_id: "1"}}]
        """,
        6,
        "scenarios.0.history.0.tool_calls.0",
        "missing key 'name'",
    ),
    "empty-scenarios": (
        """\
        prompt: support/reply
        scenarios: []
        """,
        2,
        "scenarios",
        "`scenarios` must list at least one scenario",
    ),
    "dataset-with-a-bad-suffix": (
        """\
        prompt: support/reply
        scenarios:
          - name: tickets
            dataset: tickets.txt
        """,
        4,
        "scenarios.0.dataset",
        "a dataset is a .jsonl, .csv or .yaml file",
    ),
    "file-model-without-a-provider": (
        """\
        prompt: support/reply
        model: gpt-4o-mini
        scenarios:
          - name: refund
        """,
        2,
        "model",
        "model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?",
    ),
    "scenario-model-with-a-misspelt-provider": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            model: opnai:gpt-4o-mini
        """,
        4,
        "scenarios.0.model",
        "unknown provider 'opnai': did you mean 'openai'?",
    ),
    "judge-model-without-a-provider": (
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - judge: {rubric: Polite, model: claude-sonnet-4-5}
        """,
        5,
        "scenarios.0.expect.0.judge.model",
        "model 'claude-sonnet-4-5' has no provider: did you mean 'anthropic:claude-sonnet-4-5'?",
    ),
}


@pytest.mark.parametrize(("text", "line", "key", "reason"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_file(tmp_path: Path, text: str, line: int | None, key: str | None, reason: str) -> None:
    (tmp_path / "tickets.txt").write_text("a row\n")  # exists, so only its suffix is wrong
    path = write(tmp_path, text)

    error = load_error(path)

    assert (error.path, error.line, error.key, error.reason) == (path, line, key, reason)
    location = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert str(error) == location + reason


def test_expectation_templates_say_where_a_value_is_data_and_where_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - equals: {status: "{{ expected }}", items: ["{{ a }}", 3]}
              - contains: {value: "Order {{ id }}", case_sensitive: false}
              - not_contains: "{{ forbidden }}"
              - regex: "^{{ prefix }}"
              - starts_with: Hi
              - tool_called: {name: lookup_order, args: {order_id: "{{ id }}"}}
              - tool_called: lookup_order
              - judge: "{{ not rendered }}"
        """,
    )
    (scenario,) = load_scenario_file(path).spec.scenarios

    found = [(number, *item) for number, e in enumerate(scenario.expect) for item in expectation_templates(e)]

    assert found == [
        (0, ("equals", "status"), "{{ expected }}", True),
        (0, ("equals", "items", 0), "{{ a }}", True),
        (1, ("contains", "value"), "Order {{ id }}", False),
        (2, ("not_contains",), "{{ forbidden }}", False),
        (3, ("regex",), "^{{ prefix }}", False),
        (5, ("tool_called", "args", "order_id"), "{{ id }}", True),
    ]


NEEDS_FILE = """\
prompt: support/reply
scenarios:
  - name: tickets
    dataset: tickets.csv
    variables: {customer: Eve}
    expect:
      - equals: "{{ expected }}"
      - contains: "Order {{ order }}"
"""
VARIABLES = {"customer": {"type": "string"}, "ticket": {"type": "string"}, "tier": {"default": "free"}}


def test_scenario_needs_the_columns_it_does_not_set(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text("ticket,expected,order\nhi,there,7\n")
    document = load_scenario_file(write(tmp_path, NEEDS_FILE))

    needs = scenario_needs(document, 0, variables=VARIABLES, prompt="support/reply@2")

    # `customer` is set by the scenario and `tier` has a default; `expected` is compared as data.
    assert needs == ScenarioNeeds(
        columns={
            "ticket": "support/reply@2 requires the variable",
            "expected": "the expectations use it",
            "order": "the expectations use it",
        },
        text=frozenset({"order"}),
    )


def test_scenario_needs_a_column_no_row_has(tmp_path: Path) -> None:
    (tmp_path / "tickets.csv").write_text("ticket,expected,ordr\nhi,there,7\n")
    document = load_scenario_file(write(tmp_path, NEEDS_FILE))

    with pytest.raises(SpecError) as info:
        scenario_needs(document, 0, variables=VARIABLES, prompt="support/reply@2", root=tmp_path)

    assert (info.value.path, info.value.line) == ("tickets.csv", 1)
    assert info.value.reason == (
        "no row has a column 'order' (did you mean 'ordr'?): the expectations of scenario 'tickets' "
        "(reply.yaml:3) use it"
    )


def test_a_templated_regex_is_checked_per_case_not_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - regex: "{{ pattern }}("
        """,
    )

    assert load_scenario_file(path).spec.scenarios[0].expect[0].model_dump() == {"regex": "{{ pattern }}("}


def test_missing_dataset_names_the_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        prompt: support/reply
        scenarios:
          - name: refund
          - name: tickets
            dataset: datasets/tickets.jsonl
        """,
    )

    error = load_error(path)

    assert (error.path, error.line, error.key, error.reason) == (
        path,
        5,
        "scenarios.1.dataset",
        f"dataset datasets/tickets.jsonl not found (looked for {tmp_path / 'datasets' / 'tickets.jsonl'})",
    )


def test_a_folder_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "tickets.jsonl").mkdir()
    path = write(tmp_path, "prompt: support/reply\nscenarios:\n  - name: tickets\n    dataset: tickets.jsonl\n")

    error = load_error(path)

    assert (error.line, error.key) == (4, "scenarios.0.dataset")
    assert error.reason.startswith("dataset tickets.jsonl not found")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".yaml", ".yml", ".JSONL"])
def test_dataset_suffixes(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"rows{suffix}").write_text("")
    path = write(tmp_path, f"prompt: support/reply\nscenarios:\n  - name: tickets\n    dataset: rows{suffix}\n")

    assert load_scenario_file(path).spec.scenarios[0].dataset == f"rows{suffix}"


def test_unreadable_files(tmp_path: Path) -> None:
    missing = load_error(tmp_path / "nope.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"prompt: support/reply\nscenarios:\n  - name: caf\xe9\n")
    latin1 = load_error(tmp_path / "latin1.yaml")

    assert (missing.path, missing.line, missing.reason) == (
        tmp_path / "nope.yaml",
        None,
        "cannot read: No such file or directory",
    )
    assert (latin1.path, latin1.line, latin1.reason) == (tmp_path / "latin1.yaml", 3, "not UTF-8 text")


def test_python_expectation_shorthand_is_checked_like_the_long_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        prompt: support/reply
        scenarios:
          - name: refund
            expect:
              - python: checks.polite
        """,
    )

    error = load_error(path)

    assert (error.line, error.key) == (5, "scenarios.0.expect.0.python")
    assert "module:function" in error.reason


@pytest.mark.parametrize(
    ("expectation", "key", "reason"),
    [
        (
            "tool_called: {name: lookup_order, time: 2}",
            "tool_called.time",
            "unknown key 'time' (did you mean 'times'?)",
        ),
        (
            "judge: {rubric: Polite, treshold: 0.9}",
            "judge.treshold",
            "unknown key 'treshold' (did you mean 'threshold'?)",
        ),
        (
            "contains: {value: a, case_sensitiv: false}",
            "contains.case_sensitiv",
            "unknown key 'case_sensitiv' (did you mean 'case_sensitive'?)",
        ),
    ],
)
def test_unknown_expectation_argument_suggests_the_known_one(
    tmp_path: Path, expectation: str, key: str, reason: str
) -> None:
    path = write(tmp_path, f"prompt: support/reply\nscenarios:\n  - name: refund\n    expect:\n      - {expectation}\n")

    error = load_error(path)

    assert (error.line, error.key, error.reason) == (5, f"scenarios.0.expect.0.{key}", reason)


def test_unclosed_bracket_names_the_line_it_opened_on(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        prompt: support/reply
        scenarios:
          - name: [refund
        """,
    )

    error = load_error(path)

    assert error.line == 3  # the file has 3 lines; the error names line 4


# --- discovery ------------------------------------------------------------------------------------------


def test_discover_scenario_files(tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    reply = write(evals, "prompt: support/reply\nscenarios:\n  - name: refund\n", "reply.yaml")
    nested = write(evals, "# billing\nprompt: billing/refund\n\nscenarios:\n  - name: a\n", "billing/refund.yml")
    # A YAML dataset beside them: a list of rows, some with a `scenarios` column, none at the top level.
    rows = write(evals, "- ticket: hi\n  scenarios: 3\n- {ticket: bye, scenarios: 4}\n", "datasets/rows.yaml")
    write(evals, "title: notes\ndescription: not a scenario file\n", "notes.yaml")
    # A top-level `prompt:` without `scenarios:` is a scenario file with a misspelt key: found, so that loading it
    # says so (skipped, its cases would silently never run).
    typo = write(evals, "prompt: support/reply\nscenario:\n  - name: x\n", "typo.yaml")
    write(evals, "prompt: support/reply\nscenarios:\n  - name: x\n", "readme.txt")

    assert discover_scenario_files([evals]) == sorted([reply, nested, typo])
    # A file given explicitly is kept, whatever it holds; duplicates collapse.
    assert discover_scenario_files([evals, rows, reply]) == sorted([reply, nested, rows, typo])
    assert discover_scenario_files([rows]) == [rows]


def test_discover_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        discover_scenario_files([tmp_path / "nope"])

    assert (info.value.path, info.value.reason) == (tmp_path / "nope", "no such file or folder")


# --- the JSON Schema ------------------------------------------------------------------------------------


def _expectation_keys(schema: dict[str, Any]) -> set[str]:
    items = schema["$defs"]["ScenarioSpec"]["properties"]["expect"]["items"]
    keys = set()
    for member in items["oneOf"]:
        definition = schema["$defs"][member["$ref"].removeprefix("#/$defs/")]
        assert definition["additionalProperties"] is False
        (key,) = definition["required"]
        keys.add(key)
    return keys


def test_json_schema(tmp_path: Path) -> None:
    schema = ScenarioFile.model_json_schema()

    jsonschema.Draft202012Validator.check_schema(schema)
    assert _expectation_keys(schema) == set(EXPECTATION_KINDS) == {
        "equals", "contains", "not_contains", "regex", "starts_with", "json_valid", "json_schema", "tool_called",
        "tool_not_called", "tool_sequence", "max_turns", "max_latency_ms", "max_tokens", "max_cost_usd", "judge",
        "python", "pydantic_evals",
    }  # fmt: skip
    validator = jsonschema.Draft202012Validator(schema)
    # An editor using the schema accepts what the loader accepts...
    assert list(validator.iter_errors(yaml.safe_load(FULL_FILE))) == []
    # ... and flags the same typos.
    typo = yaml.safe_load("prompt: p\nscenarios:\n  - name: a\n    expect:\n      - contain: x\n")
    assert [list(error.absolute_path) for error in validator.iter_errors(typo)] == [["scenarios", 0, "expect", 0]]
