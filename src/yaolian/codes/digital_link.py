"""GS1 Digital Link URIs (GS1 Digital Link standard 1.x), both ways, and the canonical form
``https://id.gs1.org/{AI}/{key}[/{AI}/{qualifier}…]`` that CBV 2.0 §8.9 uses in event hashes.

Path values are %-encoded; the characters of GS1 set 82 that must not stand in a URI path
(``! " # % & ( ) * + , / : < > ?`` and space) are always written as ``%XX`` (upper-case hex).
"""

from __future__ import annotations

import functools
import itertools
from urllib.parse import parse_qsl, unquote

from yaolian.codes.epc import parse_epc_uri
from yaolian.codes.gs1 import AIS, Pairs, check_ai_value
from yaolian.errors import CodeError

CANONICAL_HOST = "https://id.gs1.org"

# primary key AI → allowed key qualifiers, in the order they must appear in the path
QUALIFIERS: dict[str, tuple[str, ...]] = {
    "01": ("22", "10", "21"),
    "8006": ("22", "10", "21"),
    "8010": ("8011",),
    "414": ("254",),
    "417": (),
    "8017": ("8019",),
    "8018": ("8019",),
    "255": (),
    "00": (),
    "253": (),
    "401": (),
    "402": (),
    "8003": (),
    "8004": (),
}
# DL 1.0 short names, still accepted on input
SHORT_NAMES = {
    "gtin": "01",
    "itip": "8006",
    "cpid": "8010",
    "gln": "414",
    "party": "417",
    "gsrnp": "8017",
    "gsrn": "8018",
    "gcn": "255",
    "sscc": "00",
    "gdti": "253",
    "ginc": "401",
    "gsin": "402",
    "grai": "8003",
    "giai": "8004",
    "cpv": "22",
    "lot": "10",
    "ser": "21",
    "glnx": "254",
    "srin": "8019",
    "cpsn": "8011",
    "exp": "17",
}
_MUST_ENCODE = frozenset('!"#%&()*+,/:<>? ')


def encode_value(value: str) -> str:
    """%-encode a value for a Digital Link path or query (upper-case hex)."""
    if not _MUST_ENCODE.intersection(value):
        return value
    return "".join(f"%{ord(ch):02X}" if ch in _MUST_ENCODE else ch for ch in value)


def _ai(segment: str) -> str:
    return SHORT_NAMES.get(segment, segment)


def _normal_value(ai: str, value: str) -> str:
    if ai == "01" and len(value) in (8, 12, 13):
        value = value.zfill(14)
    check_ai_value(AIS[ai], value)
    return value


def _split_uri(uri: str) -> tuple[list[str], str]:
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise CodeError(f"{uri!r} is not a Digital Link URI (http:// or https://)")
    rest = rest.split("#", 1)[0]
    path_part, _, query = rest.partition("?")
    segments = path_part.split("/")[1:]  # drop the authority
    if segments and segments[-1] == "":
        segments.pop()
    return segments, query


def _find_primary(segments: list[str]) -> int:
    for i, seg in enumerate(segments):
        primary = _ai(seg)
        if primary not in QUALIFIERS or (len(segments) - i) % 2:
            continue
        allowed = QUALIFIERS[primary]
        quals = [_ai(s) for s in segments[i + 2 :: 2]]
        positions = [allowed.index(q) if q in allowed else -1 for q in quals]
        if all(p >= 0 for p in positions) and positions == sorted(set(positions)):
            return i
    return -1


# digit counts a primary key's value can have (alphanumeric keys: any non-empty value)
_KEY_DIGITS: dict[str, tuple[int, ...]] = {
    "01": (8, 12, 13, 14),
    "00": (18,),
    "414": (13,),
    "417": (13,),
    "8017": (18,),
    "8018": (18,),
    "402": (17,),
    "8006": (18,),
}


def looks_like_digital_link(uri: str) -> bool:
    """Whether an http(s) URI has a GS1 key in its path (``…/01/{8–14 digits}…``), so that a
    fault in it is an invalid Digital Link rather than some other web address."""
    try:
        segments, _ = _split_uri(uri)
    except CodeError:
        return False
    for seg, value in itertools.pairwise(segments):
        primary = _ai(seg)
        if primary not in QUALIFIERS or not value:
            continue
        lengths = _KEY_DIGITS.get(primary)
        if lengths is None or (len(value) in lengths and value.isascii() and value.isdigit()):
            return True
    return False


