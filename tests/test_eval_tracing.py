"""The OpenTelemetry output of eval runs: captured in memory, and received over OTLP/HTTP from the CLI.

What the spans must say is the GenAI semantic conventions (chat, tool and evaluation attributes, the JSON schemas
of messages) and, on run and case spans, the OpenInference attributes a GenAI backend shows (Phoenix).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models import ModelRequestParameters

from promptlane.cli import app
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.harness.models import output_parameters, resolve_model
from promptlane.harness.tracing import CaseTrace, ChatTrace, RunTracer, chat_request
from promptlane.registry import Prompt, Registry
from promptlane.registry.runs import RunRecord

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"
MODEL = "python:examples.support.model:respond"
MODEL_NAME = "examples.support.model:respond"  # gen_ai.request.model: without the provider (python)
BROKEN_MODEL = "python:broken_model:respond"

SCENARIOS = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: refund
    variables: {customer: Ana, ticket: "I want a refund for order 123, it arrived broken."}
    tools:
      lookup_order:
        - match: {order_id: "123"}
          returns: {status: delivered, total: 42.5}
    expect:
      - contains: refund
      - tool_called: lookup_order
      - contains: teleport
  - name: hello
    variables: {customer: Cy, ticket: "Hello, I have a question."}
    expect:
      - starts_with: Hi Cy
  - name: broken
    model: python:broken_model:respond
    variables: {customer: Di, ticket: "Hello?"}
    expect:
      - contains: anything
"""

# Every attribute that carries prompt, output or tool content.
CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}
COMMON = ("gen_ai.prompt.name", "gen_ai.prompt.version", "promptlane.run.id")


