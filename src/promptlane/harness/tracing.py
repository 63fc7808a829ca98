"""OpenTelemetry for eval runs: one trace per run, following the GenAI semantic conventions.

::

    eval {prompt}            INTERNAL  gen_ai.operation.name=evaluate; openinference CHAIN: input (prompt, version,
                                       label, model), output (status, pass rate, counts); promptlane.run.*
      eval case {scenario}   INTERNAL  gen_ai.operation.name=invoke_agent; openinference AGENT: input (variables),
                                       output (status, final output); promptlane.scenario, promptlane.case.id,
                                       promptlane.case.passed; one gen_ai.evaluation.result event per expectation
        chat {model}         CLIENT    gen_ai.provider.name, gen_ai.request.*, gen_ai.tool.definitions, messages,
                                       gen_ai.response.*, gen_ai.usage.*, error.type (the case's model requests,
                                       then its judges' requests)
        execute_tool {name}  INTERNAL  gen_ai.tool.name, .type, .description, .call.id, .call.arguments, .call.result

Every span carries gen_ai.prompt.name, gen_ai.prompt.version (a string, as the conventions type it),
promptlane.prompt.label (the label the version was resolved through, or ``latest``) and promptlane.run.id.
Prompt and output text (messages, variables, outputs, tool arguments and results, tool schemas, explanations)
go on spans unless ``trace_content`` is off. The OpenInference attributes (``openinference.span.kind``,
``input.value``...) are on run and case spans only: chat and tool spans speak the GenAI conventions, which
backends such as Phoenix translate themselves. The harness never installs a provider: it uses the one it is
given, or the global one.

Where pydantic-ai's ``InstrumentedModel`` writes these attributes differently, the conventions are followed
and the difference is noted where it is made.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..otel import PROMPT_LABEL, PROMPT_NAME, PROMPT_VERSION
from ..registry.runs import EvaluationResult, RunRecord, ToolCallRecord

__all__ = [
    "CASE_ID",
    "CURRENT_CASE",
    "JUDGE",
    "RUN_ID",
    "CaseTrace",
    "ChatRequest",
    "ChatTrace",
    "RunTracer",
    "chat_request",
    "message_fragments",
    "text_message_json",
]

RUN_ID = "promptlane.run.id"
JUDGE = "promptlane.judge"
"""On a judge's model requests: true."""
CASE_ID = "promptlane.case.id"
EVALUATION_EVENT = "gen_ai.evaluation.result"
REQUEST_MODEL = "gen_ai.request.model"
OTHER_ERROR = "_OTHER"
"""The conventions' ``error.type`` when nothing more precise is known."""

CURRENT_CASE: ContextVar[CaseTrace | None] = ContextVar("promptlane_current_case", default=None)
"""The case being run, while it runs: an evaluator that calls a model (the judge) records its request here."""

# pydantic-ai's provider names that the conventions spell differently (pydantic-ai writes its own name into
# gen_ai.provider.name; the conventions' well-known values are what backends group by).
_PROVIDERS = {
    "google": "gcp.gen_ai",  # the Gemini API or Vertex AI, by the client's configuration
    "google-cloud": "gcp.vertex_ai",
    "google-gla": "gcp.gemini",
    "google-vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "azure": "azure.ai.openai",
    "moonshotai": "moonshot_ai",
}
# Model settings with a gen_ai.request.* attribute, and the type the conventions give it. pydantic-ai maps the
# numeric ones only; stop_sequences and top_k have attributes too.
_REQUEST_SETTINGS: dict[str, type] = {
    "max_tokens": int,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "seed": int,
    "presence_penalty": float,
    "frequency_penalty": float,
}

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
_MESSAGE_CACHE: dict[str, str] = {}
_MESSAGE_CACHE_SIZE = 4096


def _json(value: Any) -> str:
    return value if isinstance(value, str) else _ENCODER.encode(value)


def _measured(usage: Any) -> bool:
    """Whether a response's usage counts anything: a provider's response without usage, or a ``python:``
    model's answer that reported none, is marked unmeasured (see :mod:`.models`)."""
    return not usage.unmeasured_requests or usage.has_values()


