"""EPCIS writers: XML 2.0 and JSON-LD keep the meaning through every round trip
(conformance documents plus hypothesis-generated events)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from yaolian.epcis import cbv, jsonld, xml
from yaolian.epcis.hash import event_hash
from yaolian.epcis.model import Document
from yaolian.epcis.read import read_document
from yaolian.epcis.validate import validate_document
from yaolian.errors import ValidationError

DATA = Path(__file__).parent / "data" / "epcis"
NS = {"yl": "https://yaolian.example.org/epcis/"}


def _hashes(doc: Document) -> list[str]:
    return [event_hash(e, doc.namespaces()) for e in doc.events]


def test_xml_to_json_ld_to_xml_keeps_events_and_hashes() -> None:
    for name in ("all_event_types.xml", "epcis12.xml"):
        original = read_document((DATA / name).read_bytes())
        as_json = read_document(jsonld.write_document(original))
        back = read_document(xml.write_document(as_json))
        assert as_json.events == original.events == back.events
        assert _hashes(original) == _hashes(as_json) == _hashes(back)
        assert validate_document(back) == []


def test_json_ld_to_xml_to_json_ld_keeps_events() -> None:
    original = read_document((DATA / "all_event_types.jsonld").read_bytes())
    back = read_document(jsonld.write_document(read_document(xml.write_document(original))))
    assert back.events == original.events
    assert _hashes(back) == _hashes(original)


def test_written_json_is_an_epcis_document_with_context() -> None:
    doc = read_document((DATA / "epcis12.xml").read_bytes())
    out = orjson.loads(jsonld.write_document(doc))
    assert out["type"] == "EPCISDocument" and out["schemaVersion"] == "2.0"
    assert out["@context"][0] == jsonld.EPCIS_CONTEXT
    assert out["@context"][1]["yl"] == NS["yl"]
    assert out["epcisBody"]["eventList"][0]["yl:carrier"] == "顺丰医药"


def test_xml_writer_refuses_names_xml_cannot_hold() -> None:
    doc = read_document((DATA / "epcis12_as_2.0.jsonld").read_bytes())
    doc.events[1]["yl:0bad"] = "x"
    try:
        xml.write_document(doc)
    except ValidationError as exc:
        assert exc.place == "/epcisBody/eventList/1/yl:0bad" and "XML element" in exc.reason
    else:
        raise AssertionError("no ValidationError")


def test_xml_writer_reports_text_xml_cannot_hold() -> None:
    doc = read_document((DATA / "epcis12_as_2.0.jsonld").read_bytes())
    doc.events[2]["yl:note"] = "bell \u0007"
    try:
        xml.write_document(doc)
    except ValidationError as exc:
        assert exc.place == "/epcisBody/eventList/2" and "XML" in exc.reason
    else:
        raise AssertionError("no ValidationError")


def test_undeclared_prefixes_and_full_iris_round_trip_as_json_ld_reads_them() -> None:
    """``zz:thing`` with no ``zz`` in @context is, for JSON-LD, the IRI ``zz:thing``; a full
    IRI key is split after its last ``/``. Both survive XML and keep their hash."""
    event = read_document((DATA / "epcis12_as_2.0.jsonld").read_bytes()).events[1]
    event["zz:thing"] = "1"
    event["https://ext.example/ns/field"] = {"zz:inner": "2"}
    doc = Document(events=[event], context=[jsonld.EPCIS_CONTEXT, NS])
    back = read_document(xml.write_document(doc))
    assert back.namespaces()["zz"] == "zz:"
    assert back.events[0]["zz:thing"] == "1"
    iri_key = next(k for k in back.events[0] if k.endswith(":field"))
    assert back.namespaces()[iri_key.split(":")[0]] == "https://ext.example/ns/"
    assert _hashes(back) == _hashes(doc)


def test_written_xml_is_epcis_2_0_with_cbv_uris() -> None:
    doc = read_document((DATA / "all_event_types.jsonld").read_bytes())
    root = etree.fromstring(xml.write_document(doc))
    assert root.tag == f"{{{xml.EPCIS2_NS}}}EPCISDocument"
    assert root.get("schemaVersion") == "2.0"
    steps = root.findall(".//bizStep")
    assert steps[0].text == "https://ref.gs1.org/cbv/BizStep-commissioning"
    report = root.find(".//sensorReport")
    assert report is not None and report.get("type") == "https://gs1.org/voc/Temperature"
    assert root.find(".//{https://yaolian.example.org/epcis/}line") is not None


# ----------------------------------------------------------------------- property tests

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_name = st.builds(lambda a, b: a + b, st.sampled_from("abcxyz药"), _word)
_serial = st.text(alphabet="0123456789ABCDEFabcdef", min_size=1, max_size=12)
_epc = st.builds(lambda s: f"urn:epc:id:sgtin:6901234.067890.{s}", _serial)
_nmpa = st.builds(
    lambda s: f"urn:nmpa:code:8385793{s.zfill(13)[-13:]}", st.integers(0, 10**12).map(str)
)
_time = st.datetimes(
    min_value=__import__("datetime").datetime(2000, 1, 1),
    max_value=__import__("datetime").datetime(2099, 1, 1),
).map(lambda d: d.isoformat(timespec="milliseconds") + "+08:00")
_quantity = st.fixed_dictionaries(
    {
        "epcClass": st.sampled_from(
            ["urn:epc:class:lgtin:6901234.067890.B1", "urn:nmpa:product:8385793:lot:L%2F1"]
        ),
        "quantity": st.one_of(
            st.integers(1, 10**6), st.floats(0.001, 1e6).map(lambda f: round(f, 3))
        ),
    },
    optional={"uom": st.sampled_from(["KGM", "EA", "LTR"])},
)
_extension: st.SearchStrategy[Any] = st.recursive(
    _word,
    lambda inner: st.dictionaries(_name.map(lambda w: f"yl:{w}"), inner, min_size=1, max_size=3),
    max_leaves=6,
)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ObjectEvent", "AggregationEvent", "TransformationEvent"]))
    event: dict[str, Any] = {
        "type": kind,
        "eventTime": draw(_time),
        "eventTimeZoneOffset": "+08:00",
    }
    ids = st.lists(st.one_of(_epc, _nmpa), min_size=1, max_size=5, unique=True)
    if kind == "ObjectEvent":
        event["epcList"] = draw(ids)
        event["action"] = draw(st.sampled_from(["OBSERVE", "ADD", "DELETE"]))
        if draw(st.booleans()):
            event["quantityList"] = draw(st.lists(_quantity, min_size=1, max_size=2))
    elif kind == "AggregationEvent":
        event["parentID"] = "urn:epc:id:sscc:6901234.0000000017"
        event["childEPCs"] = draw(ids)
        event["action"] = "ADD"
    else:
        event["inputEPCList"] = draw(ids)
        event["outputQuantityList"] = draw(st.lists(_quantity, min_size=1, max_size=2))
    if draw(st.booleans()):
        event["bizStep"] = draw(st.sampled_from(sorted(cbv.BIZ_STEPS)))
    if draw(st.booleans()):
        event["disposition"] = draw(st.sampled_from(sorted(cbv.DISPOSITIONS)))
    if draw(st.booleans()):
        event["readPoint"] = {"id": "urn:epc:id:sgln:6901234.00001.0"}
    if draw(st.booleans()):
        event["bizTransactionList"] = [
            {
                "type": draw(st.sampled_from(sorted(cbv.BIZ_TRANSACTION_TYPES))),
                "bizTransaction": f"urn:epcglobal:cbv:bt:6901234000019:{draw(_word)}",
            }
        ]
    if draw(st.booleans()):
        event["sensorElementList"] = [
            {
                "sensorReport": [
                    {"type": "Temperature", "value": draw(st.integers(-30, 40)), "uom": "CEL"}
                ]
            }
        ]
    for key, value in draw(
        st.dictionaries(_name.map(lambda w: f"yl:{w}"), _extension, max_size=2)
    ).items():
        event[key] = value
    return event


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events(), min_size=1, max_size=4))
def test_round_trips_keep_events_and_hashes(events: list[dict[str, Any]]) -> None:
    doc = Document(events=events, context=[jsonld.EPCIS_CONTEXT, NS])
    assert validate_document(doc) == []
    via_json = read_document(jsonld.write_document(doc))
    via_xml = read_document(xml.write_document(doc))
    assert via_json.events == events
    assert via_xml.events == events
    assert _hashes(via_xml) == _hashes(via_json) == _hashes(doc)
