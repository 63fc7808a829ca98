"""The registry: versions, labels and rollouts in a store, and the Registry that applications and the CLI use.

Names are imported on first use, so a submodule (``promptlane.registry.wire``, ``.tokens``) can be imported
without the Registry, its templates and Jinja2.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .prompt import Prompt, RenderedPrompt
    from .registry import PushResult, Registry, parse_ref
    from .store import LabelEvent, LabelState, PromptSummary, PromptVersion, Store, format_target

_LAZY = {
    "LabelEvent": ".store",
    "LabelState": ".store",
    "Prompt": ".prompt",
    "PromptSummary": ".store",
    "PromptVersion": ".store",
    "PushResult": ".registry",
    "Registry": ".registry",
    "RenderedPrompt": ".prompt",
    "Store": ".store",
    "format_target": ".store",
    "parse_ref": ".registry",
}

__all__ = [
    "LabelEvent",
    "LabelState",
    "Prompt",
    "PromptSummary",
    "PromptVersion",
    "PushResult",
    "Registry",
    "RenderedPrompt",
    "Store",
    "format_target",
    "parse_ref",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptlane.registry' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
