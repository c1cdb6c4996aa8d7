"""What is this code? One description of any code a pack, case or pallet can carry — used by the
CLI (``parse``, ``validate``) and by bulk validation for its precise reasons.

Kinds: ``nmpa`` (trace code, rule a), ``gs1`` (element string; with (01)+(21) also a trace code,
rule b), ``epc`` (EPC URI), ``digital-link``, ``nmpa-uri``, ``bwm`` (药品本位码), ``gtin``,
``sscc``, ``gln`` (bare GS1 keys), ``uri`` (another URI, opaque).
"""

from __future__ import annotations

from typing import Any

from yaolian.codes.checkdigit import verify_bwm
from yaolian.codes.digital_link import (
    build_digital_link,
    looks_like_digital_link,
    parse_digital_link,
)
from yaolian.codes.epc import epc_uri_from_pairs, parse_epc_uri
from yaolian.codes.gs1 import (
    DIGITS,
    Pairs,
    build_element_string,
    describe_pairs,
    normalize_gtin,
    parse_element_string,
    verify_key,
)
from yaolian.codes.identity import canonical_key
from yaolian.codes.nmpa import NMPA_CODE, NMPA_PRODUCT, looks_like_gs1, parse_nmpa_uri
from yaolian.codes.registry import CodeRegistry
from yaolian.errors import CodeError


def describe(code: str, registry: CodeRegistry, *, strict: bool = False) -> dict[str, Any]:
    """Parse ``code`` and describe it (kind, parts, canonical key, URIs, product).

    ``strict`` (validation): a trace code must also have a registered product. Raises
    :class:`CodeError` with the precise reason when the code is not valid.
    """
    code = code.strip()
    if not code:
        raise CodeError("empty code")
    if code.startswith("urn:nmpa:"):
        return _nmpa_uri(code, registry, strict)
    if code.startswith("urn:epc:"):
        return _gs1_info("epc", code, parse_epc_uri(code), registry, strict=False)
    if code.startswith(("http://", "https://")):
        if not looks_like_digital_link(code):
            return {"input": code, "kind": "uri", "key": canonical_key(code)}
        pairs, attributes = parse_digital_link(code)
        return _gs1_info("digital-link", code, pairs + attributes, registry, strict=False)
    if ":" in code and not looks_like_gs1(code):
        return {"input": code, "kind": "uri", "key": canonical_key(code)}
    if looks_like_gs1(code):
        return _gs1_info("gs1", code, parse_element_string(code), registry, strict)
    rules = [r for r in registry.rules if r.matches_prefix(code)]
    if any(len(code) == r.total_length for r in rules):
        return _nmpa(code, registry, strict)
    if len(code) == 14 and code.startswith("86") and DIGITS.issuperset(code):
        return _bwm(code)
    if rules:  # an NMPA prefix with the wrong length, unless it is a valid bare GS1 key
        try:
            bare = _bare_key(code)
        except CodeError:
            bare = None
        return bare if bare is not None else _nmpa(code, registry, strict)
    if code.startswith(("00", "01", "02")) and len(code) > 18:
        return _gs1_info("gs1", code, parse_element_string(code), registry, strict)
    bare = _bare_key(code)
    return bare if bare is not None else _nmpa(code, registry, strict)


def validate_code(code: str, registry: CodeRegistry) -> dict[str, Any]:
    """:func:`describe` in strict mode: the code must be fully valid."""
    return describe(code, registry, strict=True)


def _nmpa(code: str, registry: CodeRegistry, strict: bool) -> dict[str, Any]:
    trace = registry.parse(code)
    info: dict[str, Any] = {"input": code, "kind": "nmpa", **trace.as_dict()}
    info["key"] = canonical_key(code) if trace.rule == "b" else "n:" + code
    _attach_product(info, registry, trace.product_code, strict, "药品标识码")
    return info


def _attach_product(
    info: dict[str, Any], registry: CodeRegistry, product_code: str, strict: bool, what: str
) -> None:
    try:
        info["product"] = registry.product(product_code).as_dict()
    except CodeError as exc:
        if strict:
            raise CodeError(
                f"trace code {info['input']!r}: unknown {what} {product_code} (not registered)"
            ) from exc
        info["product"] = None


def _gs1_info(
    kind: str, code: str, pairs: Pairs, registry: CodeRegistry, strict: bool
) -> dict[str, Any]:
    d = dict(pairs)
    info: dict[str, Any] = {
        "input": code,
        "kind": kind,
        "fields": describe_pairs(pairs),
        "element_string": build_element_string(pairs, bracketed=True),
        "key": canonical_key(code if kind != "gs1" else build_element_string(pairs)),
        "digital_link": build_digital_link(pairs),
    }
    try:
        info["epc_uri"] = epc_uri_from_pairs(pairs)
    except CodeError:
        info["epc_uri"] = None
    if "01" in d and "21" in d:
        info["trace_code"] = True  # ISO/IEC 15459 trace code (rule b)
        _attach_product(info, registry, d["01"], strict, "GTIN")
    elif strict and kind == "gs1":
        raise CodeError(
            f"GS1 code {code!r}: not a trace code — needs AI (01) GTIN and AI (21) serial number"
        )
    return info


def _nmpa_uri(code: str, registry: CodeRegistry, strict: bool) -> dict[str, Any]:
    if code.startswith(NMPA_CODE):
        _, inner, _ = parse_nmpa_uri(code)
        info = describe(inner, registry, strict=strict)
        return {**info, "input": code, "kind": "nmpa-uri", "code": inner}
    if not code.startswith(NMPA_PRODUCT):
        raise CodeError(f"{code!r}: unknown NMPA URI (urn:nmpa:code:… or urn:nmpa:product:…)")
    _, product_code, lot = parse_nmpa_uri(code)
    info = {
        "input": code,
        "kind": "nmpa-uri",
        "product_code": product_code,
        "lot": lot,
        "key": canonical_key(code),
    }
    _attach_product(info, registry, product_code, strict, "药品标识码")
    return info


def _bwm(code: str) -> dict[str, Any]:
    """A 药品本位码 (identifies an approved product; not a trace code, no canonical key)."""
    verify_bwm(code)
    return {"input": code, "kind": "bwm", "name": "药品本位码", "key": None}


def _bare_key(code: str) -> dict[str, Any] | None:
    """A bare numeric GS1 key or 药品本位码 by its length, validated; ``None`` if no such shape."""
    if not DIGITS.issuperset(code):
        return None
    n = len(code)
    if n == 14 and code.startswith("86"):
        return _bwm(code)
    if n in (8, 12, 13, 14):
        gtin = normalize_gtin(code)
        return {
            "input": code,
            "kind": "gtin",
            "gtin": gtin,
            "key": f"01/{gtin}",
            "note": "a 13-digit number may also be a GLN" if n == 13 else None,
        }
    if n == 18:
        verify_key("sscc", code)
        return {"input": code, "kind": "sscc", "key": f"00/{code}"}
    return None
