"""Web UI sessions in the SQL store: a row per logged-in browser, found by the sha256 of its session id.

The browser holds a random session id, never the API token it logged in with; the registry holds the id's hash,
the token and the session's times. Every server process reads the same rows, so a logout or a revoked token
ends the session on all of them at once, and a restart keeps people logged in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from ._sqlbase import unavailable, utc
from .store import TokenRecord
from .tables import tokens, ui_sessions
from .tokens import check_secret_hash

__all__ = ["SQLSessions", "UISession"]


@dataclass(frozen=True, kw_only=True)
class UISession:
    """A web UI session as the registry keeps it (never the session id, only its sha256)."""

    token: TokenRecord
    """The token the person logged in with: its scopes apply, and revoking it ends the session."""
    created_at: datetime
    """When the person logged in (UTC)."""
    seen_at: datetime
    """When the session was last used, to the minute or so (UTC): it ends after a while without use."""
    expires_at: datetime
    """When it ends, used or not (UTC)."""


class SQLSessions:
    """The web UI session methods of SQLStore (it provides ``_read``, ``_write`` and ``_token``)."""

    def _read(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _write(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    @staticmethod
    def _token(row: Row[Any]) -> TokenRecord: ...  # pragma: no cover - provided by SQLTokens

    @unavailable
    def create_ui_session(self, id_hash: str, token_id: int, *, created_at: datetime, expires_at: datetime) -> None:
        """Store a session by the sha256 of its id; sessions that ended before ``created_at`` are dropped."""
        check_secret_hash(id_hash)
        with self._write() as conn:
            conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at <= created_at))
            conn.execute(
                ui_sessions.insert().values(
                    id_hash=id_hash, token_id=token_id, created_at=created_at, seen_at=created_at, expires_at=expires_at
                )
            )

    @unavailable
    def ui_session(self, id_hash: str) -> UISession | None:
        """The session whose id hashes to ``id_hash`` and its token (active or revoked: check), or None."""
        query = (
            select(tokens, ui_sessions.c.created_at.label("session_created_at"), ui_sessions.c.seen_at,
                   ui_sessions.c.expires_at)
            .join(tokens, tokens.c.id == ui_sessions.c.token_id)
            .where(ui_sessions.c.id_hash == id_hash)
        )  # fmt: skip
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return UISession(
            token=self._token(row),
            created_at=utc(row.session_created_at),
            seen_at=utc(row.seen_at),
            expires_at=utc(row.expires_at),
        )

    @unavailable
    def touch_ui_session(self, id_hash: str, *, seen_at: datetime) -> None:
        """Record that the session was used at ``seen_at``."""
        with self._write() as conn:
            conn.execute(ui_sessions.update().where(ui_sessions.c.id_hash == id_hash).values(seen_at=seen_at))

    @unavailable
    def delete_ui_session(self, id_hash: str) -> bool:
        """End a session (a logout); whether there was one."""
        with self._write() as conn:
            return bool(conn.execute(ui_sessions.delete().where(ui_sessions.c.id_hash == id_hash)).rowcount)