@pytest.fixture
def example(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example's prompts, this file's scenarios, and a model function that raises."""
    shutil.rmtree(project / "prompts")
    shutil.copytree(EXAMPLE / "prompts", project / "prompts")
    (project / "evals").mkdir()
    (project / "evals" / "traced.yaml").write_text(SCENARIOS)
    (project / "broken_model.py").write_text(
        "def respond(messages, info):\n    raise ConnectionResetError('the model hung up')\n"
    )
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "broken_model", raising=False)
    for key in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(key, raising=False)
    return project


class Captured:
    """A run's spans and log records, captured in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name.startswith(prefix)]

    def one(self, name: str) -> ReadableSpan:
        (span,) = [span for span in self.spans.get_finished_spans() if span.name == name]
        return span


def traced_run(registry: Registry, prompt: Prompt, project: Path, **options: Any) -> tuple[RunRecord, Captured]:
    captured = Captured()
    run = EvalRun(
        store=registry.store,
        prompt=prompt,
        documents=[load_scenario_file(project / "evals" / "traced.yaml")],
        options=EvalOptions(root=project, concurrency=1, **options),
        tracer_provider=captured.tracer_provider,
        logger_provider=captured.logger_provider,
    )
    record = asyncio.run(run.run())
    return record, captured


def children(captured: Captured, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        span
        for span in captured.spans.get_finished_spans()
        if span.parent is not None and parent.context is not None and span.parent.span_id == parent.context.span_id
    ]


# --- in memory ---------------------------------------------------------------------------------------------------

ROLES = {"system", "user", "assistant", "tool"}
FINISH_REASONS = {"stop", "length", "content_filter", "tool_call", "error"}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def context(span: ReadableSpan) -> SpanContext:
    assert span.context is not None
    return span.context


def messages(span: ReadableSpan, key: str) -> list[dict[str, Any]]:
    """A messages attribute, decoded and checked against the GenAI conventions' JSON schemas (input messages:
    role and parts; output messages: a finish reason too; tool calls and their responses keep their ids)."""
    decoded = json.loads(str(attrs(span)[key]))
    assert isinstance(decoded, list) and decoded, (span.name, key)
    for message in decoded:
        assert message["role"] in ROLES and message["parts"], message
        for part in message["parts"]:
            if part["type"] == "text":
                assert isinstance(part["content"], str), part
            elif part["type"] == "tool_call":
                assert isinstance(part["name"], str) and part["id"], part
            else:
                assert part["type"] == "tool_call_response" and part["id"] and "response" in part, part
        if key == "gen_ai.output.messages":
            assert message["role"] == "assistant" and message["finish_reason"] in FINISH_REASONS, message
    return decoded


def evaluations(span: ReadableSpan) -> list[dict[str, Any]]:
    assert {event.name for event in span.events} <= {"gen_ai.evaluation.result"}
    return [dict(event.attributes or {}) for event in span.events]


@pytest.mark.parametrize("by_label", [False, True], ids=["by-version", "by-label"])
def test_the_span_tree_and_its_attributes(registry: Registry, example: Path, by_label: bool) -> None:
    registry.push()
    if by_label:
        registry.set_label("support/reply", "staging", 1)
        prompt = registry.get("support/reply", label="staging")
    else:
        prompt = registry.get("support/reply", version=1)
    record, captured = traced_run(registry, prompt, example)
    spans = captured.spans.get_finished_spans()

    # The tree: eval {prompt} -> eval case {scenario} -> chat {model} / execute_tool {name}.
    root = captured.one("eval support/reply")
    assert root.parent is None
    cases = {str(attrs(span)["promptlane.scenario"]): span for span in captured.named("eval case ")}
    assert sorted(cases) == ["broken", "hello", "refund"]
    assert {span.name for span in cases.values()} == {"eval case refund", "eval case hello", "eval case broken"}
    assert sorted(span.name for span in children(captured, root)) == sorted(span.name for span in cases.values())
    refund, hello, broken = cases["refund"], cases["hello"], cases["broken"]
    assert [span.name for span in sorted(children(captured, refund), key=lambda s: s.start_time or 0)] == [
        f"chat {MODEL_NAME}",
        "execute_tool lookup_order",
        f"chat {MODEL_NAME}",
    ]
    assert [span.name for span in children(captured, hello)] == [f"chat {MODEL_NAME}"]
    assert [span.name for span in children(captured, broken)] == ["chat broken_model:respond"]
    assert len(spans) == 1 + 3 + 4 + 1

    # One trace per run, the one the run record names; every span says which version, label and run. The
    # version is a string, as the conventions type gen_ai.prompt.version; the label is the one the version was
    # resolved through, or `latest` for the newest version asked for by number.
    assert {format(context(span).trace_id, "032x") for span in spans} == {record.trace_id}
    for span in spans:
        assert {key: attrs(span).get(key) for key in (*COMMON, "promptlane.prompt.label")} == {
            "gen_ai.prompt.name": "support/reply",
            "gen_ai.prompt.version": "1",
            "promptlane.run.id": record.id,
            "promptlane.prompt.label": "staging" if by_label else "latest",
        }, span.name
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time

    # The run span: an evaluation run (no operation of the conventions fits), an OpenInference CHAIN whose input
    # says what was evaluated and whose output says how it went.
    assert (
        attrs(root).items()
        >= {
            "gen_ai.operation.name": "evaluate",
            "openinference.span.kind": "CHAIN",
            "input.mime_type": "application/json",
            "output.mime_type": "application/json",
            "promptlane.run.status": "error",
            "promptlane.run.cases": 3,
            "promptlane.run.passed": 1,
            "promptlane.run.failed": 1,
            "promptlane.run.errored": 1,
        }.items()
    )
    assert json.loads(attrs(root)["input.value"]) == {
        "prompt": "support/reply",
        "version": "1",
        "label": "staging" if by_label else "latest",
        "model": f"{BROKEN_MODEL}, {MODEL}",
    }
    assert json.loads(attrs(root)["output.value"]) == {
        "status": "error",
        "pass_rate": pytest.approx(1 / 3),
        "cases": 3,
        "passed": 1,
        "failed": 1,
        "errored": 1,
    }
    assert root.kind is SpanKind.INTERNAL and root.status.status_code is StatusCode.ERROR

    # Case spans: the prompt run as an agent (an OpenInference AGENT), with its variables in and its outcome
    # out; which case, under a name that is no other attribute's prefix; whether it passed.
    for case in cases.values():
        assert (
            attrs(case).items()
            >= {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support/reply",
                "openinference.span.kind": "AGENT",
                "input.mime_type": "application/json",
                "output.mime_type": "application/json",
            }.items()
        )
        assert "promptlane.case" not in attrs(case)
    assert [attrs(span)["promptlane.case.id"] for span in (refund, hello, broken)] == ["refund", "hello", "broken"]
    assert [attrs(span)["promptlane.case.passed"] for span in (refund, hello, broken)] == [False, True, False]
    assert json.loads(attrs(refund)["input.value"]) == {
        "customer": "Ana",
        "ticket": "I want a refund for order 123, it arrived broken.",
    }
    assert json.loads(attrs(refund)["output.value"]) == {
        "status": "failed",
        "output": "Hi Ana, order 123 is delivered. I can offer you a refund of $42.50.",
    }
    assert json.loads(attrs(hello)["output.value"])["status"] == "passed"
    assert json.loads(attrs(broken)["output.value"]) == {
        "status": "error",
        "error": "ConnectionResetError: the model hung up",
    }
    assert attrs(refund)["promptlane.case.failed_evaluations"] == ("contains#2",)

    # One evaluation result per expectation, on the case (the operation they evaluate), each under its own name:
    # the scenario's two `contains` are told apart.
    assert evaluations(refund) == [
        {
            "gen_ai.evaluation.name": "contains#1",
            "gen_ai.evaluation.score.value": 1.0,
            "gen_ai.evaluation.score.label": "pass",
        },
        {
            "gen_ai.evaluation.name": "tool_called",
            "gen_ai.evaluation.score.value": 1.0,
            "gen_ai.evaluation.score.label": "pass",
        },
        {
            "gen_ai.evaluation.name": "contains#2",
            "gen_ai.evaluation.score.value": 0.0,
            "gen_ai.evaluation.score.label": "fail",
            "gen_ai.evaluation.explanation": "output does not contain 'teleport': "
            "'Hi Ana, order 123 is delivered. I can offer you a refund of $42.50.'",
        },
    ]
    assert [event["gen_ai.evaluation.name"] for event in evaluations(hello)] == ["starts_with"]
    assert broken.events == ()  # an error case has no verdicts
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.status.description == "ConnectionResetError: the model hung up"

    # Chat spans: a client call to the provider's model, with the version's settings and tools.
    first, second = (span for span in children(captured, refund) if span.name.startswith("chat "))
    request = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "python",
        "gen_ai.request.model": MODEL_NAME,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 400,
    }
    for chat in (first, second):
        assert chat.kind is SpanKind.CLIENT
        assert attrs(chat).items() >= request.items()
        assert int(attrs(chat)["gen_ai.usage.input_tokens"]) > 0
        assert int(attrs(chat)["gen_ai.usage.output_tokens"]) > 0
        assert json.loads(attrs(chat)["gen_ai.tool.definitions"]) == [
            {
                "type": "function",
                "name": "lookup_order",
                "description": "Look up an order by id",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            }
        ]
        assert not {"gen_ai.response.model", "gen_ai.response.id", "error.type"} & set(attrs(chat))
    sent = messages(first, "gen_ai.input.messages")
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[1]["parts"] == [{"type": "text", "content": "I want a refund for order 123, it arrived broken."}]
    call = {"type": "tool_call", "id": "lookup-123", "name": "lookup_order", "arguments": {"order_id": "123"}}
    # A model that does not say why it stopped stopped to call tools, or because it was done.
    assert messages(first, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [call], "finish_reason": "tool_call"}
    ]
    assert attrs(first)["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert messages(second, "gen_ai.input.messages")[2:] == [
        {"role": "assistant", "parts": [call]},
        {
            "role": "tool",
            "parts": [
                {"type": "tool_call_response", "id": "lookup-123", "response": {"status": "delivered", "total": 42.5}}
            ],
        },
    ]
    (answer,) = messages(second, "gen_ai.output.messages")
    assert answer["finish_reason"] == "stop" and answer["parts"][0]["content"].startswith("Hi Ana, order 123")
    assert attrs(second)["gen_ai.response.finish_reasons"] == ("stop",)
    (failed_chat,) = children(captured, broken)
    assert failed_chat.kind is SpanKind.CLIENT and failed_chat.status.status_code is StatusCode.ERROR
    assert (
        attrs(failed_chat).items()
        >= {
            "gen_ai.request.model": "broken_model:respond",
            "gen_ai.response.finish_reasons": ("error",),
            "error.type": "ConnectionResetError",
        }.items()
    )
    assert "gen_ai.output.messages" not in attrs(failed_chat)

    # The tool span: which call of which tool, mocked, and what it said.
    tool = captured.one("execute_tool lookup_order")
    assert (
        attrs(tool).items()
        >= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.id": "lookup-123",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": "Look up an order by id",
            "promptlane.tool.mocked": True,
        }.items()
    )
    assert tool.kind is SpanKind.INTERNAL
    assert json.loads(attrs(tool)["gen_ai.tool.call.arguments"]) == {"order_id": "123"}
    assert json.loads(attrs(tool)["gen_ai.tool.call.result"]) == {"status": "delivered", "total": 42.5}

    # The evaluations as log records too, one per expectation, each in its case's span context.
    logs = [data.log_record for data in captured.logs.get_finished_logs()]
    assert [log.event_name for log in logs] == ["gen_ai.evaluation.result"] * 4
    by_case = {attrs(span)["promptlane.case.id"]: context(span) for span in cases.values()}
    assert sorted(
        (str((log.attributes or {})["promptlane.case.id"]), str((log.attributes or {})["gen_ai.evaluation.name"]))
        for log in logs
    ) == [("hello", "starts_with"), ("refund", "contains#1"), ("refund", "contains#2"), ("refund", "tool_called")]
    for log in logs:
        case_context = by_case[str((log.attributes or {})["promptlane.case.id"])]
        assert (log.trace_id, log.span_id) == (case_context.trace_id, case_context.span_id)
        assert (log.attributes or {})["promptlane.run.id"] == record.id
        assert (log.attributes or {})["promptlane.prompt.label"] == ("staging" if by_label else "latest")


