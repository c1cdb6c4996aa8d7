"""One entry point for every EPCIS serialisation: sniff JSON vs XML and dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from yaolian.epcis import jsonld, nmpa_dataset, xml
from yaolian.epcis.model import Document, Event
from yaolian.errors import ValidationError

Source = bytes | str | Path | BinaryIO


def _is_xml(head: bytes, content_type: str | None) -> bool:
    if content_type:
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct.endswith("xml"):
            return True
        if ct.endswith("json"):
            return False
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise ValidationError("the document is empty", place="line 1")
    return stripped[:1] == b"<"


def _bytes(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str):
        return source.encode("utf-8")
    if isinstance(source, Path):
        try:
            return source.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read file: {exc.strerror}", place=str(source)) from None
    return source.read()


def read_document(data: Source, content_type: str | None = None) -> Document:
    """Read an EPCIS document in JSON-LD or XML (2.0 / 1.2) into a :class:`Document`.

    JSON vs XML is taken from ``content_type`` when given (``application/json``,
    ``application/ld+json``, ``application/xml`` …), else sniffed from the first character.
    Bad input raises :class:`yaolian.errors.ValidationError` naming line or JSON pointer.
    """
    if isinstance(data, Path) and data.suffix.lower() in (".csv", ".xlsx"):  # NMPA data set
        return nmpa_dataset.read_nmpa_dataset(data)
    raw = _bytes(data)
    if _is_xml(raw[:64], content_type):
        return xml.read_document(raw)
    return jsonld.read_document(raw)


def iter_events(source: Source, content_type: str | None = None) -> Iterator[tuple[str, Event]]:
    """Yield ``(place, event)`` one at a time; XML is streamed, JSON parsed in one go."""
    if isinstance(source, Path):
        try:
            with source.open("rb") as fh:
                if _is_xml(fh.read(64), content_type):
                    fh.seek(0)
                    yield from xml.iter_events(fh)
                    return
        except OSError as exc:
            raise ValidationError(f"cannot read file: {exc.strerror}", place=str(source)) from None
    elif (
        not isinstance(source, bytes | str)
        and hasattr(source, "peek")
        and _is_xml(source.peek(64)[:64], content_type)  # a buffered stream: no need to slurp
    ):
        yield from xml.iter_events(source)
        return
    raw = _bytes(source)
    if _is_xml(raw[:64], content_type):
        yield from xml.iter_events(raw)
        return
    doc = jsonld.read_document(raw)
    yield from zip(doc.places, doc.events, strict=True)
