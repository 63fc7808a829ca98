"""A new local SQLite registry, made with the standard library: the schema the migrations reach, written in one
transaction, so that the first ``promptlane eval`` in a fresh clone imports neither SQLAlchemy nor Alembic (a
third of its process).

:data:`STATEMENTS` is the DDL as SQLite records it after ``migrations/`` run to :data:`HEAD_REVISION`, statement
for statement; ``tests/test_sqlite_schema.py`` makes a registry each way and compares their ``sqlite_master``
(and the tables with ``tables.py``), so a new migration fails that test until this is brought up to date. The
migrations stay the one way an older registry is upgraded.
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from pathlib import Path

from ..errors import RegistryUnavailableError

__all__ = ["HEAD_REVISION", "STATEMENTS", "create_sqlite_registry", "make_registry_folder"]

HEAD_REVISION = "0007"
"""The migration these statements reach; ``tests/test_sqlite_schema.py`` checks it is ``tables.HEAD_REVISION``."""

STATEMENTS = (
    "CREATE TABLE pl_alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\t"
    "CONSTRAINT pl_alembic_version_pkc PRIMARY KEY (version_num)\n)",
    "CREATE TABLE pl_prompts (\n\tid INTEGER NOT NULL, \n\tname VARCHAR(255) NOT NULL, \n\t"
    "created_at DATETIME NOT NULL, \n\tPRIMARY KEY (id), \n\tUNIQUE (name)\n)",
    "CREATE TABLE pl_versions (\n\tid INTEGER NOT NULL, \n\tprompt_id INTEGER NOT NULL, \n\t"
    "number INTEGER NOT NULL, \n\tcontent_hash VARCHAR(64) NOT NULL, \n\tspec TEXT NOT NULL, \n\t"
    "message TEXT, \n\tauthor VARCHAR(255), \n\tcreated_at DATETIME NOT NULL, \n\tPRIMARY KEY (id), \n\t"
    "CONSTRAINT uq_pl_versions_number UNIQUE (prompt_id, number), \n\t"
    "CONSTRAINT uq_pl_versions_hash UNIQUE (prompt_id, content_hash), \n\t"
    "FOREIGN KEY(prompt_id) REFERENCES pl_prompts (id) ON DELETE CASCADE\n)",
    "CREATE TABLE pl_labels (\n\tprompt_id INTEGER NOT NULL, \n\tname VARCHAR(63) NOT NULL, \n\t"
    "target TEXT NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tupdated_by VARCHAR(255), \n\t"
    "PRIMARY KEY (prompt_id, name), \n\tFOREIGN KEY(prompt_id) REFERENCES pl_prompts (id) ON DELETE CASCADE\n)",
    "CREATE TABLE pl_label_events (\n\tid INTEGER NOT NULL, \n\tprompt_id INTEGER NOT NULL, \n\t"
    "label VARCHAR(63) NOT NULL, \n\tkind VARCHAR(16) NOT NULL, \n\tfrom_target TEXT, \n\t"
    "to_target TEXT NOT NULL, \n\tactor VARCHAR(255), \n\treason TEXT, \n\tgate VARCHAR(16), \n\t"
    "undoes INTEGER, \n\tat DATETIME NOT NULL, evidence VARCHAR(32), requested_by VARCHAR(255), "
    "requested_at DATETIME, \n\tPRIMARY KEY (id), \n\t"
    "FOREIGN KEY(prompt_id) REFERENCES pl_prompts (id) ON DELETE CASCADE\n)",
    "CREATE INDEX ix_pl_label_events_prompt_label ON pl_label_events (prompt_id, label)",
    "CREATE TABLE pl_runs (\n\tid VARCHAR(32) NOT NULL, \n\tprompt_id INTEGER NOT NULL, \n\t"
    "version INTEGER NOT NULL, \n\tlabel VARCHAR(63), \n\tmodel VARCHAR(255) NOT NULL, \n\t"
    "status VARCHAR(16) NOT NULL, \n\treason TEXT, \n\tstarted_at DATETIME NOT NULL, \n\t"
    "finished_at DATETIME, \n\ttrace_id VARCHAR(32), \n\tcases INTEGER NOT NULL, \n\tpassed INTEGER NOT NULL, \n\t"
    "failed INTEGER NOT NULL, \n\terrored INTEGER NOT NULL, \n\tcost_usd FLOAT NOT NULL, \n\t"
    "created_by VARCHAR(255), \n\tdetails TEXT NOT NULL, heartbeat_at DATETIME, \n\tPRIMARY KEY (id), \n\t"
    "FOREIGN KEY(prompt_id) REFERENCES pl_prompts (id) ON DELETE CASCADE\n)",
    "CREATE INDEX ix_pl_runs_prompt_version ON pl_runs (prompt_id, version)",
    "CREATE TABLE pl_run_cases (\n\tid INTEGER NOT NULL, \n\trun_id VARCHAR(32) NOT NULL, \n\t"
    "scenario VARCHAR(255) NOT NULL, \n\tcase_key VARCHAR(255) NOT NULL, \n\tstatus VARCHAR(8) NOT NULL, \n\t"
    "data TEXT NOT NULL, \n\tPRIMARY KEY (id), \n\tFOREIGN KEY(run_id) REFERENCES pl_runs (id) ON DELETE CASCADE\n)",
    "CREATE INDEX ix_pl_run_cases_run_status ON pl_run_cases (run_id, status)",
    "CREATE TABLE pl_tokens (\n\tid INTEGER NOT NULL, \n\tname VARCHAR(63) NOT NULL, \n\t"
    "scopes VARCHAR(255) NOT NULL, \n\tsecret_hash VARCHAR(64) NOT NULL, \n\tcreated_at DATETIME NOT NULL, \n\t"
    "created_by VARCHAR(255), \n\trevoked_at DATETIME, \n\trevoked_by VARCHAR(255), \n\tPRIMARY KEY (id), \n\t"
    "CONSTRAINT uq_pl_tokens_name UNIQUE (name), \n\tCONSTRAINT uq_pl_tokens_secret_hash UNIQUE (secret_hash)\n)",
    "CREATE TABLE pl_ui_sessions (\n\tid_hash VARCHAR(64) NOT NULL, \n\ttoken_id INTEGER NOT NULL, \n\t"
    "created_at DATETIME NOT NULL, \n\tseen_at DATETIME NOT NULL, \n\texpires_at DATETIME NOT NULL, \n\t"
    "PRIMARY KEY (id_hash), \n\tFOREIGN KEY(token_id) REFERENCES pl_tokens (id) ON DELETE CASCADE\n)",
    "CREATE INDEX ix_pl_ui_sessions_expires_at ON pl_ui_sessions (expires_at)",
    "CREATE TABLE pl_label_requests (\n\tid INTEGER NOT NULL, \n\tprompt_id INTEGER NOT NULL, \n\t"
    "label VARCHAR(63) NOT NULL, \n\tkind VARCHAR(16) NOT NULL, \n\tfrom_target TEXT, \n\tafter_event INTEGER, \n\t"
    "to_target TEXT NOT NULL, \n\treason TEXT, \n\trequested_by VARCHAR(255), \n\t"
    "requester VARCHAR(255) NOT NULL, \n\trequested_at DATETIME NOT NULL, \n\tevidence VARCHAR(32), \n\t"
    "status VARCHAR(16) NOT NULL, \n\tdecided_by VARCHAR(255), \n\tdecided_at DATETIME, \n\tdecision TEXT, \n\t"
    "event_id INTEGER, \n\tPRIMARY KEY (id), \n\t"
    "FOREIGN KEY(prompt_id) REFERENCES pl_prompts (id) ON DELETE CASCADE\n)",
    "CREATE INDEX ix_pl_label_requests_prompt_status ON pl_label_requests (prompt_id, status)",
    f"INSERT INTO pl_alembic_version (version_num) VALUES ('{HEAD_REVISION}')",
)


def make_registry_folder(database: Path) -> None:
    """The folder of a local registry's file, made if missing; promptlane's own ``.promptlane`` folder gets a
    ``.gitignore`` so its registry stays out of version control.

    Raises:
        RegistryUnavailableError: the folder cannot be made.
    """
    folder = database.parent
    if folder.exists():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.name == ".promptlane":
            (folder / ".gitignore").write_text("# promptlane's local registry; not for version control\n*\n")
    except OSError as exc:
        raise RegistryUnavailableError(f"cannot create the registry folder {folder}: {exc.strerror}") from None


def create_sqlite_registry(path: Path, *, busy_timeout: float) -> bool:
    """Make ``path`` a registry at :data:`HEAD_REVISION` if it is missing or an empty database; False (and nothing
    written) when it holds anything already: another process made it first, or it is for the SQL store to judge
    (an older registry, another application's database).

    The write lock is taken before looking (``BEGIN IMMEDIATE``), so of many processes making one registry at
    once, one writes the schema and the others find it, as with the migrations' own lock.

    Raises:
        RegistryUnavailableError: the folder cannot be made, or another connection holds the file locked for
            longer than ``busy_timeout``.
        sqlite3.Error: the file cannot be opened or written, or is not a database (the SQL store then says why,
            naming the registry).
    """
    make_registry_folder(path)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        if _holds_anything(conn):  # looked at before the journal mode changes what is in the file
            return False
        # WAL, as the SQL store sets it: readers never wait for a writer. Stored in the file, and it cannot change
        # inside a transaction; if another process holds the lock now, that process is setting it.
        with suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _holds_anything(conn):  # made by another process while this one waited for the lock
                conn.execute("ROLLBACK")
                return False
            for statement in STATEMENTS:
                conn.execute(statement)
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return True
    finally:
        conn.close()


def _holds_anything(conn: sqlite3.Connection) -> bool:
    [(objects,)] = conn.execute("SELECT count(*) FROM sqlite_master")
    return objects > 0