def test_an_older_version_run_by_number_has_no_label(registry: Registry, example: Path) -> None:
    registry.push()
    reply = example / "prompts" / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("before answering", "first"))
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example)
    labels = {attrs(span).get("promptlane.prompt.label") for span in captured.spans.get_finished_spans()}
    assert labels == {None}  # v2 is `latest`: saying v1 is would be false

    _record, captured = traced_run(registry, registry.get("support/reply", version=2), example)
    assert {attrs(span).get("promptlane.prompt.label") for span in captured.spans.get_finished_spans()} == {"latest"}


def _keys(captured: Captured) -> set[str]:
    keys: set[str] = set()
    for span in captured.spans.get_finished_spans():
        keys |= set(attrs(span))
        for event in span.events:
            keys |= set(event.attributes or {})
    for data in captured.logs.get_finished_logs():
        keys |= set(data.log_record.attributes or {})
    return keys


def test_no_attribute_is_both_a_value_and_a_prefix(registry: Registry, example: Path) -> None:
    # Backends that nest attributes by their dots (Phoenix) cannot hold `a.b` = value and `a.b.c` at once:
    # one of the two is lost, and filters on it fail.
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example)
    keys = _keys(captured)
    assert {"promptlane.case.id", "promptlane.case.passed", "gen_ai.evaluation.score.value"} <= keys
    assert sorted((key, other) for key in keys for other in keys if other.startswith(key + ".")) == []


