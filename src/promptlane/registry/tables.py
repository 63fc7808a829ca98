"""The registry's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The DDL history lives in ``migrations/``; ``tests/test_migrations.py`` checks that the migrated schema
matches these definitions.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "label_events",
    "label_requests",
    "labels",
    "metadata",
    "prompts",
    "run_cases",
    "runs",
    "tokens",
    "ui_sessions",
    "versions",
]

HEAD_REVISION = "0007"
"""The newest migration; a store whose schema is older is upgraded on open."""
VERSION_TABLE = "pl_alembic_version"
"""Alembic's bookkeeping table, prefixed so it cannot clash with an application's own Alembic."""

metadata = MetaData()

prompts = Table(
    "pl_prompts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

versions = Table(
    "pl_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", Integer, ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("message", Text),
    Column("author", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("prompt_id", "number", name="uq_pl_versions_number"),
    UniqueConstraint("prompt_id", "content_hash", name="uq_pl_versions_hash"),
)

labels = Table(
    "pl_labels",
    metadata,
    Column("prompt_id", Integer, ForeignKey("pl_prompts.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("target", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(255)),
)

label_events = Table(
    "pl_label_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", Integer, ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("from_target", Text),
    Column("to_target", Text, nullable=False),
    Column("actor", String(255)),
    Column("reason", Text),
    Column("gate", String(16)),
    Column("undoes", Integer),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("evidence", String(32)),
    Column("requested_by", String(255)),
    Column("requested_at", DateTime(timezone=True)),
    Index("ix_pl_label_events_prompt_label", "prompt_id", "label"),
)

label_requests = Table(
    "pl_label_requests",
    metadata,
    # A move of a label that needs a second person (require_approval): pending until approved or rejected.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", Integer, ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("from_target", Text),
    Column("after_event", Integer),
    Column("to_target", Text, nullable=False),
    Column("reason", Text),
    Column("requested_by", String(255)),
    Column("requester", String(255), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("evidence", String(32)),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(255)),
    Column("decided_at", DateTime(timezone=True)),
    Column("decision", Text),
    Column("event_id", Integer),
    Index("ix_pl_label_requests_prompt_status", "prompt_id", "status"),
)

runs = Table(
    "pl_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("prompt_id", Integer, ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("label", String(63)),
    Column("model", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("trace_id", String(32)),
    Column("cases", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("errored", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("created_by", String(255)),
    Column("details", Text, nullable=False),
    # Refreshed by the process running the run; a `running` run whose heartbeat is older than the lease is dead.
    Column("heartbeat_at", DateTime(timezone=True)),
    Index("ix_pl_runs_prompt_version", "prompt_id", "version"),
)

run_cases = Table(
    "pl_run_cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("pl_runs.id", ondelete="CASCADE"), nullable=False),
    Column("scenario", String(255), nullable=False),
    Column("case_key", String(255), nullable=False),
    Column("status", String(8), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_pl_run_cases_run_status", "run_id", "status"),
)

tokens = Table(
    "pl_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False),
    Column("scopes", String(255), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(255)),
    # Names stay taken after a revoke, so a name in an audit trail or a log always means one token.
    UniqueConstraint("name", name="uq_pl_tokens_name"),
    UniqueConstraint("secret_hash", name="uq_pl_tokens_secret_hash"),
)

ui_sessions = Table(
    "pl_ui_sessions",
    metadata,
    # The sha256 of the session id the browser holds (as for tokens: a copy of the database logs nobody in).
    Column("id_hash", String(64), primary_key=True),
    Column("token_id", Integer, ForeignKey("pl_tokens.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_pl_ui_sessions_expires_at", "expires_at"),
)
