"""EPCIS 2.0 REST bindings end to end over HTTP (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from fastapi.websockets import WebSocketDisconnect
from lxml import etree
from openpyxl import Workbook
from sqlalchemy import Engine, func, select

from yaolian.api import webhooks as webhooks_module
from yaolian.api.app import ApiSettings, create_app
from yaolian.api.epcis import XLSX
from yaolian.codes.identity import canonical_key
from yaolian.epcis import xml
from yaolian.epcis.model import Document
from yaolian.epcis.nmpa_dataset import party_uri
from yaolian.epcis.read import read_document
from yaolian.errors import ValidationError
from yaolian.store import resources
from yaolian.store.access import create_key, revoke_key, upsert_enterprise, upsert_site
from yaolian.store.audit import verify_audit_chain
from yaolian.store.schema import audit_log, subscription
from yaolian.store.subscriptions import check_dest, claim, delivered, due, failed
from yaolian.tables import xlsx_bytes

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
A = "91310000MA00000025"  # 甲医药 (distributor)
B = "92440000MA0000004B"  # 乙药房 (pharmacy)
SITE_A = "urn:epc:id:sgln:6901234.00001.0"
SITE_B = "urn:epc:id:sgln:6901234.00002.0"
SSCC = "urn:epc:id:sscc:6901234.0000000001"
LOT_CLASS = "urn:epc:class:lgtin:6901234.056789.L1"
PO = "urn:epcglobal:cbv:bt:6901234000016:PO-1"
DATA = Path(__file__).parent / "data" / "nmpa"


def sgtin(serial: str) -> str:
    return f"urn:epc:id:sgtin:6901234.056789.{serial}"


def eid(n: int) -> str:
    return f"urn:uuid:00000000-0000-4000-8000-{n:012d}"


def _event(n: int, kind: str, day: int, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "eventID": eid(n),
        "eventTime": f"2025-03-{day:02d}T{hour:02d}:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        **fields,
    }


def chain_events() -> list[dict[str, Any]]:
    """Seven events over every query dimension; event n has eventID eid(n)."""
    return [
        _event(
            1,
            "ObjectEvent",
            1,
            8,
            action="ADD",
            epcList=[sgtin("S1"), sgtin("S2")],
            bizStep="commissioning",
            disposition="active",
            readPoint={"id": SITE_A},
            bizLocation={"id": SITE_A},
            ilmd={"cbvmda:lotNumber": "L1"},
        ),
        _event(
            2,
            "AggregationEvent",
            1,
            9,
            action="ADD",
            parentID=SSCC,
            childEPCs=[sgtin("S1"), sgtin("S2")],
            bizStep="packing",
            disposition="in_progress",
            bizLocation={"id": SITE_A},
        ),
        _event(
            3,
            "ObjectEvent",
            2,
            10,
            action="OBSERVE",
            epcList=[SSCC],
            bizStep="shipping",
            disposition="in_transit",
            readPoint={"id": SITE_A},
            bizTransactionList=[{"type": "po", "bizTransaction": PO}],
            sourceList=[{"type": "owning_party", "source": party_uri(A)}],
            destinationList=[{"type": "owning_party", "destination": party_uri(B)}],
        ),
        _event(
            4,
            "ObjectEvent",
            3,
            10,
            action="OBSERVE",
            epcList=[SSCC],
            bizStep="receiving",
            disposition="in_progress",
            bizLocation={"id": SITE_B},
        ),
        _event(
            5,
            "ObjectEvent",
            4,
            10,
            action="OBSERVE",
            bizStep="inspecting",
            quantityList=[{"epcClass": LOT_CLASS, "quantity": 10}],
            bizLocation={"id": SITE_B},
        ),
        _event(
            6,
            "TransformationEvent",
            5,
            10,
            inputEPCList=[sgtin("S3")],
            outputEPCList=[sgtin("S4")],
            bizLocation={"id": SITE_B},
        ),
        _event(
            7,
            "ObjectEvent",
            6,
            10,
            action="OBSERVE",
            epcList=[sgtin("S5")],
            bizStep="inspecting",
            bizLocation={"id": SITE_B},
            errorDeclaration={
                "declarationTime": "2025-03-07T10:00:00+08:00",
                "reason": "incorrect_data",
            },
        ),
    ]


def document(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-03-07T00:00:00Z",
        "epcisBody": {"eventList": events},
    }


@dataclass
class Api:
    client: TestClient
    engine: Engine
    regulator: str
    key_a: str
    key_b: str

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.regulator}", **extra}

    def capture(
        self,
        body: Any,
        *,
        key: str | None = None,
        content_type: str = "application/ld+json",
        behaviour: str | None = None,
    ) -> dict[str, Any]:
        """POST /capture, expect 202 + Location, return the finished job."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = self.headers(key, **{"Content-Type": content_type})
        if behaviour:
            headers["GS1-Capture-Error-Behaviour"] = behaviour
        response = self.client.post("/capture", content=data, headers=headers)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        assert location == f"/capture/{response.json()['captureID']}"
        job = self.client.get(location, headers=self.headers(key))
        assert job.status_code == 200, job.text
        result: dict[str, Any] = job.json()
        assert result["running"] is False  # background task ran before the client returned
        return result

    def ids(self, path: str = "/events", key: str | None = None, **params: Any) -> list[str]:
        response = self.client.get(path, params=params, headers=self.headers(key))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["type"] == "EPCISQueryDocument"
        events = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        return [e.get("eventID", e["type"]) for e in events]


@contextmanager
def serving(db_url: str, engine: Engine) -> Iterator[Api]:
    """Enterprises A (distributor) and B (pharmacy) with a site each, a key each and a
    regulator's ("省局"); the app on the store."""
    upsert_enterprise(engine, A, "甲医药有限公司", "distributor", party_id=party_uri(A))
    upsert_enterprise(engine, B, "乙大药房", "pharmacy", party_id=party_uri(B))
    upsert_site(engine, SITE_A, A, "甲医药仓库")
    upsert_site(engine, SITE_B, B, "乙大药房门店")
    keys = (
        create_key(engine, None, "regulator", "省局"),
        create_key(engine, A, "enterprise"),
        create_key(engine, B, "enterprise"),
    )
    with TestClient(create_app(db_url)) as client:
        yield Api(client, engine, *keys)


@pytest.fixture
def api(db_url: str, engine: Engine) -> Iterator[Api]:
    with serving(db_url, engine) as served:
        yield served


@pytest.fixture
def loaded(api: Api) -> Api:
    job = api.capture(document(chain_events()))
    assert job["success"] is True and job["accepted"] == 7, job
    return api


