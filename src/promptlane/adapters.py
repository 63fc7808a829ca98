"""A rendered prompt as the arguments of the clients applications already use.

Each function takes the rendered messages and the version's spec (model, model settings, tools, output schema)
and returns what one client call takes: keyword arguments for the OpenAI and Anthropic SDKs (plain dicts, so
these two need no import at all), message objects for LangChain, an ``Agent`` for pydantic-ai. Client libraries
are imported only by the function that needs them; a missing one is an ImportError with the ``pip install`` line.

Model settings use pydantic-ai's names (the ones prompt files use) and are mapped to each API's names. Settings
for another provider (``anthropic_*`` when calling OpenAI), settings of the client rather than the request
(``max_retries``, ``request_timeout``, ``first_event_timeout``) and settings the API has no name for (``seed`` on
Anthropic's Messages API, ``stop_sequences`` on OpenAI's Responses API, ...) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from pydantic_ai import Agent

__all__ = ["ANTHROPIC_MAX_TOKENS", "agent", "to_anthropic", "to_langchain", "to_openai", "to_openai_responses"]

ANTHROPIC_MAX_TOKENS = 4096
"""``max_tokens`` sent to Anthropic when the version sets none (the Messages API requires one)."""

Messages = list[dict[str, str]]

# pydantic-ai's setting -> the API's parameter, for the settings each API has.
_OPENAI_CHAT = {
    "max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop",
    "seed": "seed", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "logit_bias": "logit_bias", "parallel_tool_calls": "parallel_tool_calls", "tool_choice": "tool_choice",
    "service_tier": "service_tier", "timeout": "timeout", "extra_headers": "extra_headers", "extra_body": "extra_body",
}  # fmt: skip
_OPENAI_RESPONSES = {
    "max_tokens": "max_output_tokens", "temperature": "temperature", "top_p": "top_p",
    "parallel_tool_calls": "parallel_tool_calls", "tool_choice": "tool_choice", "service_tier": "service_tier",
    "timeout": "timeout", "extra_headers": "extra_headers", "extra_body": "extra_body",
}  # fmt: skip
_ANTHROPIC = {
    "max_tokens": "max_tokens", "stop_sequences": "stop_sequences", "tool_choice": "tool_choice",
    "service_tier": "service_tier", "timeout": "timeout", "extra_headers": "extra_headers", "extra_body": "extra_body",
}  # fmt: skip
# Sampling settings newer Anthropic SDKs no longer name in `create`: sent in the request body, which every
# version accepts.
_ANTHROPIC_BODY = ("temperature", "top_p", "top_k")


def to_openai(messages: Messages, spec: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for OpenAI's ``client.chat.completions.create``.

    Args:
        messages: The rendered messages.
        spec: The version's spec.
        **overrides: Arguments that replace the prompt's (``model=...``, ``temperature=...``).
    """
    kwargs: dict[str, Any] = {"messages": [dict(message) for message in messages]}
    _put_model(kwargs, spec)
    kwargs.update(_settings(spec, _OPENAI_CHAT, "openai"))
    if tools := _tools(spec):
        kwargs["tools"] = [
            {"type": "function", "function": {"name": tool["name"], "description": tool["description"],
             "parameters": tool["parameters"], "strict": _strict_allowed(tool["parameters"])}}
            for tool in tools
        ]  # fmt: skip
    if (schema := spec.get("output_schema")) is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": _strict_allowed(schema)},
        }
    return {**kwargs, **overrides}


