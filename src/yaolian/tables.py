"""Reading tables — CSV text and XLSX workbooks (NMPA data sets, sale lines, master data, code
registries) — so that a bad file is bad input, never an internal error.

CSV: the ``csv`` module refuses a field over its size limit or a malformed quote while rows are
read; :func:`reading_csv` turns that into a :class:`ValidationError` at the file.

XLSX: openpyxl's read-only mode parses each sheet while its rows are read, so a damaged workbook can
fail then, not only when it is opened: a member whose compressed data or CRC is broken, XML that
is malformed, or XML whose entities would expand without bound (the XML parser stops a
"billion laughs" file). Each of these is a :class:`ValidationError` at the file's place.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator
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
