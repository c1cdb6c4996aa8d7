"""EPCIS query parameters, paging and tenant isolation over the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from yaolian.epcis import jsonld
from yaolian.epcis.model import Event
from yaolian.errors import QueryError, YaolianError
from yaolian.store.access import Viewer, authenticate, create_key
from yaolian.store.ingest import capture_document
from yaolian.store.masterdata import upsert_enterprise, upsert_site
from yaolian.store.query import EventPage, _encode_token, _fingerprint, query_events

PACK = "urn:epc:id:sgtin:6901234.056789."
GTIN = "06901234567892"
CASE = "urn:epc:id:sscc:6901234.0000000002"
CASE_DL = "https://id.gs1.org/00/069012340000000023"
LOT = "urn:epc:class:lgtin:6901234.056789.L01"
FACTORY = "urn:epc:id:sgln:6901234.00002.0"
WAREHOUSE = "urn:epc:id:sgln:6901234.00003.0"
PHARMACY = "urn:epc:id:sgln:6901234.00004.0"
HOLDER = "urn:epc:id:pgln:6901234.00002"
DIST = "urn:epc:id:pgln:6901234.00003"
USCC_HOLDER = "91350100M000100Y43"
USCC_DIST = "91110000100000001W"
USCC_PHARMACY = "91310000200000001M"
REGULATOR = Viewer(None, "regulator")


def _event(kind: str, day: int, **fields: Any) -> Event:
    return {
        "type": kind,
        "eventTime": f"2026-03-{day:02d}T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        **fields,
    }


EVENTS: list[Event] = [
    # 0 commissioning of packs 1-4 at the factory, lot L01
    _event(
        "ObjectEvent",
        1,
        epcList=[f"{PACK}{i}" for i in range(1, 5)],
        action="ADD",
        bizStep="commissioning",
        disposition="active",
        readPoint={"id": FACTORY},
        bizLocation={"id": FACTORY},
        ilmd={"cbvmda:lotNumber": "L01"},
    ),
    # 1 packing into the case
    _event(
        "AggregationEvent",
        2,
        parentID=CASE,
        childEPCs=[f"{PACK}{i}" for i in range(1, 5)],
        action="ADD",
        bizStep="packing",
        readPoint={"id": FACTORY},
    ),
    # 2 shipping the case holder → distributor, with a purchase order
    _event(
        "ObjectEvent",
        3,
        epcList=[CASE],
        action="OBSERVE",
        bizStep="shipping",
        disposition="in_transit",
        readPoint={"id": FACTORY},
        bizTransactionList=[{"type": "po", "bizTransaction": "urn:yl:po:77"}],
        sourceList=[{"type": "owning_party", "source": HOLDER}],
        destinationList=[{"type": "owning_party", "destination": DIST}],
    ),
    # 3 receiving at the distributor's warehouse
    _event(
        "ObjectEvent",
        4,
        epcList=[CASE],
        action="OBSERVE",
        bizStep="receiving",
        disposition="in_progress",
        readPoint={"id": WAREHOUSE},
        bizLocation={"id": WAREHOUSE},
    ),
    # 4 a transformation: pack 4 repackaged into pack 5
    _event(
        "TransformationEvent",
        5,
        inputEPCList=[f"{PACK}4"],
        outputEPCList=[f"{PACK}5"],
        inputQuantityList=[{"epcClass": LOT, "quantity": 1, "uom": "EA"}],
        bizStep="repackaging",
        bizLocation={"id": WAREHOUSE},
    ),
    # 5 a transaction event and a class-level count at the pharmacy
    _event(
        "TransactionEvent",
        6,
        epcList=[f"{PACK}1"],
        action="ADD",
        bizStep="retail_selling",
        disposition="retail_sold",
        bizLocation={"id": PHARMACY},
        bizTransactionList=[{"type": "inv", "bizTransaction": "urn:yl:inv:1"}],
        quantityList=[{"epcClass": LOT, "quantity": 3, "uom": "EA"}],
    ),
    # 6 association of a sensor device to the case
    _event(
        "AssociationEvent",
        7,
        parentID="urn:epc:id:giai:6901234.LOGGER1",
        childEPCs=[CASE],
        action="ADD",
        bizStep="inspecting",
        readPoint={"id": WAREHOUSE},
    ),
]
ERROR_DECLARATION = {
    **EVENTS[3],
    "errorDeclaration": {"declarationTime": "2026-03-09T00:00:00Z", "reason": "incorrect_data"},
}


@pytest.fixture
def store(engine: Engine) -> dict[str, int]:
    holder = upsert_enterprise(engine, USCC_HOLDER, "甲药业", "holder", party_id=HOLDER)
    dist = upsert_enterprise(engine, USCC_DIST, "乙医药", "distributor", party_id=DIST)
    pharmacy = upsert_enterprise(engine, USCC_PHARMACY, "丙药房", "pharmacy")
    upsert_site(engine, FACTORY, USCC_HOLDER, "工厂")
    upsert_site(engine, WAREHOUSE, USCC_DIST, "仓库")
    upsert_site(engine, PHARMACY, USCC_PHARMACY, "药房")
    events = copy.deepcopy(EVENTS)
    events[4]["eventID"] = "urn:uuid:5e7f0a4c-6a53-4c2f-9a52-2f5d1c3b7a10"
    # each enterprise reports what happened at its own sites, in event order
    for reporter, part in (
        (holder, events[0:3]),
        (dist, events[3:5]),
        (pharmacy, events[5:6]),
        (dist, [*events[6:], copy.deepcopy(ERROR_DECLARATION)]),
    ):
        doc = jsonld.document_from_json(
            {
                "type": "EPCISDocument",
                "schemaVersion": "2.0",
                "creationDate": "2026-03-10T00:00:00Z",
                "epcisBody": {"eventList": part},
            }
        )
        result = capture_document(engine, doc, enterprise_id=reporter)
        assert result.accepted == len(part), result.errors
    return {"holder": holder, "distributor": dist, "pharmacy": pharmacy}


def _q(engine: Engine, viewer: Viewer = REGULATOR, **params: str | Sequence[str]) -> EventPage:
    with engine.connect() as conn:
        return query_events(conn, params, viewer=viewer)


def _days(engine: Engine, viewer: Viewer = REGULATOR, **params: str | Sequence[str]) -> list[int]:
    """Day of month of each matching event, in result order (our events are one per day)."""
    page = _q(engine, viewer, perPage="1000", **params)
    assert page.next_page_token is None
    return [int(ev["eventTime"][8:10]) for ev in page.events]


CASES: list[tuple[Mapping[str, str | list[str]], list[int]]] = [
    ({}, [1, 2, 3, 4, 4, 5, 6, 7]),
    ({"eventType": "AggregationEvent"}, [2]),
    ({"eventType": "TransformationEvent|AssociationEvent"}, [5, 7]),
    ({"eventType": ["ObjectEvent", "TransactionEvent"]}, [1, 3, 4, 4, 6]),
    ({"GE_eventTime": "2026-03-04T00:00:00Z"}, [4, 4, 5, 6, 7]),
    ({"LT_eventTime": "2026-03-03T00:00:00+08:00"}, [1, 2]),
    (
        {"GE_eventTime": "2026-03-02T00:00:00+08:00", "LT_eventTime": "2026-03-04T00:00:00+08:00"},
        [2, 3],
    ),
    ({"GE_recordTime": "2000-01-01T00:00:00Z"}, [1, 2, 3, 4, 4, 5, 6, 7]),
    ({"LT_recordTime": "2000-01-01T00:00:00Z"}, []),
    ({"EQ_action": "ADD"}, [1, 2, 6, 7]),
    ({"EQ_action": "OBSERVE|DELETE"}, [3, 4, 4]),
    ({"EQ_bizStep": "shipping"}, [3]),
    ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:receiving"}, [4, 4]),
    ({"EQ_bizStep": "https://ref.gs1.org/cbv/BizStep-packing"}, [2]),
    ({"EQ_disposition": "https://ref.gs1.org/cbv/Disp-retail_sold"}, [6]),
    ({"EQ_disposition": "active|in_transit"}, [1, 3]),
    ({"EQ_readPoint": WAREHOUSE}, [4, 4, 7]),
    ({"EQ_bizLocation": PHARMACY}, [6]),
    ({"WD_readPoint": WAREHOUSE}, [4, 4, 7]),  # no location hierarchy: its own events
    ({"WD_bizLocation": PHARMACY}, [6]),
    ({"MATCH_epc": f"{PACK}1"}, [1, 2, 6]),  # epcList and childEPCs
    ({"MATCH_epc": f"https://id.gs1.org/01/{GTIN}/21/3"}, [1, 2]),  # Digital Link form
    ({"MATCH_parentID": CASE}, [2]),
    ({"MATCH_parentID": CASE_DL}, [2]),
    ({"MATCH_inputEPC": f"{PACK}4"}, [5]),
    ({"MATCH_outputEPC": f"{PACK}5"}, [5]),
    ({"MATCH_anyEPC": CASE}, [2, 3, 4, 4, 7]),
    ({"MATCH_anyEPC": f"{PACK}4"}, [1, 2, 5]),
    ({"MATCH_anyEPC": f"{PACK}99"}, []),  # a valid code never seen
    ({"MATCH_epc": "urn:epc:idpat:sgtin:6901234.056789.*"}, [1, 2, 6]),
    ({"MATCH_anyEPC": "urn:epc:idpat:sgtin:6901234.056789.*"}, [1, 2, 5, 6]),
    ({"MATCH_anyEPC": "urn:epc:idpat:sgtin:6901234.056790.*"}, []),
    ({"MATCH_anyEPC": f"urn:epc:idpat:sgtin:6901234.056790.*|{CASE}"}, [2, 3, 4, 4, 7]),
    ({"MATCH_epcClass": "urn:epc:idpat:sgtin:6901234.056789.*"}, [6]),
    ({"MATCH_epcClass": LOT}, [6]),
    ({"MATCH_anyEPCClass": LOT}, [5, 6]),
    ({"MATCH_inputEPCClass": LOT}, [5]),
    ({"EQ_bizTransaction_po": "urn:yl:po:77"}, [3]),
    ({"EQ_bizTransaction_urn:epcglobal:cbv:btt:inv": "urn:yl:inv:1"}, [6]),
    ({"EQ_bizTransaction_po": "urn:yl:po:78"}, []),
    ({"EQ_source_owning_party": HOLDER}, [3]),
    ({"EQ_destination_owning_party": DIST}, [3]),
    ({"EQ_destination_possessing_party": DIST}, []),
    ({"EQ_eventID": "urn:uuid:5e7f0a4c-6a53-4c2f-9a52-2f5d1c3b7a10"}, [5]),
    ({"EXISTS_errorDeclaration": "true"}, [4]),
    ({"EXISTS_errorDeclaration": ""}, [4]),
    ({"EXISTS_errorDeclaration": "false", "EQ_bizStep": "receiving"}, [4]),
    ({"eventType": "ObjectEvent", "EQ_bizStep": "receiving", "MATCH_anyEPC": CASE}, [4, 4]),
    ({"orderBy": "eventTime"}, [7, 6, 5, 4, 4, 3, 2, 1]),  # EPCIS: orderBy defaults to DESC
    ({"orderBy": "eventTime", "orderDirection": "ASC", "MATCH_anyEPC": CASE}, [2, 3, 4, 4, 7]),
    ({"orderDirection": "DESC", "MATCH_anyEPC": CASE}, [7, 4, 4, 3, 2]),
    ({"eventCountLimit": "3"}, [1, 2, 3]),
]


@pytest.mark.parametrize(("params", "days"), CASES, ids=[str(dict(c[0])) for c in CASES])
def test_query_parameter(
    engine: Engine, store: dict[str, int], params: Mapping[str, str], days: list[int]
) -> None:
    assert _days(engine, **params) == days


def test_order_by_record_time(engine: Engine, store: dict[str, int]) -> None:
    page = _q(engine, orderBy="recordTime", orderDirection="ASC", perPage="100")
    # the error declaration was captured last
    assert "errorDeclaration" in page.events[-1]


def test_max_event_count(engine: Engine, store: dict[str, int]) -> None:
    assert len(_q(engine, maxEventCount="8").events) == 8
    with pytest.raises(YaolianError) as info:
        _q(engine, maxEventCount="7")
    assert info.value.exception_type == "QueryTooLargeException"


BAD: list[tuple[dict[str, str], str]] = [
    ({"eventType": "QuantityEvent"}, "eventType"),
    ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
    ({"LT_recordTime": "2026-03-01T00:00:00"}, "LT_recordTime"),  # no offset
    ({"EQ_action": "ADDED"}, "EQ_action"),
    ({"MATCH_epc": "urn:epc:id:sgtin:6901234.056789"}, "MATCH_epc"),
    ({"MATCH_anyEPC": ""}, "MATCH_anyEPC"),
    ({"MATCH_anyEPC": "urn:epc:idpat:sgtin:6901234.056789.12"}, "MATCH_anyEPC"),
    ({"orderBy": "bizStep"}, "orderBy"),
    ({"orderDirection": "UP"}, "orderDirection"),
    ({"perPage": "0"}, "perPage"),
    ({"perPage": "ten"}, "perPage"),
    ({"eventCountLimit": "-1"}, "eventCountLimit"),
    ({"eventCountLimit": "9" * 30}, "eventCountLimit"),
    ({"maxEventCount": "9" * 30}, "maxEventCount"),
    ({"EXISTS_errorDeclaration": "maybe"}, "EXISTS_errorDeclaration"),
    ({"EQ_colour": "red"}, "EQ_colour"),
    ({"nextPageToken": "garbage!"}, "nextPageToken"),
]


@pytest.mark.parametrize(("params", "place"), BAD, ids=[p for _, p in BAD])
def test_bad_parameter_names_the_parameter(
    engine: Engine, params: dict[str, str], place: str
) -> None:
    with pytest.raises(QueryError) as info:
        _q(engine, **params)
    assert info.value.place == place
    assert info.value.to_problem()["type"] == "epcisException:QueryParameterException"


def test_pagination_is_stable_and_complete(engine: Engine, store: dict[str, int]) -> None:
    for extra in ({}, {"orderBy": "eventTime"}, {"MATCH_anyEPC": CASE}):
        expected = _days(engine, **extra)
        seen: list[int] = []
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, str] = {"perPage": "2", **extra}
            if token:
                params["nextPageToken"] = token
            page = _q(engine, **params)
            seen.extend(int(ev["eventTime"][8:10]) for ev in page.events)
            pages += 1
            token = page.next_page_token
            if token is None:
                break
            # a capture between pages does not shift the later pages (keyset, not offset)
            if pages == 1:
                late = jsonld.document_from_json(
                    [_event("ObjectEvent", 28, epcList=[f"{PACK}77"], action="OBSERVE")]
                )
                capture_document(engine, late)
        assert seen[: len(expected)] == expected
        assert pages >= len(expected) // 2


def test_page_token_is_tied_to_its_query(engine: Engine, store: dict[str, int]) -> None:
    token = _q(engine, perPage="2", eventType="ObjectEvent").next_page_token
    assert token
    with pytest.raises(QueryError, match="different query"):
        _q(engine, perPage="2", eventType="AggregationEvent", nextPageToken=token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(QueryError):
        _q(engine, perPage="2", eventType="ObjectEvent", nextPageToken=tampered)
    # eventCountLimit spans pages
    first = _q(engine, perPage="2", eventCountLimit="3")
    assert first.next_page_token
    second = _q(engine, perPage="2", eventCountLimit="3", nextPageToken=first.next_page_token)
    assert len(second.events) == 1 and second.next_page_token is None


def test_enterprises_see_only_their_events(engine: Engine, store: dict[str, int]) -> None:
    holder = Viewer(store["holder"], "enterprise")
    dist = Viewer(store["distributor"], "enterprise")
    pharmacy = Viewer(store["pharmacy"], "enterprise")
    # the holder: what it reported at its factory, the shipment naming it among them
    assert _days(engine, holder) == [1, 2, 3]
    # the distributor: shipment to it, its warehouse events, and its own declaration
    assert _days(engine, dist) == [3, 4, 4, 5, 7]
    # the pharmacy: the sale at its premises only
    assert _days(engine, pharmacy) == [6]
    assert _days(engine, pharmacy, MATCH_anyEPC=CASE) == []
    assert _days(engine, Viewer(None, "public")) == []
    assert len(_days(engine, REGULATOR)) == 8


def test_keys_end_to_end(engine: Engine, store: dict[str, int]) -> None:
    key = create_key(engine, USCC_PHARMACY, "enterprise", "till 1")
    viewer = authenticate(engine, key)
    assert _days(engine, viewer) == [6]
    regulator = authenticate(engine, create_key(engine, None, "regulator", "NMPA"))
    assert len(_days(engine, regulator)) == 8


_NAMES = st.sampled_from(
    [
        "eventType",
        "GE_eventTime",
        "LT_recordTime",
        "EQ_action",
        "EQ_bizStep",
        "MATCH_anyEPC",
        "MATCH_epcClass",
        "EQ_bizTransaction_po",
        "EQ_source_owning_party",
        "orderBy",
        "orderDirection",
        "perPage",
        "eventCountLimit",
        "maxEventCount",
        "nextPageToken",
        "EXISTS_errorDeclaration",
        "EQ_eventID",
    ]
) | st.text(min_size=1, max_size=12)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.dictionaries(_NAMES, st.lists(st.text(max_size=40), max_size=3), max_size=4))
def test_any_parameters_give_a_page_or_a_query_error(
    sqlite_engine: Engine, params: dict[str, list[str]]
) -> None:
    try:
        page = _q(sqlite_engine, **params)
    except QueryError as exc:
        assert exc.place  # always names the parameter
    except YaolianError as exc:
        assert exc.exception_type == "QueryTooLargeException"
    else:
        assert page.events == []


def test_forged_page_tokens_are_refused(sqlite_engine: Engine) -> None:
    fingerprint = _fingerprint({"perPage": "2"})
    for position in ([1, 2, -5], [1, 2, 0], [2**63 - 1, 1, None], ["x", 1, None], [1, 2]):
        token = _encode_token(position, fingerprint)  # a well-formed checksum, bad content
        with pytest.raises(QueryError, match="malformed"):
            _q(sqlite_engine, perPage="2", nextPageToken=token)
