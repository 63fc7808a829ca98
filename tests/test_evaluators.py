"""Evaluators built from parsed expectations, run on hand-made cases; the LLM judge over a FunctionModel."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from _live import finishes
from promptlane.errors import ConfigError, TemplateRenderError
from promptlane.harness._imports import load_callable
from promptlane.harness.evaluators import CaseContext, Evaluator, build_evaluators
from promptlane.harness.judge import INSTRUCTIONS, JudgeFactory
from promptlane.harness.models import ModelClient, RequestPolicy
from promptlane.harness.pydantic_evals import pydantic_evals_evaluator
from promptlane.harness.recordings import Recordings, ReplayMissError
from promptlane.harness.scenarios import ScenarioFile
from promptlane.registry.runs import EvaluationResult, ToolCallRecord
from promptlane.templates import TextTemplate


def expectations(text: str) -> list[Any]:
    """The parsed ``expect:`` list of a scenario."""
    spec = ScenarioFile.model_validate(
        {"prompt": "support/reply", "scenarios": [{"name": "refund", "expect": yaml.safe_load(textwrap.dedent(text))}]}
    )
    return list(spec.scenarios[0].expect)


def _no_judge(args: Any) -> Evaluator:
    raise AssertionError("no judge expected")


def build(text: str, *, root: Path | None = None, judge: Callable[[Any], Evaluator] = _no_judge) -> list[Evaluator]:
    return build_evaluators(
        expectations(text),
        compile_template=lambda source: TextTemplate(source, name="t").render,
        load_function=lambda reference, what: load_callable(reference, what=what, root=root),
        judge=judge,
        pydantic_evals=pydantic_evals_evaluator,
    )


def one(text: str, **kwargs: Any) -> Evaluator:
    (evaluator,) = build(text, **kwargs)
    return evaluator


def evaluate(evaluator: Evaluator, ctx: CaseContext) -> EvaluationResult:
    result = evaluator.evaluate(ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    assert isinstance(result, EvaluationResult)
    return result


def case(**fields: Any) -> CaseContext:
    return CaseContext(scenario="refund", case="refund", variables=fields.pop("variables", {}), **fields)


def call(name: str, turn: int = 1, **args: Any) -> ToolCallRecord:
    return ToolCallRecord(turn=turn, id=f"call-{name}-{turn}", name=name, args=args)


def passed(name: str, score: float | None = None, reason: str | None = None) -> EvaluationResult:
    return EvaluationResult(name=name, passed=True, score=score, reason=reason)


def failed(name: str, reason: str | None, score: float | None = None) -> EvaluationResult:
    return EvaluationResult(name=name, passed=False, score=score, reason=reason)


@pytest.fixture
def python_module(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Write a module (unique name) into tmp_path; returns its name. Forgotten again after the test."""
    names: list[str] = []
    saved_path = list(sys.path)

    def write(source: str) -> str:
        name = f"checks_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    sys.path[:] = saved_path
    for name in names:
        sys.modules.pop(name, None)


# --- output checks --------------------------------------------------------------------------------------