def text_message_json(role: str, content: str) -> str:
    """One text message in the GenAI conventions' shape, as JSON. A scenario's system prompt is often the same
    string in every case: its JSON is made once (the cache is bounded, and keeps system messages only: user
    messages differ from case to case and would fill it)."""
    if role != "system":
        return _ENCODER.encode({"role": role, "parts": [{"type": "text", "content": content}]})
    encoded = _MESSAGE_CACHE.get(content)
    if encoded is None:
        encoded = _ENCODER.encode({"role": role, "parts": [{"type": "text", "content": content}]})
        if len(_MESSAGE_CACHE) < _MESSAGE_CACHE_SIZE:
            _MESSAGE_CACHE[content] = encoded
    return encoded


def message_fragments(items: Sequence[Any]) -> list[str]:
    """Request parts and responses as input messages of the conventions' JSON schema, one JSON object each.
    Consecutive request parts of one role make one message; tool calls and returns keep their ids."""
    fragments: list[str] = []
    role, parts = "", []
    for item in items:
        kind = getattr(item, "part_kind", None)
        if kind is None:  # a response
            if parts:
                fragments.append(_ENCODER.encode({"role": role, "parts": parts}))
                role, parts = "", []
            fragments.append(assistant_message_json(parts_json(item.parts)))
            continue
        part_role = {"system-prompt": "system", "tool-return": "tool"}.get(kind, "user")
        if part_role != role and parts:
            fragments.append(_ENCODER.encode({"role": role, "parts": parts}))
            parts = []
        role = part_role
        parts.append(_part(item))
    if parts:
        fragments.append(_ENCODER.encode({"role": role, "parts": parts}))
    return fragments


def parts_json(parts: Sequence[Any]) -> str:
    """A response's parts as the conventions' JSON array."""
    if len(parts) == 1 and getattr(parts[0], "part_kind", "") == "text":  # the usual answer: one text part
        return '[{"type":"text","content":' + _ENCODER.encode(parts[0].content) + "}]"
    return _ENCODER.encode([_part(part) for part in parts])


def assistant_message_json(parts: str) -> str:
    """A response as an input message (in a later request's history)."""
    return '{"role":"assistant","parts":' + parts + "}"


