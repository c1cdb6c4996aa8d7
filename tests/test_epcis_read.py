"""EPCIS readers: JSON-LD shapes, XML 2.0, XML 1.2 → 2.0, CBV normalisation, extensions, places,
and bad input that must end in a yaolian ValidationError naming the place."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.epcis import cbv, jsonld, xml
from yaolian.epcis.hash import event_hash
from yaolian.epcis.read import iter_events, read_document
from yaolian.epcis.validate import validate_document
from yaolian.errors import ValidationError, nul_pointer

DATA = Path(__file__).parent / "data" / "epcis"
CTX = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


def _event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "ObjectEvent",
        "eventTime": "2025-01-02T03:04:05.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
        "action": "OBSERVE",
    }
    base.update(fields)
    return base


def test_json_document_places_and_header() -> None:
    doc = read_document((DATA / "all_event_types.jsonld").read_bytes())
    assert [e["type"] for e in doc.events] == [
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "ObjectEvent",
        "TransformationEvent",
        "AssociationEvent",
        "ObjectEvent",
    ]
    assert doc.places[3] == "/epcisBody/eventList/3"
    assert doc.creation_date == "2025-03-01T08:00:00.000+08:00"
    assert doc.namespaces()["yl"] == "https://yaolian.example.org/epcis/"


def test_json_single_event_list_and_query_document() -> None:
    single = read_document(orjson.dumps({"@context": CTX, **_event()}))
    assert single.places == [""] and single.context == [CTX]
    assert "@context" not in single.events[0]
    many = read_document(orjson.dumps([_event(), _event(action="ADD")]))
    assert many.places == ["/0", "/1"] and many.events[1]["action"] == "ADD"
    query = {
        "@context": CTX,
        "type": "EPCISQueryDocument",
        "epcisBody": {"queryResults": {"resultsBody": {"eventList": [_event()]}}},
    }
    doc = read_document(orjson.dumps(query))
    assert doc.places == ["/epcisBody/queryResults/resultsBody/eventList/0"]


def test_cbv_values_become_bare_words_custom_stay_uris() -> None:
    event = _event(
        bizStep="urn:epcglobal:cbv:bizstep:shipping",
        disposition="https://ref.gs1.org/cbv/Disp-in_transit",
        bizTransactionList=[{"type": "urn:epcglobal:cbv:btt:po", "bizTransaction": "urn:x:1"}],
        sourceList=[{"type": "https://ref.gs1.org/cbv/SDT-owning_party", "source": "urn:x:2"}],
        persistentDisposition={"set": ["urn:epcglobal:cbv:disp:completeness_verified"]},
        sensorElementList=[{"sensorReport": [{"type": "gs1:MT-Temperature", "value": 5}]}],
    )
    got = read_document(orjson.dumps(event)).events[0]
    assert got["bizStep"] == "shipping"
    assert got["disposition"] == "in_transit"
    assert got["bizTransactionList"][0]["type"] == "po"
    assert got["sourceList"][0]["type"] == "owning_party"
    assert got["persistentDisposition"]["set"] == ["completeness_verified"]
    assert got["sensorElementList"][0]["sensorReport"][0]["type"] == "Temperature"
    custom = read_document(orjson.dumps(_event(bizStep="https://ex.cn/voc/BizStep-x"))).events[0]
    assert custom["bizStep"] == "https://ex.cn/voc/BizStep-x"


@pytest.mark.parametrize("vocab", [cbv.BIZ_STEP, cbv.DISPOSITION, cbv.BIZ_TRANSACTION_TYPE])
def test_vocabulary_word_uri_round_trip(vocab: cbv.Vocabulary) -> None:
    for word in vocab.words:
        assert vocab.word(vocab.uri(word)) == word
        for prefix in vocab.prefixes:
            assert vocab.word(prefix + word) == word


def test_xml_2_0_reads_like_the_json_ld_twin() -> None:
    from_xml = read_document((DATA / "all_event_types.xml").read_bytes())
    from_json = read_document((DATA / "all_event_types.jsonld").read_bytes())
    assert from_xml.places[0] == "line 9"
    assert len(from_xml.events) == len(from_json.events) == 7
    x, j = from_xml.events[0], from_json.events[0]
    assert x["bizStep"] == j["bizStep"] == "commissioning"
    assert x["ilmd"] == j["ilmd"]
    assert x["yl:line"] == j["yl:line"] == "Line 3"
    sensor = from_xml.events[3]["sensorElementList"][0]
    assert sensor["sensorReport"][1] == {
        "type": "Temperature",
        "exception": "ALARM_CONDITION",
        "time": "2025-03-02T16:10:00.000+08:00",
        "value": 8.4,
        "uom": "CEL",
    }
    assert sensor["sensorReport"][2]["booleanValue"] is False
    assert sensor["yl:logger"] == "cold-chain-7"
    assert from_xml.events[4]["outputQuantityList"][0]["quantity"] == 1000
    assert from_xml.events[6]["errorDeclaration"]["reason"] == "incorrect_data"


def test_xml_1_2_becomes_the_2_0_shape() -> None:
    old = read_document((DATA / "epcis12.xml").read_bytes())
    new = read_document((DATA / "epcis12_as_2.0.jsonld").read_bytes())
    assert old.events == new.events
    assert old.namespaces()["yl"] == "https://yaolian.example.org/epcis/"
    assert old.places == ["line 15", "line 63", "line 80", "line 100"]


def test_xml_extension_keys_keep_their_namespace_even_with_clashing_prefixes() -> None:
    text = b"""<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
      creationDate="2025-01-01T00:00:00Z"><EPCISBody><EventList>
      <ObjectEvent xmlns:a="https://one.example/"><eventTime>2025-01-01T00:00:00Z</eventTime>
        <eventTimeZoneOffset>+00:00</eventTimeZoneOffset><epcList/><action>OBSERVE</action>
        <a:x>1</a:x></ObjectEvent>
      <ObjectEvent xmlns:a="https://two.example/"><eventTime>2025-01-01T00:00:00Z</eventTime>
        <eventTimeZoneOffset>+00:00</eventTimeZoneOffset><epcList/><action>OBSERVE</action>
        <a:x attr="v"><a:y>2</a:y></a:x><q:deep xmlns:q="https://deep.example/">3</q:deep>
      </ObjectEvent>
      </EventList></EPCISBody></epcis:EPCISDocument>"""
    doc = read_document(text)
    ns = doc.namespaces()
    assert doc.events[0]["a:x"] == "1" and ns["a"] == "https://one.example/"
    assert doc.events[1]["a2:x"] == {"@attr": "v", "a2:y": "2"}
    assert ns["a2"] == "https://two.example/"
    assert doc.events[1]["q:deep"] == "3" and ns["q"] == "https://deep.example/"
    assert doc.events[0]["epcList"] == []


def test_iter_events_streams_xml(tmp_path: Path) -> None:
    event = (
        "<ObjectEvent><eventTime>2025-01-01T00:00:00Z</eventTime>"
        "<eventTimeZoneOffset>+00:00</eventTimeZoneOffset><epcList>"
        "<epc>urn:epc:id:sgtin:6901234.067890.{i}</epc></epcList><action>OBSERVE</action>"
        "</ObjectEvent>\n"
    )
    path = tmp_path / "big.xml"
    with path.open("w") as fh:
        fh.write(
            '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
            'creationDate="2025-01-01T00:00:00Z"><EPCISBody><EventList>\n'
        )
        for i in range(5000):
            fh.write(event.format(i=i))
        fh.write("<ObjectEvent><broken></EventList></EPCISBody></epcis:EPCISDocument>")
    stream = iter_events(path)
    place, first = next(stream)  # available before the (broken) end is ever read
    assert place == "line 2" and first["epcList"] == ["urn:epc:id:sgtin:6901234.067890.0"]
    with pytest.raises(ValidationError) as err:
        for _ in stream:
            pass
    assert err.value.place == "line 5002"


def test_content_type_overrides_sniffing() -> None:
    body = orjson.dumps(_event())
    assert read_document(io.BytesIO(body), "application/ld+json").events[0]["action"] == "OBSERVE"
    with pytest.raises(ValidationError) as err:
        read_document(body, "application/xml")
    assert err.value.place == "line 1"


@pytest.mark.parametrize(
    ("data", "place", "needle"),
    [
        (b"", "line 1", "empty"),
        (b"   \n", "line 1", "empty"),
        (b'{"type": "EPCISDocument", "epcisBody": {"eventList": [1', "line 1 column", "JSON"),
        (b'{"type": "EPCISDocument", "epcisBody": {}}', "/epcisBody/eventList", "missing"),
        (
            b'{"type": "EPCISDocument", "epcisBody": {"eventList": [{}, 3]}}',
            "/epcisBody/eventList/1",
            "object",
        ),
        (b'{"type": "Nonsense"}', "/type", "unknown document type"),
        (b"42", "", "expected"),
        (b"<notEpcis/>", "line 1", "root element"),
        (
            b"<epcis:EPCISDocument xmlns:epcis='urn:epcglobal:epcis:xsd:2'>\n<EPCISBody>",
            "line 2",
            "well-formed",
        ),
    ],
)
def test_bad_input_names_the_place(data: bytes, place: str, needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        read_document(data)
    assert (err.value.place or "").startswith(place)
    assert needle in str(err.value)


def test_xml_entities_are_not_expanded() -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">
    <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
    <epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2"><EPCISBody><EventList>
    <ObjectEvent><eventTime>&b;</eventTime></ObjectEvent></EventList></EPCISBody>
    </epcis:EPCISDocument>"""
    doc = read_document(bomb)
    assert "aaaaaaaaaa" not in str(doc.events[0].get("eventTime", ""))


