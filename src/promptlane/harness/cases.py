"""Running one case: render, converse with the model through mocked tools, evaluate.

The conversation is the prompt's leading system messages, then the scenario's history, then the prompt's
other messages. The harness drives the tool-calling loop itself, one request at a time: the model answers,
each tool call goes to its mock, the results go back, until the model gives a final answer or ``max_turns``
requests were made. Whatever goes wrong in a case is recorded on the case; it never stops the run.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from ..errors import SpecError
from ..registry.prompt import Prompt
from ..registry.runs import CaseError, CaseResult, EvaluationResult, ToolCallRecord
from ._shared import SharedMessages
from .datasets import Row
from .evaluators import CaseContext, Evaluator
from .mocks import MockedTool, NoMockError
from .models import ModelClient
from .recordings import RecordingKey
from .scenarios import HistoryMessage, ScenariosDocument, ScenarioSpec
from .tracing import (
    CURRENT_CASE,
    CaseTrace,
    ChatRequest,
    ChatTrace,
    RunTracer,
    assistant_message_json,
    message_fragments,
    text_message_json,
)

__all__ = ["CasePlan", "ScenarioPlan", "history_items", "run_case"]


@dataclass(kw_only=True)
class ScenarioPlan:
    """Everything a scenario's cases share, prepared once."""

    document: ScenariosDocument
    """The scenario file."""
    spec: ScenarioSpec
    """The scenario."""
    index: int
    """Its position in the file."""
    file: str
    """The file's path as recorded."""
    client: ModelClient
    """The model client."""
    settings: ModelSettings | None
    """Model settings for every request."""
    parameters: ModelRequestParameters
    """Tools and output mode for every request."""
    output_tool: str | None
    """The output tool's name, when structured output comes as a tool call."""
    output_schema: dict[str, Any] | None
    """The version's output schema."""
    mocks: dict[str, MockedTool]
    """Mocks by tool name."""
    evaluators: list[Evaluator]
    """The scenario's expectations."""
    history: list[Any]
    """The history as request parts and responses (see :func:`history_items`)."""
    history_dicts: list[dict[str, Any]]
    """The history as recorded on cases."""
    history_json: list[str]
    """The history as input messages of the GenAI conventions, for span content (made once)."""
    chat: ChatRequest
    """What the spans of every model request share (made once)."""
    tool_descriptions: dict[str, str]
    """The offered tools' descriptions, by name, for tool spans."""
    key_base: dict[str, Any]
    """The fixed inputs of recording keys (model, settings, tools, output schema)."""
    repeat: int
    """How many times each case runs."""
    dataset_file: str | None = None
    """The dataset's path as recorded: a dataset case is located at its row (``evals/tickets.jsonl:7``)."""
    needs: dict[str, str] = field(default_factory=dict)
    """Columns every row must have (the scenario does not set them), each with why: the prompt requires the
    variable, or the expectations use it."""
    text_names: frozenset[str] = frozenset()
    """Names the expectations render as text: a null there is an error of the case, never the text "None"."""
    shared: SharedMessages | None = None
    """Renders the cases' prompt with the messages they all render alike rendered once (scenarios with many
    cases); None: each case renders the prompt."""

    @property
    def line(self) -> int | None:
        """The scenario's line in its file."""
        return self.document.line_of(self.index)


@dataclass(slots=True)
class CasePlan:
    """One case to run."""

    scenario: ScenarioPlan
    """Its scenario."""
    case: str
    """The case id."""
    variables: dict[str, Any]
    """Variables to render with."""
    row: Row | None = None
    """The dataset row, for dataset cases."""
    repeat: int = 1
    """Which repeat."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Row columns that are not variables (``expected`` among them)."""