HISTORY_SCENARIO = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: follow-up
    variables: {customer: Bo, ticket: "Thanks, and what about order 9?"}
    history:
      - {role: user, content: "Where is order 7?"}
      - role: assistant
        tool_calls: [{name: lookup_order, args: {order_id: "7"}, id: call-7}]
      - {role: tool, name: lookup_order, id: call-7, content: {status: shipped}}
      - {role: assistant, content: "Order 7 has shipped."}
    tools:
      lookup_order:
        - returns: {status: delivered, total: 9}
    expect:
      - contains: order 9
"""


def test_history_tool_calls_keep_their_ids(registry: Registry, example: Path) -> None:
    (example / "evals" / "traced.yaml").write_text(HISTORY_SCENARIO)
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example)
    first, second = sorted(captured.named("chat "), key=lambda span: span.start_time or 0)
    history = [
        {"role": "user", "parts": [{"type": "text", "content": "Where is order 7?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call-7", "name": "lookup_order", "arguments": {"order_id": "7"}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call-7", "response": {"status": "shipped"}}],
        },
        {"role": "assistant", "parts": [{"type": "text", "content": "Order 7 has shipped."}]},
    ]
    sent = messages(first, "gen_ai.input.messages")
    assert [m["role"] for m in sent] == ["system", *(m["role"] for m in history), "user"]
    assert sent[1:5] == history
    # The next request repeats all of it, then the model's call and the mock's answer, ids and all.
    followed = messages(second, "gen_ai.input.messages")
    assert followed[: len(sent)] == sent
    assert [part["id"] for m in followed[len(sent) :] for part in m["parts"]] == ["lookup-9", "lookup-9"]


DETAILED_MODEL = """\
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.usage import RequestUsage


