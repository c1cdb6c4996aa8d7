"""Batch parties: who shipped, received, held or sold a code of each batch, so whether an
enterprise has a part in a recall is one index probe, not a scan of the batch's hand-overs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# every (product, lot, party or site) the stored projections name
_FILL = """
INSERT INTO batch_party (product, lot, party)
SELECT product, lot, party FROM (
    SELECT product, lot, from_party AS party FROM custody
    UNION SELECT product, lot, to_party FROM custody
    UNION SELECT product, lot, from_site FROM custody
    UNION SELECT product, lot, to_site FROM custody
    UNION SELECT product, lot, custodian FROM code_state
    UNION SELECT product, lot, site FROM code_state
    UNION SELECT product, lot, site FROM dispense
) AS named
WHERE product IS NOT NULL AND lot IS NOT NULL AND party IS NOT NULL
"""


def upgrade() -> None:
    """Create ``batch_party`` and fill it from the stored trace projections."""
    op.create_table(
        "batch_party",
        sa.Column("product", sa.String(20), primary_key=True),
        sa.Column("lot", sa.Text(), primary_key=True),
        sa.Column("party", sa.Text(), primary_key=True),
    )
    op.execute(_FILL)


def downgrade() -> None:
    """Drop ``batch_party`` (a projection: nothing is lost)."""
    op.drop_table("batch_party")
