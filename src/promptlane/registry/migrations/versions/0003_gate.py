"""The evidence of gated label moves: the run that justified each one.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pl_label_events") as batch:
        batch.add_column(sa.Column("evidence", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("pl_label_events") as batch:
        batch.drop_column("evidence")
