"""Capture: validate, hash, de-duplicate and store a document's events in one transaction.

Steps per document: validate every event (``yaolian.epcis.validate``), compute its CBV 2.0
hash, fill ``recordTime`` when missing, drop duplicates (same hash or same eventID, within the
document or already stored), intern the codes, bulk-insert the event rows and their index rows
(codes, quantities, business transactions, parties, sensor readings, ILMD, access), then let
every projector fold the new events in — all in ONE write transaction.

Error behaviour (``GS1-Capture-Error-Behaviour``): ``rollback`` stores nothing when any event is
invalid and reports every problem; ``proceed`` stores the valid events and reports each rejected
one. The bulk path inserts with ``executemany`` on SQLite and binary ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    select,
)

from yaolian.codes.identity import canonical_key, canonical_keys
from yaolian.epcis import xml
from yaolian.epcis.context import with_namespaces
from yaolian.epcis.extensions import ilmd_facts
from yaolian.epcis.gcpause import gc_paused
from yaolian.epcis.hash import event_hash
from yaolian.epcis.model import (
    EPC_LISTS,
    EPC_ROLES,
    Document,
    EpcRole,
    Event,
    biz_transactions,
    iter_quantities,
    location,
    parties,
    to_epoch_us,
)
from yaolian.epcis.nmpa_dataset import read_nmpa_dataset
from yaolian.epcis.read import read_document
from yaolian.epcis.validate import validate_event
from yaolian.errors import Problem, ValidationError, YaolianError
from yaolian.store.dictionary import intern_codes
from yaolian.store.engine import is_sqlite, refresh_statistics, writing
from yaolian.store.projections import StoredBatch, StoredEvent, projectors
from yaolian.store.schema import ACTION_IDS, EVENT_TYPE_IDS, ROLE_IDS, enterprise, metadata, site

Behaviour = Literal["rollback", "proceed"]
ProgressCallback = Callable[[str, int, int | None], None]
"""Called as ``progress(stage, done, total)`` after each chunk; stages ``validate``, ``store``."""

CHUNK_EVENTS = 20_000
DECLARED_SUFFIX = "#errorDeclaration"
_PARTY_KIND = {"source": 1, "destination": 2}


@dataclass
class CaptureResult:
    """Outcome of one capture: counts, every problem, and the row ids of stored events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[Problem] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """No event was rejected."""
        return self.rejected == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for capture jobs, the API and ``--json``)."""
        return {
            "success": self.success,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [{"place": p.place, "reason": p.reason} for p in self.errors],
        }


AfterCapture = Callable[[Connection, CaptureResult], object]
"""Called as ``then(conn, result)`` inside a capture's transaction once its events are stored."""


@dataclass(slots=True)
class _Prepared:
    """A valid event ready to store, with everything computed outside the transaction."""

    event: Event
    hash: str
    key: str  # de-duplication key stored in event.hash (see DECLARED_SUFFIX)
    event_id: str | None
    declared: bool  # carries an errorDeclaration
    event_time_us: int
    record_time_us: int
    epc_keys: list[tuple[str, int]]
    class_keys: list[tuple[str, float | None, str | None, int]]
    place: str  # where the event is in its document (for errors found later)


