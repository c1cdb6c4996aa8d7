"""Where a code was just before an event (库存位置), read from the log: in stock at a site, in
transit to one, or not on record — so the stock ledger takes a pack from where it was, not from
where the next report happens to be made.

A code's place before an event is set by the latest earlier *move* of the code, or of a
container holding it at that moment (a pack travels inside its case and pallet):

* commissioning, receiving, a transformation's output — in stock at the event's site;
* shipping or returning — in transit to the destination location (to none in particular when
  the event names only a party);
* a sale (dispensing, retail selling), destruction, decommissioning, a transformation's input —
  off the record; a split sale (拆零) leaves the opened pack on the shelf, in stock.

Events that name no site, packings and error-declared events move nothing. Events are ordered
by time, then by step (commissioning, shipping, receiving, then the rest: a pack shipped and
received in the same second arrived), then by event hash — never by arrival, so any arrival
order of the same log gives the same places.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable
from collections.abc import Set as AbstractSet
from typing import Any

from sqlalchemy import Connection

from yaolian.store.ingest import DECLARED_SUFFIX
from yaolian.store.schema import EVENT_TYPE_IDS, ROLE_IDS
from yaolian.trace import rawsql

Place = tuple[str | None, bool] | None
"""(site, in transit): in stock at the site, or in transit to it (site None: no site named);
None: not on record (never seen, sold, destroyed)."""

Order = tuple[int, int, str]
"""(event time, step rank, event hash): the order of events at a code."""

SHIP_STEPS = ("shipping", "returning")
CONSUME_STEPS = ("dispensing", "retail_selling")
REMOVE_STEPS = ("destroying", "decommissioning")
SPLIT_DISPOSITION = "partially_dispensed"
MOVE_STEPS = frozenset({"commissioning", "receiving", *SHIP_STEPS, *CONSUME_STEPS, *REMOVE_STEPS})
"""The bizSteps that move packs (besides transformations)."""
_RANK = {"commissioning": 0, "shipping": 1, "returning": 1, "receiving": 2}
_DEPTH = 4  # container levels looked through (pack → case → pallet → …)


def order_of(time_us: int, biz_step: str | None, event_hash: str) -> Order:
    """The place of an event in a code's history (see the module docstring)."""
    return (time_us, _RANK.get(biz_step or "", 3), event_hash)


def place_after(
    *,
    type_id: int,
    biz_step: str | None,
    site: str | None,
    disposition: str | None,
    destination: str | None,
    role: int,
) -> tuple[bool, Place]:
    """(whether the event moves the code at all, where it leaves it)."""
    if not site:
        return False, None
    transforms = biz_step == "transforming" or type_id == EVENT_TYPE_IDS["TransformationEvent"]
    if transforms:
        return True, None if role == ROLE_IDS["input"] else (site, False)
    if type_id == EVENT_TYPE_IDS["AggregationEvent"] and biz_step not in SHIP_STEPS:
        return False, None  # packing and unpacking move nothing
    if biz_step in ("commissioning", "receiving"):
        return True, (site, False)
    if biz_step in SHIP_STEPS:
        return True, (destination if destination and destination != site else None, True)
    if biz_step in CONSUME_STEPS:
        return True, (site, False) if disposition == SPLIT_DISPOSITION else None
    if biz_step in REMOVE_STEPS:
        return True, None
    return False, None


_DECLARED_SQL = (
    "SELECT e.id FROM event e WHERE e.id {ids} AND NOT e.error_declared AND ("
    "EXISTS (SELECT 1 FROM event d WHERE d.hash = e.hash || ?) OR (e.event_id IS NOT NULL AND "
    "EXISTS (SELECT 1 FROM event d WHERE d.event_id = e.event_id AND d.error_declared)))"
)


def declared_among(conn: Connection, ids: Collection[int]) -> list[int]:
    """Of the events ``ids``, those an error declaration says never happened (EPCIS 2.0: the
    event captured again with ``errorDeclaration``; stored beside it with the same hash plus
    ``#errorDeclaration``, and usually the same eventID)."""
    rows = rawsql.fetch_ids(conn, _DECLARED_SQL, ids, (DECLARED_SUFFIX,))
    return [r[0] for r in rows]


