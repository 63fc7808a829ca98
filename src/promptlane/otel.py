"""OpenTelemetry: attribute names, prompt attributes on spans, and baggage that links an app's spans to a version.

GenAI semantic-convention names are used where they exist (``gen_ai.prompt.name``, ...), ``promptlane.*``
for what they lack. Library code never installs a TracerProvider; it uses the one the application set.

``PromptSpanProcessor`` needs the OpenTelemetry SDK (which the application that installs it has); it is
built on first access so that ``import promptlane.otel`` stays cheap without it. ``instrument()`` installs it in
one call.

``Registry.get`` records a ``get_prompt {name}`` span (name, label, version, source, cache hit) when the
application set a TracerProvider (or gave the Registry one); with none, the check costs one read of a global.

opentelemetry-api is not a dependency of ``pip install promptlane``: an application without it gets and renders
prompts with no spans and no baggage (an application that traces has the API already).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import baggage, context, trace
except ImportError:  # the application does not use OpenTelemetry: get and render record nothing
    _API = False
else:
    _API = True

from . import __version__
from .errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, Tracer, TracerProvider

    PromptSpanProcessor: type[SpanProcessor]

__all__ = [
    "PROMPT_CACHE_HIT",
    "PROMPT_LABEL",
    "PROMPT_NAME",
    "PROMPT_SOURCE",
    "PROMPT_VERSION",
    "PromptSpanProcessor",  # built on first access by __getattr__
    "instrument",
    "prompt_attributes",
    "prompt_baggage",
    "set_prompt_attributes",
]

PROMPT_NAME = "gen_ai.prompt.name"
PROMPT_VERSION = "gen_ai.prompt.version"
PROMPT_LABEL = "promptlane.prompt.label"
PROMPT_SOURCE = "promptlane.prompt.source"
"""What answered a ``get``: ``registry``, ``cache``, ``stale``, ``disk`` or ``fallback`` (``Prompt.source``)."""
PROMPT_CACHE_HIT = "promptlane.prompt.cache_hit"
"""True when a ``get`` was answered without asking the store (``cache``, ``stale`` or ``disk``)."""
ERROR_TYPE = "error.type"

_BAGGAGE_KEYS = (PROMPT_NAME, PROMPT_VERSION, PROMPT_LABEL)


def prompt_attributes(name: str, version: int | None, label: str | None) -> dict[str, str | int]:
    """The span attributes that identify a prompt version (None values left out; the version as a string, the
    type the GenAI conventions give ``gen_ai.prompt.version``, as the harness's spans carry it)."""
    attributes: dict[str, str | int] = {PROMPT_NAME: name}
    if version is not None:
        attributes[PROMPT_VERSION] = str(version)
    if label is not None:
        attributes[PROMPT_LABEL] = label
    return attributes


def _needs_api(what: str) -> ImportError:
    return ImportError(f"{what} needs OpenTelemetry: pip install opentelemetry-sdk")


_current_span = trace.get_current_span if _API else None


def set_prompt_attributes(name: str, version: int | None, label: str | None) -> None:
    """Put the prompt attributes on the current span, if one is recording (the render hot path)."""
    if _current_span is None:
        return
    span = _current_span()
    if span.is_recording():
        span.set_attributes(prompt_attributes(name, version, label))


@contextmanager
def prompt_baggage(name: str, version: int | None, label: str | None) -> Iterator[None]:
    """Put the prompt attributes in OTel baggage for the duration of the block (without OpenTelemetry: nothing
    to put them in)."""
    if not _API:
        yield
        return
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
            attributes[key] = text
    return attributes


def _build_processor() -> type[SpanProcessor]:
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError as exc:  # tests/test_install.py: an application without OpenTelemetry
        raise _needs_api("PromptSpanProcessor") from exc

    class PromptSpanProcessor(SpanProcessor):
        """Copies the prompt name, version and label from baggage (``with prompt.use():``) onto every span
        started inside, so an application's LLM spans link to the prompt version that produced them.

        Example:
            provider.add_span_processor(PromptSpanProcessor())
        """

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if PROMPT_NAME in (span.attributes or ()):
                return  # a span about a prompt of its own (a get, an eval's case) keeps it
            attributes = _baggage_attributes(parent_context)
            if attributes:
                span.set_attributes(attributes)

    return PromptSpanProcessor


def _processor_type() -> type[SpanProcessor]:
    processor = globals().get("PromptSpanProcessor")
    if processor is None:
        processor = globals()["PromptSpanProcessor"] = _build_processor()
    return processor


def __getattr__(name: str) -> Any:
    if name == "PromptSpanProcessor":
        return _processor_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- instrument(): the span processor in one call ---------------------------------------------------------

log = logging.getLogger("promptlane")
_instrument_lock = threading.Lock()
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument(tracer_provider: TracerProvider | None = None) -> bool:
    """Install ``PromptSpanProcessor`` on ``tracer_provider`` (default: the global one the application set), so
    that every span started inside ``with prompt.use():`` carries the prompt's name, version and label.

    Idempotent: a provider that has the processor already (from this call or added by hand) is left as it is.
    What it did is logged (``promptlane`` logger, INFO).

    Args:
        tracer_provider: The provider to install on; default: ``opentelemetry.trace.get_tracer_provider()``.

    Returns:
        True when it installed the processor now, False when the provider had one already.

    Raises:
        ConfigError: no TracerProvider is set globally (set yours first, or pass it), or the provider takes no
            span processors.
        ImportError: the OpenTelemetry SDK is not installed.
    """
    if not _API:
        raise _needs_api("instrument()")
    provider: Any = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        raise ConfigError(
            "instrument(): no TracerProvider is set; call opentelemetry.trace.set_tracer_provider(...) first, "
            "or pass yours: instrument(provider)"
        )
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        raise ConfigError(
            f"instrument(): {type(provider).__name__} takes no span processors; pass an "
            "opentelemetry.sdk.trace.TracerProvider"
        )
    processor_type = _processor_type()
    with _instrument_lock:
        if provider in _instrumented or any(isinstance(p, processor_type) for p in _span_processors(provider)):
            log.info("promptlane: PromptSpanProcessor is already installed on %s", type(provider).__name__)
            return False
        add(processor_type())
        with contextlib.suppress(TypeError):  # a provider that cannot be weakly referenced: its list is checked
            _instrumented.add(provider)
    log.info("promptlane: installed PromptSpanProcessor on %s", type(provider).__name__)
    return True


def _span_processors(provider: Any) -> tuple[Any, ...]:
    # The SDK lists a provider's processors only privately; this finds one added by hand, too.
    return tuple(getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ()))


