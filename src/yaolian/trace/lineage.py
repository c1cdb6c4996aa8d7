"""Trace backward and forward (追溯: 来源可查、去向可追) as a graph of nodes, edges and events.

* **backward** from a code: its commissioning (batch, holder, site), every container it was in
  (with times), every hand-over (enterprise names and dates), its sales, and through
  transformation events back to the input lots and codes (herb lot → 饮片 → 中成药);
* **forward** from a code, a batch (药品标识码/GTIN + 批号) or a lot class: every holder and site
  reached with quantities, children via aggregation, outputs via transformation, dispensed
  quantities per site — the whole batch summarised per holder so a 100k-pack batch stays a
  small graph.

``at`` (microseconds since the epoch) answers as of that moment: later events are ignored.
Every query walks the projections and a few indexed event tables; nothing scans the log.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sqlalchemy import Connection, and_, func, or_, select

from yaolian.codes.identity import canonical_key, key_kind, typed, uri_for_key
from yaolian.codes.nmpa import nmpa_lot_uri
from yaolian.epcis.cbv import BIZ_STEP_NAMES_ZH, DISPOSITION_NAMES_ZH
from yaolian.errors import CodeError, NotFoundError, ValidationError
from yaolian.store import schema as s
from yaolian.store.access import Viewer
from yaolian.store.dictionary import code_keys, lookup_codes
from yaolian.trace import rawsql
from yaolian.trace.directory import Directory, product_rows
from yaolian.trace.projection import chunks
from yaolian.trace.state import sale_day

if TYPE_CHECKING:
    import networkx as nx

MAX_CODE_NODES = 2_000  # beyond this, codes are summarised per holder
MAX_TRANSFORM_DEPTH = 12
_EVENT_TYPES = {v: k for k, v in s.EVENT_TYPE_IDS.items()}
_IN, _OUT = s.ROLE_IDS["input"], s.ROLE_IDS["output"]
NOW = 2**62


@dataclass(frozen=True)
class Target:
    """What to trace: one code, or a batch (product code + lot)."""

    text: str
    code_id: int | None = None
    key: str | None = None
    product: str | None = None
    lot: str | None = None

    @property
    def is_batch(self) -> bool:
        """A batch rather than a single code."""
        return self.code_id is None


def batch_of_key(key: str) -> tuple[str, str] | None:
    """(product code, lot) of a batch-class key (``nl:…`` or ``01/{gtin}/10/{lot}``)."""
    if key.startswith("nl:"):
        product, _, lot = key[3:].partition("/")
        return product, unquote(lot)
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "01" and parts[2] == "10":
        return parts[1], unquote(parts[3])
    return None


def batch_key(product: str, lot: str) -> str:
    """The canonical key of a batch class (药品标识码 or GTIN-14, plus 批号)."""
    return canonical_key(nmpa_lot_uri(product, lot))


def resolve(conn: Connection, text: str, lot: str | None = None) -> Target:
    """A code in any form, a batch class URI, a product code with ``lot``, or ``PRODUCT/LOT``
    (not a code) → :class:`Target`.

        Raises :class:`CodeError` for a malformed code and :class:`NotFoundError` for a code the
        store has never seen.
    """
    text = typed(text)
    if lot is not None:
        lot = typed(lot)
        if not text or not lot:
            raise ValidationError("a batch needs a product code and a lot", place="batch")
        return Target(text=f"{text}/{lot}", product=text, lot=lot)
    try:
        key = canonical_key(text)
    except CodeError:
        product, slash, batch_lot = text.partition("/")
        if slash and product and batch_lot and "/" not in batch_lot:
            return resolve(conn, product, batch_lot)  # PRODUCT/LOT, as recalls list batches
        raise
    if key_kind(key) == "class":
        batch = batch_of_key(key)
        if batch is None:
            raise CodeError(f"{text!r} names a product, not a batch: add the lot", place="code")
        return Target(text=text, key=key, product=batch[0], lot=batch[1])
    code_id = lookup_codes(conn, [key]).get(key)
    if code_id is None:
        raise NotFoundError(f"code {text!r} is not in the store", place="code")
    return Target(text=text, code_id=code_id, key=key)


@dataclass
class Graph:
    """Nodes (by id), edges and the events they rest on; networkx view via :meth:`to_networkx`."""

    root: str
    direction: str
    at_us: int | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def node(self, node_id: str, kind: str, **attrs: Any) -> str:
        """Add or enrich a node; returns its id."""
        self.nodes.setdefault(node_id, {"id": node_id, "kind": kind}).update(
            {k: v for k, v in attrs.items() if v is not None}
        )
        return node_id

    def edge(self, source: str, target: str, kind: str, **attrs: Any) -> None:
        """Add an edge."""
        self.edges.append(
            {
                "from": source,
                "to": target,
                "kind": kind,
                **{k: v for k, v in attrs.items() if v is not None},
            }
        )

    def to_networkx(self) -> nx.MultiDiGraph:
        """The graph as a networkx MultiDiGraph (for analysis and layout)."""
        import networkx as nx  # loaded by who asks for it

        g = nx.MultiDiGraph()
        for node_id, attrs in self.nodes.items():
            g.add_node(node_id, **attrs)
        for e in self.edges:
            g.add_edge(e["from"], e["to"], **e)
        return g

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: nodes and events as lists, sorted for stable output."""
        return {
            "root": self.root,
            "direction": self.direction,
            "at_us": self.at_us,
            "summary": self.summary,
            "nodes": list(self.nodes.values()),
            "edges": self.edges,
            "events": [self.events[k] for k in sorted(self.events)],
        }