OUTPUT_CHECKS: dict[str, tuple[str, Any, EvaluationResult]] = {
    "equals-text": ("equals: Refunded.", "Refunded.", passed("equals")),
    "equals-text-differs": ("equals: Refunded.", "Refunded", failed("equals", "expected 'Refunded.', got 'Refunded'")),
    "equals-structured": ("equals: {status: shipped, total: 5}", {"total": 5.0, "status": "shipped"}, passed("equals")),
    "equals-structured-differs": (
        "equals: {status: shipped}",
        {"status": "lost"},
        failed("equals", "expected {'status': 'shipped'}, got {'status': 'lost'}"),
    ),
    "equals-text-vs-structured": ('equals: \'{"a": 1, "b": [true]}\'', {"b": [True], "a": 1}, passed("equals")),
    "equals-number": ("equals: 3", 3, passed("equals")),
    # YAML makes `3` a number; a model's text answer "3" reads as the same JSON value.
    "equals-number-vs-text": ("equals: 3", "3", passed("equals")),
    "equals-number-vs-other-text": ("equals: 3", "three", failed("equals", "expected 3, got 'three'")),
    "contains": ("contains: refund", "Your refund is on its way", passed("contains")),
    "contains-case-sensitive": (
        "contains: refund",
        "Your REFUND",
        failed("contains", "output does not contain 'refund': 'Your REFUND'"),
    ),
    "contains-case-sensitive-explicit": (
        "contains: {value: Refund, case_sensitive: true}",
        "your refund",
        failed("contains", "output does not contain 'Refund': 'your refund'"),
    ),
    "contains-case-insensitive": (
        "contains: {value: Refund, case_sensitive: false}",
        "YOUR REFUND",
        passed("contains"),
    ),
    "contains-structured": ('contains: \'"status": "shipped"\'', {"status": "shipped"}, passed("contains")),
    "contains-nothing": ("contains: refund", None, failed("contains", "output does not contain 'refund': ''")),
    "not-contains": ("not_contains: sorry", "Refund issued.", passed("not_contains")),
    "not-contains-found": (
        "not_contains: sorry",
        "I'm sorry",
        failed("not_contains", "output contains 'sorry': \"I'm sorry\""),
    ),
    "not-contains-case-insensitive": (
        "not_contains: {value: SORRY, case_sensitive: false}",
        "I'm Sorry",
        failed("not_contains", "output contains 'sorry': \"I'm Sorry\""),
    ),
    "regex": (r"regex: '^Hi \w+,'", "Hi Ana, here you go", passed("regex")),
    "regex-searches": ("regex: '\\d{3}'", "order 123 shipped", passed("regex")),
    "regex-no-match": (
        r"regex: '^Hi \w+,'",
        "Hello Ana",
        failed("regex", r"output does not match /^Hi \w+,/: 'Hello Ana'"),
    ),
    "starts-with": ("starts_with: Hi Ana", "Hi Ana, hello", passed("starts_with")),
    "starts-with-not": (
        "starts_with: Hi Ana",
        " Hi Ana",
        failed("starts_with", "output does not start with 'Hi Ana': ' Hi Ana'"),
    ),
    "json-valid": ("json_valid: true", '{"a": [1, 2]}', passed("json_valid")),
    "json-valid-structured": ("json_valid: true", {"a": 1}, passed("json_valid")),
    "json-valid-not": (
        "json_valid: true",
        "{a: 1}",
        failed(
            "json_valid",
            "output is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)): "
            "'{a: 1}'",
        ),
    ),
}


@pytest.mark.parametrize(("expectation", "output", "result"), list(OUTPUT_CHECKS.values()), ids=list(OUTPUT_CHECKS))
def test_output_checks(expectation: str, output: Any, result: EvaluationResult) -> None:
    assert evaluate(one(f"- {expectation}"), case(output=output)) == result


def test_long_outputs_are_shortened_in_reasons() -> None:
    result = evaluate(one("- contains: refund"), case(output="x" * 500))

    assert result == failed("contains", f"output does not contain 'refund': '{'x' * 156}...")


SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}


@pytest.mark.parametrize(
    ("output", "result"),
    [
        ('{"status": "shipped"}', passed("json_schema")),
        ({"status": "shipped"}, passed("json_schema")),
        (
            '{"status": 1}',
            failed("json_schema", "output does not match the schema at status: expected string, got int 1"),
        ),
        ({}, failed("json_schema", "output does not match the schema at status: missing required property")),
        ("[1]", failed("json_schema", "output does not match the schema at (root): expected object, got list [1]")),
        (
            "shipped",
            failed("json_schema", "output is not valid JSON (Expecting value: line 1 column 1 (char 0)): 'shipped'"),
        ),
    ],
)
def test_json_schema(output: Any, result: EvaluationResult) -> None:
    explicit = one(f"- json_schema: {json.dumps(SCHEMA)}")
    from_version = one("- json_schema: true")

    assert evaluate(explicit, case(output=output)) == result
    assert evaluate(from_version, case(output=output, output_schema=SCHEMA)) == result
    # The explicit schema wins over the version's.
    assert evaluate(explicit, case(output=output, output_schema={"type": "string"})) == result


