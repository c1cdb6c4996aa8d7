"""Capture into the store on SQLite and PostgreSQL: rows, idempotence, error behaviour, access,
capture jobs and the projection plumbing (capture-time apply and rebuild)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from conftest import registered
from yaolian.epcis import jsonld, xml
from yaolian.epcis.model import Document, Event
from yaolian.errors import NotFoundError, YaolianError
from yaolian.store.access import Viewer
from yaolian.store.ingest import Behaviour, capture_document, capture_file
from yaolian.store.jobs import create_job, finish_job, get_job, list_jobs
from yaolian.store.masterdata import upsert_enterprise, upsert_site
from yaolian.store.projections import StoredEvent, rebuild
from yaolian.store.schema import (
    ROLE_IDS,
    code,
    event,
    event_access,
    event_biz_tx,
    event_epc,
    event_ilmd,
    event_party,
    event_quantity,
    event_sensor,
)

GTIN = "06901234567892"
PACK = "urn:epc:id:sgtin:6901234.056789."  # + serial
CASE = "urn:epc:id:sscc:6901234.0000000002"
LOT = "urn:epc:class:lgtin:6901234.056789.L01"
FACTORY = "urn:epc:id:sgln:6901234.00002.0"
WAREHOUSE = "urn:epc:id:sgln:6901234.00003.0"
HOLDER_PARTY = "urn:epc:id:pgln:6901234.00002"
DISTRIBUTOR_PARTY = "urn:epc:id:pgln:6901234.00003"
USCC_HOLDER = "91350100M000100Y43"
USCC_DIST = "91110000100000001W"


def _doc(events: Sequence[Event]) -> Document:
    """Events through the JSON-LD reader, as a client's capture body would arrive."""
    return jsonld.document_from_json(
        {
            "@context": [
                "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                {"yl": "https://yaolian.example/ns/"},
            ],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-03-01T08:00:00Z",
            "epcisBody": {"eventList": copy.deepcopy(list(events))},
        }
    )


def commission(serials: Sequence[int], time: str = "2026-03-01T08:00:00+08:00") -> Event:
    return {
        "type": "ObjectEvent",
        "eventTime": time,
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"{PACK}{s}" for s in serials],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": FACTORY},
        "bizLocation": {"id": FACTORY},
        "ilmd": {"cbvmda:lotNumber": "L01", "cbvmda:itemExpirationDate": "2028-02-29"},
        "yl:line": "A3",
    }


def pack(serials: Sequence[int]) -> Event:
    return {
        "type": "AggregationEvent",
        "eventTime": "2026-03-01T09:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "parentID": CASE,
        "childEPCs": [f"{PACK}{s}" for s in serials],
        "action": "ADD",
        "bizStep": "packing",
        "disposition": "in_progress",
        "readPoint": {"id": FACTORY},
    }


def ship() -> Event:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-02T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [CASE],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "readPoint": {"id": FACTORY},
        "bizTransactionList": [{"type": "desadv", "bizTransaction": "urn:yl:desadv:0001"}],
        "sourceList": [{"type": "owning_party", "source": HOLDER_PARTY}],
        "destinationList": [{"type": "owning_party", "destination": DISTRIBUTOR_PARTY}],
        "sensorElementList": [
            {
                "sensorMetadata": {"time": "2026-03-02T10:00:00+08:00", "deviceID": "urn:yl:dev:1"},
                "sensorReport": [
                    {"type": "Temperature", "value": 4.5, "uom": "CEL"},
                    {"type": "Temperature", "minValue": 2.0, "maxValue": 7.5, "uom": "CEL"},
                ],
            }
        ],
    }


def lot_quantity() -> Event:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-03T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "quantityList": [{"epcClass": LOT, "quantity": 200, "uom": "EA"}],
        "action": "OBSERVE",
        "bizStep": "receiving",
        "bizLocation": {"id": WAREHOUSE},
    }


