"""Export hygiene: which signals go where (the OTEL_* variables, ``--otlp-endpoint``), the resource, failed or
hung exports reported without changing a run's verdict, and the baggage ``prompt.use()`` sends. A fake OTLP/HTTP
collector on loopback records what it receives and answers as a test says: 200, an error status, or a trickle
that never ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from promptlane.cli import app
from promptlane.registry import Registry

runner = CliRunner(env={"COLUMNS": "200"})

MODELS = """
def polite(messages, info):
    return "Hello! Happy to help."
"""

GREET = """\
model: python:otel_export_models:polite
template: "Say hello to {{ name }}"
"""

SCENARIOS = """\
prompt: greet
scenarios:
  - name: hello
    variables: {name: Ana}
    expect:
      - contains: Hello
"""

SPANS_PER_RUN = 3  # eval greet, eval case hello, chat


class _Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver: records (path, body) and answers ``answers[path]`` (200 by default; a status, or
    ``"trickle"``: a status line, then a byte now and then, never a whole answer)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.received: list[tuple[str, bytes]] = []
        self.answers: dict[str, int | str] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self) -> set[str]:
        with self.lock:
            return {path for path, _ in self.received}

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        with self.lock:
            bodies = [body for path, body in self.received if path.endswith("traces")]
        found = []
        for body in bodies:
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
                found.extend((resource, span) for scope in resource_spans.scope_spans for span in scope.spans)
        return found

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a trickle


class _Receiver(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.received.append((self.path, body))
        answer = self.server.answers.get(self.path, 200)
        if answer == "trickle":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not self.server.stopping.wait(0.2):
                self.wfile.write(b"X")
                self.wfile.flush()
            return
        self.send_response(int(answer))
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's OTEL_* variables."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


@pytest.fixture
def greet(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose one scenario passes (so exit status 0 is the verdict), its model importable."""
    (project / "prompts" / "greet.yaml").write_text(GREET)
    (project / "evals").mkdir()
    (project / "evals" / "greet.yaml").write_text(SCENARIOS)
    (project / "otel_export_models.py").write_text(textwrap.dedent(MODELS))
    monkeypatch.syspath_prepend(str(project))
    return project


def run_eval(*args: str) -> Result:
    return runner.invoke(app, ["eval", *args])


