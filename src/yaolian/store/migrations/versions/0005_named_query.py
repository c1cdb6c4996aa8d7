"""Named queries (EPCIS 2.0 ``POST /queries``): a saved SimpleEventQuery per owner and name,
and webhook subscriptions that receive a query's new events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the ``named_query`` and ``subscription`` tables."""
    op.create_table(
        "named_query",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("owner", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_named_query")),
        sa.UniqueConstraint("owner", "name", name=op.f("uq_named_query_owner_name")),
    )
    op.create_table(
        "subscription",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("query_id", sa.BigInteger(), nullable=False),
        sa.Column("dest", sa.Text(), nullable=False),
        sa.Column("signature_token", sa.Text(), nullable=True),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("min_record_us", sa.BigInteger(), nullable=True),
        sa.Column("after_event", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("lease_until_us", sa.BigInteger(), nullable=True),
        sa.Column("retry_at_us", sa.BigInteger(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_us", sa.BigInteger(), nullable=True),
        sa.Column("delivered_events", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["named_query.id"],
            name=op.f("fk_subscription_query_id_named_query"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
        sa.UniqueConstraint("subscription_id", name=op.f("uq_subscription_subscription_id")),
    )
    op.create_index("ix_subscription_query", "subscription", ["query_id"], unique=False)


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_subscription_query", table_name="subscription")
    op.drop_table("subscription")
    op.drop_table("named_query")
