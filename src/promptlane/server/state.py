"""What every endpoint reaches: the registry, the answer cache and the token check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ..registry import Registry
from ..registry.store import TokenRecord
from .auth import Auth
from .cache import ServerCache
from .limits import TemplateWork

__all__ = ["ServerState", "actor", "state"]


@dataclass(frozen=True)
class ServerState:
    registry: Registry
    cache: ServerCache
    auth: Auth
    jobs: dict[str, Any] = field(default_factory=dict)
    """Runs started from the web UI in this process, by run id (their progress)."""
    work: TemplateWork = field(default_factory=TemplateWork)
    """The workers that compile and render templates for clients."""


def state(request: Request) -> ServerState:
    return request.app.state.promptlane  # type: ignore[no-any-return]


def actor(request: Request, given: str | None) -> str:
    """Who to record for a change: the name the client gives, and the token that made it."""
    token: TokenRecord | None = getattr(request.state, "token", None)
    if token is None:
        return given or "anonymous"
    return f"{given} (token {token.name})" if given else f"token {token.name}"
