"""Eval runs and their cases.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pl_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("prompt_id", sa.Integer, sa.ForeignKey("pl_prompts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("label", sa.String(63)),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("cases", sa.Integer, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("errored", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_pl_runs_prompt_version", "pl_runs", ["prompt_id", "version"])
    op.create_table(
        "pl_run_cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("pl_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scenario", sa.String(255), nullable=False),
        sa.Column("case_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_pl_run_cases_run_status", "pl_run_cases", ["run_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_pl_run_cases_run_status", table_name="pl_run_cases")
    op.drop_table("pl_run_cases")
    op.drop_index("ix_pl_runs_prompt_version", table_name="pl_runs")
    op.drop_table("pl_runs")
