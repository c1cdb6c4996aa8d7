"""NMPA drug trace codes (药品追溯码, NMPAB/T 1002): parsing against issuer rules (码制规则),
the 药品本位码 kind, and the URI convention yaolian uses for them in EPCIS documents.

A trace code meets one of two rules:

a) a registered issuer's code (发码机构码制): fixed total length, the first
   ``product_code_length`` characters the 药品标识码, the rest the 生产标识码 holding the serial;
b) an ISO/IEC 15459 code, here GS1: AI (01) GTIN + (21) serial, optionally (17) expiry and
   (10) batch — the GTIN then plays the 药品标识码.

URIs (docs/codes.md):

* instance ``urn:nmpa:code:{trace code}``
* product class ``urn:nmpa:product:{药品标识码}``
* batch class ``urn:nmpa:product:{药品标识码}:lot:{批号}`` (批号 %-encoded like a Digital Link)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import unquote

from yaolian.codes.digital_link import encode_value
from yaolian.codes.gs1 import GS, Pairs, gs1_date, parse_element_string
from yaolian.errors import CodeError

NMPA_CODE = "urn:nmpa:code:"
NMPA_PRODUCT = "urn:nmpa:product:"
LOT_SEPARATOR = ":lot:"
MAX_CODE_LENGTH = 100  # NHSA drug_trac_codg: up to 100 characters per code


@dataclass(frozen=True)
class CodeRule:
    """One issuing organisation's code rule (码制规则), held as data.

    ``prefix_pattern`` is a regular expression matched at the code's start, ``charset`` a
    regular-expression character class body (``0-9``, ``0-9A-Z`` …).
    """

    issuer: str
    total_length: int
    product_code_length: int
    prefix_pattern: str
    charset: str
    _prefix: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _body: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.product_code_length < self.total_length:
            raise CodeError(
                f"code rule {self.issuer!r}: 药品标识码 length {self.product_code_length} must be "
                f"between 1 and the total length {self.total_length}"
            )
        try:
            object.__setattr__(self, "_prefix", re.compile(self.prefix_pattern))
            object.__setattr__(self, "_body", re.compile(f"[{self.charset}]*"))
        except re.error as exc:
            raise CodeError(f"code rule {self.issuer!r}: bad pattern: {exc}") from exc

    def matches_prefix(self, code: str) -> bool:
        """Whether the code starts with this issuer's prefix."""
        return self._prefix.match(code) is not None

    def check(self, code: str) -> None:
        """Raise :class:`CodeError` unless ``code`` has this rule's length and characters."""
        if len(code) != self.total_length:
            raise CodeError(
                f"trace code {code!r}: wrong length {len(code)}, expected {self.total_length} "
                f"(issuer {self.issuer})",
                reason_zh=f"位数不对：药品追溯码应为 {self.total_length} 位，这里是 {len(code)} 位",
            )
        if self._body.fullmatch(code) is None:
            bad = next(ch for ch in code if self._body.fullmatch(ch) is None)
            raise CodeError(
                f"trace code {code!r}: character {bad!r} not allowed (issuer {self.issuer} "
                f"allows [{self.charset}])"
            )


