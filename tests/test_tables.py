"""Bad tables are bad input wherever they are read, never an internal error: damaged XLSX
workbooks (an entity bomb, malformed sheet XML, a member with a broken CRC) for the data-set
reader, master data and HTTP capture; CSV with a field over the csv module's limit for sale
lines and code registries; files that are missing or not UTF-8; JSON bodies nested too deeply."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select

from test_api_epcis import assert_problem, serving
from yaolian.api.epcis import XLSX
from yaolian.codes.registry import CodeRegistry
from yaolian.epcis.nmpa_dataset import read_nmpa_xlsx
from yaolian.errors import ValidationError
from yaolian.store.masterfile import read_master_data
from yaolian.store.schema import event
from yaolian.tables import read_text
from yaolian.verify.dispense import read_sales

SHEET = "xl/worksheets/sheet1.xml"
LAUGHS = (
    '<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{f"&{chr(97 + i)};" * 10}">' for i in range(8))
    + "]>"
)


def _workbook(sheet_name: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = sheet_name
    sheet.append(["业务单据号", "业务类型"])
    sheet.append(["SC1", "生产"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rewrite_sheet(data: bytes, change: Callable[[str], str]) -> bytes:
    """The workbook with its first sheet's XML changed by ``change``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            member = source.read(item.filename)
            if item.filename == SHEET:
                member = change(member.decode()).encode()
            target.writestr(item, member)
    return out.getvalue()


def _entity_bomb(data: bytes) -> bytes:
    return _rewrite_sheet(
        data, lambda xml: LAUGHS + re.sub("<t>[^<]*</t>", "<t>&i;</t>", xml, count=1)
    )


def _malformed(data: bytes) -> bytes:
    return _rewrite_sheet(data, lambda xml: xml.replace("</row>", "</rowx>", 1))


def _broken_crc(data: bytes) -> bytes:
    """The sheet stored uncompressed, one byte of it changed after its CRC was written."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item.filename, source.read(item.filename), zipfile.ZIP_STORED)
    raw = bytearray(out.getvalue())
    at = raw.index(b"<sheetData>")
    raw[at + 1] ^= 0x20  # <SheetData>: well-formed length, wrong CRC-32
    return bytes(raw)


DAMAGE = [_entity_bomb, _malformed, _broken_crc]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_data_set_workbook_is_bad_input(damage: Callable[[bytes], bytes]) -> None:
    with pytest.raises(ValidationError, match="not a readable XLSX workbook") as caught:
        read_nmpa_xlsx(io.BytesIO(damage(_workbook("Sheet1"))), "body")
    assert caught.value.place == "body"


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_master_data_workbook_is_bad_input(
    damage: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    path = tmp_path / "masterdata.xlsx"
    path.write_bytes(damage(_workbook("enterprises")))
    with pytest.raises(ValidationError, match="not a readable XLSX workbook"):
        read_master_data(path)


def test_capturing_a_damaged_workbook_over_http_is_400(db_url: str, engine: Engine) -> None:
    with serving(db_url, engine) as api:
        for damage in DAMAGE:
            response = api.client.post(
                "/capture",
                content=damage(_workbook("Sheet1")),
                headers=api.headers(api.key_a, **{"Content-Type": XLSX}),
            )
            assert_problem(response, 400, "ValidationException", "not a readable XLSX")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(event)).scalar_one() == 0


def test_a_csv_field_over_the_limit_is_bad_input(db_url: str, engine: Engine) -> None:
    header = "drug_trac_codg,sel_retn_cnt,sel_retn_time\n"
    body = f"{header}{'8' * 200_000},1,2026-03-01T10:00:00+08:00\n".encode()
    with serving(db_url, engine) as api:
        response = api.client.post(
            "/dispense", content=body, headers=api.headers(**{"Content-Type": "text/csv"})
        )
        assert_problem(response, 400, "ValidationException", "body: not a readable CSV file")
        for path in ("/masterdata", "/verify", "/recalls"):  # JSON past the parser's depth
            deep = api.client.post(
                path,
                content=b"[" * 5000 + b"]" * 5000,
                headers=api.headers(**{"Content-Type": "application/json"}),
            )
            assert_problem(deep, 400, "ValidationException", "body: cannot be parsed")


def test_code_registry_files_that_cannot_be_read(tmp_path: Path) -> None:
    too_wide = tmp_path / "wide.csv"
    too_wide.write_text("issuer,total_length\n" + "x" * 200_000 + ",20\n")
    not_text = tmp_path / "binary.csv"
    not_text.write_bytes(b"issuer\xff,total_length\n")  # 0xFF begins no UTF-8 or GB18030 char
    for path, reason in (
        (too_wide, "not a readable CSV file"),
        (not_text, "not UTF-8 or GB18030 text"),
        (tmp_path / "missing.csv", "cannot read"),
    ):
        for kwargs in ({"rules_csv": path}, {"products_csv": path}):
            with pytest.raises(ValidationError, match=reason) as caught:
                CodeRegistry.from_files(**kwargs)
            assert caught.value.place == str(path)


def test_csv_from_chinese_windows_is_read_as_gb18030(tmp_path: Path) -> None:
    """Excel and HIS exports on Chinese Windows write CSV in GBK: sale lines and any file read
    by ``read_text`` take it as well as UTF-8 (with or without a BOM), as NMPA data sets did."""
    sales = (
        "drug_trac_codg,trdn_flag,sel_retn_cnt,sel_retn_time,site,manu_lotnum\n"
        "86000010000000000123,0,1,2026-01-09 10:00:00,urn:epc:id:sgln:6901234.00001.0,批2601\n"
    )
    for encoding in ("gb18030", "gbk", "utf-8", "utf-8-sig"):
        (line,) = read_sales(sales.encode(encoding), "sales.csv")
        assert line.lot == "批2601", encoding
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(sales.encode(encoding))
        assert read_text(path) == sales


@pytest.mark.parametrize(
    "data", [b"[]", b'{"lines": []}', b"", b"drug_trac_codg,sel_retn_time,site\n"]
)
def test_an_empty_sale_upload_is_bad_input(data: bytes) -> None:
    """No sale lines at all — an empty list or a CSV with only its header — is refused at the
    file, not recorded as '0 lines, 0 recorded'."""
    with pytest.raises(ValidationError, match="no sale lines") as caught:
        read_sales(data, "sales.csv")
    assert caught.value.place == "sales.csv"
