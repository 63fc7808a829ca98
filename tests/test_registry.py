"""The application side: Registry.get by label or version, caching, rollouts, fallbacks, OTel."""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import promptlane.registry.registry as registry_module
from promptlane.config import Settings, load_settings
from promptlane.errors import NotFoundError, RegistryUnavailableError, SpecError
from promptlane.otel import PROMPT_LABEL, PROMPT_NAME, PROMPT_VERSION, PromptSpanProcessor
from promptlane.registry import Registry


def _versions(registry: Registry, *texts: str) -> None:
    for text in texts:
        registry.push_spec("greet", {"template": text, "variables": {"name": {"type": "string"}}})


def test_get_resolves_the_default_label_and_renders(registry: Registry, support_prompts: None) -> None:
    registry.push()
    registry.set_label("support/reply", "production", 1)
    prompt = registry.get("support/reply")
    assert (prompt.name, prompt.version, prompt.label, prompt.source) == (
        "support/reply",
        1,
        "production",
        "registry",
    )
    assert (prompt.model, prompt.model_settings) == (
        "openai:gpt-4o-mini",
        {"temperature": 0.2, "max_tokens": 400},
    )
    assert prompt.tools[0]["name"] == "lookup_order"
    assert prompt.output_schema is None
    assert len(prompt.content_hash) == 64
    rendered = prompt.render(customer="Ana", ticket="Where is order 123?")
    assert rendered.messages == [
        {"role": "system", "content": "You help Ana (free plan). Be warm and concise."},
        {"role": "user", "content": "Where is order 123?"},
    ]
    assert (
        prompt.render({"customer": "Ana"}, ticket="x", tier="pro")
        .messages[0]["content"]
        .startswith("You help Ana (pro")
    )


def test_text_prompts_render_to_one_user_message(registry: Registry) -> None:
    _versions(registry, "Hello {{ name }}")
    rendered = registry.get("greet", label="latest").render(name="Bo")
    assert rendered.messages == [{"role": "user", "content": "Hello Bo"}]
    assert rendered.text == "Hello Bo"


def test_latest_and_versions(registry: Registry) -> None:
    _versions(registry, "v1 {{ name }}", "v2 {{ name }}")
    assert registry.get("greet", label="latest").version == 2
    assert registry.get("greet", version=1).render(name="x").text == "v1 x"
    with pytest.raises(ValueError, match="not both"):
        registry.get("greet", label="latest", version=1)
    with pytest.raises(NotFoundError, match="no label 'production'"):
        registry.get("greet")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get("greet", version=9)


def test_the_default_label_comes_from_the_environment(project: Path, store_url: str, monkeypatch) -> None:
    monkeypatch.setenv("PROMPTLANE_LABEL", "staging")
    monkeypatch.setenv("PROMPTLANE_REGISTRY", store_url)
    reg = Registry()
    _versions(reg, "one {{ name }}", "two {{ name }}")
    reg.set_label("greet", "staging", 2)
    assert (reg.get("greet").label, reg.get("greet").version) == ("staging", 2)
    reg.close()