def assert_problem(response: Any, status: int, exception: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"epcisException:{exception}"
    assert body["status"] == status and body["title"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    assert "Traceback" not in response.text
    return body


# ── capture ──────────────────────────────────────────────────────────────────────────────────
def test_capture_json_document_then_poll_job(loaded: Api) -> None:
    jobs = loaded.client.get("/capture", headers=loaded.headers()).json()["captureJobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["success"] is True and job["running"] is False
    assert (job["accepted"], job["duplicates"], job["rejected"]) == (7, 0, 0)
    assert job["captureErrorBehaviour"] == "rollback"
    assert job["createdAt"].endswith("Z") and job["finishedAt"]
    assert loaded.ids() == [eid(n) for n in range(1, 8)]


def test_capture_xml_document(api: Api) -> None:
    body = xml.write_document(Document(events=chain_events()[:3], context=[CONTEXT]))
    job = api.capture(body, content_type="application/xml")
    assert job["success"] is True and job["accepted"] == 3
    assert api.ids() == [eid(1), eid(2), eid(3)]


def test_capture_body_of_one_event_or_a_list(api: Api) -> None:
    events = chain_events()
    assert api.capture(events[0])["accepted"] == 1
    assert api.capture(events[1:3], content_type="application/json")["accepted"] == 2
    assert api.ids() == [eid(1), eid(2), eid(3)]


def test_capture_is_idempotent(loaded: Api) -> None:
    again = loaded.capture(document(chain_events()))
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 7, 0)
    assert again["success"] is True
    assert len(loaded.ids()) == 7


def _with_one_bad_event() -> dict[str, Any]:
    events = chain_events()[:3]
    del events[1]["parentID"]  # AggregationEvent ADD needs parentID
    return document(events)


def test_rollback_stores_nothing_and_reports_the_fault(api: Api) -> None:
    job = api.capture(_with_one_bad_event())
    assert job["success"] is False
    assert (job["accepted"], job["rejected"]) == (0, 1)
    assert any("/epcisBody/eventList/1" in (e["place"] or "") for e in job["errors"]), job
    assert api.ids() == []


def test_proceed_stores_the_valid_events(api: Api) -> None:
    job = api.capture(_with_one_bad_event(), behaviour="proceed")
    assert job["captureErrorBehaviour"] == "proceed"
    assert (job["accepted"], job["rejected"], job["success"]) == (2, 1, False)
    assert api.ids() == [eid(1), eid(3)]


def test_capture_nmpa_csv(api: Api) -> None:
    job = api.capture((DATA / "chain.csv").read_bytes(), content_type="text/csv")
    assert job["success"] is True and job["accepted"] == 15
    assert len(api.ids(eventType="AggregationEvent")) == 2


def test_capture_nmpa_xlsx(api: Api, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["单据号", "业务类型", "业务时间", "企业统一社会信用代码", "追溯码"])
    sheet.append(["SC1", "生产", datetime(2025, 3, 1, 8), A, "86000010000000000009"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = api.capture(buffer.getvalue(), content_type=XLSX, key=api.key_a)
    assert job["success"] is True and job["accepted"] == 1
    assert api.ids(key=api.key_a, EQ_bizStep="commissioning") == ["ObjectEvent"]


def test_capture_bad_nmpa_csv_names_rows(api: Api) -> None:
    response = api.client.post(
        "/capture",
        content=(DATA / "bad.csv").read_bytes(),
        headers=api.headers(**{"Content-Type": "text/csv; charset=utf-8"}),
    )
    body = assert_problem(response, 400, "ValidationException", "nothing imported")
    assert body["errors"][0]["place"] == "body:3 column 业务类型"


def test_capture_bad_json_and_bad_xml(api: Api) -> None:
    bad_json = api.client.post(
        "/capture",
        content=b'{"type": "EPCISDocument", ',
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    assert_problem(bad_json, 400, "ValidationException")
    bad_xml = api.client.post(
        "/capture",
        content=b"<epcis:EPCISDocument><unclosed>",
        headers=api.headers(**{"Content-Type": "application/xml"}),
    )
    assert_problem(bad_xml, 400, "ValidationException")
    assert api.client.get("/capture", headers=api.headers()).json()["captureJobs"] == []


def test_capture_empty_or_non_epcis_json(api: Api) -> None:
    for body in (b"", b"123", b'{"type": "Nothing"}', b'{"epcisBody": {}}'):
        response = api.client.post(
            "/capture", content=body, headers=api.headers(**{"Content-Type": "application/json"})
        )
        assert_problem(response, 400, "ValidationException")


def test_capture_refuses_unknown_media_type_and_behaviour(api: Api) -> None:
    response = api.client.post(
        "/capture", content=b"hello", headers=api.headers(**{"Content-Type": "text/plain"})
    )
    assert_problem(response, 415, "UnsupportedMediaTypeException", "text/plain")
    response = api.client.post(
        "/capture",
        content=orjson.dumps(document(chain_events())),
        headers=api.headers(
            **{"Content-Type": "application/json", "GS1-Capture-Error-Behaviour": "maybe"}
        ),
    )
    body = assert_problem(response, 400, "ValidationException")
    assert body["errors"][0]["place"] == "header GS1-Capture-Error-Behaviour"


def test_capture_limits(db_url: str, engine: Engine) -> None:
    key = create_key(engine, None, "regulator")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = orjson.dumps(document(chain_events()))
    small = ApiSettings(capture_limit=100, capture_size_limit=200)
    with TestClient(create_app(db_url, small)) as client:
        response = client.post("/capture", content=body, headers=headers)
        assert_problem(response, 413, "CaptureLimitExceededException", "200 bytes")
        assert response.headers["GS1-EPCIS-Capture-File-Size-Limit"] == "200"
    few = ApiSettings(capture_limit=3)
    with TestClient(create_app(db_url, few)) as client:
        response = client.post("/capture", content=body, headers=headers)
        assert_problem(response, 413, "CaptureLimitExceededException", "7 events")


def test_capture_writes_the_audit_chain(loaded: Api) -> None:
    with loaded.engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action, audit_log.c.target)).all()
        report = verify_audit_chain(conn)
    assert [a for a, _ in actions] == ["key.create"] * 3 + ["capture"]  # the fixture's keys
    assert actions[-1][1].startswith("/capture/")
    assert not report.problems and report.ok == 4


# ── queries ──────────────────────────────────────────────────────────────────────────────────
QUERIES: list[tuple[dict[str, str], list[int]]] = [
    ({"eventType": "AggregationEvent"}, [2]),
    ({"eventType": "AggregationEvent|TransformationEvent"}, [2, 6]),
    ({"GE_eventTime": "2025-03-03T00:00:00+08:00"}, [4, 5, 6, 7]),
    ({"LT_eventTime": "2025-03-02T00:00:00+08:00"}, [1, 2]),
    ({"GE_eventTime": "2025-03-01T01:00:00Z", "LT_eventTime": "2025-03-01T01:30:00Z"}, [2]),
    ({"GE_recordTime": "2000-01-01T00:00:00Z"}, [1, 2, 3, 4, 5, 6, 7]),
    ({"LT_recordTime": "2000-01-01T00:00:00Z"}, []),
    ({"EQ_action": "ADD"}, [1, 2]),
    ({"EQ_bizStep": "shipping"}, [3]),
    ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:receiving"}, [4]),
    ({"EQ_disposition": "in_progress"}, [2, 4]),
    ({"EQ_readPoint": SITE_A}, [1, 3]),
    ({"EQ_bizLocation": SITE_B}, [4, 5, 6, 7]),
    ({"MATCH_epc": sgtin("S1")}, [1, 2]),
    ({"MATCH_epc": "https://id.gs1.org/01/06901234567892/21/S1"}, [1, 2]),
    ({"MATCH_parentID": SSCC}, [2]),
    ({"MATCH_inputEPC": sgtin("S3")}, [6]),
    ({"MATCH_outputEPC": sgtin("S4")}, [6]),
    ({"MATCH_anyEPC": SSCC}, [2, 3, 4]),
    ({"MATCH_epcClass": LOT_CLASS}, [5]),
    ({"EQ_bizTransaction_po": PO}, [3]),
    ({"EQ_source_owning_party": party_uri(A)}, [3]),
    ({"EQ_destination_owning_party": party_uri(B)}, [3]),
    ({"EQ_eventID": eid(4)}, [4]),
    ({"EXISTS_errorDeclaration": ""}, [7]),
    ({"orderBy": "eventTime"}, [7, 6, 5, 4, 3, 2, 1]),
    ({"orderBy": "eventTime", "orderDirection": "ASC"}, [1, 2, 3, 4, 5, 6, 7]),
    ({"eventCountLimit": "2"}, [1, 2]),
    ({"EQ_bizLocation": SITE_B, "EQ_bizStep": "inspecting"}, [5, 7]),
]


@pytest.mark.parametrize(("params", "expected"), QUERIES, ids=[str(q[0]) for q in QUERIES])
def test_query_parameters(loaded: Api, params: dict[str, str], expected: list[int]) -> None:
    assert loaded.ids(**params) == [eid(n) for n in expected]


def test_pagination_with_next_page_token_and_link(loaded: Api) -> None:
    seen: list[str] = []
    url: str | None = "/events?perPage=3&EQ_bizLocation=" + quote(SITE_B)
    pages = 0
    while url:
        response = loaded.client.get(url, headers=loaded.headers())
        assert response.status_code == 200
        events = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        seen += [e["eventID"] for e in events]
        pages += 1
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('; rel="next"') and "nextPageToken=" in link
    assert pages == 2
    assert seen == [eid(n) for n in (4, 5, 6, 7)]
    token_page = loaded.client.get("/events", params={"perPage": "1"}, headers=loaded.headers())
    token = token_page.headers["Link"].split("nextPageToken=")[1].split(">")[0]
    assert loaded.ids(perPage="1", nextPageToken=token) == [eid(2)]
    wrong = loaded.client.get(
        "/events", params={"perPage": "1", "nextPageToken": "garbage"}, headers=loaded.headers()
    )
    assert_problem(wrong, 400, "QueryParameterException", "nextPageToken")


def test_content_negotiation(loaded: Api) -> None:
    ld = loaded.client.get("/events", headers=loaded.headers(Accept="application/ld+json"))
    assert ld.headers["content-type"] == "application/ld+json"
    plain = loaded.client.get("/events", headers=loaded.headers(Accept="application/json"))
    assert plain.headers["content-type"] == "application/json"
    assert ld.json() == plain.json() or ld.json()["epcisBody"] == plain.json()["epcisBody"]
    as_xml = loaded.client.get(
        "/events",
        params={"eventType": "ObjectEvent"},
        headers=loaded.headers(Accept="text/html;q=0.9, application/xml"),
    )
    assert as_xml.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(as_xml.content)
    assert root.tag == "{urn:epcglobal:epcis-query:xsd:2}EPCISQueryDocument"
    results = root.find("EPCISBody/{urn:epcglobal:epcis-query:xsd:2}QueryResults")
    assert results is not None and results.findtext("queryName") == "SimpleEventQuery"
    ids = [el.text for el in results.iterfind("resultsBody/EventList/ObjectEvent/eventID")]
    assert ids == [eid(n) for n in (1, 3, 4, 5, 7)]
    read_back = read_document(as_xml.content, "application/xml")  # our own reader takes it
    assert [e["eventID"] for e in read_back.events] == ids
    assert read_back.events[0]["epcList"] == chain_events()[0]["epcList"]
    refused = loaded.client.get("/events", headers=loaded.headers(Accept="text/html"))
    assert_problem(refused, 406, "NotAcceptableException", "text/html")


def test_events_by_type_epc_and_event_id(loaded: Api) -> None:
    assert loaded.ids("/events/AggregationEvent") == [eid(2)]
    assert loaded.ids("/eventTypes/TransformationEvent/events") == [eid(6)]
    assert loaded.ids(f"/epcs/{quote(SSCC, safe='')}/events") == [eid(2), eid(3), eid(4)]
    digital_link = quote("https://id.gs1.org/01/06901234567892/21/S1", safe="")
    assert loaded.ids(f"/epcs/{digital_link}/events") == [eid(1), eid(2)]
    assert loaded.ids(f"/epcs/{quote(SSCC, safe='')}/events", EQ_bizStep="shipping") == [eid(3)]
    assert loaded.ids(f"/events/{quote(eid(5), safe='')}") == [eid(5)]
    missing = loaded.client.get(f"/events/{quote(eid(99), safe='')}", headers=loaded.headers())
    assert_problem(missing, 404, "NoSuchResourceException")
    bad_type = loaded.client.get("/eventTypes/NoEvent/events", headers=loaded.headers())
    assert_problem(bad_type, 400, "ValidationException")
    bad_code = loaded.client.get("/epcs/not%20a%20code/events", headers=loaded.headers())
    assert_problem(bad_code, 400, "QueryParameterException")
    assert loaded.client.get("/eventTypes", headers=loaded.headers()).json() == [
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
    ]


def test_bad_query_parameters_are_problems(loaded: Api) -> None:
    unknown = loaded.client.get("/events", params={"EQ_colour": "red"}, headers=loaded.headers())
    body = assert_problem(unknown, 400, "QueryParameterException", "EQ_colour")
    assert body["instance"] == "/events"
    bad_time = loaded.client.get(
        "/events", params={"GE_eventTime": "yesterday"}, headers=loaded.headers()
    )
    assert_problem(bad_time, 400, "QueryParameterException", "GE_eventTime")
    no_offset = loaded.client.get(
        "/events", params={"GE_eventTime": "2025-03-01T00:00:00"}, headers=loaded.headers()
    )
    assert_problem(no_offset, 400, "QueryParameterException", "GE_eventTime")
    bad_page = loaded.client.get("/events", params={"perPage": "0"}, headers=loaded.headers())
    body = assert_problem(bad_page, 400, "QueryParameterException", "perPage")
    assert body["errors"][0]["place"] == "query parameter perPage"
    bad_action = loaded.client.get(
        "/events", params={"EQ_action": "JUMP"}, headers=loaded.headers()
    )
    assert_problem(bad_action, 400, "QueryParameterException", "EQ_action")


# ── access ───────────────────────────────────────────────────────────────────────────────────
def test_no_or_wrong_key_is_401(loaded: Api) -> None:
    for method, path in (
        ("GET", "/events"),
        ("POST", "/capture"),
        ("GET", "/capture/1"),
        ("GET", "/capture"),
    ):
        response = loaded.client.request(method, path)
        assert_problem(response, 401, "SecurityException", "API key")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = loaded.client.get("/events", headers={"X-API-Key": "yl_nope_nope"})
    assert_problem(wrong, 401, "SecurityException")
    by_header = loaded.client.get("/events", headers={"X-API-Key": loaded.regulator})
    assert by_header.status_code == 200


def test_tenants_see_only_their_events(loaded: Api) -> None:
    # A: its site SITE_A (1, 2, 3) and the shipment naming it as source (3).
    assert loaded.ids(key=loaded.key_a) == [eid(n) for n in (1, 2, 3)]
    # B: its site SITE_B (4–7) and the shipment naming it as destination (3).
    assert loaded.ids(key=loaded.key_b) == [eid(n) for n in (3, 4, 5, 6, 7)]
    assert loaded.ids(key=loaded.regulator) == [eid(n) for n in range(1, 8)]
    assert loaded.ids(f"/epcs/{quote(SSCC, safe='')}/events", key=loaded.key_a) == [eid(2), eid(3)]
    hidden = loaded.client.get(
        f"/events/{quote(eid(5), safe='')}", headers=loaded.headers(loaded.key_a)
    )
    assert_problem(hidden, 404, "NoSuchResourceException")


def test_capture_jobs_are_private_to_the_enterprise(api: Api) -> None:
    event = _event(
        9, "ObjectEvent", 9, 9, action="OBSERVE", epcList=[sgtin("S9")], bizStep="inspecting"
    )
    job = api.capture(event, key=api.key_a)
    assert job["success"] is True
    assert api.ids(key=api.key_a) == [eid(9)]  # captured by A: A may see it
    assert api.ids(key=api.key_b) == []
    other = api.client.get(f"/capture/{job['captureID']}", headers=api.headers(api.key_b))
    assert_problem(other, 404, "NoSuchResourceException")
    assert api.client.get("/capture", headers=api.headers(api.key_b)).json() == {"captureJobs": []}
    assert len(api.client.get("/capture", headers=api.headers()).json()["captureJobs"]) == 1
    for job_id in ("abc", "99999999999999999999999", "0", "¹", "１"):  # digits, not ASCII
        not_a_job = api.client.get(f"/capture/{job_id}", headers=api.headers())
        assert_problem(not_a_job, 404, "NoSuchResourceException")


def test_an_enterprise_key_reports_only_its_own_sites(api: Api) -> None:
    at_b = _event(9, "ObjectEvent", 9, 9, action="OBSERVE", epcList=[sgtin("S9")])
    at_b |= {"bizStep": "receiving", "bizLocation": {"id": SITE_B}}
    refused = api.capture(document([at_b]), key=api.key_a)  # A reports a receipt at B's site
    assert (refused["success"], refused["accepted"], refused["rejected"]) == (False, 0, 1)
    (error,) = refused["errors"]
    assert error["place"] == "/epcisBody/eventList/0/bizLocation"
    assert SITE_B in error["reason"] and "its own sites" in error["reason"]
    assert api.ids(key=api.regulator) == []  # nothing stored
    assert api.capture(document([at_b]), key=api.key_b)["accepted"] == 1  # B reports it itself
    # a regulator's key reports anywhere, also when it names an enterprise
    inspector = create_key(api.engine, A, "regulator", "provincial inspector")
    inspected = _event(10, "ObjectEvent", 9, 10, action="OBSERVE", epcList=[sgtin("S9")])
    inspected |= {"bizStep": "inspecting", "bizLocation": {"id": SITE_B}}
    assert api.capture(document([inspected]), key=inspector)["accepted"] == 1


def test_sale_lines_over_http(api: Api) -> None:
    api.capture(document(chain_events()))  # S1–S3 end up at B's pharmacy
    line = {"drug_trac_codg": [sgtin("S1")], "sel_retn_cnt": 1, "site": SITE_B}
    line |= {"sel_retn_time": "2025-03-08T10:00:00+08:00", "setl_id": "J001"}
    line |= {"kind": "retail_selling"}

    def post(body: bytes, key: str, media: str = "application/json") -> Any:
        return api.client.post(
            "/dispense", content=body, headers=api.headers(key, **{"Content-Type": media})
        )

    refused = post(orjson.dumps([line]), api.key_a)  # A records a sale at B's pharmacy
    problem = assert_problem(refused, 400, "ValidationException", "nothing recorded")
    assert problem["errors"][0]["place"] == "body line 1/site"
    bad = post(orjson.dumps({"lines": [line, line | {"sel_retn_cnt": 0}]}), api.key_b)
    problem = assert_problem(bad, 400, "ValidationException")
    assert [e["place"] for e in problem["errors"]] == ["body line 2/sel_retn_cnt"]
    assert api.ids(key=api.regulator, EQ_bizStep="retail_selling") == []  # nothing half-written
    done = post(orjson.dumps([line]), api.key_b)
    assert done.status_code == 200 and done.json() == {"lines": 1, "recorded": 1, "duplicates": 0}
    assert post(orjson.dumps([line]), api.key_b).json()["duplicates"] == 1  # sent again
    assert api.client.get(f"/verify/{quote(sgtin('S1'), safe='')}").json()["status"] == "dispensed"
    csv = "drug_trac_codg,sel_retn_cnt,sel_retn_time,site\n"
    csv += f"{sgtin('S2')},1,2025-03-08 11:00,{SITE_B}\n"
    by_csv = post(csv.encode(), api.key_b, "text/csv; charset=utf-8")
    assert by_csv.json()["recorded"] == 1
    # a refusal at capture names the row as the spreadsheet numbers it (a blank line counts)
    foreign = post(
        (csv + f"\n{sgtin('S4')},1,2025-03-08 11:00,{SITE_B}\n").encode(), api.key_a, "text/csv"
    )
    problem = assert_problem(foreign, 400, "ValidationException", "nothing recorded")
    assert [e["place"] for e in problem["errors"]] == ["body row 2/site", "body row 4/site"]
    # a HIS export as an Excel workbook: its sale time a real date cell
    header = ["drug_trac_codg", "sel_retn_cnt", "sel_retn_time", "site"]
    sold = datetime(2025, 3, 8, 12, 0)
    workbook = xlsx_bytes("销售", header, [[sgtin("S3"), 1, sold, SITE_B]])
    by_xlsx = post(workbook, api.key_b, XLSX)
    assert by_xlsx.status_code == 200 and by_xlsx.json()["recorded"] == 1, by_xlsx.text
    assert api.client.get(f"/verify/{quote(sgtin('S3'), safe='')}").json()["sale_count"] == 1
    not_a_workbook = post(csv.encode(), api.key_b, XLSX)
    assert_problem(not_a_workbook, 400, "ValidationException", "not a readable XLSX workbook")
    xml_body = post(b"<x/>", api.key_b, "application/xml")
    assert_problem(xml_body, 415, "UnsupportedMediaTypeException")


# ── frame ────────────────────────────────────────────────────────────────────────────────────
def test_epcis_headers_and_routing_errors(api: Api) -> None:
    response = api.client.get("/nowhere")
    assert_problem(response, 404, "NoSuchResourceException", "/nowhere")
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert response.headers["GS1-CBV-Version"] == "2.0.0"
    assert int(response.headers["GS1-EPCIS-Capture-Limit"]) > 0
    assert "yaolian=" in response.headers["GS1-Extensions"]
    method = api.client.delete("/events", headers=api.headers())
    assert_problem(method, 405, "MethodNotAllowedException", "DELETE")


def test_interactive_docs_need_no_cdn(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = api.client.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text and "https://" not in html.text
    assert api.client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_unexpected_errors_never_leak_a_traceback(sqlite_url: str) -> None:
    app = create_app(sqlite_url)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    body = assert_problem(response, 500, "ImplementationException")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["instance"] == "/boom"


def test_openapi_declares_the_query_parameters(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    names = {p["name"] for p in spec["paths"]["/events"]["get"]["parameters"]}
    assert {
        "eventType",
        "GE_eventTime",
        "LT_eventTime",
        "GE_recordTime",
        "LT_recordTime",
        "EQ_action",
        "EQ_bizStep",
        "EQ_disposition",
        "EQ_readPoint",
        "EQ_bizLocation",
        "MATCH_epc",
        "MATCH_parentID",
        "MATCH_inputEPC",
        "MATCH_outputEPC",
        "MATCH_anyEPC",
        "MATCH_epcClass",
        "EQ_eventID",
        "EXISTS_errorDeclaration",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "perPage",
        "nextPageToken",
        "EQ_bizTransaction_po",
        "EQ_source_owning_party",
        "EQ_destination_owning_party",
    } <= names
    assert "EQ_bizTransaction_{type}" in spec["paths"]["/events"]["get"]["description"]
    assert set(spec["paths"]["/capture"]["post"]["requestBody"]["content"]) >= {
        "application/ld+json",
        "application/json",
        "application/xml",
        "text/csv",
    }
    assert "/epcs/{epc}/events" in spec["paths"]


# ── extensions through the store (event-level @context) ─────────────────────────────────────
def test_events_with_extensions_come_back_as_xml_and_json_ld(api: Api) -> None:
    """Extension prefixes declared only in the captured document's header still resolve when
    the stored events are queried: as XML (namespaced elements) and as JSON-LD (declared)."""
    ex = "https://example.cn/ns/cold/"
    doc = document(
        [
            _event(
                1,
                "ObjectEvent",
                1,
                9,
                epcList=[sgtin("X1")],
                action="OBSERVE",
                bizStep="receiving",
                readPoint={"id": SITE_A},
                **{"ex:carrier": {"ex:name": "冷链物流", "@ex:licence": "L-7"}},
            ),
            _event(
                2,
                "ObjectEvent",
                1,
                10,
                epcList=[sgtin("X1")],
                action="ADD",
                bizStep="commissioning",
                readPoint={"id": SITE_A},
                ilmd={"ex:batchRecord": "BR-1", "cbvmda:lotNumber": "L1"},
            ),
        ]
    )
    doc["@context"] = [CONTEXT, {"ex": ex}]
    job = api.capture(doc)
    assert job["success"] is True and job["accepted"] == 2, job

    as_xml = api.client.get("/events", headers=api.headers(Accept="application/xml"))
    assert as_xml.status_code == 200, as_xml.text
    root = etree.fromstring(as_xml.content)
    events = root.findall(".//EventList/ObjectEvent")
    assert len(events) == 2
    carrier = events[0].find(f"{{{ex}}}carrier")
    assert carrier is not None and carrier.get(f"{{{ex}}}licence") == "L-7"
    assert carrier.findtext(f"{{{ex}}}name") == "冷链物流"
    assert events[1].findtext(f"ilmd/{{{ex}}}batchRecord") == "BR-1"

    as_json = api.client.get("/events", headers=api.headers(Accept="application/ld+json"))
    body = as_json.json()
    assert {"ex": ex} in body["@context"] or any(
        isinstance(c, dict) and c.get("ex") == ex for c in body["@context"]
    )
    # both answers read back to the same events with the same meaning
    from_xml = read_document(as_xml.content, "application/xml")
    from_json = read_document(as_json.content, "application/ld+json")
    for events_read in (from_xml.events, from_json.events):
        assert events_read[0]["ex:carrier"] == {"ex:name": "冷链物流", "@ex:licence": "L-7"}
        assert events_read[0]["@context"] == {"ex": ex}


# ── top-level resources and named queries ─────────────────────────────────────────────────
def _get(api: Api, path: str, key: str | None = None, **params: Any) -> Any:
    response = api.client.get(path, params=params, headers=api.headers(key))
    assert response.status_code == 200, response.text
    return response


def _all_pages(api: Api, path: str, key: str | None = None, **params: Any) -> list[Any]:
    """Every item of a paged list, following ``Link: <…>; rel="next"``."""
    items: list[Any] = []
    response = _get(api, path, key, **params)
    while True:
        body = response.json()
        items.extend(
            body
            if isinstance(body, list)
            else [
                e["eventID"] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            ]
        )
        link = response.headers.get("link")
        if not link:
            return items
        url = link.split(";")[0].strip("<>")
        response = api.client.get(url, headers=api.headers(key))
        assert response.status_code == 200, response.text


# ── top-level resources ──────────────────────────────────────────────────────────────────────
def test_vocabularies_and_their_events(loaded: Api) -> None:
    steps = _get(loaded, "/bizSteps").json()
    assert {"shipping", "receiving", "commissioning", "dispensing"} <= set(steps)
    assert steps == sorted(steps)
    assert "in_transit" in _get(loaded, "/dispositions").json()
    assert loaded.ids("/bizSteps/shipping/events") == [eid(3)]
    as_uri = quote("https://ref.gs1.org/cbv/BizStep-receiving", safe="")
    assert loaded.ids(f"/bizSteps/{as_uri}/events") == [eid(4)]
    assert loaded.ids("/dispositions/in_progress/events") == [eid(2), eid(4)]
    assert loaded.ids("/dispositions/in_progress/events", eventType="AggregationEvent") == [eid(2)]
    assert _get(loaded, "/bizSteps/shipping").json() == ["events"]
    twice = loaded.client.get(
        "/bizSteps/shipping/events", params={"EQ_bizStep": "receiving"}, headers=loaded.headers()
    )
    assert_problem(twice, 400, "QueryParameterException", "EQ_bizStep", "path")


def test_locations_listed_as_each_key_may_see_them(loaded: Api) -> None:
    assert _get(loaded, "/readPoints").json() == [SITE_A]
    assert _get(loaded, "/bizLocations").json() == [SITE_A, SITE_B]
    # B sees the shipping to it (read at A's site) and what happened at its own site
    assert _get(loaded, "/readPoints", loaded.key_b).json() == [SITE_A]
    assert _get(loaded, "/bizLocations", loaded.key_b).json() == [SITE_B]
    assert _get(loaded, "/bizLocations", loaded.key_a).json() == [SITE_A]
    site_a = quote(SITE_A, safe="")
    assert loaded.ids(f"/readPoints/{site_a}/events") == [eid(1), eid(3)]
    assert loaded.ids(f"/readPoints/{site_a}/events", key=loaded.key_b) == [eid(3)]
    assert loaded.ids(f"/bizLocations/{quote(SITE_B, safe='')}/events", EQ_bizStep="receiving") == [
        eid(4)
    ]
    assert _get(loaded, f"/readPoints/{site_a}").json() == ["events"]


@pytest.mark.parametrize("walk_share", [0.01, 1.0])  # A's codes by walking or from its events
def test_codes_listed_in_pages(
    loaded: Api, walk_share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "WALK_SHARE", walk_share)
    every = [sgtin(f"S{n}") for n in range(1, 6)] + [SSCC]
    expected = sorted(every, key=canonical_key)  # in key order, as EPC URIs
    assert _get(loaded, "/epcs").json() == expected
    assert _all_pages(loaded, "/epcs", perPage=2) == expected
    first = _get(loaded, "/epcs", perPage=2)
    assert first.headers["link"].endswith('; rel="next"')
    assert len(first.json()) == 2
    # A sees its own site's events: the packs it commissioned and the case it shipped
    assert set(_all_pages(loaded, "/epcs", loaded.key_a, perPage=1)) == {
        sgtin("S1"),
        sgtin("S2"),
        SSCC,
    }
    assert _get(loaded, f"/epcs/{quote(SSCC, safe='')}").json() == ["events"]
    assert loaded.ids(f"/epcs/{quote(SSCC, safe='')}/events") == [eid(2), eid(3), eid(4)]


def test_bad_page_tokens_are_problems(loaded: Api) -> None:
    garbage = loaded.client.get("/epcs", params={"nextPageToken": "!!!"}, headers=loaded.headers())
    assert_problem(garbage, 400, "QueryParameterException", "nextPageToken")
    token = _get(loaded, "/bizLocations", perPage=1).headers["link"].split("nextPageToken=")[1]
    token = token.split(">")[0].split("&")[0]
    other = loaded.client.get("/epcs", params={"nextPageToken": token}, headers=loaded.headers())
    assert_problem(other, 400, "QueryParameterException", "not a page token of /epcs")
    too_many = loaded.client.get("/readPoints", params={"perPage": 0}, headers=loaded.headers())
    assert too_many.status_code == 400
    assert loaded.client.get("/readPoints").status_code == 401


def test_discovery(api: Api) -> None:
    root = api.client.get("/")
    assert root.status_code == 200
    assert {"events", "epcs", "bizSteps", "queries", "capture"} <= set(root.json())
    options = api.client.options("/")
    assert options.status_code == 204
    assert options.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert int(options.headers["GS1-EPCIS-Capture-Limit"]) > 0


def test_event_type_sub_resources(loaded: Api) -> None:
    assert _get(loaded, "/eventTypes/ObjectEvent").json() == ["events"]
    assert_problem(
        loaded.client.get("/eventTypes/Nope", headers=loaded.headers()),
        404,
        "NoSuchResourceException",
        "Nope",
    )
    twice = loaded.client.get(
        "/eventTypes/ObjectEvent/events",
        params={"eventType": "AggregationEvent"},
        headers=loaded.headers(),
    )
    assert_problem(twice, 400, "QueryParameterException", "eventType")


# ── named queries ────────────────────────────────────────────────────────────────────────────
def _save(api: Api, name: str, query: dict[str, Any], key: str | None = None) -> Any:
    return api.client.post(
        "/queries", json={"name": name, "query": query}, headers=api.headers(key)
    )


def test_named_query_saved_run_listed_and_deleted(loaded: Api) -> None:
    saved = _save(loaded, "inbound", {"EQ_bizStep": "receiving"}, loaded.key_b)
    assert saved.status_code == 201, saved.text
    assert saved.headers["location"] == "/queries/inbound"
    body = saved.json()
    assert body["query"] == {"EQ_bizStep": ["receiving"]}
    assert body["events"] == "/queries/inbound/events" and body["createdAt"].endswith("Z")
    assert loaded.ids("/queries/inbound/events", key=loaded.key_b) == [eid(4)]
    # A has its own name space, and its query shows only what A may see
    assert _save(loaded, "inbound", {"EQ_bizStep": "receiving"}, loaded.key_a).status_code == 201
    assert loaded.ids("/queries/inbound/events", key=loaded.key_a) == []
    again = _save(loaded, "inbound", {"EQ_bizStep": "shipping"}, loaded.key_b)
    assert_problem(again, 409, "ValidationException", "inbound", "exists")
    assert [q["name"] for q in _get(loaded, "/queries", loaded.key_b).json()] == ["inbound"]
    assert _get(loaded, "/queries").json() == []  # the regulator's name space is apart
    assert _get(loaded, "/queries/inbound", loaded.key_b).json()["query"] == body["query"]
    gone = loaded.client.delete("/queries/inbound", headers=loaded.headers(loaded.key_b))
    assert gone.status_code == 204
    for response in (
        loaded.client.delete("/queries/inbound", headers=loaded.headers(loaded.key_b)),
        loaded.client.get("/queries/inbound", headers=loaded.headers(loaded.key_b)),
        loaded.client.get("/queries/inbound/events", headers=loaded.headers(loaded.key_b)),
    ):
        assert_problem(response, 404, "NoSuchResourceException", "inbound")
    assert loaded.ids("/queries/inbound/events", key=loaded.key_a) == []  # A's is still there
    with loaded.engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action, audit_log.c.target)).all()
        assert not verify_audit_chain(conn).problems
    assert actions.count(("query.save", "inbound")) == 2
    assert actions.count(("query.delete", "inbound")) == 1


def test_named_query_values_paging_and_xml(loaded: Api) -> None:
    saved = _save(loaded, "all-but-declared", {"EXISTS_errorDeclaration": False})
    assert saved.json()["query"] == {"EXISTS_errorDeclaration": ["false"]}
    assert _all_pages(loaded, "/queries/all-but-declared/events", perPage=2) == [
        eid(n) for n in range(1, 7)
    ]
    assert (
        _save(loaded, "two", {"eventCountLimit": 2, "eventType": ["ObjectEvent"]}).status_code
        == 201
    )
    assert loaded.ids("/queries/two/events") == [eid(1), eid(3)]
    as_xml = loaded.client.get(
        "/queries/two/events", headers=loaded.headers(Accept="application/xml")
    )
    assert as_xml.status_code == 200 and as_xml.headers["content-type"] == "application/xml"
    assert as_xml.content.count(b"<ObjectEvent>") == 2
    assert b"<queryName>two</queryName>" in as_xml.content
    as_json = _get(loaded, "/queries/two/events").json()
    assert as_json["epcisBody"]["queryResults"]["queryName"] == "two"
    narrowed = loaded.client.get(
        "/queries/two/events", params={"EQ_action": "ADD"}, headers=loaded.headers()
    )
    assert_problem(narrowed, 400, "QueryParameterException", "EQ_action", "perPage")


def test_bad_named_queries_are_refused_with_their_place(loaded: Api) -> None:
    cases = [
        ("x", {"EQ_colour": "red"}, "/query/EQ_colour"),
        ("x", {"GE_eventTime": "yesterday"}, "/query/GE_eventTime"),
        ("x", {"perPage": 5}, "/query/perPage"),
        ("x", {"EQ_bizStep": {"nested": 1}}, "/query/EQ_bizStep"),
        ("x", {"EQ_bizStep": []}, "/query/EQ_bizStep"),
        ("a/b", {}, "/name"),
        ("", {}, "/name"),
        ("x" * 101, {}, "/name"),
        ("SimpleEventQuery", {}, "/name"),
    ]
    for name, query, place in cases:
        assert_problem(_save(loaded, name, query), 400, "ValidationException", place)
    missing = loaded.client.post("/queries", json={"name": "x"}, headers=loaded.headers())
    assert missing.status_code == 400 and "query" in missing.text
    assert loaded.client.post("/queries", json={"name": "x", "query": {}}).status_code == 401
    assert _get(loaded, "/queries").json() == []  # nothing half-saved


# ── subscriptions (webhooks) ─────────────────────────────────────────────────────────────────
class Receiver:
    """A webhook receiver on loopback: keeps every POST; answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.posts: list[tuple[int, dict[str, str], bytes]] = []  # (answered, headers, body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((receiver.status, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/epcis-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[str]:
        """eventIDs of the accepted deliveries, in order."""
        out = []
        for status, _, body in self.posts:
            if status == 200:
                results = orjson.loads(body)["epcisBody"]["queryResults"]
                out += [e["eventID"] for e in results["resultsBody"]["eventList"]]
        return out

    def wait(self, count: int, seconds: float = 20.0) -> None:
        """Until at least ``count`` POSTs have arrived."""
        deadline = time.monotonic() + seconds
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"{len(self.posts)} of {count} deliveries came"
            time.sleep(0.05)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A webhook endpoint on loopback, which the server posts to only when told it may."""
    monkeypatch.setenv("YAOLIAN_WEBHOOK_HOSTS", "127.0.0.1")
    hook = Receiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def _subscribe(api: Api, query: str, key: str | None = None, **body: Any) -> Any:
    return api.client.post(
        f"/queries/{query}/subscriptions", json={"stream": True, **body}, headers=api.headers(key)
    )


def _settle(api: Api) -> None:
    """Run delivery rounds here until none is due and none is under way (the dispatcher thread
    may hold one: the receiver has its POST before the thread records the answer)."""
    webhooks = api.client.app.state.webhooks  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20

    def busy() -> bool:
        with api.engine.connect() as conn:
            leased = conn.execute(
                select(func.count()).where(subscription.c.lease_until_us.is_not(None))
            ).scalar_one()
        return bool(leased) or bool(due(api.engine))

    while busy():
        assert time.monotonic() < deadline, "deliveries did not settle"
        webhooks.run_once()
        time.sleep(0.05)


def test_subscription_streams_new_matching_visible_events(api: Api, receiver: Receiver) -> None:
    assert (
        _save(api, "moves", {"EQ_bizStep": ["shipping", "receiving"]}, api.key_b).status_code == 201
    )
    made = _subscribe(api, "moves", api.key_b, dest=receiver.url, signatureToken="s3cret")
    assert made.status_code == 201, made.text
    sub = made.json()
    assert made.headers["location"] == f"/queries/moves/subscriptions/{sub['subscriptionID']}"
    assert (sub["stream"], sub["signed"], sub["deliveredEvents"]) == (True, True, 0)
    assert "s3cret" not in made.text
    api.capture(document(chain_events()))
    receiver.wait(1)
    _settle(api)
    # B sees the shipping to it and its own receipt; A's commissioning and packing stay hidden
    assert receiver.delivered() == [eid(3), eid(4)]
    answered, headers, body = receiver.posts[0]
    assert answered == 200
    assert headers["Content-Type"] == "application/ld+json"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["GS1-Signature"] == expected
    results = orjson.loads(body)["epcisBody"]["queryResults"]
    assert (results["queryName"], results["subscriptionID"]) == ("moves", sub["subscriptionID"])
    api.capture(document(chain_events()))  # all duplicates: nothing new to send
    later = _event(8, "ObjectEvent", 9, 10, action="OBSERVE", epcList=[sgtin("S9")])
    later |= {"bizStep": "receiving", "bizLocation": {"id": SITE_B}}
    api.capture(document([later]))
    receiver.wait(2)
    _settle(api)
    assert receiver.delivered() == [eid(3), eid(4), eid(8)]  # each once, in stored order
    state = _get(api, f"/queries/moves/subscriptions/{sub['subscriptionID']}", api.key_b).json()
    assert (state["deliveredEvents"], state["failures"], state["lastError"]) == (3, 0, None)
    assert state["lastDeliveryAt"].endswith("Z")
    assert [
        s["subscriptionID"] for s in _get(api, "/queries/moves/subscriptions", api.key_b).json()
    ] == [sub["subscriptionID"]]


def test_failed_deliveries_are_retried_with_the_same_events(api: Api, receiver: Receiver) -> None:
    assert _save(api, "all", {}).status_code == 201
    sub = _subscribe(api, "all", dest=receiver.url).json()
    receiver.status = 503
    api.capture(document(chain_events()[:3]))
    receiver.wait(1)
    _settle(api)
    state = _get(api, f"/queries/all/subscriptions/{sub['subscriptionID']}").json()
    assert state["failures"] >= 1 and "503" in state["lastError"]
    assert state["deliveredEvents"] == 0
    receiver.status = 200
    deadline = time.monotonic() + 30  # the retry comes after a pause of a few seconds
    while not receiver.delivered():
        assert time.monotonic() < deadline, "no retry came"
        time.sleep(0.1)
    _settle(api)
    assert receiver.delivered() == [eid(1), eid(2), eid(3)]
    state = _get(api, f"/queries/all/subscriptions/{sub['subscriptionID']}").json()
    assert (state["failures"], state["lastError"], state["deliveredEvents"]) == (0, None, 3)


def test_initial_record_time_unsubscribe_and_revoked_keys(api: Api, receiver: Receiver) -> None:
    api.capture(document(chain_events()))
    assert _save(api, "shipped", {"EQ_bizStep": "shipping"}, api.key_a).status_code == 201
    sub = _subscribe(
        api, "shipped", api.key_a, dest=receiver.url, initialRecordTime="2000-01-01T00:00:00Z"
    ).json()
    assert sub["initialRecordTime"] == "2000-01-01T00:00:00.000Z"
    receiver.wait(1)
    assert receiver.delivered() == [eid(3)]  # stored before the subscription, recorded since
    gone = api.client.delete(
        f"/queries/shipped/subscriptions/{sub['subscriptionID']}", headers=api.headers(api.key_a)
    )
    assert gone.status_code == 204
    ship = _event(9, "ObjectEvent", 9, 10, action="OBSERVE", epcList=[sgtin("S9")])
    api.capture(document([ship | {"bizStep": "shipping", "readPoint": {"id": SITE_A}}]))
    _settle(api)
    assert len(receiver.posts) == 1  # nothing after the end of the subscription
    # a subscription made by a key that is revoked later delivers nothing more
    again = _subscribe(api, "shipped", api.key_a, dest=receiver.url).json()
    revoke_key(api.engine, api.key_a.split("_")[1])
    ship2 = _event(10, "ObjectEvent", 9, 11, action="OBSERVE", epcList=[sgtin("S9")])
    api.capture(document([ship2 | {"bizStep": "shipping", "readPoint": {"id": SITE_A}}]))
    webhooks = api.client.app.state.webhooks  # type: ignore[attr-defined]
    webhooks.run_once()
    with api.engine.connect() as conn:
        error = conn.execute(
            select(subscription.c.last_error).where(
                subscription.c.subscription_id == again["subscriptionID"]
            )
        ).scalar_one()
    assert error is not None and "revoked" in error
    assert len(receiver.posts) == 1
    with api.engine.connect() as conn:
        actions = [a for (a,) in conn.execute(select(audit_log.c.action))]
    assert actions.count("subscription.create") == 2 and "subscription.delete" in actions


def test_bad_subscriptions_are_refused(api: Api, receiver: Receiver) -> None:
    assert _save(api, "q", {}).status_code == 201
    cases = [
        ({"dest": "ftp://example.org/x"}, "/dest"),
        ({"dest": "not a url"}, "/dest"),
        ({"dest": receiver.url, "initialRecordTime": "yesterday"}, "/initialRecordTime"),
        ({"dest": receiver.url, "signatureToken": ""}, "/signatureToken"),
    ]
    for body, place in cases:
        assert_problem(_subscribe(api, "q", **body), 400, "ValidationException", place)
    controls = [
        ({"stream": False}, "/stream"),  # neither a stream nor a schedule
        ({"schedule": {"minute": "5"}}, "/schedule"),  # both (the helper says stream)
        ({"reportIfEmpty": True}, "/reportIfEmpty"),  # a stream has no empty runs
        ({"stream": None, "schedule": {"minute": "5-9"}}, "/schedule/minute"),
        ({"stream": None, "schedule": {"dayOfMonth": "30", "month": "2"}}, "/schedule"),
    ]
    for body, place in controls:
        refused = _subscribe(api, "q", dest=receiver.url, **body)
        assert_problem(refused, 400, "SubscriptionControlsException", place)
    missing = _subscribe(api, "nope", dest=receiver.url)
    assert_problem(missing, 404, "NoSuchResourceException", "nope")
    foreign = _subscribe(api, "q", api.key_a, dest=receiver.url)  # the regulator's query
    assert_problem(foreign, 404, "NoSuchResourceException")
    assert _get(api, "/queries/q/subscriptions").json() == []
    made = _subscribe(api, "q", dest=receiver.url).json()
    assert api.client.delete("/queries/q", headers=api.headers()).status_code == 204
    assert_problem(
        api.client.get(f"/queries/q/subscriptions/{made['subscriptionID']}", headers=api.headers()),
        404,
        "NoSuchResourceException",
    )
    with api.engine.connect() as conn:  # deleting the query ended its subscriptions
        assert conn.execute(select(func.count()).select_from(subscription)).scalar_one() == 0


def _next_cst(hour: int, now: datetime) -> set[str]:
    """The next hh:00:00 China Standard Time after ``now`` as the API writes it (two answers
    when ``now`` is within a second of that time)."""
    cst = timezone(timedelta(hours=8))
    out = set()
    for moment in (now, now + timedelta(seconds=1)):
        local = moment.astimezone(cst)
        at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
        if at <= local:
            at += timedelta(days=1)
        out.add(at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    return out


def _run_now(api: Api, subscription_id: str) -> None:
    """Bring a scheduled subscription's query time to now (as if the clock had got there)."""
    with api.engine.begin() as conn:
        conn.execute(
            subscription.update()
            .where(subscription.c.subscription_id == subscription_id)
            .values(next_run_us=time.time_ns() // 1000 - 1)
        )


def test_scheduled_subscription_sends_what_was_stored_since_the_last_run(
    api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = {"EQ_bizStep": ["shipping", "receiving"]}
    assert _save(api, "daily", moves, api.key_b).status_code == 201
    nightly = {"second": "0", "minute": "0", "hour": "3"}  # 03:00 in Beijing
    before = datetime.now(UTC)
    made = _subscribe(api, "daily", api.key_b, dest=receiver.url, stream=None, schedule=nightly)
    assert made.status_code == 201, made.text
    sub = made.json()
    assert (sub["stream"], sub["schedule"], sub["reportIfEmpty"]) == (False, nightly, False)
    assert sub["nextRunAt"] in _next_cst(3, before)
    api.capture(document(chain_events()))
    _settle(api)
    assert receiver.posts == []  # stored, but the query time has not come
    monkeypatch.setattr(webhooks_module, "DELIVERY_BATCH", 1)  # B sees two: two batches
    _run_now(api, sub["subscriptionID"])
    ran = datetime.now(UTC)
    receiver.wait(2)  # the dispatcher thread or _settle runs it (a failed try comes again)
    _settle(api)
    assert receiver.delivered() == [eid(3), eid(4)]  # B's view, in stored order, one run
    assert len(receiver.posts) == 2
    path = f"/queries/daily/subscriptions/{sub['subscriptionID']}"
    state = _get(api, path, api.key_b).json()
    assert state["deliveredEvents"] == 2 and state["nextRunAt"] in _next_cst(3, ran)
    _run_now(api, sub["subscriptionID"])  # a run with nothing new sends nothing
    _settle(api)
    assert len(receiver.posts) == 2
    assert _get(api, path, api.key_b).json()["nextRunAt"] in _next_cst(3, ran)


def test_scheduled_subscription_reports_empty_runs_when_asked(api: Api, receiver: Receiver) -> None:
    assert _save(api, "sales", {"EQ_bizStep": "retail_selling"}).status_code == 201
    made = _subscribe(
        api,
        "sales",
        dest=receiver.url,
        stream=False,
        schedule={"second": "0", "minute": "0,30"},
        reportIfEmpty=True,
    ).json()
    assert made["reportIfEmpty"] is True and made["lastDeliveryAt"] is None
    api.capture(document(chain_events()))  # no sale among them
    _run_now(api, made["subscriptionID"])
    receiver.wait(1)  # the dispatcher thread or _settle runs it (a failed try comes again)
    _settle(api)
    state = _get(api, f"/queries/sales/subscriptions/{made['subscriptionID']}").json()
    assert len(receiver.posts) == 1, state
    answered, _, body = receiver.posts[0]
    results = orjson.loads(body)["epcisBody"]["queryResults"]
    assert answered == 200 and results["resultsBody"]["eventList"] == []
    assert (results["queryName"], results["subscriptionID"]) == ("sales", made["subscriptionID"])
    assert state["deliveredEvents"] == 0 and state["lastDeliveryAt"] is not None
    next_run = datetime.fromisoformat(state["nextRunAt"])
    assert next_run > datetime.now(UTC) and next_run.minute in (0, 30)
    assert next_run.second == 0


def test_a_claim_checks_the_subscription_is_still_due(api: Api, receiver: Receiver) -> None:
    """Two dispatchers may list the same due subscription; the one that claims it after the
    other has run it gets nothing (no second run before the next query time, no retry before
    the pause is over)."""
    api.client.app.state.webhooks.stop()  # type: ignore[attr-defined]  # this test claims
    assert _save(api, "all", {}).status_code == 201
    made = _subscribe(
        api, "all", dest=receiver.url, stream=False, schedule={"second": "0", "minute": "0"}
    ).json()
    with api.engine.connect() as conn:
        sub_id = conn.execute(
            select(subscription.c.id).where(
                subscription.c.subscription_id == made["subscriptionID"]
            )
        ).scalar_one()
    assert claim(api.engine, sub_id) is None  # its query time has not come
    _run_now(api, made["subscriptionID"])
    claimed = claim(api.engine, sub_id)
    assert claimed is not None and claimed.schedule is not None
    assert claim(api.engine, sub_id) is None  # taken
    delivered(api.engine, claimed, 0, 0, caught_up=True)
    assert claim(api.engine, sub_id) is None  # run: the next query time is an hour away
    _run_now(api, made["subscriptionID"])
    again = claim(api.engine, sub_id)
    assert again is not None
    failed(api.engine, again, "HTTP 503")
    assert claim(api.engine, sub_id) is None  # pausing after the failure


def _streamed(message: dict[str, Any]) -> list[str]:
    return [e["eventID"] for e in message["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]


def test_websocket_streams_a_named_query(api: Api) -> None:
    saved = _save(api, "moves", {"EQ_bizStep": ["shipping", "receiving"]}, api.key_b)
    assert saved.status_code == 201
    with api.client.websocket_connect(
        "/queries/moves/events", headers={"X-API-Key": api.key_b}
    ) as socket:
        api.capture(document(chain_events()))
        first = socket.receive_json()
        assert first["epcisBody"]["queryResults"]["queryName"] == "moves"
        assert _streamed(first) == [eid(3), eid(4)]  # B's view, as stored
        later = _event(8, "ObjectEvent", 9, 10, action="OBSERVE", epcList=[sgtin("S9")])
        api.capture(document([later | {"bizStep": "receiving", "bizLocation": {"id": SITE_B}}]))
        assert _streamed(socket.receive_json()) == [eid(8)]
    since = "2000-01-01T00:00:00+00:00"
    with api.client.websocket_connect(
        f"/queries/moves/events?initialRecordTime={quote(since)}",
        headers={"Authorization": f"Bearer {api.key_b}"},
    ) as socket:
        assert _streamed(socket.receive_json()) == [eid(3), eid(4), eid(8)]


def test_websocket_runs_a_scheduled_query(api: Api) -> None:
    assert _save(api, "moves", {"EQ_bizStep": ["shipping", "receiving"]}, api.key_b).status_code
    every_second = "hour=%5B0-23%5D&reportIfEmpty=true"  # hour=[0-23]: each second is a run
    with api.client.websocket_connect(
        f"/queries/moves/events?{every_second}", headers={"X-API-Key": api.key_b}
    ) as socket:
        first = socket.receive_json()
        assert first["epcisBody"]["queryResults"]["queryName"] == "moves"
        assert _streamed(first) == []  # a run that found nothing, reported as asked
        api.capture(document(chain_events()))
        runs = [_streamed(socket.receive_json()) for _ in range(2)]
        while not any(runs) and len(runs) < 20:  # empty runs until the capture is stored
            runs.append(_streamed(socket.receive_json()))
        assert [eid(3), eid(4)] in runs  # B's view, in stored order, in one run


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/queries/moves/events", {}),  # no key
        ("/queries/nope/events", None),  # no such query
        ("/queries/moves/events?initialRecordTime=yesterday", None),
        ("/queries/moves/events?stream=true&minute=5", None),  # both a stream and a schedule
        ("/queries/moves/events?minute=%5B5-1%5D", None),  # a range running backwards
        ("/queries/moves/events?reportIfEmpty=true", None),  # a stream has no empty runs
        ("/queries/mo%00ves/events", None),
    ],
)
def test_websocket_refusals_close_the_socket(
    api: Api, path: str, headers: dict[str, str] | None
) -> None:
    assert _save(api, "moves", {}).status_code == 201
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        api.client.websocket_connect(
            path, headers=headers if headers is not None else {"X-API-Key": api.regulator}
        ) as socket,
    ):
        socket.receive_json()
    assert closed.value.code == 1008


def test_webhook_hosts_can_be_limited(
    api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YAOLIAN_WEBHOOK_HOSTS", "127.0.0.1, .example.cn")
    assert check_dest("https://erp.example.cn/hook")  # a host of the allowed domain
    assert _save(api, "all", {}).status_code == 201
    assert _subscribe(api, "all", dest=receiver.url).status_code == 201
    for refused in ("https://evil.org/hook", "https://example.cn.evil.org/hook"):
        assert_problem(
            _subscribe(api, "all", dest=refused), 400, "ValidationException", "posts webhooks only"
        )
    monkeypatch.setenv("YAOLIAN_WEBHOOK_HOSTS", ".example.cn")  # loopback no longer allowed
    api.capture(document(chain_events()[:1]))
    _settle(api)
    assert receiver.posts == []
    (state,) = _get(api, "/queries/all/subscriptions").json()
    assert state["failures"] >= 1 and "only to .example.cn" in state["lastError"]


def test_webhooks_go_to_public_hosts_only_by_default(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without YAOLIAN_WEBHOOK_HOSTS a key cannot make the server call inside its own network:
    loopback, private, link-local (cloud metadata) and reserved addresses are refused when
    subscribing, and a name is looked up again at each delivery."""
    monkeypatch.delenv("YAOLIAN_WEBHOOK_HOSTS", raising=False)
    assert _save(api, "all", {}).status_code == 201
    for inner in (
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ):
        assert_problem(
            _subscribe(api, "all", dest=inner), 400, "ValidationException", "not a public host"
        )
    assert _subscribe(api, "all", dest="https://erp.example.cn/hook").status_code == 201

    def resolves_to(address: str) -> Any:
        return lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("10.0.0.7"))  # DNS points inside
    with pytest.raises(ValidationError, match="not a public host"):
        check_dest("https://erp.example.cn/hook", resolve=True)
    monkeypatch.setattr(socket, "getaddrinfo", resolves_to("203.119.25.1"))
    assert check_dest("https://erp.example.cn/hook", resolve=True)
