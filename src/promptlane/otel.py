"""OpenTelemetry: attribute names, prompt attributes on spans, and baggage that links an app's spans to a version.

GenAI semantic-convention names are used where they exist (``gen_ai.prompt.name``, ...), ``promptlane.*``
for what they lack. Library code never installs a TracerProvider; it uses the one the application set.

``PromptSpanProcessor`` needs the OpenTelemetry SDK (which the application that installs it has); it is
built on first access so that ``import promptlane.otel`` stays cheap without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import baggage, context, trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

    PromptSpanProcessor: type[SpanProcessor]

__all__ = [
    "PROMPT_LABEL",
    "PROMPT_NAME",
    "PROMPT_VERSION",
    "PromptSpanProcessor",  # built on first access by __getattr__
    "prompt_attributes",
    "prompt_baggage",
    "set_prompt_attributes",
]

PROMPT_NAME = "gen_ai.prompt.name"
PROMPT_VERSION = "gen_ai.prompt.version"
PROMPT_LABEL = "promptlane.prompt.label"

_BAGGAGE_KEYS = (PROMPT_NAME, PROMPT_VERSION, PROMPT_LABEL)


def prompt_attributes(name: str, version: int | None, label: str | None) -> dict[str, str | int]:
    """The span attributes that identify a prompt version (None values left out)."""
    attributes: dict[str, str | int] = {PROMPT_NAME: name}
    if version is not None:
        attributes[PROMPT_VERSION] = version
    if label is not None:
        attributes[PROMPT_LABEL] = label
    return attributes


_current_span = trace.get_current_span


def set_prompt_attributes(name: str, version: int | None, label: str | None) -> None:
    """Put the prompt attributes on the current span, if one is recording (the render hot path)."""
    span = _current_span()
    if span.is_recording():
        span.set_attributes(prompt_attributes(name, version, label))


@contextmanager
def prompt_baggage(name: str, version: int | None, label: str | None) -> Iterator[None]:
    """Put the prompt attributes in OTel baggage for the duration of the block."""
    ctx = context.get_current()
    for key, value in prompt_attributes(name, version, label).items():
        ctx = baggage.set_baggage(key, str(value), ctx)
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def _baggage_attributes(parent_context: Any) -> dict[str, str | int]:
    values = baggage.get_all(parent_context)
    attributes: dict[str, str | int] = {}
    for key in _BAGGAGE_KEYS:
        value = values.get(key)
        if value is not None:
            text = str(value)
            attributes[key] = int(text) if key == PROMPT_VERSION and text.isdigit() else text
    return attributes


def _build_processor() -> type[SpanProcessor]:
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("PromptSpanProcessor needs the OpenTelemetry SDK: pip install opentelemetry-sdk") from exc

    class PromptSpanProcessor(SpanProcessor):
        """Copies the prompt name, version and label from baggage (``with prompt.use():``) onto every span
        started inside, so an application's LLM spans link to the prompt version that produced them.

        Example:
            provider.add_span_processor(PromptSpanProcessor())
        """

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = _baggage_attributes(parent_context)
            if attributes:
                span.set_attributes(attributes)

    return PromptSpanProcessor


def __getattr__(name: str) -> Any:
    if name == "PromptSpanProcessor":
        processor = _build_processor()
        globals()[name] = processor
        return processor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
