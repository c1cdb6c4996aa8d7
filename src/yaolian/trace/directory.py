"""Names for the URIs the projections keep: parties and sites → enterprises, product codes →
products. Read-time resolution, so master data may arrive after the events."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Connection, Table, exists, or_, select

from yaolian.store import schema as s


@dataclass(frozen=True, slots=True)
class Holder:
    """An enterprise as shown in a trace: its id, name, role and 统一社会信用代码."""

    enterprise_id: int
    name: str
    role: str
    uscc: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "enterprise_id": self.enterprise_id,
            "name": self.name,
            "role": self.role,
            "uscc": self.uscc,
        }


@dataclass(frozen=True, slots=True)
class Place:
    """A registered site: its URI, name, kind, region and owner."""

    location_id: str
    name: str
    kind: str | None
    region: str | None
    owner: Holder

    def as_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "location_id": self.location_id,
            "name": self.name,
            "kind": self.kind,
            "region": self.region,
            "owner": self.owner.as_dict(),
        }


class Directory:
    """Resolves party and site URIs in batches, caching what it has looked up."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parties: dict[str, Holder | None] = {}
        self.sites: dict[str, Place | None] = {}

    def load(self, uris: Iterable[str | None]) -> None:
        """Look up every URI not yet known, as a party id and as a site id."""
        wanted = sorted({u for u in uris if u and u not in self.parties})
        if not wanted:
            return
        e, st = s.enterprise.c, s.site.c
        for start in range(0, len(wanted), 2_000):
            part = wanted[start : start + 2_000]
            for uri in part:
                self.parties[uri] = None
                self.sites.setdefault(uri, None)
            for row in self.conn.execute(
                select(e.party_id, e.id, e.name, e.role, e.uscc).where(e.party_id.in_(part))
            ):
                self.parties[row[0]] = Holder(row[1], row[2], row[3], row[4])
            for site_row in self.conn.execute(
                select(st.location_id, st.name, st.kind, st.region, e.id, e.name, e.role, e.uscc)
                .join(s.enterprise, s.enterprise.c.id == st.enterprise_id)
                .where(st.location_id.in_(part))
            ):
                owner = Holder(site_row[4], site_row[5], site_row[6], site_row[7])
                self.sites[site_row[0]] = Place(
                    site_row[0], site_row[1], site_row[2], site_row[3], owner
                )

    def holder(self, party: str | None, site: str | None = None) -> Holder | None:
        """The enterprise of a party URI; else the owner of the site (or of the party URI used
        as a location)."""
        self.load((party, site))
        for uri in (party, site):
            if not uri:
                continue
            found = self.parties.get(uri)
            if found is not None:
                return found
            place = self.sites.get(uri)
            if place is not None:
                return place.owner
        return None

    def place(self, site: str | None) -> Place | None:
        """The registered site with this URI."""
        if not site:
            return None
        self.load((site,))
        return self.sites.get(site)


def product_rows(conn: Connection, codes: Collection[str]) -> dict[str, dict[str, Any]]:
    """Product master rows (with holder and manufacturer names) by product code or GTIN."""
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return {}
    p = s.product.c
    holder = s.enterprise.alias("holder")
    maker = s.enterprise.alias("maker")
    out: dict[str, dict[str, Any]] = {}
    stmt = (
        select(s.product, holder.c.name.label("holder"), maker.c.name.label("manufacturer"))
        .outerjoin(holder, holder.c.id == p.holder_id)
        .outerjoin(maker, maker.c.id == p.manufacturer_id)
        .where(or_(p.product_code.in_(wanted), p.gtin.in_(wanted)))
    )
    for row in conn.execute(stmt):
        data = dict(row._mapping)
        for key in (data["product_code"], data["gtin"]):
            if key in wanted:
                out[key] = data
    return out


def enterprise_rows(enterprise_id: int) -> tuple[tuple[Table, ColumnElement[bool]], ...]:
    """Per projection that names parties and places — hand-overs (``custody``), current state
    (``code_state``) and sales (``dispense``) — the SQL condition that a row is the
    enterprise's: it shipped or received the code, holds it, or sold it at one of its sites."""
    e, st = s.enterprise.c, s.site.c
    party = select(e.party_id).where(e.id == enterprise_id).scalar_subquery()
    own_sites = select(st.location_id).where(st.enterprise_id == enterprise_id)
    c, cs, d = s.custody.c, s.code_state.c, s.dispense.c
    return (
        (
            s.custody,
            or_(
                c.from_party == party,
                c.to_party == party,
                c.from_site.in_(own_sites),
                c.to_site.in_(own_sites),
            ),
        ),
        (s.code_state, or_(cs.custodian == party, cs.site.in_(own_sites))),
        (s.dispense, d.site.in_(own_sites)),
    )


def handled_by(enterprise_id: int, code_id: Any) -> ColumnElement[bool]:
    """SQL condition: the enterprise shipped, received, holds or sold the code ``code_id`` (a
    value or a column, e.g. ``alert.code_id``) — look-ups by code in the hand-overs, the state
    and the sales, so a list filtered by it never scans every hand-over of the store."""
    return or_(
        *(
            exists().where(table.c.code_id == code_id, mine)
            for table, mine in enterprise_rows(enterprise_id)
        )
    )


def products_of(enterprise_id: int) -> CompoundSelect:
    """SQL: the 药品标识码 and GTINs of the products the enterprise holds (上市许可持有人) or
    makes."""
    p = s.product.c
    mine = or_(p.holder_id == enterprise_id, p.manufacturer_id == enterprise_id)
    return select(p.product_code).where(mine).union(select(p.gtin).where(mine, p.gtin.is_not(None)))


def made_by(enterprise_id: int, code_id: Any) -> ColumnElement[bool]:
    """SQL condition: the code ``code_id`` (a value or a column) is of a product the enterprise
    holds or makes (:func:`products_of`) — a counterfeit of it included."""
    cs = s.code_state.c
    return exists().where(cs.code_id == code_id, cs.product.in_(products_of(enterprise_id)))


def concerns_code(enterprise_id: int, code_id: Any) -> ColumnElement[bool]:
    """SQL condition: the code ``code_id`` is the enterprise's concern — it handled the code
    (:func:`handled_by`) or the code is of its product (:func:`made_by`)."""
    return or_(handled_by(enterprise_id, code_id), made_by(enterprise_id, code_id))


def party_to_code(conn: Connection, enterprise_id: int, code_id: int) -> bool:
    """Whether an enterprise is party to a code: it shipped, received, holds or sold it
    (:func:`handled_by`), or it is the holder/manufacturer of the code's product
    (:func:`made_by`)."""
    party = or_(handled_by(enterprise_id, code_id), made_by(enterprise_id, code_id))
    return bool(conn.execute(select(party)).scalar())


def holds_product(conn: Connection, enterprise_id: int, product_code: str) -> bool:
    """Whether an enterprise is the holder (上市许可持有人) or manufacturer of a product."""
    p = s.product.c
    return (
        conn.execute(
            select(p.id)
            .where(
                or_(p.product_code == product_code, p.gtin == product_code),
                or_(p.holder_id == enterprise_id, p.manufacturer_id == enterprise_id),
            )
            .limit(1)
        ).first()
        is not None
    )
