"""What an application gets from ``Registry.get``: a resolved prompt version, ready to render."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .. import adapters
from .._budget import RenderLimits
from ..otel import prompt_baggage, set_prompt_attributes
from ..templates import CompiledPrompt, compile_prompt
from .store import PromptVersion

if TYPE_CHECKING:
    from datetime import datetime

    from langchain_core.messages import BaseMessage
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage

__all__ = ["Prompt", "RenderedPrompt"]


class RenderedPrompt:
    """A prompt rendered with its variables."""

    __slots__ = ("_spec", "label", "messages", "name", "version")

    def __init__(
        self,
        name: str,
        version: int | None,
        label: str | None,
        messages: list[dict[str, str]],
        *,
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        """The prompt's name."""
        self.version = version
        """The version rendered (None for a fallback)."""
        self.label = label
        """The label it was resolved through, if any."""
        self.messages = messages
        """Chat messages: ``[{"role": "system", "content": ...}, ...]`` (a text prompt is one user message)."""
        self._spec: Mapping[str, Any] = spec or {}

    @property
    def text(self) -> str:
        """The whole text: a text prompt's text, or a chat prompt's messages joined by blank lines."""
        return "\n\n".join(message["content"] for message in self.messages)

    def to_pydantic_ai(self) -> list[ModelMessage]:
        """The messages as pydantic-ai ``ModelMessage`` objects (imports pydantic_ai)."""
        try:
            from pydantic_ai.messages import (
                ModelRequest,
                ModelResponse,
                SystemPromptPart,
                TextPart,
                UserPromptPart,
            )
        except ImportError as exc:
            raise ImportError("to_pydantic_ai() needs pydantic-ai: pip install pydantic-ai-slim") from exc
        result: list[ModelMessage] = []
        request_parts: list[Any] = []
        for message in self.messages:
            if message["role"] == "assistant":
                if request_parts:
                    result.append(ModelRequest(parts=request_parts))
                    request_parts = []
                result.append(ModelResponse(parts=[TextPart(content=message["content"])]))
            elif message["role"] == "system":
                request_parts.append(SystemPromptPart(content=message["content"]))
            else:
                request_parts.append(UserPromptPart(content=message["content"]))
        if request_parts:
            result.append(ModelRequest(parts=request_parts))
        return result

    def to_openai(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for OpenAI's ``client.chat.completions.create``: messages, model, settings under
        OpenAI's names, tools, ``response_format`` from the output schema (see ``promptlane.adapters``)."""
        return adapters.to_openai(self.messages, self._spec, **overrides)

    def to_openai_responses(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for OpenAI's ``client.responses.create``: instructions, input, tools, ``text.format``
        from the output schema, ``max_output_tokens``."""
        return adapters.to_openai_responses(self.messages, self._spec, **overrides)

    def to_anthropic(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for Anthropic's ``client.messages.create``: system, messages, tools, ``max_tokens``
        (the version's or ``promptlane.adapters.ANTHROPIC_MAX_TOKENS``)."""
        return adapters.to_anthropic(self.messages, self._spec, **overrides)

    def to_langchain(self) -> list[BaseMessage]:
        """The messages as LangChain message objects; braces in the text are safe (imports langchain_core)."""
        return adapters.to_langchain(self.messages)

    def agent(self, *, tools: Mapping[str, Any] | None = None, **overrides: Any) -> Agent[None, Any]:
        """A pydantic-ai ``Agent`` with the version's model, instructions, history, settings, tools (bound to
        the functions in ``tools``, by name) and output type; ``overrides`` replace ``Agent`` arguments.

        Raises:
            ValueError: a tool of the version has no function in ``tools``.
        """
        return adapters.agent(self.messages, self._spec, tools=tools or {}, **overrides)

    def __repr__(self) -> str:
        return f"RenderedPrompt(name={self.name!r}, version={self.version!r}, messages={self.messages!r})"


class Prompt:
    """A resolved prompt version: its frozen spec, how it was resolved, and ``render``.

    ``source`` says what answered: ``registry`` (fetched now), ``cache`` (in-process cache, fresh), ``stale``
    (in-process, older than the TTL: the server has not answered since), ``disk`` (the snapshot of a server's
    prompts, read while it is down) or ``fallback``.
    """

    __slots__ = ("_compiled", "_record", "label", "source")

    def __init__(self, record: PromptVersion, *, label: str | None, source: str, limits: RenderLimits) -> None:
        self._record = record
        self.label = label
        """The label it was resolved through, or None when fetched by version."""
        self.source = source
        """``registry``, ``cache`` or ``fallback``."""
        self._compiled: CompiledPrompt = compile_prompt(
            name=record.name,
            version=record.number,
            content_hash=record.content_hash,
            spec=record.spec,
            limits=limits,
        )

    @property
    def name(self) -> str:
        """The prompt's name."""
        return self._record.name

    @property
    def version(self) -> int | None:
        """The version number (None for a fallback)."""
        return self._record.number

    @property
    def content_hash(self) -> str:
        """sha256 of the version's canonical content."""
        return self._record.content_hash

    @property
    def spec(self) -> Mapping[str, Any]:
        """The whole frozen spec."""
        return self._record.spec

    @property
    def limits(self) -> RenderLimits:
        """The render limits this prompt renders under (the registry's)."""
        return self._compiled.limits

    @property
    def description(self) -> str | None:
        """What the prompt is for."""
        return self._record.spec.get("description")

    @property
    def model(self) -> str | None:
        """The pydantic-ai model string the version declares."""
        return self._record.spec.get("model")

    @property
    def model_settings(self) -> dict[str, Any]:
        """The version's model settings."""
        return dict(self._record.spec.get("model_settings") or {})

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools offered to the model: ``{"name", "description", "parameters"}``."""
        return [
            {"name": tool["name"], "description": tool.get("description", ""),
             "parameters": tool.get("parameters", {"type": "object", "properties": {}})}
            for tool in self._record.spec.get("tools") or ()
        ]  # fmt: skip

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """JSON Schema of structured output, if any."""
        return self._record.spec.get("output_schema")

    @property
    def variables(self) -> dict[str, Any]:
        """The variables schema."""
        return dict(self._record.spec.get("variables") or {})

    @property
    def record(self) -> PromptVersion:
        """The stored version (message, author, time)."""
        return self._record

    @property
    def created_at(self) -> datetime | None:
        """When the version was pushed."""
        return self._record.created_at

    def render(self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any) -> RenderedPrompt:
        """Render with ``variables`` (a mapping, keywords, or both), after checking them against the schema.

        Also puts the prompt's name, version and label on the current span.

        Raises:
            VariableError: a variable is missing, unknown, of the wrong type or not in its enum.
            TemplateSecurityError: the template reached for internals or went over a render limit.
            TemplateRenderError: anything else the template raised.
        """
        record = self._record
        messages = self._compiled.render({**variables, **kwargs} if variables else kwargs)
        set_prompt_attributes(record.name, record.number, self.label)
        return RenderedPrompt(record.name, record.number, self.label, messages, spec=record.spec)

    def render_messages(self, variables: Mapping[str, Any]) -> list[dict[str, str]]:
        """The rendered messages, checked like ``render`` but leaving spans alone (for the eval harness, whose
        case spans already carry the prompt)."""
        return self._compiled.render(variables)

    @contextmanager
    def use(self) -> Iterator[Prompt]:
        """Within the block, the prompt's name, version and label are in OTel baggage, so every span started
        inside carries them when ``promptlane.otel.PromptSpanProcessor`` is installed.

        Baggage propagates: an instrumented HTTP client sends it to every service it calls (the W3C ``baggage``
        header), a model provider's API included. ``PROMPTLANE_BAGGAGE=off`` keeps the prompt out of it (the
        block then changes nothing; ``render`` still puts the prompt on the current span).
        """
        if os.environ.get("PROMPTLANE_BAGGAGE", "").strip().lower() in ("off", "false", "0"):
            yield self
            return
        with prompt_baggage(self._record.name, self._record.number, self.label):
            yield self

    def __repr__(self) -> str:
        return f"Prompt(name={self.name!r}, version={self.version!r}, label={self.label!r}, source={self.source!r})"
