"""GS1 check digits, AIs and element strings: properties, round trips and precise errors."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.codes.checkdigit import (
    bwm_check_digit,
    gs1_check_digit,
    verify_bwm,
    verify_gs1_check_digit,
)
from yaolian.codes.gs1 import (
    CSET82,
    GS,
    build_element_string,
    gs1_date,
    normalize_gtin,
    order_for_symbol,
    parse_element_string,
    verify_key,
)
from yaolian.errors import CodeError

digits = st.text(alphabet="0123456789", min_size=1, max_size=17)
X = "".join(sorted(CSET82))
X_NO_PAREN = X.replace("(", "").replace(")", "")


@st.composite
def gtin14(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=13, max_size=13))
    return body + gs1_check_digit(body)


@st.composite
def yymmdd(draw: st.DrawFn) -> str:
    day = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)))
    return day.strftime("%y%m%d")


def test_known_check_digits() -> None:
    # GS1 General Specifications examples and well-known keys
    assert gs1_check_digit("629104150021") == "3"  # GTIN-13 6291041500213
    assert gs1_check_digit("0061414199999") == "6"  # GTIN-14 00614141999996 (GS1 example)
    assert gs1_check_digit("10614141192837465") == "7"  # SSCC worked example
    verify_gs1_check_digit("6901234567892")
    with pytest.raises(CodeError, match="bad check digit 3, expected 2"):
        verify_gs1_check_digit("6901234567893", "GTIN")


@settings(deadline=None)
@given(digits, st.data())
def test_single_digit_change_always_detected(body: str, data: st.DataObject) -> None:
    key = body + gs1_check_digit(body)
    pos = data.draw(st.integers(0, len(key) - 1))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != key[pos]]))
    changed = key[:pos] + new + key[pos + 1 :]
    with pytest.raises(CodeError, match="bad check digit"):
        verify_gs1_check_digit(changed)


@settings(deadline=None)
@given(digits, st.data())
def test_adjacent_transposition_detected_unless_differ_by_five(
    body: str, data: st.DataObject
) -> None:
    key = body + gs1_check_digit(body)
    if len(key) < 2:
        return
    i = data.draw(st.integers(0, len(key) - 2))
    a, b = key[i], key[i + 1]
    swapped = key[:i] + b + a + key[i + 2 :]
    if a == b or abs(int(a) - int(b)) == 5:
        return  # mod 10 with weights 3/1 cannot see these (GS1 GenSpecs 7.9.1)
    with pytest.raises(CodeError):
        verify_gs1_check_digit(swapped)


@settings(deadline=None)
@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.data())
def test_bwm_single_digit_change_detected(body11: str, data: st.DataObject) -> None:
    body = "86" + body11
    code = body + bwm_check_digit(body)
    verify_bwm(code)
    pos = data.draw(st.integers(2, 13))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != code[pos]]))
    with pytest.raises(CodeError, match="药品本位码"):
        verify_bwm(code[:pos] + new + code[pos + 1 :])


def test_bwm_errors() -> None:
    with pytest.raises(CodeError, match="wrong length 13"):
        verify_bwm("8690000100001")
    with pytest.raises(CodeError, match="must start with 86"):
        verify_bwm("69000010000019")


@pytest.mark.parametrize(
    ("gtin", "expected"),
    [
        ("12345670", "00000012345670"),
        ("614141000036", "00614141000036"),
        ("6901234567892", "06901234567892"),
        ("16901234567899", "16901234567899"),
    ],
)
def test_normalize_gtin(gtin: str, expected: str) -> None:
    assert normalize_gtin(gtin) == expected


def test_key_errors() -> None:
    with pytest.raises(CodeError, match="wrong length 11"):
        normalize_gtin("69012345678")
    with pytest.raises(CodeError, match=r"SSCC .*wrong length"):
        verify_key("sscc", "12345")
    verify_key("gln", "6901234000016")


@settings(deadline=None)
@given(gtin14(), st.text(X, min_size=1, max_size=20), st.text(X, min_size=1, max_size=20), yymmdd())
def test_element_string_round_trip_raw(gtin: str, lot: str, serial: str, expiry: str) -> None:
    pairs = [("01", gtin), ("17", expiry), ("10", lot), ("21", serial)]
    raw = build_element_string(pairs)
    assert parse_element_string(raw) == pairs
    assert build_element_string(parse_element_string(raw)) == raw
    assert parse_element_string("]d2" + raw) == pairs


@settings(deadline=None)
@given(
    gtin14(),
    st.text(X_NO_PAREN, min_size=1, max_size=20),
    st.text(X_NO_PAREN, min_size=1, max_size=20),
    yymmdd(),
)
def test_element_string_round_trip_bracketed(gtin: str, lot: str, serial: str, expiry: str) -> None:
    pairs = [("01", gtin), ("10", lot), ("21", serial), ("17", expiry)]
    hri = build_element_string(pairs, bracketed=True)
    assert parse_element_string(hri) == pairs
    # the symbol order puts fixed-length AIs first: fewer separators, same data
    ordered = order_for_symbol(pairs)
    assert [ai for ai, _ in ordered] == ["01", "17", "10", "21"]
    assert parse_element_string(build_element_string(ordered)) == ordered


def test_separator_rules() -> None:
    pairs = [("01", "06901234567892"), ("10", "L1"), ("21", "S1"), ("17", "280131")]
    raw = build_element_string(pairs)
    # GS after every variable-length field that is not last; none after predefined ones
    assert raw == "0106901234567892" + "10L1" + GS + "21S1" + GS + "17280131"
    assert (
        build_element_string([("00", "069012340000000016"), ("02", "06901234567892"), ("37", "12")])
        == "00069012340000000016020690123456789237" + "12"
    )


def test_sscc_gln_and_measures() -> None:
    pairs = parse_element_string("(00)069012340000000016(414)6901234000016(254)A1(3103)001250")
    assert pairs == [
        ("00", "069012340000000016"),
        ("414", "6901234000016"),
        ("254", "A1"),
        ("3103", "001250"),
    ]
    raw = build_element_string(pairs)
    assert parse_element_string(raw) == pairs


def test_dates() -> None:
    this_year = date.today().year
    assert gs1_date("280131") == date(2028, 1, 31)
    assert gs1_date("280200") == date(2028, 2, 29)  # DD=00: last day of the month
    assert gs1_date("270200") == date(2027, 2, 28)
    far = (this_year + 60) % 100  # more than 50 years ahead → previous century
    assert gs1_date(f"{far:02d}0101").year == this_year + 60 - 100


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("(01)06901234567893(21)1", "AI (01) GTIN 06901234567893: bad check digit 3, expected 2"),
        ("(01)0690123456789(21)1", "AI (01) GTIN: wrong length 13, expected 14"),
        (
            "(01)06901234567892(17)281301(21)1",
            "AI (17) USE BY or EXPIRY 281301 is not a date: month 13",
        ),
        ("(01)06901234567892(17)270229(21)1", "not a date: day 29 of 2027-02"),
        ("(01)06901234567892(17)2701AB(21)1", "is not a date: expected YYMMDD"),
        ("(01)06901234567892(99999)X", "unknown AI (99999)"),
        ("0106901234567892" + "23X", "unknown AI 23"),
        ("(01)06901234567892(21)" + "X" * 21, "AI (21) SERIAL: wrong length 21, expected 1–20"),
        ("0106901234567892" + "21" + "X" * 25, "longer than 20 characters (missing GS separator?)"),
        ("(01)06901234567892(21)A#B", "AI (21) SERIAL: character '#' not allowed"),
        ("(21)ABC", "AI (21) SERIAL needs AI (01) GTIN"),
        ("(01)06901234567892(21)A(21)B", "AI (21) appears twice"),
        ("", "empty element string"),
        ("hello", "expected an application identifier at position 1"),
    ],
)
def test_precise_errors(text: str, reason: str) -> None:
    with pytest.raises(CodeError, match=re.escape(reason)):
        parse_element_string(text)
