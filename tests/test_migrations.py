"""The migrated schema is exactly what tables.py declares, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from promptlane.registry.migrate import current_revision
from promptlane.registry.sql import SQLStore
from promptlane.registry.tables import HEAD_REVISION, VERSION_TABLE, metadata


def test_migrations_match_the_table_definitions(store_url: str) -> None:
    store = SQLStore(store_url)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert current_revision(conn) == HEAD_REVISION
    store.close()


def test_reopening_a_migrated_store_does_not_migrate_again(store_url: str, monkeypatch) -> None:
    SQLStore(store_url).close()
    import promptlane.registry.migrate as migrate

    def fail(conn):  # pragma: no cover - reached only on a regression
        raise AssertionError("migrated twice")

    monkeypatch.setattr(migrate, "_upgrade", fail)
    SQLStore(store_url).close()