def test_readers_and_modules_agree() -> None:
    raw = (DATA / "epcis12.xml").read_bytes()
    assert xml.read_document(raw).events == read_document(raw).events
    raw_json = (DATA / "epcis12_as_2.0.jsonld").read_bytes()
    assert jsonld.read_document(raw_json).events == read_document(raw_json).events


def test_reading_pauses_and_restores_the_garbage_collector() -> None:
    import gc

    raw = (DATA / "epcis12.xml").read_bytes()
    assert gc.isenabled()
    read_document(raw)
    assert gc.isenabled()
    gc.disable()
    try:
        read_document((DATA / "epcis12_as_2.0.jsonld").read_bytes())
        assert not gc.isenabled()
    finally:
        gc.enable()


_SAMPLES = [
    (DATA / name).read_bytes()
    for name in ("all_event_types.xml", "epcis12.xml", "all_event_types.jsonld")
]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(range(len(_SAMPLES))),
    st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=3)), min_size=1, max_size=4),
    st.floats(0.05, 1),
)
def test_damaged_documents_fail_cleanly(
    which: int, edits: list[tuple[float, bytes]], keep: float
) -> None:
    """Cut and splice a conformance document: it reads, or fails with a ValidationError that
    names a place; whatever reads can be validated and hashed without an exception."""
    data = bytearray(_SAMPLES[which][: max(1, int(len(_SAMPLES[which]) * keep))])
    for where, junk in edits:
        at = int(where * (len(data) - 1))
        data[at : at + len(junk)] = junk
    try:
        doc = read_document(bytes(data))
    except ValidationError as exc:
        assert exc.place is not None
        return
    problems = validate_document(doc)
    assert all(p.place is not None for p in problems)
    if not problems:
        for event in doc.events:
            assert event_hash(event, doc.namespaces()).startswith("ni:///sha-256;")


