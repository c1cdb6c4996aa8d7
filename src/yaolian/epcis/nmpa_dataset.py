"""NMPA trace basic data-set records (药品追溯基本数据集, 2020) from CSV / XLSX → EPCIS events.

Holders and manufacturers, distributors (经营企业) and user units (医疗机构/药店) keep their trace
records as tables: one row per business record with a document number (单据号), a business type
(业务类型), a time, the enterprise (统一社会信用代码), the counter-party and the trace codes. This
module reads such a table — CSV (UTF-8, UTF-8 with BOM or GB18030) or XLSX (streamed with
openpyxl in read-only mode) — checks every row and maps each row to one EPCIS 2.0 event in the
in-memory shape of :mod:`yaolian.epcis.model`, so capture treats the file like any other
document. The column headers and the mapping are documented in ``docs/nmpa-dataset.md``.

A file is all-or-nothing: every bad row is reported (file, row number, column, reason) and no
document is returned when any row is bad.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from yaolian.codes.identity import NMPA_KEY, canonical_key, uri_for_key
from yaolian.epcis.extensions import LOT_KEY, SALE_LINE_KEY, YAOLIAN_NS
from yaolian.epcis.jsonld import EPCIS_CONTEXT
from yaolian.epcis.model import (
    CHINA_TIME,
    Document,
    Event,
    parse_local_date,
    parse_local_time,
)
from yaolian.errors import NUL, CodeError, Problem, ValidationError
from yaolian.tables import cell_text, decode_text, open_workbook, reading_csv

MAX_PROBLEMS = 1000  # stop collecting (not checking) after this many bad cells

# ── columns ──────────────────────────────────────────────────────────────────────────────────
# canonical column → accepted header spellings (the first is the documented one).
COLUMNS: dict[str, tuple[str, ...]] = {
    "doc_no": ("单据号", "单据编号", "业务单据号"),
    "biz_type": ("业务类型", "单据类型"),
    "time": ("业务时间", "单据时间", "业务日期"),
    "enterprise": ("企业统一社会信用代码", "统一社会信用代码", "企业信用代码"),
    "counterparty": ("对方企业统一社会信用代码", "对方统一社会信用代码", "对方企业信用代码"),
    "codes": ("追溯码", "药品追溯码"),
    "parent": ("父码/包装码", "父码", "包装码", "上级码"),
    "product_code": ("药品标识码",),
    "lot": ("批号", "生产批号"),
    "production_date": ("生产日期",),
    "expiry": ("有效期至", "有效期", "有效期截止日期"),
    "quantity": ("数量",),
    "split": ("拆零标识", "拆零"),
    "operator": ("操作人", "经办人"),
    "site": ("场所编码", "仓库编码", "库房编码"),
    "counterparty_site": ("对方场所编码", "对方仓库编码"),
}
REQUIRED = ("doc_no", "biz_type", "time", "enterprise", "codes")
HEADER_OF = {key: names[0] for key, names in COLUMNS.items()}


@dataclass(frozen=True)
class BizType:
    """How one 业务类型 maps to an EPCIS event."""

    event_type: str
    action: str
    biz_step: str
    disposition: str | None
    direction: str | None  # "out": enterprise → counterparty; "in": counterparty → enterprise
    tx_type: str | None  # CBV business transaction type of the 单据号
    needs_parent: bool = False
    needs_counterparty: bool = False
    has_ilmd: bool = False
    sale: bool = False  # dispense / retail: 拆零 allowed


_PRODUCE = BizType(
    "ObjectEvent", "ADD", "commissioning", "active", None, "prodorder", has_ilmd=True
)
_PACK = BizType("AggregationEvent", "ADD", "packing", "in_progress", None, None, needs_parent=True)
_UNPACK = BizType("AggregationEvent", "DELETE", "unpacking", None, None, None, needs_parent=True)
_SHIP = BizType(
    "ObjectEvent", "OBSERVE", "shipping", "in_transit", "out", "desadv", needs_counterparty=True
)
_RECEIVE = BizType(
    "ObjectEvent", "OBSERVE", "receiving", "in_progress", "in", "recadv", needs_counterparty=True
)
_RETURN_IN = BizType(
    "ObjectEvent", "OBSERVE", "receiving", "returned", "in", "rma", needs_counterparty=True
)
_RETURN_OUT = BizType(
    "ObjectEvent", "OBSERVE", "shipping", "returned", "out", "rma", needs_counterparty=True
)
_TRANSFER_OUT = BizType("ObjectEvent", "OBSERVE", "shipping", "in_transit", "out", "desadv")
_TRANSFER_IN = BizType("ObjectEvent", "OBSERVE", "receiving", "in_progress", "in", "recadv")
_DESTROY = BizType("ObjectEvent", "DELETE", "destroying", "destroyed", None, None)
_STOCKTAKE = BizType("ObjectEvent", "OBSERVE", "cycle_counting", None, None, None)
_DISPENSE = BizType("ObjectEvent", "OBSERVE", "dispensing", "dispensed", None, "inv", sale=True)
_RETAIL = BizType("ObjectEvent", "OBSERVE", "retail_selling", "retail_sold", None, "inv", sale=True)

# 业务类型 (as written in the file, spaces ignored) → mapping. The first name of each group is the
# documented one; the others are spellings found in enterprise systems.
BIZ_TYPES: dict[str, BizType] = {
    **dict.fromkeys(("生产", "生产入库", "赋码", "生产赋码"), _PRODUCE),
    **dict.fromkeys(("包装关联", "关联", "装箱", "赋码关联"), _PACK),
    **dict.fromkeys(("解除关联", "拆箱", "取消关联"), _UNPACK),
    **dict.fromkeys(("生产出库", "销售出库", "发货出库", "出库"), _SHIP),
    **dict.fromkeys(("采购入库", "购进入库", "入库", "收货入库"), _RECEIVE),
    **dict.fromkeys(("退货入库", "销售退回入库", "销后退回"), _RETURN_IN),
    **dict.fromkeys(("退货出库", "采购退出出库", "购进退出"), _RETURN_OUT),
    **dict.fromkeys(("调拨出库", "移库出库"), _TRANSFER_OUT),
    **dict.fromkeys(("调拨入库", "移库入库"), _TRANSFER_IN),
    **dict.fromkeys(("销毁", "销毁出库"), _DESTROY),
    **dict.fromkeys(("盘点",), _STOCKTAKE),
    **dict.fromkeys(("使用出库", "使用", "发药", "门诊发药", "住院发药"), _DISPENSE),
    **dict.fromkeys(("零售出库", "零售", "零售销售"), _RETAIL),
}

_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")
_CODE_SPLIT = re.compile(r"[;,；，、\s]+")
# a spreadsheet keeps a number to 15 significant digits: a longer code stored as a number lost
# its last digits, and reads back as a number or, exported to CSV, as 8.6000010000000E+19
_EXACT_DIGITS = 15
_SCIENTIFIC = re.compile(r"^[0-9](?:\.[0-9]+)?E\+?[0-9]+$", re.IGNORECASE)
_LOST_DIGITS = (
    "a spreadsheet stored the code as a number and kept only its first 15 digits: format the "
    "column as text (文本) and enter the codes again"
)
_YES = {"1", "是", "y", "yes", "true", "t", "拆零"}
_NO = {"", "0", "否", "n", "no", "false", "f"}


# ── identifiers ──────────────────────────────────────────────────────────────────────────────
def code_uri(code: Any) -> str:
    """The EPCIS identifier of a trace code as written in a data-set file (a cell's value).

    The codes layer checks it (issuer rule, GS1 element string, URI) and gives its canonical
    URI: ``urn:nmpa:code:{code}`` for an NMPA rule-(a) code, the EPC URI (or Digital Link when
    the company prefix length is unknown) for a GS1 code. A code a spreadsheet stored as a
    number — it lost its last digits — is refused. Raises ``ValueError`` with the reason.
    """
    if isinstance(code, float) and abs(code) >= 10**_EXACT_DIGITS:
        raise ValueError(f"{code:.14E}: {_LOST_DIGITS}")
    text = cell_text(code)
    if _SCIENTIFIC.match(text):
        raise ValueError(f"{text}: {_LOST_DIGITS}")
    try:
        return uri_for_key(canonical_key(text), "any")
    except CodeError as exc:
        raise ValueError(str(exc)) from None


def party_uri(uscc: str) -> str:
    """The EPCIS party identifier of an enterprise by its 统一社会信用代码."""
    return f"urn:yaolian:uscc:{uscc}"


def document_uri(uscc: str, doc_no: str) -> str:
    """The business-transaction identifier of an enterprise's document (单据号)."""
    return f"urn:yaolian:doc:{uscc}:{quote(doc_no, safe='')}"


def site_uri(site: str) -> str:
    """A 场所编码 as a location identifier: URIs kept, other values under ``urn:yaolian:site:``."""
    text = site.strip()
    if text.startswith(("urn:", "http://", "https://")):
        return text
    return f"urn:yaolian:site:{quote(text, safe='')}"


# ── cell parsers (raise ValueError with the reason) ─────────────────────────────────────────
def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = cell_text(value)
        if not text:
            raise ValueError("is empty")
        return parse_local_time(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=CHINA_TIME)


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return parse_local_date(cell_text(value))


def _parse_bool(value: Any) -> bool:
    text = cell_text(value).lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"{text!r} is not a yes/no value (use 1/0 or 是/否)")


