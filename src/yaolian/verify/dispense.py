"""NHSA (医保) sale lines → dispensing events (销售/使用出库, 拆零).

A designated hospital or pharmacy uploads one line per item sold: ``drug_trac_codg`` (a list
of trace codes, each up to 100 characters), ``trdn_flag`` (1 = split sale 拆零),
``sel_retn_cnt`` (quantity: packs, or units for a split sale), ``manu_lotnum`` (batch),
``sel_retn_time``, the settlement id ``setl_id`` and the site (``site``: a location URI or the
institution's code ``fixmedins_code``). Each line becomes one EPCIS ObjectEvent — bizStep
``dispensing`` (hospital) or ``retail_selling`` (pharmacy), disposition ``dispensed`` /
``partially_dispensed`` — with the line's facts under the ``yaolian:saleLine`` extension, and is
captured through the store, so it is in the event log and every projection (sales, anomaly
rules, supply ledger). Re-uploading the same line is recognised as a duplicate (same event hash).

Files: JSON (a list of lines, or ``{"lines": [...]}``) or CSV (header row; codes separated by
``;``, ``,`` or ``|`` inside the ``drug_trac_codg`` cell). Times without an offset are China
Standard Time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from yaolian.epcis.extensions import SALE_LINE_KEY
from yaolian.epcis.model import Event, parse_local_time
from yaolian.epcis.nmpa_dataset import code_uri, site_uri
from yaolian.errors import Problem, ValidationError
from yaolian.store.ingest import AfterCapture, CaptureResult, capture_document
from yaolian.tables import cell_text, decode_text, open_workbook, reading_csv, sheet_records
from yaolian.trace.builders import document, object_event

SETTLEMENT_TX_TYPE = "urn:yaolian:btt:nhsa_settlement"  # custom business transaction type
_SPLIT_VALUES = {"1": True, "0": False, "true": True, "false": False, "": False}


@dataclass(frozen=True)
class SaleLine:
    """One NHSA sale line, checked."""

    codes: tuple[str, ...]
    split: bool
    quantity: float
    site: str
    time: datetime
    lot: str | None = None
    settlement: str | None = None
    kind: str = "dispensing"  # or retail_selling
    place: str | None = field(default=None, compare=False)  # where it was read: "book.xlsx row 3"

    def event(self) -> Event:
        """The dispensing / retail-selling ObjectEvent of this line."""
        units = self.quantity / len(self.codes) if self.split else None
        line: dict[str, Any] = {"splitSale": self.split, "quantity": self.quantity}
        if units is not None:
            line["units"] = units
        if self.settlement:
            line["settlementId"] = self.settlement
        if self.lot:
            line["lot"] = self.lot
        tx = (
            [(SETTLEMENT_TX_TYPE, f"urn:yaolian:nhsa:setl:{self.settlement}")]
            if (self.settlement)
            else []
        )
        return object_event(
            self.codes,
            self.time,
            self.kind,
            "partially_dispensed" if self.split else self.kind_disposition,
            site=self.site,
            read_point=self.site,
            biz_transactions=tx,
            extra={SALE_LINE_KEY: line},
        )

    @property
    def kind_disposition(self) -> str:
        """``dispensed`` at a hospital, ``retail_sold`` at a pharmacy."""
        return "retail_sold" if self.kind == "retail_selling" else "dispensed"


_ZIP = b"PK\x03\x04"  # an XLSX workbook is a zip archive


def _codes(value: Any, place: str) -> tuple[str, ...]:
    if isinstance(value, list | float):  # a JSON list, or one code a spreadsheet made a number
        raw = value if isinstance(value, list) else [value]
    else:
        text = cell_text(value)
        for sep in (",", "|"):
            text = text.replace(sep, ";")
        raw = [part.strip() for part in text.split(";")]
    codes = [c for c in raw if cell_text(c)]
    if not codes:
        raise ValidationError("no trace code (drug_trac_codg is empty: 无码不结算)", place=place)
    out = []
    for n, code in enumerate(codes):
        try:
            out.append(code_uri(code))
        except ValueError as exc:
            raise ValidationError(str(exc), place=f"{place}[{n}]") from None
    return tuple(out)


def _time(value: Any, place: str) -> datetime:
    text = cell_text(value)
    if not text:
        raise ValidationError("sale time is missing", place=place)
    try:
        return parse_local_time(text)
    except ValueError as exc:
        raise ValidationError(str(exc), place=place) from None


def parse_line(row: dict[str, Any], place: str) -> SaleLine:
    """Check one sale line (a dict of NHSA field names) and return it; errors name the field."""
    codes = _codes(row.get("drug_trac_codg"), f"{place}/drug_trac_codg")
    flag = cell_text(row.get("trdn_flag")).lower()
    if flag not in _SPLIT_VALUES:
        raise ValidationError(f"trdn_flag must be 0 or 1, not {flag!r}", place=f"{place}/trdn_flag")
    split = _SPLIT_VALUES[flag]
    qty_text = cell_text(row.get("sel_retn_cnt")) or (str(len(codes)) if not split else "")
    try:
        quantity = float(qty_text)
    except ValueError:
        raise ValidationError(
            f"not a number: {qty_text!r}", place=f"{place}/sel_retn_cnt"
        ) from None
    if quantity <= 0:
        raise ValidationError(
            "quantity must be positive (returns are not sale lines)", place=f"{place}/sel_retn_cnt"
        )
    if not split and quantity != len(codes):
        raise ValidationError(
            f"a whole-pack line needs one code per pack: {quantity:g} packs, {len(codes)} codes",
            place=f"{place}/sel_retn_cnt",
        )
    site = cell_text(row.get("site") or row.get("fixmedins_code"))
    if not site:
        raise ValidationError("site (or fixmedins_code) is missing", place=f"{place}/site")
    kind = cell_text(row.get("kind")) or "dispensing"
    if kind not in ("dispensing", "retail_selling"):
        raise ValidationError(
            f"kind must be dispensing or retail_selling, not {kind!r}", place=f"{place}/kind"
        )
    return SaleLine(
        codes=codes,
        split=split,
        quantity=quantity,
        site=site_uri(site),
        time=_time(row.get("sel_retn_time") or row.get("time"), f"{place}/sel_retn_time"),
        lot=cell_text(row.get("manu_lotnum")) or None,
        settlement=cell_text(row.get("setl_id") or row.get("settlement_id")) or None,
        kind=kind,
        place=place,
    )


def parse_lines(
    rows: Sequence[dict[str, Any]], source: str = "line", numbers: Sequence[int] = ()
) -> list[SaleLine]:
    """Check every row; all faults are reported together (nothing is recorded on error). A
    fault's place is ``{source} N``: the row's number in ``numbers`` (a table's, as a
    spreadsheet shows it), else its position from 1."""
    lines: list[SaleLine] = []
    problems: list[Problem] = []
    for n, row in enumerate(rows, start=1):
        place = f"{source} {numbers[n - 1] if numbers else n}"
        if not isinstance(row, dict):
            problems.append(Problem("a sale line must be an object", place))
            continue
        try:
            lines.append(parse_line(row, place))
        except ValidationError as exc:
            problems.append(Problem(exc.reason, exc.place))
    if problems:
        raise ValidationError(f"{len(problems)} bad sale line(s)", problems=problems, place=source)
    return lines


def read_sale_file(path: Path) -> list[SaleLine]:
    """Sale lines from a JSON, CSV or XLSX file (JSON by extension or when it starts with
    ``[``/``{``; a workbook by its content)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror}", place=str(path)) from None
    return read_sales(data, path.name, as_json=path.suffix.lower() == ".json")


def read_sales(
    data: bytes, source: str, *, as_json: bool = False, as_xlsx: bool = False
) -> list[SaleLine]:
    """Sale lines from bytes: JSON (``as_json``, or when they start with ``[``/``{``: a list of
    lines or ``{"lines": [...]}``), an XLSX workbook (``as_xlsx``, or by its content: a HIS
    export, its first sheet, the header row naming the fields) or CSV with a header row;
    faults are placed as ``{source} line N`` (JSON) or ``{source} row N`` (the row as a
    spreadsheet numbers it, the header row 1)."""
    numbers: list[int] = []  # a table's row numbers, its header row 1
    if as_xlsx or (data.startswith(_ZIP) and not as_json):
        with open_workbook(io.BytesIO(data), source) as workbook:
            rows, numbers = sheet_records(workbook.worksheets[0])
        where = f"{source} row"
    elif as_json or data.lstrip()[:1] in (b"[", b"{"):
        try:
            root = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"not JSON: {exc}", place=source) from None
        found = root.get("lines") if isinstance(root, dict) else root
        if not isinstance(found, list):
            raise ValidationError("expected a list of sale lines", place=source)
        rows, where = found, f"{source} line"
    else:
        text = decode_text(data, source)
        with reading_csv(source):
            reader = csv.DictReader(io.StringIO(text))
            rows = []
            for row in reader:
                rows.append(row)
                numbers.append(reader.line_num)
        where = f"{source} row"
    if not rows:  # an empty upload is a mistake, not a day without sales to report
        raise ValidationError(
            "no sale lines (an empty list, or a table without rows)", place=source
        )
    return parse_lines(rows, where, numbers)


