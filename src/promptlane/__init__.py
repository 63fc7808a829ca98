"""promptlane: prompt management with evaluation built in.

Applications need two names::

    from promptlane import Registry

    prompt = Registry().get("support/reply", label="production")
    rendered = prompt.render(customer="Ana", ticket="Where is my order?")

Everything is imported lazily, so ``import promptlane`` costs next to nothing; the registry imports its store
(SQLAlchemy) on first use, and nothing on the get/render path imports pydantic-ai or an HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthError,
    ConfigError,
    IncludeError,
    LabelError,
    NotFoundError,
    PromptlaneError,
    RegistryError,
    RegistryUnavailableError,
    SpecError,
    TemplateError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TokenError,
    VariableError,
)

if TYPE_CHECKING:
    from .config import Settings, load_settings
    from .registry import LabelEvent, Prompt, PromptVersion, PushResult, Registry, RenderedPrompt
    from .spec import PromptSpec

__version__ = "0.1.0"

_LAZY = {
    "LabelEvent": ".registry",
    "Prompt": ".registry",
    "PromptSpec": ".spec",
    "PromptVersion": ".registry",
    "PushResult": ".registry",
    "Registry": ".registry",
    "RenderedPrompt": ".registry",
    "Settings": ".config",
    "load_settings": ".config",
}

__all__ = [
    "AuthError",
    "ConfigError",
    "IncludeError",
    "LabelError",
    "LabelEvent",
    "NotFoundError",
    "Prompt",
    "PromptSpec",
    "PromptVersion",
    "PromptlaneError",
    "PushResult",
    "Registry",
    "RegistryError",
    "RegistryUnavailableError",
    "RenderedPrompt",
    "Settings",
    "SpecError",
    "TemplateError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TokenError",
    "VariableError",
    "__version__",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptlane' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