@dataclass(frozen=True)
class TraceCode:
    """A parsed trace code: 药品标识码 (or GTIN-14) + serial, and what else the code carries."""

    code: str
    rule: str  # "a" (issuer rule) or "b" (ISO/IEC 15459 / GS1)
    issuer: str
    product_code: str
    serial: str
    lot: str | None = None
    expiry: date | None = None
    pairs: Pairs = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain-data view (JSON output)."""
        return {
            "code": self.code,
            "rule": self.rule,
            "issuer": self.issuer,
            "product_code": self.product_code,
            "serial": self.serial,
            "lot": self.lot,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "uri": nmpa_code_uri(self.code),
        }


def looks_like_gs1(code: str) -> bool:
    """Whether a code is written as a GS1 element string (brackets, FNC1/GS, symbology id)."""
    return code.startswith(("(", "]", GS)) or GS in code


def parse_trace_code(code: str, rules: Sequence[CodeRule]) -> TraceCode:
    """Parse a trace code against the issuer rules; GS1 element strings are rule (b).

    Raises :class:`CodeError` with the precise reason: empty, too long, unknown issuer prefix,
    wrong length, character not allowed, or the GS1 fault.
    """
    if not code:
        raise CodeError("empty trace code")
    if len(code) > MAX_CODE_LENGTH:
        raise CodeError(f"trace code too long: {len(code)} characters, at most {MAX_CODE_LENGTH}")
    if not looks_like_gs1(code):
        candidates = [r for r in rules if r.matches_prefix(code)]
        if candidates:
            return _rule_a(code, candidates)
        if not code.startswith("01"):
            raise CodeError(f"trace code {code!r}: unknown issuer prefix {code[:1]!r}")
    return gs1_trace_code(code)


def _rule_a(code: str, candidates: list[CodeRule]) -> TraceCode:
    fault: CodeError | None = None
    for rule in candidates:
        try:
            rule.check(code)
        except CodeError as exc:
            fault = fault or exc
            continue
        n = rule.product_code_length
        return TraceCode(code, "a", rule.issuer, code[:n], code[n:])
    assert fault is not None
    raise fault


def gs1_trace_code(code: str) -> TraceCode:
    """A GS1 element string used as a trace code (rule b): needs (01) and (21)."""
    pairs = parse_element_string(code)
    d = dict(pairs)
    if "01" not in d:
        raise CodeError(f"GS1 trace code {code!r}: needs AI (01) GTIN")
    if "21" not in d:
        raise CodeError(f"GS1 trace code {code!r}: needs AI (21) serial number")
    expiry = gs1_date(d["17"], "17") if "17" in d else None
    return TraceCode(code, "b", "GS1", d["01"], d["21"], d.get("10"), expiry, pairs)


# ── URIs ───────────────────────────────────────────────────────────────────────────────────
def _check_code_text(value: str, what: str) -> None:
    if not value:
        raise CodeError(f"{what}: empty")
    if len(value) > MAX_CODE_LENGTH:
        raise CodeError(f"{what}: too long, {len(value)} characters, at most {MAX_CODE_LENGTH}")
    if any(ch != GS and (ch.isspace() or ord(ch) < 32) for ch in value):
        raise CodeError(f"{what}: {value!r} contains whitespace or control characters")


def nmpa_code_uri(code: str) -> str:
    """``urn:nmpa:code:{trace code}`` (a GS1 code keeps its GS separators %-encoded as ``%1D``)."""
    _check_code_text(code, "trace code")
    return NMPA_CODE + code.replace("%", "%25").replace(GS, "%1D")


def nmpa_product_uri(product_code: str) -> str:
    """``urn:nmpa:product:{药品标识码}`` — the product class (every pack of one 药品标识码)."""
    _check_code_text(product_code, "药品标识码")
    if ":" in product_code:
        raise CodeError(f"药品标识码 {product_code!r}: ':' not allowed")
    return NMPA_PRODUCT + product_code


def nmpa_lot_uri(product_code: str, lot: str) -> str:
    """``urn:nmpa:product:{药品标识码}:lot:{批号}`` — the batch class."""
    _check_code_text(lot, "批号")
    return nmpa_product_uri(product_code) + LOT_SEPARATOR + encode_value(lot)


def parse_nmpa_uri(uri: str) -> tuple[str, str, str | None]:
    """``("code", code, None)`` or ``("product", 药品标识码, 批号 or None)`` of an NMPA URI."""
    if uri.startswith(NMPA_CODE):
        code = unquote(uri[len(NMPA_CODE) :])
        _check_code_text(code, f"NMPA URI {uri!r}: trace code")
        return "code", code, None
    if uri.startswith(NMPA_PRODUCT):
        rest = uri[len(NMPA_PRODUCT) :]
        product_code, sep, lot = rest.partition(LOT_SEPARATOR)
        _check_code_text(product_code, f"NMPA URI {uri!r}: 药品标识码")
        if ":" in product_code:
            raise CodeError(
                f"NMPA URI {uri!r}: expected urn:nmpa:product:{{药品标识码}}[:lot:{{批号}}]"
            )
        if not sep:
            return "product", product_code, None
        lot = unquote(lot)
        _check_code_text(lot, f"NMPA URI {uri!r}: 批号")
        return "product", product_code, lot
    raise CodeError(f"{uri!r} is not an NMPA URI (urn:nmpa:code:… or urn:nmpa:product:…)")
