"""Projections: tables kept current from the event log, rebuildable from it at any time.

A projector receives the events a capture has just stored, inside the capture's transaction,
and updates its tables. ``yaolian rebuild`` calls :meth:`Projector.reset` and replays the whole
log through :meth:`Projector.apply` in event-time order, in batches; the result must be the same
as applying events as they arrived (including out of event-time order), which every projector's
tests prove.

Layers register their projector at import time with :func:`register`; :func:`projectors`
imports the known projector modules so the store never depends on them statically.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import Connection, Engine, func, select, tuple_

from yaolian.codes.identity import canonical_key
from yaolian.epcis.gcpause import gc_paused
from yaolian.epcis.model import EpcRole, Event, iter_epcs, iter_quantities
from yaolian.store.dictionary import lookup_codes
from yaolian.store.engine import vacuum_analyze, writing
from yaolian.store.schema import event

# Modules that register projectors when imported (trace/verify and supply layers).
PROJECTOR_MODULES: tuple[str, ...] = ("yaolian.trace.projection", "yaolian.supply.projection")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its row id, normalised dict and the interned ids of its codes."""

    row_id: int
    event: Event
    hash: str
    event_time_us: int
    record_time_us: int
    epcs: tuple[tuple[int, EpcRole], ...]  # (code id, role) per instance identifier
    classes: tuple[tuple[int, float | None, str | None, EpcRole], ...]  # (class id, qty, uom, role)


class StoredBatch(list[StoredEvent]):
    """The events one capture has just stored, with what the capture knows of their codes: the
    canonical key of every code id they name, and the ``fresh`` ids — codes first interned by
    this capture, which no earlier event names and no projection has rows for yet. Projectors
    may take set-based shortcuts for fresh codes; a rebuild passes plain lists."""

    def __init__(
        self, events: Iterable[StoredEvent], keys: Mapping[int, str], fresh: AbstractSet[int]
    ) -> None:
        super().__init__(events)
        self.keys = keys
        self.fresh = fresh


