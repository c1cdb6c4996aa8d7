"""EPC URIs (GS1 EPC Tag Data Standard): pure identities ``urn:epc:id:…``, the lot class
``urn:epc:class:lgtin:…`` and ``urn:epc:idpat:sgtin:….*`` — both ways, to and from GS1 AI pairs.

Going from a GS1 key to an EPC URI needs the length of the GS1 company prefix, which the key
does not carry. Callers pass it; otherwise :func:`company_prefix_length` looks it up in the
bundled table ``data/gcp_lengths.csv`` (longest matching prefix) and falls back to
:data:`DEFAULT_COMPANY_PREFIX_LENGTH` (7, the length GS1 China assigns for 690/691 prefixes).
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable
from importlib import resources

from yaolian.codes.checkdigit import gs1_check_digit, verify_gs1_check_digit
from yaolian.codes.gs1 import AIS, CSET82, DIGITS, Pairs, check_ai_value
from yaolian.errors import CodeError

DEFAULT_COMPANY_PREFIX_LENGTH = 7
EPC_ID = "urn:epc:id:"
EPC_CLASS = "urn:epc:class:"
EPC_IDPAT = "urn:epc:idpat:"

# TDS: in EPC URIs these characters of GS1 character set 82 are %-escaped; the rest stand as is.
_EPC_ESCAPE = {'"': "%22", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"}
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@functools.cache
def _prefix_table() -> dict[str, int]:
    text = resources.files("yaolian.codes").joinpath("data/gcp_lengths.csv").read_text("utf-8")
    return {row["prefix"]: int(row["length"]) for row in csv.DictReader(text.splitlines())}


def company_prefix_length(digits: str, default: int | None = None) -> int:
    """GS1 company prefix length for a key whose company prefix starts ``digits``.

    Longest prefix in the bundled table wins; else ``default``; else 7.
    """
    table = _prefix_table()
    for n in range(min(12, len(digits)), 2, -1):
        found = table.get(digits[:n])
        if found is not None:
            return found
    return default if default is not None else DEFAULT_COMPANY_PREFIX_LENGTH


def _cpl(digits: str, cpl: int | None) -> int:
    n = cpl if cpl is not None else company_prefix_length(digits)
    if not 6 <= n <= 12:
        raise CodeError(f"GS1 company prefix length {n}: must be 6–12")
    return n


def escape_component(value: str) -> str:
    """%-escape a serial/lot for an EPC URI (characters must be in GS1 character set 82)."""
    bad = next((ch for ch in value if ch not in CSET82), None)
    if bad is not None:
        raise CodeError(f"character {bad!r} not allowed in a GS1 serial or lot")
    return "".join(_EPC_ESCAPE.get(ch, ch) for ch in value)


def unescape_component(value: str, what: str) -> str:
    """Undo %-escapes of an EPC URI component and check the result is GS1 character set 82."""
    if "%" in value:
        if _BAD_ESCAPE_RE.search(value):
            raise CodeError(f"{what}: bad %-escape")
        value = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), value)
    if not value:
        raise CodeError(f"{what}: empty")
    bad = next((ch for ch in value if ch not in CSET82), None)
    if bad is not None:
        raise CodeError(f"{what}: character {bad!r} not allowed")
    return value


# ── builders ───────────────────────────────────────────────────────────────────────────────
def _gtin_parts(gtin14: str, cpl: int | None) -> tuple[str, str]:
    n = _cpl(gtin14[1:], cpl)
    return gtin14[1 : 1 + n], gtin14[0] + gtin14[1 + n : 13]


def sgtin_uri(gtin: str, serial: str, company_prefix_length: int | None = None) -> str:
    """``urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial`` for a GTIN + serial (AI 01+21)."""
    gtin14 = _checked("01", gtin)
    check_ai_value(AIS["21"], serial)
    cp, item = _gtin_parts(gtin14, company_prefix_length)
    return f"{EPC_ID}sgtin:{cp}.{item}.{escape_component(serial)}"


def lgtin_uri(gtin: str, lot: str, company_prefix_length: int | None = None) -> str:
    """``urn:epc:class:lgtin:CompanyPrefix.IndicatorItemRef.Lot`` — a GTIN's batch (AI 01+10)."""
    gtin14 = _checked("01", gtin)
    check_ai_value(AIS["10"], lot)
    cp, item = _gtin_parts(gtin14, company_prefix_length)
    return f"{EPC_CLASS}lgtin:{cp}.{item}.{escape_component(lot)}"


