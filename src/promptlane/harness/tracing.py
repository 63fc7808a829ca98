"""OpenTelemetry for eval runs: one trace per run, following the GenAI semantic conventions.

::

    eval {prompt}                    promptlane.run.id, promptlane.run.status, pass rate and counts
      eval case {scenario}           promptlane.scenario, promptlane.case, promptlane.case.passed
        chat {model}                 gen_ai.operation.name=chat, gen_ai.request.model, token usage
        execute_tool {name}          gen_ai.tool.name, gen_ai.tool.call.id, promptlane.tool.mocked
        (event) gen_ai.evaluation.result   one per expectation

Every span carries gen_ai.prompt.name, gen_ai.prompt.version, promptlane.prompt.label and promptlane.run.id.
Prompt and output text go on spans unless ``trace_content`` is off. The harness never installs a provider:
it uses the one it is given, or the global one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ..otel import PROMPT_LABEL, PROMPT_NAME, PROMPT_VERSION
from ..registry.runs import EvaluationResult, RunRecord, ToolCallRecord

__all__ = ["RUN_ID", "CaseTrace", "ChatTrace", "RunTracer"]

RUN_ID = "promptlane.run.id"
EVALUATION_EVENT = "gen_ai.evaluation.result"


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
_MESSAGE_CACHE: dict[tuple[str, str], str] = {}
_MESSAGE_CACHE_SIZE = 4096


def _json(value: Any) -> str:
    return value if isinstance(value, str) else _ENCODER.encode(value)


def text_message_json(role: str, content: str) -> str:
    """One text message in the GenAI conventions' shape, as JSON. A scenario's system prompt is the same
    string in every case: its JSON is made once (the cache is bounded; what does not fit is encoded each time)."""
    key = (role, content)
    encoded = _MESSAGE_CACHE.get(key)
    if encoded is None:
        encoded = _ENCODER.encode({"role": role, "parts": [{"type": "text", "content": content}]})
        if len(_MESSAGE_CACHE) < _MESSAGE_CACHE_SIZE:
            _MESSAGE_CACHE[key] = encoded
    return encoded


def _output_json(parts: list[Any]) -> str:
    if len(parts) == 1 and getattr(parts[0], "part_kind", "") == "text":  # the usual answer: one text part
        return '[{"role":"assistant","parts":[{"type":"text","content":' + _ENCODER.encode(parts[0].content) + "}]}]"
    return _ENCODER.encode([{"role": "assistant", "parts": [_part(part) for part in parts]}])


class RunTracer:
    """Spans and events of one run."""

    def __init__(
        self,
        *,
        run_id: str,
        prompt: str,
        version: int,
        label: str | None,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: Any = None,
        trace_content: bool = True,
    ) -> None:
        from .. import __version__

        provider = tracer_provider or trace.get_tracer_provider()
        # Nothing set up to record (no provider given, none installed globally): make no spans at all, which
        # spares every case the span machinery.
        self.enabled = tracer_provider is not None or not isinstance(provider, trace.ProxyTracerProvider)
        self.tracer = provider.get_tracer("promptlane", __version__)
        self.logger = logger_provider.get_logger("promptlane", __version__) if logger_provider is not None else None
        self.trace_content = trace_content
        self.common: dict[str, Any] = {PROMPT_NAME: prompt, PROMPT_VERSION: version, RUN_ID: run_id}
        if label is not None:
            self.common[PROMPT_LABEL] = label

    @contextmanager
    def run(self, prompt: str) -> Iterator[Span]:
        """The root span of the run."""
        if not self.enabled:
            yield trace.INVALID_SPAN
            return
        with self.tracer.start_as_current_span(
            f"eval {prompt}", attributes={**self.common, "gen_ai.operation.name": "evaluate"}
        ) as span:
            yield span

    @staticmethod
    def trace_id(span: Span) -> str | None:
        """The span's trace id as 32 hex digits, or None when nothing records."""
        context = span.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid and span.is_recording() else None

    def finish_run(self, span: Span, record: RunRecord) -> None:
        """The run's outcome on its span."""
        if not span.is_recording():
            return
        span.set_attributes(
            {
                "promptlane.run.status": record.status,
                "promptlane.run.pass_rate": record.pass_rate,
                "promptlane.run.cases": record.cases,
                "promptlane.run.passed": record.passed,
                "promptlane.run.failed": record.failed,
                "promptlane.run.errored": record.errored,
                "promptlane.run.cost_usd": record.cost_usd,
            }
        )
        if record.reason:
            span.set_attribute("promptlane.run.reason", record.reason)
        if record.status in ("error", "interrupted"):
            span.set_status(Status(StatusCode.ERROR, record.reason or record.status))

    @staticmethod
    def evaluation_attributes(evaluation: EvaluationResult, *, explain: bool = True) -> dict[str, Any]:
        """``gen_ai.evaluation.*`` attributes of one result; without ``explain``, no explanation (reasons quote
        outputs and tool arguments, which ``trace_content=False`` keeps off the telemetry)."""
        attributes: dict[str, Any] = {
            "gen_ai.evaluation.name": evaluation.name,
            "gen_ai.evaluation.score.label": "pass" if evaluation.passed and not evaluation.error else "fail",
            "gen_ai.evaluation.score.value": evaluation.score
            if evaluation.score is not None
            else float(evaluation.passed),
        }
        explanation = evaluation.error or evaluation.reason
        if explanation and explain:
            attributes["gen_ai.evaluation.explanation"] = explanation
        return attributes

    def record_case(self, case: CaseTrace) -> None:
        """The spans of a finished case: the case, its model requests and tool calls, and its evaluations.

        Spans are made once the case is over, with the times it recorded: each span is created with all its
        attributes at once, and nothing of the tracing machinery runs inside the model loop.
        """
        if not self.enabled:
            return
        status = case.status
        attributes = {
            **self.common,
            "promptlane.scenario": case.scenario,
            "promptlane.case": case.case,
            "promptlane.case.passed": status == "passed",
        }
        if status != "passed":  # failed or error; a passing case says it with promptlane.case.passed
            attributes["promptlane.case.status"] = status
        span = self.tracer.start_span(f"eval case {case.scenario}", attributes=attributes, start_time=case.start_ns)
        parent = trace.set_span_in_context(span)
        for chat in case.chats:
            self._chat(chat, parent)
        for call, at_ns in case.tools:
            self._tool(call, at_ns, parent)
        for evaluation in case.evaluations:
            event = self.evaluation_attributes(evaluation, explain=self.trace_content)
            span.add_event(EVALUATION_EVENT, event, timestamp=case.end_ns)
            if self.logger is not None:
                self.logger.emit(
                    event_name=EVALUATION_EVENT, attributes={**self.common, **event}, timestamp=case.end_ns
                )
        if case.error:
            span.set_status(Status(StatusCode.ERROR, case.error))
        span.end(end_time=case.end_ns)

    def _chat(self, chat: ChatTrace, parent: Any) -> None:
        attributes: dict[str, Any] = {
            **self.common,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": chat.model,
            "gen_ai.provider.name": chat.provider or chat.model.partition(":")[0],
        }
        if self.trace_content and chat.messages is not None:
            attributes["gen_ai.input.messages"] = _json(chat.messages)
        response = chat.response
        if response is not None:
            attributes["gen_ai.usage.input_tokens"] = response.usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = response.usage.output_tokens
            # Only what says something: every attribute costs the SDK, on every request of every case.
            if chat.cached:
                attributes["promptlane.cache.hit"] = True
            if chat.attempts > 1:
                attributes["promptlane.request.attempts"] = chat.attempts
            if response.model_name and response.model_name != chat.model:
                attributes["gen_ai.response.model"] = response.model_name
            if response.finish_reason and response.finish_reason != "stop":
                attributes["gen_ai.response.finish_reasons"] = (response.finish_reason,)
            if self.trace_content:
                attributes["gen_ai.output.messages"] = _output_json(response.parts)
        span = self.tracer.start_span(
            f"chat {chat.model}", context=parent, attributes=attributes, start_time=chat.start_ns
        )
        if chat.error is not None:
            span.set_status(Status(StatusCode.ERROR, chat.error))
        span.end(end_time=chat.end_ns)

    def _tool(self, call: ToolCallRecord, at_ns: int, parent: Any) -> None:
        attributes: dict[str, Any] = {
            **self.common,
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "promptlane.tool.mocked": True,
        }
        if self.trace_content:
            attributes["gen_ai.tool.call.arguments"] = _json(call.args)
            attributes["gen_ai.tool.call.result"] = _json(call.error if call.error is not None else call.result)
        span = self.tracer.start_span(
            f"execute_tool {call.name}", context=parent, attributes=attributes, start_time=at_ns
        )
        if call.error is not None:
            span.set_status(Status(StatusCode.ERROR, call.error))
        span.end(end_time=at_ns)


