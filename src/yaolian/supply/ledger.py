"""Stock ledger (库存台账): stock per product × site × day derived from the event log.

Every stored event is turned into signed *movements* (``supply_movement`` rows): packs (and
units for split sales, 拆零) that enter or leave a site's stock on hand, or that are in transit
to a site. A movement is a pure function of the event and of the log around it — the packs in a
shipped container as its aggregation events say, where each pack was before the event — so the
projection gives the same rows whatever order the events arrived in, and a rebuild reproduces
them exactly (:mod:`yaolian.supply.projection` recomputes the events an arrival can change).
Stock on a day is the sum of movements up to that day.

An event first brings its packs to its site from where the log last put them
(:mod:`yaolian.supply.whereabouts`): out of transit (收货), out of another site's stock when
nobody reported shipping them (发货未上报), or from off the record (a receipt nobody shipped, a
pack never seen before it was sold); packs already in stock there are not brought twice. So
stock follows each pack, as the trace projection's code states do, however incomplete the
reporting. Then, by CBV bizStep (the event's site is its bizLocation, else its readPoint):

* ``commissioning`` — packs created at the site (manufacturer stock, 生产入库);
* ``receiving`` — nothing more: bringing the packs in is the receipt (购进入库), and a receipt
  reported twice counts once;
* ``shipping`` / ``returning`` — packs out of the site (销售出库 / 退货出库) and in transit to the
  destination location when the event names one;
* ``dispensing`` / ``retail_selling`` — consumption (使用 / 零售出库), counted as demand
  wherever the pack came from; a ``quantityList`` entry with a unit of measure is a split sale
  counted in units;
* ``destroying`` / ``decommissioning`` — packs removed (销毁 / 注销);
* ``transforming`` — inputs consumed, outputs produced at the site (a class-level output of
  an NMPA drug lot only names the batch: its packs count when commissioned);
* events with an ``errorDeclaration`` are retracted and move nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    case,
    func,
    insert,
    or_,
    select,
)

from yaolian.codes.identity import NMPA_LOT_KEY, NMPA_PRODUCT_KEY, product_of_key, typed
from yaolian.epcis.extensions import sale_line
from yaolian.epcis.model import location, parties
from yaolian.epcis.validate import IDENTIFIER_MAX_BYTES, utf8_longer
from yaolian.errors import NotFoundError, ValidationError
from yaolian.store.dictionary import code_keys
from yaolian.store.ingest import DECLARED_SUFFIX
from yaolian.store.projections import StoredBatch, StoredEvent
from yaolian.store.schema import (
    ACTION_IDS,
    EVENT_TYPE_IDS,
    PRODUCT_CODE_MAX,
    ROLE_IDS,
    site,
    supply_movement,
    supply_stock_count,
)
from yaolian.store.schema import product as product_table
from yaolian.supply.whereabouts import (
    CONSUME_STEPS,
    DESTINATIONS_SQL,
    MOVE_STEPS,
    REMOVE_STEPS,
    SPLIT_DISPOSITION,
    Place,
    Whereabouts,
    declared_among,
    linked,
    order_of,
)
from yaolian.trace import rawsql

CST_OFFSET_US = 8 * 3600 * 1_000_000  # China Standard Time, the ledger's calendar day
_CHINA = timezone(timedelta(microseconds=CST_OFFSET_US))
DAY_US = 86_400 * 1_000_000
_EPOCH_DAY = date(1970, 1, 1)


class Kind(IntEnum):
    """What a movement is; stored as a small integer in ``supply_movement.kind``."""

    COMMISSION = 1  # 生产入库 (+ on hand)
    RECEIVE = 2  # 购进入库 (+ on hand)
    SHIP = 3  # 销售/调拨出库 (− on hand)
    RETURN = 4  # 退货出库 (− on hand)
    DISPENSE = 5  # 使用/零售出库, consumption (− on hand)
    REMOVE = 6  # 销毁/注销 (− on hand)
    TRANSFORM = 7  # inputs − / outputs + (e.g. 饮片 → 中成药)
    TRANSIT_IN = 8  # in transit to the site (+ in transit)
    TRANSIT_OUT = 9  # arrived, leaves in-transit (− in transit)


ON_HAND_KINDS = (
    Kind.COMMISSION,
    Kind.RECEIVE,
    Kind.SHIP,
    Kind.RETURN,
    Kind.DISPENSE,
    Kind.REMOVE,
    Kind.TRANSFORM,
)
TRANSIT_KINDS = (Kind.TRANSIT_IN, Kind.TRANSIT_OUT)
_OUT_STEPS = {"shipping": Kind.SHIP, "returning": Kind.RETURN}


def split_units_per_code(ev: dict[str, Any]) -> float | None:
    """Units sold from each listed pack by a split sale (拆零), from the NHSA sale line the
    event carries (``yaolian:saleLine``: ``splitSale``, ``units`` per code or ``quantity`` in
    all, as :mod:`yaolian.verify.dispense` writes it); ``None`` when it is not a split sale."""
    line = sale_line(ev)
    return line.units if line else None


def day_of_us(time_us: int) -> int:
    """Ledger day number (days since 1970-01-01, China Standard Time) of a store timestamp."""
    return (time_us + CST_OFFSET_US) // DAY_US


def day_number(day: date) -> int:
    """Ledger day number of a calendar date."""
    return (day - _EPOCH_DAY).days


def day_date(day: int) -> date:
    """Calendar date of a ledger day number."""
    return _EPOCH_DAY + timedelta(days=day)


def require_product(product: str, place: str = "product") -> str:
    """A product code (药品标识码 or GTIN-14) stripped, or a ValidationError naming ``place``
    when it is empty or longer than the store's product columns."""
    text = (product or "").strip()
    if not text or len(text) > PRODUCT_CODE_MAX:
        raise ValidationError(
            f"product code must have 1 to {PRODUCT_CODE_MAX} characters", place=place
        )
    return text


