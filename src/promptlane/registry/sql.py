"""The SQL store: SQLAlchemy Core over SQLite (the embedded default) and PostgreSQL.

Version numbers are gap-free under concurrency because a push takes the prompt's write lock before
reading the newest number: SQLite's database lock through ``BEGIN IMMEDIATE``, a ``SELECT ... FOR UPDATE``
on the prompt's row on PostgreSQL. Unique constraints on (prompt, number) and (prompt, hash) back this up,
and a push that loses a race retries. :meth:`SQLStore.atomic` makes a batch (``promptlane push`` of many
files) one transaction: every version of it is stored, or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, Row, create_engine, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from .._canonical import canonical_json
from .._extras import require
from ..errors import ConfigError, NotFoundError, RegistryError, RegistryUnavailableError
from . import sqlite_fork
from ._sqlbase import now, unavailable, utc
from .labels import check_label_name, check_target, rollback_point
from .migrate import ensure_schema
from .sql_requests import SQLRequests
from .sql_run_pages import SQLRunPages
from .sql_runs import SQLRuns
from .sql_sessions import SQLSessions
from .sql_tokens import SQLTokens
from .sqlite_schema import make_registry_folder
from .store import (
    MAX_VERSION,
    LabelEvent,
    LabelState,
    LostRace,
    PromptSummary,
    PromptVersion,
    Target,
    target_from_json,
    target_to_json,
)
from .tables import label_events, labels, prompts, versions

__all__ = ["SQLStore", "normalize_url"]


_PUSH_ATTEMPTS = 10
T = TypeVar("T")


def _lost_race(exc: sa_exc.IntegrityError) -> bool:
    """The unique constraint another writer hit first (worth retrying), not a rule the data broke."""
    orig = exc.orig
    return type(orig).__name__ == "UniqueViolation" or "UNIQUE constraint failed" in str(orig)


def _reason(exc: sa_exc.DBAPIError) -> str:
    text = str(exc.orig).strip() if exc.orig is not None else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every PostgreSQL store's engine, for a forked child to leave their connections to the parent (a SQLite file's
are handled by sqlite_fork)."""
_INHERITED: list[Any] = []
"""The pools a forked child inherited: not used there, and kept so that promptlane never closes their
connections (a close would end the parent's PostgreSQL session, or could checkpoint its SQLite WAL)."""


def _leave_connections_to_the_parent() -> None:
    """In a forked child (gunicorn --preload, multiprocessing): every PostgreSQL engine starts a pool of its own.
    The inherited connections share their sockets with the parent: used here, parent and child would read each
    other's answers."""
    for engine in list(_ENGINES):
        _INHERITED.append(engine.pool)
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_leave_connections_to_the_parent)


