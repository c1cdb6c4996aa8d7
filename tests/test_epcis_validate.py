"""EPCIS validation: the official JSON schema (and its fast path), CBV vocabularies and the
semantic rules — each problem with its place (JSON pointer / XML line) and reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yaolian.epcis.model import EVENT_TYPES, Document
from yaolian.epcis.read import read_document
from yaolian.epcis.validate import (
    _compiled,
    _fast_schema_ok,
    ensure_valid,
    official_schema,
    validate_document,
    validate_event,
)
from yaolian.errors import Problem, ValidationError

DATA = Path(__file__).parent / "data" / "epcis"
HASH_DATA = Path(__file__).parent / "data" / "hash_examples"


def _problems(name: str) -> dict[str, list[str]]:
    doc = read_document((DATA / name).read_bytes())
    out: dict[str, list[str]] = {}
    for p in validate_document(doc):
        out.setdefault(p.place or "", []).append(p.reason)
    return out


@pytest.mark.parametrize(
    "path",
    [
        DATA / "all_event_types.xml",
        DATA / "all_event_types.jsonld",
        DATA / "epcis12.xml",
        DATA / "epcis12_as_2.0.jsonld",
        *sorted(HASH_DATA.glob("*.json*")),
        *sorted(HASH_DATA.glob("*.xml")),
    ],
    ids=lambda p: p.name,
)
def test_conformance_documents_are_valid(path: Path) -> None:
    doc = read_document(path.read_bytes())
    assert validate_document(doc) == []
    ensure_valid(doc)


def test_bad_documents_give_each_problem_with_place_and_reason() -> None:
    got = _problems("bad_events.jsonld")
    e = "/epcisBody/eventList/"

    def has(place: str, *needles: str) -> None:
        reasons = " | ".join(got.get(place, []))
        for needle in needles:
            assert needle in reasons, f"{place}: {needle!r} not in {reasons!r}"

    has(e + "0/parentID", "requires parentID")
    has(e + "1/eventTime", "time-zone offset")
    has(e + "1/eventTimeZoneOffset", "±HH:MM")
    has(e + "2/eventTimeZoneOffset", "required")
    has(e + "2/action", "requires action")
    has(e + "2/epcList/0", "13 digits")
    has(e + "2/epcList/1", "check digit")
    has(e + "2/epcList/2", "NMPA")
    has(e + "2/epcList/3", "not a URI")
    has(e + "2/bizStep", "'shippin' is not a CBV 2.0 bizStep")
    has(e + "3/quantityList/0/quantity", "positive")
    has(e + "3/quantityList/1/quantity", "positive")
    has(e + "3/quantityList/1/uom", "Rec 20")
    has(e + "3/quantityList/2/quantity", "not a number")
    has(e + "4", "inputs or outputs")
    has(e + "5", "transformationID")
    has(e + "6/parentID", "AssociationEvent requires parentID")
    has(e + "7/action", "'SELL'")
    has(e + "7/bizTransactionList", "at least one bizTransaction")
    has(e + "8/ilmd", "only allowed")
    has(e + "8/sourceList/0/type", "'owner'")
    has(e + "8/errorDeclaration/declarationTime", "requires declarationTime")
    has(e + "8/errorDeclaration/reason", "'oops'")
    has(e + "8/sensorElementList/0/sensorReport/0/type", "'Hotness'")
    has(e + "8/sensorElementList/0/sensorReport/0/time", "'yesterday'")
    has(e + "9/type", "unknown event type 'ParcelEvent'")
    has(e + "10/readPoint", "EPCIS JSON schema", "must be object")
    assert all(place.startswith(e) for place in got)


def test_xml_problems_name_the_line() -> None:
    text = b"""<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
        creationDate="2025-01-01T00:00:00Z"><EPCISBody><EventList>
      <AggregationEvent><eventTime>2025-01-01T00:00:00Z</eventTime>
        <eventTimeZoneOffset>+00:00</eventTimeZoneOffset>
        <childEPCs><epc>urn:epc:id:sgtin:6901234.067890.1</epc></childEPCs>
        <action>DELETE</action><bizStep>urn:epcglobal:cbv:bizstep:unpackin</bizStep>
      </AggregationEvent></EventList></EPCISBody></epcis:EPCISDocument>"""
    problems = validate_document(read_document(text))
    assert (
        Problem("an AggregationEvent with action DELETE requires parentID", "line 3 /parentID")
        in problems
    )
    assert any(p.place == "line 3 /bizStep" and "unpackin" in p.reason for p in problems)


def test_ensure_valid_raises_with_every_problem() -> None:
    doc = read_document((DATA / "bad_events.jsonld").read_bytes())
    with pytest.raises(ValidationError) as err:
        ensure_valid(doc)
    assert err.value.place == "/epcisBody/eventList/0/parentID"
    assert len(err.value.problems) >= 25
    body = err.value.to_problem()
    assert body["type"] == "epcisException:ValidationException"
    assert body["errors"][0]["place"] == "/epcisBody/eventList/0/parentID"


def test_schema_is_vendored_compiled_once_and_knows_certification_info() -> None:
    assert official_schema() is official_schema()
    assert _compiled("EPCIS-Document-Event") is _compiled("EPCIS-Document-Event")
    common = official_schema()["definitions"]["common-event-properties"]["anyOf"][0]["enum"]
    assert "certificationInfo" in common


# ------------------------------------------------------------- fast path == schema (property)

_BASE: dict[str, Any] = {
    "type": "ObjectEvent",
    "eventTime": "2025-01-02T03:04:05.000+08:00",
    "eventTimeZoneOffset": "+08:00",
    "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
    "action": "OBSERVE",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:1"}],
    "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:6901234.00000"}],
}
_KEYS = sorted(
    {
        *_BASE,
        "parentID",
        "childEPCs",
        "childQuantityList",
        "quantityList",
        "inputEPCList",
        "outputEPCList",
        "inputQuantityList",
        "outputQuantityList",
        "transformationID",
        "recordTime",
        "eventID",
        "bizLocation",
        "destinationList",
        "ilmd",
        "yl:x",
        "https://ex.cn/voc/ext",
        "not a uri",
        "sensorElementList",
        "errorDeclaration",
        "certificationInfo",
        "persistentDisposition",
        "@context",
    }
)
_T = "2025-01-02T03:04:05Z"
_REPORT = {"type": "Temperature", "value": 4.5, "uom": "CEL", "time": _T}
# Shapes (valid and subtly invalid) of the nested standard fields, for the property test.
_SHAPES = [
    [{"sensorReport": [_REPORT]}],
    [{"sensorMetadata": {"time": _T, "deviceID": "urn:x:d"}, "sensorReport": [_REPORT]}],
    [{"sensorMetadata": None, "sensorReport": [_REPORT]}],
    [{"sensorMetadata": {"time": "2025-01-02"}, "sensorReport": [_REPORT]}],
    [{"sensorReport": [{"value": 1}]}],
    [{"sensorReport": [{**_REPORT, "value": True}]}],
    [{"sensorReport": [{**_REPORT, "booleanValue": 1}]}],
    [{"sensorReport": [{**_REPORT, "hexBinaryValue": "0aFF"}]}],
    [{"sensorReport": [{**_REPORT, "hexBinaryValue": "0x1"}]}],
    [{"sensorReport": [{**_REPORT, "type": "Hotness", "ex:probe": {"a": 1}}]}],
    [{"sensorReport": [{**_REPORT, "exception": "ALARM_CONDITION", "component": "x"}]}],
    [{"sensorReport": [{**_REPORT, "deviceID": "no uri"}]}],
    [{"sensorReport": []}],
    [{}],
    {"declarationTime": _T, "reason": "incorrect_data", "correctiveEventIDs": ["urn:x:e"]},
    {"declarationTime": _T, "reason": "oops", "ex:note": "x"},
    {"declarationTime": "yesterday"},
    {"reason": "did_not_occur"},
    {"declarationTime": _T, "correctiveEventIDs": ["a b"]},
    {"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": "2027-01-01"},
    {"lotNumber": "L1"},
    {"set": ["recalled"], "unset": ["active"]},
    {"set": ["recaled"]},
    {"set": "recalled"},
    {"yl": "https://yaolian.org/ns/epcis/"},
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    ["urn:x:1", {"yl": "urn:x:2"}],
    ["urn:x:1", "urn:x:1"],
    [{"a": 1}, {"a": 1.0}],
    {"yl:line": {"yl:units": 2, "@yl:unit": "box"}},
    [1, "x"],
]
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "x y",
            "urn:x:1",
            "shipping",
            "OBSERVE",
            "DELETE",
            "ADD",
            "po",
            "owning_party",
            "+08:00",
            "8:00",
            "2025-01-02T03:04:05Z",
            "2025-01-02",
            "ObjectEvent",
            "AggregationEvent",
            "TransactionEvent",
            "TransformationEvent",
            "AssociationEvent",
            "KGM",
            "kg",
            "https://ex.cn/voc/x",
        ]
    ),
    st.lists(st.sampled_from(["urn:x:1", "a b", 3]), max_size=2),
    st.just([{"epcClass": "urn:x:c", "quantity": 2}]),
    st.just([{"epcClass": "urn:x:c", "quantity": True}]),
    st.just([{"type": "po", "bizTransaction": "urn:x:1", "extra": 1}]),
    st.just([{"type": "owning_party", "source": "urn:x:1", "extra": 1}]),
    st.just({"id": "urn:x:1"}),
    st.just({"id": "x y"}),
    st.just({}),
    st.sampled_from(_SHAPES),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_KEYS), _values, max_size=6), st.sets(st.sampled_from(_KEYS))
)
def test_fast_path_never_accepts_what_the_schema_rejects(
    changes: dict[str, Any], drop: set[str]
) -> None:
    event = copy.deepcopy(_BASE)
    for key in drop:
        event.pop(key, None)
    event.update({k: v for k, v in changes.items() if v is not None})
    schema_ok = True
    try:
        _compiled("EPCIS-Document-Event")(copy.deepcopy(event))
    except fastjsonschema.JsonSchemaValueException:
        schema_ok = False
    if _fast_schema_ok(event):
        assert schema_ok
    problems = validate_event(event, "/e")
    assert all(isinstance(p, Problem) and p.place and p.place.startswith("/e") for p in problems)
    if not schema_ok:
        assert problems, "the schema rejects it, so validation must report something"


_CHAIN = DATA / "fast_path_chain.jsonld"


def test_fast_path_covers_the_common_shapes() -> None:
    assert _fast_schema_ok(copy.deepcopy(_BASE))
    # every event type with ilmd, parties, sensors, persistentDisposition, errorDeclaration,
    # certificationInfo, user extensions and an event-level @context
    doc = read_document(_CHAIN.read_bytes())
    assert {e["type"] for e in doc.events} == set(EVENT_TYPES)
    schema = _compiled("EPCIS-Document-Event")
    for event in doc.events:
        schema(copy.deepcopy(event))
        assert _fast_schema_ok(event), event
    assert validate_document(doc) == []
    aggregation = {
        "type": "AggregationEvent",
        "eventTime": "2025-01-02T03:04:05Z",
        "eventTimeZoneOffset": "+00:00",
        "parentID": "urn:epc:id:sscc:6901234.0000000017",
        "childEPCs": ["urn:epc:id:sgtin:6901234.067890.1"],
        "action": "ADD",
        "bizStep": "packing",
    }
    assert _fast_schema_ok(aggregation)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                *_KEYS,
                "type",
                "sensorElementList",
                "errorDeclaration",
                "persistentDisposition",
                "certificationInfo",
            ]
        ),
        _json,
    )
)
def test_any_json_gives_problems_never_an_exception(event: dict[str, Any]) -> None:
    problems = validate_event(event, "line 7")
    assert all(isinstance(p, Problem) and (p.place or "").startswith("line 7") for p in problems)


def test_any_json_document_reads_or_fails_cleanly() -> None:
    for raw in (b"[]", b"{}", b'{"type": "EPCISDocument", "epcisBody": {"eventList": []}}'):
        try:
            doc = read_document(raw)
        except ValidationError as exc:
            assert exc.place is not None
        else:
            assert validate_document(doc) == []
    doc = Document(events=[orjson.loads(b'{"type": 5}')])
    assert validate_document(doc)[0].place == "/epcisBody/eventList/0/type"


@pytest.mark.parametrize(
    ("pointer", "time"),
    [
        ("/eventTime", "0001-01-01T00:00:00+14:00"),
        ("/eventTime", "9999-12-31T23:30:00-05:00"),
        ("/errorDeclaration/declarationTime", "0001-01-01T07:59:59+08:00"),
    ],
)
def test_a_time_without_a_utc_year_is_named(pointer: str, time: str) -> None:
    """The hash and the store keep UTC: such a time broke capture with an OverflowError on
    both stores (a 500 over HTTP). Times at the very edges that do have one pass."""
    event = copy.deepcopy(_BASE)
    if pointer == "/eventTime":
        event["eventTime"] = time
    else:
        event["errorDeclaration"] = {"declarationTime": time}
    assert [(p.place, p.reason) for p in validate_event(event)] == [
        (pointer, f"{time!r} is outside the years 1–9999 in UTC")
    ]
    event = copy.deepcopy(_BASE)
    event["eventTime"] = "0001-01-01T00:00:00-08:00"
    assert validate_event(event) == []


def test_every_cbv_step_and_disposition_has_a_chinese_name() -> None:
    """Pages and answers name steps and dispositions in Chinese (发货 for shipping): none of
    the CBV 2.0 words is left without one, and none is named twice."""
    from yaolian.epcis.cbv import (
        BIZ_STEP_NAMES_ZH,
        BIZ_STEPS,
        DISPOSITION_NAMES_ZH,
        DISPOSITIONS,
    )

    assert set(BIZ_STEP_NAMES_ZH) == BIZ_STEPS and set(DISPOSITION_NAMES_ZH) == DISPOSITIONS
    for names in (BIZ_STEP_NAMES_ZH, DISPOSITION_NAMES_ZH):
        assert len(set(names.values())) == len(names)
