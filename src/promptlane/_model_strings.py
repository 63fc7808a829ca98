"""Model strings: ``provider:name`` (a provider pydantic-ai knows, or an OpenAI-compatible endpoint the config
declares), ``test``, or ``python:module:function``.

Checked wherever a model is named (prompt and scenario files, ``--model``, the config's ``judge_model`` and
``gate_model``) without importing pydantic-ai: the configuration and the SDK are loaded without it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MODEL_PROVIDERS", "OpenAIEndpoint", "check_model", "declare_providers"]

# The provider prefixes pydantic-ai's `infer_model` makes a model of (its `infer_provider_class` and the branches of
# `infer_model`), and the upstreams of its `gateway/` prefix, in every supported release (2.62 to 2.68: 2.68 added
# `google-decisions`). A static copy: checking a prompt file must not import pydantic-ai (1.4 s, and the SDK is
# installed without it). tests/test_spec.py checks the installed pydantic-ai's are all here, on the newest and
# the oldest supported release (`make test-oldest`).
MODEL_PROVIDERS: tuple[str, ...] = (
    "alibaba", "anthropic", "azure", "azure-responses", "bedrock", "bedrock-mantle", "cerebras", "cohere", "crusoe",
    "deepseek", "fireworks", "github", "github-copilot", "google", "google-cloud", "google-decisions", "groq",
    "heroku", "huggingface", "litellm", "meta", "mistral", "moonshotai", "nebius", "ollama", "openai", "openai-chat",
    "openai-chatgpt", "openai-codex", "openai-decisions", "openai-responses", "openrouter", "ovhcloud", "sambanova",
    "snowflake", "system-one", "together", "typesafe", "vercel", "vllm", "xai", "zai",
    "gateway/anthropic", "gateway/bedrock", "gateway/chat", "gateway/converse", "gateway/google",
    "gateway/google-cloud", "gateway/groq", "gateway/openai", "gateway/openai-chat", "gateway/openai-responses",
    "gateway/responses",
)  # fmt: skip

# Model families by the start of their names, for the provider to suggest when a model string has none
# (`gpt-4o-mini` -> `openai:gpt-4o-mini`). tests/test_spec.py checks them against pydantic-ai's known models.
_MODEL_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4-", "openai"),
    ("claude-", "anthropic"), ("gemini-", "google"), ("mistral-", "mistral"), ("magistral-", "mistral"),
    ("codestral-", "mistral"), ("ministral-", "mistral"), ("pixtral-", "mistral"), ("command-", "cohere"),
    ("grok-", "xai"), ("deepseek-", "deepseek"),
)  # fmt: skip

# Model strings that are not `provider:name`, so no endpoint may take their names either.
RESERVED_PROVIDERS: tuple[str, ...] = ("test", "python")


@dataclass(frozen=True, kw_only=True)
class OpenAIEndpoint:
    """An OpenAI-compatible server the config declares (``[tool.promptlane.providers.NAME]``), so that
    ``NAME:model-id`` names a model it serves (Ollama, vLLM, a LiteLLM proxy, OpenRouter...)."""

    name: str
    """The provider name model strings start with."""
    base_url: str
    """The API's base URL, up to and including ``/v1`` (``http://localhost:11434/v1``)."""
    api_key_env: str | None = None
    """The environment variable holding the API key; None for servers that take none (a placeholder is sent)."""
    protocol: Literal["chat", "responses"] = "chat"
    """``chat`` (Chat Completions, what compatible servers speak) or ``responses`` (OpenAI's Responses API)."""


# The endpoint names the project's config declares (`load_settings` sets them): prompt and scenario files are
# checked where no settings are at hand.
_declared: frozenset[str] = frozenset()


def declare_providers(names: Iterable[str]) -> None:
    """Accept ``names`` as providers in model strings from now on (in place of those declared before)."""
    global _declared
    _declared = frozenset(names)


_PYTHON_MODEL = re.compile(r"^python:[\w.]+:[\w.]+$")
_FORMS = "provider:name (like 'openai:gpt-4o-mini'), 'test' or 'python:module:function'"


def check_model(model: str) -> str:
    """``model`` if it is a model string promptlane can run; ValueError saying what is wrong otherwise.

    A model string is a pydantic-ai one (``provider:name``, with a provider pydantic-ai knows or one the config
    declares), ``test``, or ``python:module:function``. Only the provider is checked: model names change faster
    than any list of them.
    """
    if not model.strip():
        raise ValueError("must not be empty")
    if model == "test":
        return model
    if model.startswith("python:"):
        if not _PYTHON_MODEL.match(model):
            raise ValueError(f"{model!r} is not python:module:function (like python:examples.support.model:respond)")
        return model
    provider, colon, name = model.partition(":")
    if not colon:
        family = next((owner for start, owner in _MODEL_FAMILIES if model.startswith(start)), None)
        if family is not None:
            raise ValueError(f"model {model!r} has no provider: did you mean {f'{family}:{model}'!r}?")
        raise ValueError(f"model {model!r} has no provider: write {_FORMS}")
    if provider not in MODEL_PROVIDERS and provider not in _declared:
        close = difflib.get_close_matches(provider, (*MODEL_PROVIDERS, *_declared), n=1)
        if close:
            raise ValueError(f"unknown provider {provider!r}: did you mean {close[0]!r}?")
        common = "openai, anthropic, google, groq, mistral, bedrock, ..."
        raise ValueError(f"unknown provider {provider!r}: not one of pydantic-ai's ({common})")
    if not name.strip():
        raise ValueError(f"model {model!r} names no model after the provider")
    return model
