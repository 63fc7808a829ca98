"""Bringing a store's schema up to date, once, even when many processes open a new registry at once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, column, inspect, select, table, text

from .tables import HEAD_REVISION, VERSION_TABLE

__all__ = ["current_revision", "ensure_schema"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: any constant shared by every promptlane process ("prompt" in ASCII).
_PG_LOCK_KEY = 0x70726F6D7074


def current_revision(conn: Connection) -> str | None:
    """The schema revision recorded in the store, None for an empty store."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(select(column("version_num")).select_from(table(VERSION_TABLE))).scalar()


def ensure_schema(engine: Engine) -> None:
    """Upgrade the store to the newest schema if it is behind; cheap when it is not.

    The upgrade runs inside one write transaction that first takes a lock (SQLite's write lock via
    BEGIN IMMEDIATE, a transaction-level advisory lock on PostgreSQL), so concurrent openers wait and then
    find the work done. Alembic itself is only imported when there is something to do.
    """
    with engine.connect() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
    with engine.connect() as conn:
        conn.execution_options(promptlane_write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            if current_revision(conn) == HEAD_REVISION:
                return
            _upgrade(conn)


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
