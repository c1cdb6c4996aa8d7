"""Supply API end to end over HTTP (FastAPI TestClient) on both databases, and a reserve
dispatch captured through the store so it shows in the event log and the ledger."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from test_supply import DC, FACTORY, HOSP, P1, USCC, chain, setup_sites, store
from yaolian.api.app import create_app
from yaolian.store.access import create_key
from yaolian.store.masterdata import upsert_enterprise, upsert_product, upsert_site, uscc_check_char
from yaolian.store.schema import event, event_biz_tx, supply_offer, supply_stock_count

OTHER = "91310000200000000" + uscc_check_char("91310000200000000")  # another pharmacy chain
OTHER_SITE = "urn:epc:id:sgln:6909999.00001.0"


def client(db_url: str, engine: Engine) -> tuple[TestClient, dict[str, str]]:
    key = create_key(engine, None, "regulator", "supply tests")
    return TestClient(create_app(db_url)), {"Authorization": f"Bearer {key}"}


def test_supply_api_end_to_end(db_url: str, engine: Engine) -> None:
    setup_sites(engine)
    store(engine, chain())
    http, auth = client(db_url, engine)
    assert http.get("/supply/stock").status_code == 401
    stock = http.get("/supply/stock", headers=auth).json()["stock"]
    assert {(s["site"], s["on_hand"], s["net_packs"]) for s in stock} >= {
        (DC, 3.0, 3.0),
        (HOSP, 1.0, 1.0),
    }
    cons = http.get(
        "/supply/consumption",
        headers=auth,
        params={"start": "2026-01-01", "end": "2026-01-31", "period": "week"},
    )
    assert cons.status_code == 200 and sum(r["consumed"] for r in cons.json()["consumption"]) == 3
    bad = http.get("/supply/consumption", headers=auth, params={"start": "x", "end": "y"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    filed = http.post(
        "/supply/discontinuations",
        headers=auth,
        json={
            "product": P1,
            "holder": USCC,
            "filed_on": "2026-01-10",
            "stop_date": "2026-02-01",
            "reason": "原料药短缺",
            "remaining_packs": 0,
        },
    )
    assert filed.status_code == 201
    listed = http.get("/supply/discontinuations", headers=auth).json()["discontinuations"]
    assert listed[0]["product"] == P1
    assert listed[0]["filed_at"] == "2026-01-10T00:00:00+08:00"  # the filing's date, not now
    undated = http.post(
        "/supply/discontinuations",
        headers=auth,
        json={"product": P1, "holder": USCC, "stop_date": "2026-02-01", "reason": "x"},
    )
    assert undated.status_code == 400
    negative = http.post(
        "/supply/discontinuations",
        headers=auth,
        json={
            "product": P1,
            "holder": USCC,
            "filed_on": "2026-01-10",
            "stop_date": "2026-02-01",
            "reason": "x",
            "remaining_packs": -1,
        },
    )
    assert negative.status_code == 400
    # a date the store could not read back (0001-01-01 China time is year 0 in UTC): refused at
    # the door, not stored to break every later read of the reports (found by schemathesis)
    ancient = http.post(
        "/supply/discontinuations",
        headers=auth,
        json={
            "product": P1,
            "holder": USCC,
            "filed_on": "0001-01-01",
            "stop_date": "2026-02-01",
            "reason": "x",
            "remaining_packs": 1,
        },
    )
    assert ancient.status_code == 400
    assert ancient.json()["detail"].startswith("filed_on: ")
    assert http.get("/supply/discontinuations", headers=auth).status_code == 200
    ancient_count = http.post(
        "/supply/stocktakes",
        headers=auth,
        json={"site": DC, "counted_at": "0001-01-01T00:00:00+08:00", "counts": {P1: 1}},
    )
    assert ancient_count.status_code == 400 and "counted_at" in ancient_count.text
    counted = http.post(
        "/supply/stocktakes",
        headers=auth,
        json={"site": DC, "counted_at": "2026-01-09T12:00:00+08:00", "counts": {P1: 2}},
    )
    assert counted.status_code == 201
    assert [(x["book"], x["difference"]) for x in counted.json()["stocktakes"]] == [(3.0, -1.0)]
    differences = http.get("/supply/stocktakes", headers=auth, params={"differences": True})
    assert [x["product"] for x in differences.json()["stocktakes"]] == [P1]
    naive = http.post(
        "/supply/stocktakes",
        headers=auth,
        json={"site": DC, "counted_at": "2026-01-09T12:00:00", "counts": {P1: -1}},
    )
    assert naive.status_code == 400
    assert {e["place"].split("/")[-1] for e in naive.json()["errors"]} >= {"counted_at"}
    too_long = http.post(  # PostgreSQL answered 500 (value too long for varchar(20))
        "/supply/stocktakes",
        headers=auth,
        json={"site": DC, "counted_at": "2026-01-09T12:00:00+08:00", "counts": {"9" * 21: 1}},
    )
    assert too_long.status_code == 400 and "counts" in too_long.json()["errors"][0]["place"]
    warn = http.get("/supply/warnings", headers=auth, params={"as_of": "2026-01-20"})
    assert warn.status_code == 200 and isinstance(warn.json()["warnings"], list)
    assert (
        http.post(
            "/supply/demands",
            headers=auth,
            json={"site": HOSP, "product": P1, "quantity": 5, "needed_by": "2026-03-01"},
        ).status_code
        == 201
    )
    assert (
        http.post(
            "/supply/offers",
            headers=auth,
            json={
                "site": DC,
                "product": P1,
                "quantity": 3,
                "available_from": "2026-02-01",
                "expiry": "2027-01-01",
            },
        ).status_code
        == 201
    )
    matches = http.get("/supply/matches", headers=auth).json()
    assert matches["matches"][0]["quantity"] == 3 and list(matches["unmet"].values()) == [2.0]


def test_reserve_dispatch_is_an_event(db_url: str, engine: Engine) -> None:
    setup_sites(engine)
    store(engine, chain())
    http, auth = client(db_url, engine)
    plan = http.post(
        "/reserves",
        headers=auth,
        json={"product": P1, "level": "provincial", "target": 5, "site": DC},
    )
    assert plan.status_code == 201
    status = http.get("/reserves", headers=auth).json()["reserves"][0]
    assert status["on_hand"] == 3.0 and status["status"] == "short"
    too_many = http.post(
        f"/reserves/{plan.json()['id']}/dispatch", headers=auth, json={"to_site": HOSP, "packs": 10}
    )
    assert too_many.status_code == 400
    order = http.post(
        f"/reserves/{plan.json()['id']}/dispatch", headers=auth, json={"to_site": HOSP, "packs": 2}
    )
    assert order.status_code == 201, order.text
    with engine.connect() as conn:
        step = conn.execute(
            select(event.c.biz_step)
            .join(event_biz_tx, event_biz_tx.c.event_id == event.c.id)
            .where(event_biz_tx.c.value == order.json()["order_no"])
        ).scalar_one()
    assert step == "shipping"
    after = http.get("/reserves", headers=auth).json()["reserves"][0]
    assert after["on_hand"] == 1.0
    (listed,) = http.get(f"/reserves/{plan.json()['id']}/dispatches", headers=auth).json()[
        "dispatches"
    ]
    assert listed["order_no"] == order.json()["order_no"]
    # the order row and the audit entry were written in the shipping event's transaction
    (entry,) = http.get("/audit", headers=auth, params={"action": "reserve.dispatch"}).json()[
        "entries"
    ]
    assert entry["detail"] == order.json() and entry["target"] == str(plan.json()["id"])


def test_enterprise_keys_see_and_speak_for_their_own_sites(db_url: str, engine: Engine) -> None:
    setup_sites(engine)  # USCC: the factory, the distribution centre and the hospital
    with engine.begin() as conn:
        upsert_enterprise(conn, OTHER, "别家药房", "pharmacy", region="310000")
        upsert_site(conn, OTHER_SITE, OTHER, "别家药房一店", kind="pharmacy", region="310000")
        upsert_product(conn, P1, "阿莫西林胶囊", holder_uscc=USCC)
    store(engine, chain())
    http = TestClient(create_app(db_url))
    keys = {
        who: {"Authorization": f"Bearer {create_key(engine, uscc, role, who)}"}
        for who, uscc, role in (
            ("mine", USCC, "enterprise"),
            ("theirs", OTHER, "enterprise"),
            ("regulator", None, "regulator"),
        )
    }

    def get(who: str, path: str, **params: object) -> dict[str, Any]:
        answer = http.get(path, headers=keys[who], params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def post(who: str, path: str, body: dict[str, Any]) -> Any:
        return http.post(path, headers=keys[who], json=body)

    def refused(answer: Any, place: str) -> None:
        assert answer.status_code == 403, answer.text
        assert answer.json()["type"] == "epcisException:SecurityException"
        assert answer.json()["detail"].startswith(place)

    # reads: per-site figures of one's own sites; regional ones are shared
    assert {x["site"] for x in get("mine", "/supply/stock")["stock"]} >= {DC, HOSP}
    assert get("theirs", "/supply/stock")["stock"] == []
    period = {"start": "2026-01-01", "end": "2026-01-31"}
    assert get("mine", "/supply/consumption", **period)["consumption"]
    assert get("theirs", "/supply/consumption", **period)["consumption"] == []
    regional = get("theirs", "/supply/consumption", **period, by_site=False)["consumption"]
    assert sum(r["consumed"] for r in regional) == 3
    assert get("theirs", "/supply/days-of-supply", level="site")["lines"] == []
    assert get("mine", "/supply/days-of-supply", level="site")["lines"]
    assert get("theirs", "/supply/days-of-supply", level="region")["lines"]

    # writes for someone else's site or enterprise: 403, nothing stored
    count = {"site": DC, "counted_at": "2026-01-09T12:00:00+08:00", "counts": {P1: 2}}
    refused(post("theirs", "/supply/stocktakes", count), "/site")
    offer = {"site": DC, "product": P1, "quantity": 3, "available_from": "2026-02-01"}
    refused(post("theirs", "/supply/offers", offer), "/site")
    demand = {"site": HOSP, "product": P1, "quantity": 5, "needed_by": "2026-03-01"}
    refused(post("theirs", "/supply/demands", demand), "/site")
    with engine.connect() as conn:
        assert conn.execute(select(supply_stock_count)).all() == []
        assert conn.execute(select(supply_offer)).all() == []
    assert post("theirs", "/supply/demands", demand | {"site": OTHER_SITE}).status_code == 201
    assert post("mine", "/supply/stocktakes", count).status_code == 201
    assert len(get("mine", "/supply/stocktakes")["stocktakes"]) == 1
    assert get("theirs", "/supply/stocktakes")["stocktakes"] == []
    assert [d["site"] for d in get("mine", "/supply/demands")["demands"]] == [OTHER_SITE]
    # a product nobody registered nor stocks is a typo, not a post that never matches; one
    # typed in full width (全角) is the product
    unknown = post("theirs", "/supply/demands", demand | {"site": OTHER_SITE, "product": "8385794"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("product: unknown product 8385794")
    wide = demand | {
        "site": OTHER_SITE,
        "product": P1.translate({c: c + 0xFEE0 for c in range(48, 58)}),
    }
    assert post("theirs", "/supply/demands", wide).status_code == 201
    assert [d["product"] for d in get("mine", "/supply/demands")["demands"]] == [P1, P1]
    offered = post("mine", "/supply/offers", offer)
    assert offered.status_code == 201
    close = f"/supply/offers/{offered.json()['id']}/close"
    refused(http.post(close, headers=keys["theirs"]), "post_id")  # not its offer
    assert http.post(close, headers=keys["mine"]).json()["status"] == "closed"
    assert get("theirs", "/supply/offers")["offers"] == []  # off the board
    assert http.post("/supply/offers/999/close", headers=keys["mine"]).status_code == 404
    assert http.post("/supply/bids/1/close", headers=keys["mine"]).status_code == 400
    # what each key is, and the sites it speaks for
    me = get("theirs", "/me")
    assert (me["role"], me["sees_all"], me["enterprise"]["uscc"]) == ("enterprise", False, OTHER)
    assert [x["location_id"] for x in me["sites"]] == [OTHER_SITE]
    assert {x["location_id"] for x in get("mine", "/me")["sites"]} == {DC, HOSP, FACTORY}
    assert get("regulator", "/me") == {
        "role": "regulator",
        "sees_all": True,
        "enterprise": None,
        "sites": [],
    }
    assert http.get("/me").status_code == 401

    # 停产报告: the holder files for its own products, as itself
    report = {"product": P1, "holder": USCC, "filed_on": "2026-01-10"}
    report |= {"stop_date": "2026-02-01", "reason": "原料药短缺", "remaining_packs": 0}
    refused(post("theirs", "/supply/discontinuations", report), "holder")
    refused(post("theirs", "/supply/discontinuations", report | {"holder": OTHER}), "product")
    filed = post("mine", "/supply/discontinuations", report)
    assert filed.status_code == 201
    assert len(get("theirs", "/supply/discontinuations")["discontinuations"]) == 1
    # … and withdraws it when production resumes (恢复生产): its own report only, once, not
    # before it was filed; a withdrawn report is off the list unless asked for
    withdraw = f"/supply/discontinuations/{filed.json()['id']}/withdraw"
    refused(post("theirs", withdraw, {"withdrawn_on": "2026-03-01"}), "holder")
    early = post("mine", withdraw, {"withdrawn_on": "2026-01-09"})
    assert early.status_code == 400 and early.json()["detail"].startswith("withdrawn_on: ")
    done = post("mine", withdraw, {"withdrawn_on": "2026-03-01"})
    assert done.status_code == 200 and done.json()["withdrawn"] is True
    assert done.json()["withdrawn_at"] == "2026-03-01T00:00:00+08:00"
    assert post("mine", withdraw, {"withdrawn_on": "2026-03-02"}).status_code == 400  # again
    assert post("mine", "/supply/discontinuations/999/withdraw", {"withdrawn_on": "2026-03-01"})\
        .status_code == 404  # fmt: skip
    assert get("theirs", "/supply/discontinuations")["discontinuations"] == []
    every = get("theirs", "/supply/discontinuations", withdrawn="true")["discontinuations"]
    assert [d["withdrawn_at"] for d in every] == ["2026-03-01T00:00:00+08:00"]

    # reserves: plans and dispatch orders are the regulators'
    plan = {"product": P1, "level": "provincial", "target": 5, "site": DC}
    refused(post("mine", "/reserves", plan), "Authorization")
    made = post("regulator", "/reserves", plan)
    assert made.status_code == 201
    plan_id = made.json()["id"]
    refused(post("mine", f"/reserves/{plan_id}/dispatch", {"to_site": HOSP, "packs": 1}), "Auth")
    assert [p["site"] for p in get("mine", "/reserves")["reserves"]] == [DC]
    assert get("theirs", "/reserves")["reserves"] == []
    assert get("mine", f"/reserves/{plan_id}/dispatches")["dispatches"] == []
    hidden = http.get(f"/reserves/{plan_id}/dispatches", headers=keys["theirs"])
    assert hidden.status_code == 404