def idpat_sgtin_uri(gtin: str, company_prefix_length: int | None = None) -> str:
    """``urn:epc:idpat:sgtin:CompanyPrefix.IndicatorItemRef.*`` — every serial of a GTIN."""
    cp, item = _gtin_parts(_checked("01", gtin), company_prefix_length)
    return f"{EPC_IDPAT}sgtin:{cp}.{item}.*"


def sscc_uri(sscc: str, company_prefix_length: int | None = None) -> str:
    """``urn:epc:id:sscc:CompanyPrefix.ExtensionSerialRef`` for an SSCC-18 (AI 00)."""
    _checked("00", sscc)
    n = _cpl(sscc[1:], company_prefix_length)
    return f"{EPC_ID}sscc:{sscc[1 : 1 + n]}.{sscc[0]}{sscc[1 + n : 17]}"


def sgln_uri(gln: str, extension: str = "0", company_prefix_length: int | None = None) -> str:
    """``urn:epc:id:sgln:CompanyPrefix.LocationRef.Extension`` (AI 414 [+254]; ``0`` = none)."""
    _checked("414", gln)
    if extension != "0":
        check_ai_value(AIS["254"], extension)
    n = _cpl(gln, company_prefix_length)
    return f"{EPC_ID}sgln:{gln[:n]}.{gln[n:12]}.{escape_component(extension)}"


def pgln_uri(gln: str, company_prefix_length: int | None = None) -> str:
    """``urn:epc:id:pgln:CompanyPrefix.PartyRef`` for a party GLN (AI 417)."""
    _checked("417", gln)
    n = _cpl(gln, company_prefix_length)
    return f"{EPC_ID}pgln:{gln[:n]}.{gln[n:12]}"


def _checked(ai: str, value: str) -> str:
    if ai == "01" and len(value) in (8, 12, 13):
        value = value.zfill(14)
    check_ai_value(AIS[ai], value)
    return value


def epc_uri_from_pairs(pairs: Pairs, company_prefix_length: int | None = None) -> str:
    """The EPC URI for GS1 AI pairs (sgtin, lgtin, idpat sgtin, sscc, sgln, pgln, grai, giai,
    gsrn, gsrnp, gdti, ginc, gsin)."""
    d = dict(pairs)
    cpl = company_prefix_length
    if "00" in d:
        return sscc_uri(d["00"], cpl)
    if "01" in d:
        if "21" in d:
            return sgtin_uri(d["01"], d["21"], cpl)
        if "10" in d:
            return lgtin_uri(d["01"], d["10"], cpl)
        return idpat_sgtin_uri(d["01"], cpl)
    if "414" in d:
        return sgln_uri(d["414"], d.get("254", "0"), cpl)
    if "417" in d:
        return pgln_uri(d["417"], cpl)
    for ai, scheme in _SERIALISED_KEYS.items():
        if ai in d:
            return _serialised_key_uri(ai, scheme, d[ai], cpl)
    raise CodeError("no GS1 key with an EPC URI form (00, 01, 414, 417, 8003, 8004, 8017 …)")


# AI → EPC scheme for keys with company prefix + reference (+ check digit) (+ serial).
_SERIALISED_KEYS = {
    "8003": "grai",
    "8004": "giai",
    "8018": "gsrn",
    "8017": "gsrnp",
    "253": "gdti",
    "401": "ginc",
    "402": "gsin",
}


