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
from yaolian.epcis.context import with_namespaces
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
    # read back, each event declares the prefixes it uses (an event-level @context)
    expected = [with_namespaces(e, doc.namespaces()) for e in events]
    assert via_json.events == expected
    assert via_xml.events == expected
    assert _hashes(via_xml) == _hashes(via_json) == _hashes(doc)
    # an event on its own (as the store keeps it) still knows its namespaces
    alone = [Document(events=[e]) for e in via_json.events]
    assert [_hashes(d)[0] for d in alone] == _hashes(doc)
    assert read_document(xml.write_document(Document(events=via_xml.events))).events == expected


def test_event_level_contexts_survive_storage_and_conflicting_prefixes() -> None:
    """Two events meaning different namespaces by one prefix keep their meanings through
    both writers, even written without the document they came from."""
    text = orjson.dumps(
        {
            "@context": [jsonld.EPCIS_CONTEXT, {"ex": "https://a.example/ns/"}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2025-01-01T00:00:00Z",
            "epcisBody": {
                "eventList": [
                    {
                        "type": "ObjectEvent",
                        "eventTime": "2025-01-01T00:00:00Z",
                        "eventTimeZoneOffset": "+00:00",
                        "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
                        "action": "OBSERVE",
                        "ex:lane": "3",
                    },
                    {
                        "@context": {"ex": "https://b.example/ns/", "unused": "urn:x:"},
                        "type": "ObjectEvent",
                        "eventTime": "2025-01-01T00:00:00Z",
                        "eventTimeZoneOffset": "+00:00",
                        "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
                        "action": "OBSERVE",
                        "ex:lane": "3",
                    },
                    {
                        "type": "ObjectEvent",
                        "eventTime": "2025-01-01T00:00:00Z",
                        "eventTimeZoneOffset": "+00:00",
                        "epcList": ["urn:epc:id:sgtin:6901234.067890.2"],
                        "action": "OBSERVE",
                    },
                ]
            },
        }
    )
    doc = read_document(text)
    assert [e.get("@context") for e in doc.events] == [
        {"ex": "https://a.example/ns/"},
        {"ex": "https://b.example/ns/"},
        None,
    ]
    first, second = (event_hash(e) for e in doc.events[:2])
    assert first != second  # same key, different namespaces
    assert [event_hash(e, doc.namespaces()) for e in doc.events[:2]] == [first, second]
    stored = Document(events=[orjson.loads(orjson.dumps(e)) for e in doc.events])  # no header
    written = orjson.loads(jsonld.write_document(stored))
    assert {"ex": "https://a.example/ns/"} in written["@context"]
    events = written["epcisBody"]["eventList"]
    assert "@context" not in events[0]  # lifted into the header
    assert events[1]["@context"] == {"ex": "https://b.example/ns/"}  # differs: kept
    assert read_document(jsonld.write_document(stored)).events == doc.events
    via_xml = read_document(xml.write_document(stored)).events
    assert [event_hash(e) for e in via_xml[:2]] == [first, second]
    # XML readers give each namespace its own prefix within a document
    assert via_xml[1]["@context"] == {"ex2": "https://b.example/ns/"}
    assert via_xml[1]["ex2:lane"] == "3"
    tree = etree.fromstring(xml.write_document(stored))
    assert tree.nsmap["ex"] == "https://a.example/ns/"