def _day(us: int | None) -> str | None:
    return sale_day(us).isoformat() if us is not None else None


class _Walk:
    """Shared machinery of both directions: names, events, code nodes, transformations."""

    def __init__(self, conn: Connection, graph: Graph, viewer: Viewer | None) -> None:
        self.conn = conn
        self.g = graph
        self.at = graph.at_us if graph.at_us is not None else NOW
        self.dir = Directory(conn)
        self.viewer = viewer
        self._event_ids: set[int] = set()

    # ── nodes ──
    def party_node(self, party: str | None, site: str | None) -> str | None:
        holder = self.dir.holder(party, site)
        if holder is not None:
            return self.g.node(
                f"enterprise:{holder.enterprise_id}",
                "enterprise",
                name=holder.name,
                role=holder.role,
            )
        uri = party or site
        return self.g.node(f"party:{uri}", "party", uri=uri) if uri else None

    def site_node(self, site: str | None) -> str | None:
        if not site:
            return None
        place = self.dir.place(site)
        return self.g.node(
            f"site:{site}",
            "site",
            uri=site,
            name=place.name if place else None,
            owner=place.owner.name if place else None,
        )

    def code_nodes(self, ids: Collection[int]) -> dict[int, str]:
        keys = code_keys(self.conn, ids)
        cs = s.code_state.c
        states = {}
        for part in chunks(ids):
            for r in self.conn.execute(
                select(cs.code_id, cs.status, cs.product, cs.lot, cs.expiry, cs.last_us).where(
                    cs.code_id.in_(part)
                )
            ):
                states[r[0]] = r
        then = self.statuses_then(states)
        out = {}
        for cid in ids:
            key = keys.get(cid, "")
            st = states.get(cid)
            out[cid] = self.g.node(
                f"code:{cid}",
                "code",
                key=key,
                uri=_uri(key),
                status=then.get(cid, st.status if st is not None else None),
                product=st.product if st is not None else None,
                lot=st.lot if st is not None else None,
                expiry=st.expiry if st is not None else None,
            )
        return out

    def statuses_then(self, states: dict[int, Any]) -> dict[int, str | None]:
        """Codes' statuses as of an ``at`` before their last event (``code_state`` rows with
        ``last_us``): from their hand-overs and sales up to then; ``None`` before they were
        made. Codes with nothing after ``at`` keep their current status (not in the answer)."""
        if self.g.at_us is None:
            return {}
        earlier = [cid for cid, st in states.items() if st.last_us > self.at]
        places = places_at(self.conn, earlier, self.at)
        return {cid: places[cid][2] if cid in places else None for cid in earlier}

    def event_ref(self, eid: int | None) -> int | None:
        if eid is not None:
            self._event_ids.add(eid)
        return eid

    def load_events(self) -> None:
        """Fill ``graph.events`` for every event referred to (visible ones only)."""
        ids = set(self._event_ids)
        if self.viewer is not None and not self.viewer.sees_all:
            ea = s.event_access.c
            seen: set[int] = set()
            for part in chunks(ids):
                seen.update(
                    r[0]
                    for r in self.conn.execute(
                        select(ea.event_id).where(
                            ea.event_id.in_(part), ea.enterprise_id == self.viewer.enterprise_id
                        )
                    )
                )
            ids = seen
        ev = s.event.c
        rows = [
            r
            for part in chunks(ids)
            for r in self.conn.execute(
                select(
                    ev.id,
                    ev.type,
                    ev.event_time_us,
                    ev.biz_step,
                    ev.disposition,
                    ev.read_point,
                    ev.biz_location,
                ).where(ev.id.in_(part))
            )
        ]
        self.dir.load([r.biz_location or r.read_point for r in rows])
        for r in rows:
            place = self.dir.place(r.biz_location or r.read_point)
            self.g.events[r.id] = {
                "id": r.id,
                "type": _EVENT_TYPES.get(r.type),
                "time_us": r.event_time_us,
                "date": _day(r.event_time_us),
                "biz_step": r.biz_step,
                "biz_step_zh": BIZ_STEP_NAMES_ZH.get(r.biz_step or ""),
                "disposition": r.disposition,
                "disposition_zh": DISPOSITION_NAMES_ZH.get(r.disposition or ""),
                "read_point": r.read_point,
                "biz_location": r.biz_location,
                "site_name": place.name if place else None,  # of the location, else read point
            }

    # ── transformations ──
    def transformations(self, start: list[tuple[str, int]], backward: bool) -> None:
        """Follow transformation events from codes/classes (``("code"|"class", id)``)."""
        mine, other = (_OUT, _IN) if backward else (_IN, _OUT)
        frontier = list(start)
        seen = set(start)
        for _ in range(MAX_TRANSFORM_DEPTH):
            if not frontier:
                return
            code_ids = [i for k, i in frontier if k == "code"]
            class_ids = [i for k, i in frontier if k == "class"]
            links: list[tuple[str, int, int]] = []  # (kind, id, event)
            ep, eq, ev = s.event_epc.c, s.event_quantity.c, s.event.c
            if code_ids:
                links += [
                    ("code", r[0], r[1])
                    for r in self.conn.execute(
                        select(ep.code_id, ep.event_id)
                        .join(s.event, ev.id == ep.event_id)
                        .where(
                            ep.code_id.in_(code_ids),
                            ep.role == mine,
                            ev.type == s.EVENT_TYPE_IDS["TransformationEvent"],
                            ev.event_time_us <= self.at,
                        )
                    )
                ]
            if class_ids:
                links += [
                    ("class", r[0], r[1])
                    for r in self.conn.execute(
                        select(eq.class_id, eq.event_id)
                        .join(s.event, ev.id == eq.event_id)
                        .where(
                            eq.class_id.in_(class_ids),
                            eq.role == mine,
                            ev.type == s.EVENT_TYPE_IDS["TransformationEvent"],
                            ev.event_time_us <= self.at,
                        )
                    )
                ]
            if not links:
                return
            events = sorted({e for _, _, e in links})
            other_rows = [
                ("code", r[0], r[1], None, None)
                for r in self.conn.execute(
                    select(ep.code_id, ep.event_id).where(ep.event_id.in_(events), ep.role == other)
                )
            ]
            other_rows += [
                ("class", r[0], r[1], r[2], r[3])
                for r in self.conn.execute(
                    select(eq.class_id, eq.event_id, eq.quantity, eq.uom).where(
                        eq.event_id.in_(events), eq.role == other
                    )
                )
            ]
            keys = code_keys(self.conn, {i for _, i, _ in links} | {r[1] for r in other_rows})
            by_event: dict[int, list[str]] = defaultdict(list)
            for kind, i, eid in links:
                by_event[eid].append(self._ref_node(kind, i, keys.get(i, "")))
            frontier = []
            for kind, i, eid, qty, uom in other_rows:
                node = self._ref_node(kind, i, keys.get(i, ""))
                self.event_ref(eid)
                for here in by_event[eid]:
                    src, dst = (node, here) if backward else (here, node)
                    self.g.edge(src, dst, "transformed_into", event_id=eid, quantity=qty, uom=uom)
                if (kind, i) not in seen:
                    seen.add((kind, i))
                    frontier.append((kind, i))

    def _ref_node(self, kind: str, ident: int, key: str) -> str:
        if kind == "code":
            return self.code_nodes([ident])[ident]
        batch = batch_of_key(key)
        return self.g.node(
            f"class:{ident}",
            "lot" if batch else "class",
            key=key,
            uri=_uri(key),
            product=batch[0] if batch else None,
            lot=batch[1] if batch else None,
        )


