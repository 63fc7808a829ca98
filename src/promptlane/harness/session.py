"""What `promptlane eval` and `pytest --prompt-evals` share: choosing the version of each prompt to evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from ..registry import Prompt, Registry

__all__ = ["resolve_versions"]


def resolve_versions(
    registry: Registry, names: Sequence[str], *, version: int | None = None, label: str | None = None
) -> dict[str, Prompt]:
    """The version of each prompt to evaluate: the one given (``version`` or ``label``, for a single prompt),
    or else the prompt files on disk, pushed first so that every run refers to a real version.

    Raises:
        ConfigError: a version or label for several prompts at once.
        NotFoundError: a prompt with no file on disk (and no version or label given), or an unknown version.
    """
    if version is not None or label is not None:
        if len(names) != 1:
            raise ConfigError(
                f"scenarios target several prompts ({', '.join(names)}): a version or label needs one of them"
            )
        return {names[0]: registry.get(names[0], version=version, label=None if version is not None else label)}
    pushed = {result.name: result for result in registry.push(message="pushed to evaluate")}
    versions = {}
    for name in names:
        if name not in pushed:
            raise NotFoundError(
                f"no prompt file for {name!r} under {registry.settings.prompts_dir} (or give a version or a label)"
            )
        versions[name] = registry.get(name, version=pushed[name].version.number)
    return versions
