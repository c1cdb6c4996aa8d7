"""The supply ledger as a projection: movements kept current on capture, rebuildable.

On each capture the projector recomputes the movements of the new events *and* of the stored
events they can change (:func:`yaolian.supply.ledger.affected_by`: for a packing, the events
naming its container or a container above it; for any event, the later events naming its
codes, what they held or what held them, whose packs it may have put somewhere else; for an
error declaration, everything the retracted event touched), so a receiving that arrives before
its shipping, or an aggregation that arrives after its pallet was shipped, ends in the same
rows as events captured in event-time order, and a rebuild reproduces them. Codes a capture
interns for the first time (:class:`~yaolian.store.projections.StoredBatch`) have no stored
history: their own packings are found among the capture's events, with no query; the
capture's events themselves are taken from the batch, not read back from the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from yaolian.store.projections import StoredBatch, StoredEvent, register
from yaolian.store.schema import ACTION_IDS, ROLE_IDS, supply_movement
from yaolian.supply.ledger import (
    History,
    PackCache,
    affected_by,
    declared_erroneous,
    multi_holder_children,
    recompute,
)
from yaolian.trace import rawsql

REBUILD_CHUNK = 20_000  # events per recompute in a rebuild
_NAMED_SQL = (
    "SELECT e.code_id, c.key FROM event_epc e JOIN code c ON c.id = e.code_id "
    "WHERE e.event_id BETWEEN ? AND ?"
)


def _fresh_histories(batch: StoredBatch) -> dict[int, History]:
    """The packings of the capture's fresh containers: its aggregation events with a fresh code
    as parent (no stored event names a fresh code), but not those the capture also declares
    erroneous."""
    declared = {e.hash for e in batch if "errorDeclaration" in e.event}
    declared_ids = {e.event.get("eventID") for e in batch if "errorDeclaration" in e.event}
    histories: dict[int, History] = defaultdict(list)
    fresh = batch.fresh
    for e in batch:
        ev = e.event
        if ev["type"] != "AggregationEvent" or "errorDeclaration" in ev:
            continue
        if e.hash in declared or (ev.get("eventID") and ev.get("eventID") in declared_ids):
            continue
        up = [cid for cid, role in e.epcs if role == "parent"]
        if up and up[0] in fresh:
            action = ACTION_IDS[ev["action"]] if ev.get("action") else None
            children = [cid for cid, role in e.epcs if role == "child"]
            histories[up[0]].append((e.event_time_us, e.row_id, action, children))
    return histories


class SupplyLedgerProjector:
    """Stock movements per event × product × site (``supply_movement``)."""

    name = "supply_ledger"
    rebuild_unit = "events"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Recompute the movements of ``events`` and of the stored events they can change
        (:func:`~yaolian.supply.ledger.affected_by`)."""
        if not events:
            return
        if isinstance(events, StoredBatch):
            affected = affected_by(conn, events, events.fresh)
            fresh = {cid: events.keys[cid] for cid in events.fresh}
            recompute(conn, affected, fresh, _fresh_histories(events), batch=events)
            return
        recompute(conn, affected_by(conn, events))

    def reset(self, conn: Connection) -> None:
        """Delete every movement (the log is untouched)."""
        conn.execute(supply_movement.delete())

    def rebuild(
        self,
        conn: Connection,
        progress: Callable[[int, int], None] | None = None,
        chunk: int = REBUILD_CHUNK,
    ) -> None:
        """Recompute every movement from the whole log (``yaolian rebuild``).

        A movement is a function of its event and the log, so each event is recomputed once,
        in chunks of consecutive event ids, with no closure over affected events; codes never
        named as a parent are passed as leaves (no aggregation history to fetch).
        ``progress(events done, events in all)`` after each chunk.
        """
        self.reset(conn)
        parents = {
            r[0]
            for r in rawsql.fetch(
                conn,
                "SELECT DISTINCT code_id FROM event_epc WHERE role = ?",
                (ROLE_IDS["parent"],),
            )
        }
        ids = [r[0] for r in rawsql.fetch(conn, "SELECT id FROM event ORDER BY id")]
        cache = PackCache()
        declared = declared_erroneous(conn)
        repacked = multi_holder_children(conn)
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            named = rawsql.fetch(conn, _NAMED_SQL, (part[0], part[-1]))
            leaves = {cid: key for cid, key in named if cid not in parents}
            recompute(conn, part, leaves, cache=cache, declared=declared, repacked=repacked)
            if progress:
                progress(start + len(part), len(ids))


PROJECTOR = register(SupplyLedgerProjector())
