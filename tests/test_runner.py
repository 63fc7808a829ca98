"""The eval runner end to end: scenario files and prompt versions in, recorded runs and cases out.

Model functions live in a module written into the temporary project (``python:models_for_tests:<fn>``), so
each test controls exactly what the "model" answers and sees what it was sent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelRequest,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from promptlane.errors import ConfigError, SpecError
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.harness.models import RequestPolicy
from promptlane.registry import Prompt, Registry
from promptlane.registry.runs import CaseResult, RunRecord, ToolCallRecord

WritePrompt = Callable[[str, str], Path]

MODELS = '''
"""Model functions for the runner tests: each records what it was sent in SEEN."""

import asyncio
import json

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart

SEEN = []  # (messages, info) of every request
CALLS = {"n": 0}
BROKEN = False  # set by a test: the model is gone (replay must not need it)


def _request(messages, info):
    if BROKEN:
        raise RuntimeError("the model is gone")
    CALLS["n"] += 1
    SEEN.append((list(messages), info))


def _ticket(messages):
    requests = [m for m in messages if isinstance(m, ModelRequest)]
    return [p.content for m in requests for p in m.parts if isinstance(p, UserPromptPart)][-1]


def _returns(messages):
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]


def echo(messages, info):
    _request(messages, info)
    return f"echo: {_ticket(messages)}"


def count(messages, info):
    _request(messages, info)
    return f"answer {CALLS['n']}"


def two_lookups(messages, info):
    """Looks up order 123, then order 999, then answers with everything the tools said."""
    _request(messages, info)
    returns = _returns(messages)
    if not returns:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "123"}, tool_call_id="call-1")])
    if len(returns) == 1:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "999"}, tool_call_id="call-2")])
    seen = "; ".join(f"{r.tool_call_id} {r.outcome} {json.dumps(r.content, sort_keys=True)}" for r in returns)
    return ModelResponse(parts=[TextPart(f"done: {seen}")])


def lookup_555(messages, info):
    _request(messages, info)
    if _returns(messages):
        return "found it"
    return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "555"}, tool_call_id="call-1")])


def lookup_forever(messages, info):
    _request(messages, info)
    n = len(_returns(messages)) + 1
    return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "123"}, tool_call_id=f"call-{n}")])


STATUSES = {"1001": "delivered", "1002": "shipped", "1003": "processing"}


def order_status(messages, info):
    """Knows three orders; says 'no idea' about any other."""
    _request(messages, info)
    ticket = _ticket(messages)
    for number, status in STATUSES.items():
        if number in ticket:
            return f"order {number} is {status}"
    return "no idea"


def classify(messages, info):
    """Structured output: JSON text, or (for 'tool' tickets) a call of the output tool when one is offered."""
    _request(messages, info)
    ticket = _ticket(messages)
    if "prose" in ticket:
        return "it is about billing"
    if "weird" in ticket:
        return json.dumps({"category": "weather", "urgent": "no"})
    if "tool" in ticket:
        if not info.output_tools:  # native structured output: JSON text is the way
            return json.dumps({"category": "shipping", "urgent": False})
        output_tool = info.output_tools[0].name
        call = ToolCallPart(output_tool, {"category": "shipping", "urgent": False}, tool_call_id="out-1")
        return ModelResponse(parts=[call])
    return json.dumps({"category": "billing", "urgent": True})


def explode(messages, info):
    _request(messages, info)
    if "explode" in _ticket(messages):
        raise RuntimeError("kaboom")
    return "fine"


async def hang(messages, info):
    _request(messages, info)
    await asyncio.sleep(30)
    return "too late"


def rate_limited_twice(messages, info):
    _request(messages, info)
    if CALLS["n"] <= 2:
        raise ModelHTTPError(status_code=429, model_name="m", body=None)
    return "made it"


def bad_request(messages, info):
    _request(messages, info)
    raise ModelHTTPError(status_code=400, model_name="m", body="bad request")


async def slow(messages, info):
    _request(messages, info)
    await asyncio.sleep(0.05)
    return "slowly"
'''

HELPDESK = """\
model: python:models_for_tests:echo
variables:
  ticket: {type: string}
  customer: {type: string, default: Ann}
messages:
  - {role: system, content: "You are the helpdesk of {{ customer }}."}
  - {role: user, content: "{{ ticket }}"}
tools:
  - name: lookup_order
    description: Look up an order by id
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""

CLASSIFY = """\
model: python:models_for_tests:classify
variables:
  ticket: {type: string}
messages:
  - {role: user, content: "Classify: {{ ticket }}"}
output_schema:
  type: object
  properties:
    category: {type: string, enum: [billing, shipping]}
    urgent: {type: boolean}
  required: [category, urgent]
  additionalProperties: false
"""