def linked(conn: Connection, codes: set[int], *, up: bool) -> set[int]:
    """``codes`` and every code aggregated with them over the log, ``up`` to the containers
    they were ever packed into, else down to what they ever held, to four levels."""
    near, far = (
        (ROLE_IDS["child"], ROLE_IDS["parent"]) if up else (ROLE_IDS["parent"], ROLE_IDS["child"])
    )
    found = set(codes)
    frontier = set(codes)
    for _level in range(_DEPTH):
        if not frontier:
            break
        # two look-ups by id, not a join: a bulk load misleads the plans
        events = {r[0] for r in rawsql.fetch_ids(conn, _ROLE_OF_CODES_SQL, frontier, (near,))}
        other = {r[1] for r in rawsql.fetch_ids(conn, _ROLE_IN_EVENTS_SQL, events, (far,))}
        frontier = other - found
        found |= other
    return found


_ROLE_OF_CODES_SQL = "SELECT event_id, code_id FROM event_epc WHERE code_id {ids} AND role = ?"
_ROLE_IN_EVENTS_SQL = "SELECT event_id, code_id FROM event_epc WHERE event_id {ids} AND role = ?"
_NAMING_SQL = "SELECT event_id, code_id, role FROM event_epc WHERE code_id {ids}"
_FACTS_SQL = (
    "SELECT id, type, event_time_us, biz_step, COALESCE(biz_location, read_point), disposition, "
    "hash FROM event WHERE id {ids} AND NOT error_declared"
)
DESTINATIONS_SQL = (  # the destination locations of events
    "SELECT event_id, value FROM event_party WHERE event_id {ids} AND kind = 2 "
    "AND type = 'location'"
)


