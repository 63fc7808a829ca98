"""Loading ``module:function`` references from scenario files (mocks, evaluators, model functions)."""

from __future__ import annotations

import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["load_callable"]


def load_callable(reference: str, *, what: str, root: Path | None = None) -> Callable[..., Any]:
    """The callable ``module:function`` names (``function`` may be dotted: ``module:Class.method``), resolved by
    :func:`pkgutil.resolve_name`.

    The project root is put on ``sys.path`` first, so ``examples.support.model:respond`` imports the same way
    from the CLI, pytest and a plain ``python``.

    Raises:
        ConfigError: naming ``what`` the reference is for, and why it does not load.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not _dotted_name(module_name) or not _dotted_name(attribute):
        raise ConfigError(f"{reference!r} is not module:function", source=what)
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        target: Any = pkgutil.resolve_name(reference)
    except Exception as exc:  # an import can raise anything; report it, do not crash
        # A module that imported stays in sys.modules: then the attribute is what is missing.
        if isinstance(exc, AttributeError) and module_name in sys.modules:
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r}", source=what) from None
        raise ConfigError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}", source=what) from None
    if not callable(target):
        raise ConfigError(f"{reference!r} is not callable", source=what)
    return target


def _dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))
