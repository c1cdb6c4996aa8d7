"""The supply ledger as a projection: movements kept current on capture, rebuildable.

On each capture the projector recomputes the movements of the new events *and* of the stored
events they can change (same codes, or containers of those codes — see
:func:`yaolian.supply.ledger.affected_events`), so a receiving that arrives before its shipping,
or an aggregation that arrives after its pallet was shipped, ends in the same rows as events
captured in event-time order, and a rebuild reproduces them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from yaolian.store.projections import StoredEvent, register
from yaolian.store.schema import supply_movement
from yaolian.supply.ledger import affected_events, recompute


class SupplyLedgerProjector:
    """Stock movements per event × product × site (``supply_movement``)."""

    name = "supply_ledger"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Recompute the movements of ``events`` and of the stored events they affect."""
        if not events:
            return
        codes = {code_id for e in events for code_id, _role in e.epcs}
        recompute(conn, affected_events(conn, [e.row_id for e in events], codes))

    def reset(self, conn: Connection) -> None:
        """Delete every movement (the log is untouched)."""
        conn.execute(supply_movement.delete())


PROJECTOR = register(SupplyLedgerProjector())
