"""Alembic environment: migrations always run on a connection handed over by promptlane.registry.migrate."""

from alembic import context

from promptlane.registry.tables import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
