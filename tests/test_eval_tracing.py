"""The OpenTelemetry output of eval runs: captured in memory, and received over OTLP/HTTP from the CLI."""

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
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from typer.testing import CliRunner

from promptlane.cli import app
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Prompt, Registry
from promptlane.registry.runs import RunRecord

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support"
MODEL = "python:examples.support.model:respond"
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
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
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
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


# --- in memory ---------------------------------------------------------------------------------------------------


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
    cases = {span.attributes["promptlane.scenario"]: span for span in captured.named("eval case ")}
    assert sorted(cases) == ["broken", "hello", "refund"]
    assert {span.name for span in cases.values()} == {"eval case refund", "eval case hello", "eval case broken"}
    assert sorted(span.name for span in children(captured, root)) == sorted(span.name for span in cases.values())
    refund, hello, broken = cases["refund"], cases["hello"], cases["broken"]
    assert [span.name for span in sorted(children(captured, refund), key=lambda s: s.start_time or 0)] == [
        f"chat {MODEL}",
        "execute_tool lookup_order",
        f"chat {MODEL}",
    ]
    assert [span.name for span in children(captured, hello)] == [f"chat {MODEL}"]
    assert [span.name for span in children(captured, broken)] == [f"chat {BROKEN_MODEL}"]
    assert len(spans) == 1 + 3 + 4 + 1

    # One trace per run, the one the run record names.
    assert {format(span.context.trace_id, "032x") for span in spans} == {record.trace_id}
    for span in spans:
        attributes = dict(span.attributes or {})
        assert (attributes["gen_ai.prompt.name"], attributes["gen_ai.prompt.version"]) == ("support/reply", 1)
        assert attributes["promptlane.run.id"] == record.id
        assert attributes.get("promptlane.prompt.label") == ("staging" if by_label else None), span.name
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time

    # The root span: the run's outcome.
    assert (
        dict(root.attributes or {}).items()
        >= {
            "gen_ai.operation.name": "evaluate",
            "promptlane.run.status": "error",
            "promptlane.run.cases": 3,
            "promptlane.run.passed": 1,
            "promptlane.run.failed": 1,
            "promptlane.run.errored": 1,
        }.items()
    )
    assert root.status.status_code is StatusCode.ERROR

    # Case spans: which case, whether it passed, one event per expectation.
    assert (refund.attributes or {})["promptlane.case"] == "refund"
    assert [span.attributes["promptlane.case.passed"] for span in (refund, hello, broken)] == [False, True, False]
    events = [(event.name, dict(event.attributes or {})) for event in refund.events]
    assert events[:2] == [
        (
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "contains",
                "gen_ai.evaluation.score.value": 1.0,
                "gen_ai.evaluation.score.label": "pass",
            },
        ),
        (
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "tool_called",
                "gen_ai.evaluation.score.value": 1.0,
                "gen_ai.evaluation.score.label": "pass",
            },
        ),
    ]
    name, failed = events[2]
    assert name == "gen_ai.evaluation.result"
    assert (failed["gen_ai.evaluation.name"], failed["gen_ai.evaluation.score.value"]) == ("contains", 0.0)
    assert failed["gen_ai.evaluation.score.label"] == "fail"
    assert str(failed["gen_ai.evaluation.explanation"]).startswith("output does not contain 'teleport'")
    assert [event.name for event in hello.events] == ["gen_ai.evaluation.result"]
    assert broken.events == ()  # an error case has no verdicts
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.status.description == "ConnectionResetError: the model hung up"

    # Chat spans: the request, the usage, the messages.
    first, second = (span for span in children(captured, refund) if span.name.startswith("chat "))
    assert (first.attributes or {})["gen_ai.operation.name"] == "chat"
    assert (first.attributes or {})["gen_ai.request.model"] == MODEL
    for chat in (first, second):
        assert int((chat.attributes or {})["gen_ai.usage.input_tokens"]) > 0
        assert int((chat.attributes or {})["gen_ai.usage.output_tokens"]) > 0
    sent = json.loads(str((first.attributes or {})["gen_ai.input.messages"]))
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[1]["parts"] == [{"type": "text", "content": "I want a refund for order 123, it arrived broken."}]
    assert json.loads(str((first.attributes or {})["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "name": "lookup_order", "id": "lookup-123", "arguments": {"order_id": "123"}}
            ],
        }
    ]
    followed = json.loads(str((second.attributes or {})["gen_ai.input.messages"]))
    assert followed[-1] == {
        "role": "tool",
        "parts": [
            {"type": "tool_call_response", "id": "lookup-123", "response": {"status": "delivered", "total": 42.5}}
        ],
    }
    answer = json.loads(str((second.attributes or {})["gen_ai.output.messages"]))
    assert answer[0]["parts"][0]["content"].startswith("Hi Ana, order 123 is delivered.")
    (failed_chat,) = children(captured, broken)
    assert failed_chat.status.status_code is StatusCode.ERROR
    assert "gen_ai.output.messages" not in (failed_chat.attributes or {})

    # The tool span: which call, mocked, and what it said.
    tool = captured.one("execute_tool lookup_order")
    assert (
        dict(tool.attributes or {}).items()
        >= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.id": "lookup-123",
            "promptlane.tool.mocked": True,
        }.items()
    )
    assert json.loads(str((tool.attributes or {})["gen_ai.tool.call.arguments"])) == {"order_id": "123"}
    assert json.loads(str((tool.attributes or {})["gen_ai.tool.call.result"])) == {"status": "delivered", "total": 42.5}

    # The evaluations as log records too, one per expectation.
    logs = [data.log_record for data in captured.logs.get_finished_logs()]
    assert [log.event_name for log in logs] == ["gen_ai.evaluation.result"] * 4
    assert sorted(str((log.attributes or {})["gen_ai.evaluation.name"]) for log in logs) == [
        "contains",
        "contains",
        "starts_with",
        "tool_called",
    ]
    assert all((log.attributes or {})["promptlane.run.id"] == record.id for log in logs)


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
    # Only expectations that pass, and a model that answers: no reason text quoting the output.
    (example / "evals" / "traced.yaml").write_text(
        SCENARIOS.replace("      - contains: teleport\n", "").replace("    expect:\n      - contains: anything\n", "")
    )
    (example / "broken_model.py").write_text("def respond(messages, info):\n    return 'fine'\n")
    registry.push()
    record, captured = traced_run(registry, registry.get("support/reply", version=1), example, trace_content=False)

    assert record.status == "passed"
    spans = captured.spans.get_finished_spans()
    assert len(spans) == 1 + 3 + 4 + 1
    for span in spans:
        assert not CONTENT_KEYS & set(span.attributes or {}), span.name
        assert all(key in (span.attributes or {}) for key in COMMON)
    tool = captured.one("execute_tool lookup_order")
    assert (tool.attributes or {})["gen_ai.tool.call.id"] == "lookup-123"  # the call is there, its content not
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


