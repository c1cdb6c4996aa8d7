"""The trace projector: code state, aggregation history, custody, sales, sensor exposure, alerts.

Registered with the store (``store.projections``) and run inside every capture transaction.
New events are folded forward into the stored state of the codes they touch (and of everything
inside those codes). When an event arrives out of event-time order (a receipt before its
shipping, a late commissioning, an error declaration) the touched codes are recomputed from
their full history instead: the set is closed under "was ever inside" (descendants) and the
machine replays every event of those codes and of their ancestors, in event-time order. Both
ways run the same :class:`~yaolian.trace.state.Machine`, so a rebuild (replay of the whole log)
gives the same rows as capture in any arrival order. The anomaly rules also read master data
(site owners and places, party owners, products' unit counts and storage ranges); when that
changes, the codes that read it are recomputed the same way.
"""

from __future__ import annotations

import multiprocessing
import operator
import os
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, delete, insert, or_, select, text

from yaolian.codes.identity import product_of_key
from yaolian.config import env_number
from yaolian.store import schema as s
from yaolian.store.dictionary import code_keys
from yaolian.store.engine import create_store_engine
from yaolian.store.ingest import DECLARED_SUFFIX
from yaolian.store.masterdata import EVENTS_NAMING
from yaolian.store.projections import MasterDataChange, StoredBatch, StoredEvent, register
from yaolian.trace import rawsql
from yaolian.trace.state import (
    STATE_COLUMNS,
    CodeState,
    Facts,
    Machine,
    OutOfOrder,
    Outputs,
    ProductInfo,
    SiteInfo,
    Trigger,
    facts_of,
)
from yaolian.verify.anomalies import AnomalyRules

CHUNK = 5_000
CLONE_SPEED_ENV = "YAOLIAN_CLONE_SPEED_KMH"
DEFAULT_CLONE_SPEED_KMH = 300.0  # faster than high-speed rail door to door
RULES = AnomalyRules()
_ROLE_NAMES = {v: k for k, v in s.ROLE_IDS.items()}
_TABLES_BY_CODE = (
    (s.code_state, s.code_state.c.code_id),
    (s.aggregation, s.aggregation.c.child_id),
    (s.custody, s.custody.c.code_id),
    (s.dispense, s.dispense.c.code_id),
    (s.code_sensor, s.code_sensor.c.code_id),
    (s.alert, s.alert.c.code_id),
)
_TABLES = (*(table for table, _ in _TABLES_BY_CODE), s.batch_party)
"""Every table of the projection (``batch_party`` has no code column: :func:`recompute` takes
out what only the rows it rewrote named)."""


