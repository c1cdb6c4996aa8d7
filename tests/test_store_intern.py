"""The code dictionary's bulk get-or-create, and what a capture tells projectors about its codes
(keys and the codes it interned first), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Connection, Engine

from conftest import registered
from yaolian.epcis import jsonld
from yaolian.store.dictionary import intern_codes, lookup_codes
from yaolian.store.engine import writing
from yaolian.store.ingest import capture_document
from yaolian.store.projections import StoredBatch, StoredEvent

PACK = "urn:epc:id:sgtin:6901234.056789."  # + serial
FACTORY = "urn:epc:id:sgln:6901234.00002.0"


def test_intern_reports_the_codes_it_added(engine: Engine) -> None:
    with writing(engine) as conn:
        first = intern_codes(conn, ["01/a", "01/b"])
    assert first.fresh == set(first.ids.values()) and len(first.fresh) == 2
    with writing(engine) as conn:
        second = intern_codes(conn, ["01/b", "01/c", "01/c"])
    assert second.ids["01/b"] == first.ids["01/b"]
    assert second.fresh == {second.ids["01/c"]}
    with engine.connect() as conn:
        assert lookup_codes(conn, ["01/a", "01/b", "01/c"]) == {**first.ids, **second.ids}


def test_intern_escapes_keys_for_copy(engine: Engine) -> None:
    keys = ["u:urn:x:back\\slash", "u:urn:x:tab\tin", "u:urn:x:cr\rin", "u:urn:x:nl\nin"]
    with writing(engine) as conn:
        interned = intern_codes(conn, keys)
    with engine.connect() as conn:
        assert lookup_codes(conn, keys) == interned.ids
    assert sorted(interned.ids) == sorted(keys)


class _Batches:
    """A test projector that keeps every batch it is given."""

    name = "test-batches"

    def __init__(self) -> None:
        self.batches: list[Sequence[StoredEvent]] = []

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        self.batches.append(events)

    def reset(self, conn: Connection) -> None:
        self.batches.clear()


@pytest.fixture
def batches() -> Iterator[_Batches]:
    with registered(_Batches()) as rec:
        yield rec


def _commission(serials: Sequence[int]) -> dict[str, object]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"{PACK}{s}" for s in serials],
        "action": "ADD",
        "bizStep": "commissioning",
        "readPoint": {"id": FACTORY},
    }


def _capture(engine: Engine, serials: Sequence[int]) -> None:
    doc = jsonld.document_from_json(
        {
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-03-01T08:00:00Z",
            "epcisBody": {"eventList": [_commission(serials)]},
        }
    )
    assert capture_document(engine, doc).accepted == 1


def test_capture_tells_projectors_keys_and_fresh_codes(engine: Engine, batches: _Batches) -> None:
    _capture(engine, [1, 2])
    _capture(engine, [2, 3])
    first, second = batches.batches
    assert isinstance(first, StoredBatch) and isinstance(second, StoredBatch)
    assert first.fresh == {cid for cid, _ in first[0].epcs}
    (two, three) = (cid for cid, _ in second[0].epcs)
    assert second.fresh == {three}  # pack 2 was stored by the first capture
    assert {second.keys[two], second.keys[three]} == {
        "01/06901234567892/21/2",
        "01/06901234567892/21/3",
    }
    assert two in first.fresh