def test_the_cli_exports_spans_and_evaluation_logs_over_otlp(example: Path, collector: _Collector) -> None:
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
    run_id = _attributes(root.attributes)["promptlane.run.id"]
    assert _attributes(root.attributes)["promptlane.run.status"] == "error"
    cases = {span.name: span for span in spans.values() if span.parent_span_id == root.span_id}
    assert sorted(cases) == ["eval case broken", "eval case hello", "eval case refund"]
    under_refund = sorted(
        (span for span in spans.values() if span.parent_span_id == cases["eval case refund"].span_id),
        key=lambda span: span.start_time_unix_nano,
    )
    assert [span.name for span in under_refund] == [f"chat {MODEL}", "execute_tool lookup_order", f"chat {MODEL}"]
    for span in spans.values():
        attributes = _attributes(span.attributes)
        assert (attributes["gen_ai.prompt.name"], attributes["gen_ai.prompt.version"]) == ("support/reply", 1)
        assert attributes["promptlane.run.id"] == run_id
    refund = _attributes(cases["eval case refund"].attributes)
    assert (refund["promptlane.scenario"], refund["promptlane.case"], refund["promptlane.case.passed"]) == (
        "refund",
        "refund",
        False,
    )
    assert [event.name for event in cases["eval case refund"].events] == ["gen_ai.evaluation.result"] * 3
    chat = _attributes(under_refund[0].attributes)
    assert (chat["gen_ai.operation.name"], chat["gen_ai.request.model"]) == ("chat", MODEL)
    assert chat["gen_ai.usage.input_tokens"] > 0
    assert json.loads(chat["gen_ai.output.messages"])[0]["parts"][0]["name"] == "lookup_order"
    tool = _attributes(under_refund[1].attributes)
    assert (tool["gen_ai.tool.name"], tool["gen_ai.tool.call.id"], tool["promptlane.tool.mocked"]) == (
        "lookup_order",
        "lookup-123",
        True,
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
    assert evaluations == [("contains", "fail"), ("contains", "pass"), ("starts_with", "pass"), ("tool_called", "pass")]
    assert all(_attributes(record.attributes)["promptlane.run.id"] == run_id for record in records)


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
    assert {path for path, _ in collector.received} == {"/v1/traces", "/v1/logs"}