def _serialised_key_uri(ai: str, scheme: str, value: str, cpl: int | None) -> str:
    check_ai_value(AIS[ai], value)
    if scheme == "grai":  # "0" + GRAI-13 + serial
        body, serial = value[1:13], value[14:]
        if not serial:
            raise CodeError("AI (8003) GRAI without serial has no EPC pure identity")
        n = _cpl(body, cpl)
        return f"{EPC_ID}grai:{body[:n]}.{body[n:]}.{escape_component(serial)}"
    if scheme == "gdti":
        body, serial = value[:12], value[13:]
        if not serial:
            raise CodeError("AI (253) GDTI without serial has no EPC pure identity")
        n = _cpl(body, cpl)
        return f"{EPC_ID}gdti:{body[:n]}.{body[n:]}.{escape_component(serial)}"
    n = _cpl(value, cpl)
    if scheme in ("giai", "ginc"):
        return f"{EPC_ID}{scheme}:{value[:n]}.{escape_component(value[n:])}"
    body = value[:-1]  # gsrn, gsrnp, gsin: drop the check digit
    return f"{EPC_ID}{scheme}:{body[:n]}.{body[n:]}"


_Parser = Callable[[str, int], Pairs]


# ── parser ─────────────────────────────────────────────────────────────────────────────────
def _split(uri: str, prefix_len: int, parts: int) -> list[str]:
    fields = uri[prefix_len:].split(".", parts - 1)
    if len(fields) != parts:
        raise CodeError(f"EPC URI {uri!r}: expected {parts} dot-separated fields")
    return fields


def _digits(uri: str, value: str, what: str) -> None:
    if not DIGITS.issuperset(value):
        raise CodeError(f"EPC URI {uri!r}: {what} {value!r} must be digits")


def _company_prefix(uri: str, cp: str, ref: str, total: int, ref_what: str) -> None:
    _digits(uri, cp, "company prefix")
    _digits(uri, ref, ref_what)
    if not 6 <= len(cp) <= 12:
        raise CodeError(f"EPC URI {uri!r}: company prefix must have 6–12 digits, has {len(cp)}")
    if len(cp) + len(ref) != total:
        raise CodeError(
            f"EPC URI {uri!r}: company prefix + {ref_what} must have {total} digits, "
            f"has {len(cp) + len(ref)}"
        )


def parse_epc_uri(uri: str) -> Pairs:
    """GS1 AI pairs for an EPC pure-identity, lgtin class or sgtin idpat URI.

    ``urn:epc:id:sgtin:0614141.107346.2017`` → ``[("01", "00614141073467"), ("21", "2017")]``.
    """
    if uri.startswith(EPC_ID):
        scheme, _, _ = uri[len(EPC_ID) :].partition(":")
        head = len(EPC_ID) + len(scheme) + 1
        parser = _ID_PARSERS.get(scheme)
        if parser is None:
            raise CodeError(f"EPC URI {uri!r}: unsupported EPC scheme {scheme!r}")
        return parser(uri, head)
    if uri.startswith(EPC_CLASS + "lgtin:"):
        cp, item, lot = _split(uri, len(EPC_CLASS) + 6, 3)
        _company_prefix(uri, cp, item, 13, "item reference")
        lot = unescape_component(lot, f"EPC URI {uri!r}: lot")
        check_ai_value(AIS["10"], lot)
        return [("01", _gtin(cp, item)), ("10", lot)]
    if uri.startswith(EPC_IDPAT + "sgtin:"):
        cp, item, star = _split(uri, len(EPC_IDPAT) + 6, 3)
        if star != "*":
            raise CodeError(f"EPC URI {uri!r}: an sgtin idpat must end with '.*'")
        _company_prefix(uri, cp, item, 13, "item reference")
        return [("01", _gtin(cp, item))]
    if uri.startswith(("urn:epc:class:", "urn:epc:idpat:")):
        raise CodeError(f"EPC URI {uri!r}: unsupported EPC class or pattern scheme")
    raise CodeError(f"{uri!r} is not an EPC URI (urn:epc:id:…, urn:epc:class:lgtin:…)")