def normalize_url(url: str) -> str:
    """``postgresql://`` uses psycopg 3 (the ``postgres`` extra), not SQLAlchemy's default psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SQLStore(SQLRuns, SQLRunPages, SQLTokens, SQLSessions, SQLRequests):
    """A registry store in a SQL database."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
            # Errors show the URL as the user wrote it, without its password.
            self.display_url = make_url(url).render_as_string(hide_password=True)
        except sa_exc.ArgumentError:
            raise ConfigError(f"cannot parse the registry URL {url!r}") from None
        self.dialect = parsed.get_backend_name()
        self.sqlite_file = ""  # a SQLite file's real path (not for an in-memory database)
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.sqlite_file = os.path.realpath(parsed.database)
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(parsed.database, busy_timeout)
        elif self.dialect == "postgresql":
            require("postgres", f"the registry {self.display_url}")
            self.engine = create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        else:
            raise ConfigError(f"unsupported registry URL {self.display_url}: use sqlite:/// or postgresql://")
        if self.dialect == "postgresql":
            _ENGINES.add(self.engine)
        elif self.sqlite_file:  # an in-memory database is the process's own: a child's copy is its own too
            sqlite_fork.watch(self)
        self._batch = threading.local()  # the connection of this thread's atomic() block, if in one
        self._open()

    @unavailable
    def _open(self) -> None:
        ensure_schema(self.engine)

    def _sqlite_engine(self, database: str | None, busy_timeout: float) -> Engine:
        if database and database != ":memory:":
            make_registry_folder(Path(database))
        engine = create_engine(self.url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "do_connect")
        def _refuse_inherited(*_args: Any) -> None:
            if self.sqlite_file:
                sqlite_fork.refuse_if_inherited(self.sqlite_file)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the sqlite3 module, so writes can BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL: readers never wait for a writer. If another process holds the lock right now, it is
            # setting WAL for everyone (the mode is stored in the file).
            with contextlib.suppress(sqlite3.OperationalError):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A write takes the database's write lock up front, so two pushes cannot read the same
            # newest number; readers use a deferred BEGIN and never block.
            write = conn.get_execution_options().get("promptlane_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _bound(self) -> Connection | None:
        """The connection of this thread's atomic() block, if in one (refused in a process forked inside it)."""
        bound = getattr(self._batch, "conn", None)
        if bound is not None:
            sqlite_fork.refuse_if_forked(self._batch.pid, self.display_url)
        return bound

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        bound = self._bound()
        if bound is not None:  # inside atomic(): read what the batch wrote so far
            yield bound
            return
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        bound = self._bound()
        if bound is not None:  # inside atomic(): part of its transaction
            yield bound
            return
        with self.engine.connect() as conn:
            conn.execution_options(promptlane_write=True)
            with conn.begin():
                yield conn

    @unavailable
    def atomic(self, work: Callable[[], T]) -> T:
        """``work()``, every read and write it makes through this store (in this thread) in one transaction:
        when it returns, all of it is stored; when it raises, none of it. Holding the write lock throughout, it
        is retried whole when it loses a race for a version number.

        Raises:
            RegistryUnavailableError: it lost the race every time.
        """
        if self._bound() is not None:
            return work()  # nested: part of the outer transaction
        for attempt in range(_PUSH_ATTEMPTS):
            try:
                return self._atomic_once(work)
            except LostRace:
                time.sleep(0.01 * (attempt + 1))
            except sa_exc.IntegrityError as exc:  # a constraint or trigger of the database refused it
                raise RegistryError(f"could not store the batch: {_reason(exc)}") from exc
        raise RegistryUnavailableError("could not store the batch: too much contention, try again")

    def _atomic_once(self, work: Callable[[], T]) -> T:
        pid = os.getpid()
        conn = self.engine.connect()
        try:
            conn.execution_options(promptlane_write=True)
            transaction = conn.begin()
            self._batch.conn, self._batch.pid = conn, pid
            try:
                result = work()
            finally:
                self._batch.conn = None
            sqlite_fork.refuse_if_forked(pid, self.display_url)  # a child must not commit its parent's transaction
            transaction.commit()
            return result
        finally:
            if os.getpid() == pid:  # closed uncommitted, it is rolled back
                conn.close()
            else:  # a forked child: the parent's, never closed nor collected here (its pool would roll it back)
                _INHERITED.append(conn)

    def locked(self, name: str, work: Callable[[], T]) -> T:
        """``work()`` in one transaction holding prompt ``name``'s write lock (the row's ``FOR UPDATE`` on
        PostgreSQL, the database's write lock on SQLite), so what it reads cannot change before what it writes
        (a label move checks the gate on the target it writes).

        Raises:
            NotFoundError: no prompt named ``name``.
        """

        def under_lock() -> T:
            with self._write() as conn:
                self._prompt_id(conn, name, lock=True)
            return work()

        return self.atomic(under_lock)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # --- fork (sqlite_fork, for a SQLite file) -------------------------------------------------------------

    def before_fork(self) -> None:
        """Close the idle connections, unless one is in use (then the child refuses the file)."""
        if cast(QueuePool, self.engine.pool).checkedout() == 0:
            self.engine.dispose()

    def after_fork_in_parent(self) -> None:
        pass

    def after_fork_in_child(self) -> bool:
        pool = cast(QueuePool, self.engine.pool)  # as it was at the fork: idle ones were closed unless one was in use
        if pool.checkedout() + pool.checkedin() == 0:
            return False
        # Refused from now on (do_connect): the inherited connections stay in their pool, never used nor closed.
        _INHERITED.append(self.engine.pool)
        self.engine.dispose(close=False)
        return True

    # --- prompts and versions -----------------------------------------------------------------------------

    def _prompt_id(self, conn: Connection, name: str, *, lock: bool = False) -> int:
        query = select(prompts.c.id).where(prompts.c.name == name)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        prompt_id = conn.execute(query).scalar()
        if prompt_id is None:
            raise NotFoundError(f"no prompt named {name!r}")
        return prompt_id

    def _ensure_prompt(self, conn: Connection, name: str) -> int:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(prompts).values(name=name, created_at=now()).on_conflict_do_nothing())
        return self._prompt_id(conn, name, lock=True)

    @staticmethod
    def _version(name: str, row: Row[Any]) -> PromptVersion:
        return PromptVersion(
            name=name,
            number=row.number,
            content_hash=row.content_hash,
            spec=json.loads(row.spec),
            message=row.message,
            author=row.author,
            created_at=utc(row.created_at),
        )

    @unavailable
    def list_prompts(self) -> list[PromptSummary]:
        with self._read() as conn:
            newest = (
                select(versions.c.prompt_id, func.max(versions.c.number).label("latest"))
                .group_by(versions.c.prompt_id)
                .subquery()
            )
            rows = conn.execute(
                select(prompts.c.id, prompts.c.name, versions.c.number, versions.c.created_at, versions.c.spec)
                .join(newest, newest.c.prompt_id == prompts.c.id)
                .join(versions, (versions.c.prompt_id == prompts.c.id) & (versions.c.number == newest.c.latest))
                .order_by(prompts.c.name)
            ).all()
            label_rows = conn.execute(select(labels.c.prompt_id, labels.c.name, labels.c.target)).all()
        by_prompt: dict[int, dict[str, dict[int, int]]] = {}
        for row in label_rows:
            by_prompt.setdefault(row.prompt_id, {})[row.name] = target_from_json(row.target) or {}
        return [
            PromptSummary(
                name=row.name,
                latest=row.number,
                updated_at=utc(row.created_at),
                description=json.loads(row.spec).get("description"),
                labels=dict(sorted(by_prompt.get(row.id, {}).items())),
            )
            for row in rows
        ]

    @unavailable
    def get_version(self, name: str, number: int) -> PromptVersion:
        if not 1 <= number <= MAX_VERSION:
            raise NotFoundError(f"prompt {name!r} has no version {number}")
        with self._read() as conn:
            row = conn.execute(
                select(versions)
                .join(prompts, prompts.c.id == versions.c.prompt_id)
                .where(prompts.c.name == name, versions.c.number == number)
            ).first()
            if row is None:
                self._prompt_id(conn, name)  # a NotFoundError for the prompt itself reads better
                raise NotFoundError(f"prompt {name!r} has no version {number}")
        return self._version(name, row)

    @unavailable
    def latest_number(self, name: str) -> int:
        with self._read() as conn:
            prompt_id = self._prompt_id(conn, name)
            number = conn.execute(select(func.max(versions.c.number)).where(versions.c.prompt_id == prompt_id)).scalar()
        if number is None:
            raise NotFoundError(f"prompt {name!r} has no versions")
        return number

    @unavailable
    def list_versions(self, name: str) -> list[PromptVersion]:
        with self._read() as conn:
            prompt_id = self._prompt_id(conn, name)
            rows = conn.execute(
                select(versions).where(versions.c.prompt_id == prompt_id).order_by(versions.c.number)
            ).all()
        return [self._version(name, row) for row in rows]

    @unavailable
    def push_version(
        self,
        name: str,
        spec: Mapping[str, Any],
        content_hash: str,
        *,
        message: str | None,
        author: str | None,
    ) -> tuple[PromptVersion, bool]:
        spec_json = canonical_json(spec)
        for attempt in range(_PUSH_ATTEMPTS):
            try:
                return self._push_once(name, spec_json, content_hash, message=message, author=author)
            except sa_exc.IntegrityError as exc:
                if not _lost_race(exc):  # a constraint or trigger of the database refused it
                    raise RegistryError(f"could not store a version of {name!r}: {_reason(exc)}") from exc
                if self._bound() is not None:
                    raise LostRace from exc  # the transaction is the batch's: atomic() runs it again
                # Another process created the prompt or took the number between our read and insert.
                time.sleep(0.01 * (attempt + 1))
        raise RegistryUnavailableError(f"could not store a version of {name!r}: too much contention, try again")

    def _push_once(
        self, name: str, spec_json: str, content_hash: str, *, message: str | None, author: str | None
    ) -> tuple[PromptVersion, bool]:
        with self._write() as conn:
            prompt_id = self._ensure_prompt(conn, name)
            existing = conn.execute(
                select(versions).where(versions.c.prompt_id == prompt_id, versions.c.content_hash == content_hash)
            ).first()
            if existing is not None:
                return self._version(name, existing), False
            newest = conn.execute(select(func.max(versions.c.number)).where(versions.c.prompt_id == prompt_id)).scalar()
            row = {
                "prompt_id": prompt_id,
                "number": (newest or 0) + 1,
                "content_hash": content_hash,
                "spec": spec_json,
                "message": message,
                "author": author,
                "created_at": now(),
            }
            conn.execute(versions.insert().values(**row))
        return PromptVersion(
            name=name,
            number=row["number"],
            content_hash=content_hash,
            spec=json.loads(spec_json),
            message=message,
            author=author,
            created_at=row["created_at"],
        ), True

    # --- labels -------------------------------------------------------------------------------------------

    @unavailable
    def get_label(self, name: str, label: str) -> LabelState:
        with self._read() as conn:
            row = conn.execute(
                select(labels)
                .join(prompts, prompts.c.id == labels.c.prompt_id)
                .where(prompts.c.name == name, labels.c.name == label)
            ).first()
            if row is None:
                self._prompt_id(conn, name)
                raise NotFoundError(f"prompt {name!r} has no label {label!r}")
        return self._label(name, row)

    @staticmethod
    def _label(name: str, row: Row[Any]) -> LabelState:
        return LabelState(
            prompt=name,
            label=row.name,
            target=target_from_json(row.target) or {},
            updated_at=utc(row.updated_at),
            updated_by=row.updated_by,
        )

    @unavailable
    def list_labels(self, name: str) -> list[LabelState]:
        with self._read() as conn:
            prompt_id = self._prompt_id(conn, name)
            rows = conn.execute(select(labels).where(labels.c.prompt_id == prompt_id).order_by(labels.c.name)).all()
        return [self._label(name, row) for row in rows]

    @unavailable
    def move_label(
        self,
        name: str,
        label: str,
        target: Target,
        *,
        kind: str,
        actor: str | None,
        reason: str | None,
        gate: str | None,
        evidence: str | None = None,
        requested: tuple[str | None, datetime] | None = None,
    ) -> LabelEvent:
        check_label_name(label)
        target = check_target(target)
        with self._write() as conn:
            prompt_id = self._prompt_id(conn, name, lock=True)
            known = set(
                conn.execute(
                    select(versions.c.number).where(
                        versions.c.prompt_id == prompt_id, versions.c.number.in_(list(target))
                    )
                ).scalars()
            )
            missing = sorted(set(target) - known)
            if missing:
                raise NotFoundError(f"prompt {name!r} has no version {', '.join(map(str, missing))}")
            return self._record_move(
                conn, prompt_id, name, label, target, kind, actor, reason, gate, None, evidence, requested
            )

    @unavailable
    def rollback_label(
        self,
        name: str,
        label: str,
        *,
        actor: str | None,
        reason: str | None,
        gate: str | None,
        evidence: str | None = None,
        requested: tuple[str | None, datetime] | None = None,
    ) -> LabelEvent:
        with self._write() as conn:
            prompt_id = self._prompt_id(conn, name, lock=True)
            events = self._events(conn, prompt_id, name, label)
            if not events:
                raise NotFoundError(f"prompt {name!r} has no label {label!r}")
            point = rollback_point(events)
            assert point.from_target is not None
            return self._record_move(
                conn,
                prompt_id,
                name,
                label,
                point.from_target,
                "rollback",
                actor,
                reason,
                gate,
                point.id,
                evidence,
                requested,
            )

    def _record_move(
        self,
        conn: Connection,
        prompt_id: int,
        name: str,
        label: str,
        target: Target,
        kind: str,
        actor: str | None,
        reason: str | None,
        gate: str | None,
        undoes: int | None,
        evidence: str | None = None,
        requested: tuple[str | None, datetime] | None = None,
    ) -> LabelEvent:
        moved_at = now()
        requested_by, requested_at = requested or (None, None)
        current = conn.execute(
            select(labels.c.target).where(labels.c.prompt_id == prompt_id, labels.c.name == label)
        ).scalar()
        values = {"target": target_to_json(target), "updated_at": moved_at, "updated_by": actor}
        if current is None:
            conn.execute(labels.insert().values(prompt_id=prompt_id, name=label, **values))
        else:
            conn.execute(
                labels.update().where(labels.c.prompt_id == prompt_id, labels.c.name == label).values(**values)
            )
        event_row = {
            "prompt_id": prompt_id,
            "label": label,
            "kind": kind,
            "from_target": current,
            "to_target": target_to_json(target),
            "actor": actor,
            "reason": reason,
            "gate": gate,
            "undoes": undoes,
            "at": moved_at,
            "evidence": evidence,
            "requested_by": requested_by,
            "requested_at": requested_at,
        }
        inserted = conn.execute(label_events.insert().values(**event_row)).inserted_primary_key
        assert inserted is not None
        event_id = inserted[0]
        return LabelEvent(
            id=event_id,
            prompt=name,
            label=label,
            kind=kind,
            from_target=target_from_json(current),
            to_target=dict(target),
            actor=actor,
            reason=reason,
            gate=gate,
            undoes=undoes,
            at=moved_at,
            evidence=evidence,
            requested_by=requested_by,
            requested_at=requested_at,
        )

    def _events(self, conn: Connection, prompt_id: int, name: str, label: str | None) -> list[LabelEvent]:
        query = select(label_events).where(label_events.c.prompt_id == prompt_id)
        if label is not None:
            query = query.where(label_events.c.label == label)
        return [
            LabelEvent(
                id=row.id,
                prompt=name,
                label=row.label,
                kind=row.kind,
                from_target=target_from_json(row.from_target),
                to_target=target_from_json(row.to_target) or {},
                actor=row.actor,
                reason=row.reason,
                gate=row.gate,
                undoes=row.undoes,
                at=utc(row.at),
                evidence=row.evidence,
                requested_by=row.requested_by,
                requested_at=utc(row.requested_at) if row.requested_at else None,
            )
            for row in conn.execute(query.order_by(label_events.c.id))
        ]

    @unavailable
    def label_events(self, name: str, label: str | None = None) -> Sequence[LabelEvent]:
        with self._read() as conn:
            return self._events(conn, self._prompt_id(conn, name), name, label)