def history_items(history: Sequence[HistoryMessage]) -> tuple[list[Any], list[dict[str, Any]]]:
    """A scenario's history as message parts and responses, and as plain dicts for the record."""
    items: list[Any] = []
    dicts: list[dict[str, Any]] = []
    for index, message in enumerate(history):
        if message.role == "assistant" and message.tool_calls:
            calls = [
                ToolCallPart(call.name, dict(call.args), tool_call_id=call.id or f"history-{index}-{n}")
                for n, call in enumerate(message.tool_calls)
            ]
            text = [TextPart(message.content)] if isinstance(message.content, str) and message.content else []
            items.append(ModelResponse(parts=[*text, *calls]))
        elif message.role == "assistant":
            items.append(ModelResponse(parts=[TextPart(message.content)]))
        elif message.role == "tool":
            items.append(
                ToolReturnPart(message.name or "", message.content, tool_call_id=message.id or f"history-{index}")
            )
        elif message.role == "system":
            items.append(SystemPromptPart(message.content))
        else:
            items.append(UserPromptPart(message.content))
        dicts.append(message.model_dump(exclude_defaults=True))
    return items, dicts


def _conversation(items: Sequence[Any]) -> list[ModelMessage]:
    """Request parts in a row become one request; responses stand alone."""
    messages: list[ModelMessage] = []
    parts: list[Any] = []
    for item in items:
        if isinstance(item, ModelResponse):
            if parts:
                messages.append(ModelRequest(parts=parts))
                parts = []
            messages.append(item)
        else:
            parts.append(item)
    if parts:
        messages.append(ModelRequest(parts=parts))
    return messages


def _leading_system(rendered: list[dict[str, str]]) -> int:
    """How many of the rendered messages are the leading system messages (the history goes after them)."""
    split = 0
    while split < len(rendered) and rendered[split]["role"] == "system":
        split += 1
    return split


def _start(rendered: list[dict[str, str]], plan: ScenarioPlan) -> tuple[list[ModelMessage], list[dict[str, Any]]]:
    """The first request of a case, and its record: system messages, history, the rest of the prompt."""
    split = _leading_system(rendered)
    items: list[Any] = [SystemPromptPart(m["content"]) for m in rendered[:split]]
    items += plan.history
    for message in rendered[split:]:
        if message["role"] == "assistant":
            items.append(ModelResponse(parts=[TextPart(message["content"])]))
        elif message["role"] == "system":
            items.append(SystemPromptPart(message["content"]))
        else:
            items.append(UserPromptPart(message["content"]))
    return _conversation(items), [*rendered[:split], *plan.history_dicts, *rendered[split:]]


def _first_fragments(rendered: list[dict[str, str]], plan: ScenarioPlan) -> list[str]:
    """The first request as input messages of the GenAI conventions (JSON objects), in the order of
    :func:`_start`. A system prompt is the same in many cases, and the history in every case of its scenario:
    their JSON is made once."""
    split = _leading_system(rendered)
    fragments = [text_message_json(m["role"], m["content"]) for m in rendered[:split]]
    fragments += plan.history_json
    fragments += (text_message_json(m["role"], m["content"]) for m in rendered[split:])
    return fragments


def _cost(plan: ScenarioPlan, response: ModelResponse, cached: bool) -> float | None:
    """What a response cost this run: nothing when replayed or for local models; None when prices are unknown."""
    if cached or not plan.client.is_remote:
        return 0.0
    try:
        return float(response.cost().total_price)
    except (LookupError, ValueError):
        return None


@dataclass
class _Conversation:
    output: Any = None
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = 0.0
    failure: EvaluationResult | None = None

    def add_cost(self, cost: float | None) -> None:
        self.cost = None if cost is None or self.cost is None else self.cost + cost


def _final_output(plan: ScenarioPlan, response: ModelResponse, calls: list[ToolCallPart]) -> tuple[bool, Any]:
    """(True, output) when ``response`` is the final answer."""
    if plan.output_tool is not None:
        for call in calls:
            if call.tool_name == plan.output_tool:
                return True, call.args_as_dict()
    if calls:
        return False, None
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    if plan.output_schema is not None:
        try:
            return True, json.loads(text)
        except ValueError:
            return True, text  # json_schema reports it
    return True, text


