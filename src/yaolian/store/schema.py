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
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite

# ── code dictionary ────────────────────────────────────────────────────────────────────────
code = Table(
    "code",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", Text, nullable=False, unique=True),  # canonical key (codes.identity)
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
    Column("hash", String(100), nullable=False, unique=True),  # ni:///sha-256;…?ver=CBV2.0
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
    Column("code_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("role", SmallInteger, nullable=False),
    Index("ix_event_epc_code", "code_id", "event_id", "role", unique=True),
    Index("ix_event_epc_event", "event_id"),
)

event_quantity = Table(
    "event_quantity",
    metadata,
    Column("event_id", BigInteger, nullable=False, index=True),
    Column("class_id", BigInteger, nullable=False, index=True),  # code id of the epcClass
    Column("quantity", Float),
    Column("uom", String(8)),
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
    Column("uom", String(8)),
    Column("device_id", Text),
)

event_ilmd = Table(
    "event_ilmd",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("lot", Text),  # cbvmda:lotNumber (批号)
    Column("expiry", String(10)),  # cbvmda:itemExpirationDate, YYYY-MM-DD
    Column("production_date", String(10)),  # cbvmda:productionDate? (生产日期)
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
)

# ── master data ───────────────────────────────────────────────────────────────────────────
enterprise = Table(
    "enterprise",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uscc", String(18), nullable=False, unique=True),  # 统一社会信用代码
    Column("name", Text, nullable=False),
    Column("role", String(20), nullable=False),  # holder, manufacturer, distributor, hospital, pharmacy, regulator, herb_base …
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
    Column("product_code", String(20), nullable=False, unique=True),  # 药品标识码 (NMPA) or GTIN-14
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
    Column("enterprise_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    UniqueConstraint("enterprise_id", "event_id"),
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