def test_versions_are_cached_and_labels_cached_for_the_ttl(registry: Registry, monkeypatch) -> None:
    _versions(registry, "one {{ name }}", "two {{ name }}")
    registry.set_label("greet", "production", 1)
    clock = [1000.0]
    # The registry's clock only (patching time.monotonic itself would stop it for every thread of the process).
    monkeypatch.setattr(registry_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    assert registry.get("greet").source == "registry"
    assert registry.get("greet").source == "cache"
    # Another process moves the label: this registry keeps serving v1 until the TTL runs out.
    other = Registry(settings=registry.settings, cache_ttl=0)
    other.store.move_label("greet", "production", {2: 100}, kind="move", actor=None, reason=None, gate=None)
    assert registry.get("greet").version == 1
    clock[0] += registry.cache_ttl + 0.1
    fresh = registry.get("greet")
    assert (fresh.version, fresh.source) == (2, "registry")
    assert other.get("greet", version=2).source == "registry"
    assert other.get("greet", version=2).source == "cache"
    other.close()


def test_a_ttl_of_zero_asks_the_store_every_time(registry: Registry) -> None:
    _versions(registry, "one {{ name }}", "two {{ name }}")
    reg = Registry(settings=registry.settings, cache_ttl=0)
    reg.set_label("greet", "production", 1)
    assert reg.get("greet").version == 1
    registry.set_label("greet", "production", 2)
    assert reg.get("greet").version == 2
    reg.close()


def test_moves_through_the_same_registry_are_visible_at_once(registry: Registry) -> None:
    _versions(registry, "one {{ name }}", "two {{ name }}")
    registry.set_label("greet", "production", 1)
    assert registry.get("greet").version == 1
    registry.set_label("greet", "production", 2)
    assert registry.get("greet").version == 2
    registry.rollback("greet", "production")
    assert registry.get("greet").version == 1


def test_moves_through_the_same_registry_are_visible_at_once_when_gets_are_cached(registry: Registry) -> None:
    # A label on one version, once cached, is answered in one lookup: a move must still be seen at once.
    _versions(registry, "one {{ name }}", "two {{ name }}")
    registry.set_label("greet", "production", 1)
    assert [registry.get("greet").source for _ in range(3)] == ["registry", "cache", "cache"]
    registry.set_label("greet", "production", 2)
    assert [(p.version, p.source) for p in (registry.get("greet"), registry.get("greet"))] == [
        (2, "registry"),
        (2, "cache"),
    ]
    registry.set_rollout("greet", "production", {1: 50, 2: 50})
    picks = {registry.get("greet", targeting_key=f"user-{i}").version for i in range(100)}
    assert picks == {1, 2}


def test_rollouts_are_sticky_per_targeting_key(registry: Registry) -> None:
    _versions(registry, "one {{ name }}", "two {{ name }}")
    registry.set_rollout("greet", "production", {1: 50, 2: 50})
    picks = {key: registry.get("greet", targeting_key=key).version for key in (f"user-{i}" for i in range(200))}
    assert set(picks.values()) == {1, 2}
    assert all(registry.get("greet", targeting_key=key).version == v for key, v in picks.items())


def test_fallback_when_the_prompt_is_missing(registry: Registry, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="promptlane"):
        first = registry.get("missing", fallback="Hi {{ name }}")
        second = registry.get("missing", fallback="Hi {{ name }}")
    assert (first.source, first.version, first.label) == ("fallback", None, "production")
    assert second.render(name="Ana").text == "Hi Ana"
    assert len([r for r in caplog.records if "fallback" in r.message]) == 1


def test_fallback_when_the_registry_is_down(project: Path) -> None:
    reg = Registry("postgresql://nobody@127.0.0.1:1/none")
    spec = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{ q }}"}]}
    prompt = reg.get("support/reply", fallback=spec)
    assert prompt.source == "fallback"
    assert prompt.render(q="Why?").messages[1] == {"role": "user", "content": "Why?"}
    with pytest.raises(RegistryUnavailableError, match="unavailable"):
        reg.get("support/reply")


def test_a_bad_fallback_is_a_spec_error(registry: Registry) -> None:
    with pytest.raises(SpecError, match="invalid spec"):
        registry.get("missing", fallback={"template": "x", "temprature": 1})


def test_to_pydantic_ai(registry: Registry, support_prompts: None) -> None:
    from pydantic_ai.messages import ModelRequest, SystemPromptPart, UserPromptPart

    registry.push()
    messages = registry.get("support/reply", label="latest").render(customer="Ana", ticket="Hi").to_pydantic_ai()
    assert len(messages) == 1 and isinstance(messages[0], ModelRequest)
    parts = messages[0].parts
    assert [type(p) for p in parts] == [SystemPromptPart, UserPromptPart]
    assert parts[1].content == "Hi"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(PromptSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_render_tags_the_current_span(registry: Registry, spans: Any) -> None:
    provider, exporter = spans
    _versions(registry, "Hi {{ name }}")
    registry.set_label("greet", "production", 1)
    prompt = registry.get("greet")
    with provider.get_tracer("app").start_as_current_span("handle request"):
        prompt.render(name="Ana")
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        PROMPT_NAME: "greet",
        PROMPT_VERSION: "1",
        PROMPT_LABEL: "production",
    }


def test_use_puts_the_version_on_every_span_inside(registry: Registry, spans: Any) -> None:
    provider, exporter = spans
    _versions(registry, "Hi {{ name }}")
    registry.set_label("greet", "production", 1)
    tracer = provider.get_tracer("app")
    with registry.get("greet").use(), tracer.start_as_current_span("chat gpt-4o"):
        pass
    with tracer.start_as_current_span("outside"):
        pass
    inside, outside = exporter.get_finished_spans()
    assert dict(inside.attributes or {}) == {
        PROMPT_NAME: "greet",
        PROMPT_VERSION: "1",
        PROMPT_LABEL: "production",
    }
    assert dict(outside.attributes or {}) == {}


def test_settings_precedence(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.promptlane]\ndefault_label = "staging"\ncache_ttl = 5\n')
    sub = tmp_path / "src" / "app"
    sub.mkdir(parents=True)
    settings = load_settings(sub)
    assert (settings.root, settings.default_label, settings.cache_ttl) == (tmp_path, "staging", 5.0)
    assert settings.registry_url == f"sqlite:///{tmp_path / '.promptlane' / 'registry.db'}"
    monkeypatch.setenv("PROMPTLANE_LABEL", "canary")
    assert load_settings(sub).default_label == "canary"
    assert load_settings(sub, {"default_label": "cli"}).default_label == "cli"
    assert Settings().protected_labels == ("production",)
