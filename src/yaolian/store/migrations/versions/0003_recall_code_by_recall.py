"""Index ``recall_code`` by recall: a recall's scope and the re-evaluation of its sales read
the codes of one recall, which scanned every recalled code of every recall.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index."""
    op.create_index("ix_recall_code_recall", "recall_code", ["recall_id", "code_id"], unique=False)


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_recall_code_recall", table_name="recall_code")