def test_a_json_schema_pattern_cannot_backtrack_for_ever() -> None:
    # With a backtracking regex engine, '^(a+)+$' against 'a' * 50 + '!' takes longer than anyone waits (26 a's:
    # seconds, doubling with each one): a model's output could hang the run.
    schema = {"properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
    output = json.dumps({"code": "a" * 50_000 + "!"})

    result = finishes(lambda: evaluate(one(f"- json_schema: {json.dumps(schema)}"), case(output=output)), "the check")

    assert result == failed(
        "json_schema",
        f"output does not match the schema at code: does not match pattern '^(a+)+$': '{'a' * 56}...",
    )


def test_json_schema_refers_to_itself_and_the_output_nests_deep() -> None:
    tree = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    deep: dict[str, Any] = {}
    for _ in range(150):
        deep = {"child": deep}
    explicit = one(f"- json_schema: {json.dumps(tree)}")

    assert evaluate(explicit, case(output={"child": {"child": {}}})) == passed("json_schema")
    assert evaluate(explicit, case(output=deep)) == failed(
        "json_schema",
        "output does not match the schema at (root): nests more than 100 levels deep, too deep for a schema that "
        "refers to itself",
    )


def test_json_schema_true_without_an_output_schema() -> None:
    with pytest.raises(ValueError, match=r"^json_schema: true needs the version to declare an output_schema$"):
        evaluate(one("- json_schema: true"), case(output="{}"))


# --- trajectory checks ----------------------------------------------------------------------------------

CALLS = [
    call("lookup_order", 1, order_id="123"),
    call("refund", 2, order_id="123", amount=42.5),
    call("lookup_order", 2, order_id="124", options={"deep": True}),
]


@pytest.mark.parametrize(
    ("expectation", "result"),
    [
        ("tool_called: lookup_order", passed("tool_called")),
        ("tool_called: {name: lookup_order, args: {order_id: '124'}}", passed("tool_called")),
        ("tool_called: {name: lookup_order, args: {options: {}}}", passed("tool_called")),
        ("tool_called: {name: lookup_order, times: 2}", passed("tool_called")),
        ("tool_called: {name: lookup_order, args: {order_id: '123'}, times: 1}", passed("tool_called")),
        ("tool_called: {name: cancel_order, times: 0}", passed("tool_called")),
        (
            "tool_called: cancel_order",
            failed(
                "tool_called",
                "expected cancel_order called at least once, matched 0; calls made: "
                'lookup_order({"order_id": "123"}), refund({"order_id": "123", "amount": 42.5}), '
                'lookup_order({"order_id": "124", "options": {"deep": true}})',
            ),
        ),
        (
            "tool_called: {name: lookup_order, times: 1}",
            failed(
                "tool_called",
                "expected lookup_order called 1 time(s), matched 2; calls made: "
                'lookup_order({"order_id": "123"}), refund({"order_id": "123", "amount": 42.5}), '
                'lookup_order({"order_id": "124", "options": {"deep": true}})',
            ),
        ),
        (
            "tool_called: {name: refund, args: {amount: 50}}",
            failed(
                "tool_called",
                'expected refund({"amount": 50}) called at least once, matched 0; calls made: '
                'lookup_order({"order_id": "123"}), refund({"order_id": "123", "amount": 42.5}), '
                'lookup_order({"order_id": "124", "options": {"deep": true}})',
            ),
        ),
        ("tool_not_called: cancel_order", passed("tool_not_called")),
        ("tool_not_called: lookup_order", failed("tool_not_called", "lookup_order was called 2 time(s)")),
        ("tool_sequence: [lookup_order, refund]", passed("tool_sequence")),
        ("tool_sequence: [lookup_order, lookup_order]", passed("tool_sequence")),  # others may interleave
        (
            "tool_sequence: [refund, refund]",
            failed(
                "tool_sequence",
                "expected ['refund', 'refund'] (in_order), calls made: ['lookup_order', 'refund', 'lookup_order']",
            ),
        ),
        (
            "tool_sequence: {tools: [lookup_order, lookup_order, refund], order: in_order}",
            failed(
                "tool_sequence",
                "expected ['lookup_order', 'lookup_order', 'refund'] (in_order), "
                "calls made: ['lookup_order', 'refund', 'lookup_order']",
            ),
        ),
        ("tool_sequence: {tools: [lookup_order, refund, lookup_order], order: exact}", passed("tool_sequence")),
        (
            "tool_sequence: {tools: [lookup_order, refund], order: exact}",
            failed(
                "tool_sequence",
                "expected ['lookup_order', 'refund'] (exact), calls made: ['lookup_order', 'refund', 'lookup_order']",
            ),
        ),
        ("tool_sequence: {tools: [refund, lookup_order], order: any}", passed("tool_sequence")),
        (
            "tool_sequence: {tools: [refund, cancel_order], order: any}",
            failed(
                "tool_sequence",
                "expected ['refund', 'cancel_order'] (any), calls made: ['lookup_order', 'refund', 'lookup_order']",
            ),
        ),
    ],
)
def test_trajectory_checks(expectation: str, result: EvaluationResult) -> None:
    assert evaluate(one(f"- {expectation}"), case(output="done", tool_calls=CALLS)) == result


def test_tool_checks_without_calls() -> None:
    ctx = case(output="done")

    assert [evaluate(evaluator, ctx) for evaluator in build("- tool_called: lookup_order\n- tool_sequence: [a]")] == [
        failed("tool_called", "expected lookup_order called at least once, matched 0; calls made: none"),
        failed("tool_sequence", "expected ['a'] (in_order), calls made: []"),
    ]


# --- limits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "results"),
    [
        (
            {"turns": 3, "latency_ms": 1500.0, "input_tokens": 500, "output_tokens": 300, "cost_usd": 0.01},
            [passed("max_turns"), passed("max_latency_ms"), passed("max_tokens"), passed("max_cost_usd")],
        ),
        (
            {"turns": 4, "latency_ms": 2000.5, "input_tokens": 500, "output_tokens": 301, "cost_usd": 0.0125},
            [
                failed("max_turns", "4 turns, over the limit of 3"),
                failed("max_latency_ms", "2000.5 ms, over the limit of 1500"),
                failed("max_tokens", "801 tokens, over the limit of 800"),
                failed("max_cost_usd", "0.0125 USD, over the limit of 0.01"),
            ],
        ),
        (
            {"turns": 1, "latency_ms": 1.0, "cost_usd": None},
            [
                passed("max_turns"),
                passed("max_latency_ms"),
                passed("max_tokens"),
                failed("max_cost_usd", "USD unknown for this model"),
            ],
        ),
    ],
    ids=["at-the-limits", "over", "unknown-cost"],
)
def test_limits(fields: dict[str, Any], results: list[EvaluationResult]) -> None:
    evaluators = build(
        """\
        - max_turns: 3
        - max_latency_ms: 1500
        - max_tokens: 800
        - max_cost_usd: 0.01
        """
    )

    assert [evaluate(evaluator, case(output="x", **fields)) for evaluator in evaluators] == results


