"""End to end: HTTP (verify public/enterprise, trace, alerts, recalls), CLI and sale-line files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from test_recall import spread
from yaolian.api.app import create_app
from yaolian.cli import app as cli_app
from yaolian.errors import ValidationError
from yaolian.store.access import create_key
from yaolian.tables import xlsx_bytes
from yaolian.verify.dispense import read_sale_file


@pytest.fixture
def client(trace_world: Any, db_url: str) -> TestClient:
    spread(trace_world)
    return TestClient(create_app(db_url))


def key(w: Any, tag: str | None, role: str = "enterprise") -> dict[str, str]:
    secret = create_key(w.engine, w.usccs[tag] if tag else None, role)
    return {"Authorization": f"Bearer {secret}"}


def test_verify_public_and_enterprise(client: TestClient, trace_world: Any) -> None:
    w = trace_world
    code = w.pack(4).removeprefix("urn:nmpa:code:")
    public = client.get(f"/verify/{code}")
    assert public.status_code == 200
    body = public.json()
    assert body["status"] == "genuine" and "detail" not in body
    assert body["circulation"][-1]["to"] == "北京示例大药房"
    mine = client.get(f"/verify/{code}", headers=key(w, "PHA")).json()
    assert mine["detail"]["custodian"]["name"] == "北京示例大药房"
    theirs = client.get(f"/verify/{code}", headers=key(w, "PHB")).json()
    assert "detail" not in theirs
    assert client.get(f"/verify/{code}", headers={"X-API-Key": "yl_bad_key"}).status_code == 401
    many = client.post("/verify", json={"codes": [code, w.pack(3), "garbage!"]}).json()
    assert [r["status"] for r in many["results"]] == ["genuine", "dispensed", "unknown"]
    bad = client.post("/verify", json={"codes": []})
    assert bad.status_code in (400, 422) and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert bad.json()["errors"][0]["place"] == "body /codes"
    bare = client.post("/verify", json=[code])  # a bare list instead of {"codes": [...]}
    assert bare.status_code == 400 and bare.json()["errors"][0]["place"] == "body"


def test_trace_http_and_visibility(client: TestClient, trace_world: Any) -> None:
    w = trace_world
    code = w.pack(4)
    assert client.get(f"/trace/{code}").status_code == 401
    graph = client.get(f"/trace/{code}", headers=key(w, None, "regulator")).json()
    assert graph["direction"] == "backward"
    assert any(e["kind"] == "handed_over" for e in graph["edges"]) and graph["events"]
    assert client.get(f"/trace/{code}", headers=key(w, "PHB")).status_code == 404
    pha = client.get(f"/trace/{code}", headers=key(w, "PHA")).json()
    assert pha["events"] and len(pha["events"]) < len(graph["events"])  # only its own events
    fwd = client.get(
        "/trace/8600001", params={"lot": "L001", "direction": "forward"}, headers=key(w, "MFR")
    ).json()
    assert fwd["summary"]["codes"] == 6
    batch = client.get("/trace/8600001/L001", headers=key(w, "PHB"))  # not its product
    assert batch.status_code == 404
    assert "batch '8600001/L001' is not visible" in batch.json()["detail"]
    assert "上市许可持有人" in batch.json()["detail"]  # who traces a batch, in the reason
    early = client.get(
        f"/trace/{code}",
        params={"at": "2026-01-05T10:00:00+00:00"},
        headers=key(w, None, "regulator"),
    ).json()
    assert sum(e["kind"] == "handed_over" for e in early["edges"]) == 1
    bad = client.get(
        f"/trace/{code}", params={"at": "yesterday"}, headers=key(w, None, "regulator")
    )
    assert bad.status_code == 400 and "at" in bad.json()["detail"]
    assert client.get("/trace/notacode", headers=key(w, None, "regulator")).status_code == 400


def test_alerts_and_recalls_http(client: TestClient, trace_world: Any) -> None:
    w = trace_world
    reg = key(w, None, "regulator")
    sold = w.pack(3).removeprefix("urn:nmpa:code:")
    line = {
        "drug_trac_codg": [sold],
        "trdn_flag": 0,
        "sel_retn_cnt": 1,
        "sel_retn_time": "2026-01-08 09:00:00",
        "site": w.sites["PHA"],
        "setl_id": "S9",
    }
    from yaolian.verify.dispense import parse_lines, record_sales

    record_sales(w.engine, parse_lines([line]))
    found = client.get("/alerts", params={"rule": "double_sale"}, headers=reg).json()
    assert found["total"] == 1 and found["alerts"][0]["evidence"]["events"]
    assert client.get("/alerts").status_code == 401
    assert client.get("/alerts", params={"rule": "x"}, headers=reg).status_code == 400
    huge = client.get("/alerts", params={"offset": 2**63}, headers=reg)  # found by schemathesis
    assert huge.status_code in (400, 422) and huge.headers["content-type"].startswith(
        "application/problem+json"
    )
    made = client.post(
        "/recalls",
        json={"class": 1, "reason": "杂质超标", "batches": ["8600001/L001"]},
        headers=key(w, "MFR"),
    )
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert made.headers["location"] == f"/recalls/{rid}"
    scope = client.get(f"/recalls/{rid}", headers=reg).json()
    assert scope["total"] == 6
    assert client.get(f"/verify/{w.pack(4)}").json()["status"] == "recalled"
    assert client.get("/recalls/999", headers=reg).status_code == 404
    notice = client.get(f"/recalls/{rid}", params={"format": "csv"}, headers=reg)
    assert notice.status_code == 200 and notice.headers["content-type"].startswith("text/csv")
    assert f'filename="recall-{rid}.csv"' in notice.headers["content-disposition"]
    assert notice.text.startswith("\ufeff环节,企业名称,统一社会信用代码")
    assert w.usccs["DIST"] in notice.text and w.usccs["PHA"] in notice.text
    own = client.get(f"/recalls/{rid}", params={"format": "xlsx"}, headers=key(w, "PHA"))
    assert own.status_code == 200 and own.content[:2] == b"PK"  # a workbook: its own part only
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(own.content)).active
    assert sheet is not None
    assert {r[2] for r in sheet.iter_rows(min_row=2, values_only=True)} == {w.usccs["PHA"]}
    odd = client.get(f"/recalls/{rid}", params={"format": "pdf"}, headers=reg)
    assert (
        odd.status_code in (400, 422)
        and odd.json()["errors"][0]["place"] == "query parameter format"
    )
    assert client.get(f"/recalls/{rid}", params={"format": "csv"}).status_code == 401
    bad = client.post("/recalls", json={"class": 1, "reason": "x", "codes": ["nope!"]}, headers=reg)
    assert bad.status_code == 400 and bad.json()["errors"][0]["place"] == "codes[0]"
    closed = client.post(f"/recalls/{rid}/close", headers=reg).json()
    assert closed["closed_us"] is not None
    assert client.get("/recalls", headers=reg).json()["recalls"][0]["id"] == rid


def test_sale_line_files_and_cli(trace_world: Any, db_url: str, tmp_path: Path) -> None:
    w = trace_world
    spread(w)
    csv_file = tmp_path / "sales.csv"
    codes = ";".join(w.pack(i).removeprefix("urn:nmpa:code:") for i in (4, 5))
    csv_file.write_text(
        "drug_trac_codg,trdn_flag,sel_retn_cnt,sel_retn_time,site,setl_id,manu_lotnum\n"
        f"{codes},0,2,2026-01-09 10:00:00,{w.sites['PHA']},S10,L001\n"
        f"{w.pack(0).removeprefix('urn:nmpa:code:')},1,6,2026-01-09 11:00:00,"
        f"{w.sites['DIST']},S11,L001\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    out = runner.invoke(cli_app, ["dispense", str(csv_file), "--db", db_url, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["accepted"] == 2
    again = runner.invoke(cli_app, ["dispense", str(csv_file), "--db", db_url, "--json"])
    assert json.loads(again.output)["duplicates"] == 2  # the same lines uploaded twice
    shown = runner.invoke(cli_app, ["verify", w.pack(0), w.pack(4), "--db", db_url, "--json"])
    verdicts = json.loads(shown.output)
    assert verdicts[0]["units_sold"] == 6 and verdicts[1]["status"] == "dispensed"
    tree = runner.invoke(cli_app, ["trace", w.pack(4), "--db", db_url])
    assert tree.exit_code == 0 and "hand-overs" in tree.output
    made = runner.invoke(
        cli_app,
        [
            "recall",
            "create",
            "--class",
            "2",
            "--reason",
            "test",
            "--batch",
            "8600001/L001",
            "--db",
            db_url,
            "--json",
        ],
    )
    recall = json.loads(made.output)
    assert recall["total"] == 6
    notice = tmp_path / "召回通知.xlsx"
    shown = runner.invoke(
        cli_app, ["recall", "show", str(recall["id"]), "--notice", str(notice), "--db", db_url]
    )
    assert shown.exit_code == 0 and "codes in scope: 6 (" in shown.output, shown.output
    assert "notice list: 3 row(s)" in shown.output and notice.read_bytes()[:2] == b"PK"
    wrong = runner.invoke(
        cli_app, ["recall", "show", str(recall["id"]), "--notice", "x.pdf", "--db", db_url]
    )
    assert "written as .xlsx or .csv" in str(wrong.exception)
    assert "% out of the market — returned 0" in shown.output and "{" not in shown.output
    batch = runner.invoke(cli_app, ["trace", "8600001/L001", "--forward", "--db", db_url])
    assert batch.exit_code == 0 and "by_status: " in batch.output, batch.output
    assert "{" not in batch.output  # counts read as text, not Python dicts
    held = "".join(batch.output.split()).partition("heldby")[2].partition("dispensed")[0]
    assert "示例医药物流有限公司·示例医药物流有限公司warehouse" in held  # holder · its site
    listed = runner.invoke(cli_app, ["recall", "list", "--db", db_url])
    assert "test" in listed.output
    typo_args = ["recall", "create", "--class", "2", "--reason", "x", "--batch", "8600001/L0O1"]
    typo = runner.invoke(cli_app, [*typo_args, "--db", db_url])
    assert typo.exit_code == 0, typo.output
    assert "batch 8600001/L0O1: no code of it is on record" in " ".join(typo.output.split())
    assert "nothing on record to bring back yet" in typo.output and "%" not in typo.output
    alerts = runner.invoke(cli_app, ["alerts", "--db", db_url, "--json"])
    assert json.loads(alerts.output)["total"] >= 0


def test_bad_sale_lines_name_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {
                    "drug_trac_codg": [],
                    "trdn_flag": 0,
                    "sel_retn_time": "2026-01-01 00:00:00",
                    "site": "x",
                },
                {
                    "drug_trac_codg": ["86000010000000000001"],
                    "trdn_flag": 7,
                    "sel_retn_time": "2026-01-01 00:00:00",
                    "site": "x",
                },
                {
                    "drug_trac_codg": ["86000010000000000001"],
                    "trdn_flag": 0,
                    "sel_retn_cnt": 3,
                    "sel_retn_time": "2026-01-01 00:00:00",
                    "site": "x",
                },
                {
                    "drug_trac_codg": ["86000010000000000001"],
                    "trdn_flag": 1,
                    "sel_retn_cnt": 3,
                    "sel_retn_time": "not a time",
                    "site": "x",
                },
            ]
        )
    )
    with pytest.raises(ValidationError) as info:
        read_sale_file(bad)
    places = [p.place for p in info.value.problems]
    assert places == [
        "bad.json line 1/drug_trac_codg",
        "bad.json line 2/trdn_flag",
        "bad.json line 3/sel_retn_cnt",
        "bad.json line 4/sel_retn_time",
    ]


def test_a_sale_line_code_a_spreadsheet_or_json_made_a_number_is_refused(tmp_path: Path) -> None:
    """A 20-digit code as a JSON number past 64 bits, or saved from a spreadsheet's number column
    as 8.60000100000000E+19, lost its last digits: refused rather than sold as another pack."""
    sold = '"trdn_flag": 0, "sel_retn_time": "2026-01-01 10:00:00", "site": "x"'
    numbers = tmp_path / "numbers.json"
    numbers.write_text(
        f'[{{"drug_trac_codg": [86000010000000000001], {sold}}},'
        f' {{"drug_trac_codg": 86000010000000000001, {sold}}}]'
    )
    saved = tmp_path / "saved.csv"
    saved.write_text(
        "drug_trac_codg,trdn_flag,sel_retn_time,site\n8.60000100000000E+19,0,2026-01-01 10:00,x\n"
    )
    gap = tmp_path / "gap.csv"  # a blank line before it: the row is still counted as shown
    gap.write_text(saved.read_text().replace("\n", "\n\n", 1))
    book = tmp_path / "book.xlsx"  # a HIS export with the code column left as numbers
    header = ["drug_trac_codg", "trdn_flag", "sel_retn_time", "site"]
    book.write_bytes(xlsx_bytes("销售", header, [[8.6000010000000008e19, 0, "2026-01-01", "x"]]))
    for path, places in (
        (
            numbers,
            ["numbers.json line 1/drug_trac_codg[0]", "numbers.json line 2/drug_trac_codg[0]"],
        ),
        (saved, ["saved.csv row 2/drug_trac_codg[0]"]),  # rows as a spreadsheet numbers them
        (gap, ["gap.csv row 3/drug_trac_codg[0]"]),
        (book, ["book.xlsx row 2/drug_trac_codg[0]"]),
    ):
        with pytest.raises(ValidationError) as info:
            read_sale_file(path)
        assert [p.place for p in info.value.problems] == places
        assert all("first 15 digits" in p.reason for p in info.value.problems)


def test_a_holder_sees_counterfeits_of_its_products(
    client: TestClient, trace_world: Any, db_url: str
) -> None:
    """A code of the manufacturer's product that it never made, sold at a pharmacy: the
    pharmacy (it sold it) and the manufacturer (its product) see the unknown_code alert; an
    enterprise with no part in either does not. `yaolian alerts` filters as the API does."""
    w = trace_world
    fake = w.pack(777).removeprefix("urn:nmpa:code:")  # 8600001…, never commissioned
    from yaolian.verify.dispense import parse_lines, record_sales

    record_sales(
        w.engine,
        parse_lines(
            [
                {
                    "drug_trac_codg": [fake],
                    "sel_retn_time": "2026-01-08 09:00",
                    "site": w.sites["PHA"],
                }
            ]
        ),
    )
    seen = {
        tag: client.get("/alerts", params={"rule": "unknown_code"}, headers=key(w, tag)).json()
        for tag in ("MFR", "PHA", "PHB", "DIST")
    }
    assert [a["code"] for a in seen["MFR"]["alerts"]] == [f"n:{fake}"]
    assert seen["MFR"]["by_rule"]["unknown_code"] == seen["PHA"]["total"] == 1
    assert seen["PHB"]["total"] == seen["DIST"]["total"] == 0
    runner = CliRunner()
    for options, expected in (
        (("--code", fake), 1),
        (("--code", w.pack(1)), 0),  # a code with no alert
        (("--since", "2026-01-09"), 0),  # the sale was on the 8th, Beijing time
        (("--until", "2026/1/9", "--site", w.sites["PHA"]), 1),
        (("--site", w.sites["PHB"]), 0),
    ):
        shown = runner.invoke(cli_app, ["alerts", *options, "--db", db_url, "--json"])
        assert shown.exit_code == 0 and json.loads(shown.output)["total"] == expected, options