def finish_reason(response: Any) -> str:
    """Why the model stopped. A model that does not say (a function model, an old recording) stopped to call
    tools when it asked for some, else because it was done: the conventions require a reason on every output
    message (pydantic-ai leaves it out, and backends that validate the schema then drop the whole output)."""
    reason = getattr(response, "finish_reason", None)
    if reason:
        return reason
    return "tool_call" if any(getattr(p, "part_kind", "") == "tool-call" for p in response.parts) else "stop"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What every request of a scenario shares, made once per scenario (:func:`chat_request`)."""

    name: str
    """The span name: ``chat {gen_ai.request.model}``."""
    attributes: dict[str, Any]
    """Operation, provider, model, request parameters, tools offered."""
    model_names: frozenset[str]
    """What a response may call the model requested (no ``gen_ai.response.model`` then)."""


def chat_request(
    spec: str, model: Any, settings: Mapping[str, Any] | None, parameters: Any, *, content: bool, judge: bool = False
) -> ChatRequest:
    """The attributes every request of a scenario shares: operation, provider, the provider's model name,
    request parameters from the version's model settings, the tools offered. A ``judge``'s requests say so
    (``promptlane.judge``), so a backend can tell them from the prompt's own: they carry the prompt's attributes
    too, as everything of its run does.

    Without ``content``, tool definitions keep their required properties (type and name): descriptions and
    parameter schemas are prompt text, and large.
    """
    prefix, _, rest = spec.partition(":")
    system = getattr(model, "system", None)
    if spec.startswith("python:") or not system or system == "function":
        provider = prefix  # python, test: what the model string says
    else:
        provider = _PROVIDERS.get(system, system)
    # The model the provider is asked for (gpt-4o-mini), never the model string (openai:gpt-4o-mini).
    name = getattr(model, "model_name", None) or spec
    if name == spec and rest:
        name = rest
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        REQUEST_MODEL: name,
    }
    settings = settings or {}
    for key, kind in _REQUEST_SETTINGS.items():
        value = settings.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{key}"] = kind(value)
    stop: Any = settings.get("stop_sequences")
    if isinstance(stop, (list, tuple)) and all(isinstance(item, str) for item in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    tools = [*getattr(parameters, "function_tools", ()), *getattr(parameters, "output_tools", ())]
    if tools:
        attributes["gen_ai.tool.definitions"] = _ENCODER.encode([_tool_definition(tool, content) for tool in tools])
    if getattr(parameters, "output_object", None) is not None or getattr(parameters, "output_tools", None):
        attributes["gen_ai.output.type"] = "json"
    if judge:
        attributes[JUDGE] = True
    return ChatRequest(name=f"chat {name}", attributes=attributes, model_names=frozenset({name, spec}))


def _tool_definition(tool: Any, content: bool) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": "function", "name": tool.name}
    if content:
        if tool.description:
            definition["description"] = tool.description
        definition["parameters"] = tool.parameters_json_schema
    return definition


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
        self.label = label
        # The conventions type gen_ai.prompt.version as a string (any versioning scheme).
        self.common: dict[str, Any] = {PROMPT_NAME: prompt, PROMPT_VERSION: str(version), RUN_ID: run_id}
        if label is not None:
            self.common[PROMPT_LABEL] = label
        # A case runs the prompt as an agent: the model in a loop with (mocked) tools.
        self._case_common = {
            **self.common,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": prompt,
            "openinference.span.kind": "AGENT",
        }

    @contextmanager
    def run(self, prompt: str, *, model: str = "") -> Iterator[Span]:
        """The root span of the run."""
        if not self.enabled:
            yield trace.INVALID_SPAN
            return
        described = {"prompt": prompt, "version": self.common[PROMPT_VERSION], "label": self.label, "model": model}
        attributes = {
            **self.common,
            "gen_ai.operation.name": "evaluate",  # no operation of the conventions is an evaluation run
            "openinference.span.kind": "CHAIN",
            "input.value": _ENCODER.encode(described),
            "input.mime_type": "application/json",
        }
        with self.tracer.start_as_current_span(f"eval {prompt}", attributes=attributes) as span:
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
        outcome = {
            "status": record.status,
            "pass_rate": record.pass_rate,
            "cases": record.cases,
            "passed": record.passed,
            "failed": record.failed,
            "errored": record.errored,
        }
        span.set_attributes(
            {
                "promptlane.run.status": record.status,
                "promptlane.run.pass_rate": record.pass_rate,
                "promptlane.run.cases": record.cases,
                "promptlane.run.passed": record.passed,
                "promptlane.run.failed": record.failed,
                "promptlane.run.errored": record.errored,
                "promptlane.run.cost_usd": record.cost_usd,
                "output.value": _ENCODER.encode(outcome),
                "output.mime_type": "application/json",
            }
        )
        if record.reason:
            span.set_attribute("promptlane.run.reason", record.reason)
        if record.status in ("error", "interrupted"):
            span.set_status(Status(StatusCode.ERROR, record.reason or record.status))

    @staticmethod
    def evaluation_attributes(evaluation: EvaluationResult, *, name: str, explain: bool = True) -> dict[str, Any]:
        """``gen_ai.evaluation.*`` attributes of one result under ``name`` (unique in its case); without
        ``explain``, no explanation (reasons quote outputs and tool arguments, which ``trace_content=False``
        keeps off the telemetry). An evaluator that raised has no score: its label is ``error``, and
        ``error.type`` the exception's type."""
        attributes: dict[str, Any] = {"gen_ai.evaluation.name": name}
        if evaluation.error:
            attributes["gen_ai.evaluation.score.label"] = "error"
            kind = evaluation.error.partition(":")[0]
            attributes["error.type"] = kind if kind.isidentifier() else OTHER_ERROR
        else:
            attributes["gen_ai.evaluation.score.label"] = "pass" if evaluation.passed else "fail"
            attributes["gen_ai.evaluation.score.value"] = (
                evaluation.score if evaluation.score is not None else float(evaluation.passed)
            )
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
        names = _evaluation_names(case.evaluations)
        attributes = {
            **self._case_common,
            "promptlane.scenario": case.scenario,
            CASE_ID: case.case,
            "promptlane.case.passed": status == "passed",
            "output.mime_type": "application/json",
        }
        if status != "passed":  # failed or error; a passing case says it with promptlane.case.passed
            attributes["promptlane.case.status"] = status
            failed = [name for name, e in zip(names, case.evaluations, strict=True) if e.status != "passed"]
            if failed:
                attributes["promptlane.case.failed_evaluations"] = failed
        # An invoke_agent span names its provider and model (the prompt's, not a judge's), and its token totals.
        own = [chat for chat in case.chats if JUDGE not in chat.request.attributes]
        if own:
            request = own[0].request.attributes
            attributes["gen_ai.provider.name"] = request["gen_ai.provider.name"]
            attributes[REQUEST_MODEL] = request[REQUEST_MODEL]
            answered = [chat.response.usage for chat in own if chat.response is not None]
            answered = [usage for usage in answered if _measured(usage)]
            if answered:
                attributes["gen_ai.usage.input_tokens"] = sum(usage.input_tokens for usage in answered)
                attributes["gen_ai.usage.output_tokens"] = sum(usage.output_tokens for usage in answered)
        if self.trace_content:
            attributes["input.value"] = _ENCODER.encode(case.variables)
            attributes["input.mime_type"] = "application/json"
            if case.error is not None:
                attributes["output.value"] = f'{{"status":"{status}","error":{_ENCODER.encode(case.error)}}}'
            else:
                attributes["output.value"] = f'{{"status":"{status}","output":{_ENCODER.encode(case.output)}}}'
        else:
            attributes["output.value"] = f'{{"status":"{status}"}}'
        span = self.tracer.start_span(f"eval case {case.scenario}", attributes=attributes, start_time=case.start_ns)
        parent = trace.set_span_in_context(span)
        for chat in case.chats:
            self._chat(chat, parent)
        for call, at_ns in case.tools:
            self._tool(call, at_ns, parent, case.tool_descriptions)
        # The case is the operation the expectations evaluate (its output, its tool calls, its conversation):
        # its span is their parent, and the log copies carry its context.
        for evaluation, name in zip(case.evaluations, names, strict=True):
            event = self.evaluation_attributes(evaluation, name=name, explain=self.trace_content)
            span.add_event(EVALUATION_EVENT, event, timestamp=case.end_ns)
            if self.logger is not None:
                self.logger.emit(
                    event_name=EVALUATION_EVENT,
                    attributes={**self.common, CASE_ID: case.case, **event},
                    timestamp=case.end_ns,
                    context=parent,
                )
        if case.error:
            span.set_status(Status(StatusCode.ERROR, case.error))
        span.end(end_time=case.end_ns)

    def _chat(self, chat: ChatTrace, parent: Any) -> None:
        attributes: dict[str, Any] = {**self.common, **chat.request.attributes}
        if chat.messages is not None:
            attributes["gen_ai.input.messages"] = chat.messages
        response = chat.response
        if response is not None:
            usage = response.usage
            if _measured(usage):  # a response that reported no usage has no token counts, not zeros
                attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
                attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
            # Only what says something: every attribute costs the SDK, on every request of every case.
            if usage.cache_read_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens:  # pydantic-ai still writes the former name, cache_creation
                attributes["gen_ai.usage.cache_write.input_tokens"] = usage.cache_write_tokens
            reasoning = getattr(usage, "output_reasoning_tokens", 0) or usage.details.get("reasoning_tokens")
            if reasoning:
                attributes["gen_ai.usage.reasoning.output_tokens"] = reasoning
            attributes["gen_ai.response.finish_reasons"] = (finish_reason(response),)
            if response.provider_response_id:
                attributes["gen_ai.response.id"] = response.provider_response_id
            if response.model_name and response.model_name not in chat.request.model_names:
                attributes["gen_ai.response.model"] = response.model_name
            if chat.cached:
                attributes["promptlane.cache.hit"] = True
            if chat.attempts > 1:
                attributes["promptlane.request.attempts"] = chat.attempts
            if chat.output is not None:
                attributes["gen_ai.output.messages"] = chat.output
        else:
            # A generation that failed still has a reason, `error` (pydantic-ai sets none, nor error.type).
            attributes["gen_ai.response.finish_reasons"] = ("error",)
            attributes["error.type"] = chat.error_type or OTHER_ERROR
        # CLIENT, as the conventions recommend for a model that usually runs elsewhere: a `python:` model runs
        # in-process (INTERNAL would be allowed) but stands in for one, and backends file chat spans by kind.
        span = self.tracer.start_span(
            chat.request.name,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=chat.start_ns,
        )
        if chat.error is not None:
            span.set_status(Status(StatusCode.ERROR, chat.error))
        span.end(end_time=chat.end_ns)

    def _tool(self, call: ToolCallRecord, at_ns: int, parent: Any, descriptions: Mapping[str, str]) -> None:
        attributes: dict[str, Any] = {
            **self.common,
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",  # run by the client (here: its mock), not by the provider
            "promptlane.tool.mocked": True,
        }
        description = descriptions.get(call.name)
        if description:
            attributes["gen_ai.tool.description"] = description
        if self.trace_content:
            attributes["gen_ai.tool.call.arguments"] = _json(call.args)
            if call.error is None:  # the result of a call that succeeded; a failure is the span's status
                attributes["gen_ai.tool.call.result"] = _json(call.result)
        if call.error is not None:
            attributes["error.type"] = OTHER_ERROR
        span = self.tracer.start_span(
            f"execute_tool {call.name}", context=parent, attributes=attributes, start_time=at_ns
        )
        if call.error is not None:
            span.set_status(Status(StatusCode.ERROR, call.error))
        span.end(end_time=at_ns)