# --- python functions -----------------------------------------------------------------------------------

CHECKS = """\
from promptlane.registry.runs import EvaluationResult

def polite(ctx):
    return "please" in ctx.text

def score(ctx):
    return 0.4 if ctx.variables.get("tier") == "free" else 0.5

def with_reason(ctx):
    return (0.9, "mostly polite")

def bool_with_reason(ctx):
    return False, f"no greeting in {ctx.case}"

async def later(ctx):
    return ctx.turns <= 2

def full(ctx):
    return EvaluationResult(name="custom", passed=False, reason="my own")

def wrong(ctx):
    return "yes"

class Checks:
    @staticmethod
    def nested(ctx):
        return True
"""


def test_python_evaluators(tmp_path: Path, python_module: Callable[[str], str]) -> None:
    module = python_module(CHECKS)
    evaluators = build(
        f"""\
        - python: {module}:polite
        - python: {{function: {module}:score}}
        - python: {module}:with_reason
        - python: {module}:bool_with_reason
        - python: {module}:later
        - python: {module}:full
        - python: {module}:Checks.nested
        """,
        root=tmp_path,
    )
    ctx = case(output="Here you go, please", variables={"tier": "free"}, turns=3)

    assert [evaluate(evaluator, ctx) for evaluator in evaluators] == [
        passed(f"python:{module}:polite"),
        failed(f"python:{module}:score", None, score=0.4),
        passed(f"python:{module}:with_reason", score=0.9, reason="mostly polite"),
        failed(f"python:{module}:bool_with_reason", "no greeting in refund"),
        failed(f"python:{module}:later", None),
        EvaluationResult(name="custom", passed=False, reason="my own"),
        passed(f"python:{module}:Checks.nested"),
    ]
    # A score passes at 0.5.
    assert evaluate(evaluators[1], case(output="x", variables={"tier": "pro"})) == passed(
        f"python:{module}:score", score=0.5
    )


