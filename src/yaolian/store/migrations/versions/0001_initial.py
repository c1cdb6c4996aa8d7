"""Initial schema: every table of ``yaolian.store.schema``.

While the layers are still adding their tables this revision creates ``schema.metadata`` as it
stands. Before the first release it is frozen into explicit ``op.create_table`` calls with
``.venv/bin/python scripts/freeze_initial_migration.py`` (see docs/store.md), after which schema
changes go into new revisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from yaolian.store.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table and index."""
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    """Drop every table."""
    metadata.drop_all(op.get_bind())