class _Preparer:
    """Validates, hashes and keys events; remembers hashes/eventIDs seen in this document."""

    _PARENT_ROLE = ROLE_IDS["parent"]
    _CHILD_ROLE = ROLE_IDS["child"]
    _LIST_ROLES = tuple((key, ROLE_IDS[role]) for key, role in EPC_LISTS)

    def __init__(
        self, namespaces: Callable[[], Mapping[str, str] | None], self_contained: bool
    ) -> None:
        self.namespaces = namespaces
        self.self_contained = self_contained  # events already declare their prefixes
        now = datetime.now(UTC)
        self.now_iso = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.now_us = to_epoch_us(self.now_iso)
        self.seen_keys: set[str] = set()
        self.seen_ids: set[tuple[str, bool]] = set()

    def prepare(self, event: Event, place: str) -> _Prepared | list[Problem]:
        problems = validate_event(event, place)
        if problems:
            return problems
        if event["type"] not in EVENT_TYPE_IDS:  # valid EPCIS, but not a type the store keeps
            return [
                Problem(
                    f"extension event type {event['type']!r}: the store keeps the five EPCIS 2.0 "
                    "event types (ObjectEvent, AggregationEvent, TransactionEvent, "
                    "TransformationEvent, AssociationEvent)",
                    f"{place}/type",
                )
            ]
        try:
            epc_keys = self.epc_keys(event)
            class_keys = [
                (canonical_key(cls), qty, uom, ROLE_IDS[role])
                for cls, qty, uom, role in iter_quantities(event)
            ]
        except YaolianError as exc:
            return [Problem(exc.reason, f"{place}{'/' + exc.place if exc.place else ''}")]
        if epc_keys and epc_keys[0][1] == self._PARENT_ROLE:
            inside = self._inside_itself(epc_keys)
            if inside is not None:
                return [
                    Problem(
                        "a container cannot hold itself: parentID is one of the childEPCs",
                        f"{place}/childEPCs/{inside}",
                    )
                ]
        if not self.self_contained:  # stored events declare the prefixes they use
            event = with_namespaces(event, self.namespaces())
        record_time = event.get("recordTime")
        if record_time is None:
            event = {**event, "recordTime": self.now_iso}
            record_us = self.now_us
        else:
            record_us = to_epoch_us(record_time)
        digest = event_hash(event, self.namespaces())
        declared = "errorDeclaration" in event
        return _Prepared(
            event=event,
            hash=digest,
            key=digest + DECLARED_SUFFIX if declared else digest,
            event_id=event.get("eventID"),
            declared=declared,
            event_time_us=to_epoch_us(event["eventTime"]),
            record_time_us=record_us,
            epc_keys=epc_keys,
            class_keys=class_keys,
            place=place,
        )

    @classmethod
    def epc_keys(cls, event: Event) -> list[tuple[str, int]]:
        """(canonical key, role id) of every EPC, in :func:`~yaolian.epcis.model.iter_epcs`
        order."""
        parent = event.get("parentID")
        out = [(canonical_key(parent), cls._PARENT_ROLE)] if parent else []
        for key, role in cls._LIST_ROLES:
            values = event.get(key)
            if values:
                out.extend([(code, role) for code in canonical_keys(values)])
        return out

    @classmethod
    def _inside_itself(cls, epc_keys: list[tuple[str, int]]) -> int | None:
        """Position in childEPCs of the parent itself (in any form of its code), or None."""
        parent = epc_keys[0][0]
        children = [key for key, role in epc_keys if role == cls._CHILD_ROLE]
        return children.index(parent) if parent in children else None

    def is_duplicate(self, prepared: _Prepared) -> bool:
        """Same hash or same eventID as an earlier event of this document."""
        id_key = (prepared.event_id, prepared.declared) if prepared.event_id else None
        if prepared.key in self.seen_keys or (id_key is not None and id_key in self.seen_ids):
            return True
        self.seen_keys.add(prepared.key)
        if id_key is not None:
            self.seen_ids.add(id_key)
        return False