def require_known_product(conn: Connection, product: str, place: str = "product") -> str:
    """A product someone posts about (a demand, an offer, a reserve plan, a discontinuation):
    typed as a person types it (:func:`~yaolian.codes.identity.typed`), and registered in master
    data (as a 药品标识码 or a GTIN) or moving in the ledger; else a ValidationError naming
    ``place`` — a mistyped code would sit on the board matching nothing. The code is kept as
    given: the ledger names a product by the code its packs carry."""
    text = require_product(typed(product or ""), place)
    p = product_table.c
    known = (
        conn.execute(
            select(p.product_code).where(or_(p.product_code == text, p.gtin == text)).limit(1)
        ).first()
        or conn.execute(
            select(supply_movement.c.product).where(supply_movement.c.product == text).limit(1)
        ).first()
    )
    if known is None:
        raise ValidationError(
            f"unknown product {text}: no 药品标识码 or GTIN registered as it and no stock of it",
            place=place,
        )
    return text


def require_site(site_id: str, place: str = "site") -> str:
    """A site (location identifier) stripped, or a ValidationError naming ``place`` when it is
    empty or longer than the store indexes."""
    text = (site_id or "").strip()
    if not text:
        raise ValidationError("the site is required", place=place)
    if utf8_longer(text, IDENTIFIER_MAX_BYTES):
        raise ValidationError(f"site longer than {IDENTIFIER_MAX_BYTES} bytes (UTF-8)", place=place)
    return text


def stored_us(when: datetime, place: str) -> int:
    """An aware time as store microseconds. A time without an offset, or one the store could
    not read back as a date (outside the years 1–9999 in UTC or China time), is a
    ValidationError naming ``place``."""
    if when.tzinfo is None:
        raise ValidationError("the time needs a time-zone offset", place=place)
    try:
        when.astimezone(UTC).astimezone(_CHINA)
    except OverflowError:
        raise ValidationError(
            f"{when.isoformat()} is outside the years 1–9999", place=place
        ) from None
    return int(when.timestamp() * 1_000_000)


def as_of_day(as_of: date | datetime | None) -> int:
    """The ledger day of ``as_of`` (a date, an aware datetime, or ``None`` for today)."""
    if as_of is None:
        as_of = datetime.now(UTC)
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValidationError("datetime needs a time-zone offset", place="as_of")
        return day_of_us(int(as_of.timestamp() * 1_000_000))
    return day_number(as_of)


# ── deriving movements from the log ────────────────────────────────────────────────────────


@dataclass(slots=True)
class _EventFacts:
    id: int
    type: int
    action: int | None
    time_us: int
    biz_step: str | None
    site: str | None
    retracted: bool
    destination: str | None = None
    epcs: list[tuple[int, int]] | None = None  # (code id, role id)
    quantities: list[tuple[str, float | None, str | None, int]] | None = None
    split_units: float | None = None  # units per code of an NHSA split sale (拆零)
    hash: str = ""

    @property
    def transforms(self) -> bool:
        """Whether the event turns inputs into outputs (its packs count as TRANSFORM)."""
        return self.biz_step == "transforming" or self.type == EVENT_TYPE_IDS["TransformationEvent"]

    @property
    def makes_packs(self) -> bool:
        """Whether the event makes its packs at its site (commissioning, transformation)
        rather than finding them where they were."""
        return self.transforms or self.biz_step == "commissioning"


def _batch_facts(batch: StoredBatch) -> dict[int, _EventFacts]:
    """Facts of the events a capture has just stored, taken from the events themselves: the
    same as :func:`_load_events` reads back (site = bizLocation else readPoint, the last
    destination location, one row per code and role)."""
    facts: dict[int, _EventFacts] = {}
    for e in batch:
        ev = e.event
        action = ev.get("action")
        biz_step = ev.get("bizStep")
        biz_location = location(ev, "bizLocation")
        f = _EventFacts(
            e.row_id,
            EVENT_TYPE_IDS[ev["type"]],
            ACTION_IDS[action] if action else None,
            e.event_time_us,
            biz_step,
            biz_location if biz_location is not None else location(ev, "readPoint"),
            "errorDeclaration" in ev,
            None,
            list(dict.fromkeys((cid, ROLE_IDS[role]) for cid, role in e.epcs)),
            [
                (batch.keys[cid], None if q is None else float(q), uom, ROLE_IDS[role])
                for cid, q, uom, role in e.classes
            ],
        )
        for kind, ptype, value in parties(ev):
            if kind == "destination" and ptype == "location":
                f.destination = value
        if biz_step in CONSUME_STEPS and ev.get("disposition") == SPLIT_DISPOSITION:
            f.split_units = split_units_per_code(ev)
        f.hash = e.hash
        facts[e.row_id] = f
    return facts


def declared_erroneous(conn: Connection) -> set[int]:
    """Every event of the log an error declaration retracts (one scan for the declarations,
    then a look-up by hash and by eventID for each: for a whole-log recompute)."""
    rows = rawsql.fetch(conn, "SELECT hash, event_id FROM event WHERE error_declared")
    hashes = {h.removesuffix(DECLARED_SUFFIX) for h, _ in rows}
    event_ids = {e for _, e in rows if e}
    found = rawsql.fetch_ids(conn, "SELECT id FROM event WHERE hash {ids}", hashes)
    found += rawsql.fetch_ids(
        conn, "SELECT id FROM event WHERE event_id {ids} AND NOT error_declared", event_ids
    )
    return {r[0] for r in found}


def _could_be_declared(facts: Mapping[int, _EventFacts], batch: StoredBatch | None) -> list[int]:
    """The events of ``facts`` a declaration may retract: not those of ``batch`` without an
    eventID naming only codes it interned first — a stored declaration (the same event again)
    would have interned them — unless the batch carries declarations itself."""
    if batch is None or any("errorDeclaration" in e.event for e in batch):
        return [i for i, f in facts.items() if not f.retracted]
    fresh = batch.fresh
    new = {
        e.row_id
        for e in batch
        if (e.epcs or e.classes)
        and "eventID" not in e.event
        and all(cid in fresh for cid, _ in e.epcs)
        and all(c[0] in fresh for c in e.classes)
    }
    return [i for i, f in facts.items() if not f.retracted and i not in new]


