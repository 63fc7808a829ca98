"""The tokens of a ``python:`` model are the ones it reports (harness/models.py).

A function that answers with a string, or with a ModelResponse without usage, reports none: its cases record 0
tokens and its chat spans carry no token counts (pydantic-ai's FunctionModel would otherwise guess them from
the words of every message, on every request). A response with usage is recorded as reported.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptlane.config import Settings
from promptlane.harness import EvalOptions, EvalRun, load_scenario_file
from promptlane.registry import Registry

MODELS = """
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.usage import RequestUsage

def text(messages, info):
    return "a fairly long answer, with words enough for any estimate of tokens to count some"

async def silent(messages, info):
    return ModelResponse(parts=[TextPart("an answer without usage")])

def reported(messages, info):
    return ModelResponse(parts=[TextPart("an answer")], usage=RequestUsage(input_tokens=7, output_tokens=3))
"""

SCENARIOS = """\
prompt: ask
scenarios:
  - name: one
    variables: {question: "How many tokens did this take, would you say?"}
"""


@pytest.fixture
def registry(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    (project / "usage_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "usage_models", raising=False)
    importlib.invalidate_caches()
    (project / "prompts" / "ask.yaml").write_text(
        'variables:\n  question: {type: string}\nmessages:\n  - {role: user, content: "{{ question }}"}\n'
    )
    (project / "evals").mkdir()
    (project / "evals" / "ask.yaml").write_text(SCENARIOS)
    reg = Registry(settings=Settings(root=project, registry=f"sqlite:///{project / 'registry.db'}"))
    reg.push()
    yield reg
    reg.close()


def run_with(registry: Registry, project: Path, model: str) -> tuple[tuple[int, int], dict[str, dict[str, Any]]]:
    """One case with ``model``: its stored (input, output) tokens, and the token attributes of its spans by
    span name."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    run = EvalRun(
        store=registry.store,
        prompt=registry.get("ask", label="latest"),
        documents=[load_scenario_file(project / "evals" / "ask.yaml")],
        options=EvalOptions(root=project, model=f"python:usage_models:{model}"),
        tracer_provider=provider,
    )
    record = asyncio.run(run.run())
    (case,) = registry.store.run_cases(record.id)
    assert case.status == "passed"
    usage = {
        span.name.split()[0]: {key: value for key, value in (span.attributes or {}).items() if "usage" in key}
        for span in spans.get_finished_spans()
        if span.name.startswith(("chat", "eval case"))
    }
    return (case.input_tokens, case.output_tokens), usage


@pytest.mark.parametrize("model", ["text", "silent"])
def test_an_answer_that_reports_no_usage_records_no_tokens(registry: Registry, project: Path, model: str) -> None:
    tokens, spans = run_with(registry, project, model)

    assert tokens == (0, 0)
    assert spans == {"chat": {}, "eval": {}}


def test_an_answer_with_usage_records_it(registry: Registry, project: Path) -> None:
    tokens, spans = run_with(registry, project, "reported")

    assert tokens == (7, 3)
    counts = {"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3}
    assert spans == {"chat": counts, "eval": counts}
