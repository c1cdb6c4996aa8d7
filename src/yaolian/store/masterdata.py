"""Master data: enterprises (统一社会信用代码), their sites (SGLN / location URIs) and products.

Upserts are keyed by the natural identifier (USCC, location id, product code) and return the
row id; they accept an engine (own transaction) or a connection (the caller's transaction). An
optional field left out keeps its stored value; ``None`` clears it.
:class:`MasterDataWriter` makes many upserts in one transaction and recomputes once.

Master data often arrives after the events, and changes. An enterprise sees the events at its
sites and those naming its party (``event_access``, written at capture): giving a site or a
party identifier to an enterprise also lets it see the events already stored there. The anomaly
rules read site owners and coordinates, party owners, and products' unit counts and storage
ranges: a change to any of these recomputes the projections of the codes concerned
(:func:`~yaolian.store.projections.master_data_changed`), so alerts are what a rebuild would
give whatever order master data and events came in.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec

from sqlalchemy import Connection, Engine, Table, insert, select, text, update

from yaolian.epcis.validate import IDENTIFIER_MAX_BYTES, utf8_longer
from yaolian.errors import NotFoundError, ValidationError
from yaolian.store.projections import MasterDataChange, master_data_changed
from yaolian.store.schema import enterprise, product, site
from yaolian.store.tx import read_tx, write_tx

# GB 32100-2015: 31 characters (no I, O, S, V, Z); weights 3^i mod 31.
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
P = ParamSpec("P")


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
    """Update the row with ``values[key]`` by ``values``, or insert ``values`` plus ``defaults``
    (writers take turns: no other one can insert the key meanwhile)."""
    found = conn.execute(select(table.c.id).where(table.c[key] == values[key])).scalar()
    if found is None:
        stmt = insert(table).values({**(defaults or {}), **values}).returning(table.c.id)
        return int(conn.execute(stmt).scalar_one())
    conn.execute(update(table).where(table.c.id == found).values(values))
    return int(found)


def enterprise_id_for(conn: Connection, uscc: str) -> int | None:
    """Row id of the enterprise with this USCC, or ``None``."""
    found = conn.execute(
        select(enterprise.c.id).where(enterprise.c.uscc == uscc.strip().upper())
    ).scalar()
    return int(found) if found is not None else None


def enterprise_uscc(bind: Engine | Connection, enterprise_id: int) -> str:
    """统一社会信用代码 of the enterprise with this row id."""
    with read_tx(bind) as conn:
        found = conn.execute(
            select(enterprise.c.uscc).where(enterprise.c.id == enterprise_id)
        ).scalar_one()
    return str(found)


def require_enterprise(conn: Connection, uscc: str, place: str) -> int:
    """Row id of the enterprise with this USCC; NotFoundError at ``place`` when none."""
    ent = enterprise_id_for(conn, uscc)
    if ent is None:
        raise NotFoundError(f"no enterprise with USCC {uscc!r}", place=place)
    return ent


def _refuse_taken(
    conn: Connection, table: Table, column: str, value: str | None, key: str, own: str
) -> None:
    """ValidationError when another row (``key`` ≠ ``own``) already has this unique value."""
    if not value:
        return
    other = conn.execute(
        select(table.c[key]).where(table.c[column] == value, table.c[key] != own)
    ).scalar()
    if other is not None:
        raise ValidationError(f"{value!r} already belongs to {table.name} {other}", place=column)


EVENTS_NAMING = (
    "SELECT id FROM event WHERE read_point = :ident UNION SELECT id FROM event "
    "WHERE biz_location = :ident UNION SELECT event_id FROM event_party WHERE value = :ident"
)
"""SQL: ids of the events naming ``:ident`` as read point, business location, source or
destination."""
_GRANT_SQL = (
    "INSERT INTO event_access (enterprise_id, event_id) SELECT :enterprise, named.id FROM ("
    f"{EVENTS_NAMING}) AS named WHERE true ON CONFLICT DO NOTHING"
)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Default of optional master data fields: keep the stored value (``None`` clears it)."""