def respond(messages, info):
    return ModelResponse(
        parts=[TextPart("Hi Ed, done.")],
        usage=RequestUsage(
            input_tokens=120, output_tokens=30, cache_read_tokens=80, cache_write_tokens=15, output_reasoning_tokens=12
        ),
        model_name="detailed-2026-01",
        provider_response_id="resp-42",
        finish_reason="length",
    )
"""


def test_what_the_provider_reports_goes_on_the_chat_span(registry: Registry, example: Path) -> None:
    (example / "detailed_model.py").write_text(DETAILED_MODEL)
    (example / "evals" / "traced.yaml").write_text(
        "prompt: support/reply\nmodel: python:detailed_model:respond\nscenarios:\n"
        '  - name: detailed\n    variables: {customer: Ed, ticket: "Hi"}\n    expect: [{contains: done}]\n'
    )
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example)
    (chat,) = captured.named("chat ")
    assert chat.name == "chat detailed_model:respond"
    assert (
        attrs(chat).items()
        >= {
            "gen_ai.request.model": "detailed_model:respond",
            "gen_ai.response.id": "resp-42",
            "gen_ai.response.finish_reasons": ("length",),
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.usage.cache_read.input_tokens": 80,
            "gen_ai.usage.cache_write.input_tokens": 15,
            "gen_ai.usage.reasoning.output_tokens": 12,
        }.items()
    )
    assert messages(chat, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi Ed, done."}], "finish_reason": "length"}
    ]


JUDGED_SCENARIO = """\
prompt: support/reply
model: python:examples.support.model:respond
scenarios:
  - name: judged
    variables: {customer: Flo, ticket: "Hello, I have a question."}
    expect:
      - judge: {rubric: Greets the customer by name, model: "python:judge_model:respond"}
      - python: checks:boom
"""


def test_judges_are_chat_spans_of_their_case_and_a_raising_evaluator_is_an_error_type(
    registry: Registry, example: Path
) -> None:
    (example / "judge_model.py").write_text(
        'def respond(messages, info):\n    return \'{"score": 0.9, "reason": "greets Flo"}\'\n'
    )
    (example / "checks.py").write_text("def boom(ctx):\n    raise ValueError('no verdict')\n")
    (example / "evals" / "traced.yaml").write_text(JUDGED_SCENARIO)
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example)

    case = captured.one("eval case judged")
    chats = sorted(children(captured, case), key=lambda span: span.start_time or 0)
    assert [span.name for span in chats] == [f"chat {MODEL_NAME}", "chat judge_model:respond"]
    judge = chats[1]
    assert judge.kind is SpanKind.CLIENT
    assert (
        attrs(judge).items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "python",
            "gen_ai.request.model": "judge_model:respond",
            "gen_ai.output.type": "json",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.prompt.version": "1",
            "promptlane.prompt.label": "latest",
        }.items()
    )
    asked = messages(judge, "gen_ai.input.messages")
    assert [m["role"] for m in asked] == ["system", "user"]
    assert "Greets the customer by name" in asked[1]["parts"][0]["content"]
    assert messages(judge, "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": '{"score": 0.9, "reason": "greets Flo"}'}
    ]

    judged, raised = evaluations(case)
    assert judged["gen_ai.evaluation.name"] == "judge" and judged["gen_ai.evaluation.score.value"] == 0.9
    # An evaluator that raised has no score: its label says so, and error.type what it raised.
    assert raised == {
        "gen_ai.evaluation.name": "python:checks:boom",
        "gen_ai.evaluation.score.label": "error",
        "error.type": "ValueError",
        "gen_ai.evaluation.explanation": "ValueError: no verdict",
    }


class StandIn:
    """What pydantic-ai's model classes say of themselves (their provider packages are extras)."""

    def __init__(self, system: str, model_name: str) -> None:
        self.system, self.model_name = system, model_name


