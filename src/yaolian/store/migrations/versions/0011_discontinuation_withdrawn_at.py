"""Discontinuation reports (停产报告) keep when they were withdrawn (production resumes), so a
risk assessed as of an earlier day still counts them: ``withdrawn_us`` replaces the flag.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``withdrawn_us``; a report withdrawn before counts as withdrawn when it was filed."""
    with op.batch_alter_table("supply_discontinuation") as batch:
        batch.add_column(sa.Column("withdrawn_us", sa.BigInteger(), nullable=True))
    op.execute("UPDATE supply_discontinuation SET withdrawn_us = filed_us WHERE withdrawn")
    with op.batch_alter_table("supply_discontinuation") as batch:
        batch.drop_column("withdrawn")


def downgrade() -> None:
    """Back to the flag (when a report was withdrawn is lost)."""
    with op.batch_alter_table("supply_discontinuation") as batch:
        batch.add_column(
            sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE supply_discontinuation SET withdrawn = withdrawn_us IS NOT NULL")
    with op.batch_alter_table("supply_discontinuation") as batch:
        batch.drop_column("withdrawn_us")