def _refuse_long(identifier: str | None, place: str) -> None:
    """ValidationError when an identifier is longer than the store indexes."""
    if identifier and utf8_longer(identifier, IDENTIFIER_MAX_BYTES):
        raise ValidationError(f"longer than {IDENTIFIER_MAX_BYTES} bytes (UTF-8)", place=place)


def _given(**fields: Any) -> dict[str, Any]:
    """The fields a caller gave (not :data:`UNSET`), checked against their columns: a region
    is a 6-digit 行政区划代码, short texts fit (PostgreSQL refuses longer ones)."""
    given = {k: v for k, v in fields.items() if v is not UNSET}
    region = given.get("region")
    if region is not None and not (len(region) == 6 and region.isascii() and region.isdigit()):
        raise ValidationError(f"{region!r} is not a 6-digit 行政区划代码", place="region")
    for name in ("role", "kind"):
        text = given.get(name)
        if text is not None and len(text) > 20:
            raise ValidationError(f"{name} has more than 20 characters", place=name)
    return given


_PRODUCT_FIELDS = frozenset(c.name for c in product.c) - {
    "id",
    "product_code",
    "holder_id",
    "manufacturer_id",
}


class MasterDataWriter:
    """Upserts on one connection, collecting what they changed that projections read; on a
    clean exit the projections concerned are recomputed once (``with MasterDataWriter(conn)``).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.change = MasterDataChange()
        self.recomputed = 0  # codes whose projections the last exit recomputed

    def __enter__(self) -> MasterDataWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.recomputed = master_data_changed(self.conn, self.change)
            self.change = MasterDataChange()

    def _grant_stored_events(self, enterprise_id: int, identifier: str) -> None:
        """Let an enterprise see the stored events naming its new site or party identifier."""
        self.conn.execute(text(_GRANT_SQL), {"enterprise": enterprise_id, "ident": identifier})

    def enterprise(
        self,
        uscc: str,
        name: str,
        role: str = UNSET,
        *,
        region: str | None = UNSET,
        party_id: str | None = UNSET,
    ) -> int:
        """Insert or update an enterprise by its USCC; returns its id. ``role`` (holder,
        manufacturer, distributor, hospital, pharmacy …) is needed for a new one; ``party_id``
        is its EPCIS party identifier (PGLN URI) used in source/destination lists."""
        code = validate_uscc(uscc)
        if not name.strip():
            raise ValidationError("enterprise name is empty", place="name")
        given = _given(role=role, region=region, party_id=party_id)
        if "role" in given:
            if not (role or "").strip():
                raise ValidationError("enterprise role is empty", place="role")
            given["role"] = role.strip()
        if "party_id" in given:  # blank is none (the column is unique)
            given["party_id"] = (party_id or "").strip() or None
            _refuse_long(given["party_id"], "party_id")
        conn, e = self.conn, enterprise.c
        _refuse_taken(conn, enterprise, "party_id", given.get("party_id"), "uscc", code)
        before = conn.execute(select(e.id, e.party_id).where(e.uscc == code)).first()
        if before is None and "role" not in given:
            raise ValidationError("a new enterprise needs a role", place="role")
        ent = _upsert(conn, enterprise, "uscc", {"uscc": code, "name": name.strip(), **given})
        party_before = before[1] if before is not None else None
        party = given.get("party_id", party_before)
        if party != party_before:
            if party:
                self._grant_stored_events(ent, party)
            moved = frozenset(p for p in (party_before, party) if p)
            self.change |= MasterDataChange(identifiers=moved)
        return ent

    def site(
        self,
        location_id: str,
        enterprise_uscc: str,
        name: str,
        *,
        kind: str | None = UNSET,
        region: str | None = UNSET,
        lat: float | None = UNSET,
        lon: float | None = UNSET,
    ) -> int:
        """Insert or update a site (read point / business location) owned by an enterprise."""
        location = location_id.strip()
        if not location:
            raise ValidationError("site location id is empty", place="location_id")
        _refuse_long(location, "location_id")
        conn, st = self.conn, site.c
        owner = require_enterprise(conn, enterprise_uscc, "enterprise_uscc")
        read = (st.enterprise_id, st.lat, st.lon)
        before = conn.execute(select(*read).where(st.location_id == location)).first()
        values = {
            "location_id": location,
            "enterprise_id": owner,
            "name": name,
            **_given(kind=kind, region=region, lat=lat, lon=lon),
        }
        row = _upsert(conn, site, "location_id", values)
        after = conn.execute(select(*read).where(st.id == row)).one()
        if before is None or before[0] != owner:
            self._grant_stored_events(owner, location)
        if before is None or tuple(before) != tuple(after):
            self.change |= MasterDataChange(identifiers=frozenset({location}))
        return row

    def product(
        self,
        product_code: str,
        generic_name: str,
        *,
        holder_uscc: str | None = UNSET,
        manufacturer_uscc: str | None = UNSET,
        **fields: Any,
    ) -> int:
        """Insert or update a product by its 药品标识码 / GTIN; other columns as keyword
        arguments (``gtin``, ``trade_name``, ``dosage_form``, ``strength``, ``pack_spec``,
        ``packaging_level``, ``units_per_pack``, ``approval_no`` …)."""
        unknown = sorted(set(fields) - _PRODUCT_FIELDS)
        if unknown:
            raise ValidationError(
                f"unknown product field(s): {', '.join(unknown)}", place="product"
            )
        code = product_code.strip()
        if not code:
            raise ValidationError("product code is empty", place="product_code")
        conn, p = self.conn, product.c
        _refuse_taken(conn, product, "gtin", fields.get("gtin"), "product_code", code)
        values: dict[str, Any] = {"product_code": code, "generic_name": generic_name, **fields}
        for column, uscc in (("holder_id", holder_uscc), ("manufacturer_id", manufacturer_uscc)):
            if uscc is not UNSET:
                place = column.replace("_id", "_uscc")
                values[column] = None if uscc is None else require_enterprise(conn, uscc, place)
        read = (p.units_per_pack, p.temp_min, p.temp_max, p.gtin)
        before = conn.execute(select(*read).where(p.product_code == code)).first()
        defaults = {"packaging_level": 1, "units_per_pack": 1}
        row = _upsert(conn, product, "product_code", values, defaults)
        after = conn.execute(select(*read).where(p.id == row)).one()
        if before is None or tuple(before) != tuple(after):
            was = tuple(before) if before is not None else (None, None, None, None)
            named = frozenset({code, *({was[3], after[3]} - {None})})
            regauged = was[3] != after[3]  # codes keyed by a GTIN now find another product
            self.change |= MasterDataChange(
                unit_products=named if regauged or was[0] != after[0] else frozenset(),
                range_products=named if regauged or was[1:3] != tuple(after[1:3]) else frozenset(),
            )
        return row


def _in_own_writer(
    method: Callable[Concatenate[MasterDataWriter, P], int],
) -> Callable[Concatenate[Engine | Connection, P], int]:
    """A writer method as a function of an engine or connection, with its own writer."""

    def upsert(bind: Engine | Connection, /, *args: P.args, **kwargs: P.kwargs) -> int:
        with write_tx(bind) as conn, MasterDataWriter(conn) as writer:
            return method(writer, *args, **kwargs)

    upsert.__doc__ = method.__doc__
    return upsert


upsert_enterprise = _in_own_writer(MasterDataWriter.enterprise)
upsert_site = _in_own_writer(MasterDataWriter.site)
upsert_product = _in_own_writer(MasterDataWriter.product)