def to_openai_responses(messages: Messages, spec: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for OpenAI's ``client.responses.create``: the system messages become ``instructions``,
    the others ``input``.

    Args:
        messages: The rendered messages.
        spec: The version's spec.
        **overrides: Arguments that replace the prompt's.
    """
    kwargs: dict[str, Any] = {}
    _put_model(kwargs, spec)
    system, conversation = _split_system(messages)
    if system:
        kwargs["instructions"] = system
    kwargs["input"] = [{"role": message["role"], "content": message["content"]} for message in conversation]
    kwargs.update(_settings(spec, _OPENAI_RESPONSES, "openai"))
    if tools := _tools(spec):
        kwargs["tools"] = [
            {"type": "function", "name": tool["name"], "description": tool["description"],
             "parameters": tool["parameters"], "strict": _strict_allowed(tool["parameters"])}
            for tool in tools
        ]  # fmt: skip
    if (schema := spec.get("output_schema")) is not None:
        kwargs["text"] = {
            "format": {
                "type": "json_schema",
                "name": _schema_name(schema),
                "schema": schema,
                "strict": _strict_allowed(schema),
            }
        }
    return {**kwargs, **overrides}


def to_anthropic(messages: Messages, spec: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for Anthropic's ``client.messages.create``: the system messages become ``system``;
    ``max_tokens`` is the version's, or ``ANTHROPIC_MAX_TOKENS``.

    Args:
        messages: The rendered messages.
        spec: The version's spec.
        **overrides: Arguments that replace the prompt's.
    """
    kwargs: dict[str, Any] = {"max_tokens": ANTHROPIC_MAX_TOKENS}
    _put_model(kwargs, spec)
    system, conversation = _split_system(messages)
    if system:
        kwargs["system"] = system
    kwargs["messages"] = [{"role": message["role"], "content": message["content"]} for message in conversation]
    kwargs.update(_settings(spec, _ANTHROPIC, "anthropic"))
    settings = spec.get("model_settings") or {}
    if body := {key: settings[key] for key in _ANTHROPIC_BODY if key in settings}:
        kwargs["extra_body"] = {**body, **kwargs.get("extra_body", {})}
    if tools := _tools(spec):
        kwargs["tools"] = [
            {"name": tool["name"], "description": tool["description"], "input_schema": tool["parameters"]}
            for tool in tools
        ]
    if (schema := spec.get("output_schema")) is not None:
        kwargs["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return {**kwargs, **overrides}


def to_langchain(messages: Messages) -> list[BaseMessage]:
    """The messages as LangChain message objects (``SystemMessage``, ``HumanMessage``, ``AIMessage``).

    The text is already rendered: it is not a LangChain template, so braces in it stay as they are.
    """
    try:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    except ImportError as exc:
        raise ImportError("to_langchain() needs LangChain: pip install langchain-core") from exc
    classes = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [classes[message["role"]](content=message["content"]) for message in messages]


def agent(
    messages: Messages, spec: Mapping[str, Any], *, tools: Mapping[str, Callable[..., Any]], **overrides: Any
) -> Agent[None, Any]:
    """A pydantic-ai ``Agent`` for the version: its model, the system messages as instructions, the other
    messages as the history every run starts from, its model settings, its tools (each schema bound to the
    function of that name in ``tools``) and, with an ``output_schema``, a ``StructuredDict`` output type.

    Args:
        messages: The rendered messages.
        spec: The version's spec.
        tools: The function implementing each of the version's tools, by name.
        **overrides: ``Agent`` arguments that replace the prompt's (``model=...``, ``model_settings=...``).

    Raises:
        ValueError: a tool of the version has no function in ``tools``, or ``tools`` names a tool the version
            does not have.
    """
    try:
        from pydantic_ai import Agent, StructuredDict, Tool
        from pydantic_ai.capabilities import ProcessHistory
    except ImportError as exc:
        raise ImportError("agent() needs pydantic-ai: pip install pydantic-ai-slim") from exc
    from .registry.prompt import RenderedPrompt

    declared = _tools(spec)
    missing = [tool["name"] for tool in declared if tool["name"] not in tools]
    if missing:
        raise ValueError(f"no function for the prompt's tool {', '.join(map(repr, missing))}: pass tools={{name: f}}")
    unknown = sorted(set(tools) - {tool["name"] for tool in declared})
    if unknown:
        raise ValueError(f"the prompt has no tool {', '.join(map(repr, unknown))}")
    system, conversation = _split_system(messages)
    history = RenderedPrompt("", None, None, conversation).to_pydantic_ai()

    def start_from_history(run_messages: list[Any]) -> list[Any]:
        # Runs before every request of a run; the history goes in once, at the start.
        if history and (not run_messages or run_messages[0] is not history[0]):
            return [*history, *run_messages]
        return run_messages

    arguments: dict[str, Any] = {
        "model": spec.get("model"),
        "instructions": system or None,
        "model_settings": dict(spec.get("model_settings") or {}) or None,
        "tools": [
            Tool.from_schema(tools[tool["name"]], tool["name"], tool["description"], tool["parameters"])
            for tool in declared
        ],
        "capabilities": [ProcessHistory(start_from_history)],
    }
    if (schema := spec.get("output_schema")) is not None:
        arguments["output_type"] = StructuredDict(schema, name=_schema_name(schema))
    return Agent(**{**arguments, **overrides})


def _put_model(kwargs: dict[str, Any], spec: Mapping[str, Any]) -> None:
    # `openai:gpt-4o` -> `gpt-4o`: the SDKs take the provider's own name.
    model = spec.get("model")
    if model and model != "test" and not model.startswith("python:"):
        kwargs["model"] = model.split(":", 1)[-1]


def _split_system(messages: Messages) -> tuple[str, Messages]:
    system = "\n\n".join(message["content"] for message in messages if message["role"] == "system")
    return system, [message for message in messages if message["role"] != "system"]


def _settings(spec: Mapping[str, Any], names: Mapping[str, str], provider: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in (spec.get("model_settings") or {}).items():
        if key in names:
            result[names[key]] = value
        elif key.startswith(f"{provider}_"):
            result[key.removeprefix(f"{provider}_")] = value
    return result


def _tools(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": tool["name"], "description": tool.get("description", ""),
         "parameters": tool.get("parameters", {"type": "object", "properties": {}})}
        for tool in spec.get("tools") or ()
    ]  # fmt: skip


def _schema_name(schema: Mapping[str, Any]) -> str:
    # OpenAI's names are [a-zA-Z0-9_-]{1,64}.
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "output"))[:64]
    return name or "output"


def _strict_allowed(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts the schema: every object closed (``additionalProperties: false``)
    with all its properties required."""
    if isinstance(schema, list):
        return all(_strict_allowed(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(properties):
            return False
    return all(_strict_allowed(value) for key, value in schema.items() if key not in ("enum", "const", "default"))