# --- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture
def models(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The model functions' module, written into the project and freshly imported (so its state is new)."""
    (project / "models_for_tests.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(project))  # restored afterwards, with whatever the harness added
    monkeypatch.delitem(sys.modules, "models_for_tests", raising=False)
    importlib.invalidate_caches()
    import models_for_tests  # type: ignore[import-not-found]

    yield models_for_tests
    sys.modules.pop("models_for_tests", None)


def push(registry: Registry, write_prompt: WritePrompt, name: str, text: str) -> Prompt:
    """Write a prompt file, push it, and return the new version."""
    write_prompt(name, text)
    number = next(r.version.number for r in registry.push() if r.name == name)
    return registry.get(name, version=number)


def scenarios(project: Path, text: str, name: str = "cases.yaml") -> Path:
    path = project / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def make_run(registry: Registry, prompt: Prompt, *paths: Path, **options: Any) -> EvalRun:
    root = registry.settings.root
    return EvalRun(
        store=registry.store,
        prompt=prompt,
        documents=[load_scenario_file(path) for path in paths],
        options=EvalOptions(root=root, **options),
    )


def run_eval(
    registry: Registry, prompt: Prompt, *paths: Path, **options: Any
) -> tuple[RunRecord, dict[str, CaseResult]]:
    """Run to the end; the run and its cases as the store has them."""
    record = asyncio.run(make_run(registry, prompt, *paths, **options).run())
    stored = registry.store.get_run(record.id)
    assert (stored.status, stored.cases, stored.passed) == (record.status, record.cases, record.passed)
    return stored, {case.case: case for case in registry.store.run_cases(record.id)}


def reasons(case: CaseResult) -> list[str | None]:
    return [evaluation.reason for evaluation in case.failures]


@pytest.fixture
def helpdesk(registry: Registry, write_prompt: WritePrompt, models: types.ModuleType) -> Prompt:
    return push(registry, write_prompt, "helpdesk", HELPDESK)


# --- the tool-calling loop ----------------------------------------------------------------------------------


def test_multi_turn_tool_rehearsal(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:two_lookups
        scenarios:
          - name: two-orders
            variables: {ticket: "Where are orders 123 and 999?"}
            tools:
              lookup_order:
                - match: {order_id: "123"}
                  returns: {status: delivered, total: 42.5}
                - error: order not found
            expect:
              - tool_sequence: {tools: [lookup_order, lookup_order], order: exact}
              - contains: 'call-2 failed "order not found"'
              - max_turns: 3
        """,
    )
    record, cases = run_eval(registry, helpdesk, path)

    case = cases["two-orders"]
    assert (record.status, case.status, case.failures) == ("passed", "passed", [])
    assert case.turns == 3
    assert case.tool_calls == [
        ToolCallRecord(
            turn=1,
            id="call-1",
            name="lookup_order",
            args={"order_id": "123"},
            result={"status": "delivered", "total": 42.5},
        ),
        ToolCallRecord(turn=2, id="call-2", name="lookup_order", args={"order_id": "999"}, error="order not found"),
    ]
    # The model saw the mocked result, and the mocked failure as a failed tool return.
    assert case.output == (
        'done: call-1 success {"status": "delivered", "total": 42.5}; call-2 failed "order not found"'
    )
    last_request, info = models.SEEN[-1]
    assert [tool.name for tool in info.function_tools] == ["lookup_order"]
    assert len(models.SEEN) == 3 and isinstance(last_request[-1], ModelRequest)


def test_a_call_no_mock_matches_fails_the_case(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:lookup_555
        scenarios:
          - name: unmatched
            variables: {ticket: "Where is order 555?"}
            tools:
              lookup_order:
                - match: {order_id: "123"}
                  returns: {status: delivered}
            expect:
              - contains: found
          - name: unmocked
            variables: {ticket: "Where is order 555?"}
            expect:
              - contains: found
        """,
    )
    record, cases = run_eval(registry, helpdesk, path)

    assert record.status == "failed"
    unmatched, unmocked = cases["unmatched"], cases["unmocked"]
    assert unmatched.status == "failed"
    assert reasons(unmatched) == ['no mock for lookup_order({"order_id": "555"})']
    assert unmatched.tool_calls[0].error == 'no mock for lookup_order({"order_id": "555"})'
    assert unmatched.turns == 1  # the case stops there: the model never hears back
    assert reasons(unmocked) == ["no mock for tool 'lookup_order' (the scenario mocks: none)"]
    assert unmocked.status == "failed"


def test_max_turns_exceeded_fails(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:lookup_forever
        scenarios:
          - name: loops
            variables: {ticket: "Where is order 123?"}
            max_turns: 3
            tools:
              lookup_order: [{returns: {status: delivered}}]
            expect:
              - contains: delivered
        """,
    )
    record, cases = run_eval(registry, helpdesk, path)

    case = cases["loops"]
    assert (record.status, case.status, case.turns) == ("failed", "failed", 3)
    assert [e.name for e in case.failures] == ["max_turns"]
    assert reasons(case) == ["no final answer after 3 model requests (the scenario's max_turns)"]
    assert [call.turn for call in case.tool_calls] == [1, 2, 3]
    assert len(models.SEEN) == 3


def _shape(messages: list[Any]) -> list[tuple[str, ...]]:
    shaped: list[tuple[str, ...]] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, SystemPromptPart):
                shaped.append(("system", part.content))
            elif isinstance(part, UserPromptPart):
                shaped.append(("user", str(part.content)))
            elif isinstance(part, ToolCallPart):
                shaped.append(("tool-call", part.tool_name, part.tool_call_id, part.args_as_json_str()))
            elif isinstance(part, ToolReturnPart):
                shaped.append(("tool-return", part.tool_name, part.tool_call_id, json.dumps(part.content)))
            elif isinstance(part, TextPart):
                shaped.append(("assistant", part.content))
    return shaped


def test_history_comes_before_the_prompts_user_message(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        scenarios:
          - name: follow-up
            history:
              - {role: user, content: "Hi, my order 123 has not arrived."}
              - role: assistant
                tool_calls: [{name: lookup_order, args: {order_id: "123"}, id: earlier}]
              - {role: tool, name: lookup_order, id: earlier, content: {status: shipped}}
              - {role: assistant, content: "Order 123 is shipped."}
            variables: {ticket: "Thanks! When will it arrive?", customer: Di}
            expect:
              - equals: "echo: Thanks! When will it arrive?"
        """,
    )
    record, cases = run_eval(registry, helpdesk, path)

    assert record.status == "passed"
    (sent, _info), *_ = models.SEEN
    assert _shape(sent) == [
        ("system", "You are the helpdesk of Di."),
        ("user", "Hi, my order 123 has not arrived."),
        ("tool-call", "lookup_order", "earlier", '{"order_id":"123"}'),
        ("tool-return", "lookup_order", "earlier", '{"status": "shipped"}'),
        ("assistant", "Order 123 is shipped."),
        ("user", "Thanks! When will it arrive?"),
    ]
    # Requests and responses alternate, as a provider expects.
    assert [type(m).__name__ for m in sent] == [
        "ModelRequest",
        "ModelResponse",
        "ModelRequest",
        "ModelResponse",
        "ModelRequest",
    ]
    assert [m["role"] for m in cases["follow-up"].messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


# --- structured output ----------------------------------------------------------------------------------------


def test_structured_output_against_the_versions_schema(
    registry: Registry, project: Path, write_prompt: WritePrompt, models: Any
) -> None:
    prompt = push(registry, write_prompt, "classify", CLASSIFY)
    path = scenarios(
        project,
        """\
        prompt: classify
        scenarios:
          - name: good
            variables: {ticket: "I was charged twice"}
            expect:
              - json_schema: true
              - equals: {category: billing, urgent: true}
          - name: shipping
            variables: {ticket: "use the tool"}
            expect:
              - json_schema: true
              - equals: {category: shipping, urgent: false}
          - name: off-schema
            variables: {ticket: "weird"}
            expect:
              - json_schema: true
          - name: not-json
            variables: {ticket: "prose"}
            expect:
              - json_schema: true
        """,
    )
    record, cases = run_eval(registry, prompt, path)

    assert record.status == "failed"
    assert cases["good"].status == "passed"
    assert cases["good"].output == {"category": "billing", "urgent": True}
    assert cases["shipping"].status == "passed"
    assert cases["shipping"].output == {"category": "shipping", "urgent": False}
    assert cases["off-schema"].status == "failed"
    assert reasons(cases["off-schema"]) == [
        "output does not match the schema at category: 'weather' is not one of ['billing', 'shipping']"
    ]
    assert cases["not-json"].status == "failed"
    (reason,) = reasons(cases["not-json"])
    assert reason is not None and reason.startswith("output is not valid JSON")
    # The model is asked for structured output (the schema is offered, plain text is not enough).
    _messages, info = models.SEEN[0]
    parameters = info.model_request_parameters
    if parameters.output_mode == "tool":
        assert [(t.name, t.parameters_json_schema) for t in parameters.output_tools] == [
            ("final_result", prompt.output_schema)
        ]
        assert not parameters.allow_text_output
    else:
        assert parameters.output_mode == "native"
        assert parameters.output_object.json_schema == prompt.output_schema


def test_structured_output_is_native_where_the_model_supports_it(
    registry: Registry, project: Path, write_prompt: WritePrompt, models: Any
) -> None:
    prompt = push(registry, write_prompt, "classify", CLASSIFY)
    path = scenarios(
        project,
        """\
        prompt: classify
        scenarios:
          - name: good
            variables: {ticket: "I was charged twice"}
            expect: [{json_schema: true}]
        """,
    )
    model = make_run(registry, prompt, path).plans[0].client.model
    assert model.profile["supports_json_schema_output"] is True  # a FunctionModel supports it
    run_eval(registry, prompt, path)
    _messages, info = models.SEEN[0]
    assert info.model_request_parameters.output_mode == "native"


# --- datasets, thresholds, repeats ----------------------------------------------------------------------------

TICKETS = [
    {"ticket": "Where is order 1001?", "expected": "delivered"},
    {"ticket": "Any news on order 1002?", "expected": "shipped"},
    {"ticket": "Order 1003, when will it ship?", "expected": "processing"},
    {"ticket": "I never got order 1004", "expected": "could not find"},
]


@pytest.mark.parametrize(("threshold", "status"), [(0.75, "passed"), (0.8, "failed")])
def test_dataset_rows_times_repeats_against_the_threshold(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any, threshold: float, status: str
) -> None:
    (project / "evals" / "data").mkdir(parents=True)
    (project / "evals" / "data" / "tickets.jsonl").write_text(
        "\n".join(json.dumps(row) for row in TICKETS[:2]) + "\n\n" + "\n".join(json.dumps(r) for r in TICKETS[2:])
    )
    path = scenarios(
        project,
        f"""\
        prompt: helpdesk
        model: python:models_for_tests:order_status
        scenarios:
          - name: tickets
            dataset: data/tickets.jsonl
            variables: {{customer: Eve}}
            expect:
              - contains: "{{{{ expected }}}}"
            threshold: {threshold}
            repeat: 2
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, concurrency=3)

    assert sorted(cases) == [f"tickets[row-{row}][repeat-{repeat}]" for row in range(1, 5) for repeat in (1, 2)]
    (stats,) = record.scenarios
    assert (stats.cases, stats.passed, stats.failed, stats.skipped) == (8, 6, 2, 0)
    assert stats.pass_rate == 0.75
    assert stats.threshold == threshold
    assert record.status == status

    third = cases["tickets[row-3][repeat-2]"]
    assert (third.row, third.repeat, third.line, third.status) == (3, 2, 4, "passed")  # line 3 is blank
    assert third.file == "evals/data/tickets.jsonl"  # located at its row, in the dataset
    assert third.variables == {"customer": "Eve", "ticket": "Order 1003, when will it ship?"}
    assert third.output == "order 1003 is processing"
    fourth = cases["tickets[row-4][repeat-1]"]
    assert reasons(fourth) == ["output does not contain 'could not find': 'no idea'"]


# --- dataset columns ---------------------------------------------------------------------------------------------


def dataset(project: Path, name: str, text: str) -> Path:
    path = project / "evals" / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def dataset_scenario(project: Path, data: str, expect: str = '{contains: "{{ expected }}"}', extra: str = "") -> Path:
    return scenarios(
        project,
        f"""\
        prompt: helpdesk
        model: python:models_for_tests:order_status
        scenarios:
          - name: tickets
            dataset: data/{data}
            expect: [{expect}]
        {extra}""",
    )


def setup_error(registry: Registry, prompt: Prompt, path: Path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        make_run(registry, prompt, path)
    return caught.value


def test_an_expectation_column_no_row_has_stops_the_run_before_it_starts(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    # Every row has `expected` but the expectation says `expcted`: found by the first row, then a pass over all.
    dataset(project, "tickets.jsonl", "".join(json.dumps(row) + "\n" for row in TICKETS))
    path = dataset_scenario(project, "tickets.jsonl", '{contains: "{{ expcted }}"}')

    error = setup_error(registry, helpdesk, path)

    assert (error.path, error.line) == ("evals/data/tickets.jsonl", None)
    assert error.reason == (
        "no row has a column 'expcted' (did you mean 'expected'?): the expectations of scenario 'tickets' "
        "(evals/cases.yaml:4) use it"
    )
    assert models.CALLS["n"] == 0 and registry.store.list_runs() == []


def test_a_dataset_without_expected_is_refused_rather_than_compared_with_none(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    # The output of `order_status` for an unknown order is "no idea": "None" is nowhere in it, and was once the
    # text `{{ expected }}` rendered to, failing every row for a reason nobody could see.
    dataset(project, "tickets.csv", "ticket,status\nWhere is order 1001?,delivered\n")
    path = dataset_scenario(project, "tickets.csv")

    error = setup_error(registry, helpdesk, path)

    assert (error.path, error.line) == ("evals/data/tickets.csv", 1)  # the header names every column
    assert error.reason.startswith("no row has a column 'expected' (its columns: status, ticket): ")
    assert str(error).startswith("evals/data/tickets.csv:1: no row has a column 'expected'")


def test_a_required_variable_no_row_has_names_the_column(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    dataset(project, "tickets.yaml", "- {tikcet: 'Where is order 1001?', expected: delivered}\n")
    path = dataset_scenario(project, "tickets.yaml")

    error = setup_error(registry, helpdesk, path)

    assert (error.path, error.line) == ("evals/data/tickets.yaml", None)
    assert error.reason == (
        "no row has a column 'ticket' (did you mean 'tikcet'?): helpdesk@1 requires the variable and scenario "
        "'tickets' (evals/cases.yaml:4) does not set it"
    )


def test_a_variable_the_scenario_sets_or_with_a_default_is_not_needed_from_rows(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    # `customer` has a default and `ticket` is set by the scenario: the rows only need `expected`.
    dataset(project, "tickets.jsonl", json.dumps({"expected": "delivered"}) + "\n")
    path = dataset_scenario(project, "tickets.jsonl", extra='    variables: {ticket: "Where is order 1001?"}\n')

    record, cases = run_eval(registry, helpdesk, path)

    assert record.status == "passed" and cases["tickets[row-1]"].output == "order 1001 is delivered"


def test_a_row_without_a_column_is_an_error_of_its_case_naming_file_and_line(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    # The first row has `expected`, so the run starts; rows 2 and 3 (lines 3 and 4) lack a column.
    rows = [TICKETS[0], {"ticket": "Any news on order 1002?", "expectd": "shipped"}, {"expected": "processing"}]
    dataset(project, "tickets.jsonl", json.dumps(rows[0]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    path = dataset_scenario(project, "tickets.jsonl")

    record, cases = run_eval(registry, helpdesk, path)

    assert (record.status, record.passed, record.errored) == ("error", 1, 2)
    second, third = cases["tickets[row-2]"], cases["tickets[row-3]"]
    assert second.error is not None and third.error is not None
    assert (second.status, second.file, second.line, second.error.type) == (
        "error", "evals/data/tickets.jsonl", 3, "SpecError"
    )  # fmt: skip
    assert second.error.message == (
        "evals/data/tickets.jsonl:3: the row has no column 'expected' (did you mean 'expectd'?): "
        "the expectations use it"
    )
    assert third.error.message == (
        "evals/data/tickets.jsonl:4: the row has no column 'ticket': helpdesk@1 requires the variable"
    )
    assert models.CALLS["n"] == 1  # no model call for a row that cannot run


def test_a_sparse_jsonl_column_is_not_refused_before_the_run(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    # The first row lacks `expected`, a later one has it: only the rows without it are errors.
    rows = [{"ticket": "Where is order 1001?"}, TICKETS[1]]
    dataset(project, "tickets.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    path = dataset_scenario(project, "tickets.jsonl")

    record, cases = run_eval(registry, helpdesk, path)

    assert {case: result.status for case, result in cases.items()} == {
        "tickets[row-1]": "error",
        "tickets[row-2]": "passed",
    }
    assert record.errored == 1


def test_a_null_is_data_for_equals_and_an_error_where_text_is_needed(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    dataset(project, "rows.jsonl", json.dumps({"ticket": "null", "expected": None}) + "\n")
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:echo
        scenarios:
          - name: as-data
            dataset: data/rows.jsonl
            expect: [{equals: "{{ expected }}"}]
          - name: as-text
            dataset: data/rows.jsonl
            expect: [{contains: "{{ expected }}"}]
          - name: in-a-template
            dataset: data/rows.jsonl
            expect: [{equals: "echo: {{ expected }}"}]
        """,
    )

    record, cases = run_eval(registry, helpdesk, path)

    # "echo: null" is not JSON null: the null is compared as data and fails, for a reason one can read.
    assert reasons(cases["as-data[row-1]"]) == ["expected None, got 'echo: null'"]
    for case in ("as-text[row-1]", "in-a-template[row-1]"):
        error = cases[case].error
        assert error is not None and error.type == "SpecError"
        assert error.message == (
            "evals/data/rows.jsonl:1: column 'expected' is null, and an expectation uses it as text: a null has "
            'no text (`equals: "{{ expected }}"` compares it as data)'
        )
        assert "None" not in error.message
    assert record.errored == 2


def test_an_expectation_name_a_scenario_without_a_dataset_lacks_is_a_setup_error(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        scenarios:
          - name: plain
            variables: {ticket: hello}
            expect:
              - tool_called: {name: lookup_order, args: {order_id: "{{ order }}"}}
        """,
    )

    error = setup_error(registry, helpdesk, path)

    assert (Path(str(error.path)), error.line, error.key) == (path, 6, "scenarios.0.expect.0.tool_called.args.order_id")
    assert error.reason == (
        "'order' is not a variable of this scenario, and without a dataset there are no columns (its variables: ticket)"
    )


def test_model_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        EvalOptions(model="gpt-4o-mini")
    assert str(caught.value) == "model: model 'gpt-4o-mini' has no provider: did you mean 'openai:gpt-4o-mini'?"
    with pytest.raises(ConfigError) as caught:
        EvalOptions(judge_model="antropic:claude-sonnet-4-5")
    assert str(caught.value) == "judge_model: unknown provider 'antropic': did you mean 'anthropic'?"
    assert EvalOptions(model="test", judge_model="python:judges:strict").model == "test"


# --- failures of the model --------------------------------------------------------------------------------------


def test_a_model_that_raises_is_a_case_error_and_the_run_goes_on(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:explode
        scenarios:
          - name: boom
            variables: {ticket: "please explode"}
            expect: [{contains: fine}]
          - name: calm
            variables: {ticket: "hello"}
            expect: [{contains: fine}]
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, concurrency=1)

    boom = cases["boom"]
    assert boom.status == "error"
    assert boom.error is not None and (boom.error.type, boom.error.message) == ("RuntimeError", "kaboom")
    assert boom.evaluations == []
    assert cases["calm"].status == "passed"
    assert (record.status, record.cases, record.passed, record.errored) == ("error", 2, 1, 1)
    assert record.finished_at is not None


def test_a_model_that_hangs_times_out(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:hang
        scenarios:
          - name: stuck
            variables: {ticket: "hello"}
            expect: [{contains: late}]
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, policy=RequestPolicy(timeout=0.05, retries=2, backoff=0.001))

    stuck = cases["stuck"]
    assert stuck.status == "error" and stuck.error is not None
    # The model would answer "too late" after 30 s: a timeout error (three times, with the retries) is the proof
    # that the request was cut short, whatever the speed of the machine.
    assert (stuck.error.type, stuck.error.message) == ("TimeoutError", "the model did not answer within 0.05s")
    assert models.CALLS["n"] == 3  # a timeout is retried
    assert record.status == "error"


def test_rate_limits_are_retried(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:rate_limited_twice
        scenarios:
          - name: busy
            variables: {ticket: "hello"}
            expect: [{equals: made it}]
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, policy=RequestPolicy(backoff=0.001))

    assert (record.status, cases["busy"].status, cases["busy"].output) == ("passed", "passed", "made it")
    assert models.CALLS["n"] == 3


def test_rate_limits_give_up_after_the_retries(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:rate_limited_twice
        scenarios:
          - name: busy
            variables: {ticket: "hello"}
            expect: [{equals: made it}]
        """,
    )
    _record, cases = run_eval(registry, helpdesk, path, policy=RequestPolicy(backoff=0.001, retries=1))

    busy = cases["busy"]
    assert busy.status == "error" and busy.error is not None
    assert busy.error.type == "ModelHTTPError" and "429" in busy.error.message
    assert models.CALLS["n"] == 2


def test_a_client_error_is_not_retried(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:bad_request
        scenarios:
          - name: rejected
            variables: {ticket: "hello"}
            expect: [{contains: anything}]
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, policy=RequestPolicy(backoff=0.001))

    rejected = cases["rejected"]
    assert rejected.status == "error" and rejected.error is not None
    assert rejected.error.type == "ModelHTTPError" and "400" in rejected.error.message
    assert models.CALLS["n"] == 1
    assert record.status == "error"


# --- record / replay --------------------------------------------------------------------------------------------


def test_record_then_replay_without_the_model(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    recordings = project / "recordings"
    text = """\
        prompt: helpdesk
        scenarios:
          - name: hello
            variables: {ticket: "TICKET"}
            expect: [{equals: "echo: TICKET"}]
          - name: two-orders
            model: python:models_for_tests:two_lookups
            variables: {ticket: "Orders 123 and 999?"}
            tools:
              lookup_order:
                - match: {order_id: "123"}
                  returns: {status: delivered}
                - error: order not found
            expect: [{contains: "done:"}]
        """
    path = scenarios(project, text.replace("TICKET", "hi there"))
    recorded, first = run_eval(registry, helpdesk, path, cache="on", recordings=recordings)
    assert recorded.status == "passed"
    assert models.CALLS["n"] == 4  # one request for hello, three for two-orders
    files = sorted(recordings.rglob("*.json"))
    assert len(files) == 4
    assert all(file.parent.name == file.stem[:2] for file in files)

    # `on` again: everything comes from the recordings.
    again, _ = run_eval(registry, helpdesk, path, cache="on", recordings=recordings)
    assert again.status == "passed" and models.CALLS["n"] == 4

    models.BROKEN = True
    replayed, second = run_eval(registry, helpdesk, path, cache="replay", recordings=recordings)
    assert replayed.status == "passed"
    assert {k: (c.output, c.tool_calls, c.turns) for k, c in second.items()} == {
        k: (c.output, c.tool_calls, c.turns) for k, c in first.items()
    }
    assert replayed.settings["cache"] == "replay"

    # A request that was never recorded: the case is an error, not a call to the model.
    path = scenarios(project, text.replace("TICKET", "something else"))
    missed, third = run_eval(registry, helpdesk, path, cache="replay", recordings=recordings)
    miss = third["hello"]
    assert miss.status == "error" and miss.error is not None
    assert miss.error.type == "ReplayMissError"
    assert str(recordings) in miss.error.message
    assert third["two-orders"].status == "passed"
    assert missed.status == "error"
    assert len(sorted(recordings.rglob("*.json"))) == 4  # replay never writes


def test_repeats_have_independent_recordings(registry: Registry, project: Path, helpdesk: Prompt, models: Any) -> None:
    recordings = project / "recordings"
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:count
        scenarios:
          - name: twice
            variables: {ticket: "hello"}
            repeat: 2
        """,
    )
    _, recorded = run_eval(registry, helpdesk, path, cache="on", recordings=recordings, concurrency=1)
    assert {k: c.output for k, c in recorded.items()} == {"twice[repeat-1]": "answer 1", "twice[repeat-2]": "answer 2"}
    assert len(list(recordings.rglob("*.json"))) == 2

    models.BROKEN = True
    _, replayed = run_eval(registry, helpdesk, path, cache="replay", recordings=recordings)
    assert {k: c.output for k, c in replayed.items()} == {"twice[repeat-1]": "answer 1", "twice[repeat-2]": "answer 2"}


# --- cost ceiling, interruption ---------------------------------------------------------------------------------


def test_a_cost_ceiling_of_zero_starts_no_case(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        scenarios:
          - name: one
            variables: {ticket: "hello"}
            repeat: 3
          - name: two
            variables: {ticket: "hello"}
        """,
    )
    record, cases = run_eval(registry, helpdesk, path, max_cost=0)

    assert (record.status, record.reason, record.cases) == ("stopped", "cost ceiling", 0)
    assert [(s.name, s.cases, s.skipped, s.met) for s in record.scenarios] == [
        ("one", 0, 3, False),
        ("two", 0, 1, False),
    ]
    assert cases == {}
    assert models.CALLS["n"] == 0


def test_an_interrupted_run_saves_the_finished_cases(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:slow
        scenarios:
          - name: many
            variables: {ticket: "hello"}
            repeat: 40
        """,
    )
    run = make_run(registry, helpdesk, path, concurrency=2)
    finished: list[str] = []

    async def main() -> None:
        enough = asyncio.Event()

        def on_case(case: CaseResult) -> None:
            finished.append(case.case)
            if len(finished) >= 4:
                enough.set()

        run.on_case = on_case
        task = asyncio.create_task(run.run())
        await asyncio.wait_for(enough.wait(), 120)  # a guard against a hang, not a measure of speed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    stored = registry.store.get_run(run.record.id)
    saved = [case.case for case in registry.store.run_cases(run.record.id)]
    assert stored.status == "interrupted"
    assert stored.finished_at is not None
    assert set(finished) <= set(saved)
    assert 4 <= len(saved) < 40
    (stats,) = stored.scenarios
    assert (stats.cases, stats.skipped) == (len(saved), 40 - len(saved))
    assert all(case.status == "passed" for case in registry.store.run_cases(run.record.id))


def test_a_dataset_that_stops_parsing_half_way_keeps_what_finished(
    registry: Registry, project: Path, helpdesk: Prompt, models: Any
) -> None:
    (project / "evals").mkdir()
    rows = "".join(json.dumps(row) + "\n" for row in TICKETS[:3])
    (project / "evals" / "rows.jsonl").write_text(rows + "{not json\n" + json.dumps(TICKETS[3]) + "\n")
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        model: python:models_for_tests:order_status
        scenarios:
          - name: rows
            dataset: rows.jsonl
            expect: [{contains: "{{ expected }}"}]
        """,
    )
    run = make_run(registry, helpdesk, path, concurrency=1)
    with pytest.raises(SpecError) as caught:
        asyncio.run(run.run())
    assert (Path(str(caught.value.path)), caught.value.line) == (project / "evals" / "rows.jsonl", 4)

    stored = registry.store.get_run(run.record.id)
    assert stored.status == "error"
    assert stored.reason is not None and stored.reason.startswith("SpecError: ") and "rows.jsonl:4" in stored.reason
    assert sorted(case.case for case in registry.store.run_cases(run.record.id)) == [
        "rows[row-1]",
        "rows[row-2]",
        "rows[row-3]",
    ]
    (stats,) = stored.scenarios
    assert (stats.cases, stats.passed, stats.skipped) == (3, 3, 2)  # the bad line and the row after it


# --- setup errors -----------------------------------------------------------------------------------------------


def test_a_scenario_file_for_another_prompt_is_a_config_error(
    registry: Registry, project: Path, helpdesk: Prompt
) -> None:
    path = scenarios(
        project,
        """\
        prompt: other/prompt
        scenarios:
          - name: hello
            variables: {ticket: "hello"}
        """,
    )
    with pytest.raises(ConfigError, match=r"scenario file is for 'other/prompt', not 'helpdesk'") as caught:
        make_run(registry, helpdesk, path)
    assert caught.value.source == str(path)


def test_a_model_function_that_does_not_import_names_file_and_line(
    registry: Registry, project: Path, helpdesk: Prompt
) -> None:
    path = scenarios(
        project,
        """\
        prompt: helpdesk
        scenarios:
          - name: fine
            variables: {ticket: "hello"}
          - name: broken
            model: python:no_such_module_here:respond
            variables: {ticket: "hello"}
        """,
    )
    with pytest.raises(SpecError) as caught:
        make_run(registry, helpdesk, path)
    error = caught.value
    assert (Path(str(error.path)), error.line) == (path, 5)
    assert "cannot import 'no_such_module_here'" in str(error)
    assert str(error).startswith(f"{path}:5")


# --- scale --------------------------------------------------------------------------------------------------

BIG_RUN = """
import asyncio, json, resource, sys, time
from pathlib import Path

from promptlane.config import Settings
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry


def peak_mb():
    # Peak RSS of this process. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child started
    # by a large parent (a long pytest session) would report the parent's size.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


folder = Path(sys.argv[1])
registry = Registry(settings=Settings(root=folder, registry=f"sqlite:///{folder}/registry.db"))
registry.push([folder / "prompts"])
run = EvalRun(
    store=registry.store,
    prompt=registry.get("calc", version=1),
    documents=[load_scenario_file(folder / "evals" / "calc.yaml")],
    options=EvalOptions(root=folder),
)
start = time.perf_counter()
record = asyncio.run(run.run())
stored = sum(registry.store.count_cases(record.id).values())
print(json.dumps({
    "status": record.status, "cases": record.cases, "passed": record.passed, "stored": stored,
    "seconds": time.perf_counter() - start,
    "peak_mb": peak_mb(),
}))
"""

CALC_MODEL = """
from pydantic_ai.messages import ModelRequest, UserPromptPart

def add(messages, info):
    question = [p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts
                if isinstance(p, UserPromptPart)][-1]
    a, b = question.removeprefix("What is ").rstrip("?").split(" + ")
    return str(int(a) + int(b))
"""


@pytest.mark.slow
def test_a_100000_row_dataset_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows = 100_000
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "calc.yaml").write_text(
        "model: python:calc_model:add\nvariables: {question: {type: string}}\n"
        "messages:\n  - {role: user, content: '{{ question }}'}\n"
    )
    (tmp_path / "calc_model.py").write_text(CALC_MODEL)
    (tmp_path / "evals").mkdir()
    with (tmp_path / "evals" / "rows.jsonl").open("w") as file:
        for i in range(rows):
            # Padding makes the dataset itself big (~50 MB): holding it would show.
            file.write(
                json.dumps({"question": f"What is {i} + {i + 1}?", "expected": str(2 * i + 1), "pad": "x" * 400})
            )
            file.write("\n")
    (tmp_path / "evals" / "calc.yaml").write_text(
        "prompt: calc\nscenarios:\n  - name: sums\n    dataset: rows.jsonl\n"
        "    expect:\n      - equals: '{{ expected }}'\n"
    )
    (tmp_path / "run.py").write_text(BIG_RUN)

    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,  # a guard against a hang: about 8 s on an idle machine, far more on a busy one
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["status"], result["cases"], result["passed"], result["stored"]) == ("passed", rows, rows, rows)
    assert result["peak_mb"] < 300, result
