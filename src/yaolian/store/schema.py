"""Tables of the store, SQLAlchemy Core; one ``metadata`` for SQLite and PostgreSQL alike.

Times are integer microseconds since the Unix epoch, UTC (``*_us`` columns), so they compare and
bulk-insert the same on both engines; the event's own offset is kept in ``event.tz_offset``.
Codes are interned in ``code`` (canonical key → integer id, see ``yaolian.codes.identity``) and
every other table refers to them by id.

Sections: event log · capture jobs · master data · access · projections (trace/verify, supply).
Each later layer adds its projection tables here, in its own section, so one alembic history
covers the whole schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
PRODUCT_CODE_MAX = 20  # characters of a product code column: 药品标识码 or GTIN-14

Id = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite
# Identifier text compared byte-wise ("C" collation on PostgreSQL; SQLite's BINARY is already):
# faster unique indexes, and prefix (LIKE 'abc%') searches can use the index.
KeyText = Text().with_variant(Text(collation="C"), "postgresql")

# ── code dictionary ────────────────────────────────────────────────────────────────────────
code = Table(
    "code",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", KeyText, nullable=False, unique=True),  # canonical key (codes.identity)
)

# ── event log (append-only) ────────────────────────────────────────────────────────────────
# event.type / event_epc.role are small integers; the maps below are the only place they are named.
EVENT_TYPE_IDS = {
    "ObjectEvent": 1,
    "AggregationEvent": 2,
    "TransactionEvent": 3,
    "TransformationEvent": 4,
    "AssociationEvent": 5,
}
ROLE_IDS = {"epc": 1, "parent": 2, "child": 3, "input": 4, "output": 5}
ACTION_IDS = {"ADD": 1, "OBSERVE": 2, "DELETE": 3}

event = Table(
    "event",
    metadata,
    Column("id", Id, primary_key=True),
    # ni:///sha-256;…?ver=CBV2.0 — the CBV hash ignores errorDeclaration, so an error
    # declaration's row stores its hash + "#errorDeclaration": both rows stay unique.
    Column("hash", String(120), nullable=False, unique=True),
    Column("event_id", Text),  # the document's eventID, when given
    Column("type", SmallInteger, nullable=False),
    Column("action", SmallInteger),
    Column("event_time_us", BigInteger, nullable=False),
    Column("tz_offset", String(6), nullable=False),
    Column("record_time_us", BigInteger, nullable=False),
    Column("biz_step", Text),
    Column("disposition", Text),
    Column("read_point", Text),
    Column("biz_location", Text),
    Column("error_declared", Boolean, nullable=False, default=False),
    Column("capture_id", BigInteger),
    Column("payload", LargeBinary, nullable=False),  # orjson of the normalised event
    Index("ix_event_event_time", "event_time_us"),
    Index("ix_event_record_time", "record_time_us"),
    Index("ix_event_event_id", "event_id"),
    Index("ix_event_biz_location", "biz_location"),
    Index("ix_event_read_point", "read_point"),
)

event_epc = Table(
    "event_epc",
    metadata,
    Column("code_id", BigInteger, primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("role", SmallInteger, primary_key=True),
    Index("ix_event_epc_event", "event_id"),
    sqlite_with_rowid=False,  # the primary key (code, event, role) is the table: MATCH_anyEPC
)

event_quantity = Table(
    "event_quantity",
    metadata,
    Column("event_id", BigInteger, nullable=False, index=True),
    Column("class_id", BigInteger, nullable=False, index=True),  # code id of the epcClass
    Column("quantity", Float),
    Column("uom", Text),  # UN/CEFACT Rec 20 code
    Column("role", SmallInteger, nullable=False),
)

event_biz_tx = Table(
    "event_biz_tx",
    metadata,
    Column("event_id", BigInteger, nullable=False, index=True),
    Column("type", Text, nullable=False),
    Column("value", Text, nullable=False),
    Index("ix_event_biz_tx_value", "value"),
)

event_party = Table(
    "event_party",
    metadata,
    Column("event_id", BigInteger, nullable=False, index=True),
    Column("kind", SmallInteger, nullable=False),  # 1 source, 2 destination
    Column("type", Text, nullable=False),  # CBV: owning_party, possessing_party, location
    Column("value", Text, nullable=False),
    Index("ix_event_party_value", "value"),
)

event_sensor = Table(
    "event_sensor",
    metadata,
    Column("event_id", BigInteger, nullable=False, index=True),
    Column("time_us", BigInteger),
    Column("type", Text),  # CBV measurement type, e.g. Temperature
    Column("value", Float),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("uom", Text),  # UN/CEFACT Rec 20 code
    Column("device_id", Text),
)

event_ilmd = Table(
    "event_ilmd",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("lot", Text),  # cbvmda:lotNumber (批号)
    Column("expiry", Text),  # cbvmda:itemExpirationDate, YYYY-MM-DD
    Column("production_date", Text),  # cbvmda:productionDate (生产日期)
    Index("ix_event_ilmd_lot", "lot"),
)

# ── capture jobs ──────────────────────────────────────────────────────────────────────────
capture_job = Table(
    "capture_job",
    metadata,
    Column("id", Id, primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger),
    Column("running", Boolean, nullable=False, default=True),
    Column("success", Boolean),
    Column("error_behaviour", String(10), nullable=False, default="rollback"),
    Column("enterprise_id", BigInteger),
    Column("accepted", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("errors", JSON),  # list of {place, reason}
    Column("runner", String(300)),  # the server process running it: "host/pid/start time"
)

# ── named queries (EPCIS 2.0 ``POST /queries``) ──────────────────────────────────────────────
named_query = Table(
    "named_query",
    metadata,
    Column("id", Id, primary_key=True),
    # whose name space: the enterprise of an enterprise key; 0 for the platform's own keys
    # (regulators and admins share theirs)
    Column("owner", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("params", JSON, nullable=False),  # SimpleEventQuery parameter → list of values
    Column("created_us", BigInteger, nullable=False),
    Column("api_key_id", BigInteger),
    UniqueConstraint("owner", "name"),
)

subscription = Table(  # a webhook fed with a named query's events (EPCIS 2.0 stream/schedule)
    "subscription",
    metadata,
    Column("id", Id, primary_key=True),
    Column("subscription_id", String(36), nullable=False, unique=True),  # public (uuid4)
    Column("query_id", BigInteger, ForeignKey("named_query.id"), nullable=False),
    Column("dest", Text, nullable=False),  # the webhook URL
    Column("signature_token", Text),  # HMAC-SHA256 key of the GS1-Signature header
    Column("api_key_id", BigInteger, nullable=False),  # whose rights the deliveries have
    Column("min_record_us", BigInteger),  # initialRecordTime: events recorded from then
    Column("after_event", BigInteger, nullable=False),  # every event row up to here is done
    Column("created_us", BigInteger, nullable=False),
    Column("lease_until_us", BigInteger),  # a dispatcher delivers it until then
    Column("retry_at_us", BigInteger),  # after a failed delivery: not before then
    Column("failures", Integer, nullable=False, default=0),  # in a row
    Column("last_error", Text),
    Column("delivered_us", BigInteger),  # the last successful delivery
    Column("delivered_events", BigInteger, nullable=False, default=0),
    Column("schedule", JSON(none_as_null=True)),  # QuerySchedule fields; NULL: a stream
    Column("report_if_empty", Boolean, nullable=False, default=False, server_default=false()),
    Column("next_run_us", BigInteger),  # a scheduled one's next query time (NULL: a stream)
    Index("ix_subscription_query", "query_id"),
)

# ── master data ───────────────────────────────────────────────────────────────────────────
enterprise = Table(
    "enterprise",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uscc", String(18), nullable=False, unique=True),  # 统一社会信用代码
    Column("name", Text, nullable=False),
    Column(
        "role", String(20), nullable=False
    ),  # holder, manufacturer, distributor, hospital, pharmacy, regulator, herb_base …
    Column("region", String(6)),  # 行政区划代码 (province/city)
    Column("party_id", Text, unique=True),  # its EPCIS party identifier (PGLN URI)
)

site = Table(
    "site",
    metadata,
    Column("id", Id, primary_key=True),
    Column("location_id", Text, nullable=False, unique=True),  # SGLN URI / location URI
    Column("enterprise_id", BigInteger, ForeignKey("enterprise.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", String(20)),  # factory, warehouse, hospital, pharmacy …
    Column("region", String(6)),
    Column("lat", Float),
    Column("lon", Float),
)

product = Table(
    "product",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "product_code", String(PRODUCT_CODE_MAX), nullable=False, unique=True
    ),  # 药品标识码 or GTIN-14
    Column("gtin", String(14), unique=True),
    Column("generic_name", Text, nullable=False),  # 通用名
    Column("trade_name", Text),  # 商品名
    Column("dosage_form", Text),  # 剂型
    Column("strength", Text),  # 制剂规格
    Column("pack_spec", Text),  # 包装规格
    Column("packaging_level", SmallInteger, nullable=False, default=1),  # 1 pack, 2 case, 3 pallet
    Column("units_per_pack", Integer, nullable=False, default=1),  # split-sale (拆零) units
    Column("holder_id", BigInteger, ForeignKey("enterprise.id")),  # 上市许可持有人
    Column("manufacturer_id", BigInteger, ForeignKey("enterprise.id")),
    Column("approval_no", Text),  # 批准文号
    Column("approval_valid_until", String(10)),
    Column("temp_min", Float),  # storage range, °C (cold chain)
    Column("temp_max", Float),
)

code_rule = Table(
    "code_rule",
    metadata,
    Column("id", Id, primary_key=True),
    Column("issuer", Text, nullable=False, unique=True),  # 发码机构
    Column("total_length", SmallInteger, nullable=False),
    Column("product_code_length", SmallInteger, nullable=False),
    Column("prefix_pattern", Text, nullable=False),  # regular expression on the code's start
    Column("charset", Text, nullable=False),  # regular expression character class
)

# ── access and audit ──────────────────────────────────────────────────────────────────────
api_key = Table(
    "api_key",
    metadata,
    Column("id", Id, primary_key=True),
    Column("prefix", String(12), nullable=False, unique=True),  # shown, used to find the key
    Column("secret_hash", Text, nullable=False),  # hash of the secret part, never the key
    Column("enterprise_id", BigInteger, ForeignKey("enterprise.id")),
    Column("role", String(20), nullable=False),  # enterprise, regulator, admin
    Column("label", Text),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

event_access = Table(
    "event_access",
    metadata,
    Column("enterprise_id", BigInteger, primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Index("ix_event_access_event", "event_id"),
    sqlite_with_rowid=False,
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True),
    Column("time_us", BigInteger, nullable=False),
    Column("api_key_id", BigInteger),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("detail", JSON),
    Column("prev_hash", String(64)),  # hash chain: tamper-evident
    Column("hash", String(64), nullable=False),
)

# ── supply assurance (supply/) ─────────────────────────────────────────────────────────────
# Products are keyed by their product code (药品标识码 or GTIN-14) and sites by their location
# URI, as text, so the ledger works before master data is loaded; regions come from ``site``.
# ``day`` columns are days since 1970-01-01 in China Standard Time (UTC+8).
supply_movement = Table(  # projection: one row per event × product × site × kind
    "supply_movement",
    metadata,
    Column("event_id", BigInteger, nullable=False),
    Column("product", String(20), nullable=False),
    Column("site", Text, nullable=False),
    Column("day", Integer, nullable=False),
    Column("kind", SmallInteger, nullable=False),  # supply.ledger.Kind
    Column("packs", Float, nullable=False),  # signed change of whole packs
    Column("units", Float, nullable=False),  # signed change of units (拆零 split sales)
    Index("ix_supply_movement_event", "event_id"),
    # covering: stock, days of supply and warnings sum packs/units per product × site up to a
    # day straight from the index, without visiting the table
    Index("ix_supply_movement_stock", "product", "site", "day", "kind", "packs", "units"),
    Index("ix_supply_movement_day_kind", "day", "kind"),
)

supply_stock_count = Table(  # 盘点: counted quantities from stock-takes
    "supply_stock_count",
    metadata,
    Column("id", Id, primary_key=True),
    Column("site", Text, nullable=False),
    Column("product", String(20), nullable=False),
    Column("counted_packs", Float, nullable=False),
    Column("counted_at_us", BigInteger, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    Column("book_packs", Float, nullable=False),  # ledger stock at counted_at
    Column("counted_by", Text),
    Index("ix_supply_stock_count_site_product", "site", "product"),
)

supply_list = Table(  # monitored lists (重点监测清单 / 易短缺药品清单), versioned
    "supply_list",
    metadata,
    Column("id", Id, primary_key=True),
    Column("code", String(40), nullable=False),  # e.g. key_monitoring, shortage_prone
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("valid_from", String(10), nullable=False),  # YYYY-MM-DD
    Column("red_days", Float, nullable=False),  # days of supply at or below → red
    Column("orange_days", Float, nullable=False),
    Column("yellow_days", Float, nullable=False),
    UniqueConstraint("code", "version"),
)

supply_list_item = Table(
    "supply_list_item",
    metadata,
    Column("list_id", BigInteger, ForeignKey("supply_list.id"), nullable=False),
    Column("product", String(20), nullable=False),
    UniqueConstraint("list_id", "product"),
)

supply_discontinuation = Table(  # 停产报告
    "supply_discontinuation",
    metadata,
    Column("id", Id, primary_key=True),
    Column("product", String(20), nullable=False, index=True),
    Column("holder", Text, nullable=False),  # holder's USCC or party id (上市许可持有人)
    Column("stop_date", String(10), nullable=False),  # YYYY-MM-DD production stops
    Column("reason", Text, nullable=False),
    Column("remaining_packs", Float, nullable=False),
    Column("filed_us", BigInteger, nullable=False),
    Column("withdrawn_us", BigInteger),  # when the holder withdrew it (production resumes)
)

supply_production_plan = Table(  # planned output per product and month (生产计划)
    "supply_production_plan",
    metadata,
    Column("id", Id, primary_key=True),
    Column("product", String(20), nullable=False, index=True),
    Column("manufacturer", Text, nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("planned_packs", Float, nullable=False),
    UniqueConstraint("product", "manufacturer", "month"),
)

supply_api_source = Table(  # active pharmaceutical ingredient (原料药) sources per product
    "supply_api_source",
    metadata,
    Column("product", String(20), nullable=False),
    Column("supplier", Text, nullable=False),
    UniqueConstraint("product", "supplier"),
)

supply_lead_time = Table(  # replenishment lead time between regions, days
    "supply_lead_time",
    metadata,
    Column("from_region", String(6), nullable=False),
    Column("to_region", String(6), nullable=False),
    Column("days", Float, nullable=False),
    UniqueConstraint("from_region", "to_region"),
)

supply_forecast = Table(  # last forecast per product × region × day ahead
    "supply_forecast",
    metadata,
    Column("product", String(20), nullable=False),
    Column("region", String(6), nullable=False),
    Column("day", Integer, nullable=False),
    Column("model", String(30), nullable=False),
    Column("mean", Float, nullable=False),
    Column("lo", Float, nullable=False),
    Column("hi", Float, nullable=False),
    Column("baseline", Float, nullable=False),  # seasonal naive
    Column("made_us", BigInteger, nullable=False),
    UniqueConstraint("product", "region", "day"),
)

supply_demand = Table(  # 供需对接: a hospital's demand post
    "supply_demand",
    metadata,
    Column("id", Id, primary_key=True),
    Column("site", Text, nullable=False),
    Column("product", String(20), nullable=False, index=True),
    Column("quantity", Float, nullable=False),
    Column("needed_by", String(10), nullable=False),
    Column("posted_us", BigInteger, nullable=False),
    Column("status", String(10), nullable=False, default="open"),  # open, matched, closed
)

supply_offer = Table(  # 供需对接: stock offered by a distributor, manufacturer or region
    "supply_offer",
    metadata,
    Column("id", Id, primary_key=True),
    Column("site", Text, nullable=False),
    Column("product", String(20), nullable=False, index=True),
    Column("quantity", Float, nullable=False),
    Column("expiry", String(10)),  # YYYY-MM-DD of the offered lot (FEFO)
    Column("lot", Text),
    Column("available_from", String(10), nullable=False),
    Column("posted_us", BigInteger, nullable=False),
    Column("status", String(10), nullable=False, default="open"),
)

reserve_plan = Table(  # 医药储备 plans
    "reserve_plan",
    metadata,
    Column("id", Id, primary_key=True),
    Column("product", String(20), nullable=False, index=True),
    Column("level", String(12), nullable=False),  # central, provincial
    Column("target_packs", Float, nullable=False),
    Column("site", Text, nullable=False),  # holding site
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("product", "level", "site"),
)

reserve_dispatch = Table(  # 储备调度 orders, each captured as a shipping event
    "reserve_dispatch",
    metadata,
    Column("id", Id, primary_key=True),
    Column("plan_id", BigInteger, ForeignKey("reserve_plan.id"), nullable=False),
    Column("to_site", Text, nullable=False),
    Column("packs", Float, nullable=False),
    Column("order_no", Text, nullable=False, unique=True),
    Column("event_hash", String(100), nullable=False),
    Column("dispatched_us", BigInteger, nullable=False),
)

# ── trace & verify (trace/, verify/) ───────────────────────────────────────────────────────
# Projections kept by ``yaolian.trace.projection`` (rebuildable from the log) and the recall
# records created by users (``yaolian.trace.recall``, not projections). Codes by ``code.id``,
# products by product code (药品标识码 / GTIN-14), sites and parties by their URIs as text, so
# the projections do not depend on when master data were loaded.
code_state = Table(  # projection: the current state of every instance code
    "code_state",
    metadata,
    Column("code_id", BigInteger, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),  # trace.state.STATUSES
    Column("product", String(20)),  # 药品标识码 or GTIN-14, from the code itself
    Column("lot", Text),  # 批号, from the commissioning event's ilmd
    Column("expiry", String(10)),  # YYYY-MM-DD
    Column("production_date", String(10)),
    Column("parent_id", BigInteger),  # current container
    Column("has_children", Boolean, nullable=False, default=False),  # ever a container
    Column("custodian", Text),  # owning party URI from the last receipt (site owner as fallback)
    Column("site", Text),  # last business location URI
    Column("commission_event_id", BigInteger),
    Column("commissioned_us", BigInteger),
    Column("last_event_id", BigInteger, nullable=False),
    Column("last_us", BigInteger, nullable=False),
    Column("open_ship_event_id", BigInteger),  # shipping not yet received (custody row open)
    Column("open_ship_to", Text),  # its destination owning party
    Column("sales", Integer, nullable=False, default=0),  # dispensing / retail sale events
    Column("whole_sales", Integer, nullable=False, default=0),
    Column("split_units", Float, nullable=False, default=0.0),  # 拆零 units sold
    Column("seen_site", Text),  # last place the code was seen (clone rule)
    Column("seen_us", BigInteger),
    Column("seen_event_id", BigInteger),
    # covering index: a batch's holdings are one index range scan (recall scope, forward trace)
    Index("ix_code_state_batch", "product", "lot", "status", "custodian", "site"),
    # what is on its way to a party (待收货): only the codes in transit are in it
    Index(
        "ix_code_state_open_ship",
        "open_ship_to",
        sqlite_where=text("open_ship_event_id IS NOT NULL"),
        postgresql_where=text("open_ship_event_id IS NOT NULL"),
    ),
)

aggregation = Table(  # projection: what was inside what, from when to when
    "aggregation",
    metadata,
    Column("parent_id", BigInteger, nullable=False),
    Column("child_id", BigInteger, nullable=False),
    Column("from_us", BigInteger, nullable=False),
    Column("from_event_id", BigInteger, nullable=False),
    Column("to_us", BigInteger),  # NULL: still inside
    Column("to_event_id", BigInteger),
    Index("ix_aggregation_child", "child_id", "from_us"),
    Index("ix_aggregation_parent", "parent_id", "from_us"),
)

custody = Table(  # projection: hand-overs (shipping → receiving) per code
    "custody",
    metadata,
    Column("code_id", BigInteger, nullable=False),
    Column("via_id", BigInteger),  # the container shipped, when the code travelled inside one
    Column("from_party", Text),
    Column("to_party", Text),
    Column("from_site", Text),
    Column("to_site", Text),
    Column("ship_event_id", BigInteger),  # NULL: a receipt whose shipping is not (yet) known
    Column("ship_us", BigInteger),
    Column("recv_event_id", BigInteger),  # NULL: in transit
    Column("recv_us", BigInteger),
    Column("kind", String(10), nullable=False),  # shipping, returning
    Column("product", String(20)),  # the code's product and lot when shipped (batch queries)
    Column("lot", Text),
    Index("ix_custody_code", "code_id"),
    Index("ix_custody_to_party", "to_party"),
    Index(
        "ix_custody_batch",
        "product",
        "lot",
        "from_party",
        "from_site",
        "to_party",
        "to_site",
        "ship_us",
        "recv_us",
        "kind",
    ),
)

dispense = Table(  # projection: 销售/使用出库 of a code (NHSA sale lines), one row per event
    "dispense",
    metadata,
    Column("code_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("site", Text),
    Column("units", Float),  # 拆零 units; NULL = the whole pack
    Column("settlement", Text),  # NHSA settlement / sale document id
    Column("prior_status", String(16)),
    Column("prior_site", Text),
    Column("prior_custodian", Text),
    Column("product", String(20)),
    Column("lot", Text),
    Index("ix_dispense_code", "code_id"),
    Index("ix_dispense_batch", "product", "lot", "site", "time_us", "code_id", "units"),
    Index("ix_dispense_site_time", "site", "time_us"),
)

batch_party = Table(  # projection: who took part in a batch (a recall's parties in one probe)
    "batch_party",
    metadata,
    Column("product", String(20), primary_key=True),
    Column("lot", Text, primary_key=True),
    # a party or a site that shipped, received, held or sold a code of the batch (named by a
    # hand-over, a state or a sale as written); a recompute takes out what it no longer names
    Column("party", Text, primary_key=True),
)

code_sensor = Table(  # projection: sensor readings (°C) a code was exposed to, own or container's
    "code_sensor",
    metadata,
    Column("code_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("min_c", Float),
    Column("max_c", Float),
    Index("ix_code_sensor_code", "code_id"),
)

alert = Table(  # projection: anomaly alerts, one per stable key (deduplicated)
    "alert",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", Text, nullable=False, unique=True),
    Column("rule", String(24), nullable=False),  # verify.anomalies.RULES
    Column("severity", String(8), nullable=False),  # high, medium, low
    Column("code_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),  # the event that raised it
    Column("site", Text),
    Column("time_us", BigInteger, nullable=False),  # event time of that event
    Column("record_us", BigInteger, nullable=False),  # when it became detectable (record time)
    Column("evidence", JSON, nullable=False),
    Index("ix_alert_rule_time", "rule", "time_us"),
    Index("ix_alert_code", "code_id"),
    Index("ix_alert_site", "site"),
)

alert_review = Table(  # 预警核查: a regulator's finding on an alert (not a projection)
    "alert_review",
    metadata,
    Column("key", Text, primary_key=True),  # the alert's stable key: kept across rebuilds
    Column("status", String(16), nullable=False),  # verify.review.STATUSES, not "open"
    Column("note", Text),
    Column("api_key_id", BigInteger, ForeignKey("api_key.id")),  # None: a local operator
    Column("updated_us", BigInteger, nullable=False),
)

alert_response = Table(  # 情况说明: an enterprise's account of an alert it sees (not a projection)
    "alert_response",
    metadata,
    Column("key", Text, primary_key=True),  # the alert's stable key
    Column("enterprise_id", BigInteger, ForeignKey("enterprise.id"), primary_key=True),
    Column("note", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

recall = Table(  # 召回: created by a holder or regulator (not a projection)
    "recall",
    metadata,
    Column("id", Id, primary_key=True),
    Column("klass", SmallInteger, nullable=False),  # 1, 2, 3 (一级/二级/三级召回)
    Column("reason", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("enterprise_id", BigInteger),  # who created it (None: platform / regulator)
    Column("closed_us", BigInteger),
)

recall_batch = Table(
    "recall_batch",
    metadata,
    Column("recall_id", BigInteger, ForeignKey("recall.id"), nullable=False),
    Column("product", String(20), nullable=False),
    Column("lot", Text, nullable=False),
    Index("ix_recall_batch_product_lot", "product", "lot"),
)

recall_code = Table(
    "recall_code",
    metadata,
    Column("recall_id", BigInteger, ForeignKey("recall.id"), nullable=False),
    Column("code_id", BigInteger, nullable=False),
    Index("ix_recall_code_code", "code_id"),
    Index("ix_recall_code_recall", "recall_id", "code_id"),  # a recall's codes (scope, alerts)
)

# ── code issuing (codes/issue.py) ──────────────────────────────────────────────────────────
# One row per issue request (idempotent by request_id) and one per code issued, unique forever.
code_issue_request = Table(
    "code_issue_request",
    metadata,
    Column("id", Id, primary_key=True),
    Column("request_id", String(100), nullable=False),  # caller's idempotency key
    Column("issuer", String(20), nullable=False, server_default=""),  # asker's USCC; "" operator
    Column("product_code", String(20), nullable=False),  # 药品标识码 or GTIN-14
    Column("packaging_level", SmallInteger, nullable=False),
    Column("lot", String(20)),  # 批号
    Column("expiry", String(10)),  # YYYY-MM-DD
    Column("quantity", Integer, nullable=False),
    Column("rule", Text, nullable=False),  # issuer of the code rule, or "GS1"
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("issuer", "request_id"),  # request ids are each enterprise's own
)

issued_code = Table(
    "issued_code",
    metadata,
    Column("id", Id, primary_key=True),
    Column("request_id", BigInteger, ForeignKey("code_issue_request.id"), nullable=False),
    Column("seq", Integer, nullable=False),  # position within the request (print order)
    Column("code", String(100), nullable=False, unique=True),  # rule-a code or (01)…(21)…
    Column("serial", String(20), nullable=False),  # 生产标识码 serial part
    UniqueConstraint("request_id", "seq"),
)
