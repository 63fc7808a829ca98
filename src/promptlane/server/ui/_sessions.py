"""Web UI sessions: what the login cookie holds, how long it lasts, and the CSRF value bound to it.

Logging in with an API token starts a session: the browser gets a random session id (HttpOnly, SameSite=Strict),
never the token; the registry keeps the id's sha256 with the token it stands for (``pl_ui_sessions``), so every
server process, and a restarted one, knows it. A session ends at logout, when its token is revoked, after
``idle`` without a request, and ``lifetime`` after the login whatever happens.

The CSRF value of a session is an HMAC of its id: a page gets it in its forms, another site cannot compute it
(the id never leaves the cookie), and a value from another session does not match.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...registry.store import TokenRecord
from ...registry.tokens import hash_secret
from ..state import state

__all__ = ["SESSION", "SessionPolicy", "end_session", "policy", "resume_session", "session_csrf", "start_session"]

SESSION = "promptlane_session"
"""The cookie that holds the session id."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(kw_only=True)
class SessionPolicy:
    """How long web UI sessions last. The app uses :data:`DEFAULT_POLICY` unless ``app.state.ui_sessions``
    holds another one."""

    lifetime: timedelta = timedelta(hours=12)
    """How long a session lasts after the login, used or not."""
    idle: timedelta = timedelta(hours=2)
    """How long a session lasts without a request."""
    touch_every: timedelta = timedelta(minutes=1)
    """How stale the recorded last use may get before a request writes it again (a write per request would
    cost every page a database write)."""
    clock: Callable[[], datetime] = field(default=_utc_now)
    """The current time (UTC); tests give a fake one."""


DEFAULT_POLICY = SessionPolicy()


def policy(request: Request) -> SessionPolicy:
    """The session policy of the app serving ``request``."""
    chosen = getattr(request.app.state, "ui_sessions", None)
    return chosen if isinstance(chosen, SessionPolicy) else DEFAULT_POLICY


def _store(request: Request) -> Any:
    return state(request).registry.store  # a SQL store: the session methods are not part of the Store protocol


async def start_session(request: Request, token: TokenRecord) -> str:
    """A new session for ``token``: its id, for the cookie (the registry keeps only its hash)."""
    rules = policy(request)
    session_id = secrets.token_urlsafe(32)
    started = rules.clock()
    store = _store(request)
    await run_in_threadpool(
        lambda: store.create_ui_session(
            hash_secret(session_id), token.id, created_at=started, expires_at=started + rules.lifetime
        )
    )
    return session_id


async def resume_session(request: Request, session_id: str) -> TokenRecord | None:
    """The token of the session ``session_id`` while it lasts (not logged out, not expired, not idle too long,
    its token not revoked); None otherwise, and an ended session's row is dropped."""
    rules = policy(request)
    store = _store(request)
    digest = hash_secret(session_id)
    session = await run_in_threadpool(store.ui_session, digest)
    if session is None:
        return None
    at = rules.clock()
    if not session.token.active or at >= session.expires_at or at >= session.seen_at + rules.idle:
        await run_in_threadpool(store.delete_ui_session, digest)
        return None
    if at - session.seen_at >= rules.touch_every:
        await run_in_threadpool(lambda: store.touch_ui_session(digest, seen_at=at))
    return session.token


async def end_session(request: Request, session_id: str) -> None:
    """Log out: the session's id stops working on every server process at once."""
    await run_in_threadpool(_store(request).delete_ui_session, hash_secret(session_id))


def session_csrf(session_id: str) -> str:
    """The CSRF value bound to the session ``session_id``."""
    return hmac.new(session_id.encode(), b"promptlane web UI csrf", hashlib.sha256).hexdigest()
