"""供需对接: demand posts matched to supply offers, and transfer suggestions from surplus to
deficit regions — both one linear programme (scipy ``linprog``, HiGHS).

Variables are the packs moved along each feasible arc (offer → demand, or surplus region →
deficit region). An arc is feasible when the goods can arrive by the date needed (available
date + lead time ≤ needed by) and will not expire before then. The cost of an arc is its lead
time in days plus a first-expiry-first-out term (earlier expiry is cheaper, so the soonest-
expiring stock goes first); unmet demand costs far more than any arc, so the programme first
meets as much demand as it can, then does it by the fastest, soonest-expiring means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix
from sqlalchemy import Connection, Table, insert, select, update

from yaolian.errors import NotFoundError, ValidationError
from yaolian.store.schema import site, supply_demand, supply_lead_time, supply_offer
from yaolian.supply.ledger import require_known_product, require_site
from yaolian.supply.risk import assess
from yaolian.supply.signals import DEFAULT_LEAD_DAYS, parse_day

SAME_REGION_LEAD_DAYS = 2.0
UNMET_COST = 1e6
FEFO_WEIGHT = 10.0  # cost (lead-time days) per year of remaining shelf life
SURPLUS_DAYS = 60.0  # cover kept back by a region giving stock
TARGET_DAYS = 30.0  # cover a deficit region is brought up to


@dataclass(frozen=True, slots=True)
class Source:
    """Stock that can move: an offer or a surplus region."""

    id: str
    product: str
    region: str | None
    quantity: float
    available: date
    expiry: date | None = None


@dataclass(frozen=True, slots=True)
class Sink:
    """A need: a demand post or a deficit region."""

    id: str
    product: str
    region: str | None
    quantity: float
    needed_by: date


@dataclass(frozen=True, slots=True)
class Match:
    """Packs from a source to a sink, arriving by ``arrives``."""

    source: str
    sink: str
    product: str
    quantity: float
    lead_days: float
    arrives: date
    expiry: date | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "source": self.source,
            "sink": self.sink,
            "product": self.product,
            "quantity": self.quantity,
            "lead_days": self.lead_days,
            "arrives": self.arrives.isoformat(),
            "expiry": self.expiry.isoformat() if self.expiry else None,
        }


def lead_days(leads: dict[tuple[str, str], float], src: str | None, dst: str | None) -> float:
    """Lead time between regions: recorded, else 2 days within a region, else 14."""
    if src is not None and dst is not None:
        if (src, dst) in leads:
            return leads[(src, dst)]
        if src == dst:
            return SAME_REGION_LEAD_DAYS
    return DEFAULT_LEAD_DAYS


def solve(
    sources: list[Source], sinks: list[Sink], leads: dict[tuple[str, str], float]
) -> tuple[list[Match], dict[str, float]]:
    """Optimal matches and the unmet quantity per sink (see the module doc)."""
    arcs: list[tuple[int, int, float, float]] = []  # source, sink, cost, lead
    for i, s in enumerate(sources):
        for j, k in enumerate(sinks):
            if s.product != k.product or s.id == k.id:
                continue
            lead = lead_days(leads, s.region, k.region)
            arrives = s.available + timedelta(days=lead)
            if arrives > k.needed_by or (s.expiry is not None and s.expiry <= k.needed_by):
                continue
            shelf = (s.expiry - k.needed_by).days / 365.0 if s.expiry else 10.0
            arcs.append((i, j, lead + FEFO_WEIGHT * shelf, lead))
    n_arcs, n_sinks = len(arcs), len(sinks)
    if not sinks:
        return [], {}
    cost = np.concatenate([[a[2] for a in arcs], np.full(n_sinks, UNMET_COST)])
    # sinks: sum of arcs into j + unmet_j == need_j
    rows = [a[1] for a in arcs] + list(range(n_sinks))
    cols = list(range(n_arcs)) + [n_arcs + j for j in range(n_sinks)]
    a_eq = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_sinks, n_arcs + n_sinks))
    b_eq = np.array([k.quantity for k in sinks])
    # sources: sum of arcs out of i <= quantity_i
    a_ub = coo_matrix(
        (np.ones(n_arcs), ([a[0] for a in arcs], list(range(n_arcs)))),
        shape=(len(sources), n_arcs + n_sinks),
    )
    b_ub = np.array([s.quantity for s in sources])
    result = linprog(
        cost,
        A_ub=a_ub.tocsr() if sources else None,
        b_ub=b_ub if sources else None,
        A_eq=a_eq.tocsr(),
        b_eq=b_eq,
        bounds=(0, None),
        method="highs",
    )
    if not result.success:  # pragma: no cover - the programme is always feasible (slack)
        raise ValidationError(f"matching failed: {result.message}", place="matching")
    x = result.x
    matches = []
    for (i, j, _c, lead), qty in zip(arcs, x[:n_arcs], strict=True):
        if qty > 1e-6:
            s, k = sources[i], sinks[j]
            matches.append(
                Match(
                    s.id,
                    k.id,
                    s.product,
                    round(float(qty), 3),
                    lead,
                    s.available + timedelta(days=lead),
                    s.expiry,
                )
            )
    unmet = {k.id: round(float(u), 3) for k, u in zip(sinks, x[n_arcs:], strict=True) if u > 1e-6}
    return matches, unmet


def _leads(conn: Connection) -> dict[tuple[str, str], float]:
    return {(a, b): float(d) for a, b, d in conn.execute(select(supply_lead_time))}


def _regions(conn: Connection) -> dict[str, str | None]:
    return {r[0]: r[1] for r in conn.execute(select(site.c.location_id, site.c.region))}


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def post_demand(
    conn: Connection, *, site_id: str, product: str, quantity: float, needed_by: str | date
) -> int:
    """A hospital's demand post; returns its id."""
    if quantity <= 0:
        raise ValidationError("quantity must be positive", place="quantity")
    product, site_id = require_known_product(conn, product), require_site(site_id)
    day = parse_day(needed_by, "needed_by")
    return int(
        conn.execute(
            insert(supply_demand)
            .values(
                site=site_id,
                product=product,
                quantity=float(quantity),
                needed_by=day.isoformat(),
                posted_us=_now_us(),
                status="open",
            )
            .returning(supply_demand.c.id)
        ).scalar_one()
    )


