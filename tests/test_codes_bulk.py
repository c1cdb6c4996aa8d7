"""Bulk validation: the vectorised paths agree with the scalar validators, row by row."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.codes.bulk import validate_gs1_bulk, validate_many, validate_nmpa_bulk
from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.gs1 import parse_element_string
from yaolian.codes.inspect import validate_code
from yaolian.codes.registry import CodeRegistry
from yaolian.errors import CodeError

REG = CodeRegistry.bundled()


def scalar_reasons(codes: list[str], check: Callable[[str], object]) -> list[tuple[int, str]]:
    out = []
    for i, code in enumerate(codes):
        try:
            check(code)
        except CodeError as exc:
            out.append((i, str(exc)))
    return out


def mutate(code: str, rng: random.Random) -> str:
    """A code with one typical fault (or unchanged)."""
    i = rng.randrange(len(code))
    return rng.choice(
        [
            code,
            code,
            code[:-1],
            code + "7",
            code[:i] + rng.choice("0123456789AZ#(\x1d中") + code[i + 1 :],
            code[:i] + code[i + 1 :],
        ]
    )


@st.composite
def nmpa_batches(draw: st.DrawFn) -> list[str]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    products = ["8600001", "8600002", "8600003", "8600099", "9600001"]
    return [
        mutate(rng.choice(products) + f"{rng.randrange(10**13):013d}", rng)
        for _ in range(draw(st.integers(0, 60)))
    ]


@st.composite
def gs1_batches(draw: st.DrawFn) -> list[str]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    out = []
    for _ in range(draw(st.integers(0, 60))):
        body = rng.choice(["0690123456789", "1690123456789", f"069{rng.randrange(10**10):010d}"])
        gtin = body + gs1_check_digit(body)
        exp = rng.choice(["280131", "270229", "280200", "281301", "290631"])
        lot, serial = f"L{rng.randrange(1000)}", f"S{rng.randrange(10**9)}"
        text = rng.choice(
            [
                f"01{gtin}17{exp}10{lot}\x1d21{serial}",
                f"01{gtin}21{serial}\x1d10{lot}",
                f"]d201{gtin}11{exp}21{serial}",
                f"(01){gtin}(17){exp}(10){lot}(21){serial}",
                f"(01){gtin}(21){serial}(10){lot}",
                f"01{gtin}10{lot}",
                f"\x1d01{gtin}11{exp}17{exp}10{lot}\x1d21{serial}",
                f"(01){gtin}(11){exp}(17){exp}(21){serial}",
                f"]Q3(01){gtin}(10){lot}",
                f"00{gtin}1234",
            ]
        )
        out.append(mutate(text, rng))
    return out


@settings(max_examples=60, deadline=None)
@given(nmpa_batches())
def test_nmpa_bulk_equals_scalar(codes: list[str]) -> None:
    result = validate_nmpa_bulk(codes, REG)
    expected = scalar_reasons(codes, REG.validate)
    assert result.problems == expected
    assert result.n_ok == len(codes) - len(expected)


@settings(max_examples=60, deadline=None)
@given(gs1_batches())
def test_gs1_bulk_equals_scalar(strings: list[str]) -> None:
    result = validate_gs1_bulk(strings)
    assert result.problems == scalar_reasons(strings, parse_element_string)
    traced = validate_gs1_bulk(strings, registry=REG)
    assert traced.problems == scalar_reasons(strings, REG.validate)


@settings(max_examples=30, deadline=None)
@given(nmpa_batches(), gs1_batches())
def test_mixed_file_equals_scalar(nmpa: list[str], gs1: list[str]) -> None:
    codes = [*nmpa, *gs1, "urn:epc:id:sgtin:6901234.056789.1", "urn:epc:id:sgtin:1.2.3"]
    random.Random(len(codes)).shuffle(codes)
    result = validate_many(codes, REG)
    assert result.problems == scalar_reasons(codes, lambda c: validate_code(c, REG))


def test_vectorised_path_handles_odd_input() -> None:
    codes = ["", "8600001000087976666\x00", "86000010000879766660", "８６０００"]
    result = validate_nmpa_bulk(codes, REG)
    assert result.ok.tolist() == [False, False, True, False]
    assert [i for i, _ in result.problems] == [0, 1, 3]