def _uri(key: str) -> str | None:
    try:
        return uri_for_key(key, "any")
    except CodeError:
        return None


def _batch_class_id(conn: Connection, product: str | None, lot: str | None) -> int | None:
    if not product or not lot:
        return None
    try:
        key = batch_key(product, lot)
    except CodeError:
        return None
    return lookup_codes(conn, [key]).get(key)


# ── backward ──────────────────────────────────────────────────────────────────────────────
def trace_backward(
    conn: Connection, target: Target, *, at_us: int | None = None, viewer: Viewer | None = None
) -> Graph:
    """Where has this code been? (see the module docstring)"""
    if target.code_id is None:
        raise ValidationError("backward trace starts from one code, not a batch", place="code")
    g = Graph(root=f"code:{target.code_id}", direction="backward", at_us=at_us)
    w = _Walk(conn, g, viewer)
    cid = target.code_id
    root = w.code_nodes([cid])[cid]
    st = conn.execute(select(s.code_state).where(s.code_state.c.code_id == cid)).first()
    at = w.at
    if st is not None and st.commission_event_id is not None and (st.commissioned_us or 0) <= at:
        ev = conn.execute(
            select(s.event.c.biz_location, s.event.c.read_point).where(
                s.event.c.id == st.commission_event_id
            )
        ).first()
        place = (ev[0] or ev[1]) if ev else None
        origin = w.party_node(None, place)
        if origin:
            g.edge(
                origin,
                root,
                "commissioned",
                date=_day(st.commissioned_us),
                event_id=w.event_ref(st.commission_event_id),
                lot=st.lot,
                site=w.site_node(place),
            )
        products = product_rows(conn, [st.product] if st.product else [])
        if st.product in products:
            p = products[st.product]
            g.nodes[root].update(
                generic_name=p["generic_name"],
                holder=p["holder"],
                manufacturer=p["manufacturer"],
                approval_no=p["approval_no"],
            )
    _containers(w, [cid], at)
    _handovers(w, cid, root, at)
    _sales(w, [cid], at)
    start: list[tuple[str, int]] = [("code", cid)]
    if st is not None:
        batch_id = _batch_class_id(conn, st.product, st.lot)
        if batch_id is not None:
            g.node(f"class:{batch_id}", "lot", product=st.product, lot=st.lot)
            g.edge(f"class:{batch_id}", root, "batch_of")
            start.append(("class", batch_id))
    w.transformations(start, backward=True)
    w.load_events()
    g.summary = {
        "status": g.nodes[root].get("status"),  # as of ``at``, when given
        "handovers": sum(1 for e in g.edges if e["kind"] == "handed_over"),
        "containers": sum(1 for e in g.edges if e["kind"] == "inside"),
    }
    return g


