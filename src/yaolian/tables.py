"""Reading tables — CSV text and XLSX workbooks (NMPA data sets, sale lines, master data, code
registries) — so that a bad file is bad input, never an internal error; and writing CSV.

CSV: the ``csv`` module refuses a field over its size limit or a malformed quote while rows are
read; :func:`reading_csv` turns that into a :class:`ValidationError` at the file.

XLSX: openpyxl's read-only mode parses each sheet while its rows are read, so a damaged workbook can
fail then, not only when it is opened: a member whose compressed data or CRC is broken, XML that
is malformed, or XML whose entities would expand without bound (the XML parser stops a
"billion laughs" file). Each of these is a :class:`ValidationError` at the file's place.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError
from zipfile import BadZipFile

from yaolian.errors import ValidationError

_OPEN_FAULTS = (BadZipFile, KeyError, OSError, ValueError, ParseError, zlib.error, EOFError)
_READ_FAULTS = (BadZipFile, OSError, ParseError, zlib.error, EOFError)  # not our own ValueErrors


@contextmanager
def open_workbook(source: IO[bytes] | Path | str, place: str) -> Iterator[Any]:
    """An openpyxl workbook, read-only with cached values; faults of the file while it is opened
    or read are :class:`ValidationError` at ``place``. Closed on leaving."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except _OPEN_FAULTS as exc:
        raise ValidationError(f"not a readable XLSX workbook: {exc}", place=place) from exc
    try:
        yield workbook
    except _READ_FAULTS as exc:
        raise ValidationError(f"not a readable XLSX workbook: {exc}", place=place) from exc
    finally:
        workbook.close()


def cell_text(value: Any) -> str:
    """A spreadsheet or JSON cell as text: blanks trimmed, a whole float without its ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sheet_records(
    sheet: Any, cell: Callable[[str, Any], Any] | None = None
) -> tuple[list[dict[str, Any]], list[int]]:
    """Records of one worksheet — its header row names the fields; empty cells and rows are
    left out — and the spreadsheet row number of each; ``cell(name, value)`` converts values."""
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    lines = sheet.iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(lines, ())]
    for number, values in enumerate(lines, start=2):
        found = {
            name: cell(name, value) if cell else value
            for name, value in zip(header, values, strict=False)
            if name and value is not None and value != ""
        }
        if found:
            records.append(found)
            numbers.append(number)
    return records, numbers


@contextmanager
def reading_csv(place: str) -> Iterator[None]:
    """Run the ``csv`` reading inside as bad input at ``place`` when the text is not readable
    CSV (a field over the size limit, a quote left open with ``strict`` dialects, …)."""
    try:
        yield
    except csv.Error as exc:
        raise ValidationError(f"not a readable CSV file: {exc}", place=place) from None


TEXT_ENCODINGS = ("utf-8-sig", "gb18030")
"""UTF-8 (a BOM dropped), else GB18030: Excel and HIS exports on Chinese Windows write CSV in
GBK, which GB18030 contains."""


def decode_text(data: bytes, place: str) -> str:
    """The text of a file's bytes in one of :data:`TEXT_ENCODINGS`; bytes that are neither are
    bad input at ``place``."""
    for encoding in TEXT_ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationError("not UTF-8 or GB18030 text", place=place)


def read_text(path: Path) -> str:
    """The text of the file at ``path`` (:func:`decode_text`); a file that cannot be read or
    decoded is bad input at the path."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror}", place=str(path)) from None
    return decode_text(data, str(path))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], *, excel: bool = False) -> str:
    """CSV text with a header row. ``excel``: begin with a byte-order mark, without which Excel
    on Chinese Windows reads UTF-8 as GBK and garbles every Chinese heading and name."""
    out = io.StringIO()
    if excel:
        out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def xlsx_bytes(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A one-sheet XLSX workbook: a bold header row, then the rows. Text stays text — an
    all-digit 统一社会信用代码 is not turned into a number as Excel does with CSV."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    lines = [list(row) for row in rows]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    for n in range(len(header)):
        width = max(_text_width(line[n]) for line in [list(header), *lines])
        sheet.column_dimensions[get_column_letter(n + 1)].width = min(width + 2, 80)
    bold = Font(bold=True)
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)
    for line in lines:
        sheet.append(line)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _text_width(value: Any) -> int:
    """Columns a value takes on screen: two per CJK character."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)
