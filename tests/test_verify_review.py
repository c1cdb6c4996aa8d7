"""Alert review (预警核查): a regulator's finding on an alert, its filter and counts, kept across a
rebuild; enterprises' accounts (情况说明); over HTTP (roles, audit, the workbook) and the command
line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from test_verify import REGULATOR, sell, supply_chain
from yaolian.api.app import create_app
from yaolian.api.params import XLSX
from yaolian.cli import app as cli_app
from yaolian.errors import ForbiddenError, NotFoundError, QueryError, ValidationError
from yaolian.store.access import Viewer, create_key
from yaolian.store.projections import rebuild
from yaolian.verify.anomalies import ALERT_SHEET_HEADER, AlertFilter, list_alerts
from yaolian.verify.review import review_alert


def raised(w: Any) -> dict[str, int]:
    """A pack settled twice (回流药) and one sold where it never arrived: two alerts; their ids
    by rule."""
    codes = supply_chain(w)
    sell(w, codes[0], 50)
    sell(w, codes[0], 60)
    sell(w, codes[1], 50, site="PHB")
    found = list_alerts(w.engine, REGULATOR, AlertFilter())["alerts"]
    return {a["rule"]: a["id"] for a in found}


def listed(w: Any, **flt: Any) -> dict[str, Any]:
    return list_alerts(w.engine, REGULATOR, AlertFilter(**flt))


def test_a_finding_is_recorded_filtered_counted_and_kept_by_a_rebuild(trace_world: Any) -> None:
    w = trace_world
    ids = raised(w)
    assert set(ids) == {"double_sale", "custody_break"}
    first = listed(w)
    assert first["by_review"] == {"open": 2, "investigating": 0, "confirmed": 0, "dismissed": 0}
    assert first["reviews_zh"]["confirmed"] == "属实"  # names the pages show
    assert {a["severity_zh"] for a in first["alerts"]} <= {"高", "中", "低"}
    with w.engine.begin() as conn:
        done = review_alert(conn, ids["double_sale"], "confirmed", " 回收药品再次销售 ", REGULATOR)
    assert done["review"]["status"] == "confirmed" and done["review"]["note"] == "回收药品再次销售"
    (confirmed,) = listed(w, review="confirmed")["alerts"]
    assert confirmed["id"] == ids["double_sale"] and confirmed["review"]["status_zh"] == "属实"
    assert (confirmed["rule_zh"], confirmed["reason_zh"]) == (
        "回流药 重复结算",
        "整盒追溯码被重复结算（回流药）",
    )
    (still_open,) = listed(w, review="open")["alerts"]
    assert still_open["rule"] == "custody_break" and still_open["review"] is None
    counts = listed(w, rule="custody_break")  # counts per status under the other filters
    assert counts["by_review"]["open"] == 1 and counts["by_review"]["confirmed"] == 0
    rebuild(w.engine)  # the alerts are raised again (new ids); the finding stays with its key
    (again,) = listed(w, review="confirmed")["alerts"]
    assert again["key"] == confirmed["key"] and again["review"]["note"] == "回收药品再次销售"
    with w.engine.begin() as conn:  # changed, then cleared
        review_alert(conn, again["id"], "dismissed", None, REGULATOR)
    assert listed(w)["by_review"]["dismissed"] == 1
    with w.engine.begin() as conn:
        assert review_alert(conn, again["id"], "open", "x", REGULATOR)["review"] is None
    assert listed(w)["by_review"]["open"] == 2


def test_only_regulators_review_and_bad_findings_are_refused(trace_world: Any) -> None:
    w = trace_world
    ids = raised(w)
    pharmacy = Viewer(enterprise_id=w.ids["PHA"], role="enterprise")
    with w.engine.begin() as conn:
        with pytest.raises(ForbiddenError):
            review_alert(conn, ids["double_sale"], "dismissed", "not us", pharmacy)
        with pytest.raises(ValidationError, match="status must be one of"):
            review_alert(conn, ids["double_sale"], "closed", None, REGULATOR)
        with pytest.raises(ValidationError, match="at most 2000"):
            review_alert(conn, ids["double_sale"], "confirmed", "长" * 2001, REGULATOR)
        with pytest.raises(NotFoundError):
            review_alert(conn, 10**9, "confirmed", None, REGULATOR)
    with pytest.raises(QueryError, match="unknown review status"):
        listed(w, review="closed")
    assert listed(w)["by_review"]["open"] == 2  # nothing was written


def test_review_over_http_and_the_command_line(
    trace_world: Any, db_url: str, tmp_path: Path
) -> None:
    w = trace_world
    ids = raised(w)
    client = TestClient(create_app(db_url))
    reg = {"Authorization": f"Bearer {create_key(w.engine, None, 'regulator')}"}
    pha = {"Authorization": f"Bearer {create_key(w.engine, w.usccs['PHA'], 'enterprise')}"}
    url = f"/alerts/{ids['double_sale']}/review"
    body = {"status": "investigating", "note": "已派员现场核查"}
    assert client.post(url, json=body).status_code == 401
    refused = client.post(url, json=body, headers=pha)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    made = client.post(url, json=body, headers=reg)
    assert made.status_code == 200, made.text
    assert made.json()["review"]["by"]["prefix"]  # which key recorded it
    bad = client.post(url, json={"status": "closed"}, headers=reg)
    assert bad.status_code in (400, 422) and bad.json()["errors"][0]["place"].endswith("status")
    assert client.post("/alerts/999999/review", json=body, headers=reg).status_code == 404
    garbled = client.post(
        url,
        content=b'{"status": "confirmed",,}',
        headers={**reg, "Content-Type": "application/json"},
    )
    (problem,) = garbled.json()["errors"]  # placed at the body, the parser's reason and offset
    assert garbled.status_code == 400 and problem["place"] == "body"
    assert (
        problem["reason"].startswith("not valid JSON: ") and "at character 24" in problem["reason"]
    )
    # the pharmacy sees the finding on its alert; the filter and counts answer over HTTP too
    seen = client.get("/alerts", params={"review": "investigating"}, headers=pha).json()
    assert [a["review"]["note"] for a in seen["alerts"]] == ["已派员现场核查"]
    assert client.get("/alerts", params={"review": "x"}, headers=reg).status_code == 400
    entry = client.get("/audit", params={"action": "alert.review"}, headers=reg).json()
    assert entry["entries"][0]["detail"] == body
    # the pharmacy that sold the pack twice gives its account; the regulator reads it
    account = {"note": "患者退货后误重新上架销售，已召回"}
    given = client.post(f"/alerts/{ids['double_sale']}/response", json=account, headers=pha)
    assert given.status_code == 200, given.text
    assert given.json()["responses"] == [
        {
            "enterprise": "北京示例大药房",
            "uscc": w.usccs["PHA"],
            "note": account["note"],
            "updated_us": given.json()["responses"][0]["updated_us"],
        }
    ]
    assert (
        client.post(url.replace("review", "response"), json=account, headers=reg).status_code == 403
    )
    phb = {"Authorization": f"Bearer {create_key(w.engine, w.usccs['PHB'], 'enterprise')}"}
    unseen = client.post(f"/alerts/{ids['double_sale']}/response", json=account, headers=phb)
    assert unseen.status_code == 404  # PHB never handled that pack: not its alert to explain
    empty = client.post(f"/alerts/{ids['double_sale']}/response", json={"note": ""}, headers=pha)
    assert empty.status_code in (400, 422)
    mfr = {"Authorization": f"Bearer {create_key(w.engine, w.usccs['MFR'], 'enterprise')}"}
    for headers, expected in ((reg, [account["note"]]), (pha, [account["note"]]), (mfr, [])):
        found = client.get("/alerts", params={"rule": "double_sale"}, headers=headers).json()
        assert [x["note"] for x in found["alerts"][0]["responses"]] == expected  # own or all
    sheet = client.get("/alerts", params={"format": "xlsx"}, headers=reg)
    assert sheet.status_code == 200 and sheet.headers["content-type"] == XLSX
    workbook = load_workbook(io.BytesIO(sheet.content)).active
    assert workbook is not None
    head, *rows = list(workbook.iter_rows(values_only=True))
    assert head == ALERT_SHEET_HEADER and len(rows) == 2
    by_id = {r[0]: r for r in rows}
    resold = by_id[ids["double_sale"]]
    assert resold[2] == "回流药 重复结算" and resold[6] == "北京示例大药房"
    assert resold[7] == w.usccs["PHA"] and resold[9:11] == ("核查中", "已派员现场核查")
    assert resold[11] == f"北京示例大药房：{account['note']}"
    assert by_id[ids["custody_break"]][8] == "在从未收货的机构销售（流向异常）"
    runner = CliRunner()
    done = runner.invoke(
        cli_app,
        [
            "alerts",
            "review",
            str(ids["custody_break"]),
            "dismissed",
            "--note",
            "调拨单补录",
            "--db",
            db_url,
        ],
    )
    assert done.exit_code == 0 and "排除: 调拨单补录" in done.output, done.output
    table = runner.invoke(cli_app, ["alerts", "--review", "dismissed", "--db", db_url, "--json"])
    (only,) = json.loads(table.output)["alerts"]
    assert only["id"] == ids["custody_break"] and only["review"]["by"] is None  # local operator
    shown = runner.invoke(cli_app, ["alerts", "--db", db_url])
    assert shown.exit_code == 0 and "核查中" in shown.output and "排除" in shown.output
    book = tmp_path / "告警.xlsx"
    saved = runner.invoke(
        cli_app, ["alerts", "--review", "dismissed", "--out", str(book), "--db", db_url]
    )
    assert saved.exit_code == 0, saved.output
    sheet = load_workbook(book).active
    assert sheet is not None
    (row,) = sheet.iter_rows(min_row=2, values_only=True)
    assert row[0] == ids["custody_break"] and row[9:11] == ("排除", "调拨单补录")