def _count(conn: Connection, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def parties(engine: Engine) -> dict[str, int]:
    holder = upsert_enterprise(engine, USCC_HOLDER, "甲药业", "holder", party_id=HOLDER_PARTY)
    dist = upsert_enterprise(engine, USCC_DIST, "乙医药", "distributor", party_id=DISTRIBUTOR_PARTY)
    upsert_site(engine, FACTORY, USCC_HOLDER, "甲药业工厂", kind="factory")
    upsert_site(engine, WAREHOUSE, USCC_DIST, "乙医药仓库", kind="warehouse")
    return {"holder": holder, "distributor": dist}


def test_capture_stores_every_index_row(engine: Engine, parties: dict[str, int]) -> None:
    doc = _doc([commission([1, 2, 3]), pack([1, 2, 3]), ship()])
    result = capture_document(engine, doc, enterprise_id=parties["holder"])
    assert (result.accepted, result.duplicates, result.rejected) == (3, 0, 0)
    assert result.success and result.errors == [] and len(result.event_ids) == 3
    receipt = capture_document(engine, _doc([lot_quantity()]), enterprise_id=parties["distributor"])
    assert receipt.accepted == 1
    ids = result.event_ids + receipt.event_ids
    with engine.connect() as conn:
        assert _count(conn, event) == 4
        # 3 packs + the case: 4 codes for the EPCs, one for the lot class
        assert _count(conn, code) == 5
        roles = conn.execute(
            select(event_epc.c.event_id, event_epc.c.role, func.count())
            .group_by(event_epc.c.event_id, event_epc.c.role)
            .order_by(event_epc.c.event_id, event_epc.c.role)
        ).all()
        assert [tuple(r) for r in roles] == [
            (ids[0], ROLE_IDS["epc"], 3),
            (ids[1], ROLE_IDS["parent"], 1),
            (ids[1], ROLE_IDS["child"], 3),
            (ids[2], ROLE_IDS["epc"], 1),
        ]
        assert conn.execute(select(event_ilmd.c.lot, event_ilmd.c.expiry)).one() == (
            "L01",
            "2028-02-29",
        )
        assert conn.execute(select(event_biz_tx.c.type, event_biz_tx.c.value)).one() == (
            "desadv",
            "urn:yl:desadv:0001",
        )
        assert sorted(conn.execute(select(event_party.c.kind, event_party.c.value)).all()) == [
            (1, HOLDER_PARTY),
            (2, DISTRIBUTOR_PARTY),
        ]
        sensors = conn.execute(
            select(
                event_sensor.c.value,
                event_sensor.c.min_value,
                event_sensor.c.max_value,
                event_sensor.c.device_id,
            )
        ).all()
        assert sorted((tuple(s) for s in sensors), key=str) == [
            (4.5, None, None, "urn:yl:dev:1"),
            (None, 2.0, 7.5, "urn:yl:dev:1"),
        ]
        assert conn.execute(select(event_quantity.c.quantity, event_quantity.c.uom)).one() == (
            200.0,
            "EA",
        )
        stored = conn.execute(
            select(event.c.payload, event.c.hash).where(event.c.id == ids[0])
        ).one()
        access = conn.execute(
            select(event_access.c.event_id, event_access.c.enterprise_id).order_by(
                event_access.c.event_id, event_access.c.enterprise_id
            )
        ).all()
    # the extension field and the filled-in recordTime are kept in the stored payload
    payload = jsonld.read_document(b"[" + stored.payload + b"]").events[0]
    assert payload["yl:line"] == "A3" and "recordTime" in payload
    assert stored.hash.startswith("ni:///sha-256;")
    holder, dist = parties["holder"], parties["distributor"]
    # the capturer sees what it captured; the distributor also sees the shipment (destination
    # party); the holder does not see the distributor's own receipt
    assert [tuple(a) for a in access] == [
        (ids[0], holder),
        (ids[1], holder),
        (ids[2], holder),
        (ids[2], dist),
        (ids[3], dist),
    ]


@pytest.mark.parametrize("behaviour", ["rollback", "proceed"])
def test_an_enterprise_captures_the_events_of_its_own_sites(
    engine: Engine, parties: dict[str, int], behaviour: Behaviour
) -> None:
    """A receipt at the distributor's warehouse reported with the holder's key is refused (a key
    speaks for its own sites; places nobody registered pass); a regulator's or the CLI's
    capture (no enterprise) may report it."""
    unregistered = commission([7]) | {"bizLocation": {"id": "urn:epc:id:sgln:6999999.00001.0"}}
    doc = _doc([commission([1, 2, 3]), lot_quantity(), unregistered])
    result = capture_document(engine, doc, enterprise_id=parties["holder"], behaviour=behaviour)
    assert result.rejected == 1
    (problem,) = result.errors
    assert problem.place == "/epcisBody/eventList/1/bizLocation"
    assert WAREHOUSE in problem.reason and "its own sites" in problem.reason
    with engine.connect() as conn:
        stored = _count(conn, event)
    assert (result.accepted, stored) == ((0, 0) if behaviour == "rollback" else (2, 2))
    assert capture_document(engine, _doc([lot_quantity()])).accepted == 1


def test_same_document_twice_is_idempotent(engine: Engine) -> None:
    doc = _doc([commission([1, 2]), pack([1, 2])])
    first = capture_document(engine, doc)
    second = capture_document(engine, _doc([commission([1, 2]), pack([1, 2])]))
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 2, 0)
    with engine.connect() as conn:
        assert _count(conn, event) == 2
        assert _count(conn, event_epc) == 5


