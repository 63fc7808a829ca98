"""API tokens in the SQL store: a row per token, kept after a revoke, found by the sha256 of its secret."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlalchemy import exc as sa_exc

from ..errors import NotFoundError, TokenError
from ._sqlbase import now, unavailable, utc
from .store import TokenRecord
from .tables import tokens
from .tokens import check_secret_hash, check_token_name, parse_scopes

__all__ = ["SQLTokens"]

# How many numbered alternatives a "name taken" error looks through for one to suggest.
_SUGGESTIONS = 50


def _when(value: datetime) -> str:
    return f"{utc(value):%Y-%m-%d %H:%M} UTC"


def _by(who: str | None) -> str:
    return f" by {who}" if who else ""


class SQLTokens:
    """The token methods of SQLStore (it provides ``_read`` and ``_write``)."""

    def _read(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore
    def _write(self) -> AbstractContextManager[Connection]: ...  # pragma: no cover - provided by SQLStore

    @staticmethod
    def _token(row: Row[Any]) -> TokenRecord:
        return TokenRecord(
            id=row.id,
            name=row.name,
            scopes=frozenset(row.scopes.split(",")),
            created_at=utc(row.created_at),
            created_by=row.created_by,
            revoked_at=utc(row.revoked_at) if row.revoked_at else None,
            revoked_by=row.revoked_by,
        )

    @staticmethod
    def _token_row(conn: Connection, name: str) -> Row[Any] | None:
        return conn.execute(select(tokens).where(tokens.c.name == name)).first()

    def _name_taken(self, conn: Connection, name: str) -> TokenError | None:
        """The error for creating ``name`` again, or None while the name is free."""
        row = self._token_row(conn, name)
        if row is None:
            return None
        if row.revoked_at is None:
            state = f"active, created {_when(row.created_at)}{_by(row.created_by)}"
        else:
            state = f"revoked {_when(row.revoked_at)}{_by(row.revoked_by)}"
        candidates = [f"{name[: 63 - len(f'-{n}')]}-{n}" for n in range(2, 2 + _SUGGESTIONS)]
        used = set(conn.execute(select(tokens.c.name).where(tokens.c.name.in_(candidates))).scalars())
        free = next((candidate for candidate in candidates if candidate not in used), None)
        hint = f"choose another name, like {free!r}" if free else "choose another name"
        return TokenError(f"a token named {name!r} exists ({state}); revoked tokens keep their names: {hint}")

    @unavailable
    def create_token(
        self, name: str, scopes: Collection[str], secret_hash: str, *, created_by: str | None
    ) -> TokenRecord:
        """Store a token by the sha256 of its secret; TokenError if ``name`` is taken, even by a revoked token."""
        check_token_name(name)
        granted = parse_scopes(scopes)
        check_secret_hash(secret_hash)
        row = {
            "name": name,
            "scopes": ",".join(sorted(granted)),
            "secret_hash": secret_hash,
            "created_at": now(),
            "created_by": created_by,
        }
        try:
            with self._write() as conn:
                taken = self._name_taken(conn, name)
                if taken is not None:
                    raise taken
                inserted = conn.execute(tokens.insert().values(**row)).inserted_primary_key
                assert inserted is not None
                token_id = inserted[0]
        except sa_exc.IntegrityError:
            # Another process took the name between the check and the insert (PostgreSQL; SQLite's write lock
            # rules that out), or the secret is not new.
            with self._read() as conn:
                taken = self._name_taken(conn, name)
            if taken is not None:
                raise taken from None
            raise TokenError("a token with this secret exists already: create the token with a new secret") from None
        return TokenRecord(id=token_id, name=name, scopes=granted, created_at=row["created_at"], created_by=created_by)

    @unavailable
    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        with self._read() as conn:
            return [self._token(row) for row in conn.execute(select(tokens).order_by(tokens.c.id))]

    @unavailable
    def revoke_token(self, name: str, *, revoked_by: str | None) -> TokenRecord:
        """Revoke the token ``name``; TokenError if there is none, or it was revoked already."""
        revoked_at = now()
        with self._write() as conn:
            row = self._token_row(conn, name)
            if row is None:
                raise NotFoundError(f"no token named {name!r}")
            # Only an active token is updated, so of two concurrent revokes one wins and the other is told.
            updated = conn.execute(
                tokens.update()
                .where(tokens.c.id == row.id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=revoked_at, revoked_by=revoked_by)
            ).rowcount
            if not updated:
                row = self._token_row(conn, name)
                assert row is not None and row.revoked_at is not None
                raise TokenError(f"token {name!r} was already revoked at {_when(row.revoked_at)}{_by(row.revoked_by)}")
        return replace(self._token(row), revoked_at=revoked_at, revoked_by=revoked_by)

    @unavailable
    def token_by_hash(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``secret_hash``, active or revoked (check ``.active``); None if none."""
        with self._read() as conn:
            row = conn.execute(select(tokens).where(tokens.c.secret_hash == secret_hash)).first()
        return None if row is None else self._token(row)