def report(project: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    """``eval --json`` (and ``args``): the result and the report's ``export``."""
    result = run_eval("--json", str(project / "report.json"), *args)
    return result, json.loads((project / "report.json").read_text())["export"]


# --- where each signal goes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/v1/traces", "/v1/traces/"])
def test_otlp_endpoint_takes_the_base_url_or_the_traces_url(greet: Path, collector: _Collector, suffix: str) -> None:
    result = run_eval("--otlp-endpoint", collector.url + suffix)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    assert collector.paths() == {"/v1/traces"}
    assert len(collector.spans()) == SPANS_PER_RUN


def test_a_base_endpoint_sends_traces_and_no_logs(
    greet: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    result, export = report(greet)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    assert collector.paths() == {"/v1/traces"}  # a traces-only backend answers 405 on /v1/logs
    assert export == {
        "ok": True,
        "signals": {
            "traces": {"endpoint": f"{collector.url}/v1/traces", "exported": SPANS_PER_RUN, "lost": 0, "error": None}
        },
        "problems": [],
    }


def test_a_traces_endpoint_is_used_as_given_and_sends_no_logs(
    greet: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.url}/custom/traces")
    result, export = report(greet)
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    assert collector.paths() == {"/custom/traces"}
    assert list(export["signals"]) == ["traces"]  # no logs, to localhost:4318 or anywhere


@pytest.mark.parametrize(
    ("variables", "paths"),
    [
        ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "{url}/custom/logs"}, {"/v1/traces", "/custom/logs"}),
        ({"OTEL_LOGS_EXPORTER": "otlp"}, {"/v1/traces", "/v1/logs"}),
        ({"OTEL_LOGS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "{url}/custom/logs"}, {"/v1/traces"}),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "otlp"}, {"/v1/logs"}),
        ({"OTEL_TRACES_EXPORTER": "none"}, set()),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_LOGS_EXPORTER": "otlp"}, set()),
    ],
    ids=["logs-endpoint", "logs-exporter-otlp", "logs-exporter-none", "traces-exporter-none", "nothing", "disabled"],
)
def test_the_exporter_variables_pick_the_signals(
    greet: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], paths: set[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    for key, value in variables.items():
        monkeypatch.setenv(key, value.format(url=collector.url))
    result = run_eval()
    assert (result.exit_code, result.stderr) == (0, ""), (result.stdout, result.stderr)
    assert collector.paths() == paths


def test_the_endpoint_option_also_carries_the_logs_when_they_are_asked_for(
    greet: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    result = run_eval("--otlp-endpoint", f"{collector.url}/v1/traces")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert collector.paths() == {"/v1/traces", "/v1/logs"}


def test_an_exporter_promptlane_does_not_have_is_named_on_stderr(
    greet: Path, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    result = run_eval()
    assert result.exit_code == 0
    assert "OTEL_TRACES_EXPORTER: console ignored" in result.stderr
    assert collector.paths() == set()


def test_an_endpoint_that_is_not_a_url_is_a_usage_error(greet: Path) -> None:
    result = run_eval("--otlp-endpoint", "localhost:4318")
    assert result.exit_code == 2
    assert "--otlp-endpoint" in result.stderr and "http://localhost:4318" in result.stderr


# --- the resource --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, {"service.name": "promptlane"}),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=checkout-evals,deployment.environment=ci"},
            {"service.name": "checkout-evals", "deployment.environment": "ci"},
        ),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes", "OTEL_SERVICE_NAME": "from-service-name"},
            {"service.name": "from-service-name"},
        ),
    ],
    ids=["default", "resource-attributes", "service-name-wins"],
)
def test_the_resource_follows_the_environment(
    greet: Path,
    collector: _Collector,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: dict[str, str],
) -> None:
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    assert run_eval("--otlp-endpoint", collector.url).exit_code == 0
    resources = [resource for resource, _ in collector.spans()]
    assert len(resources) == SPANS_PER_RUN
    assert all(resource.items() >= expected.items() for resource in resources), resources


# --- failed exports ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [405, 500])
def test_a_refused_export_is_reported_and_the_verdict_stays(greet: Path, collector: _Collector, status: int) -> None:
    collector.answers["/v1/traces"] = status
    result, export = report(greet, "--otlp-endpoint", collector.url)
    assert result.exit_code == 0, (result.stdout, result.stderr)  # the run passed; the export is not its verdict
    stderr = " ".join(result.stderr.split())
    assert f"traces export to {collector.url}/v1/traces failed ({SPANS_PER_RUN} spans lost)" in stderr
    assert str(status) in stderr
    assert export["ok"] is False
    traces = export["signals"]["traces"]
    assert (traces["exported"], traces["lost"]) == (0, SPANS_PER_RUN)
    assert str(status) in traces["error"]
    assert export["problems"] == [line for line in export["problems"] if line.startswith("traces export to")]


def test_a_collector_that_never_answers_does_not_hold_the_command(greet: Path, collector: _Collector) -> None:
    collector.answers["/v1/traces"] = "trickle"  # the exporter's own timeout never fires on a trickle
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    path = os.pathsep.join(filter(None, [str(greet), os.environ.get("PYTHONPATH")]))
    env.update(OTEL_EXPORTER_OTLP_TIMEOUT="1", PYTHONPATH=path, COLUMNS="200")
    # The flush gives up after the exporter's timeout plus a second; 120 s is many times that on any machine.
    done = subprocess.run(
        [sys.executable, "-m", "promptlane", "eval", "--otlp-endpoint", collector.url],
        cwd=greet,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    stderr = " ".join(done.stderr.split())
    assert f"traces export to {collector.url}/v1/traces failed" in stderr
    assert "no answer within 2 s" in stderr
    assert collector.paths() == {"/v1/traces"}


def test_the_pytest_summary_reports_a_failed_export(
    pytester: pytest.Pytester, collector: _Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector.answers["/v1/traces"] = 405
    pytester.makefile(".toml", promptlane='prompts = "prompts"\nevals = "evals"\n')
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(otel_export_models=MODELS)
    (pytester.path / "prompts").mkdir()
    (pytester.path / "prompts" / "greet.yaml").write_text(GREET)
    (pytester.path / "evals").mkdir()
    (pytester.path / "evals" / "greet.yaml").write_text(SCENARIOS)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    result = pytester.runpytest_subprocess("--prompt-evals", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [f"warning: traces export to {collector.url}/v1/traces failed ({SPANS_PER_RUN} spans lost): *405*"]
    )


# --- baggage -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("switch", "sent"), [(None, True), ("on", True), ("off", False), ("FALSE", False)])
def test_prompt_use_puts_the_prompt_in_the_baggage_http_calls_send_unless_turned_off(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, switch: str | None, sent: bool
) -> None:
    registry.push_spec("greet", {"template": "Hi {{ name }}", "variables": {"name": {"type": "string"}}})
    registry.set_label("greet", "production", 1)
    if switch is not None:
        monkeypatch.setenv("PROMPTLANE_BAGGAGE", switch)
    headers: dict[str, str] = {}
    with registry.get("greet").use():
        W3CBaggagePropagator().inject(headers)  # what an instrumented HTTP client adds to its request
    expected = "gen_ai.prompt.name=greet,gen_ai.prompt.version=1,promptlane.prompt.label=production"
    assert headers == ({"baggage": expected} if sent else {})