def test_duplicates_within_one_document_and_by_event_id(engine: Engine) -> None:
    a = commission([1])
    same_id = {**commission([2]), "eventID": "urn:uuid:6c5a0e4e-0d4c-4f8e-9d0e-1f2a3b4c5d6e"}
    other_content_same_id = {**commission([3]), "eventID": same_id["eventID"]}
    result = capture_document(engine, _doc([a, a, same_id, other_content_same_id]))
    assert (result.accepted, result.duplicates) == (2, 2)
    later = capture_document(engine, _doc([{**commission([4]), "eventID": same_id["eventID"]}]))
    assert (later.accepted, later.duplicates) == (0, 1)


def test_error_declaration_is_stored_beside_the_original(engine: Engine) -> None:
    original = commission([1])
    capture_document(engine, _doc([original]))
    declaration = {
        **original,
        "errorDeclaration": {"declarationTime": "2026-03-05T00:00:00Z", "reason": "incorrect_data"},
    }
    result = capture_document(engine, _doc([declaration]))
    assert (result.accepted, result.duplicates) == (1, 0)
    again = capture_document(engine, _doc([declaration]))
    assert again.duplicates == 1
    with engine.connect() as conn:
        assert conn.execute(
            select(event.c.error_declared).order_by(event.c.id)
        ).scalars().all() == [False, True]


def _invalid() -> Event:
    bad = commission([9])
    bad["eventTime"] = "2026-03-01T08:00:00"  # no time-zone offset
    return bad


def test_rollback_stores_nothing_and_reports_every_problem(engine: Engine) -> None:
    doc = _doc([commission([1]), _invalid(), pack([1]), {**_invalid(), "action": "SOMETIMES"}])
    result = capture_document(engine, doc, behaviour="rollback")
    assert (result.accepted, result.rejected, result.success) == (0, 2, False)
    places = {p.place.split("/")[3] for p in result.errors if p.place}
    assert places == {"1", "3"}
    with engine.connect() as conn:
        assert _count(conn, event) == 0
        assert _count(conn, code) == 0


def test_proceed_stores_the_valid_events(engine: Engine) -> None:
    doc = _doc([commission([1]), _invalid(), pack([1])])
    result = capture_document(engine, doc, behaviour="proceed")
    assert (result.accepted, result.rejected) == (2, 1)
    assert all(p.place and p.place.startswith("/epcisBody/eventList/1") for p in result.errors)
    with engine.connect() as conn:
        assert _count(conn, event) == 2


def test_bad_identifier_is_a_rejected_event(engine: Engine) -> None:
    bad = commission([1])
    bad["epcList"] = ["urn:epc:id:sgtin:6901234.056789"]  # no serial
    result = capture_document(engine, _doc([bad]), behaviour="proceed")
    assert result.rejected == 1 and result.errors


def test_a_container_cannot_hold_itself(engine: Engine) -> None:
    from yaolian.codes.identity import canonical_key

    itself = pack([1])
    digital_link = canonical_key(CASE)  # the case's own code, written another way
    itself["childEPCs"] = [f"{PACK}2", f"https://id.gs1.org/{digital_link}"]
    result = capture_document(engine, _doc([commission([1, 2]), itself]), behaviour="proceed")
    assert (result.accepted, result.rejected) == (1, 1)
    (problem,) = result.errors
    assert problem.place == "/epcisBody/eventList/1/childEPCs/1"
    assert "cannot hold itself" in problem.reason


