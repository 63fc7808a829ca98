"""A local SQLite registry on the standard library: the reads of :class:`~.sqlite_reads.SQLiteReads`, and the
writes ``promptlane eval`` and ``promptlane push`` make (versions, runs and their cases), so that neither imports
SQLAlchemy (a fifth of a one-case eval's process) once the registry exists with a current schema.

Every statement is the one the SQL store makes, on the same columns, with values written as SQLAlchemy writes
them (times as ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC); ``tests/test_sqlite_store.py`` makes the same writes through
both and compares the tables row for row. A write takes the database's write lock up front (``BEGIN
IMMEDIATE``), as the SQL store's do, so version numbers stay gap-free while both write to one file.

Everything else (label moves and approvals, tokens, sessions, the run listings that settle runs whose process
died) goes to the SQL store, opened on first need. A transaction belongs to one of the two, since a write on the
other's connection would wait for the lock it holds: inside :meth:`SQLiteStore.atomic` only this store's own
methods may be called (anything else is refused), and inside a transaction of the SQL store (``locked``, around a
label move) this store's writes are made by the SQL store.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar

from .._canonical import canonical_json
from ..errors import NotFoundError, RegistryError, RegistryUnavailableError
from . import sqlite_fork
from .runs import LEASE_EXPIRED, CaseResult, RunRecord, case_inserts
from .sqlite_reads import SQLiteReads, open_sqlite_reads
from .store import LostRace, PromptVersion

__all__ = ["SQLiteStore", "open_sqlite_store"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_PUSH_ATTEMPTS = 10
_PAGE = 500
_VERSION_COLUMNS = "number, content_hash, spec, message, author, created_at"
_RUN_COUNTS = "status, reason, finished_at, trace_id, cases, passed, failed, errored, cost_usd, details"


def open_sqlite_store(url: str, *, busy_timeout: float = 30.0) -> SQLiteStore | None:
    """The store for the SQLite file of ``url``, or None when the SQL store must open it (a new file, an older
    schema, ``:memory:``, or a file that is not a registry): see :func:`~.sqlite_reads.open_sqlite_reads`.

    Raises:
        RegistryUnavailableError: the file is locked by another connection for longer than ``busy_timeout``.
    """
    reads = open_sqlite_reads(url, busy_timeout=busy_timeout)
    if reads is None:
        return None
    reads.close()  # its one connection, which checked the schema
    return SQLiteStore(url, url.removeprefix("sqlite:///"), busy_timeout=busy_timeout)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(value: datetime | None) -> str | None:
    """A time as SQLAlchemy writes it to SQLite: its digits, without the offset (promptlane writes UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"a time must be a datetime, not {type(value).__name__}")
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unavailable(method: Callable[P, R]) -> Callable[P, R]:
    """Map connection-level database errors to RegistryUnavailableError naming the registry, as the SQL store's
    methods do."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.InterfaceError) as exc:
            store: Any = args[0]
            raise RegistryUnavailableError(f"registry {store.display_url} is unavailable: {_reason(exc)}") from exc

    return wrapper


class SQLiteStore(SQLiteReads):
    """A Store for a local SQLite registry: reads, pushes and runs through ``sqlite3``, the rest through the SQL
    store."""

    def __init__(self, url: str, path: str, *, busy_timeout: float = 30.0) -> None:
        super().__init__(url, path, busy_timeout=busy_timeout)
        self._batch = threading.local()  # the connection of this thread's atomic() block, if in one

    # --- transactions -------------------------------------------------------------------------------------

    def _bound(self) -> sqlite3.Connection | None:
        """The connection of this thread's atomic() block, if in one (refused in a process forked inside it)."""
        bound = getattr(self._batch, "conn", None)
        if bound is not None:
            sqlite_fork.refuse_if_forked(self._batch.pid, self.display_url)
        return bound

    def _sql_transaction(self) -> Any:
        """The SQL store, when this thread is inside one of its transactions (``locked``, around a label move):
        a write of this store would wait for the lock that transaction holds, so it is made there instead."""
        full = self._full
        if full is not None and getattr(full._batch, "conn", None) is not None:
            return full
        return None

    def __getattr__(self, name: str) -> Any:
        if self.__dict__.get("_batch") is not None and self._bound() is not None:
            # The SQL store's write would wait for the write lock this thread's transaction holds.
            raise RuntimeError(f"{name} cannot be part of a transaction of the local SQLite store")
        return super().__getattr__(name)

    def _read(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        bound = self._bound()
        if bound is None:
            return super()._read(queries)
        try:  # inside atomic(): read what the transaction wrote so far
            return [bound.execute(query, args).fetchall() for query, args in queries]
        except sqlite3.Error as exc:
            raise RegistryUnavailableError(f"registry {self.display_url} is unavailable: {_reason(exc)}") from exc

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A write transaction on ``conn``, holding the database's write lock from its start: committed when the
        block ends, rolled back when it raises."""
        pid = os.getpid()
        conn.execute("PRAGMA foreign_keys=ON")  # as the SQL store's connections (a no-op once on)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if os.getpid() == pid and conn.in_transaction:  # a forked child leaves the parent's transaction alone
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        sqlite_fork.refuse_if_forked(pid, self.display_url)  # nor commits it
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        bound = self._bound()
        if bound is not None:  # inside atomic(): part of its transaction
            yield bound
            return
        with self._connection() as conn, self._transaction(conn):
            yield conn

    @_unavailable
    def atomic(self, work: Callable[[], T]) -> T:
        """``work()``, every read and write it makes through this store (in this thread) in one transaction:
        when it returns, all of it is stored; when it raises, none of it. Only this store's own methods may be
        called inside.

        Raises:
            RegistryUnavailableError: it lost the race for a version number every time.
        """
        if self._bound() is not None:
            return work()  # nested: part of the outer transaction
        if (sql := self._sql_transaction()) is not None:
            return sql.atomic(work)
        for attempt in range(_PUSH_ATTEMPTS):
            try:
                with self._connection() as conn, self._transaction(conn):
                    self._batch.conn, self._batch.pid = conn, os.getpid()
                    try:
                        return work()
                    finally:
                        self._batch.conn = None
            except LostRace:
                time.sleep(0.01 * (attempt + 1))
            except sqlite3.IntegrityError as exc:  # a constraint or trigger refused it
                raise RegistryError(f"could not store the batch: {_reason(exc)}") from exc
        raise RegistryUnavailableError("could not store the batch: too much contention, try again")

    # --- versions -----------------------------------------------------------------------------------------

    @staticmethod
    def _prompt_row(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM pl_prompts WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no prompt named {name!r}")
        return row[0]

    @_unavailable
    def push_version(
        self,
        name: str,
        spec: Mapping[str, Any],
        content_hash: str,
        *,
        message: str | None,
        author: str | None,
    ) -> tuple[PromptVersion, bool]:
        """Store a version, numbered next; if one with ``content_hash`` exists, return it. (version, created)."""
        if (sql := self._sql_transaction()) is not None:
            return sql.push_version(name, spec, content_hash, message=message, author=author)
        spec_json = canonical_json(spec)
        for attempt in range(_PUSH_ATTEMPTS):
            try:
                return self._push_once(name, spec_json, content_hash, message=message, author=author)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE constraint failed" not in str(exc):  # a constraint or trigger refused it
                    raise RegistryError(f"could not store a version of {name!r}: {_reason(exc)}") from exc
                if self._bound() is not None:
                    raise LostRace from exc  # the transaction is the batch's: atomic() runs it again
                time.sleep(0.01 * (attempt + 1))
        raise RegistryUnavailableError(f"could not store a version of {name!r}: too much contention, try again")

    def _push_once(
        self, name: str, spec_json: str, content_hash: str, *, message: str | None, author: str | None
    ) -> tuple[PromptVersion, bool]:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO pl_prompts (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, _stamp(_now()))
            )
            prompt_id = self._prompt_row(conn, name)
            existing = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM pl_versions WHERE prompt_id = ? AND content_hash = ?",
                (prompt_id, content_hash),
            ).fetchone()
            if existing is not None:
                return self._version(name, existing), False
            [(newest,)] = conn.execute("SELECT max(number) FROM pl_versions WHERE prompt_id = ?", (prompt_id,))
            number = (newest or 0) + 1
            created_at = _now()
            conn.execute(
                "INSERT INTO pl_versions (prompt_id, number, content_hash, spec, message, author, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (prompt_id, number, content_hash, spec_json, message, author, _stamp(created_at)),
            )
        version = PromptVersion(
            name=name,
            number=number,
            content_hash=content_hash,
            spec=json.loads(spec_json),
            message=message,
            author=author,
            created_at=created_at,
        )
        return version, True

    # --- runs ---------------------------------------------------------------------------------------------

    @staticmethod
    def _counts(record: RunRecord) -> tuple[Any, ...]:
        """The values of :data:`_RUN_COUNTS`."""
        return (
            record.status,
            record.reason,
            _stamp(record.finished_at),
            record.trace_id,
            record.cases,
            record.passed,
            record.failed,
            record.errored,
            record.cost_usd,
            json.dumps(record.details(), default=str),
        )

    @_unavailable
    def create_run(self, record: RunRecord) -> None:
        """Store a new run (status ``running``); its lease starts now."""
        if (sql := self._sql_transaction()) is not None:
            return sql.create_run(record)
        with self._write() as conn:
            prompt_id = self._prompt_row(conn, record.prompt)
            conn.execute(
                "INSERT INTO pl_runs (id, prompt_id, version, label, model, started_at, created_by, heartbeat_at, "
                f"{_RUN_COUNTS}) VALUES ({', '.join(['?'] * 18)})",
                (
                    record.id,
                    prompt_id,
                    record.version,
                    record.label,
                    record.model,
                    _stamp(record.started_at),
                    record.created_by,
                    _stamp(_now()),
                    *self._counts(record),
                ),
            )

    @staticmethod
    def _beat(conn: sqlite3.Connection, run_id: str) -> int:
        """Refresh a run's heartbeat: the rows touched. A run a reader took for dead is ``running`` again."""
        return conn.execute(
            "UPDATE pl_runs SET heartbeat_at = ?, status = 'running', reason = NULL, finished_at = NULL "
            "WHERE id = ? AND (status = 'running' OR (status = 'interrupted' AND reason = ?))",
            (_stamp(_now()), run_id, LEASE_EXPIRED),
        ).rowcount

    @_unavailable
    def heartbeat_run(self, run_id: str) -> None:
        """Say that the process running ``run_id`` is alive (a finished run is left as it is).

        Raises:
            NotFoundError: there is no run ``run_id`` (the whole id).
        """
        if (sql := self._sql_transaction()) is not None:
            return sql.heartbeat_run(run_id)
        with self._write() as conn:
            if self._beat(conn, run_id):
                return
            if conn.execute("SELECT id FROM pl_runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise NotFoundError(f"no run {run_id!r}")

    @_unavailable
    def add_cases(self, run_id: str, cases: Sequence[CaseResult]) -> None:
        """Append finished cases to a run, in one transaction (which also refreshes its heartbeat)."""
        if not cases:
            return
        if (sql := self._sql_transaction()) is not None:
            return sql.add_cases(run_id, cases)
        inserts = list(case_inserts("pl_run_cases", "?", run_id, cases))  # encoded before the transaction starts
        with self._write() as conn:
            for statement, parameters in inserts:
                conn.execute(statement, parameters)
            self._beat(conn, run_id)

    @_unavailable
    def update_run(self, record: RunRecord) -> None:
        """Save a run's status, tallies and end."""
        if (sql := self._sql_transaction()) is not None:
            return sql.update_run(record)
        assignments = ", ".join(f"{column.strip()} = ?" for column in _RUN_COUNTS.split(","))
        with self._write() as conn:
            conn.execute(
                f"UPDATE pl_runs SET heartbeat_at = ?, {assignments} WHERE id = ?",
                (_stamp(_now()), *self._counts(record), record.id),
            )

    def _case_page(self, run_id: str, after: int, statuses: Sequence[str] | None) -> list[tuple[Any, ...]]:
        query = "SELECT id, data FROM pl_run_cases WHERE run_id = ? AND id > ?"
        args: list[Any] = [run_id, after]
        if statuses:
            query += f" AND status IN ({', '.join(['?'] * len(statuses))})"
            args += statuses
        return self._rows(query + " ORDER BY id LIMIT ?", *args, _PAGE)

    def _pages(self, run_id: str, statuses: Sequence[str] | None = None) -> Iterator[str]:
        after = 0
        while True:
            page = self._case_page(run_id, after, statuses)
            for _, data in page:
                yield data
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def run_cases(self, run_id: str, *, statuses: Sequence[str] | None = None) -> Iterator[CaseResult]:
        """A run's cases (of ``statuses``) in the order they finished, read a page at a time."""
        return (CaseResult.from_json(json.loads(data)) for data in self._pages(run_id, statuses))

    def case_texts(self, run_id: str) -> Iterator[str]:
        """A run's cases in the order they finished, each the JSON text stored, read a page at a time."""
        return self._pages(run_id)