_EVENT_FACTS_SQL = (
    "SELECT id, type, action, event_time_us, biz_step, COALESCE(biz_location, read_point), "
    "error_declared, hash FROM event WHERE id {ids}"
)
_SPLIT_SALES_SQL = (
    "SELECT id, payload FROM event WHERE id {ids} AND biz_step IN ("
    + ", ".join(f"'{step}'" for step in sorted(CONSUME_STEPS))
    + f") AND disposition = '{SPLIT_DISPOSITION}'"
)
_EPCS_SQL = "SELECT event_id, code_id, role FROM event_epc WHERE event_id {ids}"
_QUANTITIES_SQL = (
    "SELECT q.event_id, c.key, q.quantity, q.uom, q.role FROM event_quantity q "
    "JOIN code c ON c.id = q.class_id WHERE q.event_id {ids}"
)


def _load_events(conn: Connection, ids: Sequence[int]) -> dict[int, _EventFacts]:
    """Facts of stored events, read back from the log (plain DB-API: a rebuild reads every
    event and EPC row through here)."""
    facts: dict[int, _EventFacts] = {}
    for r in rawsql.fetch_ids(conn, _EVENT_FACTS_SQL, ids):
        facts[r[0]] = _EventFacts(
            r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), None, [], [], hash=r[7]
        )
    for ev_id, payload in rawsql.fetch_ids(conn, _SPLIT_SALES_SQL, ids):
        facts[ev_id].split_units = split_units_per_code(orjson.loads(payload))
    for ev_id, value in rawsql.fetch_ids(conn, DESTINATIONS_SQL, ids):
        facts[ev_id].destination = value
    for ev_id, code_id, role in rawsql.fetch_ids(conn, _EPCS_SQL, ids):
        facts[ev_id].epcs.append((code_id, role))  # type: ignore[union-attr]
    for ev_id, key, qty, uom, role in rawsql.fetch_ids(conn, _QUANTITIES_SQL, ids):
        facts[ev_id].quantities.append((key, qty, uom, role))  # type: ignore[union-attr]
    return facts


_PACKS_PER_CASE = re.compile(r"(\d+)\s*(?:盒|瓶|支|袋|板|包|小盒|packs?)\s*/", re.IGNORECASE)


def case_contents(conn: Connection) -> dict[str, tuple[str, float]]:
    """Case-level product codes (packaging level ≥ 2, e.g. a 药品标识码 of the 箱 level) → the
    pack-level product of the same drug (通用名, 剂型, 规格, holder) and the packs per case read
    from the case's 包装规格 (``"60盒/箱"``). Cases whose pack product or count is not
    recorded are left out (they then count as one unit of their own code)."""
    p = product_table.c
    rows = conn.execute(
        select(
            p.product_code,
            p.generic_name,
            p.dosage_form,
            p.strength,
            p.holder_id,
            p.packaging_level,
            p.pack_spec,
        )
    ).all()
    packs = {
        (r.generic_name, r.dosage_form, r.strength, r.holder_id): r.product_code
        for r in rows
        if r.packaging_level == 1
    }
    out: dict[str, tuple[str, float]] = {}
    for r in rows:
        if r.packaging_level < 2:
            continue
        pack_code = packs.get((r.generic_name, r.dosage_form, r.strength, r.holder_id))
        count = _PACKS_PER_CASE.search(r.pack_spec or "")
        if pack_code and count:
            out[r.product_code] = (pack_code, float(count.group(1)))
    return out


History = list[tuple[int, int, int | None, list[int]]]
"""Aggregation events with a code as parent: (time, event id, action id, child code ids)."""
_Packing = tuple[int, int, int | None, int, list[int]]  # parent, time, action, event, children


_EMPTY: frozenset[int] = frozenset()


class PackCache:
    """Packs per product of each code when it holds nothing, by code id, for one run over an
    unchanged log (the chunks of a rebuild): a code's key, whether it ever was a container and
    the product master do not change meanwhile. Equal values are shared."""

    def __init__(self) -> None:
        self.by_code: dict[int, Mapping[str, float]] = {}
        self._values: dict[tuple[str, float], Mapping[str, float]] = {}

    def value(self, product: str, n: float) -> Mapping[str, float]:
        """The shared ``{product: n}``."""
        found = self._values.get((product, n))
        if found is None:
            found = self._values[(product, n)] = {product: n}
        return found


