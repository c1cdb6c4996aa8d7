"""Barcodes: render GS1 DataMatrix / GS1 QR (FNC1 in first position, FNC1 separators) and plain
DataMatrix / QR as PNG or SVG; read codes back from images (zxing-cpp for both directions).

GS1 data is recognised as an element string (bracketed, or raw with GS) and validated before it
is encoded; reading returns the transmitted data with GS separators restored (what a scanner
sends after the ``]d2`` / ``]Q3`` symbology identifier) plus the bracketed form.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import zxingcpp
from PIL import Image, UnidentifiedImageError

from yaolian.codes.gs1 import build_element_string, parse_element_string
from yaolian.codes.nmpa import looks_like_gs1
from yaolian.errors import CodeError

Kind = Literal["datamatrix", "qr"]
Format = Literal["png", "svg"]
_FORMATS = {"datamatrix": zxingcpp.BarcodeFormat.DataMatrix, "qr": zxingcpp.BarcodeFormat.QRCode}
_GS1_IDS = ("]d2", "]Q3", "]C1", "]e0", "]J1")


def is_gs1_data(data: str) -> bool:
    """Whether ``data`` is meant as a GS1 element string (bracketed, or raw with GS/FNC1)."""
    return looks_like_gs1(data)


def render(data: str, kind: Kind = "datamatrix", fmt: Format = "png", scale: int = 4) -> bytes:
    """A symbol for ``data`` as PNG bytes or SVG (UTF-8) bytes.

    GS1 element strings become GS1 DataMatrix / GS1 QR; anything else a plain symbol.
    """
    if kind not in _FORMATS:
        raise CodeError(f"unknown barcode kind {kind!r}: use datamatrix or qr")
    if fmt not in ("png", "svg"):
        raise CodeError(f"unknown image format {fmt!r}: use png or svg")
    if not data:
        raise CodeError("nothing to encode")
    gs1 = is_gs1_data(data)
    content = build_element_string(parse_element_string(data), bracketed=True) if gs1 else data
    try:
        symbol = zxingcpp.create_barcode(content, _FORMATS[kind], gs1=gs1)
    except Exception as exc:  # zxing-cpp raises plain exceptions for content it cannot encode
        raise CodeError(f"cannot encode as {kind}: {exc}") from exc
    if fmt == "svg":
        return zxingcpp.write_barcode_to_svg(symbol, scale=scale).encode()
    pixels = np.array(zxingcpp.write_barcode_to_image(symbol, scale=scale))
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def render_to_file(data: str, path: Path, kind: Kind = "datamatrix", scale: int = 4) -> Path:
    """Render to ``path``; the suffix (``.png`` / ``.svg``) picks the format."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise CodeError(f"{path}: output file must end in .png or .svg")
    fmt: Format = "svg" if suffix == "svg" else "png"
    image = render(data, kind, fmt, scale)
    try:
        path.write_bytes(image)
    except OSError as exc:
        raise CodeError(f"cannot write: {exc.strerror}", place=str(path)) from exc
    return path


@dataclass(frozen=True)
class Decoded:
    """One symbol found in an image."""

    text: str  # transmitted data, GS separators restored for GS1
    format: str  # "DataMatrix", "QRCode" …
    gs1: bool
    symbology_identifier: str
    hri: str | None  # bracketed element string for GS1 symbols

    def as_dict(self) -> dict[str, object]:
        """Plain-data view (JSON output)."""
        return {
            "text": self.text,
            "format": self.format,
            "gs1": self.gs1,
            "symbology_identifier": self.symbology_identifier,
            "hri": self.hri,
        }


MAX_PIXELS = 40_000_000
"""Largest image read (a 40-megapixel phone photo); larger ones are refused before decoding."""


def _open(image: Path | bytes) -> Image.Image:
    """The image in grey levels, fully decoded; a missing, unreadable, truncated or oversized
    image is a :class:`CodeError` naming it."""
    where = "image" if isinstance(image, bytes) else str(image)
    try:
        picture = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
        if picture.width * picture.height > MAX_PIXELS:
            raise CodeError(
                f"{picture.width}×{picture.height} pixels: larger than {MAX_PIXELS:,}", place=where
            )
        return picture.convert("L")
    except FileNotFoundError as exc:
        raise CodeError("no such file", place=where) from exc
    except UnidentifiedImageError as exc:
        raise CodeError(
            "not an image format this reads (PNG, JPEG, WebP, BMP, GIF, TIFF)", place=where
        ) from exc
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise CodeError(f"not a readable image ({exc})", place=where) from exc


def _hri(text: str) -> str | None:
    try:
        return build_element_string(parse_element_string(text), bracketed=True)
    except CodeError:
        return None  # a GS1 symbol with data that breaks GS1 rules: text only


def read_image(image: Path | bytes) -> list[Decoded]:
    """Every barcode in a PNG/JPEG/… image (path or bytes)."""
    found = zxingcpp.read_barcodes(_open(image), text_mode=zxingcpp.TextMode.Plain)
    out: list[Decoded] = []
    for symbol in found:
        sid = symbol.symbology_identifier
        gs1 = symbol.content_type == zxingcpp.ContentType.GS1 or sid in _GS1_IDS
        text = symbol.text
        hri = _hri(text) if gs1 else None
        fmt = str(symbol.format).replace(" ", "")
        out.append(Decoded(text, fmt, gs1, sid, hri))
    return out
