"""NMPA trace data-set import (CSV / XLSX → EPCIS events): mapping, bad rows, all-or-nothing."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from yaolian.epcis.model import CHINA_TIME, parse_local_date, parse_local_time
from yaolian.epcis.nmpa_dataset import (
    BIZ_TYPES,
    party_uri,
    read_nmpa_csv,
    read_nmpa_dataset,
    read_nmpa_xlsx,
)
from yaolian.errors import ValidationError
from yaolian.verify.dispense import read_sales

DATA = Path(__file__).parent / "data" / "nmpa"
HOLDER = "91110000MA0000001L"
DISTRIBUTOR = "91310000MA00000025"
HOSPITAL = "12330000MA0000003M"
PHARMACY = "92440000MA0000004B"
HEADER = [
    "单据号",
    "业务类型",
    "业务时间",
    "企业统一社会信用代码",
    "对方企业统一社会信用代码",
    "追溯码",
]


def _csv(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _problems(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_chain_file_maps_every_business_type() -> None:
    doc = read_nmpa_dataset(DATA / "chain.csv")
    steps = [(e["type"], e["action"], e["bizStep"], e.get("disposition")) for e in doc.events]
    assert steps == [
        ("ObjectEvent", "ADD", "commissioning", "active"),
        ("AggregationEvent", "ADD", "packing", "in_progress"),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("AggregationEvent", "DELETE", "unpacking", None),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("ObjectEvent", "OBSERVE", "dispensing", "partially_dispensed"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("ObjectEvent", "OBSERVE", "retail_selling", "retail_sold"),
        ("ObjectEvent", "OBSERVE", "shipping", "returned"),
        ("ObjectEvent", "OBSERVE", "receiving", "returned"),
        ("ObjectEvent", "DELETE", "destroying", "destroyed"),
        ("ObjectEvent", "OBSERVE", "cycle_counting", None),
    ]
    produce, pack, ship = doc.events[0], doc.events[1], doc.events[2]
    assert produce["epcList"] == [
        "urn:nmpa:code:86000010000000000001",
        "urn:nmpa:code:86000010000000000002",
        "urn:nmpa:code:86000010000000000003",
    ]
    assert produce["ilmd"] == {
        "cbvmda:lotNumber": "B250301",
        "cbvmda:productionDate": "2025-03-01",
        "cbvmda:itemExpirationDate": "2027-02-28",
    }
    assert produce["eventTime"] == "2025-03-01T08:00:00+08:00"
    assert produce["eventTimeZoneOffset"] == "+08:00"
    assert produce["bizLocation"] == {"id": "urn:epc:id:sgln:6901234.00001.0"}
    assert produce["yaolian:operator"] == "张三"
    assert pack["parentID"] == "urn:nmpa:code:86000020000000000001"
    assert len(pack["childEPCs"]) == 3
    assert ship["sourceList"] == [
        {"type": "owning_party", "source": party_uri(HOLDER)},
        {"type": "location", "source": "urn:epc:id:sgln:6901234.00001.0"},
    ]
    assert ship["destinationList"] == [
        {"type": "owning_party", "destination": party_uri(DISTRIBUTOR)},
    ]
    assert ship["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": f"urn:yaolian:doc:{HOLDER}:CK20250302-07"}
    ]
    receive = doc.events[3]  # 采购入库 at the distributor: from holder to distributor
    assert receive["sourceList"][0]["source"] == party_uri(HOLDER)
    assert receive["destinationList"] == [
        {"type": "owning_party", "destination": party_uri(DISTRIBUTOR)},
        {"type": "location", "destination": "urn:yaolian:site:WH-SH-01"},
    ]
    assert receive["eventTime"] == "2025-03-03T14:00:00+08:00"
    unpack = doc.events[4]  # codes separated by a full-width comma
    assert unpack["childEPCs"] == [
        "urn:nmpa:code:86000010000000000001",
        "urn:nmpa:code:86000010000000000002",
    ]
    assert doc.events[5]["eventTime"] == "2025-03-04T09:15:00+08:00"  # 2025/03/04 09:15
    split = doc.events[8]
    assert split["yaolian:saleLine"] == {"splitSale": True, "quantity": 8, "units": 8}
    assert doc.events[10]["yaolian:saleLine"] == {"splitSale": False, "quantity": 1}  # 拆零 否
    return_out, return_in = doc.events[11], doc.events[12]
    assert return_out["sourceList"][0]["source"] == party_uri(DISTRIBUTOR)
    assert return_in["destinationList"][0]["destination"] == party_uri(HOLDER)
    assert {"yaolian"} <= set(doc.namespaces())


def test_bad_rows_reported_with_file_row_column_and_reason() -> None:
    with pytest.raises(ValidationError) as exc:
        read_nmpa_dataset(DATA / "bad.csv")
    assert "nothing imported" in exc.value.reason
    problems = _problems(exc)
    source = str(DATA / "bad.csv")
    expected = [
        (3, "业务类型", "unknown 业务类型 '生产入仓'"),
        (4, "业务时间", "is not a time"),
        (5, "对方企业统一社会信用代码", "is required for 业务类型 销售出库"),
        (6, "企业统一社会信用代码", "not an 18-character"),
        (6, "追溯码", "not a recognised code"),
        (7, "有效期至", "is before 生产日期"),
        (8, "数量", "is required for a split sale"),
        (9, "父码/包装码", "is required for 业务类型 包装关联"),
        (10, "追溯码", "does not belong to 药品标识码 8600001"),
        (11, "单据号", "is required and empty"),
    ]
    assert len(problems) == len(expected)
    for text, (row, column, reason) in zip(problems, expected, strict=True):
        assert text.startswith(f"{source}:{row} column {column}: ")
        assert reason in text


def test_one_bad_row_rejects_the_whole_file() -> None:
    good = ["D1", "生产", "2025-03-01 08:00:00", HOLDER, "", "86000010000000000001"]
    bad = ["D2", "生产", "yesterday", HOLDER, "", "86000010000000000002"]
    assert len(read_nmpa_csv(_csv([good])).events) == 1
    with pytest.raises(ValidationError) as exc:
        read_nmpa_csv(_csv([good, bad]), "f.csv")
    assert _problems(exc) == [
        "f.csv:3 column 业务时间: 'yesterday' is not a time (use 2025-03-01 08:30:00 or ISO "
        "8601 with offset)"
    ]


def test_missing_required_columns_named() -> None:
    with pytest.raises(ValidationError) as exc:
        read_nmpa_csv(_csv([["D1", "生产"]], header=["单据号", "业务类型"]), "h.csv")
    assert exc.value.place == "h.csv:1"
    assert "业务时间" in exc.value.reason and "追溯码" in exc.value.reason


def test_empty_and_header_only_files() -> None:
    with pytest.raises(ValidationError, match="empty"):
        read_nmpa_csv(b"", "e.csv")
    with pytest.raises(ValidationError, match="no records"):
        read_nmpa_csv(_csv([]), "e.csv")


def test_gb18030_csv_and_gs1_codes() -> None:
    row = [
        "D1",
        "零售出库",
        "2025-03-07T16:45:00+08:00",
        PHARMACY,
        "",
        "(01)06901234567892(21)A1B2",
    ]
    data = _csv([row]).decode().encode("gb18030")
    event = read_nmpa_csv(data).events[0]
    assert event["epcList"] == ["urn:epc:id:sgtin:6901234.056789.A1B2"]
    assert event["bizStep"] == "retail_selling"


def test_split_sale_needs_one_code_and_sale_type() -> None:
    header = [*HEADER, "数量", "拆零标识"]
    rows = [
        [
            "D1",
            "使用出库",
            "2025-03-06 10:00",
            HOSPITAL,
            "",
            "86000010000000000001;86000010000000000002",
            "2",
            "1",
        ],
        ["D2", "销毁", "2025-03-06 10:00", HOSPITAL, "", "86000010000000000003", "2", "是"],
        ["D3", "使用出库", "2025-03-06 10:00", HOSPITAL, "", "86000010000000000004", "0.5", "1"],
    ]
    with pytest.raises(ValidationError) as exc:
        read_nmpa_csv(_csv(rows, header), "s.csv")
    problems = _problems(exc)
    assert any(p.startswith("s.csv:2 column 追溯码") and "exactly one" in p for p in problems)
    assert any(p.startswith("s.csv:3 column 拆零标识") for p in problems)
    assert any(p.startswith("s.csv:4 column 数量") and "positive whole" in p for p in problems)


def _xlsx(tmp_path: Path, rows: list[list[object]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    path = tmp_path / "records.xlsx"
    workbook.save(path)
    return path


def test_xlsx_with_native_dates_and_numbers(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path,
        [
            [*HEADER, "批号", "生产日期", "有效期至", "数量"],
            [
                "SC1",
                "生产",
                datetime(2025, 3, 1, 8, 0),
                HOLDER,
                None,
                "86000010000000000001",
                "B1",
                datetime(2025, 3, 1),
                datetime(2027, 2, 28),
                1,
            ],
            [None, None, None, None, None, None],  # blank rows are skipped
            [
                "CK1",
                "销售出库",
                "2025-03-02 10:00:00",
                HOLDER,
                DISTRIBUTOR,
                "86000010000000000001",
                None,
                None,
                None,
                1.0,
            ],
        ],
    )
    doc = read_nmpa_dataset(path)
    assert [e["bizStep"] for e in doc.events] == ["commissioning", "shipping"]
    assert doc.events[0]["eventTime"] == "2025-03-01T08:00:00+08:00"
    assert doc.events[0]["ilmd"]["cbvmda:itemExpirationDate"] == "2027-02-28"
    assert doc.events[1]["yaolian:quantity"] == 1


def test_xlsx_bad_row_names_row_and_column(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path,
        [
            HEADER,
            ["SC1", "生产", "2025-03-01 08:00", HOLDER, None, "86000010000000000001"],
            ["SC2", "生产", "2025-03-01 08:00", "NOT-A-USCC", None, "86000010000000000002"],
        ],
    )
    with pytest.raises(ValidationError) as exc:
        read_nmpa_dataset(path)
    assert _problems(exc)[0].startswith(f"{path}:3 column 企业统一社会信用代码")


def test_a_code_a_spreadsheet_made_a_number_is_refused(tmp_path: Path) -> None:
    """A 20-digit code typed into a spreadsheet's number column keeps 15 digits: read back it
    would be another pack's code (86000010000000000001 → …0000008192), so it is refused, in a
    workbook as a number and in a CSV saved from one as 8.60000100000000E+19."""
    number = 86000010000000000001
    path = _xlsx(
        tmp_path,
        [
            [*HEADER, "父码/包装码"],
            ["SC1", "生产", "2025-03-01 08:00", HOLDER, None, float(number)],
            ["BZ1", "包装关联", "2025-03-01 09:00", HOLDER, None, "86000010000000000002", 8.6e19],
        ],
    )
    with pytest.raises(ValidationError) as exc:
        read_nmpa_dataset(path)
    problems = _problems(exc)
    assert [p.partition(": ")[0] for p in problems] == [
        f"{path}:2 column 追溯码",
        f"{path}:3 column 父码/包装码",
    ]
    assert all("kept only its first 15 digits" in p and "文本" in p for p in problems)
    assert "8.60000100000000E+19" in problems[0]
    with pytest.raises(ValidationError) as exc:
        read_nmpa_csv(
            _csv([["SC1", "生产", "2025-03-01 08:00", HOLDER, "", "8.60000100000000E+19"]])
        )
    assert "kept only its first 15 digits" in _problems(exc)[0]


def test_not_a_workbook_and_unknown_extension(tmp_path: Path) -> None:
    fake = tmp_path / "x.xlsx"
    fake.write_bytes(b"not a zip")
    with pytest.raises(ValidationError, match="not a readable XLSX"):
        read_nmpa_dataset(fake)
    with pytest.raises(ValidationError, match="not a readable XLSX"):
        read_nmpa_xlsx(io.BytesIO(b"PK\x03\x04garbage"), "body")
    with pytest.raises(ValidationError, match="unknown data-set file type"):
        read_nmpa_dataset(tmp_path / "x.txt")
    with pytest.raises(ValidationError, match="cannot read"):
        read_nmpa_dataset(tmp_path / "missing.csv")


def test_every_documented_biz_type_is_mapped() -> None:
    documented = (DATA.parent.parent.parent / "docs" / "nmpa-dataset.md").read_text()
    for name in BIZ_TYPES:
        assert f"`{name}`" in documented, f"业务类型 {name} missing from docs/nmpa-dataset.md"


@given(st.text(max_size=40))
def test_any_time_cell_either_parses_or_is_reported(cell: str) -> None:
    row = ["D1", "生产", cell, HOLDER, "", "86000010000000000001"]
    try:
        doc = read_nmpa_csv(_csv([row]), "p.csv")
    except ValidationError as exc:
        places = [p.place for p in exc.problems] or [exc.place]
        assert all(place and place.startswith("p.csv") for place in places)
    else:
        assert doc.events[0]["eventTime"][-6] in "+-"


def test_a_nul_character_in_a_cell_is_named() -> None:
    """A NUL in a free-text cell (单据号) was stored as-is: the event could not be written as
    XML or read back from its own JSON-LD export."""
    row = ["D\x001", "生产", "2025-03-01 08:00:00", HOLDER, "", "86000010000000000001"]
    with pytest.raises(ValidationError) as exc:
        read_nmpa_csv(_csv([row]), "n.csv")
    assert _problems(exc) == ["n.csv:2 column 单据号: contains a NUL character (U+0000)"]


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31)))
def test_local_times_in_every_usual_spelling(moment: datetime) -> None:
    """Business times as Chinese systems and Excel write them all mean the same 北京时间 moment:
    ISO, slashes with unpadded fields (Excel's zh-CN default), 年月日, and compact digits."""
    m = moment.replace(microsecond=0)
    expected = m.replace(tzinfo=CHINA_TIME)
    spellings = [
        m.isoformat(sep=" "),
        f"{m.year}/{m.month}/{m.day} {m.hour}:{m.minute:02d}:{m.second:02d}",
        f"{m.year}年{m.month}月{m.day}日 {m.hour:02d}:{m.minute:02d}:{m.second:02d}",
        m.strftime("%Y%m%d%H%M%S"),
        f"{m.isoformat()}+08:00",
    ]
    for text in spellings:
        assert parse_local_time(text) == expected, text
    for text in (f"{m.year}/{m.month}/{m.day}", f"{m.year}{m.month:02d}{m.day:02d}"):
        assert parse_local_date(text) == m.date(), text
        assert parse_local_time(text) == expected.replace(hour=0, minute=0, second=0)


@pytest.mark.parametrize(
    "text", ["2026-02-30", "2026/1/9 25:00", "tomorrow", "2026-01-09Z", "202601091000", ""]
)
def test_a_local_time_that_is_not_one_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        parse_local_time(text)


def test_a_sale_time_as_excel_writes_it() -> None:
    """An HIS export saved from Excel: 2026/1/9 9:05 is 09:05 Beijing time."""
    (line,) = read_sales(
        b"drug_trac_codg,sel_retn_time,site\n"
        b"86000010000000000123,2026/1/9 9:05,urn:epc:id:sgln:6901234.00001.0\n",
        "sales.csv",
    )
    assert line.time == datetime(2026, 1, 9, 9, 5, tzinfo=CHINA_TIME)