def test_python_evaluator_returning_a_wrong_type(tmp_path: Path, python_module: Callable[[str], str]) -> None:
    module = python_module(CHECKS)
    evaluator = one(f"- python: {module}:wrong", root=tmp_path)

    with pytest.raises(TypeError) as info:
        evaluate(evaluator, case(output="x"))

    assert str(info.value) == f"python:{module}:wrong returned 'yes'; return a bool, a number, or (value, reason)"


def test_python_evaluator_that_does_not_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build("- python: no_such_checks_xyz:polite", root=tmp_path)

    assert str(info.value) == (
        "a python expectation: cannot import 'no_such_checks_xyz': "
        "ModuleNotFoundError: No module named 'no_such_checks_xyz'"
    )


# --- templated values -----------------------------------------------------------------------------------


def test_templated_values_use_the_case() -> None:
    evaluators = build(
        """\
        - equals: "{{ expected }}"
        - contains: "order {{ order_id }} is {{ expected }}"
        - contains: {value: "{{ customer }}", case_sensitive: false}
        - starts_with: "Hi {{customer}}"
        - regex: "^Hi {{ customer }}, order \\\\d+"
        - tool_called: {name: lookup_order, args: {order_id: "{{ order_id }}"}, times: 1}
        """
    )
    ctx = case(
        output="Hi Ana, order 1001 is delivered",
        variables={"customer": "Ana", "order_id": "1001"},
        row={"order_id": "9999", "ticket": "Where is it?"},  # the variables win over the row
        expected="delivered",
        tool_calls=[call("lookup_order", order_id="1001")],
    )

    assert [evaluate(evaluator, ctx) for evaluator in evaluators] == [
        failed("equals", "expected 'delivered', got 'Hi Ana, order 1001 is delivered'"),
        passed("contains"),
        passed("contains"),
        passed("starts_with"),
        passed("regex"),
        passed("tool_called"),
    ]
    assert evaluate(evaluators[0], case(output="delivered", expected="delivered")) == passed("equals")
    assert evaluate(evaluators[0], case(output="shipped", expected="delivered")) == failed(
        "equals", "expected 'delivered', got 'shipped'"
    )


def test_row_columns_are_template_values() -> None:
    evaluator = one("- contains: '{{ status }}'")

    assert evaluate(evaluator, case(output="It is shipped", row={"status": "shipped"})) == passed("contains")
    assert evaluate(evaluator, case(output="It is shipped", row={"status": "lost"})) == failed(
        "contains", "output does not contain 'lost': 'It is shipped'"
    )


def test_undefined_template_names_raise() -> None:
    single, composed = build(
        """\
        - equals: "{{ missing }}"
        - contains: "order {{ order_id }} is {{ missing }}"
        """
    )
    ctx = case(output="x", variables={"order_id": "1"})

    with pytest.raises(KeyError) as single_error:
        evaluate(single, ctx)
    with pytest.raises(TemplateRenderError) as composed_error:
        evaluate(composed, ctx)

    assert single_error.value.args == ("'missing' is undefined: not a variable or dataset column of this case",)
    assert composed_error.value.reason == "'missing' is undefined"


@pytest.mark.parametrize("value", [{"status": "shipped"}, True, ["a"]])
def test_equals_expected_with_structured_output(value: Any) -> None:
    evaluator = one('- equals: "{{ expected }}"')

    assert evaluate(evaluator, case(output=value, expected=value)) == passed("equals")


# --- the judge --------------------------------------------------------------------------------------------

JUDGE_CASE = case(
    output="Refund issued.",
    messages=[{"role": "system", "content": "Be kind"}, {"role": "user", "content": "Refund order 123"}],
    tool_calls=[ToolCallRecord(turn=1, id="c1", name="lookup_order", args={"order_id": "123"}, result={"total": 5})],
)
JUDGE_PROMPT = (
    "RUBRIC:\nPolite, and offers a refund\n\n"
    "CONVERSATION:\n[system] Be kind\n[user] Refund order 123\n"
    '[tool lookup_order({"order_id": "123"})] {"total": 5}\n\n'
    "OUTPUT:\nRefund issued.\n\n"
    "Give your verdict as JSON with `score` and `reason`."
)


