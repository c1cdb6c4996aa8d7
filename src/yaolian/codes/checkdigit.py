"""Check digits: GS1 mod-10 (GTIN, SSCC, GLN …) and the 药品本位码 (NMPA drug standard code)."""

from __future__ import annotations

from yaolian.errors import CodeError

_DIGITS = frozenset("0123456789")


def gs1_check_digit(body: str) -> str:
    """GS1 mod-10 check digit for a key without its check digit (GS1 General Specifications 7.9.1).

    Weights 3, 1, 3 … from the rightmost digit of ``body``.
    """
    if not body or not _DIGITS.issuperset(body):
        raise CodeError(f"check digit needs digits only, got {body!r}")
    odd = sum(map(int, body[-1::-2]))  # weight 3
    even = sum(map(int, body[-2::-2]))  # weight 1
    return str(-(3 * odd + even) % 10)


def verify_gs1_check_digit(key: str, what: str = "GS1 key") -> None:
    """Raise :class:`CodeError` unless ``key`` (digits, check digit last) checks out."""
    if not key or not _DIGITS.issuperset(key):
        raise CodeError(f"{what} {key!r}: must be digits only")
    expected = gs1_check_digit(key[:-1])
    if key[-1] != expected:
        raise CodeError(
            f"{what} {key}: bad check digit {key[-1]}, expected {expected}",
            reason_zh=f"校验位不符：末位应为 {expected}，实为 {key[-1]}，多为扫描或录入有误",
        )


def bwm_check_digit(body: str) -> str:
    """Check digit of a 药品本位码 (drug standard code, 14 digits starting ``86``).

    国家药品编码本位码编制规则: 国别码 ``86`` + 类别码 ``9`` + 本体码 (5-digit enterprise + 5-digit
    product) + one check digit computed "按照 GB 18937", i.e. GB/T 17710 (ISO/IEC 7064) MOD 11,10
    over the 13-digit body.
    """
    if not body or not _DIGITS.issuperset(body):
        raise CodeError(f"check digit needs digits only, got {body!r}")
    p = 10
    for ch in body:
        s = (p + int(ch)) % 10 or 10
        p = (2 * s) % 11
    return str((11 - p) % 10)


def verify_bwm(code: str) -> None:
    """Validate a 药品本位码: 14 digits, starting ``86``, correct check digit."""
    if len(code) != 14:
        raise CodeError(f"药品本位码 {code!r}: wrong length {len(code)}, expected 14 digits")
    if not _DIGITS.issuperset(code):
        raise CodeError(f"药品本位码 {code!r}: must be digits only")
    if not code.startswith("86"):
        raise CodeError(f"药品本位码 {code}: must start with 86")
    expected = bwm_check_digit(code[:-1])
    if code[-1] != expected:
        raise CodeError(f"药品本位码 {code}: bad check digit {code[-1]}, expected {expected}")