@pytest.mark.parametrize(
    ("spec", "model", "provider", "name"),
    [
        ("openai:gpt-4o-mini", StandIn("openai", "gpt-4o-mini"), "openai", "gpt-4o-mini"),
        ("google:gemini-2.5-flash", StandIn("google", "gemini-2.5-flash"), "gcp.gen_ai", "gemini-2.5-flash"),
        ("google-cloud:gemini-2.5-pro", StandIn("google-cloud", "gemini-2.5-pro"), "gcp.vertex_ai", "gemini-2.5-pro"),
        ("mistral:mistral-large", StandIn("mistral", "mistral-large"), "mistral_ai", "mistral-large"),
        ("bedrock:claude", StandIn("bedrock", "claude"), "aws.bedrock", "claude"),
        ("xai:grok-4", StandIn("xai", "grok-4"), "x_ai", "grok-4"),
        ("test", None, "test", "test"),
        (MODEL, None, "python", MODEL_NAME),
    ],
)
def test_chat_spans_name_the_provider_and_its_model_as_the_conventions_do(
    spec: str, model: Any, provider: str, name: str
) -> None:
    model = model or resolve_model(spec, root=REPO)
    request = chat_request(spec, model, None, ModelRequestParameters(), content=True)
    assert request.name == f"chat {name}"
    assert request.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": name,
    }


def test_request_parameters_come_from_the_model_settings_in_the_conventions_types() -> None:
    parameters, _ = output_parameters(resolve_model("test"), [], {"type": "object"})
    settings = {"temperature": 0, "top_p": 1, "top_k": 40, "seed": 7, "stop_sequences": ["END"], "max_retries": 0}
    request = chat_request("openai:gpt-4o", StandIn("openai", "gpt-4o"), settings, parameters, content=True)
    assert request.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.tool.definitions": '[{"type": "function", "name": "final_result", "parameters": {"type": "object"}}]',
        "gen_ai.output.type": "json",
    }
    assert isinstance(request.attributes["gen_ai.request.temperature"], float)


def test_a_response_from_another_model_than_asked_says_which() -> None:
    captured = Captured()
    tracer = RunTracer(run_id="r", prompt="p", version=1, label=None, tracer_provider=captured.tracer_provider)
    request = chat_request("openai:gpt-4o", StandIn("openai", "gpt-4o"), None, ModelRequestParameters(), content=True)
    case = CaseTrace(scenario="s", case="s", start_ns=1, end_ns=4, variables={})
    for model_name in ("gpt-4o", "gpt-4o-2024-08-06"):
        response = ModelResponse(parts=[TextPart("hi")], model_name=model_name)
        case.chats.append(ChatTrace(request=request, start_ns=2, end_ns=3, response=response))
    tracer.record_case(case)
    same, other = captured.named("chat ")
    assert "gen_ai.response.model" not in attrs(same)
    assert attrs(other)["gen_ai.response.model"] == "gpt-4o-2024-08-06"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _everything(captured: Captured) -> Iterator[tuple[str, str, str]]:
    """(span, key, text) of every string attribute of every span, event and log record."""
    for span in captured.spans.get_finished_spans():
        for key, value in (span.attributes or {}).items():
            yield from ((span.name, key, text) for text in _strings(value))
        for event in span.events:
            for key, value in (event.attributes or {}).items():
                yield from ((f"{span.name} / {event.name}", key, text) for text in _strings(value))
        if span.status.description:
            yield span.name, "status", span.status.description
    for data in captured.logs.get_finished_logs():
        for key, value in (data.log_record.attributes or {}).items():
            yield from (("log", key, text) for text in _strings(value))


