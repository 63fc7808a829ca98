"""Helpers shared by the SQL store's modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from ..errors import RegistryUnavailableError

__all__ = ["now", "unavailable", "utc"]

P = ParamSpec("P")
R = TypeVar("R")


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(timezone.utc)


def utc(value: datetime) -> datetime:
    """``value`` as UTC: SQLite hands back naive datetimes, and everything promptlane writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def unavailable(method: Callable[P, R]) -> Callable[P, R]:
    """Map connection-level database errors to RegistryUnavailableError, naming the registry."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            store: Any = args[0]
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise RegistryUnavailableError(f"registry {store.display_url} is unavailable: {reason}") from exc

    return wrapper
