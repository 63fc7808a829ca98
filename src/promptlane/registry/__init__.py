"""The registry: versions, labels and rollouts in a store, and the Registry that applications and the CLI use.

Names are imported on first use, so a submodule (``promptlane.registry.wire``, ``.tokens``) can be imported
without the Registry, its templates and Jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
