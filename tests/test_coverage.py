"""Trace coverage (追溯覆盖率) and data quality (追溯数据质量) on hand-built chains with known
gaps, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from test_verify import REGULATOR, sell, supply_chain
from yaolian.api.app import create_app
from yaolian.epcis.model import to_epoch_us
from yaolian.errors import ForbiddenError, NotFoundError, ValidationError
from yaolian.store.access import Viewer, create_key
from yaolian.store.masterdata import upsert_site
from yaolian.store.projections import rebuild
from yaolian.store.quality import data_quality
from yaolian.store.tx import write_tx
from yaolian.supply.signals import publish_list
from yaolian.trace.builders import object_event
from yaolian.trace.coverage import CoverageFilter, CoverageRow, coverage


def _chain(w: Any) -> None:
    """8600001: three packs MFR → DIST → PHA in case 1; one sold at PHA, one sold at PHB (never
    received there: custody break and clone), one in stock. 8600004: one pack received at PHA
    that was never commissioned nor shipped, one shipped at hour 60 and never received."""
    codes = supply_chain(w, packs=3)
    sell(w, codes[0], 50, site="PHA")
    sell(w, codes[1], 40.5, site="PHB")
    stray, lost = w.pack(0, "8600004"), w.pack(1, "8600004")
    w.capture(
        w.receive(stray, 45, "PHA"),
        w.commission(lost, 55, lot="I1", expiry="2027-06-30"),
        w.ship(lost, 60, "MFR", "DIST"),
    )
    upsert_site(w.engine, w.sites["PHA"], w.usccs["PHA"], "北京示例大药房", region="110105")
    upsert_site(w.engine, w.sites["PHB"], w.usccs["PHB"], "广州示例大药房", region="440104")


def _report(w: Any, viewer: Viewer = REGULATOR, days_later: float = 30, **flt: Any) -> Any:
    now_us = to_epoch_us((w.T0 + timedelta(days=days_later)).isoformat())
    with w.engine.connect() as conn:
        rows = coverage(conn, viewer, CoverageFilter(**flt), now_us=now_us)
    return {r.product: r for r in rows}


def test_gaps_per_product(trace_world: Any) -> None:
    w = trace_world
    _chain(w)
    report = _report(w)
    assert report["8600001"] == CoverageRow(
        "8600001", "阿莫西林胶囊", packs=3, complete=2, no_origin=0,
        receipt_without_shipping=0, overdue_in_transit=0, flagged=1, dispensed=2,
    )  # fmt: skip
    assert report["8600004"] == CoverageRow(
        "8600004", "人胰岛素注射液", packs=2, complete=0, no_origin=1,
        receipt_without_shipping=1, overdue_in_transit=1, flagged=0, dispensed=0,
    )  # fmt: skip
    total = report[None]
    assert (total.packs, total.complete, total.complete_share) == (5, 2, 0.4)
    assert "8600002" not in report  # the case holds packs: it is not counted as one
    # four days after the shipping it is not overdue yet; with a 60-day limit neither
    assert _report(w, days_later=6)["8600004"].overdue_in_transit == 0
    assert _report(w, overdue_days=60)["8600004"].overdue_in_transit == 0
    before = {p: r.as_dict() for p, r in report.items()}
    rebuild(w.engine)
    assert {p: r.as_dict() for p, r in _report(w).items()} == before


def test_filters_by_product_list_and_region(trace_world: Any) -> None:
    w = trace_world
    _chain(w)
    assert set(_report(w, products=("8600004",))) == {"8600004", None}
    beijing = _report(w, region="11")  # where each pack is now or was sold
    assert (beijing["8600001"].packs, beijing["8600004"].packs) == (2, 1)
    assert beijing["8600001"].flagged == 0  # the pack sold in Guangzhou is not in Beijing
    assert set(_report(w, region="4401")) == {"8600001", None}
    nowhere = _report(w, region="32")[None]
    assert (nowhere.packs, nowhere.complete_share, nowhere.as_dict()["complete_share"]) == (
        0,
        None,
        None,
    )
    with write_tx(w.engine) as conn:
        publish_list(
            conn,
            code="cold_chain",
            name="冷链重点监测",
            valid_from="2026-01-01",
            products=["8600004"],
            red_days=3,
            orange_days=7,
            yellow_days=14,
        )
    assert set(_report(w, list_code="cold_chain")) == {"8600004", None}
    with pytest.raises(NotFoundError, match="no monitored list"):
        _report(w, list_code="nope")
    for bad in ("1", "123", "11a", "1234567"):
        with pytest.raises(ValidationError, match="2, 4 or 6 digits"):
            _report(w, region=bad)


def test_by_area(trace_world: Any) -> None:
    w = trace_world
    _chain(w)
    now_us = to_epoch_us((w.T0 + timedelta(days=30)).isoformat())
    with w.engine.connect() as conn:
        rows = coverage(conn, REGULATOR, CoverageFilter(by="province"), now_us=now_us)
    by_area = {r.region: (r.packs, r.complete, r.no_origin, r.flagged, r.overdue_in_transit)
               for r in rows[:-1]}  # fmt: skip
    # Beijing: two packs sold or kept at PHA, complete, and the stray; Guangzhou: the pack sold
    # where it never arrived; no region: the one lost in transit from the factory
    assert by_area == {
        "110000": (3, 2, 1, 0, 0),
        "440000": (1, 0, 0, 1, 0),
        None: (1, 0, 0, 0, 1),
    }
    assert (rows[-1].packs, rows[-1].complete, rows[-1].region) == (5, 2, None)
    with w.engine.connect() as conn, pytest.raises(ValidationError, match="group by"):
        coverage(conn, REGULATOR, CoverageFilter(by="county"))  # type: ignore[arg-type]


def test_who_sees_what(trace_world: Any) -> None:
    w = trace_world
    _chain(w)
    maker = Viewer(enterprise_id=w.ids["MFR"], role="enterprise")
    assert _report(w, maker)[None].packs == 5  # the holder of both products
    pharmacy = Viewer(enterprise_id=w.ids["PHA"], role="enterprise")
    assert list(_report(w, pharmacy)) == [None]
    with pytest.raises(ForbiddenError):
        _report(w, Viewer(enterprise_id=None, role="public"))


def test_coverage_over_http(trace_world: Any, db_url: str) -> None:
    w = trace_world
    _chain(w)
    regulator = create_key(w.engine, None, "regulator", "省局")
    pharmacy = create_key(w.engine, w.usccs["PHA"], "enterprise")
    with TestClient(create_app(db_url)) as client:
        body = client.get(
            "/coverage", params={"region": "11"}, headers={"X-API-Key": regulator}
        ).json()
        assert [p["product"] for p in body["rows"]] == ["8600001", "8600004"]
        assert body["total"]["packs"] == 3 and body["overdue_days"] == 7
        assert body["by"] == "product" and body["rows"][0]["complete_share"] == 1.0
        mine = client.get("/coverage", headers={"X-API-Key": pharmacy}).json()
        assert mine["rows"] == [] and mine["total"]["packs"] == 0
        cities = client.get(
            "/coverage", params={"by": "city"}, headers={"X-API-Key": regulator}
        ).json()
        assert [r["region"] for r in cities["rows"]] == ["110100", "440100", None]
        bad_by = client.get("/coverage", params={"by": "x"}, headers={"X-API-Key": regulator})
        assert bad_by.status_code == 400
        bad = client.get("/coverage", params={"region": "x"}, headers={"X-API-Key": regulator})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("region")
        assert client.get("/coverage").status_code == 401


# ── data quality (追溯数据质量) ─────────────────────────────────────────────────────────────
def _recorded(event: dict[str, Any], w: Any, hours: float) -> dict[str, Any]:
    return {**event, "recordTime": w.at(hours).isoformat()}


def _reported(w: Any) -> None:
    """MFR: a commissioning with lot and expiry recorded after 1 h, a shipping read at its site
    (no business location) recorded after 47 h, a commissioning without batch facts recorded
    after 8 days. DIST: a receipt on time and its error declaration. One event at a site nobody
    registered."""
    packs = [w.pack(i) for i in range(2)]
    received = _recorded(w.receive(packs[0], 20, "DIST"), w, 20)
    w.capture(
        _recorded(w.commission(packs[0], 0, lot="L1", expiry="2027-12-31"), w, 1),
        _recorded(w.ship(packs[0], 3, "MFR", "DIST", read_point=w.sites["MFR"]), w, 50),
        _recorded(w.commission(packs[1], 4), w, 200),
        received,
        {
            **received,
            "errorDeclaration": {
                "declarationTime": w.at(21).isoformat(),
                "reason": "incorrect_data",
            },
        },
        _recorded(
            object_event([packs[1]], w.at(6), "inspecting", site="urn:epc:id:sgln:6999999.00001.0"),
            w,
            6,
        ),
    )


def test_data_quality_per_enterprise(trace_world: Any, db_url: str) -> None:
    w = trace_world
    _reported(w)
    maker_key = create_key(w.engine, w.usccs["MFR"], "enterprise")
    regulator = create_key(w.engine, None, "regulator", "省局")
    bad = {"type": "ObjectEvent", "eventTime": "2026-01-05T05:00:00+08:00"}  # no offset field
    fine = object_event([w.pack(5)], w.at(5), "inspecting", site=w.sites["MFR"])
    with TestClient(create_app(db_url)) as client:
        sent = client.post(
            "/capture",
            json={"type": "EPCISDocument", "schemaVersion": "2.0",
                  "creationDate": "2026-01-06T00:00:00Z", "epcisBody": {"eventList": [fine, bad]}},
            headers={"X-API-Key": maker_key, "GS1-Capture-Error-Behaviour": "proceed"},
        )  # fmt: skip
        assert sent.status_code == 202
        body = client.get("/quality", headers={"X-API-Key": regulator}).json()
        mine = client.get("/quality", headers={"X-API-Key": maker_key}).json()
        late = client.get(
            "/quality", params={"within_hours": 72}, headers={"X-API-Key": regulator}
        ).json()
    rows = {r["enterprise"]: r for r in body["enterprises"]}
    mfr, dist, nowhere = rows[w.usccs["MFR"]], rows[w.usccs["DIST"]], rows[None]
    # MFR: the three above and the one its key sent (recorded now: months late)
    assert (mfr["events"], mfr["timely"], mfr["within_day"], mfr["within_3_days"]) == (4, 1, 1, 2)
    assert (mfr["located"], mfr["commissionings"], mfr["with_batch_facts"]) == (3, 2, 1)
    assert (mfr["shipments"], mfr["with_destination"]) == (1, 1)
    assert (mfr["captured"], mfr["rejected"]) == (1, 1)
    assert mfr["shares"] == {
        "timely": 0.25, "located": 0.75, "batch_facts": 0.5, "destination": 1.0, "rejected": 0.5
    }  # fmt: skip
    assert (dist["events"], dist["corrections"], dist["shares"]["timely"]) == (2, 1, 1.0)
    assert nowhere["name"] is None and nowhere["events"] == 1
    assert list(rows)[-1] is None  # unattributed last
    assert [r["enterprise"] for r in mine["enterprises"]] == [w.usccs["MFR"]]
    assert {r["enterprise"]: r["timely"] for r in late["enterprises"]}[w.usccs["MFR"]] == 2
    with w.engine.connect() as conn:
        since = to_epoch_us(w.at(2).isoformat())
        early = {r.enterprise: r for r in data_quality(conn, REGULATOR, since_us=since)}
        assert early[w.usccs["MFR"]].events == 3  # the 0-hour commissioning is before
        with pytest.raises(ForbiddenError):
            data_quality(conn, Viewer(enterprise_id=None, role="public"))
        with pytest.raises(ValidationError, match="within_hours"):
            data_quality(conn, REGULATOR, within_hours=0)
