"""promptlane: prompt management with evaluation built in.

Applications need two names::

    from promptlane import Registry

    prompt = Registry().get("support/reply", label="production")
    rendered = prompt.render(customer="Ana", ticket="Where is my order?")

Everything is imported lazily, so ``import promptlane`` costs next to nothing; the registry imports its store
(SQLAlchemy) on first use, and nothing on the get/render path imports pydantic-ai or an HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_names
from .errors import (
    ApprovalError,
    AuthError,
    ConfigError,
    IncludeError,
    LabelError,
    MissingExtraError,
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

    __version__: str

_VERSION_NOT_INSTALLED = "0+unknown"
"""``__version__`` when promptlane runs from a source tree that is not installed (no package metadata)."""

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
    "MissingExtraError",
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


_lazy_getattr, __dir__ = lazy_names(__name__, _LAZY, __all__)


def __getattr__(name: str) -> Any:
    # ``__version__`` is read from the installed package's metadata on first use: importing importlib.metadata
    # costs more than importing promptlane.
    if name != "__version__":
        return _lazy_getattr(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version(__name__)
    except PackageNotFoundError:
        value = _VERSION_NOT_INSTALLED
    globals()["__version__"] = value
    return value
