"""promptlane: prompt management with evaluation built in.

Applications need two names::

    from promptlane import Registry

    prompt = Registry().get("support/reply", label="production")
    rendered = prompt.render(customer="Ana", ticket="Where is my order?")

Everything is imported lazily, so ``import promptlane`` costs next to nothing; the registry imports its store
(SQLAlchemy) on first use, and nothing on the get/render path imports pydantic-ai or an HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from .errors import (
    ApprovalError,
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
    "ApprovalError",
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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
