"""Freeze alembic revision 0001 from ``yaolian.store.schema.metadata``.

Until the first release revision 0001 creates whatever ``schema.py`` holds. Run this once the
schema is settled; it rewrites ``src/yaolian/store/migrations/versions/0001_initial.py`` as
explicit ``op.create_table`` / ``op.create_index`` calls, so later schema changes must come as
new revisions (``alembic revision --autogenerate``, see docs/store.md)::

    .venv/bin/python scripts/freeze_initial_migration.py
    .venv/bin/ruff format src/yaolian/store/migrations/versions/0001_initial.py
"""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from yaolian.store.engine import MIGRATIONS_DIR
from yaolian.store.schema import metadata

TARGET = MIGRATIONS_DIR / "versions" / "0001_initial.py"

HEADER = '''"""Initial schema: every table of ``yaolian.store.schema`` (frozen by
``scripts/freeze_initial_migration.py``; change the schema with new revisions).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table and index."""
'''

FOOTER_HEAD = '''

def downgrade() -> None:
    """Drop every table."""
'''


def _without_banners(code: str) -> str:
    """Drop alembic's "commands auto generated" banner comments."""
    return "\n".join(line for line in code.splitlines() if not line.strip().startswith("# ###"))


def main() -> None:
    """Render the create/drop operations of the whole metadata into revision 0001."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"target_metadata": metadata})
        script = produce_migrations(ctx, metadata)
    opts = {"render_as_batch": False}
    upgrade = render_python_code(script.upgrade_ops, migration_context=ctx, **opts)
    downgrade = render_python_code(script.downgrade_ops, migration_context=ctx, **opts)
    body = _without_banners(upgrade).rstrip() + "\n" + FOOTER_HEAD
    TARGET.write_text(HEADER + body + _without_banners(downgrade).rstrip() + "\n")
    print(f"wrote {Path(TARGET)}")


if __name__ == "__main__":
    main()
