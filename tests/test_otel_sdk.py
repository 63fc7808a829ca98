"""The SDK's OpenTelemetry side: the ``get_prompt`` span of ``Registry.get`` and ``promptlane.otel.instrument()``.

Spans go to an in-memory exporter on a provider given to the Registry; the global provider is set only inside
subprocesses (opentelemetry-api lets a process set it once) or patched for one test and restored after.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import promptlane.otel
import promptlane.registry.registry as registry_module
from _live import LiveServer, served_registry
from promptlane import ConfigError, NotFoundError
from promptlane.config import Settings
from promptlane.otel import (
    PROMPT_CACHE_HIT,
    PROMPT_LABEL,
    PROMPT_NAME,
    PROMPT_SOURCE,
    PROMPT_VERSION,
    PromptSpanProcessor,
    instrument,
    resolution_tracer,
)
from promptlane.registry import Registry

NOT_FOUND = "promptlane.errors.NotFoundError"


class Captured:
    """A TracerProvider whose finished spans are kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[dict[str, Any]]:
        return [_as_dict(span) for span in self.exporter.get_finished_spans()]

    def take(self) -> list[dict[str, Any]]:
        spans = self.spans()
        self.exporter.clear()
        return spans


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [(event.name, dict(event.attributes or {}).get("exception.type")) for event in span.events],
    }


@pytest.fixture
def captured() -> Captured:
    return Captured()


@pytest.fixture
def traced(project: Path, captured: Captured) -> Iterator[Registry]:
    """A local registry with ``greet`` v1 and v2, ``production`` on v1, recording to ``captured``."""
    settings = Settings(root=project, registry=f"sqlite:///{project / 'registry.db'}", protected_labels=())
    writer = Registry(settings=settings)
    writer.push_spec("greet", {"template": "Hi {{ name }}"})
    writer.push_spec("greet", {"template": "Hello {{ name }}"})
    writer.set_label("greet", "production", 1)
    writer.close()
    registry = Registry(settings=settings, tracer_provider=captured.provider)
    yield registry
    registry.close()


