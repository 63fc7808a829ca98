"""The registry: versions, labels and rollouts in a store, and the Registry that applications and the CLI use."""

from .prompt import Prompt, RenderedPrompt
from .registry import PushResult, Registry, parse_ref
from .store import LabelEvent, LabelState, PromptSummary, PromptVersion, Store, format_target

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