def _containers(w: _Walk, ids: list[int], at: int) -> None:
    """Every container each code was in (and theirs, while it was inside), with times."""
    a = s.aggregation.c
    frontier = [(cid, -(2**62), NOW) for cid in ids]
    seen: set[tuple[int, int, int]] = set()
    while frontier:
        child, lo, hi = frontier.pop()
        for r in w.conn.execute(
            select(a.parent_id, a.from_us, a.to_us, a.from_event_id, a.to_event_id)
            .where(a.child_id == child, a.from_us <= min(hi, at))
            .order_by(a.from_us, a.parent_id)
        ):
            to = r.to_us if r.to_us is not None else NOW
            if to < lo or (r.parent_id, r.from_us, to) in seen:
                continue
            seen.add((r.parent_id, r.from_us, to))
            parent_node = w.code_nodes([r.parent_id])[r.parent_id]
            to_us = r.to_us if r.to_us is not None and r.to_us <= at else None
            w.g.edge(
                f"code:{child}",
                parent_node,
                "inside",
                from_us=r.from_us,
                to_us=to_us,
                since=_day(r.from_us),
                until=_day(to_us),
                event_id=w.event_ref(r.from_event_id),
            )
            if to_us is not None:
                w.event_ref(r.to_event_id)
            frontier.append((r.parent_id, max(lo, r.from_us), min(hi, to)))