class Whereabouts:
    """Places of codes before events, from the log; ``children_at(container, time)`` tells what
    a container held then (the ledger's aggregation resolver); ``declared``: every event of the
    log an error declaration retracts, when the caller has them (else they are looked up)."""

    def __init__(
        self,
        conn: Connection,
        children_at: Callable[[int, int], AbstractSet[int]],
        declared: AbstractSet[int] | None = None,
    ) -> None:
        self.conn = conn
        self.children_at = children_at
        self.declared = declared
        self.parents: dict[int, set[int]] = {}  # code → containers it was ever packed into
        # code → the orders of the moves naming it, ascending, and where each left it
        self.orders: dict[int, list[Order]] = {}
        self.places: dict[int, list[Place]] = {}
        self._lineages: dict[int, list[int]] = {}
        self._via: dict[tuple[int, Order], tuple[Order, Place] | None] = {}
        self._held: dict[tuple[int, int], AbstractSet[int]] = {}

    def load(self, codes: Iterable[int]) -> set[int]:
        """Read the moves of ``codes``, of the containers they were ever packed into and of
        theirs; returns those containers (their aggregation history is needed to look inside
        them)."""
        containers: set[int] = set()
        frontier = {c for c in codes if c not in self.orders}
        for level in range(_DEPTH + 1):
            if not frontier:
                break
            packed = self._load_moves(frontier)
            for code in frontier:
                self.parents.setdefault(code, set())
            if level == _DEPTH:
                break
            ups: set[int] = set()
            for ev_id, parent in rawsql.fetch_ids(
                self.conn, _ROLE_IN_EVENTS_SQL, packed, (ROLE_IDS["parent"],)
            ):
                for child in packed[ev_id]:
                    self.parents[child].add(parent)
                ups.add(parent)
            containers |= ups
            frontier = {p for p in ups if p not in self.orders}
        return containers

    def _load_moves(self, codes: set[int]) -> dict[int, list[int]]:
        """Read the moves of ``codes``; returns the aggregation events naming them as
        children (event id → those children)."""
        naming = rawsql.fetch_ids(self.conn, _NAMING_SQL, codes)
        facts = {r[0]: r for r in rawsql.fetch_ids(self.conn, _FACTS_SQL, {r[0] for r in naming})}
        if self.declared is None:
            retracted: Iterable[int] = declared_among(self.conn, facts)
        else:
            retracted = self.declared & facts.keys()
        for ev_id in retracted:
            del facts[ev_id]
        ships = [i for i, r in facts.items() if r[3] in SHIP_STEPS]
        destination = dict(rawsql.fetch_ids(self.conn, DESTINATIONS_SQL, ships))
        moves: dict[int, list[tuple[Order, Place]]] = {code: [] for code in codes}
        known: dict[tuple[int, int], tuple[Order, Place] | None] = {}
        packed: dict[int, list[int]] = {}
        child = ROLE_IDS["child"]
        for ev_id, code, role in naming:
            if role == child:
                packed.setdefault(ev_id, []).append(code)
            if (ev_id, role) in known:
                found = known[(ev_id, role)]
            else:
                found = known[(ev_id, role)] = self._move(
                    facts.get(ev_id), destination.get(ev_id), role
                )
            if found is not None:
                moves[code].append(found)
        for code, found_moves in moves.items():
            found_moves.sort(key=lambda m: m[0])
            self.orders[code] = [m[0] for m in found_moves]
            self.places[code] = [m[1] for m in found_moves]
        return packed

    @staticmethod
    def _move(fact: Any, destination: str | None, role: int) -> tuple[Order, Place] | None:
        """(order, place after) of a stored event's row naming a code in ``role``, or None
        when it moves nothing."""
        if fact is None:
            return None
        _id, type_id, time_us, step, site, disposition, event_hash = fact
        moving, place = place_after(
            type_id=type_id,
            biz_step=step,
            site=site,
            disposition=disposition,
            destination=destination,
            role=role,
        )
        return (order_of(time_us, step, event_hash), place) if moving else None

    def before(self, code: int, order: Order) -> Place:
        """Where ``code`` (loaded) was just before an event at ``order``."""
        latest = self._latest(code, order)
        return None if latest is None else latest[1]

    def _latest(self, code: int, order: Order, depth: int = _DEPTH) -> tuple[Order, Place] | None:
        """The latest move before ``order`` of ``code`` or of a container holding it then
        (``depth``: container levels left to ask before looking at every move)."""
        orders = self.orders[code]
        i = bisect_left(orders, order) - 1
        own = (orders[i], self.places[code][i]) if i >= 0 else None
        parents = self.parents.get(code)
        if not parents:
            return own
        if len(parents) == 1 and depth:
            # one container ever: its answer, if the code was in it then
            (up,) = parents
            key = (up, order)
            if key in self._via:
                via = self._via[key]
            else:
                via = self._via[key] = self._latest(up, order, depth - 1)
            if via is None:
                return own
            if self._inside(code, up, via[0][0], 1):
                return via if own is None or via[0] > own[0] else own
        return self._scan(code, order)

    def _scan(self, code: int, order: Order) -> tuple[Order, Place] | None:
        """:meth:`_latest` by looking at every move of every container the code was ever in."""
        best: tuple[Order, Place] | None = None
        for holder in self._lineage(code):
            orders = self.orders.get(holder)
            if not orders:
                continue
            i = bisect_left(orders, order) - 1
            while i >= 0 and (best is None or orders[i] > best[0]):
                if holder == code or self._inside(code, holder, orders[i][0], _DEPTH):
                    best = (orders[i], self.places[holder][i])
                    break
                i -= 1
        return best

    def _lineage(self, code: int) -> list[int]:
        """``code`` and every container it was ever packed into, directly or not."""
        found = self._lineages.get(code)
        if found is not None:
            return found
        out = [code]
        seen = {code}
        for holder in out:
            for up in self.parents.get(holder, ()):
                if up not in seen and len(out) < 64:
                    seen.add(up)
                    out.append(up)
        self._lineages[code] = out
        return out

    def _inside(self, code: int, container: int, time_us: int, depth: int) -> bool:
        """Whether ``code`` was inside ``container`` (at any depth) at ``time_us``."""
        if depth == 0:
            return False
        for up in self.parents.get(code, ()):
            held = self._held.get((up, time_us))
            if held is None:
                held = self._held[(up, time_us)] = self.children_at(up, time_us)
            if code in held and (
                up == container or self._inside(up, container, time_us, depth - 1)
            ):
                return True
        return False