def test_a_nul_character_is_refused_with_its_pointer() -> None:
    """JSON can carry U+0000 (as an escape); XML cannot, nor PostgreSQL text: the reader names
    the field instead of letting the store fail."""
    doc = {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-01-02T03:04:05Z",
        "epcisBody": {"eventList": [_event(), _event(bizLocation={"id": "urn:x:\x00"})]},
    }
    with pytest.raises(ValidationError) as exc:
        jsonld.read_document(orjson.dumps(doc))
    assert exc.value.place == "/epcisBody/eventList/1/bizLocation/id"
    assert "NUL" in exc.value.reason
    with pytest.raises(ValidationError) as key:
        jsonld.read_document(orjson.dumps(_event(**{"a/b\x00": 1})).decode())
    assert key.value.place == "/a~1b\x00"
    with pytest.raises(ValidationError) as root:  # the document itself, and a key ""
        jsonld.read_document(orjson.dumps("\x00"))
    assert root.value.place == "the document"
    assert nul_pointer({"": "\x00"}) == "/" and nul_pointer("\x00") == ""
    # an escaped backslash followed by "u0000" is text, not a NUL
    assert jsonld.read_document(orjson.dumps(_event(bizStep="urn:x:\\u0000"))).events


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSON)
def test_nul_pointer_points_at_a_nul(value: object) -> None:
    """The pointer resolves to a key or string holding U+0000, and is None only when none does."""
    found = nul_pointer(value)
    text = orjson.dumps(value).decode()
    assert (found is None) == ("\\u0000" not in text)
    if found is None:
        return
    node: object = value
    for part in found.split("/")[1:]:
        step = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(step)]
        else:
            assert isinstance(node, dict)
            if "\x00" in step:
                assert step in node
                return
            node = node[step]
    assert isinstance(node, str) and "\x00" in node
