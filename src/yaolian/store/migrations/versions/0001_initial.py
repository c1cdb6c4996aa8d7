"""Initial schema: every table of ``yaolian.store.schema`` as of the first release (change the
schema with new revisions: ``alembic revision --autogenerate``, see docs/store.md).

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
    op.create_table(
        "aggregation",
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("child_id", sa.BigInteger(), nullable=False),
        sa.Column("from_us", sa.BigInteger(), nullable=False),
        sa.Column("from_event_id", sa.BigInteger(), nullable=False),
        sa.Column("to_us", sa.BigInteger(), nullable=True),
        sa.Column("to_event_id", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_aggregation_child", "aggregation", ["child_id", "from_us"], unique=False)
    op.create_index("ix_aggregation_parent", "aggregation", ["parent_id", "from_us"], unique=False)
    op.create_table(
        "alert",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=24), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("record_us", sa.BigInteger(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_key")),
    )
    op.create_index("ix_alert_code", "alert", ["code_id"], unique=False)
    op.create_index("ix_alert_rule_time", "alert", ["rule", "time_us"], unique=False)
    op.create_index("ix_alert_site", "alert", ["site"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "capture_job",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("error_behaviour", sa.String(length=10), nullable=False),
        sa.Column("enterprise_id", sa.BigInteger(), nullable=True),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capture_job")),
    )
    op.create_table(
        "code",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code")),
        sa.UniqueConstraint("key", name=op.f("uq_code_key")),
    )
    op.create_table(
        "code_issue_request",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("product_code", sa.String(length=20), nullable=False),
        sa.Column("packaging_level", sa.SmallInteger(), nullable=False),
        sa.Column("lot", sa.String(length=20), nullable=True),
        sa.Column("expiry", sa.String(length=10), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_issue_request")),
        sa.UniqueConstraint("request_id", name=op.f("uq_code_issue_request_request_id")),
    )
    op.create_table(
        "code_rule",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("total_length", sa.SmallInteger(), nullable=False),
        sa.Column("product_code_length", sa.SmallInteger(), nullable=False),
        sa.Column("prefix_pattern", sa.Text(), nullable=False),
        sa.Column("charset", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_rule")),
        sa.UniqueConstraint("issuer", name=op.f("uq_code_rule_issuer")),
    )
    op.create_table(
        "code_sensor",
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("min_c", sa.Float(), nullable=True),
        sa.Column("max_c", sa.Float(), nullable=True),
    )
    op.create_index("ix_code_sensor_code", "code_sensor", ["code_id"], unique=False)
    op.create_table(
        "code_state",
        sa.Column("code_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=True),
        sa.Column("lot", sa.Text(), nullable=True),
        sa.Column("expiry", sa.String(length=10), nullable=True),
        sa.Column("production_date", sa.String(length=10), nullable=True),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("has_children", sa.Boolean(), nullable=False),
        sa.Column("custodian", sa.Text(), nullable=True),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("commission_event_id", sa.BigInteger(), nullable=True),
        sa.Column("commissioned_us", sa.BigInteger(), nullable=True),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_us", sa.BigInteger(), nullable=False),
        sa.Column("open_ship_event_id", sa.BigInteger(), nullable=True),
        sa.Column("open_ship_to", sa.Text(), nullable=True),
        sa.Column("sales", sa.Integer(), nullable=False),
        sa.Column("whole_sales", sa.Integer(), nullable=False),
        sa.Column("split_units", sa.Float(), nullable=False),
        sa.Column("seen_site", sa.Text(), nullable=True),
        sa.Column("seen_us", sa.BigInteger(), nullable=True),
        sa.Column("seen_event_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("code_id", name=op.f("pk_code_state")),
    )
    op.create_index(
        "ix_code_state_batch",
        "code_state",
        ["product", "lot", "status", "custodian", "site"],
        unique=False,
    )
    op.create_index("ix_code_state_parent", "code_state", ["parent_id"], unique=False)
    op.create_table(
        "custody",
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("via_id", sa.BigInteger(), nullable=True),
        sa.Column("from_party", sa.Text(), nullable=True),
        sa.Column("to_party", sa.Text(), nullable=True),
        sa.Column("from_site", sa.Text(), nullable=True),
        sa.Column("to_site", sa.Text(), nullable=True),
        sa.Column("ship_event_id", sa.BigInteger(), nullable=True),
        sa.Column("ship_us", sa.BigInteger(), nullable=True),
        sa.Column("recv_event_id", sa.BigInteger(), nullable=True),
        sa.Column("recv_us", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=True),
        sa.Column("lot", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_custody_batch",
        "custody",
        [
            "product",
            "lot",
            "from_party",
            "from_site",
            "to_party",
            "to_site",
            "ship_us",
            "recv_us",
            "kind",
        ],
        unique=False,
    )
    op.create_index("ix_custody_code", "custody", ["code_id"], unique=False)
    op.create_index("ix_custody_to_party", "custody", ["to_party"], unique=False)
    op.create_table(
        "dispense",
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("units", sa.Float(), nullable=True),
        sa.Column("settlement", sa.Text(), nullable=True),
        sa.Column("prior_status", sa.String(length=16), nullable=True),
        sa.Column("prior_site", sa.Text(), nullable=True),
        sa.Column("prior_custodian", sa.Text(), nullable=True),
        sa.Column("product", sa.String(length=20), nullable=True),
        sa.Column("lot", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_dispense_batch",
        "dispense",
        ["product", "lot", "site", "time_us", "code_id", "units"],
        unique=False,
    )
    op.create_index("ix_dispense_code", "dispense", ["code_id"], unique=False)
    op.create_index("ix_dispense_site_time", "dispense", ["site", "time_us"], unique=False)
    op.create_table(
        "enterprise",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("party_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprise")),
        sa.UniqueConstraint("party_id", name=op.f("uq_enterprise_party_id")),
        sa.UniqueConstraint("uscc", name=op.f("uq_enterprise_uscc")),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=120), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("action", sa.SmallInteger(), nullable=True),
        sa.Column("event_time_us", sa.BigInteger(), nullable=False),
        sa.Column("tz_offset", sa.String(length=6), nullable=False),
        sa.Column("record_time_us", sa.BigInteger(), nullable=False),
        sa.Column("biz_step", sa.Text(), nullable=True),
        sa.Column("disposition", sa.Text(), nullable=True),
        sa.Column("read_point", sa.Text(), nullable=True),
        sa.Column("biz_location", sa.Text(), nullable=True),
        sa.Column("error_declared", sa.Boolean(), nullable=False),
        sa.Column("capture_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("hash", name=op.f("uq_event_hash")),
    )
    op.create_index("ix_event_biz_location", "event", ["biz_location"], unique=False)
    op.create_index("ix_event_event_id", "event", ["event_id"], unique=False)
    op.create_index("ix_event_event_time", "event", ["event_time_us"], unique=False)
    op.create_index("ix_event_read_point", "event", ["read_point"], unique=False)
    op.create_index("ix_event_record_time", "event", ["record_time_us"], unique=False)
    op.create_table(
        "event_access",
        sa.Column("enterprise_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("enterprise_id", "event_id", name=op.f("pk_event_access")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_event_access_event", "event_access", ["event_id"], unique=False)
    op.create_table(
        "event_biz_tx",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index(op.f("ix_event_biz_tx_event_id"), "event_biz_tx", ["event_id"], unique=False)
    op.create_index("ix_event_biz_tx_value", "event_biz_tx", ["value"], unique=False)
    op.create_table(
        "event_epc",
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("code_id", "event_id", "role", name=op.f("pk_event_epc")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_event_epc_event", "event_epc", ["event_id"], unique=False)
    op.create_table(
        "event_ilmd",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("lot", sa.Text(), nullable=True),
        sa.Column("expiry", sa.Text(), nullable=True),
        sa.Column("production_date", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_ilmd")),
    )
    op.create_index("ix_event_ilmd_lot", "event_ilmd", ["lot"], unique=False)
    op.create_table(
        "event_party",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index(op.f("ix_event_party_event_id"), "event_party", ["event_id"], unique=False)
    op.create_index("ix_event_party_value", "event_party", ["value"], unique=False)
    op.create_table(
        "event_quantity",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("class_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("uom", sa.Text(), nullable=True),
        sa.Column("role", sa.SmallInteger(), nullable=False),
    )
    op.create_index(
        op.f("ix_event_quantity_class_id"), "event_quantity", ["class_id"], unique=False
    )
    op.create_index(
        op.f("ix_event_quantity_event_id"), "event_quantity", ["event_id"], unique=False
    )
    op.create_table(
        "event_sensor",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("uom", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
    )
    op.create_index(op.f("ix_event_sensor_event_id"), "event_sensor", ["event_id"], unique=False)
    op.create_table(
        "recall",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("klass", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("enterprise_id", sa.BigInteger(), nullable=True),
        sa.Column("closed_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall")),
    )
    op.create_table(
        "reserve_plan",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("level", sa.String(length=12), nullable=False),
        sa.Column("target_packs", sa.Float(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reserve_plan")),
        sa.UniqueConstraint(
            "product", "level", "site", name=op.f("uq_reserve_plan_product_level_site")
        ),
    )
    op.create_index(op.f("ix_reserve_plan_product"), "reserve_plan", ["product"], unique=False)
    op.create_table(
        "supply_api_source",
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("supplier", sa.Text(), nullable=False),
        sa.UniqueConstraint(
            "product", "supplier", name=op.f("uq_supply_api_source_product_supplier")
        ),
    )
    op.create_table(
        "supply_demand",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("needed_by", sa.String(length=10), nullable=False),
        sa.Column("posted_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_demand")),
    )
    op.create_index(op.f("ix_supply_demand_product"), "supply_demand", ["product"], unique=False)
    op.create_table(
        "supply_discontinuation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("stop_date", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("remaining_packs", sa.Float(), nullable=False),
        sa.Column("filed_us", sa.BigInteger(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_discontinuation")),
    )
    op.create_index(
        op.f("ix_supply_discontinuation_product"),
        "supply_discontinuation",
        ["product"],
        unique=False,
    )
    op.create_table(
        "supply_forecast",
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=30), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("lo", sa.Float(), nullable=False),
        sa.Column("hi", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("made_us", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint(
            "product", "region", "day", name=op.f("uq_supply_forecast_product_region_day")
        ),
    )
    op.create_table(
        "supply_lead_time",
        sa.Column("from_region", sa.String(length=6), nullable=False),
        sa.Column("to_region", sa.String(length=6), nullable=False),
        sa.Column("days", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "from_region", "to_region", name=op.f("uq_supply_lead_time_from_region_to_region")
        ),
    )
    op.create_table(
        "supply_list",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("red_days", sa.Float(), nullable=False),
        sa.Column("orange_days", sa.Float(), nullable=False),
        sa.Column("yellow_days", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_list")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_supply_list_code_version")),
    )
    op.create_table(
        "supply_movement",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("packs", sa.Float(), nullable=False),
        sa.Column("units", sa.Float(), nullable=False),
    )
    op.create_index("ix_supply_movement_day_kind", "supply_movement", ["day", "kind"], unique=False)
    op.create_index("ix_supply_movement_event", "supply_movement", ["event_id"], unique=False)
    op.create_index(
        "ix_supply_movement_product_site_day",
        "supply_movement",
        ["product", "site", "day"],
        unique=False,
    )
    op.create_table(
        "supply_offer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("expiry", sa.String(length=10), nullable=True),
        sa.Column("lot", sa.Text(), nullable=True),
        sa.Column("available_from", sa.String(length=10), nullable=False),
        sa.Column("posted_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_offer")),
    )
    op.create_index(op.f("ix_supply_offer_product"), "supply_offer", ["product"], unique=False)
    op.create_table(
        "supply_production_plan",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("planned_packs", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_production_plan")),
        sa.UniqueConstraint(
            "product",
            "manufacturer",
            "month",
            name=op.f("uq_supply_production_plan_product_manufacturer_month"),
        ),
    )
    op.create_index(
        op.f("ix_supply_production_plan_product"),
        "supply_production_plan",
        ["product"],
        unique=False,
    )
    op.create_table(
        "supply_stock_count",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("counted_packs", sa.Float(), nullable=False),
        sa.Column("counted_at_us", sa.BigInteger(), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.Column("book_packs", sa.Float(), nullable=False),
        sa.Column("counted_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_stock_count")),
    )
    op.create_index(
        "ix_supply_stock_count_site_product",
        "supply_stock_count",
        ["site", "product"],
        unique=False,
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("enterprise_id", sa.BigInteger(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprise.id"], name=op.f("fk_api_key_enterprise_id_enterprise")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    op.create_table(
        "issued_code",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["code_issue_request.id"],
            name=op.f("fk_issued_code_request_id_code_issue_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_code")),
        sa.UniqueConstraint("code", name=op.f("uq_issued_code_code")),
        sa.UniqueConstraint("request_id", "seq", name=op.f("uq_issued_code_request_id_seq")),
    )
    op.create_table(
        "product",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_code", sa.String(length=20), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("generic_name", sa.Text(), nullable=False),
        sa.Column("trade_name", sa.Text(), nullable=True),
        sa.Column("dosage_form", sa.Text(), nullable=True),
        sa.Column("strength", sa.Text(), nullable=True),
        sa.Column("pack_spec", sa.Text(), nullable=True),
        sa.Column("packaging_level", sa.SmallInteger(), nullable=False),
        sa.Column("units_per_pack", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.BigInteger(), nullable=True),
        sa.Column("manufacturer_id", sa.BigInteger(), nullable=True),
        sa.Column("approval_no", sa.Text(), nullable=True),
        sa.Column("approval_valid_until", sa.String(length=10), nullable=True),
        sa.Column("temp_min", sa.Float(), nullable=True),
        sa.Column("temp_max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["enterprise.id"], name=op.f("fk_product_holder_id_enterprise")
        ),
        sa.ForeignKeyConstraint(
            ["manufacturer_id"],
            ["enterprise.id"],
            name=op.f("fk_product_manufacturer_id_enterprise"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
        sa.UniqueConstraint("gtin", name=op.f("uq_product_gtin")),
        sa.UniqueConstraint("product_code", name=op.f("uq_product_product_code")),
    )
    op.create_table(
        "recall_batch",
        sa.Column("recall_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("lot", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recall.id"], name=op.f("fk_recall_batch_recall_id_recall")
        ),
    )
    op.create_index("ix_recall_batch_product_lot", "recall_batch", ["product", "lot"], unique=False)
    op.create_table(
        "recall_code",
        sa.Column("recall_id", sa.BigInteger(), nullable=False),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recall.id"], name=op.f("fk_recall_code_recall_id_recall")
        ),
    )
    op.create_index("ix_recall_code_code", "recall_code", ["code_id"], unique=False)
    op.create_table(
        "reserve_dispatch",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("to_site", sa.Text(), nullable=False),
        sa.Column("packs", sa.Float(), nullable=False),
        sa.Column("order_no", sa.Text(), nullable=False),
        sa.Column("event_hash", sa.String(length=100), nullable=False),
        sa.Column("dispatched_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["reserve_plan.id"], name=op.f("fk_reserve_dispatch_plan_id_reserve_plan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reserve_dispatch")),
        sa.UniqueConstraint("order_no", name=op.f("uq_reserve_dispatch_order_no")),
    )
    op.create_table(
        "site",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("enterprise_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["enterprise_id"], ["enterprise.id"], name=op.f("fk_site_enterprise_id_enterprise")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("location_id", name=op.f("uq_site_location_id")),
    )
    op.create_table(
        "supply_list_item",
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["supply_list.id"], name=op.f("fk_supply_list_item_list_id_supply_list")
        ),
        sa.UniqueConstraint("list_id", "product", name=op.f("uq_supply_list_item_list_id_product")),
    )


def downgrade() -> None:
    """Drop every table."""
    op.drop_table("supply_list_item")
    op.drop_table("site")
    op.drop_table("reserve_dispatch")
    op.drop_index("ix_recall_code_code", table_name="recall_code")
    op.drop_table("recall_code")
    op.drop_index("ix_recall_batch_product_lot", table_name="recall_batch")
    op.drop_table("recall_batch")
    op.drop_table("product")
    op.drop_table("issued_code")
    op.drop_table("api_key")
    op.drop_index("ix_supply_stock_count_site_product", table_name="supply_stock_count")
    op.drop_table("supply_stock_count")
    op.drop_index(op.f("ix_supply_production_plan_product"), table_name="supply_production_plan")
    op.drop_table("supply_production_plan")
    op.drop_index(op.f("ix_supply_offer_product"), table_name="supply_offer")
    op.drop_table("supply_offer")
    op.drop_index("ix_supply_movement_product_site_day", table_name="supply_movement")
    op.drop_index("ix_supply_movement_event", table_name="supply_movement")
    op.drop_index("ix_supply_movement_day_kind", table_name="supply_movement")
    op.drop_table("supply_movement")
    op.drop_table("supply_list")
    op.drop_table("supply_lead_time")
    op.drop_table("supply_forecast")
    op.drop_index(op.f("ix_supply_discontinuation_product"), table_name="supply_discontinuation")
    op.drop_table("supply_discontinuation")
    op.drop_index(op.f("ix_supply_demand_product"), table_name="supply_demand")
    op.drop_table("supply_demand")
    op.drop_table("supply_api_source")
    op.drop_index(op.f("ix_reserve_plan_product"), table_name="reserve_plan")
    op.drop_table("reserve_plan")
    op.drop_table("recall")
    op.drop_index(op.f("ix_event_sensor_event_id"), table_name="event_sensor")
    op.drop_table("event_sensor")
    op.drop_index(op.f("ix_event_quantity_event_id"), table_name="event_quantity")
    op.drop_index(op.f("ix_event_quantity_class_id"), table_name="event_quantity")
    op.drop_table("event_quantity")
    op.drop_index("ix_event_party_value", table_name="event_party")
    op.drop_index(op.f("ix_event_party_event_id"), table_name="event_party")
    op.drop_table("event_party")
    op.drop_index("ix_event_ilmd_lot", table_name="event_ilmd")
    op.drop_table("event_ilmd")
    op.drop_index("ix_event_epc_event", table_name="event_epc")
    op.drop_table("event_epc")
    op.drop_index("ix_event_biz_tx_value", table_name="event_biz_tx")
    op.drop_index(op.f("ix_event_biz_tx_event_id"), table_name="event_biz_tx")
    op.drop_table("event_biz_tx")
    op.drop_index("ix_event_access_event", table_name="event_access")
    op.drop_table("event_access")
    op.drop_index("ix_event_record_time", table_name="event")
    op.drop_index("ix_event_read_point", table_name="event")
    op.drop_index("ix_event_event_time", table_name="event")
    op.drop_index("ix_event_event_id", table_name="event")
    op.drop_index("ix_event_biz_location", table_name="event")
    op.drop_table("event")
    op.drop_table("enterprise")
    op.drop_index("ix_dispense_site_time", table_name="dispense")
    op.drop_index("ix_dispense_code", table_name="dispense")
    op.drop_index("ix_dispense_batch", table_name="dispense")
    op.drop_table("dispense")
    op.drop_index("ix_custody_to_party", table_name="custody")
    op.drop_index("ix_custody_code", table_name="custody")
    op.drop_index("ix_custody_batch", table_name="custody")
    op.drop_table("custody")
    op.drop_index("ix_code_state_parent", table_name="code_state")
    op.drop_index("ix_code_state_batch", table_name="code_state")
    op.drop_table("code_state")
    op.drop_index("ix_code_sensor_code", table_name="code_sensor")
    op.drop_table("code_sensor")
    op.drop_table("code_rule")
    op.drop_table("code_issue_request")
    op.drop_table("code")
    op.drop_table("capture_job")
    op.drop_table("audit_log")
    op.drop_index("ix_alert_site", table_name="alert")
    op.drop_index("ix_alert_rule_time", table_name="alert")
    op.drop_index("ix_alert_code", table_name="alert")
    op.drop_table("alert")
    op.drop_index("ix_aggregation_parent", table_name="aggregation")
    op.drop_index("ix_aggregation_child", table_name="aggregation")
    op.drop_table("aggregation")