class JudgeModel:
    """A FunctionModel answering every request with ``answer``, counting the calls."""

    def __init__(self, answer: str | list[Any] = '{"score": 0.8, "reason": "ok"}') -> None:
        self.answer = answer
        self.requests: list[list[ModelMessage]] = []
        self.infos: list[AgentInfo] = []
        self.model = FunctionModel(self._respond, model_name="judge")

    def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(messages)
        self.infos.append(info)
        parts = [TextPart(self.answer)] if isinstance(self.answer, str) else self.answer
        return ModelResponse(parts=parts)

    def client(self, recordings: Recordings | None = None) -> ModelClient:
        return ModelClient("python:judge", self.model, policy=RequestPolicy(), recordings=recordings)


def judge_evaluator(client: ModelClient, expectation: str = "judge: Polite, and offers a refund") -> Evaluator:
    factory = JudgeFactory(lambda model: client, default_model=None)
    return one(f"- {expectation}", judge=lambda args: factory.build(args, fallback_model="python:judge"))


def test_judge() -> None:
    model = JudgeModel()

    result = evaluate(judge_evaluator(model.client()), JUDGE_CASE)

    assert result == EvaluationResult(name="judge", passed=True, score=0.8, reason="0.80 (pass at 0.5): ok")
    (messages,) = model.requests
    assert len(messages) == 1 and isinstance(messages[0], ModelRequest)
    assert [(part.part_kind, part.content) for part in messages[0].parts] == [
        ("system-prompt", INSTRUCTIONS),
        ("user-prompt", JUDGE_PROMPT),
    ]


@pytest.mark.parametrize(
    ("threshold", "answer", "result"),
    [
        (0.8, '{"score": 0.8, "reason": "ok"}', passed("judge", 0.8, "0.80 (pass at 0.8): ok")),
        (0.9, '{"score": 0.8, "reason": "ok"}', failed("judge", "0.80 (pass at 0.9): ok", 0.8)),
        (0.5, '{"score": 1.7, "reason": "great"}', passed("judge", 1.0, "1.00 (pass at 0.5): great")),
        (0.5, '{"score": -1, "reason": ""}', failed("judge", "0.00 (pass at 0.5): ", 0.0)),
        (0.5, '```json\n{"score": 0.6, "reason": "fine"}\n```', passed("judge", 0.6, "0.60 (pass at 0.5): fine")),
        (0.5, '  {"score": 0, "reason": "rude"}  ', failed("judge", "0.00 (pass at 0.5): rude", 0.0)),
    ],
    ids=["at-threshold", "under-threshold", "clamped-high", "clamped-low", "fenced", "whitespace"],
)
def test_judge_verdicts(threshold: float, answer: str, result: EvaluationResult) -> None:
    model = JudgeModel(answer)
    expectation = f"judge: {{rubric: 'Polite, and offers a refund', threshold: {threshold}}}"

    assert evaluate(judge_evaluator(model.client(), expectation), JUDGE_CASE) == result


def test_judge_answering_with_a_tool_call() -> None:
    model = JudgeModel([ToolCallPart("final_result", {"score": 0.3, "reason": "curt"})])

    result = evaluate(judge_evaluator(model.client()), JUDGE_CASE)

    assert result == failed("judge", "0.30 (pass at 0.5): curt", 0.3)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            "Looks polite to me.",
            "the judge did not answer with JSON holding `score` and `reason`: 'Looks polite to me.'",
        ),
        ('{"reason": "no score"}', """the judge's answer has no numeric `score`: '{"reason": "no score"}'"""),
        (
            '{"score": "high", "reason": "x"}',
            """the judge's answer has no numeric `score`: '{"score": "high", "reason": "x"}'""",
        ),
        ("[0.8]", "the judge's answer has no numeric `score`: '[0.8]'"),
    ],
    ids=["prose", "no-score", "text-score", "list"],
)
def test_judge_answer_that_is_not_a_verdict(answer: str, message: str) -> None:
    evaluator = judge_evaluator(JudgeModel(answer).client())

    with pytest.raises(ValueError) as info:
        evaluate(evaluator, JUDGE_CASE)

    assert str(info.value) == message


def test_judge_model_choice() -> None:
    asked: list[str] = []
    client = JudgeModel().client()

    def client_for(model: str) -> ModelClient:
        asked.append(model)
        return client

    configured = JudgeFactory(client_for, default_model="openai:gpt-4o")
    unconfigured = JudgeFactory(client_for, default_model=None)
    (own, plain) = expectations("- judge: {rubric: x, model: 'anthropic:claude'}\n- judge: x")
    configured.build(own.judge, fallback_model="case-model")
    configured.build(plain.judge, fallback_model="case-model")
    unconfigured.build(plain.judge, fallback_model="case-model")

    assert asked == ["anthropic:claude", "openai:gpt-4o", "case-model"]