async def _converse(
    plan: ScenarioPlan,
    messages: list[ModelMessage],
    rendered: list[dict[str, str]],
    key: RecordingKey | None,
    trace: CaseTrace | None,
) -> _Conversation:
    result = _Conversation()
    client = plan.client
    # The input messages as JSON objects, when content is traced: each request repeats the ones before it,
    # so every message is encoded once, as it joins the conversation.
    shaped = _first_fragments(rendered, plan) if trace is not None and trace.content else None
    for turn in range(1, plan.spec.max_turns + 1):
        chat = None
        if trace is not None:
            content = "[" + ",".join(shaped) + "]" if shaped is not None else None
            chat = ChatTrace(request=plan.chat, start_ns=time.time_ns(), messages=content)
            trace.chats.append(chat)
        try:
            answer = await client.request(
                messages, plan.settings, plan.parameters, key=key.current() if key is not None else None
            )
        except BaseException as exc:
            if chat is not None:
                chat.fail(exc)
            raise
        response = answer.response
        if chat is not None:
            parts = chat.finish(answer, content=shaped is not None)
            if shaped is not None and parts is not None:
                shaped.append(assistant_message_json(parts))
        result.turns = turn
        result.input_tokens += response.usage.input_tokens
        result.output_tokens += response.usage.output_tokens
        result.add_cost(_cost(plan, response, answer.cached))
        messages.append(response)
        if key is not None:
            key.add(list(response.parts))
        calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
        done, output = _final_output(plan, response, calls)
        if done:
            result.output = output
            return result
        returns: list[ToolReturnPart] = []
        for call in calls:
            args = call.args_as_dict()
            record = ToolCallRecord(turn=turn, id=call.tool_call_id, name=call.tool_name, args=args)
            result.tool_calls.append(record)
            if trace is not None:
                trace.tools.append((record, time.time_ns()))
            mock = plan.mocks.get(call.tool_name)
            try:
                if mock is None:
                    mocked = ", ".join(plan.mocks) or "none"
                    raise NoMockError(f"no mock for tool {call.tool_name!r} (the scenario mocks: {mocked})")
                outcome = mock.call(args)
            except NoMockError as exc:
                record.error = str(exc)
                result.failure = EvaluationResult(name="tools", passed=False, reason=str(exc))
                return result
            record.result, record.error = outcome.result, outcome.error
            failed = outcome.error is not None
            returns.append(
                ToolReturnPart(
                    call.tool_name,
                    outcome.error if failed else outcome.result,
                    tool_call_id=call.tool_call_id,
                    outcome="failed" if failed else "success",
                )
            )
        messages.append(ModelRequest(parts=returns))
        if shaped is not None:
            shaped += message_fragments(returns)
        if key is not None:
            key.add(returns)
    result.failure = EvaluationResult(
        name="max_turns",
        passed=False,
        reason=f"no final answer after {plan.spec.max_turns} model requests (the scenario's max_turns)",
    )
    return result


async def _evaluate(evaluators: Sequence[Evaluator], ctx: CaseContext) -> list[EvaluationResult]:
    results = []
    for evaluator in evaluators:
        try:
            outcome = evaluator.evaluate(ctx)
            if not isinstance(outcome, EvaluationResult):
                outcome = await outcome
        except Exception as exc:  # an evaluator that raises is an error of this case; the run goes on
            outcome = EvaluationResult(name=evaluator.name, passed=False, error=f"{type(exc).__name__}: {exc}")
        results.append(outcome)
    return results


async def run_case(case: CasePlan, prompt: Prompt, tracer: RunTracer) -> CaseResult:
    """Run one case; every failure becomes data on the returned result (and its spans)."""
    plan = case.scenario
    result = CaseResult(
        scenario=plan.spec.name,
        case=case.case,
        # A dataset case is located at its row: the dataset file, and the row's line in it.
        file=plan.dataset_file if case.row is not None and plan.dataset_file is not None else plan.file,
        line=case.row.line if case.row is not None else plan.line,
        row=case.row.index if case.row is not None else None,
        repeat=case.repeat,
        variables=case.variables,
    )
    if not tracer.enabled:
        await _run(case, plan, prompt, result, None)
        return result
    trace = CaseTrace(
        scenario=result.scenario,
        case=result.case,
        start_ns=time.time_ns(),
        content=tracer.trace_content,
        tool_descriptions=plan.tool_descriptions,
        variables=case.variables,
    )
    token = CURRENT_CASE.set(trace)  # a judge's request is traced under its case
    try:
        await _run(case, plan, prompt, result, trace)
    finally:
        CURRENT_CASE.reset(token)
        trace.end_ns, trace.status, trace.evaluations = time.time_ns(), result.status, result.evaluations
        trace.output = result.output
        if result.error is not None:
            trace.error = f"{result.error.type}: {result.error.message}"
        tracer.record_case(trace)
    return result


