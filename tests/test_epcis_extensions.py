"""ILMD batch facts and the NHSA sale line, read alike from JSON and XML (epcis.extensions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from yaolian.epcis import xml
from yaolian.epcis.extensions import SALE_LINE_KEY, Ilmd, ilmd_facts, sale_line
from yaolian.epcis.validate import validate_event
from yaolian.store.ingest import capture_file
from yaolian.store.schema import dispense, event_ilmd, supply_movement
from yaolian.trace.builders import document
from yaolian.verify.dispense import SaleLine
from yaolian.verify.status import verify

FACTS = {"lotNumber": "L7", "itemExpirationDate": "2027-06-30", "productionDate": "2025-07-01"}


@pytest.mark.parametrize(
    ("ilmd", "context"),
    [
        ({f"cbvmda:{k}": v for k, v in FACTS.items()}, None),
        ({f"cbvmda2:{k}": v for k, v in FACTS.items()}, {"cbvmda2": "urn:epcglobal:cbv:mda:"}),
        ({f"mda:{k}": v for k, v in FACTS.items()}, {"mda": "urn:epcglobal:cbv:mda#"}),
        ({f"urn:epcglobal:cbv:mda#{k}": v for k, v in FACTS.items()}, None),
        (dict(FACTS), None),
    ],
)
def test_batch_facts_under_every_spelling_of_the_cbv_namespace(
    ilmd: dict[str, str], context: dict[str, str] | None
) -> None:
    event: dict[str, Any] = {"ilmd": ilmd, **({"@context": context} if context else {})}
    assert ilmd_facts(event) == Ilmd("L7", "2027-06-30", "2025-07-01")


def test_batch_facts_of_other_namespaces_and_odd_values() -> None:
    other = {"ex:lotNumber": "X"}
    assert not ilmd_facts({"ilmd": other, "@context": {"ex": "https://example.com/"}})
    assert ilmd_facts({"ilmd": {"cbvmda:lotNumber": 24042501}}).lot == "24042501"
    assert not ilmd_facts({"ilmd": {"cbvmda:lotNumber": "", "cbvmda:productionDate": {}}})
    assert not ilmd_facts({"ilmd": "not an object"})


@pytest.mark.parametrize(
    ("line", "codes", "expected"),
    [
        ({"splitSale": False, "quantity": 1}, 1, (False, None)),
        ({"splitSale": "false", "quantity": "1"}, 1, (False, None)),  # as XML reads it
        ({"splitSale": "0"}, 1, (False, None)),
        ({"splitSale": True, "quantity": 6, "units": 6}, 1, (True, 6.0)),
        ({"splitSale": "true", "quantity": "6", "units": "2.5"}, 1, (True, 2.5)),
        ({"splitSale": " TRUE ", "quantity": "6"}, 2, (True, 3.0)),  # shared by the codes
        ({"splitSale": 1, "units": "x"}, 1, (True, 1.0)),  # no usable count: one unit
        ({"splitSale": "yes"}, 1, (False, None)),  # not XML Schema boolean text
    ],
)
def test_sale_line_from_typed_and_text_values(
    line: dict[str, Any], codes: int, expected: tuple[bool, float | None]
) -> None:
    event = {"epcList": [f"urn:x:{i}" for i in range(codes)], SALE_LINE_KEY: line}
    found = sale_line(event)
    assert found is not None and (found.split, found.units) == expected
    assert sale_line({"epcList": ["urn:x:1"]}) is None


def test_an_xml_chain_in_gs1_spelling_keeps_its_batch_and_split_sales(
    trace_world: Any, tmp_path: Path
) -> None:
    """A chain sent as EPCIS XML whose CBV master-data namespace ends in ``:`` (as GS1's hash
    examples write it) and whose sale lines are XML text: the batch facts reach the consumer
    page and the batch index, the split sale counts its units in the trace and the stock."""
    w = trace_world
    packs = [w.pack(i) for i in range(2)]
    sold = SaleLine(
        codes=(packs[0],),
        split=True,
        quantity=10,
        site=w.sites["PHA"],
        time=w.at(50),
        settlement="S1",
    )
    events = [
        w.commission(packs, 0, lot="L001", expiry="2026-01-31", produced="2025-02-01"),
        w.ship(packs, 3, "MFR", "PHA"),
        w.receive(packs, 20, "PHA"),
        sold.event(),
    ]
    text = xml.write_document(document(events)).decode()
    assert 'xmlns:cbvmda="urn:epcglobal:cbv:mda"' in text and "<splitSale>true<" in text
    path = tmp_path / "chain.xml"
    path.write_text(text.replace('"urn:epcglobal:cbv:mda"', '"urn:epcglobal:cbv:mda:"'))
    result = capture_file(w.engine, path)
    assert result.accepted == 4, result.errors

    with w.engine.connect() as conn:
        fresh = verify(conn, packs[1], now_us=int(w.at(60).timestamp() * 1e6))
        expired = verify(conn, packs[1], now_us=int(w.at(24 * 40).timestamp() * 1e6))
        lots = conn.execute(select(event_ilmd.c.lot, event_ilmd.c.expiry)).all()
        units = conn.execute(select(dispense.c.units)).scalars().all()
        out = conn.execute(
            select(supply_movement.c.packs, supply_movement.c.units).where(
                supply_movement.c.units != 0
            )
        ).all()
    assert fresh.batch == {"lot": "L001", "production_date": "2025-02-01", "expiry": "2026-01-31"}
    assert (fresh.status, expired.status) == ("genuine", "expired")
    assert lots == [("L001", "2026-01-31")]
    assert units == [10.0]
    assert out == [(0.0, -10.0)]  # ten capsules out of an opened pack; the pack stays


def test_a_lot_number_written_as_a_json_number_is_stored_as_its_text(trace_world: Any) -> None:
    """Before, the number went to a text column as it was: PostgreSQL capture failed with a
    TypeError (a 500 over HTTP)."""
    w = trace_world
    event = w.commission([w.pack(1)], 0)
    event["ilmd"] = {"cbvmda:lotNumber": 24042501, "cbvmda:itemExpirationDate": "2027-01-31"}
    w.capture(event)
    with w.engine.connect() as conn:
        assert conn.execute(select(event_ilmd.c.lot)).scalar_one() == "24042501"
    assert w.state(w.pack(1)).lot == "24042501"


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("2027-06-30", "2027-06-30"),
        ("2027-06-30+08:00", "2027-06-30"),  # xsd:date may carry a time zone
        ("2027-06-30Z", "2027-06-30"),
        ("2027-06-30T00:00:00+08:00", None),  # a dateTime, not a date
        ("30/06/2027", None),
        ("2027-02-30", None),
        ("2027-W26-3", None),  # an ISO week date, which date.fromisoformat would take
        ("20270630", None),
    ],
)
def test_expiry_and_production_dates_are_xsd_dates(written: str, kept: str | None) -> None:
    """A dateTime or a local spelling of the date went as written into a 10-character column:
    PostgreSQL refused it (an internal error), SQLite kept it and the expiry rule compared
    text. Validation now names it; the facts hold the date only."""
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
        "action": "ADD",
        "bizStep": "commissioning",
        "ilmd": {"cbvmda:itemExpirationDate": written, "cbvmda:productionDate": written},
    }
    assert ilmd_facts(event) == Ilmd(None, kept, kept)
    problems = validate_event(event)
    if kept:
        assert problems == []
    else:
        assert [(p.place, p.reason) for p in problems] == [
            ("/ilmd", f"itemExpirationDate {written!r} is not a date (YYYY-MM-DD)"),
            ("/ilmd", f"productionDate {written!r} is not a date (YYYY-MM-DD)"),
        ]


def test_an_expiry_with_a_time_zone_is_stored_as_its_date(trace_world: Any) -> None:
    w = trace_world
    event = w.commission([w.pack(1)], 0)
    event["ilmd"] = {"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": "2027-01-31+08:00"}
    w.capture(event)
    assert w.state(w.pack(1)).expiry == "2027-01-31"