class _Resolver:
    """Packs per product inside a code at a time, from the aggregation events in the log."""

    def __init__(self, conn: Connection, cache: PackCache | None = None) -> None:
        self.conn = conn
        self.keys: dict[int, str] = {}
        # parent code id → [(time, event id, action, [child ids])] in time order
        self.history: dict[int, History] = {}
        self._implicit: dict[int, set[int]] = {}  # children present before any recorded packing
        self._complete: AbstractSet[int] = _EMPTY  # codes packed in this batch only (fresh)
        self._repacked: AbstractSet[int] | None = None  # codes packed into several containers
        self._first_holder: dict[int, int] = {}  # child → the first container seen packing it
        self._holders: dict[int, set[int]] = {}  # child packed into several containers → them
        self.cases: dict[str, tuple[str, float]] | None = None  # loaded on first need
        self.cache = cache or PackCache()

    def known(
        self,
        keys: Mapping[int, str],
        histories: Mapping[int, History],
        repacked: AbstractSet[int] | None = None,
    ) -> None:
        """Codes (id → key) whose whole aggregation history the caller has, so nothing is
        fetched for them: ``histories`` holds the packings into the containers among them (in
        any order); the others never held anything. ``repacked``: every code of the log packed
        into more than one container (a rebuild knows them); without it, the containers of each
        child met are looked up, except for ``keys`` (a capture's fresh codes, packed only in
        the capture, whose containers are all loaded)."""
        self.keys.update(keys)
        self._complete, self._repacked = keys.keys(), repacked
        self.history.update({cid: [] for cid in keys})
        for cid, history in histories.items():
            self.history[cid] = sorted(history, key=lambda h: (h[0], h[1]))
            implicit = self._unrecorded_packing(self.history[cid])
            if implicit:
                self._implicit[cid] = implicit
            self._note_holder(cid)

    def load(self, code_ids: Iterable[int]) -> None:
        """Fetch keys and aggregation history of ``code_ids``, then of their children, then of
        the other containers those children were packed into (a child packed into a new case
        without being unpacked from the old one has left it)."""
        todo = {c for c in code_ids if c not in self.history}
        while todo:
            children: set[int] = set()
            while todo:
                found = self._fetch(todo)
                children |= found
                todo = {c for c in found if c not in self.history}
            unsure = (
                children - self._complete if self._repacked is None else children & self._repacked
            )
            others = self._other_holders(unsure)
            todo = {p for p in others if p not in self.history}

    def load_containers(self, code_ids: Iterable[int]) -> None:
        """Fetch keys and aggregation history of ``code_ids`` only, not of what they held:
        enough to tell whether a code whose containers are all among them was in one."""
        todo = {c for c in code_ids if c not in self.history}
        if todo:
            self._fetch(todo)

    def _fetch(self, todo: Collection[int]) -> set[int]:
        """Fetch keys and aggregation history of ``todo``; returns the children they held."""
        ids = sorted(todo)
        self.keys.update(code_keys(self.conn, ids))
        for cid in ids:
            self.history[cid] = []
        by_event = self._packings(ids)
        found: set[int] = set()
        for parent_id, t, action, ev_id, kids in by_event.values():
            self.history[parent_id].append((t, ev_id, action, kids))
            found.update(kids)
        for cid in ids:
            self.history[cid].sort(key=lambda h: (h[0], h[1]))
            implicit = self._unrecorded_packing(self.history[cid])
            if implicit:
                self._implicit[cid] = implicit
            self._note_holder(cid)
        return found

    def _note_holder(self, container: int) -> None:
        """Remember ``container`` as a holder of each child its history packs."""
        first = self._first_holder
        for _t, _ev, action, kids in self.history[container]:
            if action == ACTION_IDS["DELETE"]:
                continue
            for kid in kids:
                holder = first.setdefault(kid, container)
                if holder != container:
                    self._holders.setdefault(kid, {holder}).add(container)

    def _other_holders(self, children: Collection[int]) -> set[int]:
        """Containers of aggregation events that name one of ``children`` as a child."""
        if not children:
            return set()
        events = {
            ev_id
            for ev_id, _ in rawsql.fetch_ids(
                self.conn,
                "SELECT event_id, code_id FROM event_epc WHERE code_id {ids} AND role = ?",
                children,
                (ROLE_IDS["child"],),
            )
        }
        return {
            code_id
            for _, code_id in rawsql.fetch_ids(
                self.conn,
                "SELECT event_id, code_id FROM event_epc WHERE event_id {ids} AND role = ?",
                events,
                (ROLE_IDS["parent"],),
            )
        }

    def _holder_at(self, child: int, time_us: int) -> int | None:
        """The container of the latest packing (not unpacking) of ``child`` at or before
        ``time_us``, among those packing it several times; None when there is none yet."""
        latest: tuple[int, int] | None = None
        holder = None
        for container in self._holders[child]:
            for t, ev_id, action, kids in self.history[container]:
                if t > time_us:
                    break
                later = latest is None or (t, ev_id) > latest
                if later and action != ACTION_IDS["DELETE"] and child in kids:
                    latest, holder = (t, ev_id), container
        return holder

    def _packings(self, ids: Sequence[int]) -> dict[int, _Packing]:
        """Aggregation events with one of ``ids`` as parent: event id → (parent, time, action,
        event id, children). Three single-table look-ups by id rather than one join: a join's
        plan rests on statistics, and a bulk load makes them wrong (PostgreSQL took the 200
        packing events it had just stored for one and probed 20k codes for each of them)."""
        links = rawsql.fetch_ids(
            self.conn,
            "SELECT event_id, code_id FROM event_epc WHERE code_id {ids} AND role = ?",
            ids,
            (ROLE_IDS["parent"],),
        )
        parent_of = dict(links)
        by_event: dict[int, _Packing] = {
            ev_id: (parent_of[ev_id], t, action, ev_id, [])
            for ev_id, t, action in rawsql.fetch_ids(
                self.conn,
                "SELECT id, event_time_us, action FROM event "
                "WHERE id {ids} AND type = ? AND NOT error_declared",
                parent_of,
                (EVENT_TYPE_IDS["AggregationEvent"],),
            )
        }
        for ev_id in declared_among(self.conn, by_event):
            del by_event[ev_id]
        for ev_id, child_id in rawsql.fetch_ids(
            self.conn,
            "SELECT event_id, code_id FROM event_epc WHERE event_id {ids} AND role = ?",
            by_event,
            (ROLE_IDS["child"],),
        ):
            by_event[ev_id][4].append(child_id)
        return by_event

    def children_at(self, code_id: int, time_us: int) -> AbstractSet[int]:
        """Direct children of ``code_id`` at ``time_us``: packing at that very moment counts
        (a pallet built and shipped in the same second ships full), unpacking at that moment
        does not yet (a pallet received and broken down in the same second arrives full)."""
        history = self.history.get(code_id)
        implicit = self._implicit.get(code_id)
        if not history and not implicit:
            return _EMPTY
        kids = set(implicit) if implicit else set()
        for t, _ev, action, children in history or ():
            if t > time_us:
                break
            if action == ACTION_IDS["DELETE"]:
                if t == time_us:
                    continue
                kids = kids - set(children) if children else set()
            else:
                kids |= set(children)
        if self._holders and not kids.isdisjoint(self._holders):  # moved on without unpacking?
            kids = {
                c
                for c in kids
                if c not in self._holders or self._holder_at(c, time_us) in (None, code_id)
            }
        return kids

    @staticmethod
    def _unrecorded_packing(history: Sequence[tuple[int, int, int | None, list[int]]]) -> set[int]:
        """Children unpacked from a container before any recorded packing put them there: they
        were inside from the start (the packing event was never reported)."""
        seen: set[int] = set()
        inside: set[int] = set()
        for _t, _ev, action, children in history:
            if action == ACTION_IDS["DELETE"]:
                inside.update(c for c in children if c not in seen)
            seen.update(children)
        return inside

    def leaves(
        self,
        code_id: int,
        time_us: int,
        kids: AbstractSet[int] | None = None,
        outer: frozenset[int] = frozenset(),
    ) -> Iterator[tuple[int, Mapping[str, float]]]:
        """The codes inside ``code_id`` at ``time_us`` that hold nothing then (itself when it
        contains nothing), each with its packs per product (a case-level code with no recorded
        contents counts as the packs its product master says it holds). ``kids``: its children
        at ``time_us`` when the caller has them already; ``outer``: the containers it is inside
        on the way down, never counted again (packing data that puts a container inside itself,
        directly or through others, counts each pack once)."""
        if kids is None:
            kids = self.children_at(code_id, time_us) if len(outer) < 6 else _EMPTY
        within = outer | {code_id} if kids else outer
        if kids and not within.isdisjoint(kids):
            kids = kids - within
        if not kids:
            yield code_id, self.alone(code_id)
            return
        for kid in kids:
            if self.history.get(kid):  # a container (its history has every unrecorded packing)
                yield from self.leaves(kid, time_us, outer=within)
            else:
                yield kid, self.alone(kid)

    def alone(self, code_id: int) -> Mapping[str, float]:
        """Packs per product of ``code_id`` when it holds nothing (cached per code)."""
        found = self.cache.by_code.get(code_id)
        if found is None:
            found = self.cache.by_code[code_id] = self._alone(code_id)
        return found

    def _alone(self, code_id: int) -> Mapping[str, float]:
        product = product_of_key(self.keys.get(code_id, ""))
        if product is None:
            return {}
        if self.history.get(code_id) or code_id in self._implicit:
            return self.cache.value(product, 1.0)  # an emptied container: packs counted apart
        if self.cases is None:
            self.cases = case_contents(self.conn)
        return self.cache.value(*self.cases.get(product, (product, 1.0)))


