"""Master data: enterprises (统一社会信用代码), their sites (SGLN / location URIs) and products.

Upserts are keyed by the natural identifier (USCC, location id, product code) and return the
row id; they accept an engine (own transaction) or a connection (the caller's transaction).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from yaolian.errors import NotFoundError, ValidationError
from yaolian.store.schema import enterprise, product, site
from yaolian.store.tx import write_tx

# GB 32100-2015: 31 characters (no I, O, S, V, Z); weights 3^i mod 31.
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(body: str) -> str:
    """The check character of a 统一社会信用代码 from its first 17 characters (GB 32100-2015)."""
    total = sum(USCC_CHARSET.index(ch) * w for ch, w in zip(body, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def validate_uscc(uscc: str) -> str:
    """Return ``uscc`` upper-cased if it is a well-formed 统一社会信用代码, else ValidationError."""
    code = uscc.strip().upper()
    if len(code) != 18:
        raise ValidationError(f"USCC must have 18 characters, got {len(code)}", place="uscc")
    bad = sorted({ch for ch in code if ch not in USCC_CHARSET})
    if bad:
        raise ValidationError(f"USCC has characters outside GB 32100: {''.join(bad)}", place="uscc")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise ValidationError(
            f"USCC check character is {code[17]!r}, expected {expected!r}", place="uscc"
        )
    return code


def _upsert(
    conn: Connection,
    table: Table,
    key: str,
    values: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> int:
    """Insert ``values`` (plus ``defaults`` for a new row) or update the row with the same key."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**{**(defaults or {}), **values})
    updates = {k: stmt.excluded[k] for k in values if k != key}
    stmt = stmt.on_conflict_do_update(index_elements=[key], set_=updates).returning(table.c.id)
    return int(conn.execute(stmt).scalar_one())


def enterprise_id_for(conn: Connection, uscc: str) -> int | None:
    """Row id of the enterprise with this USCC, or ``None``."""
    found = conn.execute(
        select(enterprise.c.id).where(enterprise.c.uscc == uscc.strip().upper())
    ).scalar()
    return int(found) if found is not None else None


def _require_enterprise(conn: Connection, uscc: str, place: str) -> int:
    ent = enterprise_id_for(conn, uscc)
    if ent is None:
        raise NotFoundError(f"no enterprise with USCC {uscc!r}", place=place)
    return ent


def upsert_enterprise(
    bind: Engine | Connection,
    uscc: str,
    name: str,
    role: str,
    *,
    region: str | None = None,
    party_id: str | None = None,
) -> int:
    """Insert or update an enterprise by its USCC; returns its id.

    ``party_id`` is its EPCIS party identifier (PGLN URI) used in source/destination lists.
    """
    code = validate_uscc(uscc)
    if not name.strip():
        raise ValidationError("enterprise name is empty", place="name")
    values = {
        "uscc": code,
        "name": name.strip(),
        "role": role,
        "region": region,
        "party_id": party_id,
    }
    with write_tx(bind) as conn:
        return _upsert(conn, enterprise, "uscc", values)


def upsert_site(
    bind: Engine | Connection,
    location_id: str,
    enterprise_uscc: str,
    name: str,
    *,
    kind: str | None = None,
    region: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> int:
    """Insert or update a site (read point / business location) owned by an enterprise."""
    if not location_id.strip():
        raise ValidationError("site location id is empty", place="location_id")
    with write_tx(bind) as conn:
        owner = _require_enterprise(conn, enterprise_uscc, "enterprise")
        values = {
            "location_id": location_id.strip(),
            "enterprise_id": owner,
            "name": name,
            "kind": kind,
            "region": region,
            "lat": lat,
            "lon": lon,
        }
        return _upsert(conn, site, "location_id", values)


_PRODUCT_FIELDS = frozenset(c.name for c in product.c) - {
    "id",
    "product_code",
    "holder_id",
    "manufacturer_id",
}


def upsert_product(
    bind: Engine | Connection,
    product_code: str,
    generic_name: str,
    *,
    holder_uscc: str | None = None,
    manufacturer_uscc: str | None = None,
    **fields: Any,
) -> int:
    """Insert or update a product by its 药品标识码 / GTIN; other columns as keyword arguments
    (``gtin``, ``trade_name``, ``dosage_form``, ``strength``, ``pack_spec``,
    ``packaging_level``, ``units_per_pack``, ``approval_no`` …)."""
    unknown = sorted(set(fields) - _PRODUCT_FIELDS)
    if unknown:
        raise ValidationError(f"unknown product field(s): {', '.join(unknown)}", place="product")
    if not product_code.strip():
        raise ValidationError("product code is empty", place="product_code")
    with write_tx(bind) as conn:
        values: dict[str, Any] = {
            "product_code": product_code.strip(),
            "generic_name": generic_name,
            **fields,
        }
        if holder_uscc:
            values["holder_id"] = _require_enterprise(conn, holder_uscc, "holder")
        if manufacturer_uscc:
            values["manufacturer_id"] = _require_enterprise(conn, manufacturer_uscc, "manufacturer")
        defaults = {"packaging_level": 1, "units_per_pack": 1}
        return _upsert(conn, product, "product_code", values, defaults)
