"""Alert reviews (预警核查): a regulator's finding on an alert and the accounts (情况说明) of the
enterprises it concerns, kept by the alert's stable key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``alert_review`` and ``alert_response``."""
    op.create_table(
        "alert_review",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("api_key_id", sa.BigInteger(), sa.ForeignKey("api_key.id")),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "alert_response",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column(
            "enterprise_id", sa.BigInteger(), sa.ForeignKey("enterprise.id"), primary_key=True
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    """Drop both tables (the findings and accounts are lost; the alerts stay)."""
    op.drop_table("alert_response")
    op.drop_table("alert_review")