PRIVATE = ("Ana", "Cy", "refund for order", "I have a question", "order 123", "delivered", "42.5")


def test_without_trace_content_no_content_appears(registry: Registry, example: Path) -> None:
    # Only expectations that pass, and a model that answers: no reason text quoting the output. A judge too.
    (example / "evals" / "traced.yaml").write_text(
        SCENARIOS.replace("      - contains: teleport\n", "")
        .replace("    expect:\n      - contains: anything\n", "")
        .replace(
            "      - starts_with: Hi Cy\n",
            '      - starts_with: Hi Cy\n      - judge: {rubric: Polite, model: "python:judge_model:respond"}\n',
        )
    )
    (example / "broken_model.py").write_text("def respond(messages, info):\n    return 'fine'\n")
    (example / "judge_model.py").write_text(
        'def respond(messages, info):\n    return \'{"score": 1, "reason": "polite"}\'\n'
    )
    registry.push()
    record, captured = traced_run(registry, registry.get("support/reply", version=1), example, trace_content=False)

    assert record.status == "passed"
    spans = captured.spans.get_finished_spans()
    assert len(spans) == 1 + 3 + 5 + 1
    for span in spans:
        assert not CONTENT_KEYS & set(span.attributes or {}), span.name
        assert all(key in (span.attributes or {}) for key in COMMON)
    tool = captured.one("execute_tool lookup_order")
    assert (tool.attributes or {})["gen_ai.tool.call.id"] == "lookup-123"  # the call is there, its content not
    for case in captured.named("eval case "):
        assert "input.value" not in attrs(case)  # the variables
        assert json.loads(attrs(case)["output.value"]) == {"status": "passed"}  # not the output
    for chat in captured.named("chat "):  # the tools offered, by name only: no descriptions, no schemas
        for definition in json.loads(attrs(chat).get("gen_ai.tool.definitions", "[]")):
            assert definition.keys() == {"type", "name"}
    assert [span.name for span in captured.named("chat judge")] == ["chat judge_model:respond"]
    leaks = [(where, key, text) for where, key, text in _everything(captured) if any(p in text for p in PRIVATE)]
    assert leaks == []


def test_without_trace_content_failure_explanations_do_not_quote_the_output(registry: Registry, example: Path) -> None:
    registry.push()
    _record, captured = traced_run(registry, registry.get("support/reply", version=1), example, trace_content=False)

    leaks = [(where, key, text) for where, key, text in _everything(captured) if any(p in text for p in PRIVATE)]
    assert leaks == []


