"""What is on its way to a party (待收货, ``GET /arrivals``) is found through a partial index of
the codes in transit by destination party, not by scanning every hand-over it ever received.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_OPEN = sa.text("open_ship_event_id IS NOT NULL")


def upgrade() -> None:
    """Index the codes in transit by the party they are shipped to."""
    op.create_index(
        "ix_code_state_open_ship",
        "code_state",
        ["open_ship_to"],
        unique=False,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_code_state_open_ship", table_name="code_state")