def test_judge_is_recorded_then_replayed(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    recording = JudgeModel()

    first = evaluate(judge_evaluator(recording.client(Recordings(folder, "on"))), JUDGE_CASE)
    again = evaluate(judge_evaluator(recording.client(Recordings(folder, "on"))), JUDGE_CASE)

    assert len(recording.requests) == 1  # the second came from the recording
    files = sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    assert len(files) == 1
    (file,) = files
    assert (len(file.parts), file.parts[0], file.suffix) == (2, file.stem[:2], ".json")

    replaying = JudgeModel('{"score": 0.1, "reason": "a different answer"}')
    replayed = evaluate(judge_evaluator(replaying.client(Recordings(folder, "replay"))), JUDGE_CASE)

    assert replaying.requests == []
    assert first == again == replayed == passed("judge", 0.8, "0.80 (pass at 0.5): ok")

    # A different output is a different request: nothing recorded for it.
    other = case(output="Go away.", messages=JUDGE_CASE.messages, tool_calls=JUDGE_CASE.tool_calls)
    with pytest.raises(ReplayMissError) as info:
        evaluate(judge_evaluator(replaying.client(Recordings(folder, "replay"))), other)
    assert str(info.value).startswith("no recorded response for this request (key ")
    assert str(info.value).endswith(f") in {folder}")
    assert replaying.requests == []


def test_judge_asks_for_native_json_output_where_the_model_supports_it() -> None:
    model = JudgeModel()
    assert model.model.profile["supports_json_schema_output"] is True

    evaluate(judge_evaluator(model.client()), JUDGE_CASE)

    (info,) = model.infos
    assert info.model_request_parameters.output_mode == "native"


def test_json_schema_resolves_only_references_inside_the_schema(tmp_path: Path) -> None:
    import http.server
    import threading

    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "integer"}')
    inside = {"$defs": {"status": {"type": "string"}}, "properties": {"status": {"$ref": "#/$defs/status"}}}
    try:
        assert evaluate(one(f"- json_schema: {json.dumps(inside)}"), case(output='{"status": "ok"}')) == passed(
            "json_schema"
        )
        for ref in (f"http://127.0.0.1:{server.server_address[1]}/schema.json", secret.as_uri()):
            schema = {"properties": {"status": {"$ref": ref}}}
            with pytest.raises(
                ValueError, match=r"^json_schema: \$ref .* points outside the schema: only references inside"
            ):
                evaluate(one(f"- json_schema: {json.dumps(schema)}"), case(output='{"status": "ok"}'))
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []  # nothing was fetched on the author's behalf


def test_json_schema_references_by_anchor_and_id_resolve_inside_the_schema() -> None:
    by_anchor = {"$defs": {"s": {"$anchor": "text", "type": "string"}}, "properties": {"a": {"$ref": "#text"}}}
    by_id = {
        "$id": "https://example.com/root",
        "$defs": {"s": {"type": "string"}},
        "properties": {"a": {"$ref": "https://example.com/root#/$defs/s"}},
    }
    for schema in (by_anchor, by_id):
        check = one(f"- json_schema: {json.dumps(schema)}")
        assert evaluate(check, case(output='{"a": "ok"}')) == passed("json_schema")
        assert evaluate(check, case(output='{"a": 1}')) == failed(
            "json_schema", "output does not match the schema at a: expected string, got int 1"
        )


def test_json_schema_pattern_the_engine_cannot_run_is_named() -> None:
    check = one('- json_schema: {properties: {a: {type: string, pattern: "^(?!draft)"}}}')
    with pytest.raises(ValueError, match=r"^json_schema: properties\.a\.pattern: pattern '\^\(\?!draft\)' uses look"):
        evaluate(check, case(output='{"a": "final"}'))


def test_json_schema_output_with_half_a_surrogate_pair() -> None:
    # A truncated emoji in a model's JSON ("\ud83d"): said so, not "nested too deep".
    check = one("- json_schema: {required: [b]}")
    assert evaluate(check, case(output='{"a": "cut \\ud83d"}')) == failed(
        "json_schema",
        "output does not match the schema at a: holds U+D83D, half of a UTF-16 surrogate pair without its other half",
    )