def chunks(ids: Collection[int], size: int = CHUNK) -> Iterator[list[int]]:
    """Sorted ids in lists of at most ``size`` (for IN lists)."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


# every recall, closed ones too: a sale made while a recall was open stays a recalled sale
_RECALL_CODES_SQL = (
    "SELECT rc.code_id, r.id, r.created_us, r.closed_us FROM recall_code rc "
    "JOIN recall r ON r.id = rc.recall_id"
)
_Recall = tuple[int, int, int | None]  # recall id, created, closed (µs)


def _by_code(rows: Iterable[tuple[Any, ...]]) -> dict[int, list[_Recall]]:
    """``_RECALL_CODES_SQL`` rows as code id → its recalls."""
    out: dict[int, list[_Recall]] = defaultdict(list)
    for cid, rid, created, closed in rows:
        out[cid].append((rid, created, closed))
    return out


class StoreContext:
    """Master data, recalls and stored states for one projector run, cached."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.clone_speed_kmh = env_number(CLONE_SPEED_ENV, DEFAULT_CLONE_SPEED_KMH, 1.0)
        self.keys: dict[int, str] = {}
        self._sites: dict[str | None, SiteInfo | None] = {None: None}
        self._parties: dict[str | None, int | None] = {None: None}
        self._products: dict[str | None, ProductInfo | None] = {None: None}
        self._recall_batches: dict[tuple[str | None, str | None], list[_Recall]] = {}
        self._recall_codes: dict[int, list[_Recall]] | None = None
        self.touched: set[int] = set()  # codes of this run (recall look-ups are batched)

    def focus(self, codes: set[int] | None) -> None:
        """The codes of this run (per-code look-ups such as recalls are batched over them);
        ``None``: every code (a full rebuild)."""
        self.touched = codes if codes is not None else set()
        self._recall_codes = None
        if codes is None:
            self._recall_codes = _by_code(rawsql.fetch(self.conn, _RECALL_CODES_SQL))

    def load_keys(self, ids: Collection[int]) -> None:
        """Fetch the canonical keys of codes about to be seen for the first time."""
        missing = [i for i in ids if i not in self.keys]
        if missing:
            self.keys.update(code_keys(self.conn, missing))

    def state(self, code_id: int) -> CodeState | None:
        """The stored state of one code (forward mode, codes not preloaded)."""
        return load_states(self.conn, [code_id]).get(code_id)

    def new_state(self, code_id: int) -> CodeState:
        """A blank state; the product comes from the code itself."""
        if code_id not in self.keys:
            self.load_keys([code_id])
        key = self.keys.get(code_id, "")
        return CodeState(code_id=code_id, product=product_of_key(key))

    def site(self, location_id: str | None) -> SiteInfo | None:
        """Owner and coordinates of a registered site."""
        if location_id not in self._sites:
            row = self.conn.execute(
                select(s.site.c.enterprise_id, s.site.c.lat, s.site.c.lon).where(
                    s.site.c.location_id == location_id
                )
            ).first()
            self._sites[location_id] = SiteInfo(row[0], row[1], row[2]) if row else None
        return self._sites[location_id]

    def party_enterprise(self, party: str | None) -> int | None:
        """Enterprise of a party URI; a site URI used as a party maps to the site's owner."""
        if party not in self._parties:
            found = self.conn.execute(
                select(s.enterprise.c.id).where(s.enterprise.c.party_id == party)
            ).scalar()
            if found is None:
                info = self.site(party)
                found = info.enterprise_id if info else None
            self._parties[party] = found
        return self._parties[party]

    def product(self, product_code: str | None) -> ProductInfo | None:
        """Units per pack and storage range of a registered product."""
        if product_code not in self._products:
            p = s.product.c
            row = self.conn.execute(
                select(p.units_per_pack, p.temp_min, p.temp_max).where(
                    or_(p.product_code == product_code, p.gtin == product_code)
                )
            ).first()
            self._products[product_code] = (
                ProductInfo(int(row[0] or 1), row[1], row[2]) if row else None
            )
        return self._products[product_code]

    def recall_of(self, code_id: int, product: str | None, lot: str | None, t: int) -> int | None:
        """A recall open at ``t`` (created at or before it, not closed by then) naming the code
        or its batch."""
        if self._recall_codes is None:  # once per run, for the codes this run touches
            self._recall_codes = _by_code(
                rawsql.fetch_ids(
                    self.conn,
                    _RECALL_CODES_SQL + " WHERE rc.code_id {ids}",
                    self.touched or {code_id},
                )
            )
        hits = list(self._recall_codes.get(code_id, ()))
        if product is not None and lot is not None:
            batch = (product, lot)
            if batch not in self._recall_batches:
                r, rb = s.recall.c, s.recall_batch.c
                self._recall_batches[batch] = [
                    (row[0], row[1], row[2])
                    for row in self.conn.execute(
                        select(r.id, r.created_us, r.closed_us)
                        .join(s.recall_batch, r.id == rb.recall_id)
                        .where(rb.product == product, rb.lot == lot)
                    )
                ]
            hits += self._recall_batches[batch]
        found = [
            rid for rid, created, closed in hits if created <= t and (closed is None or t < closed)
        ]
        return min(found) if found else None


_STATE_SQL = f"SELECT {', '.join(STATE_COLUMNS)} FROM code_state WHERE code_id {{ids}}"
AGG_COLUMNS = ("child_id", "parent_id", "from_us", "from_event_id", "to_us", "to_event_id")
CUSTODY_COLUMNS = (
    "code_id",
    "via_id",
    "from_party",
    "to_party",
    "from_site",
    "to_site",
    "ship_event_id",
    "ship_us",
    "recv_event_id",
    "recv_us",
    "kind",
    "product",
    "lot",
)
DISPENSE_COLUMNS = (
    "code_id",
    "event_id",
    "time_us",
    "site",
    "units",
    "settlement",
    "prior_status",
    "prior_site",
    "prior_custodian",
    "product",
    "lot",
)
SENSOR_COLUMNS = ("code_id", "event_id", "time_us", "min_c", "max_c")


def load_states(conn: Connection, ids: Collection[int]) -> dict[int, CodeState]:
    """Stored states of codes (unknown codes are left out)."""
    return {row[0]: CodeState(*row) for row in rawsql.fetch_ids(conn, _STATE_SQL, ids)}