def sales_summary(lines: Sequence[SaleLine], result: CaptureResult) -> dict[str, int]:
    """What recording ``lines`` did: how many lines, events recorded, duplicates (sent before)
    — the API's answer and the audit entry's detail."""
    return {"lines": len(lines), "recorded": result.accepted, "duplicates": result.duplicates}


def record_sales(
    engine: Engine,
    lines: Sequence[SaleLine],
    *,
    enterprise_id: int | None = None,
    source: str = "line",
    then: AfterCapture | None = None,
) -> CaptureResult:
    """Capture the sale lines as dispensing events, all or none (one transaction); a refused
    line is placed where it was read (``book.xlsx row 3/site``), or as ``{source} N`` when it
    was made in code. ``enterprise_id``: the reporting enterprise (its key records sales at its
    own sites only); ``then``: see :func:`capture_document`."""
    doc = document([line.event() for line in lines])
    doc.places = [line.place or f"{source} {n}" for n, line in enumerate(lines, start=1)]
    result = capture_document(engine, doc, enterprise_id=enterprise_id, then=then)
    result.errors = [Problem(p.reason, _line_field(p.place)) for p in result.errors]
    return result


_LINE_FIELDS = {"readPoint": "site", "bizLocation": "site", "eventTime": "sel_retn_time"}
_LINE_FIELDS |= {"epcList": "drug_trac_codg"}


def _line_field(place: str | None) -> str | None:
    """A capture fault's place in the event (``…/readPoint``) as the sale line's field
    (``…/site``)."""
    if place is None:
        return None
    line, _, rest = place.partition("/")
    name, _, tail = rest.partition("/")
    if not rest or name not in _LINE_FIELDS:
        return place
    return f"{line}/{_LINE_FIELDS[name]}" + (f"[{tail}]" if tail else "")