class Projector(Protocol):
    """One projection: its name, how to fold new events in, how to clear for a rebuild."""

    name: str

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold freshly stored events (any event-time order) into the projection."""

    def reset(self, conn: Connection) -> None:
        """Delete every row of the projection (the log is untouched)."""


_registry: dict[str, Projector] = {}


def register(projector: Projector) -> Projector:
    """Add a projector (idempotent by name); returns it so it can be used as a decorator target."""
    _registry[projector.name] = projector
    return projector


def projectors() -> list[Projector]:
    """All registered projectors, after importing the known projector modules."""
    for module in PROJECTOR_MODULES:
        importlib.import_module(module)
    return list(_registry.values())


@runtime_checkable
class SetBasedProjector(Projector, Protocol):
    """A projector that can also recompute itself from the whole log at once, faster than a
    replay; :func:`rebuild` prefers :meth:`rebuild` over :meth:`reset` and replay."""

    rebuild_unit: str
    """What :meth:`rebuild` counts in its progress: ``codes``, ``events``."""

    def rebuild(self, conn: Connection, progress: Callable[[int, int], None] | None = None) -> None:
        """Replace every row of the projection with rows recomputed from the whole log, calling
        ``progress(done, total)`` as it goes (in :attr:`rebuild_unit`)."""


@dataclass(frozen=True, slots=True)
class MasterDataChange:
    """Master data a projection may have read while folding events has changed: site or party
    URIs whose owner (or a site's coordinates) changed, product codes / GTINs whose units per
    pack changed, those whose storage range changed."""

    identifiers: frozenset[str] = frozenset()
    unit_products: frozenset[str] = frozenset()
    range_products: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.identifiers or self.unit_products or self.range_products)

    def __or__(self, other: MasterDataChange) -> MasterDataChange:
        return MasterDataChange(
            self.identifiers | other.identifiers,
            self.unit_products | other.unit_products,
            self.range_products | other.range_products,
        )


@runtime_checkable
class MasterDataReader(Projector, Protocol):
    """A projector whose rows depend on master data as well as on the log (the anomaly rules
    ask who owns a site, where it is, how many units a pack holds)."""

    def master_data_changed(self, conn: Connection, change: MasterDataChange) -> int:
        """Recompute the rows that read the changed master data, as a rebuild would; returns
        how many codes (or other units) it recomputed."""


def master_data_changed(conn: Connection, change: MasterDataChange) -> int:
    """Tell every projector that reads master data about a change, inside the caller's write
    transaction, so captured projections stay equal to a rebuild whatever order master data
    and events arrive in. Returns the units recomputed."""
    if not change:
        return 0
    return sum(
        projector.master_data_changed(conn, change)
        for projector in projectors()
        if isinstance(projector, MasterDataReader)
    )


ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(what, done, total)`` during a rebuild: ``what`` is ``"trace
(codes)"`` for a set-based projector (its name and unit) or ``"replay (events)"`` for events
replayed through the other projectors."""


def load_stored_events(conn: Connection, rows: Sequence[Any]) -> list[StoredEvent]:
    """StoredEvents for event rows ``(id, hash, event_time_us, record_time_us, payload)``.

    Codes are keyed exactly as at capture (canonical key of each identifier in the payload, in
    document order) and looked up in the code dictionary.
    """
    events = [(row, orjson.loads(row[4])) for row in rows]
    keys = {canonical_key(code) for _, ev in events for code, _ in iter_epcs(ev)}
    keys |= {canonical_key(cls) for _, ev in events for cls, *_ in iter_quantities(ev)}
    ids = lookup_codes(conn, keys)
    return [
        StoredEvent(
            row_id=int(row[0]),
            event=ev,
            hash=row[1],
            event_time_us=int(row[2]),
            record_time_us=int(row[3]),
            epcs=tuple((ids[canonical_key(code)], role) for code, role in iter_epcs(ev)),
            classes=tuple(
                (ids[canonical_key(cls)], qty, uom, role)
                for cls, qty, uom, role in iter_quantities(ev)
            ),
        )
        for row, ev in events
    ]


def rebuild(
    engine: Engine, progress: ProgressCallback | None = None, *, batch_size: int = 5_000
) -> int:
    """Reset every projection and replay the whole log in event-time order, in batches.

    Projectors with their own whole-log ``rebuild`` (:class:`SetBasedProjector`) run that
    instead of the replay. One write transaction: until it commits, readers see the old
    projections (SQLite) or wait for it (PostgreSQL: a set-based rebuild drops the indexes),
    and a failure leaves them as they were. The cyclic garbage collector is paused meanwhile
    (millions of acyclic rows and states are built; reference counting frees them). Returns
    the number of events in the log.
    """
    with gc_paused(), writing(engine) as conn:
        replayed = _rebuild_in(conn, progress, batch_size)
    vacuum_analyze(engine)  # PostgreSQL: statistics and visibility of the rewritten rows
    return replayed


def _rebuild_in(conn: Connection, progress: ProgressCallback | None, batch_size: int) -> int:
    """:func:`rebuild` inside its write transaction."""
    registered = []
    done = 0
    for projector in projectors():
        if isinstance(projector, SetBasedProjector):
            label = f"{projector.name} ({projector.rebuild_unit})"
            projector.rebuild(conn, partial(progress, label) if progress else None)
        else:
            projector.reset(conn)
            registered.append(projector)
    total = int(conn.execute(select(func.count()).select_from(event)).scalar_one())
    if not registered:
        return total
    cols = (
        event.c.id,
        event.c.hash,
        event.c.event_time_us,
        event.c.record_time_us,
        event.c.payload,
    )
    position: tuple[int, int] | None = None
    while True:
        stmt = select(*cols).order_by(event.c.event_time_us, event.c.id).limit(batch_size)
        if position is not None:
            stmt = stmt.where(tuple_(event.c.event_time_us, event.c.id) > tuple_(*position))
        rows = conn.execute(stmt).all()
        if not rows:
            break
        batch = load_stored_events(conn, rows)
        for projector in registered:
            projector.apply(conn, batch)
        done += len(rows)
        position = (int(rows[-1][2]), int(rows[-1][0]))
        if progress:
            progress("replay (events)", done, total)
    return done
