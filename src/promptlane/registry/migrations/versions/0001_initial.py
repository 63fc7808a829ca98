"""Prompts, versions, labels and the label audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pl_prompts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pl_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("prompt_id", "number", name="uq_pl_versions_number"),
        sa.UniqueConstraint("prompt_id", "content_hash", name="uq_pl_versions_hash"),
    )
    op.create_table(
        "pl_labels",
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("pl_prompts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255)),
    )
    op.create_table(
        "pl_label_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_target", sa.Text),
        sa.Column("to_target", sa.Text, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("reason", sa.Text),
        sa.Column("gate", sa.String(16)),
        sa.Column("undoes", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pl_label_events_prompt_label", "pl_label_events", ["prompt_id", "label"])


def downgrade() -> None:
    op.drop_index("ix_pl_label_events_prompt_label", table_name="pl_label_events")
    op.drop_table("pl_label_events")
    op.drop_table("pl_labels")
    op.drop_table("pl_versions")
    op.drop_table("pl_prompts")