def _evaluation_names(evaluations: Sequence[EvaluationResult]) -> list[str]:
    """Evaluation names unique in a case: an expectation used more than once is numbered in the order the
    scenario lists it (``contains#1``, ``contains#2``), so each result can be told apart and filtered on."""
    names = [evaluation.name for evaluation in evaluations]
    if len(set(names)) == len(names):
        return names
    counts, seen = Counter(names), Counter[str]()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if counts[name] == 1 else f"{name}#{seen[name]}")
    return unique


@dataclass(slots=True)
class ChatTrace:
    """One model request of a case, as the case recorded it."""

    request: ChatRequest
    """What its scenario's requests share."""
    start_ns: int
    """When it started (``time.time_ns``)."""
    end_ns: int = 0
    """When it ended."""
    messages: str | None = None
    """The input messages as JSON (when content is traced)."""
    response: Any = None
    """The response (None when the request failed)."""
    output: str | None = None
    """The output messages as JSON (when content is traced)."""
    cached: bool = False
    """Replayed from recordings."""
    attempts: int = 1
    """Requests made."""
    error: str | None = None
    """Why it failed."""
    error_type: str | None = None
    """The type of the exception it failed with."""

    def finish(self, answer: Any, *, content: bool) -> str | None:
        """Record the model's answer (a ``models.Response``); with ``content``, its parts as JSON (which the
        next request's history repeats)."""
        self.end_ns = time.time_ns()
        response = self.response = answer.response
        self.cached, self.attempts = answer.cached, answer.attempts
        if not content:
            return None
        parts = parts_json(response.parts)
        reason = _ENCODER.encode(finish_reason(response))
        self.output = '[{"role":"assistant","parts":' + parts + ',"finish_reason":' + reason + "}]"
        return parts

    def fail(self, exc: BaseException) -> None:
        """Record that the request raised ``exc``."""
        self.end_ns = time.time_ns()
        self.error, self.error_type = f"{type(exc).__name__}: {exc}", type(exc).__name__