def test_unknown_behaviour_is_refused(engine: Engine) -> None:
    with pytest.raises(YaolianError, match="rollback or proceed"):
        capture_document(engine, _doc([commission([1])]), behaviour="sometimes")  # type: ignore[arg-type]


def test_record_time_kept_or_filled(engine: Engine) -> None:
    given = {**commission([1]), "recordTime": "2026-03-01T00:00:01Z"}
    capture_document(engine, _doc([given, commission([2])]))
    with engine.connect() as conn:
        times = conn.execute(select(event.c.record_time_us).order_by(event.c.id)).scalars().all()
    assert times[0] == 1772323201000000
    assert times[1] > times[0]


def test_capture_files_json_and_streamed_xml(engine: Engine, tmp_path: Path) -> None:
    json_path = tmp_path / "doc.jsonld"
    json_path.write_bytes(jsonld.write_document(_doc([commission([1, 2])])))
    xml_path = tmp_path / "doc.xml"
    xml_path.write_bytes(xml.write_document(_doc([pack([1, 2]), ship()])))
    stages: list[str] = []
    first = capture_file(
        engine, json_path, progress=lambda stage, done, total: stages.append(stage)
    )
    second = capture_file(engine, xml_path)
    assert (first.accepted, second.accepted) == (1, 2)
    assert "store" in stages
    # the same events as XML are the same events (same hash): duplicates
    again = tmp_path / "again.xml"
    again.write_bytes(xml.write_document(_doc([commission([1, 2])])))
    assert capture_file(engine, again).duplicates == 1


def test_capture_jobs(engine: Engine, parties: dict[str, int]) -> None:
    job = create_job(engine, behaviour="proceed", enterprise_id=parties["holder"])
    running = get_job(engine, job)
    assert running.running and running.success is None
    result = capture_document(
        engine,
        _doc([commission([1]), _invalid()]),
        behaviour="proceed",
        enterprise_id=parties["holder"],
        job_id=job,
    )
    finish_job(engine, job, result)
    done = get_job(engine, job, Viewer(parties["holder"], "enterprise"))
    assert (done.running, done.success, done.accepted, done.rejected) == (False, False, 1, 1)
    assert done.errors and done.to_dict()["captureID"] == str(job)
    with engine.connect() as conn:
        assert conn.execute(select(event.c.capture_id)).scalar() == job
    with pytest.raises(NotFoundError):  # another enterprise's job is invisible
        get_job(engine, job, Viewer(parties["distributor"], "enterprise"))
    assert get_job(engine, job, Viewer(None, "regulator")).id == job
    with pytest.raises(NotFoundError):
        get_job(engine, job + 100)
    failed = create_job(engine)
    finish_job(engine, failed, failure="not valid JSON")
    assert get_job(engine, failed).errors == [{"place": None, "reason": "not valid JSON"}]


class _Recorder:
    """A test projector: remembers what it was given; reset forgets."""

    name = "test-recorder"

    def __init__(self, fail_on: int | None = None) -> None:
        self.seen: list[StoredEvent] = []
        self.resets = 0
        self.fail_on = fail_on

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        for ev in events:
            if self.fail_on is not None and len(ev.epcs) == self.fail_on:
                raise YaolianError("projector refused", place="test")
        self.seen.extend(events)

    def reset(self, conn: Connection) -> None:
        self.seen.clear()
        self.resets += 1


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    with registered(_Recorder()) as rec:
        yield rec


def test_projectors_apply_inside_capture_and_rebuild_replays_in_time_order(
    engine: Engine, recorder: _Recorder
) -> None:
    late = commission([1], time="2026-03-05T08:00:00+08:00")
    early = commission([2], time="2026-03-01T08:00:00+08:00")
    capture_document(engine, _doc([late]))
    capture_document(engine, _doc([early, pack([1, 2])]))
    at_capture = {ev.row_id: ev for ev in recorder.seen}
    assert len(at_capture) == 3
    calls: list[tuple[str, int, int]] = []
    replayed = rebuild(engine, progress=lambda what, done, total: calls.append((what, done, total)))
    assert replayed == 3 and recorder.resets == 1
    # each set-based projector counts in its own unit, then the replay counts events
    last = {what: (done, total) for what, done, total in calls}
    assert last == {
        "trace (codes)": (3, 3),  # the two packs and their case
        "supply_ledger (events)": (3, 3),
        "replay (events)": (3, 3),
    }
    times = [ev.event_time_us for ev in recorder.seen]
    assert times == sorted(times)
    # the replay hands projectors the same facts as capture did
    for ev in recorder.seen:
        first = at_capture[ev.row_id]
        assert (ev.hash, ev.epcs, ev.classes, ev.event) == (
            first.hash,
            first.epcs,
            first.classes,
            first.event,
        )