def multi_holder_children(conn: Connection) -> set[int]:
    """Codes packed into more than one container over the log (re-packed, with or without an
    unpacking event): the ones whose containment at a time needs every holder's history."""
    return {
        r[0]
        for r in rawsql.fetch(
            conn,
            # the few parent rows first (a fence on both engines): probing an index for each
            # of the many child rows took ten times as long on SQLite
            "WITH p AS MATERIALIZED (SELECT event_id, code_id FROM event_epc WHERE role = ?) "
            "SELECT c.code_id FROM p JOIN event_epc c ON c.event_id = p.event_id AND c.role = ? "
            "GROUP BY c.code_id HAVING min(p.code_id) <> max(p.code_id)",
            (ROLE_IDS["parent"], ROLE_IDS["child"]),
        )
    }


def _movements(
    conn: Connection,
    facts: dict[int, _EventFacts],
    resolver: _Resolver,
    declared: AbstractSet[int] | None = None,
) -> list[tuple[Any, ...]]:
    """Movement rows (in :data:`_MOVEMENT_COLUMNS` order) of the events ``facts``
    (``declared``: every event of the log an error declaration retracts, if known)."""
    resolver.load({c for f in facts.values() for c, _ in f.epcs or ()})
    contents: dict[int, _Contents] = {}
    leaves: set[int] = set()
    for f in facts.values():
        if f.retracted or not f.site or not f.biz_step:
            continue
        if not f.transforms and f.biz_step not in MOVE_STEPS:
            continue
        contents[f.id] = found = _contents(f, resolver)
        if not f.makes_packs:
            leaves.update(leaf for leaf, _ in found[1])
    where = Whereabouts(conn, resolver.children_at, declared)
    resolver.load_containers(where.load(leaves))
    rows: list[tuple[Any, ...]] = []
    for ev_id, (moved, inside_codes) in contents.items():
        f = facts[ev_id]
        site = f.site
        assert site is not None
        acc: dict[tuple[str, str, int], list[float]] = {}
        split = None if f.transforms else f.split_units
        if not f.makes_packs:  # the packs are first brought here from where they were
            order = order_of(f.time_us, f.biz_step, f.hash)
            brought: dict[tuple[str, Place], float] = defaultdict(float)
            for leaf, inside in inside_codes:
                whence = where.before(leaf, order)
                for product, n in inside.items():
                    brought[(product, whence)] += n if split is None else 1.0
            for (product, whence), n in brought.items():
                _bring(acc, product, n, whence, site)
        for (product, sign), n in moved.items():
            if split is None:
                _move(acc, f, site, product, n, 0.0, sign)
            else:  # units from an opened pack: it stays in on_hand (see net_packs)
                _move(acc, f, site, product, 0.0, split * n, sign)
        for key, qty, uom, role in f.quantities or []:
            of_class = product_of_key(key)
            if of_class is None or qty is None or _batch_record(f, key, role):
                continue
            packs_q, units_q = (0.0, qty) if uom else (qty, 0.0)
            sign = -1.0 if f.transforms and role == ROLE_IDS["input"] else 1.0
            # a class-level quantity has no history: a receipt brings it in, other events
            # take it from their site
            whence = None if f.biz_step == "receiving" else (site, False)
            _bring(acc, of_class, packs_q, whence, site, units_q)
            _move(acc, f, site, of_class, packs_q, units_q, sign)
        day = day_of_us(f.time_us)
        rows.extend(
            (f.id, product, at, day, kind, packs, units)
            for (product, at, kind), (packs, units) in acc.items()
            if packs or units
        )
    return rows


