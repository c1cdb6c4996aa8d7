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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection

from yaolian.epcis.model import EpcRole, Event

# Modules that register projectors when imported (trace/verify and supply layers).
PROJECTOR_MODULES: tuple[str, ...] = ()


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