def _handovers(w: _Walk, cid: int, root: str, at: int) -> None:
    c = s.custody.c
    rows = list(
        w.conn.execute(
            select(s.custody).where(
                c.code_id == cid, or_(c.ship_us <= at, and_(c.ship_us.is_(None), c.recv_us <= at))
            )
        )
    )
    rows.sort(key=lambda r: r.ship_us if r.ship_us is not None else r.recv_us)
    w.dir.load([u for r in rows for u in (r.from_party, r.to_party, r.from_site, r.to_site)])
    for r in rows:
        src = w.party_node(r.from_party, r.from_site)
        dst = w.party_node(r.to_party, r.to_site)
        received = r.recv_us is not None and r.recv_us <= at
        if src and dst:
            w.g.edge(
                src,
                dst,
                "handed_over",
                code=root,
                kind_of=r.kind,
                shipped=_day(r.ship_us),
                received=_day(r.recv_us) if received else None,
                ship_event_id=w.event_ref(r.ship_event_id),
                recv_event_id=w.event_ref(r.recv_event_id) if received else None,
                via=f"code:{r.via_id}" if r.via_id else None,
                in_transit=not received,
            )


def _sales(w: _Walk, ids: Collection[int], at: int) -> None:
    d = s.dispense.c
    for part in chunks(ids):
        for r in w.conn.execute(
            select(s.dispense)
            .where(d.code_id.in_(part), d.time_us <= at)
            .order_by(d.time_us, d.event_id, d.code_id)  # sales in the order they happened
        ):
            site = w.site_node(r.site) or w.g.node("site:?", "site", name="unknown site")
            w.g.edge(
                f"code:{r.code_id}",
                site,
                "dispensed",
                date=_day(r.time_us),
                units=r.units,
                event_id=w.event_ref(r.event_id),
            )


# ── forward ───────────────────────────────────────────────────────────────────────────────
def descendants(conn: Connection, code_id: int, at: int = NOW) -> set[int]:
    """Every code ever inside ``code_id`` (up to ``at``), transitively."""
    a = s.aggregation.c
    found: set[int] = set()
    frontier = {code_id}
    while frontier:
        rows: set[int] = set()
        for part in chunks(frontier):
            rows.update(
                r[0]
                for r in conn.execute(
                    select(a.child_id).where(a.parent_id.in_(part), a.from_us <= at)
                )
            )
        frontier = rows - found - {code_id}
        found |= frontier
    return found


def _code_conds(cols: Any, ids: Iterable[int] | None, batch: tuple[str, str] | None) -> list[Any]:
    """Conditions selecting rows of codes: a batch by its (product, lot) columns and covering
    index, else the code ids in chunks."""
    if batch is not None:
        return [and_(cols.product == batch[0], cols.lot == batch[1])]
    return [cols.code_id.in_(p) for p in chunks(list(ids or ()))]


def batch_codes(conn: Connection, product: str, lot: str) -> list[int]:
    """Ids of the codes of one batch (药品标识码/GTIN + 批号)."""
    rows = rawsql.fetch(
        conn, "SELECT code_id FROM code_state WHERE product = ? AND lot = ?", (product, lot)
    )
    return [r[0] for r in rows]


