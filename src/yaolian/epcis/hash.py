"""Canonical EPCIS event hash (CBV 2.0 §8.9): ``ni:///sha-256;<hex>?ver=CBV2.0``.

The pre-hash string is ``eventType=<type>`` followed by the event's fields in the fixed order
of the standard, each written ``name=value`` with no separator:

* times (``eventTime``, sensor ``time``/``startTime``/``endTime``) in UTC at millisecond
  precision (``2020-04-01T14:00:00.000Z``); ``eventTimeZoneOffset`` as given;
* identifiers that are GS1 keys (EPC URIs, EPC class / pattern URIs, Digital Links on any host)
  as canonical GS1 Digital Links (``https://id.gs1.org/01/…/21/…``) — via
  :func:`yaolian.codes.digital_link.canonical_digital_link`;
* CBV values as their web URIs (``https://ref.gs1.org/cbv/BizStep-shipping``); sensor
  measurement and alert types as ``https://gs1.org/voc/{word}``, as the EPCIS 2.0 JSON-LD
  context expands them;
* numbers without a ``+`` sign, leading zeros or a trailing ``.0``;
* the members of a list sorted; user extensions as ``{namespace}localName`` sorted after the
  standard fields of their parent; ``recordTime``, ``eventID`` and ``errorDeclaration`` left out.

The field order and renderings are those of the reference implementation
(``epcis-event-hash-generator`` 1.9.3, the test oracle), so hashes are exchangeable:
``bizTransactionList``, ``sourceList``, ``destinationList`` and ``ilmd`` are placed with the
top-level extensions, sorted by their rendered text. Where that implementation's JSON and XML
readings of one event disagree, the XML reading is followed (``docs/epcis.md``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from yaolian.codes.digital_link import canonical_digital_link
from yaolian.epcis import cbv
from yaolian.epcis.context import (
    CONTEXT_KEY,
    WELL_KNOWN_NAMESPACES,
    event_namespaces,
    expand_name,
)
from yaolian.epcis.model import Event

_CBV_URNS = (
    ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
    ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
    ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
    ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
)
_EPC_LISTS = ("epcList", "inputEPCList", "childEPCs")
_QTY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList")
_METADATA_ORDER = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_REPORT_ORDER = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)
_REPORT_VOCAB = {
    "type": cbv.MEASUREMENT_TYPE,
    "exception": cbv.SENSOR_ALERT_TYPE,
    "component": cbv.COMPONENT,
}
# Fields rendered in the ordered part; everything else (bar _IGNORED) goes to the generic tail.
_ORDERED = frozenset(
    (
        "type",
        "eventTime",
        "eventTimeZoneOffset",
        "certificationInfo",
        "parentID",
        *_EPC_LISTS,
        *_QTY_LISTS,
        "outputEPCList",
        "outputQuantityList",
        "action",
        "transformationID",
        "bizStep",
        "disposition",
        "persistentDisposition",
        "readPoint",
        "bizLocation",
        "sensorElementList",
    )
)
_IGNORED = frozenset(
    ("recordTime", "eventID", "errorDeclaration", "@context", "comment", "rdfs:comment", "#text")
)
_PAIR_LISTS = {
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
}
_PAIR_VOCAB = {
    "bizTransactionList": cbv.BIZ_TRANSACTION_TYPE,
    "sourceList": cbv.SOURCE_DEST_TYPE,
    "destinationList": cbv.SOURCE_DEST_TYPE,
}


def event_hash(event: Event, namespaces: Mapping[str, str] | None = None) -> str:
    """The CBV 2.0 event hash of one event; ``namespaces`` (the document's) and the event's
    own ``@context`` resolve extension prefixes; ``@context`` itself is not hashed."""
    digest = hashlib.sha256(prehash(event, namespaces).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def prehash(event: Event, namespaces: Mapping[str, str] | None = None) -> str:
    """The canonical pre-hash string of one event (what :func:`event_hash` digests)."""
    ns = {**WELL_KNOWN_NAMESPACES, **namespaces} if namespaces else WELL_KNOWN_NAMESPACES
    if CONTEXT_KEY in event:  # the event's own declarations win (JSON-LD)
        ns = {**ns, **event_namespaces(event)}
    out = ["eventType=", str(event.get("type", ""))]
    get = event.get
    if (v := get("eventTime")) is not None:
        out.append("eventTime=" + utc_millis(str(v)))
    if (v := get("eventTimeZoneOffset")) is not None:
        out.append(_field("eventTimeZoneOffset", v))
    if (v := get("certificationInfo")) is not None:
        out.extend(sorted(_field("certificationInfo", x) for x in _as_list(v)))
    if (v := get("parentID")) is not None:
        out.append(_field("parentID", v))
    for key in _EPC_LISTS:
        if v := get(key):
            out.append(key + _epc_list(v))
    for key in _QTY_LISTS:
        if v := get(key):
            out.append(key + "".join(sorted([_quantity(q, ns) for q in v])))
    if v := get("outputEPCList"):
        out.append("outputEPCList" + _epc_list(v))
    if v := get("outputQuantityList"):
        out.append("outputQuantityList" + "".join(sorted([_quantity(q, ns) for q in v])))
    if (v := get("action")) is not None:
        out.append(_field("action", v))
    if (v := get("transformationID")) is not None:
        out.append(_field("transformationID", v))
    if (v := get("bizStep")) is not None:
        out.append(_field("bizStep", cbv.BIZ_STEP.uri(v)))
    if (v := get("disposition")) is not None:
        out.append(_field("disposition", cbv.DISPOSITION.uri(v)))
    if isinstance(v := get("persistentDisposition"), dict):
        out.append(_persistent(v, ns))
    for key in ("readPoint", "bizLocation"):
        if (v := get(key)) is not None:
            out.append(_location(key, v, ns))
    if v := get("sensorElementList"):
        elements = "".join(sorted(_sensor_element(e, ns) for e in v if isinstance(e, dict)))
        if elements:
            out.append("sensorElementList" + elements)
    tail = [
        _generic_top(key, value, ns)
        for key, value in event.items()
        if key not in _ORDERED and key not in _IGNORED
    ]
    if tail:
        out.extend(sorted(tail))
    return "".join(out)


# ------------------------------------------------------------------------------ values


def utc_millis(value: str) -> str:
    """An ISO 8601 time as UTC with milliseconds (``…T14:00:00.123Z``); bad times unchanged."""
    size = len(value)
    if size == 24 and value[23] == "Z" and value[19] == "." and value[10] == "T":
        return value  # already UTC with milliseconds
    if size == 29 and value[19] == "." and value[23] in "+-" and value[10] == "T":
        # …THH:MM:SS.mmm±hh:mm — offsets are whole minutes, so only "…THH:MM" changes
        key = value[:16] + value[23:]
        head = _utc_minutes.get(key)
        if head is None:
            head = _utc_millis(value[:16] + ":00.000" + value[23:])[:16]
            if len(_utc_minutes) >= 65536:
                _utc_minutes.clear()
            _utc_minutes[key] = head
        if value[17:19].isdigit() and value[20:23].isdigit():
            return head + value[16:23] + "Z"
    return _utc_millis(value)


_utc_minutes: dict[str, str] = {}


def _utc_millis(value: str) -> str:
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    micros = dt.microsecond
    if micros % 1000:  # round to ms, half-even like the reference implementation
        dt = dt.replace(microsecond=0) + timedelta(microseconds=round(micros, -3))
    return dt.isoformat(timespec="milliseconds") + "Z"


def canonical_value(value: Any) -> str:
    """One value in canonical form: CBV URN → web URI, number normalised, GS1 key → DL."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value).strip()
    if "urn:epcglobal:cbv:" in text:
        for old, new in _CBV_URNS:
            text = text.replace(old, new)
    if ":" not in text and "/" not in text:
        return _number(text)
    if text.startswith(("urn:epc:", "http")):
        return canonical_identifier(text)
    return text


_SGTIN = "urn:epc:id:sgtin:"
# "urn:epc:id:sgtin:{company prefix}.{item ref}" → "https://id.gs1.org/01/{GTIN}/21/" (None:
# not a valid SGTIN class); filled by canonical_identifier, read by the validator's fast path.
SGTIN_BASES: dict[str, str | None] = {}


def _epc_list(values: list[Any]) -> str:
    """``epc=…`` for every member, sorted and joined (the hot loop of the hash).

    SGTINs take canonical_identifier's shortcut inline; consecutive SGTINs of one product
    (the usual case) even skip the dictionary look-up.
    """
    bases = SGTIN_BASES
    parts = []
    prefix, base = "\0", ""
    for value in values:
        if value.__class__ is str:
            if value.startswith(prefix):
                serial = value[len(prefix) :]
                if len(serial) <= 20 and serial.isascii() and serial.isalnum():
                    parts.append(base + serial)
                    continue
            if value.startswith(_SGTIN):
                head, _, serial = value.rpartition(".")
                link = bases.get(head)
                # same conditions as canonical_identifier's shortcut (isalnum: no spaces)
                if link is not None and len(serial) <= 20 and serial.isascii() and serial.isalnum():
                    prefix, base = head + ".", "epc=" + link
                    parts.append(base + serial)
                    continue
        parts.append("epc=" + _epc(value))
    parts.sort()
    return "".join(parts)


def _epc(value: Any) -> str:
    """:func:`canonical_value` of a list member, short-cutting the common EPC URI case."""
    if isinstance(value, str) and value.startswith("urn:epc:"):
        return canonical_identifier(value.strip())
    return canonical_value(value)


def canonical_identifier(uri: str) -> str:
    """:func:`canonical_digital_link`, with a shortcut for SGTINs whose serial is plain
    alphanumeric: the Digital Link prefix (``…/01/{GTIN}/21/``) of each company prefix + item
    reference is computed once by ``canonical_digital_link`` and reused for its other serials,
    since such a serial is written identically in both forms. Non-GS1 URIs come back unchanged.
    """
    if uri.startswith(_SGTIN):
        head, dot, serial = uri.rpartition(".")
        if dot and len(serial) <= 20 and serial.isascii() and serial.isalnum():
            if head in SGTIN_BASES:
                base = SGTIN_BASES[head]
            else:
                link = canonical_digital_link(uri)
                tail = "/21/" + serial
                base = link[: -len(serial)] if link != uri and link.endswith(tail) else None
                if len(SGTIN_BASES) >= 65536:
                    SGTIN_BASES.clear()
                SGTIN_BASES[head] = base
            if base is not None:
                return base + serial
    return canonical_digital_link(uri)


def _number(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return str(int(number)) if number == int(number) else str(number)


_field_cache: dict[tuple[str, type, Any], str] = {}


def _field(name: str, value: Any) -> str:
    """``name=canonical value`` ('' when empty), memoised: locations, CBV values, actions and
    offsets repeat from event to event."""
    key = (name, value.__class__, value)  # the class keeps True, 1 and 1.0 apart
    try:
        return _field_cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value (a list where a string belongs)
        text = canonical_value(value)
        return f"{name}={text}" if text else ""
    text = canonical_value(value)
    out = f"{name}={text}" if text else ""
    if len(_field_cache) >= 65536:
        _field_cache.clear()
    _field_cache[key] = out
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _key(name: str, ns: Mapping[str, str]) -> str:
    """An extension key as ``{namespace}local`` (:func:`yaolian.epcis.context.expand_name`)."""
    if ":" not in name:
        return name
    uri, local = expand_name(name, ns)
    return f"{{{uri}}}{local}"


def _extensions(
    obj: Mapping[str, Any], known: tuple[str, ...] | frozenset[str], ns: Mapping[str, str]
) -> str:
    """The sorted generic rendering of the members of ``obj`` that are not in ``known``."""
    parts = [
        _generic(_key(k, ns), item, ns)
        for k, v in obj.items()
        if k not in known and k not in _IGNORED
        for item in _as_list(v)
    ]
    return "".join(sorted(parts))


def _generic(name: str, value: Any, ns: Mapping[str, str]) -> str:
    """``name=value`` or ``name`` followed by the sorted rendering of an object's members."""
    if isinstance(value, dict):
        text = value.get("#text")
        head = f"{name}={canonical_value(text)}" if text not in (None, "") else name
        return head + _extensions(value, (), ns)
    if value.__class__ is str:  # ilmd values and the like repeat from event to event
        key = (name, value)
        out = _generic_cache.get(key)
        if out is None:
            text = canonical_value(value)
            out = f"{name}={text}" if text else name
            if len(_generic_cache) >= 65536:
                _generic_cache.clear()
            _generic_cache[key] = out
        return out
    text = canonical_value(value) if value is not None else ""
    return f"{name}={text}" if text else name


_generic_cache: dict[tuple[str, str], str] = {}


def _generic_top(key: str, value: Any, ns: Mapping[str, str]) -> str:
    if key in _PAIR_LISTS and isinstance(value, list):
        item_name, vocab = _PAIR_LISTS[key], _PAIR_VOCAB[key]
        pairs = []
        for item in value:
            text = ""
            if isinstance(item, dict):
                if item.get("type"):
                    text = "type=" + canonical_value(vocab.uri(item["type"]))
                text += f"{item_name}={canonical_value(item.get(item_name, ''))}"
            pairs.append(text)
        return key + "".join(sorted(pairs))
    if key == "ilmd" and isinstance(value, dict):
        return "ilmd" + _extensions(value, (), ns)
    return "".join(sorted(_generic(_key(key, ns), item, ns) for item in _as_list(value)))


def _quantity(q: Mapping[str, Any], ns: Mapping[str, str]) -> str:
    out = ["quantityElement"]
    for name in ("epcClass", "quantity", "uom"):
        if (v := q.get(name)) is not None:
            out.append(_field(name, v))
    out.append(_extensions(q, ("epcClass", "quantity", "uom"), ns))
    return "".join(out)


def _persistent(pd: Mapping[str, Any], ns: Mapping[str, str]) -> str:
    out = ["persistentDisposition"]
    for name in ("set", "unset"):
        values = [_field(name, cbv.DISPOSITION.uri(v)) for v in _as_list(pd.get(name) or [])]
        out.extend(sorted(values))
    out.append(_extensions(pd, ("set", "unset"), ns))
    body = "".join(out)
    return body if len(body) > len("persistentDisposition") else ""  # empty: left out


def _location(name: str, loc: Any, ns: Mapping[str, str]) -> str:
    if not isinstance(loc, dict):
        return _field(name, loc)
    if len(loc) == 1 and (site := loc.get("id")) is not None:  # the usual {"id": …}
        body = _field("id", site)
        return name + body if body else ""
    body = (_field("id", loc["id"]) if loc.get("id") is not None else "") + _extensions(
        loc, ("id",), ns
    )
    return name + body if body else ""


def _sensor_element(element: Mapping[str, Any], ns: Mapping[str, str]) -> str:
    out = ["sensorElement"]
    meta = element.get("sensorMetadata")
    if isinstance(meta, dict):
        body = _ordered(meta, _METADATA_ORDER, {}, ns)
        if body:
            out.append("sensorMetadata" + body)
    bodies = [
        _ordered(r, _REPORT_ORDER, _REPORT_VOCAB, ns)
        for r in _as_list(element.get("sensorReport") or [])
        if isinstance(r, dict)
    ]
    out.extend(sorted("sensorReport" + b for b in bodies if b))
    out.append(_extensions(element, ("sensorMetadata", "sensorReport"), ns))
    return "".join(out) if len(out) > 2 or out[-1] else ""  # empty element: left out


def _ordered(
    obj: Mapping[str, Any],
    order: tuple[str, ...],
    vocab: Mapping[str, cbv.Vocabulary],
    ns: Mapping[str, str],
) -> str:
    out = []
    for name in order:
        value = obj.get(name)
        if value is None:
            continue
        if "time" in name.lower():
            out.append(f"{name}={utc_millis(str(value))}")
        elif name in vocab and isinstance(value, str):
            out.append(_field(name, vocab[name].uri(value)))
        else:
            out.append(_field(name, value))
    out.append(_extensions(obj, order, ns))
    return "".join(out)