def _open_children(conn: Connection, parents: Collection[int]) -> list[tuple[int, int]]:
    return [
        (r[0], r[1])
        for r in rawsql.fetch_ids(
            conn,
            "SELECT parent_id, child_id FROM aggregation WHERE parent_id {ids} AND to_us IS NULL",
            parents,
        )
    ]


def _related(conn: Connection, ids: Collection[int], down: bool) -> set[int]:
    """Codes ever aggregated below (``down``) or above the given codes, per the event log."""
    mine, other = (s.ROLE_IDS["parent"], s.ROLE_IDS["child"])
    if not down:
        mine, other = other, mine
    rows = rawsql.fetch_ids(
        conn,
        "SELECT DISTINCT e2.code_id FROM event_epc e1 JOIN event_epc e2 "
        "ON e2.event_id = e1.event_id WHERE e1.code_id {ids} AND e1.role = ? AND e2.role = ?",
        ids,
        (mine, other),
    )
    return {r[0] for r in rows}


def closure(conn: Connection, seed: Collection[int], down: bool) -> set[int]:
    """``seed`` plus every code ever below (``down``) or above it, transitively."""
    found = set(seed)
    frontier = set(seed)
    while frontier:
        frontier = _related(conn, frontier, down) - found
        found |= frontier
    return found