_Contents = tuple[dict[tuple[str, float], float], list[tuple[int, Mapping[str, float]]]]


def _contents(f: _EventFacts, resolver: _Resolver) -> _Contents:
    """What the event moves: packs per (product, sign) of its top-level codes — the parent
    stands for its children in Transaction/Object events, sign −1 for a transformation's
    inputs, for a split sale (拆零) each code holding a product counts 1 — and the codes inside
    them that hold nothing then, with their packs per product."""
    moved: dict[tuple[str, float], float] = defaultdict(float)
    leaves: list[tuple[int, Mapping[str, float]]] = []
    epcs = f.epcs or []
    if f.type == EVENT_TYPE_IDS["AggregationEvent"] and f.biz_step not in _OUT_STEPS:
        return moved, leaves  # packing/unpacking moves nothing
    has_parent = any(role == ROLE_IDS["parent"] for _, role in epcs)
    transform = f.transforms
    count = f.split_units is not None and not transform
    commissioning = f.biz_step == "commissioning"
    for cid, role in epcs:
        if role == ROLE_IDS["child"] and has_parent:
            continue
        kids = resolver.children_at(cid, f.time_us)
        if commissioning and kids:
            continue  # a container commissioned over packs commissioned themselves
        sign = -1.0 if transform and role == ROLE_IDS["input"] else 1.0
        start = len(leaves)
        if kids:
            leaves.extend(resolver.leaves(cid, f.time_us, kids))
        else:
            leaves.append((cid, resolver.alone(cid)))
        if count:
            for product in {p for _, inside in leaves[start:] for p in inside}:
                moved[(product, sign)] += 1.0
        else:
            for _leaf, inside in leaves[start:]:
                for product, n in inside.items():
                    moved[(product, sign)] += n
    return moved, leaves


def _bring(
    acc: dict[tuple[str, str, int], list[float]],
    product: str,
    packs: float,
    whence: Place,
    site: str,
    units: float = 0.0,
) -> None:
    """Bring ``packs`` of ``product`` to ``site``'s stock from where they were before the event
    (:mod:`yaolian.supply.whereabouts`), so the event then finds them there: from another
    site's stock (a shipping never reported, 发货未上报), out of transit (to the site the
    shipping named, if any), or from off the record (a receipt nobody shipped, a pack never
    seen before its sale). Already in stock at ``site``: nothing. A receipt is this and nothing
    more, so a receipt reported twice counts once."""
    if whence is not None and whence[0] == site and not whence[1]:
        return
    if whence is not None:
        origin, in_transit = whence
        if in_transit:
            if origin is not None:
                _add(acc, product, origin, Kind.TRANSIT_OUT, -packs, 0.0)
        elif origin is not None:
            _add(acc, product, origin, Kind.SHIP, -packs, -units)
    _add(acc, product, site, Kind.RECEIVE, packs, units)


def _move(
    acc: dict[tuple[str, str, int], list[float]],
    f: _EventFacts,
    site: str,
    product: str,
    packs: float,
    units: float,
    sign: float,
) -> None:
    """Add to ``acc`` what event ``f`` does at ``site`` with ``packs`` and ``units`` of
    ``product`` found there (:func:`_bring`), by its bizStep (``sign``: −1 for a
    transformation's input)."""
    step = f.biz_step
    if f.transforms:
        _add(acc, product, site, Kind.TRANSFORM, sign * packs, sign * units)
    elif step == "commissioning":
        _add(acc, product, site, Kind.COMMISSION, packs, units)
    elif step in _OUT_STEPS:
        _add(acc, product, site, _OUT_STEPS[step], -packs, -units)
        if f.destination and f.destination != site:
            _add(acc, product, f.destination, Kind.TRANSIT_IN, packs, units)
    elif step in CONSUME_STEPS:
        _add(acc, product, site, Kind.DISPENSE, -packs, -units)
    elif step in REMOVE_STEPS:
        _add(acc, product, site, Kind.REMOVE, -packs, -units)


def _add(
    acc: dict[tuple[str, str, int], list[float]],
    product: str,
    where: str,
    kind: Kind,
    packs: float,
    units: float,
) -> None:
    """Add packs and units to the cell of ``product`` × ``where`` × ``kind``."""
    cell = acc.get((product, where, int(kind)))
    if cell is None:
        cell = acc[(product, where, int(kind))] = [0.0, 0.0]
    cell[0] += packs
    cell[1] += units


def _batch_record(f: _EventFacts, key: str, role: int) -> bool:
    """Whether a class-level quantity only records a batch: a transformation's output of an
    NMPA drug lot (e.g. a 中成药 batch made from 饮片) names the batch for lineage, while its
    packs enter stock when their trace codes are commissioned (一物一码) — counting both would
    count the batch twice."""
    return (
        f.transforms
        and role == ROLE_IDS["output"]
        and key.startswith((NMPA_LOT_KEY, NMPA_PRODUCT_KEY))
    )


def _events_naming(conn: Connection, codes: Collection[int]) -> set[int]:
    """Ids of the stored events that name any of ``codes``."""
    return {r[0] for r in rawsql.fetch_ids(conn, _NAMING_SQL, codes)}


_NAMING_SQL = "SELECT DISTINCT event_id FROM event_epc WHERE code_id {ids}"


