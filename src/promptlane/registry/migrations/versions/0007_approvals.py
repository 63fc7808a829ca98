"""Two people for a protected move: pending label moves, and the requester of an approved one in the audit log.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pl_label_events") as batch:
        batch.add_column(sa.Column("requested_by", sa.String(255)))
        batch.add_column(sa.Column("requested_at", sa.DateTime(timezone=True)))
    op.create_table(
        "pl_label_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_target", sa.Text),
        sa.Column("after_event", sa.Integer),
        sa.Column("to_target", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("requested_by", sa.String(255)),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision", sa.Text),
        sa.Column("event_id", sa.Integer),
    )
    op.create_index("ix_pl_label_requests_prompt_status", "pl_label_requests", ["prompt_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_pl_label_requests_prompt_status", table_name="pl_label_requests")
    op.drop_table("pl_label_requests")
    with op.batch_alter_table("pl_label_events") as batch:
        batch.drop_column("requested_at")
        batch.drop_column("requested_by")
