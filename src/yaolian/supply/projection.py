"""The supply ledger as a projection: movements kept current on capture, rebuildable.

On each capture the projector recomputes the movements of the new events *and* of the stored
events they can change (same codes, or containers of those codes — see
:func:`yaolian.supply.ledger.affected_events`), so a receiving that arrives before its shipping,
or an aggregation that arrives after its pallet was shipped, ends in the same rows as events
captured in event-time order, and a rebuild reproduces them. Codes a capture interns for the
first time (:class:`~yaolian.store.projections.StoredBatch`) have no stored history: their
containers and their own packings are found among the capture's events, with no query; the
capture's events themselves are taken from the batch, not read back from the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, select

from yaolian.store.projections import StoredBatch, StoredEvent, register
from yaolian.store.schema import ACTION_IDS, ROLE_IDS, code, event, event_epc, supply_movement
from yaolian.supply.ledger import History, PackCache, affected_events, recompute

REBUILD_CHUNK = 20_000  # events per recompute in a rebuild


def _split_fresh(batch: StoredBatch) -> tuple[set[int], dict[int, History]]:
    """(stored codes whose log can matter, aggregation history of the fresh containers).

    Only the capture's own events name a fresh code: its containers are found among them, and
    walking up through them reaches the stored codes whose other events a new one can change;
    its packings are the capture's aggregation events with it as parent.
    """
    parents_of: dict[int, set[int]] = defaultdict(set)
    histories: dict[int, History] = defaultdict(list)
    fresh = batch.fresh
    codes: set[int] = set()
    for e in batch:
        up = [cid for cid, role in e.epcs if role == "parent"]
        codes.update(cid for cid, _ in e.epcs)
        if not up:
            continue
        children = [cid for cid, role in e.epcs if role == "child"]
        for child in children:
            parents_of[child].update(up)
        ev = e.event
        if ev["type"] == "AggregationEvent" and "errorDeclaration" not in ev and up[0] in fresh:
            action = ACTION_IDS[ev["action"]] if ev.get("action") else None
            packing = (e.event_time_us, e.row_id, action, children)
            histories[up[0]].append(packing)
    stored = codes - fresh
    seen: set[int] = set()
    todo = [c for c in codes & fresh if c in parents_of]
    while todo:
        for parent in parents_of[todo.pop()]:
            if parent not in seen:
                seen.add(parent)
                if parent in fresh:
                    todo.append(parent)
                else:
                    stored.add(parent)
    return stored, histories


class SupplyLedgerProjector:
    """Stock movements per event × product × site (``supply_movement``)."""

    name = "supply_ledger"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Recompute the movements of ``events`` and of the stored events they affect."""
        if not events:
            return
        ids = [e.row_id for e in events]
        if isinstance(events, StoredBatch) and events.fresh:
            stored, histories = _split_fresh(events)
            fresh = {cid: events.keys[cid] for cid in events.fresh}
            recompute(conn, affected_events(conn, ids, stored), fresh, histories, batch=events)
            return
        codes = {code_id for e in events for code_id, _role in e.epcs}
        batch = events if isinstance(events, StoredBatch) else None
        recompute(conn, affected_events(conn, ids, codes), batch=batch)

    def reset(self, conn: Connection) -> None:
        """Delete every movement (the log is untouched)."""
        conn.execute(supply_movement.delete())

    def rebuild(self, conn: Connection, chunk: int = REBUILD_CHUNK) -> None:
        """Recompute every movement from the whole log (``yaolian rebuild``).

        A movement is a function of its event and the log, so each event is recomputed once,
        in chunks of consecutive event ids, with no closure over affected events; codes never
        named as a parent are passed as leaves (no aggregation history to fetch).
        """
        self.reset(conn)
        ee = event_epc.c
        parents = set(
            conn.execute(select(ee.code_id).where(ee.role == ROLE_IDS["parent"]).distinct())
            .scalars()
            .all()
        )
        ids = conn.execute(select(event.c.id).order_by(event.c.id)).scalars().all()
        cache = PackCache()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            named = conn.execute(
                select(ee.code_id, code.c.key)
                .join(code, code.c.id == ee.code_id)
                .where(ee.event_id.between(part[0], part[-1]))
            ).all()
            leaves = {cid: key for cid, key in named if cid not in parents}
            recompute(conn, part, leaves, cache=cache)


PROJECTOR = register(SupplyLedgerProjector())
