"""One canonical key per identifier: the unique key of the store's code dictionary.

Whatever form a pack, case, pallet, location or class arrives in — EPC URN, GS1 Digital Link on
any host, GS1 element string (bracketed or FNC1/GS), NMPA trace code, NMPA URI — the same
identifier gets the same short key:

=================================  ===========================================================
identifier                         key
=================================  ===========================================================
GS1 key (+ qualifiers)             canonical Digital Link path without host:
                                   ``01/06901234567892/21/A1B2`` (pack), ``00/069012340000000017``
                                   (SSCC), ``414/6901234000011[/254/ext]`` (location),
                                   ``01/06901234567892/10/L01`` (batch class),
                                   ``01/06901234567892`` (product class) — serial wins over lot,
                                   GTINs are 14 digits, values %-encoded as in Digital Link
NMPA trace code, rule (a)          ``n:{code}``  e.g. ``n:83857930000879766660``
NMPA trace code, rule (b) = GS1    the GS1 key above (same pack, same key)
NMPA product class (药品标识码)     ``np:{药品标识码}`` (a GTIN-14 药品标识码 gives ``01/{gtin}``)
NMPA batch class (药品标识码+批号)   ``nl:{药品标识码}/{批号 %-encoded}``
any other URI (urn:uuid:…, …)      ``u:{uri}`` unchanged (EPCIS allows private identifiers)
=================================  ===========================================================

The GS1 key is therefore also the canonical Digital Link: ``https://id.gs1.org/`` + key.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.digital_link import (
    CANONICAL_HOST,
    encode_value,
    key_path,
    looks_like_digital_link,
    parse_digital_link,
)
from yaolian.codes.epc import epc_uri_from_pairs, parse_epc_uri
from yaolian.codes.gs1 import AIS, CSET82, DIGITS, check_ai_value, parse_element_string
from yaolian.codes.nmpa import (
    NMPA_CODE,
    NMPA_PRODUCT,
    looks_like_gs1,
    nmpa_code_uri,
    nmpa_lot_uri,
    nmpa_product_uri,
    parse_nmpa_uri,
)
from yaolian.codes.registry import default_rules
from yaolian.errors import CodeError

NMPA_KEY = "n:"
NMPA_PRODUCT_KEY = "np:"
NMPA_LOT_KEY = "nl:"
OPAQUE_KEY = "u:"
_SGTIN = "urn:epc:id:sgtin:"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_DL_SGTIN = re.compile(
    r"https?://[^/?#]+/01/(\d{14})/21/([0-9A-Za-z\-._]{1,20})(?:[?#].*)?", re.ASCII
)
_SAFE_SERIAL = CSET82 - frozenset('"%&/<>?')


# "urn:epc:id:sgtin:{company prefix}.{item ref}" → "01/{GTIN}/21/" ("": not a valid pair)
_SGTIN_KEY_BASES: dict[str, str] = {}


def typed(text: str) -> str:
    """A code as a person typed or pasted it, read as a scanner gives it: blanks around it
    dropped and full-width forms (全角, what a Chinese input method types in that mode:
    ８１０８…, Ｌ００１, ／) read as their ASCII characters (Unicode NFKC). For codes people
    enter (verify, trace, recalls), not for documents, which must carry them as the standards
    spell them."""
    return unicodedata.normalize("NFKC", text).strip()


def canonical_key(code: str) -> str:
    """The canonical key of any representation of an identifier (table in the module doc).

    Raises :class:`CodeError` with the precise reason when ``code`` is not a valid identifier.
    SGTINs with a plain alphanumeric serial (the bulk of a capture, each seen once) take a
    shortcut past the cache: the key prefix of their product + the serial as written.
    """
    if code.startswith(_SGTIN):
        head, _, serial = code.rpartition(".")
        base = _SGTIN_KEY_BASES.get(head)
        if base is None:
            base = _sgtin_key_base(head)
        if base and len(serial) <= 20 and serial.isascii() and serial.isalnum():
            return base + serial
    return _canonical_key(code)


def canonical_keys(codes: list[str]) -> list[str]:
    """:func:`canonical_key` of each code; in a run of SGTINs of one product (the usual
    epcList) each further key costs a slice of its serial."""
    out = []
    prefix, base = "\0", ""
    for code in codes:
        if code.startswith(prefix):
            serial = code[len(prefix) :]
            if len(serial) <= 20 and serial.isascii() and serial.isalnum():
                out.append(base + serial)
                continue
        out.append(canonical_key(code))
        if code.startswith(_SGTIN):
            head = code.rpartition(".")[0]
            if known := _SGTIN_KEY_BASES.get(head):
                prefix, base = head + ".", known
    return out


def clear_key_caches() -> None:
    """Forget memoised keys (benchmarks time a cold start)."""
    _SGTIN_KEY_BASES.clear()
    _canonical_key.cache_clear()


def _sgtin_key_base(head: str) -> str:
    """``01/{GTIN}/21/`` for ``urn:epc:id:sgtin:{cp}.{item}``, "" when malformed (memoised)."""
    cp, _, item = head[len(_SGTIN) :].partition(".")
    gtin = _gtin_key(cp, item)
    base = "" if gtin is None else f"01/{gtin}/21/"
    if len(_SGTIN_KEY_BASES) >= 65536:
        _SGTIN_KEY_BASES.clear()
    _SGTIN_KEY_BASES[head] = base
    return base


@functools.lru_cache(maxsize=1 << 16)
def _canonical_key(code: str) -> str:
    """:func:`canonical_key` without its SGTIN shortcut, memoised."""
    if code.startswith(_SGTIN):
        fast = _sgtin_fast(code)
        if fast is not None:
            return fast
    if code.startswith("urn:epc:"):
        return key_path(parse_epc_uri(code))
    if code.startswith(NMPA_CODE):
        return _nmpa_code_key(parse_nmpa_uri(code)[1], strict=False)
    if code.startswith(NMPA_PRODUCT):
        _, product_code, lot = parse_nmpa_uri(code)
        return _product_key(product_code, lot)
    if code.startswith(("https://", "http://", "HTTPS://", "HTTP://")):
        m = _DL_SGTIN.fullmatch(code)
        if m is not None and m.group(1)[-1] == gs1_check_digit(m.group(1)[:-1]):
            return f"01/{m.group(1)}/21/{m.group(2)}"
        if looks_like_digital_link(code):
            pairs, _ = parse_digital_link(code)
            return key_path(pairs)
        return OPAQUE_KEY + code
    if _SCHEME.match(code) and not looks_like_gs1(code):
        if any(ch.isspace() for ch in code):
            raise CodeError(f"URI {code!r}: contains whitespace")
        return OPAQUE_KEY + code
    return _nmpa_code_key(code, strict=True)


def _sgtin_fast(uri: str) -> str | None:
    cp, _, rest = uri[17:].partition(".")
    item, _, serial = rest.partition(".")
    if not 0 < len(serial) <= 20:
        return None  # the full parser gives the precise reason
    if not (serial.isascii() and serial.isalnum()):  # common case: nothing to escape
        if not _SAFE_SERIAL.issuperset(serial):
            return None
        serial = encode_value(serial)
    gtin = _gtin_key(cp, item)
    return None if gtin is None else f"01/{gtin}/21/{serial}"


@functools.lru_cache(maxsize=1 << 16)
def _gtin_key(cp: str, item: str) -> str | None:
    """GTIN-14 of an EPC company prefix + item reference, ``None`` when malformed (cached: a
    capture document repeats few GTINs over many serials)."""
    digits = cp + item
    if len(digits) != 13 or not 6 <= len(cp) <= 12 or not digits.isascii() or not digits.isdigit():
        return None
    body = item[0] + cp + item[1:]
    return body + gs1_check_digit(body)


def _nmpa_code_key(code: str, *, strict: bool) -> str:
    """Key of a trace code: rule (a) → ``n:``; GS1 (rule b) → GS1 key.

    ``strict`` (a bare string) requires a known issuer rule or a valid GS1 string; inside an
    ``urn:nmpa:code:`` URI any code of sane characters is accepted as an NMPA code, since its
    issuer may be registered only in the database (validation is the registry's job).
    """
    if not looks_like_gs1(code):
        for rule in default_rules():
            if rule.matches_prefix(code):
                if strict:
                    rule.check(code)
                return NMPA_KEY + code
    if looks_like_gs1(code) or code.startswith("01"):
        try:
            pairs = parse_element_string(code)
        except CodeError:
            if strict or looks_like_gs1(code):
                raise
            return NMPA_KEY + code
        return key_path(pairs)
    if strict:
        raise CodeError(
            f"{code!r} is not a recognised code: no known NMPA issuer prefix, not a GS1 element "
            "string, not a URI",
            reason_zh="无法识别：不是已知发码机构的药品追溯码，也不是 GS1 条码内容或标识",
        )
    return NMPA_KEY + code


def _product_key(product_code: str, lot: str | None) -> str:
    if (
        len(product_code) == 14
        and DIGITS.issuperset(product_code)
        and product_code[-1] == gs1_check_digit(product_code[:-1])
    ):
        if lot is None:
            return f"01/{product_code}"
        check_ai_value(AIS["10"], lot)
        return f"01/{product_code}/10/{encode_value(lot)}"
    if lot is None:
        return NMPA_PRODUCT_KEY + product_code
    return f"{NMPA_LOT_KEY}{product_code}/{encode_value(lot)}"


DEFAULT_PRODUCT_CODE_LENGTH = 7  # 药品标识码 of a rule (a) code whose issuer is not bundled


def product_of_key(key: str) -> str | None:
    """The product code a key carries: the GTIN-14 of a GS1 pack or class key, the 药品标识码 of
    an NMPA trace code (the length its issuer rule gives, else 7) or class key; ``None`` for
    logistic units (SSCC), locations and opaque identifiers. No parsing: the key is canonical."""
    if key.startswith(NMPA_KEY):
        code = key[len(NMPA_KEY) :]
        length = DEFAULT_PRODUCT_CODE_LENGTH
        for rule in default_rules():
            if rule.matches_prefix(code):
                length = rule.product_code_length
                break
        return code[:length] if len(code) > length else None
    if key.startswith(NMPA_PRODUCT_KEY):
        return key[len(NMPA_PRODUCT_KEY) :]
    if key.startswith(NMPA_LOT_KEY):
        return key[len(NMPA_LOT_KEY) :].partition("/")[0]
    if key.startswith("01/"):
        return key[3:17]
    return None


def key_kind(key: str) -> str:
    """``instance`` (a pack, case, pallet, location, asset), ``class`` (product or batch) or
    ``opaque`` (a URI yaolian does not interpret)."""
    if key.startswith(NMPA_KEY):
        return "instance"
    if key.startswith((NMPA_PRODUCT_KEY, NMPA_LOT_KEY)):
        return "class"
    if key.startswith(OPAQUE_KEY):
        return "opaque"
    if key.startswith("01/") and "/21/" not in key:
        return "class"
    return "instance"


def uri_for_key(key: str, form: str = "epc", company_prefix_length: int | None = None) -> str:
    """A URI for a key: GS1 keys as EPC URI (``form="epc"``), canonical Digital Link
    (``form="dl"``) or the EPC URI where the key has one and else the Digital Link
    (``form="any"``: a URI every yaolian input reads back); NMPA keys as ``urn:nmpa:…``;
    opaque keys as themselves."""
    from urllib.parse import unquote

    if key.startswith(NMPA_KEY):
        return nmpa_code_uri(key[len(NMPA_KEY) :])
    if key.startswith(NMPA_PRODUCT_KEY):
        return nmpa_product_uri(key[len(NMPA_PRODUCT_KEY) :])
    if key.startswith(NMPA_LOT_KEY):
        product_code, _, lot = key[len(NMPA_LOT_KEY) :].partition("/")
        return nmpa_lot_uri(product_code, unquote(lot))
    if key.startswith(OPAQUE_KEY):
        return key[len(OPAQUE_KEY) :]
    if form == "dl":
        return f"{CANONICAL_HOST}/{key}"
    parts = key.split("/")
    pairs = [(parts[i], unquote(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]
    try:
        return epc_uri_from_pairs(pairs, company_prefix_length)
    except CodeError:
        if form == "any" and key[:2].isdigit():
            return f"{CANONICAL_HOST}/{key}"
        raise
