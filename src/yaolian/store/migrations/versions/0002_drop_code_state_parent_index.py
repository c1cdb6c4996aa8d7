"""Drop ``ix_code_state_parent``: no query looks code states up by their current container (the
contents of a container are read from ``aggregation``), and every state written paid for it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_code_state_parent", table_name="code_state")


def downgrade() -> None:
    """Create it again."""
    op.create_index("ix_code_state_parent", "code_state", ["parent_id"], unique=False)