def holdings(
    conn: Connection,
    ids: Iterable[int] | None,
    at_us: int | None = None,
    batch: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Who holds the codes (now, or as of ``at_us``): rows of custodian, site, status, count
    (dispensed and destroyed codes included, with their last site).

    ``batch`` = (product, lot) selects a batch by index instead of an id list.
    """
    cs = s.code_state.c
    if at_us is None:
        # grouped in the covering index's column order: one index range scan for a batch
        cols = (cs.status, cs.custodian, cs.site, func.count())
        counter: Counter[tuple[Any, Any, Any]] = Counter()
        for cond in _code_conds(cs, ids, batch):
            for r in conn.execute(
                select(*cols).where(cond).group_by(cs.status, cs.custodian, cs.site)
            ):
                counter[(r[1], r[2], r[0])] += int(r[3])
        return [
            {"custodian": c, "site": site, "status": st, "count": n}
            for (c, site, st), n in sorted(counter.items(), key=lambda kv: -kv[1])
        ]
    if ids is None:
        assert batch is not None
        ids = batch_codes(conn, *batch)
    return _holdings_at(conn, ids, at_us)


_ORIGINS_SQL = (
    "SELECT cs.code_id, cs.commissioned_us, e.biz_location FROM code_state cs "
    "JOIN event e ON e.id = cs.commission_event_id WHERE cs.code_id {ids}"
)
_HANDOVERS_SQL = (
    "SELECT code_id, from_party, to_party, to_site, ship_us, recv_us, from_site FROM custody "
    "WHERE code_id {ids}"
)
_SALES_AT_SQL = "SELECT code_id, site FROM dispense WHERE code_id {ids} AND time_us <= ?"


def _holdings_at(conn: Connection, ids: Iterable[int], at: int) -> list[dict[str, Any]]:
    """Holdings as of ``at`` (:func:`places_at`), counted per custodian, site and status."""
    counter = Counter(places_at(conn, ids, at).values())
    return [
        {"custodian": k[0], "site": k[1], "status": k[2], "count": n}
        for k, n in sorted(counter.items(), key=lambda kv: -kv[1])
    ]


def places_at(conn: Connection, ids: Iterable[int], at: int) -> dict[int, tuple[Any, Any, str]]:
    """Where each code was as of ``at`` — (custodian party, site, status: active, in_transit
    or dispensed) — from the custody, sale and state history (not the current state); codes
    not made by then are left out. Plain DB-API reads, the ids as one parameter (a batch is
    100k codes and more)."""
    id_set = set(ids)
    where: dict[int, tuple[Any, Any, str]] = {}
    for cid, commissioned, site in rawsql.fetch_ids(conn, _ORIGINS_SQL, id_set):
        if commissioned <= at:
            where[cid] = (None, site, "active")
    best: dict[int, tuple[int, Any, Any, str]] = {}
    for cid, from_party, to_party, to_site, ship_us, recv_us, from_site in rawsql.fetch_ids(
        conn, _HANDOVERS_SQL, id_set
    ):
        if recv_us is not None and recv_us <= at:
            cand = (recv_us, to_party, to_site, "active")
        elif ship_us is not None and ship_us <= at:
            cand = (ship_us, from_party, from_site, "in_transit")
        else:
            continue
        if cid not in best or cand[0] >= best[cid][0]:
            best[cid] = cand
    for cid, (_, party, site, status) in best.items():
        where[cid] = (party, site, status)
    for cid, site in rawsql.fetch_ids(conn, _SALES_AT_SQL, id_set, (at,)):
        where[cid] = (None, site, "dispensed")
    return where


def dispensed_by_site(
    conn: Connection,
    ids: Iterable[int] | None,
    at_us: int | None = None,
    batch: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Sales per site: packs (codes), whole-pack sales, 拆零 units, first and last date."""
    d = s.dispense.c
    at = at_us if at_us is not None else NOW
    cols = (
        d.site,
        func.count(func.distinct(d.code_id)),
        func.count(),
        func.sum(d.units),
        func.min(d.time_us),
        func.max(d.time_us),
    )
    conds = _code_conds(d, ids, batch)
    merged: dict[Any, list[Any]] = {}
    for cond in conds:
        for r in conn.execute(select(*cols).where(cond, d.time_us <= at).group_by(d.site)):
            m = merged.setdefault(r[0], [0, 0, 0.0, r[4], r[5]])
            m[0] += int(r[1])
            m[1] += int(r[2])
            m[2] += float(r[3] or 0)
            m[3], m[4] = min(m[3], r[4]), max(m[4], r[5])
    return [
        {
            "site": site,
            "codes": m[0],
            "sales": m[1],
            "split_units": m[2],
            "first": _day(m[3]),
            "last": _day(m[4]),
        }
        for site, m in merged.items()
    ]


def trace_forward(
    conn: Connection, target: Target, *, at_us: int | None = None, viewer: Viewer | None = None
) -> Graph:
    """Where did this code, batch or lot go? (see the module docstring)"""
    root_id = (
        f"code:{target.code_id}"
        if target.code_id is not None
        else (f"batch:{target.product}/{target.lot}")
    )
    g = Graph(root=root_id, direction="forward", at_us=at_us)
    w = _Walk(conn, g, viewer)
    at = w.at
    batch: tuple[str, str] | None = None
    start: list[tuple[str, int]] = []
    if target.code_id is not None:
        w.code_nodes([target.code_id])
        ids = sorted(descendants(conn, target.code_id, at) | {target.code_id})
        start.append(("code", target.code_id))
        if len(ids) <= MAX_CODE_NODES:
            _containers_down(w, target.code_id, at)
            _sales(w, ids, at)
    else:
        assert target.product is not None and target.lot is not None
        batch = (target.product, target.lot)
        ids = []
        g.node(root_id, "lot", product=target.product, lot=target.lot)
        class_id = _batch_class_id(conn, target.product, target.lot)
        if class_id is not None:
            start.append(("class", class_id))
            g.nodes[root_id]["class_id"] = class_id
    held = holdings(conn, None if batch else ids, at_us, batch=batch)
    sold = dispensed_by_site(conn, None if batch else ids, at_us, batch=batch)
    w.dir.load(
        [h["custodian"] for h in held] + [h["site"] for h in held] + [x["site"] for x in sold]
    )
    per_holder: Counter[str] = Counter()
    for h in held:
        if h["status"] == "dispensed":
            continue
        node = w.party_node(h["custodian"], h["site"])
        if node is None:
            continue
        per_holder[node] += h["count"]
        g.edge(
            g.root,
            node,
            "held_by",
            count=h["count"],
            status=h["status"],
            site=w.site_node(h["site"]),
        )
    for x in sold:
        site = w.site_node(x["site"]) or g.node("site:?", "site", name="unknown site")
        g.edge(
            g.root,
            site,
            "dispensed_at",
            codes=x["codes"],
            sales=x["sales"],
            split_units=x["split_units"],
            first=x["first"],
            last=x["last"],
        )
    _reached(w, None if batch else ids, batch, at)
    w.transformations(start, backward=False)
    w.load_events()
    status = Counter[str]()
    for h in held:
        status[h["status"]] += h["count"]
    g.summary = {
        "codes": len(ids) if batch is None else sum(status.values()),
        "by_status": dict(status),
        "holders": {g.nodes[n].get("name", n): c for n, c in per_holder.items()},
        "dispensed_codes": sum(x["codes"] for x in sold),
        "dispensed_units": sum(x["split_units"] for x in sold),
    }
    return g


def _containers_down(w: _Walk, code_id: int, at: int) -> None:
    a = s.aggregation.c
    frontier = [code_id]
    seen = {code_id}
    while frontier:
        rows = list(
            w.conn.execute(
                select(a.parent_id, a.child_id, a.from_us, a.to_us, a.from_event_id)
                .where(a.parent_id.in_(frontier), a.from_us <= at)
                .order_by(a.from_us, a.parent_id, a.child_id)
            )
        )
        nodes = w.code_nodes({r.child_id for r in rows})
        frontier = []
        for r in rows:
            to_us = r.to_us if r.to_us is not None and r.to_us <= at else None
            w.g.edge(
                nodes[r.child_id],
                f"code:{r.parent_id}",
                "inside",
                since=_day(r.from_us),
                until=_day(to_us),
                event_id=w.event_ref(r.from_event_id),
            )
            if r.child_id not in seen:
                seen.add(r.child_id)
                frontier.append(r.child_id)


def _reached(w: _Walk, ids: list[int] | None, batch: tuple[str, str] | None, at: int) -> None:
    """Hand-overs between enterprises, counted over the codes (each pair once)."""
    c = s.custody.c
    pairs: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], int] = {}
    for cond in _code_conds(c, ids, batch):
        for r in w.conn.execute(
            select(
                c.from_party,
                c.from_site,
                c.to_party,
                c.to_site,
                func.count(),
                func.min(c.ship_us),
                func.min(c.recv_us),
            )
            .where(cond, *([] if at >= NOW else [or_(c.ship_us <= at, c.recv_us <= at)]))
            .group_by(c.from_party, c.from_site, c.to_party, c.to_site)
        ):
            src = w.party_node(r[0], r[1])
            dst = w.party_node(r[2], r[3])
            if src is None or dst is None or src == dst:
                continue
            pairs[(src, dst)] += int(r[4])
            when = r[5] if r[5] is not None else r[6]
            if when is not None:
                first[(src, dst)] = min(first.get((src, dst), when), when)
    for (src, dst), n in pairs.items():
        w.g.edge(src, dst, "handed_over", count=n, first=_day(first.get((src, dst))))