# --- Registry.get's resolution span -----------------------------------------------------------------------

_CACHED_SOURCES = frozenset({"cache", "stale", "disk"})
_global_tracer: tuple[object, Tracer | None] = (None, None)  # the global provider last seen, our tracer on it


def resolution_tracer(tracer_provider: TracerProvider | None = None) -> Tracer | None:
    """promptlane's tracer on ``tracer_provider``, else on the global provider; None while no global provider is
    set (or a no-op one), so that ``get`` makes no span at all."""
    global _global_tracer
    if tracer_provider is not None:
        return tracer_provider.get_tracer("promptlane", __version__)
    if not _API:
        return None
    # Called on every get: opentelemetry-api keeps the global provider in `_TRACER_PROVIDER` (None until set), and
    # reading it costs nanoseconds where get_tracer_provider() looks an environment variable up on every call
    # (about 0.6 us, a tenth of a cached get + render).
    try:
        provider: Any = trace._TRACER_PROVIDER  # pyright: ignore[reportPrivateUsage]
    except AttributeError:  # pragma: no cover - an opentelemetry-api without it: the public, slower way
        provider = trace.get_tracer_provider()
        provider = None if isinstance(provider, trace.ProxyTracerProvider) else provider
    if provider is None:
        return None
    seen, tracer = _global_tracer
    if seen is not provider:
        no_op = isinstance(provider, trace.NoOpTracerProvider)
        tracer = None if no_op else provider.get_tracer("promptlane", __version__)
        _global_tracer = (provider, tracer)
    return tracer


@contextmanager
def resolution_span(tracer: Tracer, name: str, label: str | None) -> Iterator[Span]:
    """The span of one ``Registry.get``, ``get_prompt {name}``: current while the prompt is resolved (a fetch's
    HTTP span is its child); a failure sets ``error.type``, the error status and an exception event."""
    with tracer.start_as_current_span(f"get_prompt {name}", attributes=prompt_attributes(name, None, label)) as span:
        try:
            yield span
        except Exception as exc:
            span.set_attribute(ERROR_TYPE, _type_name(exc))
            raise


def _type_name(exc: Exception) -> str:
    """The exception's class as the SDK names it in ``exception.type`` (``promptlane.errors.NotFoundError``)."""
    module, name = type(exc).__module__, type(exc).__qualname__
    return f"{module}.{name}" if module and module != "builtins" else name


def record_resolution(span: Span, version: int | None, source: str, fallback_reason: Exception | None) -> None:
    """Put what a ``get`` resolved on its span: the version, the source that answered, whether that was a cache,
    and the error a fallback stands in for (an exception event; the span is no error: ``get`` succeeded)."""
    if not span.is_recording():
        return
    if version is not None:
        span.set_attribute(PROMPT_VERSION, str(version))
    span.set_attributes({PROMPT_SOURCE: source, PROMPT_CACHE_HIT: source in _CACHED_SOURCES})
    if fallback_reason is not None:
        span.record_exception(fallback_reason)