def affected_events(
    conn: Connection, event_ids: Sequence[int], code_ids: Iterable[int] | None = None
) -> list[int]:
    """``event_ids`` plus every stored event naming the same codes or the containers those
    codes were aggregated into — every event whose movements they could change, taken broadly
    (``code_ids``: the codes those events name, when the caller knows them already).
    :func:`affected_by` is the narrow rule a capture uses."""
    ids = set(event_ids)
    if code_ids is None:
        code_ids = [r[0] for r in rawsql.fetch_ids(conn, _CODES_OF_SQL, ids)]
    ids |= _events_naming(conn, linked(conn, set(code_ids), up=True))
    return sorted(ids)


_CODES_OF_SQL = "SELECT code_id FROM event_epc WHERE event_id {ids}"
_LATER_SQL = "SELECT id FROM event WHERE id {ids} AND event_time_us >= ?"


def affected_by(
    conn: Connection, events: Sequence[StoredEvent], fresh: AbstractSet[int] = frozenset()
) -> list[int]:
    """The new ``events`` plus every stored event whose movements they can change.

    A movement depends on its own event, on the aggregation history of the codes it names
    (what was inside them then, whether they ever held anything) and on where each of its
    codes was before it (:mod:`~yaolian.supply.whereabouts`: the code's, or a container's,
    latest earlier move). So a packing or unpacking changes the events naming its container or
    a container above it; any event changes the later events naming its codes, what they ever
    held or what ever held them (a shipment reported late changes its receipt, a pack's
    commissioning the shipment of its case, a receipt the sale after it); an
    error declaration changes whatever the event it retracts did (taken broadly:
    :func:`affected_events` over its codes). ``fresh`` codes (first interned by this capture)
    are named by no stored event outside it.
    """
    ids = {e.row_id for e in events}
    containers: set[int] = set()
    placed: set[int] = set()
    broad: set[int] = set()
    since: int | None = None
    for e in events:
        ev = e.event
        codes = [cid for cid, _ in e.epcs if cid not in fresh]
        if codes:
            placed.update(codes)
            since = e.event_time_us if since is None else min(since, e.event_time_us)
        if "errorDeclaration" in ev:
            broad.update(cid for cid, _ in e.epcs)
            continue
        if ev["type"] == "AggregationEvent":
            containers.update(cid for cid, role in e.epcs if role == "parent")
    if broad:
        ids.update(affected_events(conn, [], broad))
    if containers:
        ids |= _events_naming(conn, linked(conn, containers, up=True) - fresh)
    if placed:
        near = linked(conn, placed, up=False) | linked(conn, placed, up=True)
        later = _events_naming(conn, near)
        ids.update(r[0] for r in rawsql.fetch_ids(conn, _LATER_SQL, later - ids, (since,)))
    return sorted(ids)


def recompute(
    conn: Connection,
    event_ids: Sequence[int],
    known_keys: Mapping[int, str] | None = None,
    known_histories: Mapping[int, History] | None = None,
    cache: PackCache | None = None,
    batch: StoredBatch | None = None,
    declared: AbstractSet[int] | None = None,
    repacked: AbstractSet[int] | None = None,
) -> int:
    """Replace the movements of ``event_ids`` with ones derived from the log; rows written.
    ``known_keys``: codes (id → key) whose aggregation history the caller knows, given by
    ``known_histories`` for those that were containers (a capture's fresh codes); ``cache``:
    one :class:`PackCache` for every recompute of a run over an unchanged log; ``batch``: the
    events a capture has just stored (among ``event_ids``, with no movements yet), whose facts
    are taken from it rather than read back from the log; ``declared``: every event of the log
    an error declaration retracts, when the caller has them (:func:`declared_erroneous`);
    ``repacked``: the log's codes packed into several containers, when the caller has them
    (:func:`multi_holder_children`)."""
    ids = sorted(set(event_ids))
    facts = _batch_facts(batch) if batch else {}
    stored = [i for i in ids if i not in facts]
    if stored:
        rawsql.execute_ids(conn, "DELETE FROM supply_movement WHERE event_id {ids}", stored)
        facts.update(_load_events(conn, stored))
    every_declared = declared  # the whole log's, when the caller has them
    if declared is None:
        declared = set(declared_among(conn, _could_be_declared(facts, batch)))
    for ev_id in declared & facts.keys():
        facts[ev_id].retracted = True
    resolver = _Resolver(conn, cache)
    resolver.known(known_keys or {}, known_histories or {}, repacked)
    rows = _movements(conn, facts, resolver, every_declared)
    rawsql.insert(conn, "supply_movement", _MOVEMENT_COLUMNS, rows)  # COPY on PostgreSQL
    return len(rows)


_MOVEMENT_COLUMNS = ("event_id", "product", "site", "day", "kind", "packs", "units")


# ── reading the ledger ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class StockLine:
    """Stock of one product at one site: packs on hand (opened ones included), units sold from
    opened packs (拆零, negative), what that leaves in packs, and packs in transit."""

    product: str
    site: str
    region: str | None
    site_kind: str | None
    on_hand: float
    units: float
    in_transit: float
    net_packs: float  # on_hand + units / units_per_pack: what consumption and risk count


def quantity(value: float | None) -> float:
    """A summed quantity without float noise (9 decimals: a 拆零 unit is far coarser), so a
    sum that is zero shows as 0, not -2.2e-16, and every store and summing order agrees."""
    return round(float(value or 0), 9) + 0.0  # + 0.0: no -0.0


def pack_equivalent() -> Any:
    """A movement in packs, units of opened packs (拆零) as fractions of a pack: SQL over
    ``supply_movement`` outer-joined to ``product`` (a product without master data: 1 unit per
    pack)."""
    m = supply_movement.c
    return m.packs + m.units / func.coalesce(product_table.c.units_per_pack, 1)


def _on_hand_expr() -> Any:
    return func.sum(
        case(
            (supply_movement.c.kind.in_([int(k) for k in ON_HAND_KINDS]), supply_movement.c.packs),
            else_=0.0,
        )
    )