def _gtin(cp: str, item: str) -> str:
    body = item[0] + cp + item[1:]
    return body + gs1_check_digit(body)


def _sgtin(uri: str, head: int) -> Pairs:
    cp, item, serial = _split(uri, head, 3)
    _company_prefix(uri, cp, item, 13, "item reference")
    serial = unescape_component(serial, f"EPC URI {uri!r}: serial")
    check_ai_value(AIS["21"], serial)
    return [("01", _gtin(cp, item)), ("21", serial)]


def _sscc(uri: str, head: int) -> Pairs:
    cp, ref = _split(uri, head, 2)
    _company_prefix(uri, cp, ref, 17, "serial reference")
    body = ref[0] + cp + ref[1:]
    return [("00", body + gs1_check_digit(body))]


def _sgln(uri: str, head: int) -> Pairs:
    cp, loc, ext = _split(uri, head, 3)
    _company_prefix(uri, cp, loc, 12, "location reference")
    body = cp + loc
    pairs: Pairs = [("414", body + gs1_check_digit(body))]
    ext = unescape_component(ext, f"EPC URI {uri!r}: extension")
    if ext != "0":
        check_ai_value(AIS["254"], ext)
        pairs.append(("254", ext))
    return pairs


def _pgln(uri: str, head: int) -> Pairs:
    cp, ref = _split(uri, head, 2)
    _company_prefix(uri, cp, ref, 12, "party reference")
    body = cp + ref
    return [("417", body + gs1_check_digit(body))]


def _grai(uri: str, head: int) -> Pairs:
    cp, asset, serial = _split(uri, head, 3)
    _company_prefix(uri, cp, asset, 12, "asset type")
    body = cp + asset
    serial = unescape_component(serial, f"EPC URI {uri!r}: serial")
    value = "0" + body + gs1_check_digit(body) + serial
    check_ai_value(AIS["8003"], value)
    return [("8003", value)]


def _gdti(uri: str, head: int) -> Pairs:
    cp, doc, serial = _split(uri, head, 3)
    _company_prefix(uri, cp, doc, 12, "document type")
    body = cp + doc
    serial = unescape_component(serial, f"EPC URI {uri!r}: serial")
    value = body + gs1_check_digit(body) + serial
    check_ai_value(AIS["253"], value)
    return [("253", value)]


def _free_ref(ai: str) -> _Parser:
    def parse(uri: str, head: int) -> Pairs:
        cp, ref = _split(uri, head, 2)
        _digits(uri, cp, "company prefix")
        value = cp + unescape_component(ref, f"EPC URI {uri!r}: reference")
        check_ai_value(AIS[ai], value)
        return [(ai, value)]

    return parse


def _checked_ref(ai: str, total: int) -> _Parser:
    def parse(uri: str, head: int) -> Pairs:
        cp, ref = _split(uri, head, 2)
        _company_prefix(uri, cp, ref, total, "reference")
        body = cp + ref
        value = body + gs1_check_digit(body)
        verify_gs1_check_digit(value)
        return [(ai, value)]

    return parse


_ID_PARSERS: dict[str, _Parser] = {
    "sgtin": _sgtin,
    "sscc": _sscc,
    "sgln": _sgln,
    "pgln": _pgln,
    "grai": _grai,
    "gdti": _gdti,
    "giai": _free_ref("8004"),
    "ginc": _free_ref("401"),
    "gsrn": _checked_ref("8018", 17),
    "gsrnp": _checked_ref("8017", 17),
    "gsin": _checked_ref("402", 16),
}