@dataclass(slots=True)
class ChatTrace:
    """One model request of a case, as the case recorded it."""

    model: str
    """The model string."""
    provider: str | None
    """The provider's name, when the model knows it."""
    start_ns: int
    """When it started (``time.time_ns``)."""
    end_ns: int = 0
    """When it ended."""
    messages: Any = None
    """The input messages (when content is traced)."""
    response: Any = None
    """The response (None when the request failed)."""
    cached: bool = False
    """Replayed from recordings."""
    attempts: int = 1
    """Requests made."""
    error: str | None = None
    """Why it failed."""


@dataclass(slots=True)
class CaseTrace:
    """What the spans of one case are made from."""

    scenario: str
    """The scenario."""
    case: str
    """The case id."""
    start_ns: int
    """When it started."""
    end_ns: int = 0
    """When it ended."""
    status: str = "passed"
    """passed, failed or error."""
    error: str | None = None
    """Why it is an error."""
    chats: list[ChatTrace] = field(default_factory=list)
    """Its model requests."""
    tools: list[tuple[ToolCallRecord, int]] = field(default_factory=list)
    """Its tool calls and when they were answered."""
    evaluations: list[EvaluationResult] = field(default_factory=list)
    """Its evaluators' verdicts."""


def _part(part: Any) -> Mapping[str, Any]:
    kind = getattr(part, "part_kind", "")
    if kind == "tool-call":
        return {"type": "tool_call", "name": part.tool_name, "id": part.tool_call_id, "arguments": part.args}
    return {"type": "text", "content": getattr(part, "content", "")}