def stock(
    conn: Connection,
    *,
    as_of: date | datetime | None = None,
    product: str | None = None,
    site_id: str | None = None,
    region: str | None = None,
) -> list[StockLine]:
    """Stock per product × site at the end of ``as_of``'s day (default: everything recorded)."""
    on_hand = _on_hand_expr()
    units = func.sum(
        case(
            (supply_movement.c.kind.in_([int(k) for k in ON_HAND_KINDS]), supply_movement.c.units),
            else_=0.0,
        )
    )
    transit = func.sum(
        case(
            (supply_movement.c.kind.in_([int(k) for k in TRANSIT_KINDS]), supply_movement.c.packs),
            else_=0.0,
        )
    )
    net = func.sum(
        case(
            (supply_movement.c.kind.in_([int(k) for k in ON_HAND_KINDS]), pack_equivalent()),
            else_=0.0,
        )
    )
    q = (
        select(
            supply_movement.c.product,
            supply_movement.c.site,
            site.c.region,
            site.c.kind,
            on_hand,
            units,
            transit,
            net,
        )
        .outerjoin(site, site.c.location_id == supply_movement.c.site)
        .outerjoin(product_table, product_table.c.product_code == supply_movement.c.product)
        .group_by(supply_movement.c.product, supply_movement.c.site, site.c.region, site.c.kind)
        .order_by(supply_movement.c.product, supply_movement.c.site)
    )
    if as_of is not None:
        q = q.where(supply_movement.c.day <= as_of_day(as_of))
    if product:
        q = q.where(supply_movement.c.product == product)
    if site_id:
        q = q.where(supply_movement.c.site == site_id)
    if region:
        q = q.where(site.c.region == region)
    lines = (
        StockLine(*r[:4], quantity(r[4]), quantity(r[5]), quantity(r[6]), quantity(r[7]))
        for r in conn.execute(q)
    )
    return [s for s in lines if s.on_hand or s.units or s.in_transit]


def daily_stock(
    conn: Connection, product: str, site_id: str, first: date, last: date
) -> list[tuple[date, float]]:
    """Packs on hand at the end of each day from ``first`` to ``last`` at one site."""
    lo, hi = day_number(first), day_number(last)
    if hi < lo:
        raise ValidationError("last day is before first day", place="last")
    opening = conn.execute(
        select(_on_hand_expr()).where(
            supply_movement.c.product == product,
            supply_movement.c.site == site_id,
            supply_movement.c.day < lo,
        )
    ).scalar()
    deltas: dict[int, float] = {
        r[0]: r[1]
        for r in conn.execute(
            select(supply_movement.c.day, _on_hand_expr())
            .where(
                supply_movement.c.product == product,
                supply_movement.c.site == site_id,
                supply_movement.c.day.between(lo, hi),
            )
            .group_by(supply_movement.c.day)
        )
    }
    level = float(opening or 0.0)
    out = []
    for d in range(lo, hi + 1):
        level += float(deltas.get(d) or 0.0)
        out.append((day_date(d), level))
    return out


# ── stock-take (盘点) ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A stock-take line: counted against book (ledger) stock at the counting time."""

    id: int
    site: str
    product: str
    counted: float
    book: float
    counted_at: datetime

    @property
    def difference(self) -> float:
        """Counted minus book: negative means packs missing (盘亏), positive extra (盘盈)."""
        return self.counted - self.book

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready line (``counted_at`` as ISO 8601)."""
        return {
            "id": self.id,
            "site": self.site,
            "product": self.product,
            "counted": self.counted,
            "book": self.book,
            "difference": self.difference,
            "counted_at": self.counted_at.isoformat(),
        }


def record_stock_take(
    conn: Connection,
    site_id: str,
    counts: dict[str, float],
    *,
    counted_at: datetime,
    counted_by: str | None = None,
) -> list[Discrepancy]:
    """Record counted packs per product at a site (盘点) and return each line against the ledger."""
    at_us = stored_us(counted_at, "counted_at")
    site_id = require_site(site_id)
    if not counts:
        raise ValidationError("a stock-take needs at least one counted product", place="counts")
    for product, qty in counts.items():
        require_product(product, f"counts/{product}")
        if qty < 0:
            raise ValidationError(f"counted quantity {qty} is negative", place=f"counts/{product}")
    day = as_of_day(counted_at)
    book = {
        line.product: line.on_hand for line in stock(conn, as_of=day_date(day), site_id=site_id)
    }
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    out = []
    for product, qty in sorted(counts.items()):
        row_id = conn.execute(
            insert(supply_stock_count)
            .values(
                site=site_id,
                product=product,
                counted_packs=float(qty),
                counted_at_us=at_us,
                recorded_us=now_us,
                book_packs=book.get(product, 0.0),
                counted_by=counted_by,
            )
            .returning(supply_stock_count.c.id)
        ).scalar_one()
        out.append(
            Discrepancy(
                int(row_id), site_id, product, float(qty), book.get(product, 0.0), counted_at
            )
        )
    return out


def stock_takes(
    conn: Connection, site_id: str | None = None, *, only_differences: bool = False
) -> list[Discrepancy]:
    """Recorded stock-take lines (newest first), optionally only those that differ from book."""
    q = select(supply_stock_count).order_by(
        supply_stock_count.c.counted_at_us.desc(), supply_stock_count.c.id
    )
    if site_id:
        q = q.where(supply_stock_count.c.site == site_id)
    out = [
        Discrepancy(
            r.id,
            r.site,
            r.product,
            r.counted_packs,
            r.book_packs,
            datetime.fromtimestamp(r.counted_at_us / 1e6, UTC),
        )
        for r in conn.execute(q)
    ]
    return [d for d in out if d.difference != 0] if only_differences else out


def require_product_known(conn: Connection, product: str) -> None:
    """NotFoundError unless the ledger has movements of ``product``."""
    found = conn.execute(
        select(supply_movement.c.product).where(supply_movement.c.product == product).limit(1)
    ).first()
    if found is None:
        raise NotFoundError(f"no stock movements of product {product}", place="product")