@dataclass(slots=True)
class CaseTrace:
    """What the spans of one case are made from."""

    scenario: str
    """The scenario."""
    case: str
    """The case id."""
    start_ns: int
    """When it started."""
    content: bool = True
    """Whether prompt and output text go on its spans."""
    tool_descriptions: Mapping[str, str] = field(default_factory=dict[str, str])
    """The offered tools' descriptions, by name."""
    end_ns: int = 0
    """When it ended."""
    status: str = "passed"
    """passed, failed or error."""
    error: str | None = None
    """Why it is an error."""
    variables: Any = None
    """The variables it rendered with."""
    output: Any = None
    """Its final output."""
    chats: list[ChatTrace] = field(default_factory=list[ChatTrace])
    """Its model requests (the judges' included)."""
    tools: list[tuple[ToolCallRecord, int]] = field(default_factory=list[tuple[ToolCallRecord, int]])
    """Its tool calls and when they were answered."""
    evaluations: list[EvaluationResult] = field(default_factory=list[EvaluationResult])
    """Its evaluators' verdicts."""


def _part(part: Any) -> Mapping[str, Any]:
    kind = getattr(part, "part_kind", "")
    if kind == "tool-call":
        return {"type": "tool_call", "id": part.tool_call_id, "name": part.tool_name, "arguments": part.args_as_dict()}
    if kind == "tool-return":
        # The schema's ToolCallResponsePart has `response`; pydantic-ai writes `result`, after the prose example.
        return {"type": "tool_call_response", "id": part.tool_call_id, "response": part.content}
    if kind == "thinking":  # the model's reasoning, not its answer: the schema's ReasoningPart
        return {"type": "reasoning", "content": part.content}
    if kind in ("text", "user-prompt", "system-prompt", "retry-prompt"):
        return {"type": "text", "content": getattr(part, "content", "")}
    return {"type": kind or type(part).__name__}  # the schema's GenericPart: a kind it has no shape for