def post_offer(
    conn: Connection,
    *,
    site_id: str,
    product: str,
    quantity: float,
    available_from: str | date,
    expiry: str | date | None = None,
    lot: str | None = None,
) -> int:
    """Stock offered by a distributor, manufacturer or region; returns its id."""
    if quantity <= 0:
        raise ValidationError("quantity must be positive", place="quantity")
    product, site_id = require_known_product(conn, product), require_site(site_id)
    avail = parse_day(available_from, "available_from")
    exp = parse_day(expiry, "expiry") if expiry else None
    if exp is not None and exp <= avail:
        raise ValidationError("the offered lot expires before it is available", place="expiry")
    return int(
        conn.execute(
            insert(supply_offer)
            .values(
                site=site_id,
                product=product,
                quantity=float(quantity),
                available_from=avail.isoformat(),
                expiry=exp.isoformat() if exp else None,
                lot=lot,
                posted_us=_now_us(),
                status="open",
            )
            .returning(supply_offer.c.id)
        ).scalar_one()
    )


def list_posts(conn: Connection, kind: str, status: str | None = "open") -> list[dict[str, Any]]:
    """Demand (``kind="demand"``) or offer posts as plain rows."""
    table = _post_table(kind)
    q = select(table).order_by(table.c.id)
    if status:
        q = q.where(table.c.status == status)
    return [dict(r._mapping) for r in conn.execute(q)]


def post_site(conn: Connection, kind: str, post_id: int) -> str:
    """The site of a demand or offer post (NotFoundError when there is none)."""
    table = _post_table(kind)
    found = conn.execute(select(table.c.site).where(table.c.id == post_id)).scalar()
    if found is None:
        raise NotFoundError(f"no {kind} post {post_id}", place="id")
    return str(found)


def close_post(conn: Connection, kind: str, post_id: int) -> None:
    """Close a demand or offer post (met, or no longer wanted): it leaves the board and the
    matching."""
    table = _post_table(kind)
    if (
        conn.execute(update(table).where(table.c.id == post_id).values(status="closed")).rowcount
        == 0
    ):
        raise NotFoundError(f"no {kind} post {post_id}", place="id")


def _post_table(kind: str) -> Table:
    table = {"demand": supply_demand, "offer": supply_offer}.get(kind)
    if table is None:
        raise ValidationError(f"unknown post kind {kind!r}", place="kind")
    return table


def match_posts(
    conn: Connection, product: str | None = None
) -> tuple[list[Match], dict[str, float]]:
    """Match open demand posts to open offers (ids ``demand:N`` / ``offer:N``)."""
    regions = _regions(conn)
    sources = [
        Source(
            f"offer:{r['id']}",
            r["product"],
            regions.get(r["site"]),
            r["quantity"],
            date.fromisoformat(r["available_from"]),
            date.fromisoformat(r["expiry"]) if r["expiry"] else None,
        )
        for r in list_posts(conn, "offer")
        if not product or r["product"] == product
    ]
    sinks = [
        Sink(
            f"demand:{r['id']}",
            r["product"],
            regions.get(r["site"]),
            r["quantity"],
            date.fromisoformat(r["needed_by"]),
        )
        for r in list_posts(conn, "demand")
        if not product or r["product"] == product
    ]
    return solve(sources, sinks, _leads(conn))


def suggest_transfers(
    conn: Connection, as_of: date | datetime | None = None, *, product: str | None = None
) -> tuple[list[Match], dict[str, float]]:
    """Transfers from regions with more than 60 days of supply to regions below 30, by LP
    (ids ``region:CODE``); a deficit region needs stock within 30 days."""
    risks = assess(conn, as_of, product=product)
    sources, sinks = [], []
    for r in risks:
        if r.demand_per_day <= 0:
            continue
        cover = (r.stock + r.in_transit) / r.demand_per_day
        today = r.as_of
        if cover > SURPLUS_DAYS:
            give = r.stock - SURPLUS_DAYS * r.demand_per_day
            if give >= 1:
                sources.append(
                    Source(f"region:{r.region}", r.product, r.region, float(np.floor(give)), today)
                )
        elif cover < TARGET_DAYS:
            need = TARGET_DAYS * r.demand_per_day - r.stock - r.in_transit
            if need >= 1:
                sinks.append(
                    Sink(
                        f"region:{r.region}",
                        r.product,
                        r.region,
                        float(np.ceil(need)),
                        today + timedelta(days=TARGET_DAYS),
                    )
                )
    return solve(sources, sinks, _leads(conn))