def _parse_quantity(value: Any) -> int:
    text = cell_text(value)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if number <= 0 or not number.is_integer():
        raise ValueError(f"{text!r} must be a positive whole number")
    return int(number)


def _offset_text(dt: datetime) -> str:
    offset = dt.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ── rows → events ────────────────────────────────────────────────────────────────────────────
class _RowChecker:
    """Maps one row to an event, collecting every fault as a :class:`Problem`."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems

    def fault(self, row_no: int, column: str | None, reason: str) -> None:
        place = f"{self.source}:{row_no}"
        if column:
            place += f" column {HEADER_OF.get(column, column)}"
        self.problems.append(Problem(reason=reason, place=place))

    def event(self, row_no: int, row: Mapping[str, Any]) -> Event | None:
        """The row's event, or ``None`` after recording its faults."""
        before = len(self.problems)
        for key in REQUIRED:
            if not cell_text(row.get(key)):
                self.fault(row_no, key, "is required and empty")
        for key, value in row.items():
            if isinstance(value, str) and NUL in value:
                self.fault(row_no, key, "contains a NUL character (U+0000)")
        if len(self.problems) > before:
            return None

        biz_text = re.sub(r"\s+", "", cell_text(row["biz_type"]))
        biz = BIZ_TYPES.get(biz_text)
        if biz is None:
            known = "、".join(_DOCUMENTED_BIZ_TYPES)
            self.fault(row_no, "biz_type", f"unknown 业务类型 {biz_text!r} (known: {known})")
            return None

        enterprise = self._uscc(row_no, "enterprise", row.get("enterprise"))
        counterparty = None
        if cell_text(row.get("counterparty")):
            counterparty = self._uscc(row_no, "counterparty", row.get("counterparty"))
        elif biz.needs_counterparty:
            self.fault(row_no, "counterparty", f"is required for 业务类型 {biz_text}")

        when = self._cell(row_no, "time", row.get("time"), _parse_time)
        codes = self._codes(row_no, row)
        parent = None
        if cell_text(row.get("parent")):
            parent = self._cell(row_no, "parent", row.get("parent"), code_uri)
        elif biz.needs_parent:
            self.fault(row_no, "parent", f"is required for 业务类型 {biz_text}")

        split = False
        if cell_text(row.get("split")):
            split = bool(self._cell(row_no, "split", row.get("split"), _parse_bool))
        if split and not biz.sale:
            self.fault(row_no, "split", f"拆零 applies only to 使用出库 / 零售出库, not {biz_text}")
        quantity = None
        if cell_text(row.get("quantity")):
            quantity = self._cell(row_no, "quantity", row.get("quantity"), _parse_quantity)
        elif split:
            self.fault(row_no, "quantity", "is required for a split sale (拆零): units sold")
        if split and codes is not None and len(codes) != 1:
            self.fault(row_no, "codes", "a split sale (拆零) row carries exactly one trace code")

        production = expiry = None
        if cell_text(row.get("production_date")):
            production = self._cell(
                row_no, "production_date", row.get("production_date"), _parse_date
            )
        if cell_text(row.get("expiry")):
            expiry = self._cell(row_no, "expiry", row.get("expiry"), _parse_date)
        if production and expiry and expiry < production:
            self.fault(row_no, "expiry", f"有效期至 {expiry} is before 生产日期 {production}")
        self._product_code(row_no, row, codes)

        if len(self.problems) > before or when is None or codes is None or enterprise is None:
            return None
        return _build_event(
            biz,
            row,
            when=when,
            codes=codes,
            parent=parent,
            enterprise=enterprise,
            counterparty=counterparty,
            split=split,
            quantity=quantity,
            production=production,
            expiry=expiry,
        )

    def _cell(self, row_no: int, column: str, value: Any, parse: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            self.fault(row_no, column, str(exc))
            return None

    def _uscc(self, row_no: int, column: str, value: Any) -> str | None:
        text = cell_text(value).upper()
        if not _USCC.match(text):
            self.fault(
                row_no, column, f"{text!r} is not an 18-character 统一社会信用代码 (GB 32100)"
            )
            return None
        return text

    def _codes(self, row_no: int, row: Mapping[str, Any]) -> list[str] | None:
        cell = row.get("codes")  # one code a spreadsheet made a number, or a list as text
        parts = [cell] if isinstance(cell, float) else _CODE_SPLIT.split(cell_text(cell))
        uris: list[str] = []
        ok = True
        for text in (c for c in parts if c):
            try:
                uris.append(code_uri(text))
            except ValueError as exc:
                self.fault(row_no, "codes", str(exc))
                ok = False
        if ok and len(set(uris)) != len(uris):
            self.fault(row_no, "codes", "the same trace code is listed twice")
            ok = False
        return uris if ok and uris else None

    def _product_code(self, row_no: int, row: Mapping[str, Any], codes: list[str] | None) -> None:
        """Each code must belong to the row's 药品标识码 (NMPA prefix or GS1 GTIN), when given."""
        product = cell_text(row.get("product_code"))
        if not product or not codes:
            return
        for uri in codes:
            key = canonical_key(uri)
            if key.startswith(NMPA_KEY):
                ok, shown = key[len(NMPA_KEY) :].startswith(product), key[len(NMPA_KEY) :]
            elif key.startswith("01/"):
                ok, shown = key[3:17] == product.zfill(14), uri
            else:
                continue
            if not ok:
                self.fault(
                    row_no, "codes", f"trace code {shown} does not belong to 药品标识码 {product}"
                )


_DOCUMENTED_BIZ_TYPES = (
    "生产",
    "包装关联",
    "解除关联",
    "生产出库",
    "销售出库",
    "采购入库",
    "退货入库",
    "退货出库",
    "调拨出库",
    "调拨入库",
    "销毁",
    "盘点",
    "使用出库",
    "零售出库",
)


def _build_event(
    biz: BizType,
    row: Mapping[str, Any],
    *,
    when: datetime,
    codes: list[str],
    parent: str | None,
    enterprise: str,
    counterparty: str | None,
    split: bool,
    quantity: int | None,
    production: date | None,
    expiry: date | None,
) -> Event:
    doc_no = cell_text(row["doc_no"])
    event: Event = {
        "type": biz.event_type,
        "eventTime": when.isoformat(),
        "eventTimeZoneOffset": _offset_text(when),
    }
    if biz.event_type == "AggregationEvent":
        event["parentID"] = parent
        event["childEPCs"] = codes
    else:
        event["epcList"] = codes
    event["action"] = biz.action
    event["bizStep"] = biz.biz_step
    disposition = "partially_dispensed" if split else biz.disposition
    if disposition:
        event["disposition"] = disposition
    site = cell_text(row.get("site"))
    if site:
        event["readPoint"] = {"id": site_uri(site)}
        event["bizLocation"] = {"id": site_uri(site)}
    tx: dict[str, str] = {"bizTransaction": document_uri(enterprise, doc_no)}
    if biz.tx_type:
        tx = {"type": biz.tx_type, **tx}
    event["bizTransactionList"] = [tx]
    if biz.direction:
        _add_parties(event, biz.direction, enterprise, counterparty, row)
    if biz.has_ilmd:
        ilmd: dict[str, str] = {}
        if cell_text(row.get("lot")):
            ilmd["cbvmda:lotNumber"] = cell_text(row.get("lot"))
        if production:
            ilmd["cbvmda:productionDate"] = production.isoformat()
        if expiry:
            ilmd["cbvmda:itemExpirationDate"] = expiry.isoformat()
        if ilmd:
            event["ilmd"] = ilmd
    elif cell_text(row.get("lot")):
        event[LOT_KEY] = cell_text(row.get("lot"))
    event["yaolian:enterprise"] = enterprise
    event["yaolian:documentNumber"] = doc_no
    event["yaolian:bizType"] = re.sub(r"\s+", "", cell_text(row["biz_type"]))
    if biz.sale:  # the same facts as an NHSA sale line (verify.dispense), for the sale rules
        line: dict[str, Any] = {"splitSale": split}
        if quantity is not None:
            line["quantity"] = quantity
            if split:
                line["units"] = quantity
        event[SALE_LINE_KEY] = line
    elif quantity is not None:
        event["yaolian:quantity"] = quantity
    if cell_text(row.get("operator")):
        event["yaolian:operator"] = cell_text(row.get("operator"))
    return event


def _add_parties(
    event: Event, direction: str, enterprise: str, counterparty: str | None, row: Mapping[str, Any]
) -> None:
    me, other = party_uri(enterprise), party_uri(counterparty) if counterparty else None
    src, dst = (me, other) if direction == "out" else (other, me)
    site, other_site = cell_text(row.get("site")), cell_text(row.get("counterparty_site"))
    src_site, dst_site = (site, other_site) if direction == "out" else (other_site, site)
    sources = [{"type": "owning_party", "source": src}] if src else []
    destinations = [{"type": "owning_party", "destination": dst}] if dst else []
    if src_site:
        sources.append({"type": "location", "source": site_uri(src_site)})
    if dst_site:
        destinations.append({"type": "location", "destination": site_uri(dst_site)})
    if sources:
        event["sourceList"] = sources
    if destinations:
        event["destinationList"] = destinations


# ── files ────────────────────────────────────────────────────────────────────────────────────
def _header_map(header: Iterable[Any], source: str) -> dict[int, str]:
    """Column index → canonical key; unknown headers are ignored, required ones must be there."""
    alias = {name: key for key, names in COLUMNS.items() for name in names}
    mapping: dict[int, str] = {}
    for index, cell in enumerate(header):
        key = alias.get(re.sub(r"\s+", "", cell_text(cell)))
        if key and key not in mapping.values():
            mapping[index] = key
    missing = [HEADER_OF[k] for k in REQUIRED if k not in mapping.values()]
    if missing:
        raise ValidationError(
            f"missing column(s) {', '.join(missing)}; the header row must name at least "
            + "、".join(HEADER_OF[k] for k in REQUIRED),
            place=f"{source}:1",
        )
    return mapping


def _rows_to_document(rows: Iterator[tuple[Any, ...]], source: str) -> Document:
    try:
        header = next(rows)
    except StopIteration:
        raise ValidationError("the file is empty (no header row)", place=source) from None
    columns = _header_map(header, source)
    problems: list[Problem] = []
    checker = _RowChecker(source, problems)
    events: list[Event] = []
    for row_no, values in enumerate(rows, start=2):
        if all(cell_text(v) == "" for v in values):
            continue
        row = {key: values[i] if i < len(values) else None for i, key in columns.items()}
        event = checker.event(row_no, row)
        if event is not None and not problems:
            events.append(event)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ValidationError(
            f"{len(problems)} bad cell(s); nothing imported from this file",
            place=source,
            problems=problems,
        )
    if not events:
        raise ValidationError("the file has a header row but no records", place=source)
    return Document(
        events=events,
        context=[EPCIS_CONTEXT, {"yaolian": YAOLIAN_NS}],
        extra={"source": source, "format": "nmpa-dataset"},
    )


def read_nmpa_csv(data: bytes | str, source: str = "<csv>") -> Document:
    """An NMPA data-set CSV (bytes in UTF-8/GB18030, or text) as a :class:`Document`."""
    text = decode_text(data, source) if isinstance(data, bytes) else data
    first_line = text.split("\n", 1)[0]
    dialect = csv.excel_tab if "\t" in first_line and "," not in first_line else csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    with reading_csv(source):
        return _rows_to_document((tuple(r) for r in reader), source)


def read_nmpa_xlsx(stream: BinaryIO | Path | str, source: str = "<xlsx>") -> Document:
    """An NMPA data-set XLSX workbook (first sheet, streamed read-only) as a :class:`Document`."""
    with open_workbook(stream, source) as workbook:
        return _rows_to_document(workbook.worksheets[0].iter_rows(values_only=True), source)


def read_nmpa_dataset(path: str | Path) -> Document:
    """Read an NMPA data-set file chosen by extension (``.csv`` or ``.xlsx``)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".csv":
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read: {exc.strerror}", place=str(file)) from exc
        return read_nmpa_csv(data, str(file))
    if suffix in (".xlsx", ".xlsm"):
        if not file.is_file():
            raise ValidationError("no such file", place=str(file))
        return read_nmpa_xlsx(file, str(file))
    raise ValidationError(
        f"unknown data-set file type {suffix!r}; use .csv or .xlsx", place=str(file)
    )