def _chunked(events: Iterable[tuple[str, Event]], size: int) -> Iterator[list[tuple[str, Event]]]:
    chunk: list[tuple[str, Event]] = []
    for item in events:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Writer:
    """Bulk-inserts prepared events and their index rows on one connection."""

    def __init__(self, conn: Connection, enterprise_id: int | None, job_id: int | None) -> None:
        self.conn = conn
        self.sqlite = is_sqlite(conn)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        self.raw: Any = raw
        self.enterprise_id = enterprise_id
        self.job_id = job_id
        self.projectors = projectors()
        self.epc_rows = 0  # written so far (engine.refresh_statistics)

    # ── de-duplication against the store ──
    def stored_duplicates(self, prepared: Sequence[_Prepared]) -> set[int]:
        """Positions in ``prepared`` whose hash or eventID is already stored (an eventID counts
        separately for the event and for its error declaration)."""
        if not prepared:
            return set()
        found_keys = {r[0] for r in self._existing("hash", [p.key for p in prepared])}
        ids = [p.event_id for p in prepared if p.event_id is not None]
        found_ids = {(r[0], bool(r[1])) for r in self._existing("event_id", ids)} if ids else set()
        return {
            i
            for i, p in enumerate(prepared)
            if p.key in found_keys
            or (p.event_id is not None and (p.event_id, p.declared) in found_ids)
        }

    def _existing(self, column: str, values: list[str]) -> list[tuple[Any, ...]]:
        """(value, error_declared) of stored events whose ``column`` is one of ``values``."""
        if self.sqlite:
            sql = (
                f"SELECT e.{column}, e.error_declared FROM json_each(?) j "
                f"JOIN event e ON e.{column} = j.value"
            )
            rows: list[tuple[Any, ...]] = self.raw.execute(
                sql, (orjson.dumps(values).decode(),)
            ).fetchall()
            return rows
        with self.raw.cursor() as cur:
            cur.execute(
                f"SELECT {column}, error_declared FROM event WHERE {column} = ANY(%s)", (values,)
            )
            return list(cur.fetchall())

    # ── ids ──
    def _reserve_ids(self, n: int) -> list[int]:
        if self.sqlite:  # BEGIN IMMEDIATE: we are the only writer
            top = self.raw.execute("SELECT coalesce(max(id), 0) FROM event").fetchone()[0]
            return list(range(top + 1, top + 1 + n))
        with self.raw.cursor() as cur:
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('event', 'id')) FROM generate_series(1, %s)",
                (n,),
            )
            return [r[0] for r in cur.fetchall()]

    # ── access ──
    def refusals(self, prepared: Sequence[_Prepared]) -> dict[int, Problem]:
        """Positions in ``prepared`` the capturing enterprise may not report, with why: events
        whose readPoint or bizLocation is a registered site of another enterprise (a key
        reports what happens at its own sites, so none can put events and the alerts they
        raise on a competitor's premises; places not registered pass). Regulator and admin
        keys and the CLI capture anything."""
        if self.enterprise_id is None:
            return {}
        where = {(i, key): location(p.event, key) for i, p in enumerate(prepared) for key in _AT}
        owner = self._site_owners({loc for loc in where.values() if loc})
        out: dict[int, Problem] = {}
        for (i, key), loc in where.items():
            if i not in out and loc in owner and owner[loc] != self.enterprise_id:
                out[i] = Problem(
                    f"{loc} is a site of another enterprise: an enterprise key captures the "
                    "events at its own sites (or at places not registered)",
                    f"{prepared[i].place}/{key}",
                )
        return out

    def _site_owners(self, location_ids: set[str]) -> dict[str, int]:
        """Owner (enterprise id) of each of these location ids that is a registered site."""
        ordered = sorted(location_ids)
        found: dict[str, int] = {}
        for start in range(0, len(ordered), 500):
            rows = self.conn.execute(
                select(site.c.location_id, site.c.enterprise_id).where(
                    site.c.location_id.in_(ordered[start : start + 500])
                )
            )
            found.update((r[0], int(r[1])) for r in rows)
        return found

    def _owners(self, prepared: Sequence[_Prepared]) -> tuple[dict[str, int], dict[str, int]]:
        """(site location id → owner, party id → enterprise) for the ids these events name."""
        locs: set[str] = set()
        party_ids: set[str] = set()
        for p in prepared:
            for key in _AT:
                loc = location(p.event, key)
                if loc:
                    locs.add(loc)
            party_ids.update(value for _, _, value in parties(p.event))
        site_owner = self._site_owners(locs | party_ids)
        party_owner: dict[str, int] = {}
        plist = sorted(party_ids)
        for start in range(0, len(plist), 500):
            chunk = plist[start : start + 500]
            rows = self.conn.execute(
                select(enterprise.c.party_id, enterprise.c.id).where(
                    enterprise.c.party_id.in_(chunk)
                )
            )
            party_owner.update((r[0], int(r[1])) for r in rows)
        return site_owner, party_owner

    # ── the bulk insert ──
    def store(self, prepared: Sequence[_Prepared]) -> list[int]:
        """Insert the events and their rows; run the projectors; return the new row ids."""
        if not prepared:
            return []
        interned = intern_codes(
            self.conn,
            {k for p in prepared for k, _ in p.epc_keys}
            | {k for p in prepared for k, *_ in p.class_keys},
        )
        codes = interned.ids
        ids = self._reserve_ids(len(prepared))
        site_owner, party_owner = self._owners(prepared)
        events: list[tuple[Any, ...]] = []
        epcs: list[tuple[int, int, int]] = []
        quantities: list[tuple[Any, ...]] = []
        biz_tx: list[tuple[int, str, str]] = []
        party_rows: list[tuple[int, int, str, str]] = []
        sensors: list[tuple[Any, ...]] = []
        ilmd_rows: list[tuple[Any, ...]] = []
        access: list[tuple[int, int]] = []
        stored: list[StoredEvent] = []
        want_stored = bool(self.projectors)
        for row_id, p in zip(ids, prepared, strict=True):
            ev = p.event
            read_point = location(ev, "readPoint")
            biz_location = location(ev, "bizLocation")
            action = ev.get("action")
            events.append(
                (
                    row_id,
                    p.key,
                    p.event_id,
                    EVENT_TYPE_IDS[ev["type"]],
                    ACTION_IDS[action] if action else None,
                    p.event_time_us,
                    ev["eventTimeZoneOffset"],
                    p.record_time_us,
                    ev.get("bizStep"),
                    ev.get("disposition"),
                    read_point,
                    biz_location,
                    p.declared,
                    self.job_id,
                    orjson.dumps(ev),
                )
            )
            epc_ids = [(codes[k], role) for k, role in p.epc_keys]
            # one row per (code, event, role): a code listed twice in one role is one fact
            epcs.extend((cid, row_id, role) for cid, role in dict.fromkeys(epc_ids))
            classes = [(codes[k], q, u, role) for k, q, u, role in p.class_keys]
            quantities.extend((row_id, cid, q, u, role) for cid, q, u, role in classes)
            viewers: set[int] = set()
            if self.enterprise_id is not None:
                viewers.add(self.enterprise_id)
            for loc in (read_point, biz_location):
                if loc in site_owner:
                    viewers.add(site_owner[loc])
            for kind, ptype, value in parties(ev):
                party_rows.append((row_id, _PARTY_KIND[kind], ptype, value))
                owner = party_owner.get(value, site_owner.get(value))
                if owner is not None:
                    viewers.add(owner)
            access.extend((ent, row_id) for ent in viewers)
            biz_tx.extend((row_id, t, v) for t, v in biz_transactions(ev))
            if "sensorElementList" in ev:
                sensors.extend(_sensor_rows(row_id, ev["sensorElementList"]))
            if "ilmd" in ev:
                ilmd = ilmd_facts(ev)
                if ilmd:
                    ilmd_rows.append((row_id, ilmd.lot, ilmd.expiry, ilmd.produced))
            if want_stored:
                stored.append(
                    StoredEvent(
                        row_id=row_id,
                        event=ev,
                        hash=p.hash,
                        event_time_us=p.event_time_us,
                        record_time_us=p.record_time_us,
                        epcs=tuple((cid, _ROLE_NAMES[role]) for cid, role in epc_ids),
                        classes=tuple(
                            (cid, q, u, _ROLE_NAMES[role]) for cid, q, u, role in classes
                        ),
                    )
                )
        self._bulk("event", _EVENT_COLUMNS, events)
        epcs.sort()  # primary-key order: the index is appended to, not scattered over
        self.epc_rows += len(epcs)
        self._bulk("event_epc", ("code_id", "event_id", "role"), epcs)
        self._bulk(
            "event_quantity", ("event_id", "class_id", "quantity", "uom", "role"), quantities
        )
        self._bulk("event_biz_tx", ("event_id", "type", "value"), biz_tx)
        self._bulk("event_party", ("event_id", "kind", "type", "value"), party_rows)
        self._bulk("event_sensor", _SENSOR_COLUMNS, sensors)
        self._bulk("event_ilmd", ("event_id", "lot", "expiry", "production_date"), ilmd_rows)
        self._bulk("event_access", ("enterprise_id", "event_id"), access)
        if self.projectors:
            batch = StoredBatch(stored, {cid: key for key, cid in codes.items()}, interned.fresh)
            for projector in self.projectors:
                projector.apply(self.conn, batch)
        return ids

    def _bulk(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cols = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self.raw.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
            return
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types([_PG_TYPES[table][c] for c in columns])
            for row in rows:
                copy.write_row(row)


_ROLE_NAMES: dict[int, EpcRole] = {ROLE_IDS[r]: r for r in EPC_ROLES}
_AT: tuple[Literal["readPoint"], Literal["bizLocation"]] = ("readPoint", "bizLocation")
"""Where an event happened."""
_EVENT_COLUMNS = (
    "id",
    "hash",
    "event_id",
    "type",
    "action",
    "event_time_us",
    "tz_offset",
    "record_time_us",
    "biz_step",
    "disposition",
    "read_point",
    "biz_location",
    "error_declared",
    "capture_id",
    "payload",
)
_SENSOR_COLUMNS = (
    "event_id",
    "time_us",
    "type",
    "value",
    "min_value",
    "max_value",
    "uom",
    "device_id",
)


def _copy_type(column: Column[Any]) -> str:
    """PostgreSQL type name of a column for binary COPY (text also serves varchar columns)."""
    kind = column.type
    for sa_type, name in (
        (SmallInteger, "int2"),
        (BigInteger, "int8"),
        (Integer, "int4"),
        (Boolean, "bool"),
        (Float, "float8"),
        (LargeBinary, "bytea"),
    ):
        if isinstance(kind, sa_type):
            return name
    return "text"


_PG_TYPES = {
    name: {c.name: _copy_type(c) for c in metadata.tables[name].c}
    for name in (
        "event",
        "event_epc",
        "event_quantity",
        "event_biz_tx",
        "event_party",
        "event_sensor",
        "event_ilmd",
        "event_access",
    )
}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _sensor_rows(row_id: int, elements: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """One row per sensor report (cold-chain reading); the metadata gives time/device if absent."""
    for element in elements:
        meta = element.get("sensorMetadata") or {}
        for report in element.get("sensorReport") or ():
            when = report.get("time") or meta.get("time")
            yield (
                row_id,
                to_epoch_us(when) if when else None,
                report.get("type"),
                _float(report.get("value")),
                _float(report.get("minValue")),
                _float(report.get("maxValue")),
                report.get("uom"),
                report.get("deviceID") or meta.get("deviceID"),
            )


def _capture(
    engine: Engine,
    chunks: Iterable[list[tuple[str, Event]]],
    behaviour: Behaviour,
    enterprise_id: int | None,
    job_id: int | None,
    progress: ProgressCallback | None,
    total: int | None,
    namespaces: Callable[[], Mapping[str, str] | None],
    self_contained: bool,
    then: AfterCapture | None = None,
) -> CaptureResult:
    """Prepare chunk by chunk and store inside one write transaction; ``then`` last, in it."""
    result = CaptureResult()
    preparer = _Preparer(namespaces, self_contained)
    failed = False  # rollback mode saw an invalid event: keep validating, store nothing
    index = 0
    try:
        with gc_paused(), writing(engine) as conn:  # no cycles: reference counting frees all
            writer = _Writer(conn, enterprise_id, job_id)
            for chunk in chunks:
                ready: list[_Prepared] = []
                for place, event in chunk:
                    outcome = preparer.prepare(event, place)
                    index += 1
                    if isinstance(outcome, list):
                        result.rejected += 1
                        result.errors.extend(outcome)
                        failed = failed or behaviour == "rollback"
                    elif preparer.is_duplicate(outcome):
                        result.duplicates += 1
                    else:
                        ready.append(outcome)
                refused = writer.refusals(ready)
                if refused:
                    ready = [p for i, p in enumerate(ready) if i not in refused]
                    result.rejected += len(refused)
                    result.errors.extend(refused[i] for i in sorted(refused))
                    failed = failed or behaviour == "rollback"
                if progress:
                    progress("validate", index, total)
                if failed:
                    continue
                known = writer.stored_duplicates(ready)
                result.duplicates += len(known)
                fresh = [p for i, p in enumerate(ready) if i not in known]
                result.event_ids.extend(writer.store(fresh))
                if progress:
                    progress("store", index, total)
            if failed:
                raise _RolledBack
            result.accepted = len(result.event_ids)
            if then is not None:
                then(conn, result)
    except _RolledBack:
        return CaptureResult(rejected=result.rejected, errors=result.errors)
    if result.event_ids:
        refresh_statistics(engine, writer.epc_rows)
    return result


class _RolledBack(Exception):
    """Leaves the write transaction so that it rolls back (rollback mode, invalid event)."""


def _check_behaviour(behaviour: str) -> None:
    if behaviour not in ("rollback", "proceed"):
        raise YaolianError(
            f"capture error behaviour must be rollback or proceed, not {behaviour!r}",
            place="GS1-Capture-Error-Behaviour",
        )


def capture_document(
    engine: Engine,
    doc: Document,
    *,
    behaviour: Behaviour = "rollback",
    enterprise_id: int | None = None,
    job_id: int | None = None,
    progress: ProgressCallback | None = None,
    then: AfterCapture | None = None,
) -> CaptureResult:
    """Capture every event of ``doc`` in one transaction (see the module docstring).

    ``enterprise_id`` is the capturing enterprise (it may then see these events); ``job_id``
    links the events to a capture job; ``then(conn, result)`` writes what goes with the events
    (an order row, an audit entry) in their transaction, unless rollback mode stored nothing.
    """
    _check_behaviour(behaviour)
    total = len(doc.events)
    namespaces = doc.namespaces()
    return _capture(
        engine,
        _chunked(((doc.place(i), ev) for i, ev in enumerate(doc.events)), CHUNK_EVENTS),
        behaviour,
        enterprise_id,
        job_id,
        progress,
        total,
        lambda: namespaces,
        doc.self_contained,
        then,
    )


def _looks_like_xml(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
    except OSError as exc:
        raise ValidationError(f"cannot read file: {exc.strerror}", place=str(path)) from None
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def capture_file(
    engine: Engine,
    path: str | Path,
    *,
    behaviour: Behaviour = "rollback",
    enterprise_id: int | None = None,
    job_id: int | None = None,
    progress: ProgressCallback | None = None,
    then: AfterCapture | None = None,
) -> CaptureResult:
    """Capture an EPCIS file (JSON-LD, XML 2.0/1.2) or an NMPA data set (``.csv``/``.xlsx``).

    XML is streamed: parsed, validated and stored chunk by chunk, still in one transaction.
    ``then``: see :func:`capture_document`.
    """
    _check_behaviour(behaviour)
    source = Path(path)
    if source.suffix.lower() in (".csv", ".xlsx"):
        doc = read_nmpa_dataset(source)
    elif _looks_like_xml(source):
        header: dict[str, Any] = {}
        return _capture(
            engine,
            _chunked(xml.iter_events(source, header), CHUNK_EVENTS),
            behaviour,
            enterprise_id,
            job_id,
            progress,
            None,
            lambda: header.get("namespaces"),
            True,  # the XML reader attaches each event's namespaces
            then,
        )
    else:
        doc = read_document(source)
    return capture_document(
        engine,
        doc,
        behaviour=behaviour,
        enterprise_id=enterprise_id,
        job_id=job_id,
        progress=progress,
        then=then,
    )