def _resolved(version: int | None, label: str | None, source: str, cache_hit: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {PROMPT_NAME: "greet"}
    if label is not None:
        attributes[PROMPT_LABEL] = label
    if version is not None:
        attributes[PROMPT_VERSION] = str(version)
    return {**attributes, PROMPT_SOURCE: source, PROMPT_CACHE_HIT: cache_hit}


# --- the resolution span ----------------------------------------------------------------------------------


def test_get_records_a_span_with_the_version_and_the_source_that_answered(traced: Registry, captured: Captured) -> None:
    traced.get("greet", label="production")
    traced.get("greet", label="production")
    traced.get("greet", version=2)
    assert captured.spans() == [
        {
            "name": "get_prompt greet",
            "attributes": _resolved(1, "production", "registry", False),
            "status": "UNSET",
            "events": [],
        },
        {
            "name": "get_prompt greet",
            "attributes": _resolved(1, "production", "cache", True),
            "status": "UNSET",
            "events": [],
        },
        {
            "name": "get_prompt greet",
            "attributes": _resolved(2, None, "registry", False),
            "status": "UNSET",
            "events": [],
        },
    ]


def test_the_span_is_a_child_of_the_applications_span(traced: Registry, captured: Captured) -> None:
    with captured.provider.get_tracer("app").start_as_current_span("handle request") as request:
        traced.get("greet", label="production")
    get, _ = captured.exporter.get_finished_spans()
    assert get.name == "get_prompt greet"
    assert get.parent is not None and get.parent.span_id == request.get_span_context().span_id


def test_a_fallback_is_a_success_that_records_what_it_stands_in_for(traced: Registry, captured: Captured) -> None:
    traced.get("greet", label="staging", fallback="Hi {{ name }}")
    assert captured.spans() == [
        {
            "name": "get_prompt greet",
            "attributes": _resolved(None, "staging", "fallback", False),
            "status": "UNSET",
            "events": [("exception", NOT_FOUND)],
        }
    ]


def test_a_failed_get_is_an_error_span_with_its_type(traced: Registry, captured: Captured) -> None:
    with pytest.raises(NotFoundError):
        traced.get("greet", label="staging")
    assert captured.spans() == [
        {
            "name": "get_prompt greet",
            "attributes": {PROMPT_NAME: "greet", PROMPT_LABEL: "staging", "error.type": NOT_FOUND},
            "status": "ERROR",
            "events": [("exception", NOT_FOUND)],
        }
    ]


def test_a_get_inside_another_prompts_use_keeps_its_own_prompt(traced: Registry, captured: Captured) -> None:
    # Baggage names `greet` v1; the span of getting another prompt (a fallback: no version) must not take it.
    instrument(captured.provider)
    with traced.get("greet", label="production").use():
        traced.get("other", fallback="x")
    assert [span for span in captured.spans() if span["name"] == "get_prompt other"] == [
        {
            "name": "get_prompt other",
            "attributes": {
                PROMPT_NAME: "other",
                PROMPT_LABEL: "production",
                PROMPT_SOURCE: "fallback",
                PROMPT_CACHE_HIT: False,
            },
            "status": "UNSET",
            "events": [("exception", NOT_FOUND)],
        }
    ]


def test_a_server_registry_reports_registry_cache_then_disk(tmp_path: Path, captured: Captured) -> None:
    server_registry, secrets = served_registry(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}")
    server_registry.push_spec("greet", {"template": "Hi {{ name }}"})
    server_registry.set_label("greet", "production", 1, force=True, reason="test")
    server = LiveServer(server_registry).start()
    settings = Settings(root=tmp_path / "app", cache_ttl=30)
    try:
        with Registry(server.url, token=secrets["read"], settings=settings, tracer_provider=captured.provider) as app:
            app.get("greet", label="production")
            app.get("greet", label="production")
    finally:
        server.stop()
        server_registry.close()
    with Registry(server.url, token=secrets["read"], settings=settings, tracer_provider=captured.provider) as app:
        app.get("greet", label="production")  # the server is down: the snapshot written at close answers
    assert [span["attributes"] for span in captured.spans()] == [
        _resolved(1, "production", "registry", False),
        _resolved(1, "production", "cache", True),
        _resolved(1, "production", "disk", True),
    ]


def test_without_a_provider_get_starts_no_span(traced: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a span was started with no tracer configured")

    untraced = Registry(settings=traced.settings)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(registry_module, "resolution_span", refuse)
    assert untraced.get("greet", label="production").render(name="Ana").text == "Hi Ana"
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", trace.NoOpTracerProvider())  # set, but records nothing
    assert untraced.get("greet", label="production").version == 1
    untraced.close()


def test_the_global_provider_is_used_once_the_application_sets_it(
    traced: Registry, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    untraced = Registry(settings=traced.settings)  # made before the provider is set, as at an app's import time
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    assert resolution_tracer() is None
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", captured.provider)
    monkeypatch.setattr(promptlane.otel, "_global_tracer", (None, None))
    untraced.get("greet", label="production")
    assert [span["name"] for span in captured.spans()] == ["get_prompt greet"]
    untraced.close()


def test_the_global_provider_set_the_public_way(tmp_path: Path) -> None:
    """In a fresh process: no provider, no span; after ``set_tracer_provider``, spans from the same Registry, and
    ``instrument()`` on the global provider, once."""
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from promptlane import Registry
        from promptlane.otel import instrument

        registry = Registry(default_label="latest")
        registry.push_spec("hello", {"template": "Hi {{ name }}"})
        registry.get("hello")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        print(instrument(), instrument())
        with registry.get("hello").use(), trace.get_tracer("app").start_as_current_span("chat"):
            pass
        for span in exporter.get_finished_spans():
            print(span.name, sorted(span.attributes.items()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True False",
        "get_prompt hello [('gen_ai.prompt.name', 'hello'), ('gen_ai.prompt.version', '1'), "
        "('promptlane.prompt.cache_hit', True), ('promptlane.prompt.label', 'latest'), "
        "('promptlane.prompt.source', 'cache')]",
        "chat [('gen_ai.prompt.name', 'hello'), ('gen_ai.prompt.version', '1'), ('promptlane.prompt.label', 'latest')]",
    ]


def test_a_cached_get_and_render_does_not_import_the_otel_sdk(tmp_path: Path) -> None:
    setup = 'import promptlane; promptlane.Registry().push_spec("hello", {"template": "Hi {{ name }}"})'
    subprocess.run([sys.executable, "-c", setup], cwd=tmp_path, check=True)
    app = textwrap.dedent(
        """
        import sys
        from promptlane import Registry
        registry = Registry()
        print(registry.get("hello", label="latest").render(name="Ana").text)
        print(registry.get("hello", label="latest").source)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))
        """
    )
    result = subprocess.run([sys.executable, "-c", app], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stdout.splitlines() == ["Hi Ana", "cache", "[]"]


# --- instrument() -----------------------------------------------------------------------------------------


def _prompt_processors(provider: TracerProvider) -> list[object]:
    processors = provider._active_span_processor._span_processors  # pyright: ignore[reportPrivateUsage]
    return [p for p in processors if isinstance(p, PromptSpanProcessor)]


def test_instrument_installs_the_processor_once_and_says_so(
    traced: Registry, captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="promptlane")
    assert instrument(captured.provider) is True
    assert instrument(captured.provider) is False
    assert len(_prompt_processors(captured.provider)) == 1
    assert [record.getMessage() for record in caplog.records] == [
        "promptlane: installed PromptSpanProcessor on TracerProvider",
        "promptlane: PromptSpanProcessor is already installed on TracerProvider",
    ]
    prompt = traced.get("greet", label="production")
    captured.take()
    with prompt.use(), captured.provider.get_tracer("app").start_as_current_span("chat gpt-4o"):
        pass
    assert captured.spans()[0]["attributes"] == {PROMPT_NAME: "greet", PROMPT_VERSION: "1", PROMPT_LABEL: "production"}


def test_instrument_leaves_a_processor_added_by_hand(captured: Captured) -> None:
    captured.provider.add_span_processor(PromptSpanProcessor())
    assert instrument(captured.provider) is False
    assert len(_prompt_processors(captured.provider)) == 1


def test_instrument_without_a_provider_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    with pytest.raises(ConfigError, match=r"no TracerProvider is set; call opentelemetry.trace.set_tracer_provider"):
        instrument()
    with pytest.raises(ConfigError, match="NoOpTracerProvider takes no span processors"):
        instrument(trace.NoOpTracerProvider())
