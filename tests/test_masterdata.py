"""Master data documents (主数据): JSON and XLSX reading, whole-document checks, loading in one
transaction, export round trip, enterprise-key limits, the CLI and ``/masterdata`` over HTTP."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import Engine, func, select

from cli_run import run, run_main
from yaolian.api.app import create_app
from yaolian.errors import ForbiddenError, NotFoundError, ValidationError
from yaolian.store.access import Viewer, create_key
from yaolian.store.masterdata import enterprise_id_for, upsert_enterprise, uscc_check_char
from yaolian.store.masterfile import (
    export_master_data,
    load_master_data,
    parse_master_data,
    read_master_data,
)
from yaolian.store.schema import audit_log, enterprise, product, site


def _uscc(body: str) -> str:
    return body + uscc_check_char(body)


MAKER, SHOP = _uscc("91330100MA0000001"), _uscc("91330100MA0000002")
GTIN = "06901234567892"


def _doc() -> dict[str, Any]:
    return {
        "enterprises": [
            {
                "uscc": MAKER,
                "name": "杭州某制药有限公司",
                "role": "holder",
                "region": "330100",
                "party_id": "urn:epc:id:pgln:6901234.00000",
            },
            {"uscc": SHOP, "name": "某大药房", "role": "pharmacy", "region": "330100"},
        ],
        "sites": [
            {
                "location_id": "urn:epc:id:sgln:6901234.00001.0",
                "enterprise_uscc": MAKER,
                "name": "制剂车间",
                "kind": "factory",
                "lat": 30.27,
                "lon": 120.15,
            },
            {
                "location_id": "urn:epc:id:sgln:6901234.00002.0",
                "enterprise_uscc": SHOP,
                "name": "西湖店",
                "kind": "pharmacy",
            },
        ],
        "products": [
            {
                "product_code": GTIN,
                "gtin": GTIN,
                "generic_name": "胰岛素注射液",
                "dosage_form": "注射剂",
                "units_per_pack": 5,
                "holder_uscc": MAKER,
                "manufacturer_uscc": MAKER,
                "temp_min": 2.0,
                "temp_max": 8.0,
            }
        ],
    }


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_document_loads_and_exports_back_unchanged(engine: Engine) -> None:
    """Load, export, load the export again: the same registry, nothing duplicated."""
    loaded = load_master_data(engine, parse_master_data(_doc()))
    assert (loaded.enterprises, loaded.sites, loaded.products) == (2, 2, 1)
    exported = export_master_data(engine)
    expected = _doc()
    assert exported["enterprises"] == sorted(expected["enterprises"], key=lambda e: e["uscc"])
    assert exported["sites"] == expected["sites"]
    assert exported["products"] == [{**expected["products"][0], "packaging_level": 1}]
    load_master_data(engine, parse_master_data(exported))
    assert export_master_data(engine) == exported
    assert (_count(engine, enterprise), _count(engine, site), _count(engine, product)) == (2, 2, 1)
    assert export_master_data(engine, ["sites"]).keys() == {"sites"}


def test_a_row_keeps_what_it_leaves_out_and_null_clears(engine: Engine) -> None:
    """A products sheet without the storage columns must not erase the storage range (and with
    it the cold-chain alerts); an explicit null clears a field."""
    load_master_data(engine, parse_master_data(_doc()))
    partial = {
        "enterprises": [{"uscc": MAKER, "name": "杭州某制药股份有限公司"}],
        "sites": [
            {
                "location_id": "urn:epc:id:sgln:6901234.00001.0",
                "enterprise_uscc": MAKER,
                "name": "制剂一车间",
                "lat": None,
            }
        ],
        "products": [
            {"product_code": GTIN, "generic_name": "胰岛素注射液", "trade_name": "优泌林"}
        ],
    }
    load_master_data(engine, parse_master_data(partial))
    now = export_master_data(engine)
    maker = next(e for e in now["enterprises"] if e["uscc"] == MAKER)
    assert maker["name"] == "杭州某制药股份有限公司" and maker["role"] == "holder"
    assert maker["party_id"] == "urn:epc:id:pgln:6901234.00000"
    assert now["sites"][0] == {
        "location_id": "urn:epc:id:sgln:6901234.00001.0",
        "enterprise_uscc": MAKER,
        "name": "制剂一车间",
        "kind": "factory",
        "lon": 120.15,
    }
    assert now["products"][0]["trade_name"] == "优泌林"
    assert (now["products"][0]["temp_min"], now["products"][0]["units_per_pack"]) == (2.0, 5)
    with pytest.raises(ValidationError, match="needs a role") as new:
        load_master_data(
            engine,
            parse_master_data(
                {"enterprises": [{"uscc": _uscc("91330100MA0000003"), "name": "新企业"}]}
            ),
        )
    assert new.value.place == "enterprises[0].role"


def test_every_fault_is_named_and_nothing_is_written(engine: Engine) -> None:
    doc = _doc()
    doc["enterprises"][1]["uscc"] = SHOP[:-1] + ("0" if SHOP[-1] != "0" else "1")
    doc["sites"][0]["lat"] = 91
    doc["products"][0].update(gtin="06901234567890", temp_min=9.0)
    doc["products"][0]["colour"] = "red"
    with pytest.raises(ValidationError) as caught:
        parse_master_data(doc, "md.json")
    places = {p.place for p in caught.value.problems}
    assert {
        "md.json: enterprises[1].uscc",
        "md.json: sites[0].lat",
        "md.json: products[0].gtin",
        "md.json: products[0].colour",
    } <= places
    reasons = " ".join(p.reason for p in caught.value.problems)
    assert "check character" in reasons and "check digit" in reasons.lower()
    # good rows first, then one the store refuses (its owner is not registered): nothing stays
    doc = _doc()
    doc["sites"][1]["enterprise_uscc"] = _uscc("91330100MA0000009")
    with pytest.raises(NotFoundError) as missing:
        load_master_data(engine, parse_master_data(doc))
    assert missing.value.place == "sites[1].enterprise_uscc"
    assert _count(engine, enterprise) == _count(engine, site) == 0


def test_ranges_and_shapes_are_checked() -> None:
    doc = _doc()
    doc["products"][0].update(temp_min=8.0, temp_max=2.0)
    with pytest.raises(ValidationError, match="above temp_max") as caught:
        parse_master_data(doc)
    assert caught.value.place == "<master data>: products[0]"
    doc["products"][0].update(temp_min=2.0, units_per_pack=0, packaging_level=4)
    with pytest.raises(ValidationError) as caught:
        parse_master_data(doc)
    assert [p.place for p in caught.value.problems] == [
        "<master data>: products[0].packaging_level",
        "<master data>: products[0].units_per_pack",
    ]
    doc = _doc()
    doc["enterprises"][0]["region"] = "３３０１００"  # full-width digits, as an IME types them
    with pytest.raises(ValidationError) as caught:
        parse_master_data(doc)
    assert caught.value.place == "<master data>: enterprises[0].region"
    with pytest.raises(ValidationError, match="an object with enterprises"):
        parse_master_data([1, 2])
    with pytest.raises(ValidationError, match="NUL") as nul:
        parse_master_data({"sites": [{"name": "a\x00"}]})
    assert nul.value.place == "<master data>: /sites/0/name"


def test_a_party_or_gtin_of_another_row_is_refused_not_a_crash(engine: Engine) -> None:
    load_master_data(engine, parse_master_data(_doc()))
    with pytest.raises(ValidationError, match="already belongs") as taken:
        upsert_enterprise(
            engine, SHOP, "某大药房", "pharmacy", party_id="urn:epc:id:pgln:6901234.00000"
        )
    assert taken.value.place == "party_id"
    for fields, place in (
        ({"region": "33010"}, "region"),
        ({"role": "r" * 21}, "role"),
        ({"party_id": "urn:x:" + "p" * 500}, "party_id"),  # longer than the store indexes
    ):
        with pytest.raises(ValidationError) as short:  # PostgreSQL: varchar(6), varchar(20)
            upsert_enterprise(engine, SHOP, "某大药房", **fields)
        assert short.value.place == place
    doc = {"products": [{**_doc()["products"][0], "product_code": "8600001"}]}
    with pytest.raises(ValidationError, match="already belongs") as gtin:
        load_master_data(engine, parse_master_data(doc))
    assert gtin.value.place == "products[0].gtin"


def test_an_enterprise_key_registers_only_its_own(engine: Engine) -> None:
    load_master_data(engine, parse_master_data(_doc()))
    with engine.connect() as conn:
        shop = Viewer(enterprise_id_for(conn, SHOP), "enterprise")
    own = {"sites": [{**_doc()["sites"][1], "name": "西湖店（新址）"}]}
    assert load_master_data(engine, parse_master_data(own), shop).sites == 1
    with engine.connect() as conn:
        maker = Viewer(enterprise_id_for(conn, MAKER), "enterprise")
    renamed = {"products": [{"product_code": GTIN, "generic_name": "胰岛素注射液（精蛋白）"}]}
    assert load_master_data(engine, parse_master_data(renamed), maker).products == 1
    with pytest.raises(ForbiddenError):  # its own product, but not given away
        given_away = {**renamed["products"][0], "holder_uscc": SHOP, "manufacturer_uscc": SHOP}
        load_master_data(engine, parse_master_data({"products": [given_away]}), maker)
    for doc, place in (
        ({"enterprises": [_doc()["enterprises"][0]]}, "enterprises[0]"),
        ({"sites": [{**_doc()["sites"][0], "enterprise_uscc": SHOP}]}, "sites[0]"),
        ({"products": [{**_doc()["products"][0], "holder_uscc": SHOP}]}, "products[0]"),
    ):
        with pytest.raises(ForbiddenError) as refused:
            load_master_data(engine, parse_master_data(doc), shop)
        assert refused.value.place == place
    with pytest.raises(ForbiddenError):
        load_master_data(engine, parse_master_data(own), Viewer(None, "public"))
    assert export_master_data(engine)["sites"][0]["enterprise_uscc"] == MAKER


def test_a_workbook_names_sheet_rows(tmp_path: Path) -> None:
    workbook = Workbook()
    sheets = {"enterprises": workbook.active, "sites": workbook.create_sheet("Sites")}
    sheets["enterprises"].title = "enterprises"
    products = workbook.create_sheet("products")
    for section, sheet in (*sheets.items(), ("products", products)):
        rows = _doc()[section]
        header = sorted({k for r in rows for k in r})
        sheet.append(header)
        sheet.append([])  # a blank row is skipped, and row numbers still count it
        for r in rows:
            sheet.append([r.get(k) for k in header])

    def cell(sheet: Any, field: str, row: int) -> Any:
        column = next(c.column_letter for c in sheet[1] if c.value == field)
        return sheet[f"{column}{row}"]

    cell(products, "gtin", 3).value = int(GTIN)  # Excel turned the GTIN into a number
    cell(sheets["enterprises"], "region", 3).value = 330100  # and a region code too
    good = tmp_path / "master.xlsx"
    workbook.save(good)
    doc = read_master_data(good)
    assert doc.products[0].gtin == GTIN and len(doc.sites) == 2
    assert doc.enterprises[0].region == "330100"
    cell(sheets["sites"], "lat", 3).value = 123.0  # out of range, on the sheet's row 3
    bad = tmp_path / "bad.xlsx"
    workbook.save(bad)
    with pytest.raises(ValidationError) as caught:
        read_master_data(bad)
    assert [p.place for p in caught.value.problems] == [f"{bad}: sites row 3 lat"]
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValidationError, match=r"use \.json or \.xlsx"):
        read_master_data(tmp_path / "x.csv")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    with pytest.raises(ValidationError, match="not a readable XLSX"):
        read_master_data(tmp_path / "broken.xlsx")


def test_cli_loads_lists_and_exports(
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "master.json"
    source.write_bytes(orjson.dumps(_doc()))
    code, out = run("masterdata", "load", "--db", db_url, str(source), "--json")
    assert code == 0, out
    assert orjson.loads(out)[0] == {
        "file": str(source),
        "enterprises": 2,
        "sites": 2,
        "products": 1,
        "codesRecomputed": 0,
    }
    code, out = run("masterdata", "list", "sites", "--db", db_url)
    assert code == 0 and "西湖店" in out and "sites (2)" in out
    target = tmp_path / "export.json"
    code, out = run("masterdata", "export", "--db", db_url, "--out", str(target))
    assert code == 0 and "2 enterprises, 2 sites, 1 products" in " ".join(out.split())
    assert orjson.loads(target.read_bytes()) == export_master_data(engine)
    bad = copy.deepcopy(_doc())
    bad["sites"][0]["lon"] = 500
    source.write_bytes(orjson.dumps(bad))
    code, out = run_main(monkeypatch, capsys, "masterdata", "load", "--db", db_url, str(source))
    assert code == 2 and "sites[0].lon" in out
    code, out = run_main(monkeypatch, capsys, "masterdata", "list", "parties", "--db", db_url)
    assert code == 2 and "enterprises, sites, products" in out


@pytest.fixture
def client(db_url: str, engine: Engine) -> Iterator[tuple[TestClient, str]]:
    key = create_key(engine, None, "regulator", "省局")
    with TestClient(create_app(db_url)) as client:
        yield client, key


def test_http_post_and_get_masterdata(client: tuple[TestClient, str], engine: Engine) -> None:
    http, key = client
    auth = {"Authorization": f"Bearer {key}"}
    response = http.post("/masterdata", json=_doc(), headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"enterprises": 2, "sites": 2, "products": 1, "codesRecomputed": 0}
    got = http.get("/masterdata", params={"section": ["sites", "products"]}, headers=auth)
    assert got.status_code == 200 and got.json() == export_master_data(
        engine, ["sites", "products"]
    )
    with engine.connect() as conn:
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
    assert "masterdata.load" in actions
    shop_key = create_key(engine, SHOP, "enterprise")
    foreign = http.post(
        "/masterdata",
        json={"sites": [_doc()["sites"][0]]},
        headers={"Authorization": f"Bearer {shop_key}"},
    )
    assert foreign.status_code == 403 and foreign.json()["detail"].startswith("sites[0]")
    bad = http.post("/masterdata", json={"sites": [{"location_id": ""}]}, headers=auth)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert {"body /sites/0/location_id", "body /sites/0/name"} <= {
        e["place"] for e in bad.json()["errors"]
    }
    assert http.post("/masterdata", json=_doc()).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "place"),
    [
        ("GET", "/events?EQ_bizStep=shipping%00", None, "query parameter EQ_bizStep"),
        ("GET", "/alerts?site=a%00", None, "query parameter site"),
        ("GET", "/supply/stock?product=1%00", None, "query parameter product"),
        ("GET", "/trace/urn:x%00", None, "path"),
        ("POST", "/recalls", {"class": 2, "reason": "a\x00", "batches": ["1:2"]}, "body /reason"),
        ("POST", "/masterdata", {"sites": [{"name": "\x00"}]}, "body /sites/0/name"),
        (
            "POST",
            "/capture",
            {
                "type": "ObjectEvent",
                "eventTime": "2026-01-01T00:00:00+08:00",
                "eventTimeZoneOffset": "+08:00",
                "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
                "action": "OBSERVE",
                "readPoint": {"id": "urn:x:a\x00b"},
            },
            "body /readPoint/id",
        ),
    ],
)
def test_a_nul_character_is_a_400_naming_where_on_both_stores(
    client: tuple[TestClient, str], method: str, path: str, body: Any, place: str
) -> None:
    """PostgreSQL text cannot hold U+0000: these requests used to answer 500 there (and 200 on
    SQLite). Now every store refuses them alike, saying where."""
    http, key = client
    response = http.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == f"{place}: contains a NUL character (U+0000)"


def test_capture_points_a_master_data_file_to_masterdata_load() -> None:
    """`yaolian sim --out` writes masterdata.json beside the event files: captured by mistake,
    it is named for what it is."""
    from yaolian.epcis.read import read_document

    with pytest.raises(ValidationError, match="yaolian masterdata load"):
        read_document(orjson.dumps(_doc()))
