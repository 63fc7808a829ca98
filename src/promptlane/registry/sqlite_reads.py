"""Reads of a local SQLite registry through the standard library, so a command that only reads never imports
SQLAlchemy (about a third of `promptlane list`'s start-up).

:class:`SQLiteReads` answers the prompt, version, label and audit-log reads with ``sqlite3`` and the same
queries the SQL store makes; everything else (writes, runs, tokens, migrations) goes to the :class:`SQLStore`,
opened on first need. It is used for a file whose schema is current (one cheap query) or a new one, made by
:mod:`.sqlite_schema`; the SQL store stays the one place that migrates a registry. ``tests/test_sqlite_reads.py``
runs the same reads against both and compares them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, RegistryUnavailableError
from . import sqlite_fork
from .sqlite_schema import HEAD_REVISION, create_sqlite_registry
from .store import MAX_VERSION, LabelEvent, LabelState, PromptSummary, PromptVersion, target_from_json

__all__ = ["SQLiteReads", "open_sqlite_reads"]


_IDLE = 4
"""Connections kept open between reads (more threads reading at once open more, closed when returned)."""
_VERSION = "v.number, v.content_hash, v.spec, v.message, v.author, v.created_at"


def _time(text: str) -> datetime:
    """A time as the SQL store writes it (UTC, without an offset)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def open_sqlite_reads(url: str, *, busy_timeout: float = 30.0) -> SQLiteReads | None:
    """Reads for the SQLite file of ``url``, made a registry first if it is missing or empty; None when the SQL
    store must open it (an older schema, ``:memory:``, a file that is not a registry or cannot be made one).

    Raises:
        RegistryUnavailableError: the file is locked by another connection for longer than ``busy_timeout``, or
            its folder cannot be made.
    """
    path = url.removeprefix("sqlite:///")
    if not url.startswith("sqlite:///") or not path or path.startswith(":memory:") or "?" in path:
        return None
    if "%" in path:  # SQLAlchemy reads `a%20b.db` as `a b.db`: one file for both stores, the SQL store's reading
        return None
    file = Path(path)
    try:
        new = not file.is_file() or file.stat().st_size == 0
    except OSError:  # removed meanwhile
        new = True
    if new:
        try:
            create_sqlite_registry(file, busy_timeout=busy_timeout)
        except sqlite3.Error as exc:
            if _busy(exc):
                raise RegistryUnavailableError(f"registry {url} is unavailable: {exc}") from exc
            return None  # cannot be opened or written: the SQL store says why, as it always has
    reads = SQLiteReads(url, path, busy_timeout=busy_timeout)
    try:
        [revision] = reads._rows("SELECT version_num FROM pl_alembic_version") or [(None,)]
    except RegistryUnavailableError as exc:
        reads.close()
        if isinstance(exc.__cause__, sqlite3.DatabaseError) and not _busy(exc.__cause__):
            return None  # not a registry yet (no table), or not a database: the SQL store says which
        raise  # locked or unreadable: an outage, not a reason to wait again through the SQL store
    if revision[0] != HEAD_REVISION:
        reads.close()
        return None
    return reads