def test_failing_projector_rolls_the_capture_back(engine: Engine) -> None:
    with registered(_Recorder(fail_on=3)), pytest.raises(YaolianError, match="projector refused"):
        capture_document(engine, _doc([commission([1, 2, 3])]))
    with engine.connect() as conn:
        assert _count(conn, event) == 0


def test_list_jobs_per_viewer(engine: Engine, parties: dict[str, int]) -> None:
    mine = create_job(engine, enterprise_id=parties["holder"])
    theirs = create_job(engine, enterprise_id=parties["distributor"])
    assert [j.id for j in list_jobs(engine, Viewer(parties["holder"], "enterprise"))] == [mine]
    assert [j.id for j in list_jobs(engine, Viewer(None, "regulator"))] == [theirs, mine]
    assert list_jobs(engine, Viewer(None, "public")) == []


def test_concurrent_captures_of_the_same_document_store_it_once(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    events = [commission(range(i * 5, i * 5 + 5)) for i in range(40)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: capture_document(engine, _doc(events)), range(3)))
    assert sorted(r.accepted for r in results) == [0, 0, 40]
    assert sum(r.duplicates for r in results) == 80
    with engine.connect() as conn:
        assert _count(conn, event) == 40
        assert _count(conn, code) == 200


def test_identifiers_longer_than_the_store_indexes_are_refused_alike(engine: Engine) -> None:
    """PostgreSQL cannot index a btree entry over 2,704 bytes: an event with a 9,000-character
    readPoint, party, bizTransaction, eventID or lot failed to store there (an internal error,
    a 500 over HTTP) while SQLite kept it. Validation now names each on both stores; identifiers
    of 500 bytes pass. Chinese characters count 3 bytes each."""
    import secrets

    long = "urn:x:" + secrets.token_hex(4500)  # incompressible: what PostgreSQL refused
    event = {
        **commission([1]),
        "readPoint": {"id": long},
        "bizTransactionList": [{"type": "po", "bizTransaction": long}],
        "sourceList": [{"type": "owning_party", "source": "urn:x:" + "药" * 200}],
        "eventID": long,
        "ilmd": {"cbvmda:lotNumber": "L" * 201},
    }
    result = capture_document(engine, _doc([event]), behaviour="proceed")
    assert result.accepted == 0
    at = "/epcisBody/eventList/0"
    assert {e.place: e.reason for e in result.errors} == {
        f"{at}/readPoint/id": "longer than 500 bytes (UTF-8)",
        f"{at}/eventID": "longer than 500 bytes (UTF-8)",
        f"{at}/bizTransactionList/0/bizTransaction": "longer than 500 bytes (UTF-8)",
        f"{at}/sourceList/0/source": "longer than 500 bytes (UTF-8)",
        f"{at}/ilmd": "lotNumber longer than 200 bytes (UTF-8)",
    }
    fits = {**commission([2]), "readPoint": {"id": "urn:x:" + "a" * 494}}
    assert capture_document(engine, _doc([fits])).accepted == 1


def test_an_extension_event_type_is_refused_with_its_reason(engine: Engine) -> None:
    """Valid EPCIS 2.0 (the schema admits a URI as event type), but not a type the store
    keeps: it broke capture with a KeyError (a 500 over HTTP)."""
    custom = {**commission([1]), "type": "https://ex.cn/voc/RepackEvent"}
    result = capture_document(engine, _doc([custom, commission([2])]), behaviour="proceed")
    assert result.accepted == 1
    (error,) = result.errors
    assert error.place == "/epcisBody/eventList/0/type"
    assert error.reason.startswith("extension event type 'https://ex.cn/voc/RepackEvent'")
