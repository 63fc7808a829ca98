"""Evaluators: each expectation of a scenario, turned into a small object that judges one case.

An evaluator has a ``name`` and ``evaluate(ctx)``, which returns an :class:`EvaluationResult` (or a coroutine of
one, for evaluators that call a model). Expectation values may use the case's variables and dataset row
(``equals: "{{ expected }}"``); they are compiled once per scenario and rendered per case.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._canonical import json_equal
from ..registry.runs import EvaluationResult, ToolCallRecord
from .mocks import matches
from .scenarios import (
    Contains,
    Equals,
    JsonSchema,
    JsonValid,
    Judge,
    MaxCost,
    MaxLatency,
    MaxTokens,
    MaxTurns,
    NotContains,
    PydanticEvals,
    Python,
    Regex,
    StartsWith,
    ToolCalled,
    ToolNotCalled,
    ToolSequence,
)

if TYPE_CHECKING:
    from .._schema import OutputSchema

__all__ = ["CaseContext", "Evaluator", "build_evaluators", "describe"]


@dataclass(kw_only=True)
class CaseContext:
    """What an evaluator sees of a finished case."""

    scenario: str
    """The scenario's name."""
    case: str
    """The case id."""
    variables: dict[str, Any]
    """The variables the prompt rendered with."""
    row: dict[str, Any] = field(default_factory=dict)
    """The dataset row (all its columns), for dataset cases."""
    expected: Any = None
    """The row's ``expected`` column."""
    output: Any = None
    """The final answer: text, or structured output's data."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """The tool-calling trajectory."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The messages sent to the model first."""
    turns: int = 0
    """Model requests made."""
    latency_ms: float = 0.0
    """Wall time of the case."""
    input_tokens: int = 0
    """Input tokens over every request."""
    output_tokens: int = 0
    """Output tokens over every request."""
    cost_usd: float | None = None
    """Cost, when known."""
    output_schema: dict[str, Any] | None = None
    """The version's output schema."""

    @property
    def text(self) -> str:
        """The output as text (structured output as JSON)."""
        if isinstance(self.output, str):
            return self.output
        return "" if self.output is None else json.dumps(self.output, ensure_ascii=False, sort_keys=True)

    _values: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def template_values(self) -> dict[str, Any]:
        """What expectation templates see: the row's columns, the variables, and ``expected`` (made once)."""
        if self._values is None:
            self._values = {**self.row, **self.variables, "expected": self.expected}
        return self._values