def _busy(exc: BaseException) -> bool:
    """The database is there but another connection holds it (``database is locked``)."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


class SQLiteReads:
    """A Store for a local SQLite registry: reads through ``sqlite3``, the rest through the SQL store."""

    def __init__(self, url: str, path: str, *, busy_timeout: float = 30.0) -> None:
        self.url = url
        self.display_url = url
        self._path = path
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._lent = 0  # connections in use (a read, a write, an atomic() block)
        self._lock = threading.Lock()  # the pool
        self._forking = False  # the pool's lock is held across a fork
        self._store_lock = threading.Lock()  # opening the SQL store, which may migrate: reads go on meanwhile
        self._full: Any = None
        self.sqlite_file = os.path.realpath(path)
        sqlite_fork.watch(self)

    # --- plumbing -----------------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one read, from a small pool: threads come and go (a server's worker threads), and
        a connection each would hold three files (the database, its WAL, its shared memory) for as long as the
        registry is open."""
        sqlite_fork.refuse_if_inherited(self.sqlite_file)
        with self._lock:
            conn = self._idle.pop() if self._idle else None
            self._lent += 1
        try:
            if conn is None:
                # Autocommit between reads, so each read sees every committed write; a writer holding the lock
                # never blocks a reader (WAL), and a busy database is waited on as the SQL store does.
                conn = sqlite3.connect(
                    self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
            yield conn
        finally:
            with self._lock:
                self._lent -= 1
                if conn is not None and len(self._idle) < _IDLE and not conn.in_transaction:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    # --- fork (sqlite_fork) ---------------------------------------------------------------------------------

    def before_fork(self) -> None:
        """Close the idle connections, holding the store's locks until the fork is done (a child must not inherit
        one taken by a thread that is not there: opening the SQL store, or taking a connection)."""
        self._store_lock.acquire()
        self._lock.acquire()
        self._forking = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def after_fork_in_parent(self) -> None:
        if self._forking:
            self._forking = False
            self._lock.release()
            self._store_lock.release()

    def after_fork_in_child(self) -> bool:
        held = self._lent > 0
        self._lent = 0  # the threads that held them are not in this process
        self.after_fork_in_parent()
        return held

    def _rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._read([(query, args)])[0]

    def _read(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """The rows of each query, all read in one transaction (one snapshot of the database)."""
        try:
            with self._connection() as conn:
                if len(queries) == 1:
                    return [conn.execute(*queries[0]).fetchall()]
                conn.execute("BEGIN")
                try:
                    return [conn.execute(query, args).fetchall() for query, args in queries]
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RegistryUnavailableError(f"registry {self.display_url} is unavailable: {reason}") from exc

    def _store(self) -> Any:
        """The SQL store, for everything these reads do not cover."""
        with self._store_lock:
            if self._full is None:
                from .sql import SQLStore

                self._full = SQLStore(self.url)
            return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._store(), name)

    def close(self) -> None:
        """Release connections (and the SQL store's, if it was opened)."""
        with self._lock:
            connections, self._idle = self._idle, []
        with self._store_lock:
            full, self._full = self._full, None
        for conn in connections:
            conn.close()
        if full is not None:
            full.close()

    def _prompt_id(self, name: str) -> int:
        rows = self._rows("SELECT id FROM pl_prompts WHERE name = ?", name)
        if not rows:
            raise NotFoundError(f"no prompt named {name!r}")
        return rows[0][0]

    # --- prompts and versions -----------------------------------------------------------------------------

    def list_prompts(self) -> list[PromptSummary]:
        rows, label_rows = self._read(
            [
                (
                    "SELECT p.id, p.name, v.number, v.created_at, v.spec FROM pl_prompts p "
                    "JOIN (SELECT prompt_id, max(number) AS latest FROM pl_versions GROUP BY prompt_id) n "
                    "ON n.prompt_id = p.id "
                    "JOIN pl_versions v ON v.prompt_id = p.id AND v.number = n.latest ORDER BY p.name",
                    (),
                ),
                ("SELECT prompt_id, name, target FROM pl_labels", ()),
            ]
        )
        by_prompt: dict[int, dict[str, dict[int, int]]] = {}
        for prompt_id, label, target in label_rows:
            by_prompt.setdefault(prompt_id, {})[label] = target_from_json(target) or {}
        return [
            PromptSummary(
                name=name,
                latest=number,
                updated_at=_time(created_at),
                description=json.loads(spec).get("description"),
                labels=dict(sorted(by_prompt.get(prompt_id, {}).items())),
            )
            for prompt_id, name, number, created_at, spec in rows
        ]

    @staticmethod
    def _version(name: str, row: tuple[Any, ...]) -> PromptVersion:
        number, content_hash, spec, message, author, created_at = row
        return PromptVersion(
            name=name,
            number=number,
            content_hash=content_hash,
            spec=json.loads(spec),
            message=message,
            author=author,
            created_at=_time(created_at),
        )

    def get_version(self, name: str, number: int) -> PromptVersion:
        if not 1 <= number <= MAX_VERSION:
            raise NotFoundError(f"prompt {name!r} has no version {number}")
        rows = self._rows(
            f"SELECT {_VERSION} FROM pl_versions v JOIN pl_prompts p ON p.id = v.prompt_id "
            "WHERE p.name = ? AND v.number = ?",
            name,
            number,
        )
        if not rows:
            self._prompt_id(name)  # a NotFoundError for the prompt itself reads better
            raise NotFoundError(f"prompt {name!r} has no version {number}")
        return self._version(name, rows[0])

    def latest_number(self, name: str) -> int:
        prompt_id = self._prompt_id(name)
        [(number,)] = self._rows("SELECT max(number) FROM pl_versions WHERE prompt_id = ?", prompt_id)
        if number is None:
            raise NotFoundError(f"prompt {name!r} has no versions")
        return number

    def list_versions(self, name: str) -> list[PromptVersion]:
        prompt_id = self._prompt_id(name)
        rows = self._rows(f"SELECT {_VERSION} FROM pl_versions v WHERE v.prompt_id = ? ORDER BY v.number", prompt_id)
        return [self._version(name, row) for row in rows]

    # --- labels -------------------------------------------------------------------------------------------

    @staticmethod
    def _label(name: str, row: tuple[Any, ...]) -> LabelState:
        label, target, updated_at, updated_by = row
        return LabelState(
            prompt=name,
            label=label,
            target=target_from_json(target) or {},
            updated_at=_time(updated_at),
            updated_by=updated_by,
        )

    def get_label(self, name: str, label: str) -> LabelState:
        rows = self._rows(
            "SELECT l.name, l.target, l.updated_at, l.updated_by FROM pl_labels l "
            "JOIN pl_prompts p ON p.id = l.prompt_id WHERE p.name = ? AND l.name = ?",
            name,
            label,
        )
        if not rows:
            self._prompt_id(name)
            raise NotFoundError(f"prompt {name!r} has no label {label!r}")
        return self._label(name, rows[0])

    def list_labels(self, name: str) -> list[LabelState]:
        prompt_id = self._prompt_id(name)
        rows = self._rows(
            "SELECT name, target, updated_at, updated_by FROM pl_labels WHERE prompt_id = ? ORDER BY name", prompt_id
        )
        return [self._label(name, row) for row in rows]

    def label_events(self, name: str, label: str | None = None) -> Sequence[LabelEvent]:
        prompt_id = self._prompt_id(name)
        query = (
            "SELECT id, label, kind, from_target, to_target, actor, reason, gate, undoes, at, evidence, "
            "requested_by, requested_at FROM pl_label_events WHERE prompt_id = ?"
        )
        args: list[Any] = [prompt_id]
        if label is not None:
            query += " AND label = ?"
            args.append(label)
        return [
            LabelEvent(
                id=event_id,
                prompt=name,
                label=event_label,
                kind=kind,
                from_target=target_from_json(from_target),
                to_target=target_from_json(to_target) or {},
                actor=actor,
                reason=reason,
                gate=gate,
                undoes=undoes,
                at=_time(at),
                evidence=evidence,
                requested_by=requested_by,
                requested_at=_time(requested_at) if requested_at else None,
            )
            for (
                event_id,
                event_label,
                kind,
                from_target,
                to_target,
                actor,
                reason,
                gate,
                undoes,
                at,
                evidence,
                requested_by,
                requested_at,
            ) in self._rows(query + " ORDER BY id", *args)
        ]
