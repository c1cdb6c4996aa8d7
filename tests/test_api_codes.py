"""Issuing trace codes over HTTP: who may, idempotent per enterprise, print formats, errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from test_api_epcis import A, Api, B, assert_problem, serving
from yaolian.codes.registry import CodeRegistry
from yaolian.store.access import create_key
from yaolian.store.masterdata import upsert_product

HELD_BY_A = "8600001"  # 药品标识码 (rule a, 7 digits)
MADE_BY_B = "8600002"


@pytest.fixture
def api(db_url: str, engine: Engine) -> Iterator[Api]:
    with serving(db_url, engine) as served:
        upsert_product(engine, HELD_BY_A, "阿莫西林胶囊", holder_uscc=A)
        upsert_product(engine, MADE_BY_B, "布洛芬片", manufacturer_uscc=B)
        yield served


def _issue(api: Api, key: str | None, status: int, **body: Any) -> Any:
    body = {"requestId": "line-1/2026-12-07", "product": HELD_BY_A, "quantity": 5, **body}
    response = api.client.post("/codes/issue", json=body, headers=api.headers(key))
    assert response.status_code == status, response.text
    return response.json()


def _refused(
    api: Api, key: str | None, status: int, exception: str, fragment: str, **body: Any
) -> dict[str, Any]:
    body = {"requestId": "x", "product": HELD_BY_A, "quantity": 1, **body}
    response = api.client.post("/codes/issue", json=body, headers=api.headers(key))
    return assert_problem(response, status, exception, fragment)


def test_a_holder_issues_codes_once_per_request_id(api: Api) -> None:
    first = _issue(api, api.key_a, 201, lot="B2612", expiry="2028-11-30")
    assert first["reused"] is False and first["product"]["product_code"] == HELD_BY_A
    codes = [line["code"] for line in first["codes"]]
    assert len(set(codes)) == 5 and [line["seq"] for line in first["codes"]] == list("12345")
    registry = CodeRegistry.for_store(api.engine)
    assert {registry.validate(code).product.product_code for code in codes} == {HELD_BY_A}
    assert first["codes"][0]["lot"] == "B2612" and first["expiry"] == "2028-11-30"
    again = _issue(api, api.key_a, 200, lot="B2612", expiry="2028-11-30")  # a retried request
    assert again["reused"] is True and [line["code"] for line in again["codes"]] == codes
    audit = api.client.get("/audit?action=codes", headers=api.headers(api.key_a)).json()
    assert [(e["action"], e["target"], e["detail"]["quantity"]) for e in audit["entries"]] == [
        ("codes.issue", HELD_BY_A, 5)
    ]
    assert audit["entries"][0]["actor"]["enterprise"] == A
    reprint = api.client.get("/codes/issue/line-1%2F2026-12-07", headers=api.headers(api.key_a))
    assert reprint.status_code == 200 and reprint.json()["codes"] == first["codes"]
    problem = _refused(
        api, api.key_a, 400, "ValidationException", "already used",
        requestId="line-1/2026-12-07", quantity=6,
    )  # fmt: skip
    assert problem["detail"].startswith("/requestId: ")


def test_request_ids_are_each_enterprises_own(api: Api) -> None:
    of_a = _issue(api, api.key_a, 201)
    of_b = _issue(api, api.key_b, 201, product=MADE_BY_B)  # the same id: B's own request
    assert of_b["reused"] is False and of_b["product"]["product_code"] == MADE_BY_B
    assert not {c["code"] for c in of_a["codes"]} & {c["code"] for c in of_b["codes"]}
    assert_problem(
        api.client.get("/codes/issue/nothing-here", headers=api.headers(api.key_a)),
        404,
        "NoSuchResourceException",
    )
    admin = create_key(api.engine, None, "admin", "运维")
    of_admin = _issue(api, admin, 201)  # the operator's namespace
    assert of_admin["reused"] is False


def test_issue_requests_are_listed_newest_first(api: Api) -> None:
    _issue(api, api.key_a, 201, requestId="a-1", lot="B1")
    _issue(api, api.key_a, 201, requestId="a-2", quantity=2)
    _issue(api, api.key_b, 201, requestId="b-1", product=MADE_BY_B)
    mine = api.client.get("/codes/issue", headers=api.headers(api.key_a)).json()["requests"]
    assert [(r["requestId"], r["quantity"], r["issuer"]) for r in mine] == [
        ("a-2", 2, A),
        ("a-1", 5, A),
    ]
    assert mine[1]["lot"] == "B1" and mine[1]["created"].endswith("Z")
    every = api.client.get("/codes/issue?limit=2", headers=api.headers()).json()["requests"]
    assert [r["requestId"] for r in every] == ["b-1", "a-2"]  # a regulator reads them all


def test_who_may_issue(api: Api) -> None:
    problem = _refused(api, api.key_b, 403, "SecurityException", "not held or made")
    assert problem["detail"].startswith("/product: ")
    _refused(api, api.regulator, 403, "SecurityException", "enterprise key")
    unauthenticated = api.client.post(
        "/codes/issue", json={"requestId": "x", "product": HELD_BY_A, "quantity": 1}
    )
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize(
    ("body", "place"),
    [
        ({"product": "8699999"}, "/product"),  # not registered
        ({"quantity": 0}, "/quantity"),
        ({"quantity": 100_001}, "/quantity"),
        ({"lot": "批号"}, "/lot"),  # not GS1 AI 10 characters
        ({"expiry": "2028-02-30"}, "/expiry"),
        ({"colour": "red"}, "/colour"),
    ],
)
def test_bad_requests_name_the_field(api: Api, body: dict[str, Any], place: str) -> None:
    response = api.client.post(
        "/codes/issue",
        json={"requestId": "bad", "product": HELD_BY_A, "quantity": 1, **body},
        headers=api.headers(api.key_a),
    )
    assert response.status_code == 400, response.text
    assert place in response.text, response.text


def test_print_lines_as_csv_and_text(api: Api) -> None:
    response = api.client.post(
        "/codes/issue?format=csv",
        json={"requestId": "csv", "product": HELD_BY_A, "quantity": 3, "lot": "B1"},
        headers=api.headers(api.key_a),
    )
    assert response.status_code == 201 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["seq"] for r in rows] == ["1", "2", "3"] and {r["lot"] for r in rows} == {"B1"}
    assert all(r["barcode_data"] == r["code"] and r["uri"] for r in rows)
    text = api.client.get("/codes/issue/csv?format=txt", headers=api.headers(api.key_a))
    assert text.status_code == 200 and text.text.split() == [r["code"] for r in rows]
