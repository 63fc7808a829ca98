"""promptlane's extras: which modules each brings, and the error that says the ``pip install`` line.

``pip install promptlane`` is the SDK and the authoring CLI. The harness (``eval``), the server (``server``),
PostgreSQL (``postgres``) and the pydantic-evals bridge (``pydantic-evals``) are extras: a command or an import
that needs a missing one raises :class:`~promptlane.errors.MissingExtraError` naming the line to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

from .errors import MissingExtraError

__all__ = ["install_line", "missing_extra", "needs", "require"]

# The top-level modules of each extra's distributions that promptlane imports.
MODULES: dict[str, tuple[str, ...]] = {
    "eval": ("pydantic_ai", "opentelemetry"),
    "server": ("starlette", "uvicorn", "multipart"),
    "postgres": ("psycopg",),
    "pydantic-evals": ("pydantic_evals",),
}
_EXTRA_OF = {module: extra for extra, modules in MODULES.items() for module in modules}
_EXTRA_OF["python_multipart"] = "server"


def install_line(extra: str) -> str:
    return f"pip install 'promptlane[{extra}]'"


def _error(purpose: str, extra: str, module: str) -> MissingExtraError:
    message = f"{purpose} needs promptlane's {extra!r} extra ({module} is not installed): {install_line(extra)}"
    return MissingExtraError(message, extra=extra)


def require(extra: str, purpose: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported (without importing it)."""
    for module in MODULES[extra]:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module with __spec__ None
            found = False
        if not found:
            raise _error(purpose, extra, module)


def missing_extra(exc: ImportError, purpose: str) -> MissingExtraError | None:
    """The extra a failed import belongs to, as the error to raise instead; None for any other import error."""
    if isinstance(exc, MissingExtraError):
        return exc
    module = (getattr(exc, "name", None) or "").partition(".")[0]
    extra = _EXTRA_OF.get(module)
    return None if extra is None else _error(purpose, extra, module)


@contextmanager
def needs(purpose: str) -> Iterator[None]:
    """Imports inside that fail for a missing extra raise :class:`MissingExtraError` for ``purpose``."""
    try:
        yield
    except ImportError as exc:
        translated = missing_extra(exc, purpose)
        if translated is None or translated is exc:
            raise
        raise translated from exc