async def _run(case: CasePlan, plan: ScenarioPlan, prompt: Prompt, result: CaseResult, trace: CaseTrace | None) -> None:
    started = time.perf_counter()
    try:
        _check_values(case, plan)
        shared = plan.shared
        rendered = shared.render(case.variables) if shared is not None else prompt.render_messages(case.variables)
        messages, result.messages = _start(rendered, plan)
        key = None
        if plan.client.recordings is not None:
            key = RecordingKey({**plan.key_base, "repeat": case.repeat})
            for message in messages:
                key.add(list(message.parts))
        talk = await _converse(plan, messages, rendered, key, trace)
    except Exception as exc:  # the model, a replay miss, a variable: this case is an error, the run goes on
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.status = "error"
        result.error = CaseError(type=type(exc).__name__, message=str(exc) or type(exc).__name__)
        return
    result.latency_ms = (time.perf_counter() - started) * 1000
    result.output, result.tool_calls, result.turns = talk.output, talk.tool_calls, talk.turns
    result.input_tokens, result.output_tokens, result.cost_usd = talk.input_tokens, talk.output_tokens, talk.cost
    if talk.failure is not None:
        result.evaluations = [talk.failure]
    else:
        ctx = CaseContext(
            scenario=result.scenario,
            case=result.case,
            variables=case.variables,
            row={**case.extra, **(case.row.values if case.row is not None else {})},
            expected=_expected(case),
            output=result.output,
            tool_calls=result.tool_calls,
            messages=result.messages,
            turns=result.turns,
            latency_ms=result.latency_ms,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            output_schema=plan.output_schema,
        )
        result.evaluations = await _evaluate(plan.evaluators, ctx)
    statuses = {evaluation.status for evaluation in result.evaluations}
    result.status = "error" if "error" in statuses else "failed" if "failed" in statuses else "passed"


def _expected(case: CasePlan) -> Any:
    """The case's ``expected``: the row's column, else a variable of that name (a scenario without a dataset)."""
    return case.extra["expected"] if "expected" in case.extra else case.variables.get("expected")


def _check_values(case: CasePlan, plan: ScenarioPlan) -> None:
    """A row without a column the scenario needs, or a null where an expectation wants text, is an error of
    this case (before any model call), naming the dataset file and the row's line.

    Raises:
        SpecError: naming the column, with the row's file and line (the scenario's, without a dataset).
    """
    row = case.row
    columns = row.values if row is not None else {}
    for name, why in plan.needs.items():
        if name not in columns:
            close = difflib.get_close_matches(name, sorted(columns), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"the row has no column {name!r}{hint}: {why}", **_where(case, plan, from_row=True))
    for name in sorted(plan.text_names):
        value = _expected(case) if name == "expected" else case.variables.get(name, columns.get(name))
        if value is None and (name in columns or name in case.variables):
            what = "column" if name in columns else "variable"
            raise SpecError(
                f"{what} {name!r} is null, and an expectation uses it as text: a null has no text "
                f'(`equals: "{{{{ {name} }}}}"` compares it as data)',
                **_where(case, plan, from_row=name in columns),
            )


def _where(case: CasePlan, plan: ScenarioPlan, *, from_row: bool) -> dict[str, Any]:
    """The row's file and line when the value comes (or should come) from it, else the scenario's."""
    if from_row and case.row is not None and plan.dataset_file is not None:
        return {"path": plan.dataset_file, "line": case.row.line}
    return {"path": plan.file, "line": plan.line}


def case_variables(
    scenario: ScenarioSpec, row: Row | None, declared: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case's variables (the scenario's, then the row's declared columns) and the rest of the row."""
    variables = dict(scenario.variables)
    extra: dict[str, Any] = {}
    if row is not None:
        for column, value in row.values.items():
            if column != "expected" and column in declared:
                variables[column] = value
            else:
                extra[column] = value
    return variables, extra
