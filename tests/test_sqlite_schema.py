"""A new local registry made with the standard library is the registry the migrations make: the same
``sqlite_master``, the same journal mode, the tables ``tables.py`` declares; and many processes making one at
once, through either store, end with one schema and gap-free versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from promptlane.config import Settings
from promptlane.errors import RegistryUnavailableError
from promptlane.registry import Registry, tables
from promptlane.registry.sql import SQLStore
from promptlane.registry.sqlite_schema import HEAD_REVISION, create_sqlite_registry
from promptlane.registry.sqlite_store import SQLiteStore, open_sqlite_store


def _schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return {
            "objects": conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall(),
            "journal": conn.execute("PRAGMA journal_mode").fetchall(),
            "revision": conn.execute("SELECT * FROM pl_alembic_version").fetchall(),
        }
    finally:
        conn.close()


def test_it_is_the_schema_the_migrations_make(tmp_path: Path) -> None:
    """Fails when a migration is added and sqlite_schema.STATEMENTS is not brought up to date with it."""
    migrated, made = tmp_path / "migrated.db", tmp_path / "made.db"
    SQLStore(f"sqlite:///{migrated}").close()

    assert create_sqlite_registry(made, busy_timeout=5) is True

    assert _schema(made) == _schema(migrated)
    assert _schema(made)["journal"] == [("wal",)]
    assert HEAD_REVISION == tables.HEAD_REVISION


def test_its_tables_are_the_declared_ones(tmp_path: Path) -> None:
    made = tmp_path / "made.db"
    create_sqlite_registry(made, busy_timeout=5)
    engine = create_engine(f"sqlite:///{made}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": tables.VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, tables.metadata) == []
    engine.dispose()
    SQLStore(f"sqlite:///{made}").close()  # the SQL store finds it current: nothing to migrate


def test_a_new_registry_is_opened_without_the_sql_store(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    with Registry(settings=settings) as registry:
        assert isinstance(registry.store, SQLiteStore)
        assert registry.push_spec("greet", {"template": "Hi"}).version.number == 1
    folder = tmp_path / ".promptlane"
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    with Registry(settings=settings) as again:
        assert again.store.latest_number("greet") == 1


def test_it_writes_nothing_over_a_file_that_holds_anything(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database")

    assert create_sqlite_registry(other, busy_timeout=5) is False
    assert open_sqlite_store(f"sqlite:///{other}") is None  # the SQL store's to judge, as before
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("delete",)]  # its own mode, left as it was
    conn.close()
    assert open_sqlite_store(f"sqlite:///{junk}") is None
    assert junk.read_bytes() == b"not a database"


def test_an_empty_file_is_made_a_registry(tmp_path: Path) -> None:
    empty = tmp_path / "registry.db"
    empty.touch()  # what a process that died right after connecting leaves
    store = open_sqlite_store(f"sqlite:///{empty}")
    assert isinstance(store, SQLiteStore)
    store.close()
    assert _schema(empty)["revision"] == [(HEAD_REVISION,)]


def test_a_file_locked_while_it_is_made_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process making it, and stuck
    try:
        with pytest.raises(RegistryUnavailableError, match="is unavailable: database is locked"):
            open_sqlite_store(f"sqlite:///{path}", busy_timeout=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = open_sqlite_store(f"sqlite:///{path}")  # once it is let go, made as usual
    assert isinstance(store, SQLiteStore)
    store.close()


def test_an_uncreatable_folder_is_an_outage(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RegistryUnavailableError, match="cannot create the registry folder"):
        open_sqlite_store(f"sqlite:///{blocker / 'sub' / 'registry.db'}")


@pytest.mark.slow
@pytest.mark.serial  # eight processes at once: a load of their own, run apart from the parallel tests
def test_eight_processes_making_one_registry_through_both_stores(tmp_path: Path) -> None:
    from test_sqlite_store import push_at_once

    path = tmp_path / "registry.db"
    assert push_at_once(f"sqlite:///{path}", 8, 3) == list(range(1, 8 * 3 + 1))
    reference = tmp_path / "reference.db"
    create_sqlite_registry(reference, busy_timeout=5)
    assert _schema(path) == _schema(reference)
