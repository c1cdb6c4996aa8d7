"""Barcodes: render → read round trips for GS1 DataMatrix / GS1 QR and plain symbols."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from PIL import Image

from yaolian.codes.barcode import read_image, render, render_to_file
from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.gs1 import GS, build_element_string
from yaolian.errors import CodeError

SERIAL = st.text("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ-./", min_size=1, max_size=20)


@pytest.mark.parametrize("kind", ["datamatrix", "qr"])
@settings(max_examples=15, deadline=None)
@given(body=st.text("0123456789", min_size=13, max_size=13), serial=SERIAL, lot=SERIAL)
def test_gs1_round_trip(kind: str, body: str, serial: str, lot: str) -> None:
    pairs = [("01", body + gs1_check_digit(body)), ("17", "281031"), ("10", lot), ("21", serial)]
    hri = build_element_string(pairs, bracketed=True)
    found = read_image(render(hri, kind))  # type: ignore[arg-type]
    assert len(found) == 1
    symbol = found[0]
    assert symbol.gs1
    assert symbol.symbology_identifier.startswith("]d" if kind == "datamatrix" else "]Q")
    assert symbol.text == build_element_string(pairs)  # FNC1 separators back as GS
    assert GS in symbol.text
    assert symbol.hri == hri


@pytest.mark.parametrize("kind", ["datamatrix", "qr"])
def test_plain_round_trip(kind: str) -> None:
    for data in ("86000013737014374357", "https://id.gs1.org/01/06901234567892/21/X1"):
        found = read_image(render(data, kind))  # type: ignore[arg-type]
        assert [(d.text, d.gs1) for d in found] == [(data, False)]


def test_raw_gs_input_and_files(tmp_path: Path) -> None:
    raw = "0106901234567892" + "10L1" + GS + "21X1"
    png = render_to_file(raw, tmp_path / "a.png")
    assert read_image(png)[0].text == raw
    svg = render_to_file(raw, tmp_path / "a.svg", kind="qr")
    root = etree.fromstring(svg.read_bytes())
    assert root.tag.endswith("svg")
    assert int(root.get("width", "0")) > 20


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(CodeError, match="bad check digit"):
        render("(01)06901234567893(21)X1")
    with pytest.raises(CodeError, match="nothing to encode"):
        render("")
    with pytest.raises(CodeError, match=r"must end in \.png or \.svg"):
        render_to_file("x", tmp_path / "a.gif")
    with pytest.raises(CodeError, match="cannot write"):
        render_to_file("x", tmp_path / "no" / "such" / "dir.png")
    with pytest.raises(CodeError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(CodeError, match="not an image format this reads"):
        read_image(tmp_path / "not.png")
    png = render("86000010391845214720")
    with pytest.raises(CodeError, match="not a readable image"):
        read_image(png[: len(png) // 2])  # truncated: refused, not half-read
    huge = io.BytesIO()
    Image.new("L", (8000, 6000), 255).save(huge, format="PNG")  # 48 MP of white, 60 kB
    with pytest.raises(CodeError, match="larger than 40,000,000"):
        read_image(huge.getvalue())
