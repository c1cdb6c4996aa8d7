"""Code issue requests per issuer: an enterprise issuing codes over HTTP has request ids of its
own (another enterprise's id neither returns nor reveals its codes).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the issuer (USCC of the asking enterprise, "" for an operator); unique per issuer."""
    with op.batch_alter_table("code_issue_request") as batch:
        batch.add_column(sa.Column("issuer", sa.String(20), nullable=False, server_default=""))
        batch.drop_constraint("uq_code_issue_request_request_id", type_="unique")
        batch.create_unique_constraint(
            "uq_code_issue_request_issuer_request_id", ["issuer", "request_id"]
        )


def downgrade() -> None:
    """Request ids unique again across issuers: an enterprise's ids become ``USCC/id`` (its
    issued codes are kept)."""
    op.execute(
        "UPDATE code_issue_request SET request_id = substr(issuer || '/' || request_id, 1, 100) "
        "WHERE issuer <> ''"
    )
    with op.batch_alter_table("code_issue_request") as batch:
        batch.drop_constraint("uq_code_issue_request_issuer_request_id", type_="unique")
        batch.create_unique_constraint("uq_code_issue_request_request_id", ["request_id"])
        batch.drop_column("issuer")