def describe(value: Any, limit: int = 80) -> str:
    """A short repr for reasons."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Evaluator:
    """Judges one case. Subclasses set ``name`` and implement ``evaluate``."""

    name: str = "evaluator"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult | Awaitable[EvaluationResult]:
        """The verdict on ``ctx`` (may be a coroutine)."""
        raise NotImplementedError

    def verdict(self, passed: bool, reason: str | None = None, score: float | None = None) -> EvaluationResult:
        """A result named after this evaluator."""
        return EvaluationResult(name=self.name, passed=passed, score=score, reason=reason)


# --- values that may use the case: compiled once, rendered per case --------------------------------------

Resolver = Callable[[CaseContext], Any]


_SINGLE_NAME = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def _lookup(name: str) -> Resolver:
    def resolve(ctx: CaseContext) -> Any:
        values = ctx.template_values
        if name not in values:
            raise KeyError(f"{name!r} is undefined: not a variable or dataset column of this case")
        return values[name]  # the value itself: `equals: "{{ expected }}"` may compare data

    return resolve


def _resolver(value: Any, compile_template: Callable[[str], Callable[[Mapping[str, Any]], str]]) -> Resolver:
    """A function giving ``value`` for a case: strings with ``{{`` or ``{%`` are templates over the case."""
    if isinstance(value, str) and (single := _SINGLE_NAME.match(value)):
        return _lookup(single.group(1))  # `{{ expected }}`, the common case: no template engine needed
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        template = compile_template(value)
        return lambda ctx: template(ctx.template_values)
    if isinstance(value, dict):
        parts = {key: _resolver(item, compile_template) for key, item in value.items()}
        return lambda ctx: {key: part(ctx) for key, part in parts.items()}
    if isinstance(value, list):
        items = [_resolver(item, compile_template) for item in value]
        return lambda ctx: [item(ctx) for item in items]
    return lambda ctx: value


# --- output checks --------------------------------------------------------------------------------------


@dataclass
class _Equals(Evaluator):
    value: Resolver
    name: str = "equals"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        expected = self.value(ctx)
        actual = ctx.output
        if isinstance(expected, str) and not isinstance(actual, str):
            actual = ctx.text
        elif isinstance(actual, str) and not isinstance(expected, str):
            # Text output against data (a dataset's `expected: {...}`): compare the output read as JSON.
            parsed, problem = _parsed(ctx)
            actual = actual if problem else parsed
        if json_equal(actual, expected):
            return self.verdict(True)
        return self.verdict(False, f"expected {describe(expected)}, got {describe(actual)}")


@dataclass
class _Contains(Evaluator):
    value: Resolver
    case_sensitive: bool
    negate: bool
    name: str = "contains"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        needle, text = str(self.value(ctx)), ctx.text
        if not self.case_sensitive:
            needle, text = needle.casefold(), text.casefold()
        found = needle in text
        if found != self.negate:
            return self.verdict(True)
        what = "contains" if self.negate else "does not contain"
        return self.verdict(False, f"output {what} {describe(needle)}: {describe(ctx.text, 160)}")


@dataclass
class _Regex(Evaluator):
    pattern: Resolver
    name: str = "regex"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        pattern = str(self.pattern(ctx))
        if re.search(pattern, ctx.text):
            return self.verdict(True)
        return self.verdict(False, f"output does not match /{pattern}/: {describe(ctx.text, 160)}")


@dataclass
class _StartsWith(Evaluator):
    prefix: Resolver
    name: str = "starts_with"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        prefix = str(self.prefix(ctx))
        if ctx.text.startswith(prefix):
            return self.verdict(True)
        return self.verdict(False, f"output does not start with {describe(prefix)}: {describe(ctx.text, 160)}")


def _parsed(ctx: CaseContext) -> tuple[Any, str | None]:
    """The output as JSON data, or why it is not JSON."""
    if not isinstance(ctx.output, str):
        return ctx.output, None
    try:
        return json.loads(ctx.output), None
    except ValueError as exc:
        return None, f"output is not valid JSON ({exc}): {describe(ctx.output, 120)}"


@dataclass
class _JsonValid(Evaluator):
    name: str = "json_valid"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        _, problem = _parsed(ctx)
        return self.verdict(problem is None, problem)


@dataclass
class _JsonSchema(Evaluator):
    schema: dict[str, Any] | None
    name: str = "json_schema"
    _compiled: tuple[Mapping[str, Any], OutputSchema] | None = field(default=None, repr=False, compare=False)
    """The schema of the last case and its validator: one schema a run, compiled once, not once a case."""

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        schema = self.schema if self.schema is not None else ctx.output_schema
        if schema is None:
            raise ValueError("json_schema: true needs the version to declare an output_schema")
        data, problem = _parsed(ctx)
        if problem is not None:
            return self.verdict(False, problem)
        failure = self._validator(schema).failure(data)
        if failure is None:
            return self.verdict(True)
        where, reason = failure
        return self.verdict(False, f"output does not match the schema at {where or '(root)'}: {reason}")

    def _validator(self, schema: Mapping[str, Any]) -> OutputSchema:
        from .._schema import SchemaProblem, compile_output_schema

        compiled = self._compiled
        if compiled is None or compiled[0] is not schema:
            try:
                compiled = self._compiled = (schema, compile_output_schema(schema))
            except SchemaProblem as exc:
                where = ".".join(map(str, exc.path))
                raise ValueError(f"json_schema: {where + ': ' if where else ''}{exc.message}") from None
        return compiled[1]


# --- trajectory and cost checks -------------------------------------------------------------------------


@dataclass
class _ToolCalled(Evaluator):
    tool: str
    args: Resolver | None
    times: int | None
    name: str = "tool_called"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        args = self.args(ctx) if self.args else None
        calls = [call for call in ctx.tool_calls if call.name == self.tool]
        matching = [call for call in calls if args is None or matches(args, call.args)]
        count = len(matching)
        ok = count == self.times if self.times is not None else count > 0
        if ok:
            return self.verdict(True)
        wanted = f"{self.tool}({json.dumps(args)})" if args is not None else self.tool
        times = f"{self.times} time(s)" if self.times is not None else "at least once"
        made = ", ".join(f"{c.name}({json.dumps(c.args, default=str)})" for c in ctx.tool_calls) or "none"
        return self.verdict(False, f"expected {wanted} called {times}, matched {count}; calls made: {made}")


@dataclass
class _ToolNotCalled(Evaluator):
    tool: str
    name: str = "tool_not_called"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        count = sum(call.name == self.tool for call in ctx.tool_calls)
        return self.verdict(count == 0, None if count == 0 else f"{self.tool} was called {count} time(s)")


def _in_order(wanted: Sequence[str], made: Sequence[str]) -> bool:
    remaining = iter(made)
    return all(any(name == step for name in remaining) for step in wanted)


@dataclass
class _ToolSequence(Evaluator):
    tools: list[str]
    order: str
    name: str = "tool_sequence"

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        made = [call.name for call in ctx.tool_calls]
        if self.order == "exact":
            ok = made == self.tools
        elif self.order == "in_order":
            ok = _in_order(self.tools, made)
        else:
            ok = set(self.tools) <= set(made)
        if ok:
            return self.verdict(True)
        return self.verdict(False, f"expected {self.tools} ({self.order}), calls made: {made}")


@dataclass
class _AtMost(Evaluator):
    limit: float
    measure: Callable[[CaseContext], float | None]
    unit: str
    name: str

    def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        value = self.measure(ctx)
        if value is None:
            return self.verdict(False, f"{self.unit} unknown for this model")
        if value <= self.limit:
            return self.verdict(True)
        return self.verdict(False, f"{value:g} {self.unit}, over the limit of {self.limit:g}")


# --- functions ----------------------------------------------------------------------------------------


def result_from_value(name: str, value: Any) -> EvaluationResult:
    """A Python evaluator's return value as a result: a bool (pass or fail), a number (a score in [0, 1] that
    passes at 0.5 or more), either of them paired with a reason ``(value, reason)``, or an EvaluationResult."""
    if isinstance(value, EvaluationResult):
        return value
    reason = None
    if isinstance(value, tuple) and len(value) == 2:
        value, reason = value
        reason = None if reason is None else str(reason)
    if isinstance(value, bool):
        return EvaluationResult(name=name, passed=value, reason=reason)
    if isinstance(value, (int, float)):
        score = float(value)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"{name} returned the score {score:g}; scores are between 0 and 1")
        return EvaluationResult(name=name, passed=score >= 0.5, score=score, reason=reason)
    raise TypeError(f"{name} returned {describe(value)}; return a bool, a number, or (value, reason)")


@dataclass
class _PythonFunction(Evaluator):
    function: Callable[[CaseContext], Any]
    name: str

    async def evaluate(self, ctx: CaseContext) -> EvaluationResult:
        value = self.function(ctx)
        if inspect.isawaitable(value):
            value = await value
        return result_from_value(self.name, value)


# --- building ---------------------------------------------------------------------------------------------

ModelEvaluatorFactory = Callable[[Any], Evaluator]


def build_evaluators(
    expectations: Sequence[Any],
    *,
    compile_template: Callable[[str], Callable[[Mapping[str, Any]], str]],
    load_function: Callable[[str, str], Callable[..., Any]],
    judge: ModelEvaluatorFactory,
    pydantic_evals: ModelEvaluatorFactory,
) -> list[Evaluator]:
    """One evaluator per expectation of a scenario.

    Args:
        expectations: The scenario's parsed ``expect`` list.
        compile_template: Compiles an expectation string into ``render(values) -> str``.
        load_function: Loads ``module:function`` for a ``python`` expectation (reference, what it is for).
        judge: Builds the evaluator of a ``judge`` expectation.
        pydantic_evals: Builds the evaluator of a ``pydantic_evals`` expectation.
    """

    def value(item: Any) -> Resolver:
        return _resolver(item, compile_template)

    evaluators: list[Evaluator] = []
    for spec in expectations:
        if isinstance(spec, Equals):
            evaluators.append(_Equals(value(spec.equals)))
        elif isinstance(spec, (Contains, NotContains)):
            args = spec.contains if isinstance(spec, Contains) else spec.not_contains
            text, sensitive = (args, True) if isinstance(args, str) else (args.value, args.case_sensitive)
            negate = isinstance(spec, NotContains)
            evaluators.append(_Contains(value(text), sensitive, negate, "not_contains" if negate else "contains"))
        elif isinstance(spec, Regex):
            evaluators.append(_Regex(value(spec.regex)))
        elif isinstance(spec, StartsWith):
            evaluators.append(_StartsWith(value(spec.starts_with)))
        elif isinstance(spec, JsonValid):
            evaluators.append(_JsonValid())
        elif isinstance(spec, JsonSchema):
            evaluators.append(_JsonSchema(None if spec.json_schema is True else spec.json_schema))
        elif isinstance(spec, ToolCalled):
            args = spec.tool_called
            if isinstance(args, str):
                evaluators.append(_ToolCalled(args, None, None))
            else:
                evaluators.append(
                    _ToolCalled(args.name, value(args.args) if args.args is not None else None, args.times)
                )
        elif isinstance(spec, ToolNotCalled):
            evaluators.append(_ToolNotCalled(spec.tool_not_called))
        elif isinstance(spec, ToolSequence):
            args = spec.tool_sequence
            tools, order = (args, "in_order") if isinstance(args, list) else (args.tools, args.order)
            evaluators.append(_ToolSequence(list(tools), order))
        elif isinstance(spec, MaxTurns):
            evaluators.append(_AtMost(spec.max_turns, lambda c: c.turns, "turns", "max_turns"))
        elif isinstance(spec, MaxLatency):
            evaluators.append(_AtMost(spec.max_latency_ms, lambda c: c.latency_ms, "ms", "max_latency_ms"))
        elif isinstance(spec, MaxTokens):
            tokens = _AtMost(spec.max_tokens, lambda c: c.input_tokens + c.output_tokens, "tokens", "max_tokens")
            evaluators.append(tokens)
        elif isinstance(spec, MaxCost):
            evaluators.append(_AtMost(spec.max_cost_usd, lambda c: c.cost_usd, "USD", "max_cost_usd"))
        elif isinstance(spec, Judge):
            evaluators.append(judge(spec.judge))
        elif isinstance(spec, Python):
            reference = spec.python if isinstance(spec.python, str) else spec.python.function
            function = load_function(reference, "a python expectation")
            evaluators.append(_PythonFunction(function, f"python:{reference}"))
        elif isinstance(spec, PydanticEvals):
            evaluators.extend(pydantic_evals({name: args}) for name, args in spec.pydantic_evals.items())
        else:  # pragma: no cover - the scenario model admits nothing else
            raise TypeError(f"unknown expectation {spec!r}")
    return evaluators