def parse_digital_link(uri: str) -> tuple[Pairs, Pairs]:
    """``(key pairs, attribute pairs)`` of a Digital Link URI on any host.

    Key pairs are the primary key and its qualifiers from the path; attribute pairs the AIs
    in the query (``?17=270131&10=LOT``); non-AI query parameters are ignored.
    """
    segments, query = _split_uri(uri)
    start = _find_primary(segments)
    if start < 0:
        raise CodeError(
            f"Digital Link {uri!r}: no GS1 primary key path (/01/{{gtin}}, /00/{{sscc}} …)"
        )
    pairs: Pairs = []
    for i in range(start, len(segments), 2):
        ai = _ai(segments[i])
        raw = segments[i + 1]
        if not raw:
            raise CodeError(f"Digital Link {uri!r}: empty value for AI ({ai})")
        pairs.append((ai, _normal_value(ai, unquote(raw))))
    attributes: Pairs = []
    if query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            ai = _ai(name)
            if ai not in AIS:
                continue
            if any(ai == a for a, _ in pairs):
                raise CodeError(f"Digital Link {uri!r}: AI ({ai}) both in path and query")
            attributes.append((ai, _normal_value(ai, value)))
    return pairs, attributes


def key_path(pairs: Pairs) -> str:
    """The canonical path ``{AI}/{value}[/{AI}/{value}]`` of the finest identity in ``pairs``.

    One primary key; serial wins over lot (an instance, not its batch); CPV (22) dropped.
    """
    d = dict(pairs)
    for primary, allowed in QUALIFIERS.items():
        if primary not in d:
            continue
        parts = [primary, encode_value(d[primary])]
        quals = [q for q in allowed if q in d and q != "22"]
        if "21" in quals and "10" in quals:
            quals.remove("10")
        for q in quals:
            parts += [q, encode_value(d[q])]
        return "/".join(parts)
    raise CodeError("no GS1 primary key (01, 00, 414, 417, 8003, 8004 …) among the AIs")


def build_digital_link(pairs: Pairs, host: str = CANONICAL_HOST) -> str:
    """A Digital Link URI: primary key and qualifiers in the path, other AIs in the query."""
    d = dict(pairs)
    for ai, value in pairs:
        check_ai_value(AIS[ai], value)
    primary = next((p for p in QUALIFIERS if p in d), None)
    if primary is None:
        raise CodeError("no GS1 primary key (01, 00, 414, 417, 8003, 8004 …) among the AIs")
    in_path = {primary, *(q for q in QUALIFIERS[primary] if q in d)}
    path = "/".join(
        f"{ai}/{encode_value(d[ai])}" for ai in (primary, *QUALIFIERS[primary]) if ai in in_path
    )
    query = "&".join(f"{ai}={encode_value(v)}" for ai, v in pairs if ai not in in_path)
    return f"{host.rstrip('/')}/{path}" + (f"?{query}" if query else "")


def digital_link(
    gtin: str,
    *,
    serial: str | None = None,
    lot: str | None = None,
    expiry: str | None = None,
    host: str = CANONICAL_HOST,
) -> str:
    """Digital Link for a pack: ``{host}/01/{gtin14}[/10/{lot}][/21/{serial}][?17={YYMMDD}]``."""
    pairs: Pairs = [("01", gtin.zfill(14) if len(gtin) in (8, 12, 13) else gtin)]
    if lot is not None:
        pairs.append(("10", lot))
    if serial is not None:
        pairs.append(("21", serial))
    if expiry is not None:
        pairs.append(("17", expiry))
    return build_digital_link(pairs, host)


@functools.lru_cache(maxsize=65536)
def canonical_digital_link(uri: str) -> str:
    """The canonical GS1 Digital Link (CBV 2.0 §8.9) of an EPC URI, EPC class/idpat URI or
    Digital Link on any host: ``https://id.gs1.org/`` + finest key path, no query.

    Anything that is not a valid GS1 identifier comes back unchanged.
    """
    try:
        if uri.startswith("urn:epc:"):
            pairs = parse_epc_uri(uri)
        elif uri.startswith(("https://", "http://", "HTTP://", "HTTPS://")):
            pairs, _ = parse_digital_link(uri)
        else:
            return uri
        return f"{CANONICAL_HOST}/{key_path(pairs)}"
    except CodeError:
        return uri
