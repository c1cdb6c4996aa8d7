"""Scheduled subscriptions (EPCIS ``schedule`` and ``reportIfEmpty``): a subscription runs its
query at the query times of its schedule instead of streaming each new event.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the schedule, reportIfEmpty and next query time of a subscription."""
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(sa.Column("schedule", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(
            sa.Column("report_if_empty", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("next_run_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Back to streams only (scheduled subscriptions are dropped)."""
    op.execute("DELETE FROM subscription WHERE next_run_us IS NOT NULL")
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("next_run_us")
        batch.drop_column("report_if_empty")
        batch.drop_column("schedule")
