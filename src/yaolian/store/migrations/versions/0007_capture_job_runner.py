"""The server process that runs a capture job, so that a job whose process stopped (a crash, a
restart) is reported as interrupted instead of running for ever.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the runner of a capture job (``host/pid/start time``; empty for older jobs)."""
    with op.batch_alter_table("capture_job") as batch:
        batch.add_column(sa.Column("runner", sa.String(300), nullable=True))


def downgrade() -> None:
    """Drop the runner."""
    with op.batch_alter_table("capture_job") as batch:
        batch.drop_column("runner")