def _tuples(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(map(operator.itemgetter(*columns), rows))


# ── the two ways of folding ───────────────────────────────────────────────────────────────
def _forward(
    conn: Connection, facts: list[Facts], ctx: StoreContext, fresh: AbstractSet[int]
) -> Machine:
    """The machine after folding ``facts`` into the stored states of their codes (``fresh``
    codes have none: they start blank without a look-up)."""
    touched = {cid for f in facts for cid, _ in f.codes}
    states = load_states(conn, touched - fresh if fresh else touched)
    ctx.focus(touched)
    new = touched - states.keys()
    ctx.load_keys(new)
    states.update((cid, ctx.new_state(cid)) for cid in new)
    children: dict[int, set[int]] = defaultdict(set)
    deep, emptied = _needing_contents(facts)
    level = {cid for cid in deep | emptied if cid in states and states[cid].has_children}
    while level:
        rows = _open_children(conn, level)
        for parent, child in rows:
            children[parent].add(child)
        states.update(load_states(conn, {child for _, child in rows} - states.keys()))
        below = {child for parent, child in rows if parent in deep}
        deep |= below
        level = {cid for cid in below if cid in states and states[cid].has_children}
    machine = Machine(states, children, ctx, strict=True, rules=RULES)
    for f in facts:
        machine.apply(f)
    return machine


def _needing_contents(facts: Sequence[Facts]) -> tuple[set[int], set[int]]:
    """(codes whose whole contents an event reaches, containers emptied by an unpacking).

    An event other than an aggregation reaches everything inside the codes it names (a shipped
    pallet carries its cases and packs): their stored contents are loaded, and the contents of
    whatever this batch packs into them. An unpacking that lists no children empties its
    container: its children are loaded, not theirs. A packing needs no contents at all — in a
    bulk capture, packing 1,000 cases onto pallets no longer reads the 100,000 packs inside."""
    deep = {cid for f in facts if f.kind != "AggregationEvent" for cid, _ in f.codes}
    packed: dict[int, set[int]] = defaultdict(set)
    emptied: set[int] = set()
    for f in facts:
        if f.kind == "AggregationEvent" and f.parent_id is not None:
            packed[f.parent_id].update(cid for cid, role in f.codes if role == "child")
            if f.action == "DELETE" and not f.has_children:
                emptied.add(f.parent_id)
    todo = list(deep)
    while todo:
        for child in packed.get(todo.pop(), ()):
            if child not in deep:
                deep.add(child)
                todo.append(child)
    return deep, emptied


_EVENT_SQL = (
    "SELECT id, event_time_us, record_time_us, payload, event_id, error_declared, hash FROM event"
)


def _load_facts(conn: Connection, scope: set[int] | None) -> list[Facts]:
    """Every event naming a code in ``scope`` (``None``: the whole log), as facts restricted to
    those codes, in event-time order."""
    codes_of: dict[int, list[tuple[int, str]]] = defaultdict(list)
    if scope is None:
        links = rawsql.fetch(conn, "SELECT code_id, event_id, role FROM event_epc")
        rows = rawsql.fetch(conn, _EVENT_SQL)
    else:
        links = rawsql.fetch_ids(
            conn, "SELECT code_id, event_id, role FROM event_epc WHERE code_id {ids}", scope
        )
    for cid, eid, role in links:
        codes_of[eid].append((cid, _ROLE_NAMES[role]))
    del links
    if scope is not None:
        rows = rawsql.fetch_ids(conn, _EVENT_SQL + " WHERE id {ids}", codes_of)
    # an error declaration is stored as its own row (same codes, so loaded here too) with the
    # original's hash + DECLARED_SUFFIX and, usually, the original's eventID
    declared_ids = {r[4] for r in rows if r[5] and r[4]}
    declared_hashes = {r[6].removesuffix(DECLARED_SUFFIX) for r in rows if r[5]}
    facts = []
    for eid, t, record_us, payload, event_id, error_declared, digest in rows:
        if error_declared or digest in declared_hashes or (event_id and event_id in declared_ids):
            continue  # an event declared erroneous (EPCIS errorDeclaration) counts for nothing
        order = sorted(codes_of.get(eid, ()), key=_code_order)
        if order:
            facts.append(facts_of(orjson.loads(payload), eid, t, record_us, order))
    facts.sort(key=lambda f: f.key)
    return facts


def _code_order(code: tuple[int, str]) -> tuple[bool, int]:
    """The order codes of one event are applied in: the parent first, then by id."""
    return (code[1] != "parent", code[0])


def _in_code_order(codes: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """A stored event's codes (its parent first, as listed) sorted by :func:`_code_order`."""
    if codes and codes[0][1] == "parent":
        return [codes[0], *sorted(codes[1:], key=_CODE_ID)]
    return sorted(codes, key=_CODE_ID)


_CODE_ID = operator.itemgetter(0)


def recompute(conn: Connection, seed: Collection[int], ctx: StoreContext | None = None) -> int:
    """Recompute every projection row of ``seed`` and all codes ever inside them, from the log.

    Returns the number of codes rewritten.
    """
    ctx = ctx or StoreContext(conn)
    scope = closure(conn, seed, down=True)
    world = closure(conn, scope, down=False)
    ctx.load_keys(world)
    ctx.focus(world)
    machine = _replay(_load_facts(conn, world), world, ctx)
    named = _parties_named_by(conn, scope)
    for table, column in _TABLES_BY_CODE:
        rawsql.execute_ids(conn, f"DELETE FROM {table.name} WHERE {column.name} {{ids}}", scope)
    _write_all(conn, machine, scope)
    _forget_parties(conn, named - _parties_named_by(conn, scope))
    return len(scope)


def _replay(
    facts: list[Facts], world: set[int], ctx: StoreContext, *, grouped: bool = True
) -> Machine:
    """Blank states of ``world`` and the given history applied in event-time order."""
    machine = Machine(
        {}, defaultdict(set), ctx, strict=False, scope=world, rules=RULES, grouped=grouped
    )
    for f in facts:
        machine.apply(f)
    return machine


@dataclass(slots=True)
class FoldedRows:
    """The rows a machine run made, ready to insert: code states, the other tables' rows as
    tuples, and the alert triggers (what a rebuild worker sends back)."""

    states: list[tuple[Any, ...]]
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
    triggers: list[Trigger]


def _table_rows(
    out: Outputs, scope: set[int] | None
) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """The new aggregation, custody, sale and sensor rows of a machine run for codes in
    ``scope`` (``None``: all), as tuples in column order (each table's code id first: the codes
    of one container share the rest of their rows)."""
    tables = []
    for table, columns, rows, key in (
        ("aggregation", AGG_COLUMNS, out.aggregation, "child_id"),
        ("custody", CUSTODY_COLUMNS, out.custody, "code_id"),
        ("dispense", DISPENSE_COLUMNS, out.dispense, "code_id"),
        ("code_sensor", SENSOR_COLUMNS, out.sensor, "code_id"),
    ):
        chosen = rows if scope is None else [r for r in rows if r[key] in scope]
        tables.append((table, tuple(columns), _tuples(chosen, columns)))
    return tables


def _rows_of(machine: Machine, scope: set[int] | None) -> FoldedRows:
    """Every row of ``machine`` for codes in ``scope`` (``None``: all of them)."""
    return FoldedRows(
        [
            astuple_state(st)
            for st in machine.states.values()
            if scope is None or st.code_id in scope
        ],
        _table_rows(machine.out, scope),
        [t for t in machine.out.triggers if scope is None or t.code_id in scope],
    )


def _write_rows(conn: Connection, rows: FoldedRows) -> None:
    """Insert folded rows (alerts merged by key with stored ones)."""
    rawsql.insert_alike(conn, "code_state", STATE_COLUMNS, rows.states)
    for table, columns, tuples in rows.tables:
        rawsql.insert_alike(conn, table, columns, tuples)
    _note_batch_parties(conn, [("code_state", STATE_COLUMNS, rows.states), *rows.tables])
    _write_alerts(conn, rows.triggers)


_PARTY_COLUMNS = {
    "code_state": ("custodian", "site"),
    "custody": ("from_party", "to_party", "from_site", "to_site"),
    "dispense": ("site",),
}
"""Per projection, the columns that name a party or a site taking part in the row's batch."""
_PARTY_CLAUSES = sum(map(len, _PARTY_COLUMNS.values()))
_ROWS_OF_CODES_SQL = tuple(
    f"SELECT DISTINCT product, lot, {', '.join(columns)} FROM {table} WHERE code_id {{ids}}"
    for table, columns in _PARTY_COLUMNS.items()
)
_STILL_NAMED_SQL = "SELECT 1 WHERE " + " OR ".join(
    f"EXISTS (SELECT 1 FROM {table} WHERE product = ? AND lot = ? AND {column} = ?)"
    for table, columns in _PARTY_COLUMNS.items()
    for column in columns
)
_FORGET_SQL = "DELETE FROM batch_party WHERE product = ? AND lot = ? AND party = ?"


def _parties_named_by(conn: Connection, codes: Collection[int]) -> set[tuple[Any, Any, Any]]:
    """Each (product, lot, party or site) the rows of ``codes`` name (code-id look-ups)."""
    return {
        (product, lot, party)
        for sql in _ROWS_OF_CODES_SQL
        for product, lot, *parties in rawsql.fetch_ids(conn, sql, codes)
        if product is not None and lot is not None
        for party in parties
        if party is not None
    }


def _forget_parties(conn: Connection, gone: Iterable[tuple[Any, Any, Any]]) -> None:
    """Take out of ``batch_party`` those of ``gone`` — named by rows a recompute rewrote, no
    longer by the new ones — that no other row of their batch names (an event declared
    erroneous gives its parties no part). Usually nothing is gone and nothing is read: a late
    event re-derives the same parties; a batch's rows are read only for one that went."""
    cur = rawsql.cursor(conn)
    still, forget = rawsql.sql(conn, _STILL_NAMED_SQL), rawsql.sql(conn, _FORGET_SQL)
    for entry in sorted(gone):
        cur.execute(still, entry * _PARTY_CLAUSES)
        if cur.fetchone() is None:
            cur.execute(forget, entry)


def _note_batch_parties(
    conn: Connection, tables: Iterable[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
) -> None:
    """Add to ``batch_party`` each (product, lot, party or site) these rows name. Nothing is
    taken away when a later event moves a code on: whoever held it, or was the destination of a
    shipment that another party received, keeps its part until a rebuild reads the rows as they
    are then (:func:`_forget_parties` only takes out what a recompute's rewritten rows no
    longer name)."""
    found: set[tuple[Any, Any, Any]] = set()
    for table, columns, tuples in tables:
        named = _PARTY_COLUMNS.get(table)
        if not named or not tuples:
            continue
        batch = operator.itemgetter(columns.index("product"), columns.index("lot"))
        for at in (columns.index(c) for c in named):
            found.update((*batch(r), r[at]) for r in tuples if r[at] is not None)
    rawsql.executemany(
        conn,
        "INSERT INTO batch_party (product, lot, party) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        sorted(f for f in found if f[0] is not None and f[1] is not None),
    )


def _write_all(conn: Connection, machine: Machine, scope: set[int] | None) -> None:
    """Insert every row the machine made for codes in ``scope`` (``None``: all of them)."""
    _write_rows(conn, _rows_of(machine, scope))


def fold_log(conn: Connection, *, grouped: bool = True) -> Machine:
    """The state machine after replaying the whole log in event-time order (nothing written).

    ``grouped=False`` folds code by code: the reference the grouped fold is tested against.
    """
    ctx = StoreContext(conn)
    ctx.focus(None)
    facts = _load_facts(conn, None)
    world = {cid for f in facts for cid, _ in f.codes}
    ctx.load_keys(world)
    return _replay(facts, world, ctx, grouped=grouped)


def code_groups(conn: Connection, size: int) -> list[list[int]]:
    """Every code of the log, in groups of about ``size`` codes that no aggregation links:
    whole connected components of the "packed with" graph (a pallet, its cases and their
    packs, and wherever they were repacked), so each group folds on its own and gives the rows
    the whole log would. A component larger than ``size`` is a group of its own."""
    codes = _int_array(conn, "SELECT DISTINCT code_id FROM event_epc")
    if not len(codes):
        return []
    links = _int_array(
        conn,
        "SELECT p.code_id, c.code_id FROM event_epc p JOIN event_epc c "
        "ON c.event_id = p.event_id WHERE p.role = ? AND c.role = ?",
        (s.ROLE_IDS["parent"], s.ROLE_IDS["child"]),
    ).reshape(-1, 2)
    from scipy.sparse import coo_matrix  # scipy: loaded by the rebuild that needs it
    from scipy.sparse.csgraph import connected_components

    n = int(codes.max()) + 1
    graph = coo_matrix((np.ones(len(links), dtype=np.int8), (links[:, 0], links[:, 1])), (n, n))
    labels = connected_components(graph, directed=False)[1][codes]
    order = np.argsort(labels, kind="stable")
    codes, labels = codes[order], labels[order]
    starts = np.flatnonzero(np.diff(labels)) + 1  # where each component begins
    groups, cut = [], 0
    for start in [*starts.tolist(), len(codes)]:
        if start - cut >= size or start == len(codes):
            groups.append(codes[cut:start].tolist())
            cut = start
    return groups


def _int_array(conn: Connection, text: str, params: Sequence[Any] = ()) -> np.ndarray:
    """The integer columns of a query, row after row, as one flat int64 array (streamed from the
    cursor: no Python tuple per row — a log of 10M EPC rows has millions of codes)."""
    cur = rawsql.cursor(conn)
    cur.execute(rawsql.sql(conn, text), tuple(params))
    return np.fromiter(chain.from_iterable(cur), dtype=np.int64)


REBUILD_CODES = 50_000
"""Codes folded and written at a time by :func:`rebuild_all` (its memory grows with this, not
with the log)."""


def rebuild_all(
    conn: Connection,
    codes_per_pass: int = REBUILD_CODES,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute every trace projection from the whole log (``yaolian rebuild``).

    The log is folded in passes over :func:`code_groups` — whole aggregation components of
    about ``codes_per_pass`` codes, each replayed alone by the same machine as
    :func:`recompute` and written at once — so memory stays bounded however long the log. Rows
    go with bulk inserts into emptied tables whose secondary indexes are dropped meanwhile and
    rebuilt once at the end (:func:`bulk_load`; on PostgreSQL dropping the indexes locks the
    tables until the commit anyway). ``progress(codes done, codes in all)`` after each pass.
    Returns the number of codes written.
    """
    groups = code_groups(conn, codes_per_pass)
    written, total = 0, sum(map(len, groups))
    with bulk_load(conn):
        workers = rebuild_workers(conn, total)
        folded = _fold_in_workers(conn, groups, workers) if workers else _fold_here(conn, groups)
        for rows in folded:
            _write_rows(conn, rows)
            written += len(rows.states)
            if progress:
                progress(written, total)
    return written


@contextmanager
def bulk_load(conn: Connection) -> Iterator[None]:
    """Empty the trace tables and drop their secondary indexes; re-create the indexes when the
    block ends (one sort per index instead of a B-tree insert per row). On PostgreSQL the
    tables are emptied with ``TRUNCATE``; on SQLite before the indexes go, so their pages are
    freed wholesale."""
    if rawsql.is_pg(conn):
        names = ", ".join(table.name for table in _TABLES)
        rawsql.cursor(conn).execute(f"TRUNCATE {names}")
    else:
        PROJECTOR.reset(conn)
    indexes = [ix for table, _ in _TABLES_BY_CODE for ix in table.indexes]
    for ix in indexes:
        ix.drop(conn)
    yield
    for ix in indexes:
        ix.create(conn)


REBUILD_WORKERS_ENV = "YAOLIAN_REBUILD_WORKERS"
REBUILD_PARALLEL_CODES = 200_000
"""A rebuild of this many codes or more folds in worker processes while this one writes."""


def rebuild_workers(conn: Connection, codes: int) -> int:
    """How many worker processes fold a rebuild of ``codes`` codes: ``$YAOLIAN_REBUILD_WORKERS``
    if set, else none below :data:`REBUILD_PARALLEL_CODES` (starting them costs a second or
    two), else one per core (at most 4: this process mostly waits for them, writing). A store in
    memory has none. On the 2-core development machine two workers rebuild 1.12M EPC rows
    10–20 % faster than one process (its two cores give 1.5× one core's throughput)."""
    database = conn.engine.url.database
    if conn.dialect.name == "sqlite" and database in (None, "", ":memory:"):
        return 0
    if os.environ.get(REBUILD_WORKERS_ENV, "").strip():
        return env_number(REBUILD_WORKERS_ENV, 0, 0)
    if codes < REBUILD_PARALLEL_CODES:
        return 0
    return min(os.cpu_count() or 1, 4)


def _fold_here(conn: Connection, groups: list[list[int]]) -> Iterator[FoldedRows]:
    """Each group folded in this process, one after the other."""
    ctx = StoreContext(conn)
    ctx.focus(None)
    for ids in groups:
        yield _fold_group(conn, ctx, ids)


def _fold_group(conn: Connection, ctx: StoreContext, ids: list[int]) -> FoldedRows:
    group = set(ids)
    ctx.keys.clear()
    ctx.load_keys(group)
    return _rows_of(_replay(_load_facts(conn, group), group, ctx), None)


def _fold_in_workers(
    conn: Connection, groups: list[list[int]], workers: int
) -> Iterator[FoldedRows]:
    """Groups folded by ``workers`` processes reading the committed log (the fold reads the
    log, master data and recalls, never the projections this transaction is rewriting), in
    order, at most two groups per worker in flight (memory stays bounded)."""
    url = conn.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")  # no inherited connections
    with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(url,)) as pool:
        pending: deque[Future[FoldedRows]] = deque()
        queue = iter(groups)
        for ids in islice(queue, 2 * workers):
            pending.append(pool.submit(_fold_in_worker, ids))
        while pending:
            rows = pending.popleft().result()
            following = next(queue, None)
            if following is not None:
                pending.append(pool.submit(_fold_in_worker, following))
            yield rows


_worker: tuple[Connection, StoreContext] | None = None  # a rebuild worker's own connection


def _start_worker(url: str) -> None:
    """Open a rebuild worker's read connection (the store is migrated already)."""
    global _worker
    conn = create_store_engine(url, create=False).connect()
    ctx = StoreContext(conn)
    ctx.focus(None)
    _worker = (conn, ctx)


def _fold_in_worker(ids: list[int]) -> FoldedRows:
    assert _worker is not None, "not a rebuild worker"
    return _fold_group(*_worker, ids)


astuple_state: Callable[[CodeState], tuple[Any, ...]] = operator.attrgetter(*STATE_COLUMNS)
"""A state as a ``code_state`` row tuple."""


def _write_forward(conn: Connection, machine: Machine, fresh: AbstractSet[int]) -> None:
    dirty = machine.dirty
    rawsql.execute_ids(conn, "DELETE FROM code_state WHERE code_id {ids}", dirty - fresh)
    states = machine.states
    states_rows = [astuple_state(states[c]) for c in sorted(dirty)]
    rawsql.insert_alike(conn, "code_state", STATE_COLUMNS, states_rows)
    out = machine.out
    rawsql.executemany(
        conn,
        "UPDATE aggregation SET to_us = ?, to_event_id = ? WHERE child_id = ? "
        "AND parent_id = ? AND to_us IS NULL",
        [
            (r["to_us"], r["to_event_id"], r["b_child"], r["b_parent"])
            for r in out.aggregation_closes
        ],
    )
    rawsql.executemany(
        conn,
        "UPDATE custody SET recv_event_id = ?, recv_us = ?, "
        "to_party = COALESCE(?, to_party), to_site = COALESCE(?, to_site) "
        "WHERE code_id = ? AND ship_event_id = ?",
        [
            (
                r["recv_event_id"],
                r["recv_us"],
                r["to_party"],
                r["to_site"],
                r["b_code"],
                r["b_ship"],
            )
            for r in out.custody_receipts
        ],
    )
    tables = _table_rows(out, None)
    for table, columns, tuples in tables:
        rawsql.insert_alike(conn, table, columns, tuples)
    _note_batch_parties(conn, [("code_state", STATE_COLUMNS, states_rows), *tables])
    _write_alerts(conn, out.triggers)


def _evidence_item(t: Trigger) -> dict[str, Any]:
    return {"event_id": t.event_id, "time_us": t.time_us, "site": t.site}


def _merge(row: dict[str, Any], t: Trigger) -> None:
    items = {i["event_id"]: i for i in row["evidence"]["events"]}
    items[t.event_id] = _evidence_item(t)
    row["evidence"]["events"] = sorted(items.values(), key=lambda i: (i["time_us"], i["event_id"]))
    if (t.time_us, t.event_id) < (row["time_us"], row["event_id"]):
        row.update(event_id=t.event_id, time_us=t.time_us, site=t.site, record_us=t.record_us)
        row["evidence"].update(t.evidence)


def _write_alerts(conn: Connection, triggers: Sequence[Trigger]) -> None:
    """Insert alerts, merging triggers with the same key (deduplication) into one row."""
    if not triggers:
        return
    rows: dict[str, dict[str, Any]] = {}
    keys = sorted({t.key for t in triggers})
    al = s.alert.c
    for start in range(0, len(keys), CHUNK):
        for r in conn.execute(
            select(
                al.key,
                al.rule,
                al.severity,
                al.code_id,
                al.event_id,
                al.site,
                al.time_us,
                al.record_us,
                al.evidence,
            ).where(al.key.in_(keys[start : start + CHUNK]))
        ):
            rows[r.key] = {**r._mapping, "evidence": dict(r.evidence), "_stored": True}
    for t in triggers:
        row = rows.get(t.key)
        if row is None:
            rows[t.key] = {
                "key": t.key,
                "rule": t.rule,
                "severity": t.severity,
                "code_id": t.code_id,
                "event_id": t.event_id,
                "site": t.site,
                "time_us": t.time_us,
                "record_us": t.record_us,
                "evidence": {**t.evidence, "events": [_evidence_item(t)]},
            }
        else:
            _merge(row, t)
    stored = [k for k, r in rows.items() if r.pop("_stored", False)]
    for start in range(0, len(stored), CHUNK):
        conn.execute(delete(s.alert).where(al.key.in_(stored[start : start + CHUNK])))
    conn.execute(insert(s.alert), [rows[k] for k in sorted(rows)])


_CODES_NAMING_SQL = f"SELECT DISTINCT code_id FROM event_epc WHERE event_id IN ({EVENTS_NAMING})"
_SPLIT_SOLD_SQL = (  # 拆零 overrun reads units per pack: only codes sold by the unit
    "SELECT DISTINCT code_id FROM dispense WHERE product = :product AND units IS NOT NULL"
)
_EXPOSED_SQL = (  # cold chain reads the storage range: only codes with readings
    "SELECT DISTINCT cs.code_id FROM code_sensor cs JOIN code_state st "
    "ON st.code_id = cs.code_id WHERE st.product = :product"
)


def codes_reading(conn: Connection, change: MasterDataChange) -> set[int]:
    """The codes whose rows may have read the changed master data: those named by events at
    the changed sites or parties (their contents follow in :func:`recompute`), the codes of a
    product with a new unit count that were sold by the unit, and those of a product with a
    new storage range that have temperature readings — no other row reads product data."""
    found: set[int] = set()
    for ident in sorted(change.identifiers):
        found.update(conn.execute(text(_CODES_NAMING_SQL), {"ident": ident}).scalars())
    for sql, products in (
        (_SPLIT_SOLD_SQL, change.unit_products),
        (_EXPOSED_SQL, change.range_products),
    ):
        for code in sorted(products):
            found.update(conn.execute(text(sql), {"product": code}).scalars())
    return found


class TraceProjector:
    """The ``trace`` projection (see the module docstring)."""

    name = "trace"
    rebuild_unit = "codes"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold newly stored events in: forward when in order, else recompute the codes."""
        if not events:
            return
        facts = sorted(
            (
                facts_of(
                    e.event,
                    e.row_id,
                    e.event_time_us,
                    e.record_time_us,
                    _in_code_order(e.epcs),
                )
                for e in events
            ),
            key=lambda f: f.key,
        )
        ctx = StoreContext(conn)
        fresh: AbstractSet[int] = frozenset()
        if isinstance(events, StoredBatch):  # a capture: it knows its codes' keys
            ctx.keys.update(events.keys)
            fresh = events.fresh
        try:
            machine = _forward(conn, facts, ctx, fresh)
        except OutOfOrder:
            recompute(conn, {cid for f in facts for cid, _ in f.codes}, ctx)
            return
        _write_forward(conn, machine, fresh)

    def master_data_changed(self, conn: Connection, change: MasterDataChange) -> int:
        """Recompute the codes whose alerts may read the changed master data."""
        seed = codes_reading(conn, change)
        return recompute(conn, seed) if seed else 0

    def rebuild(self, conn: Connection, progress: Callable[[int, int], None] | None = None) -> None:
        """Recompute the projection from the whole log (see :func:`rebuild_all`); ``progress``
        counts codes."""
        rebuild_all(conn, progress=progress)

    def reset(self, conn: Connection) -> None:
        """Delete every row of the trace projections (recalls are kept: they are not derived)."""
        for table in _TABLES:
            rawsql.cursor(conn).execute(f"DELETE FROM {table.name}")


PROJECTOR = register(TraceProjector())