# --- on the wire ------------------------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[_Collector]:
    """An OTLP/HTTP receiver in a thread."""
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def test_the_cli_exports_spans_and_evaluation_logs_over_otlp(
    example: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")  # the evaluation events too, to the same collector
    result = CliRunner().invoke(app, ["eval", "--otlp-endpoint", collector.url])
    assert result.exit_code == 1, (result.stdout, result.stderr)  # refund fails, broken errs
    (trace_id,) = [line.split("trace ")[1] for line in result.stdout.splitlines() if " trace " in line]

    with collector.lock:
        received = list(collector.received)
    assert {path for path, _ in received} == {"/v1/traces", "/v1/logs"}

    spans: dict[bytes, Any] = {}
    resources = []
    for body in (body for path, body in received if path == "/v1/traces"):
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "promptlane"
                for span in scope_spans.spans:
                    spans[span.span_id] = span
    assert all(resource["service.name"] == "promptlane" for resource in resources)
    assert len(spans) == 1 + 3 + 4 + 1
    assert {span.trace_id.hex() for span in spans.values()} == {trace_id}

    (root,) = [span for span in spans.values() if span.name == "eval support/reply"]
    assert root.parent_span_id == b""
    run = _attributes(root.attributes)
    run_id = run["promptlane.run.id"]
    assert (run["promptlane.run.status"], run["openinference.span.kind"]) == ("error", "CHAIN")
    assert json.loads(run["input.value"])["label"] == "latest"
    assert json.loads(run["output.value"])["cases"] == 3
    cases = {span.name: span for span in spans.values() if span.parent_span_id == root.span_id}
    assert sorted(cases) == ["eval case broken", "eval case hello", "eval case refund"]
    under_refund = sorted(
        (span for span in spans.values() if span.parent_span_id == cases["eval case refund"].span_id),
        key=lambda span: span.start_time_unix_nano,
    )
    assert [span.name for span in under_refund] == [
        f"chat {MODEL_NAME}",
        "execute_tool lookup_order",
        f"chat {MODEL_NAME}",
    ]
    for span in spans.values():  # a plain `promptlane eval` runs the files just pushed: the latest version
        attributes = _attributes(span.attributes)
        assert (attributes["gen_ai.prompt.name"], attributes["gen_ai.prompt.version"]) == ("support/reply", "1")
        assert (attributes["promptlane.run.id"], attributes["promptlane.prompt.label"]) == (run_id, "latest")
    refund = _attributes(cases["eval case refund"].attributes)
    assert (
        refund.items()
        >= {
            "promptlane.scenario": "refund",
            "promptlane.case.id": "refund",
            "promptlane.case.passed": False,
            "openinference.span.kind": "AGENT",
            "input.mime_type": "application/json",
            "output.mime_type": "application/json",
        }.items()
    )
    assert json.loads(refund["input.value"])["customer"] == "Ana"
    assert [_attributes(event.attributes)["gen_ai.evaluation.name"] for event in cases["eval case refund"].events] == [
        "contains#1",
        "tool_called",
        "contains#2",
    ]
    chat_span = under_refund[0]
    assert chat_span.kind == chat_span.SPAN_KIND_CLIENT
    chat = _attributes(chat_span.attributes)
    assert (
        chat.items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "python",
            "gen_ai.request.model": MODEL_NAME,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 400,
            "gen_ai.response.finish_reasons": ["tool_call"],
        }.items()
    )
    assert chat["gen_ai.usage.input_tokens"] > 0
    assert json.loads(chat["gen_ai.tool.definitions"])[0]["name"] == "lookup_order"
    (output,) = json.loads(chat["gen_ai.output.messages"])
    assert (output["parts"][0]["name"], output["finish_reason"]) == ("lookup_order", "tool_call")
    tool = _attributes(under_refund[1].attributes)
    assert (
        tool.items()
        >= {
            "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.id": "lookup-123",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": "Look up an order by id",
            "promptlane.tool.mocked": True,
        }.items()
    )
    assert cases["eval case broken"].status.code == cases["eval case broken"].status.STATUS_CODE_ERROR

    records = []
    for body in (body for path, body in received if path == "/v1/logs"):
        request = ExportLogsServiceRequest.FromString(body)
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records.extend(scope_logs.log_records)
    assert [record.event_name for record in records] == ["gen_ai.evaluation.result"] * 4
    evaluations = sorted(
        (attributes["gen_ai.evaluation.name"], attributes["gen_ai.evaluation.score.label"])
        for attributes in (_attributes(record.attributes) for record in records)
    )
    assert evaluations == [
        ("contains#1", "pass"),
        ("contains#2", "fail"),
        ("starts_with", "pass"),
        ("tool_called", "pass"),
    ]
    by_case = {_attributes(span.attributes)["promptlane.case.id"]: span for span in cases.values()}
    for record in records:  # each in the context of the case it judges
        attributes = _attributes(record.attributes)
        assert attributes["promptlane.run.id"] == run_id
        case = by_case[attributes["promptlane.case.id"]]
        assert (record.trace_id, record.span_id) == (case.trace_id, case.span_id)


def test_the_standard_environment_variables_configure_the_export(
    example: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = CliRunner()
    plain = cli.invoke(app, ["eval"])
    assert plain.exit_code == 1
    assert " trace " not in plain.stdout  # nothing configured: no spans, no trace id on the run

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert cli.invoke(app, ["eval"]).exit_code == 1
    assert collector.received == []

    monkeypatch.delenv("OTEL_SDK_DISABLED")
    exported = cli.invoke(app, ["eval"])
    assert exported.exit_code == 1
    assert " trace " in exported.stdout
    assert "/v1/traces" in {path for path, _ in collector.received}
