"""EPCIS 2.0 event validation: the official JSON schema, CBV vocabularies and semantic rules.

* **Schema** — GS1's ``EPCIS-JSON-Schema.json`` (vendored under ``schema/``) compiled once with
  fastjsonschema. Running it costs ~60 µs per event, so :func:`_fast_schema_ok` first checks the
  standard event shapes (every standard field, ilmd, sensor data, error declarations, user
  extensions) with the very same constraints — the same format
  regular expressions, enums and required/anyOf rules — and the compiled schema only runs for
  events it cannot vouch for. It may answer "not sure" but never "valid" for an event the schema
  rejects (a property test holds it to that).
* **CBV** — bizStep, disposition, persistentDisposition, bizTransaction / source / destination
  types, error reasons, sensor types: a CBV 2.0 word or a URI (custom value).
* **Semantic rules** (EPCIS 2.0 §7) — times are ISO 8601 with an offset, eventTimeZoneOffset
  is ``±HH:MM``, action present where required, parentID for AggregationEvent ADD/DELETE and
  every AssociationEvent, a TransformationEvent has inputs or outputs, quantities positive,
  GS1 EPC URIs and NMPA URIs well formed.

Every :class:`~yaolian.errors.Problem` names its place: the event's JSON pointer (or XML line)
plus the pointer of the field inside the event, e.g. ``/epcisBody/eventList/3/epcList/0``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC
from importlib import resources
from typing import Any

import fastjsonschema
import orjson
from fastjsonschema.draft07 import CodeGeneratorDraft07

from yaolian.codes.digital_link import looks_like_digital_link, parse_digital_link
from yaolian.codes.epc import parse_epc_uri
from yaolian.codes.nmpa import parse_nmpa_uri
from yaolian.epcis import cbv
from yaolian.epcis.extensions import LOT_KEY, as_text, ilmd_as_written, xsd_date
from yaolian.epcis.hash import SGTIN_BASES, canonical_identifier
from yaolian.epcis.model import EVENT_TYPES, Document, Event, parse_time
from yaolian.errors import CodeError, Problem, ValidationError

SCHEMA_FILE = "EPCIS-JSON-Schema.json"
# Fields of EPCIS 2.0 (§7.4.1) that the vendored schema revision omits from its property-name
# lists; without this the schema would reject a standard field as an unknown property.
_SCHEMA_MISSING_COMMON = ("certificationInfo",)

_Check = Callable[[Any], int]  # truthy when the value passes
_Out = list[tuple[str, str]]  # (pointer inside the event, reason)
_URI = re.compile(CodeGeneratorDraft07.FORMAT_REGEXS["uri"])
_DATE_TIME = re.compile(CodeGeneratorDraft07.FORMAT_REGEXS["date-time"])
# every ±HH:MM from -14:00 to +14:00 (the schema's pattern, enumerated: a set look-up)
_OFFSETS = frozenset(
    [f"{sign}{h:02d}:{m:02d}" for sign in "+-" for h in range(14) for m in range(60)]
    + ["+14:00", "-14:00"]
)
_UOM = re.compile(r"[A-Z0-9]{2,3}")
ACTIONS = frozenset(("OBSERVE", "ADD", "DELETE"))
_ACTION_REQUIRED = frozenset(EVENT_TYPES) - {"TransformationEvent"}
_EPC_LISTS = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
_SGTIN = "urn:epc:id:sgtin:"
_QTY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_NAMED_IN_LISTS = (  # identifiers inside list items: (list, field)
    *((key, "epcClass") for key in _QTY_LISTS),
    ("bizTransactionList", "bizTransaction"),
    ("sourceList", "source"),
    ("destinationList", "destination"),
)


# ------------------------------------------------------------------------------ JSON schema


@functools.cache
def official_schema() -> dict[str, Any]:
    """The vendored GS1 EPCIS 2.0 JSON schema (with the certificationInfo fix applied)."""
    text = resources.files("yaolian.epcis").joinpath("schema", SCHEMA_FILE).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    common = schema["definitions"]["common-event-properties"]["anyOf"][0]["enum"]
    common.extend(name for name in _SCHEMA_MISSING_COMMON if name not in common)
    return schema


@functools.cache
def _compiled(definition: str) -> Callable[[Any], Any]:
    schema = official_schema()
    root = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return fastjsonschema.compile(root)


def _schema_problem(event: Event, place: str) -> Problem | None:
    try:
        _compiled("EPCIS-Document-Event")(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = [str(p) for p in (exc.path or [])][1:]
        pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
        message = exc.message
        if message.startswith(exc.name or "\0"):
            message = message[len(exc.name or "") :].strip()
        return Problem(
            f"EPCIS JSON schema: {pointer or 'the event'} {message}", _at(place, pointer)
        )
    return None


def _is_uri(value: Any) -> bool:
    """A string in the schema's ``uri`` format (memoised: locations and ilmd names repeat)."""
    if value.__class__ is not str:
        return isinstance(value, str) and _URI.match(value) is not None
    known = _uri_memo.get(value)
    if known is None:
        known = _URI.match(value) is not None
        if len(_uri_memo) >= 65536:
            _uri_memo.clear()
        _uri_memo[value] = known
    return known


_uri_memo: dict[str, bool] = {}


def _is_offset(value: Any) -> bool:
    return isinstance(value, str) and value in _OFFSETS


def _uris(value: Any) -> int:
    """0: not a list of URIs; 1: a list of URIs; 2: a list of SGTINs already known valid
    (see hash.canonical_identifier; such a string is certainly a URI)."""
    if not isinstance(value, list):
        return 0
    match = _URI.match
    bases = SGTIN_BASES
    verified = 2
    prefix = "\0"
    for v in value:
        if v.__class__ is not str:
            return 0
        if v.startswith(prefix):
            serial = v[len(prefix) :]
            if len(serial) <= 20 and serial.isascii() and serial.isalnum():
                continue
        if v.startswith(_SGTIN):
            head, _, serial = v.rpartition(".")
            if (
                bases.get(head) is not None
                and len(serial) <= 20
                and serial.isascii()
                and serial.isalnum()
            ):
                prefix = head + "."
                continue
        verified = 1
        if match(v) is None:
            return 0
    return verified


def _time(value: Any) -> bool:
    return isinstance(value, str) and _DATE_TIME.match(value) is not None


def _cbv(vocab: cbv.Vocabulary) -> _Check:
    return lambda v: isinstance(v, str) and (v in vocab.words or _URI.match(v) is not None)


def _location(value: Any) -> bool:
    return isinstance(value, dict) and _is_uri(value.get("id"))


def _quantities(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    for q in value:
        if not isinstance(q, dict) or not _is_uri(q.get("epcClass")):
            return False
        qty = q.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int | float):
            return False
        uom = q.get("uom")
        if uom is not None and not (isinstance(uom, str) and _UOM.fullmatch(uom)):
            return False
    return True


def _biz_transactions(value: Any) -> bool:
    ok_type = _cbv(cbv.BIZ_TRANSACTION_TYPE)
    return isinstance(value, list) and all(
        isinstance(t, dict)
        and _is_uri(t.get("bizTransaction"))
        and ("type" not in t or ok_type(t["type"]))
        for t in value
    )


def _parties(field: str) -> _Check:
    ok_type = _cbv(cbv.SOURCE_DEST_TYPE)

    def check(value: Any) -> bool:
        return isinstance(value, list) and all(
            isinstance(p, dict) and len(p) == 2 and ok_type(p.get("type")) and _is_uri(p.get(field))
            for p in value
        )

    return check


def _optional(checks: dict[str, _Check]) -> Callable[[dict[str, Any]], bool]:
    """Each key of ``checks`` present in the object passes its check (other keys are free)."""

    def check(obj: dict[str, Any]) -> bool:
        for key, value in obj.items():
            test = checks.get(key)
            if test is not None and not test(value):
                return False
        return True

    return check


def _is_number(value: Any) -> bool:
    return value.__class__ is not bool and isinstance(value, int | float)


_HEX = re.compile(r"[A-Fa-f0-9]+")
_METADATA_OK = _optional(
    {
        **dict.fromkeys(("time", "startTime", "endTime"), _time),
        **dict.fromkeys(
            ("deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "bizRules"), _is_uri
        ),
    }
)
_REPORT_OK = _optional(
    {
        "type": _cbv(cbv.MEASUREMENT_TYPE),
        "exception": _cbv(cbv.SENSOR_ALERT_TYPE),
        "component": _cbv(cbv.COMPONENT),
        "time": _time,
        **dict.fromkeys(
            (
                "deviceID",
                "deviceMetadata",
                "rawData",
                "dataProcessingMethod",
                "microorganism",
                "chemicalSubstance",
                "uriValue",
            ),
            _is_uri,
        ),
        **dict.fromkeys(
            ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"),
            _is_number,
        ),
        "stringValue": lambda v: isinstance(v, str),
        "uom": lambda v: isinstance(v, str),
        "booleanValue": lambda v: isinstance(v, bool),
        "hexBinaryValue": lambda v: isinstance(v, str) and _HEX.fullmatch(v) is not None,
    }
)


def _sensor_elements(value: Any) -> bool:
    """sensorElementList: elements with a list of reports, each with a type; metadata and
    reports hold typed standard attributes; other members (extensions) are free."""
    if not isinstance(value, list):
        return False
    for element in value:
        if not isinstance(element, dict):
            return False
        reports = element.get("sensorReport")
        if not isinstance(reports, list):
            return False
        meta = element.get("sensorMetadata")
        if meta is not None and not (isinstance(meta, dict) and _METADATA_OK(meta)):
            return False
        if "sensorMetadata" in element and meta is None:
            return False
        for report in reports:
            if not (isinstance(report, dict) and "type" in report and _REPORT_OK(report)):
                return False
    return True


_ERROR_OK = _optional(
    {
        "declarationTime": _time,
        "reason": _cbv(cbv.ERROR_REASON),
        "correctiveEventIDs": lambda v: isinstance(v, list) and all(_is_uri(x) for x in v),
    }
)


def _error_declaration(value: Any) -> bool:
    return isinstance(value, dict) and "declarationTime" in value and _ERROR_OK(value)


def _persistent_disposition(value: Any) -> bool:
    ok = _cbv(cbv.DISPOSITION)
    return isinstance(value, dict) and all(
        isinstance(value[key], list) and all(ok(v) for v in value[key])
        for key in ("set", "unset")
        if key in value
    )


def _ilmd(value: Any) -> bool:
    """ilmd: an object whose member names are URIs (``cbvmda:lotNumber``, ``ex:batch``)."""
    return isinstance(value, dict) and all(_is_uri(key) for key in value)


def _context(value: Any) -> bool:
    """An event's own ``@context``: a URI, an object, or a list of distinct ones."""
    if isinstance(value, dict) or _is_uri(value):
        return True
    if not isinstance(value, list) or not all(isinstance(v, dict) or _is_uri(v) for v in value):
        return False
    # no two items equal (equal for Python is implied by equal for the schema's uniqueItems)
    return all(a != b for i, a in enumerate(value) for b in value[i + 1 :])


_COMMON_FAST: dict[str, _Check] = {
    "type": lambda v: True,  # dispatched on below
    "@context": _context,
    "eventTime": _time,
    "recordTime": _time,
    "eventTimeZoneOffset": _is_offset,
    "eventID": _is_uri,
    "errorDeclaration": _error_declaration,
    "certificationInfo": lambda v: True,  # the schema sets no type for it
    "bizStep": _cbv(cbv.BIZ_STEP),
    "disposition": _cbv(cbv.DISPOSITION),
    "persistentDisposition": _persistent_disposition,
    "readPoint": _location,
    "bizLocation": _location,
    "bizTransactionList": _biz_transactions,
    "sourceList": _parties("source"),
    "destinationList": _parties("destination"),
    "sensorElementList": _sensor_elements,
}
_ACTION = {"action": lambda v: isinstance(v, str) and v in ACTIONS}
_FAST: dict[str, dict[str, _Check]] = {
    "ObjectEvent": {
        **_COMMON_FAST,
        **_ACTION,
        "epcList": _uris,
        "quantityList": _quantities,
        "ilmd": _ilmd,
    },
    "AggregationEvent": {
        **_COMMON_FAST,
        **_ACTION,
        "parentID": _is_uri,
        "childEPCs": _uris,
        "childQuantityList": _quantities,
    },
    "TransactionEvent": {
        **_COMMON_FAST,
        **_ACTION,
        "parentID": _is_uri,
        "epcList": _uris,
        "quantityList": _quantities,
    },
    "TransformationEvent": {
        **_COMMON_FAST,
        "inputEPCList": _uris,
        "outputEPCList": _uris,
        "inputQuantityList": _quantities,
        "outputQuantityList": _quantities,
        "transformationID": _is_uri,
        "ilmd": _ilmd,
    },
    "AssociationEvent": {
        **_COMMON_FAST,
        **_ACTION,
        "parentID": _is_uri,
        "childEPCs": _uris,
        "childQuantityList": _quantities,
    },
}


def _fast_schema_ok(event: Event) -> int:
    """Truthy only if the official schema certainly accepts ``event`` (see module doc);
    2 when moreover every EPC list holds only SGTINs already known to be valid."""
    kind = event.get("type")
    checks = _FAST.get(kind) if isinstance(kind, str) else None
    if checks is None or "eventTime" not in event or "eventTimeZoneOffset" not in event:
        return False
    verified = 2
    for key, value in event.items():
        check = checks.get(key)
        if check is None:
            # a user extension: any value, under a name that is a URI (``ex:foo``)
            if ":" in key and _is_uri(key):
                continue
            return 0
        result = check(value)
        if not result:
            return 0
        if key in _EPC_LISTS and result != 2:
            verified = 1
    if _schema_shape_ok(event):
        return verified
    return 0


def _schema_shape_ok(event: Event) -> bool:
    """The required-field and anyOf rules of the schema, per event type."""
    kind = event["type"]
    action = event.get("action")
    if kind == "ObjectEvent":
        if "ilmd" in event and action != "ADD":
            return False
        return action is not None and (
            "epcList" in event
            or bool(event.get("quantityList"))
            or (bool(event.get("sensorElementList")) and "readPoint" in event)
        )
    if kind == "TransactionEvent":
        return (
            action is not None
            and bool(event.get("bizTransactionList"))
            and ("epcList" in event or bool(event.get("quantityList")) or action == "DELETE")
        )
    if kind == "TransformationEvent":
        inputs = bool(event.get("inputEPCList") or event.get("inputQuantityList"))
        outputs = bool(event.get("outputEPCList") or event.get("outputQuantityList"))
        return (inputs and outputs) or ((inputs or outputs) and "transformationID" in event)
    if kind == "AssociationEvent" and "parentID" not in event:
        return False
    return action is not None and (
        bool(event.get("childEPCs") or event.get("childQuantityList")) or action == "DELETE"
    )


# ----------------------------------------------------------------------------- semantic rules


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else nothing to iterate (the schema reports the type)."""
    return value if isinstance(value, list) else []


def _at(place: str, pointer: str) -> str:
    if place.startswith("line "):
        return f"{place} {pointer}" if pointer else place
    return place + pointer


def _semantic(event: Event, schema_ok: int, out: _Out) -> None:
    """Append (pointer inside the event, reason) for every rule the event breaks."""
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        out.append(("/type", "missing event type (ObjectEvent, AggregationEvent, …)"))
        return
    if kind not in EVENT_TYPES and not cbv._looks_like_uri(kind):
        out.append(("/type", f"unknown event type {kind!r}"))
        return
    _times(event, out, schema_ok)
    action = event.get("action")
    if kind in _ACTION_REQUIRED:
        if action is None:
            out.append(("/action", f"{kind} requires action (OBSERVE, ADD or DELETE)"))
        elif not isinstance(action, str) or action not in ACTIONS:
            out.append(("/action", f"action {action!r} is not OBSERVE, ADD or DELETE"))
    elif kind == "TransformationEvent" and "action" in event:
        out.append(("/action", "a TransformationEvent has no action"))
    if kind == "AggregationEvent":
        if action in ("ADD", "DELETE") and not event.get("parentID"):
            out.append(("/parentID", f"an AggregationEvent with action {action} requires parentID"))
        if action in ("ADD", "OBSERVE") and not (
            event.get("childEPCs") or event.get("childQuantityList")
        ):
            out.append(("/childEPCs", f"an AggregationEvent with action {action} needs children"))
    elif kind == "AssociationEvent":
        if not event.get("parentID"):
            out.append(("/parentID", "an AssociationEvent requires parentID"))
        if action in ("ADD", "OBSERVE") and not (
            event.get("childEPCs") or event.get("childQuantityList")
        ):
            out.append(("/childEPCs", f"an AssociationEvent with action {action} needs children"))
    elif kind == "TransformationEvent":
        inputs = event.get("inputEPCList") or event.get("inputQuantityList")
        outputs = event.get("outputEPCList") or event.get("outputQuantityList")
        if not inputs and not outputs:
            out.append(("", "a TransformationEvent needs inputs or outputs"))
        elif not (inputs and outputs) and not event.get("transformationID"):
            out.append(
                (
                    "",
                    "a TransformationEvent with only inputs or only outputs needs transformationID",
                )
            )
    elif kind == "TransactionEvent" and not event.get("bizTransactionList"):
        out.append(
            ("/bizTransactionList", "a TransactionEvent requires at least one bizTransaction")
        )
    elif kind == "ObjectEvent":
        if "ilmd" in event and action != "ADD":
            out.append(("/ilmd", "ilmd is only allowed on an ObjectEvent with action ADD"))
        if not (
            "epcList" in event
            or event.get("quantityList")
            or (event.get("sensorElementList") and event.get("readPoint"))
        ):
            out.append(
                ("", "an ObjectEvent needs epcList, quantityList or sensor data with readPoint")
            )
    _identifiers(event, schema_ok == 2, out)
    _quantity_rules(event, out)
    _vocabularies(event, out)
    if "ilmd" in event:
        _ilmd_rules(event, out)
    _sizes(event, out)


IDENTIFIER_MAX_BYTES = 500
"""Longest identifier (UTF-8 bytes) the store takes: identifiers are indexed, and PostgreSQL's
btree entries hold at most 2,704 bytes for all the columns of an index together."""
LOT_MAX_BYTES = 200  # 批号 (GS1 AI 10 allows 20 characters)


def utf8_longer(text: str, limit: int) -> bool:
    """Whether ``text`` takes more than ``limit`` bytes in UTF-8."""
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def _sizes(event: Event, out: _Out) -> None:
    """Identifiers the store indexes no longer than it can index (one C-level ``max`` of the
    lengths per list: texts of 125 characters or fewer always fit)."""
    reason = f"longer than {IDENTIFIER_MAX_BYTES} bytes (UTF-8)"
    for key in ("readPoint", "bizLocation"):
        place = event.get(key)
        if isinstance(place, dict) and _too_long(place.get("id")):
            out.append((f"/{key}/id", reason))
    for key in ("eventID", "parentID"):
        if _too_long(event.get(key)):
            out.append((f"/{key}", reason))
    for key in _EPC_LISTS:
        values = event.get(key)
        if values and _longest(values) > _ALWAYS_FITS:
            for i, value in enumerate(_list(values)):
                if _too_long(value):
                    out.append((f"/{key}/{i}", reason))
    for key, field in _NAMED_IN_LISTS:
        items = event.get(key)
        if items:
            for i, item in enumerate(_list(items)):
                if isinstance(item, dict) and _too_long(item.get(field)):
                    out.append((f"/{key}/{i}/{field}", reason))
    if LOT_KEY in event:
        lot = as_text(event[LOT_KEY])
        if lot is not None and utf8_longer(lot, LOT_MAX_BYTES):
            out.append((f"/{LOT_KEY}", f"lotNumber longer than {LOT_MAX_BYTES} bytes (UTF-8)"))


_ALWAYS_FITS = IDENTIFIER_MAX_BYTES // 4  # characters: UTF-8 takes at most 4 bytes each


def _longest(values: Any) -> int:
    """The longest text of a list (anything else: "long", so each item is looked at)."""
    try:
        return max(map(len, values), default=0)
    except TypeError:
        return _ALWAYS_FITS + 1


def _too_long(value: Any) -> bool:
    return (
        value.__class__ is str
        and len(value) > _ALWAYS_FITS
        and utf8_longer(value, IDENTIFIER_MAX_BYTES)
    )


def _ilmd_rules(event: Event, out: _Out) -> None:
    """Expiry (有效期) and production date are ``xsd:date`` values (CBV master data); the lot
    fits the store's index."""
    written = ilmd_as_written(event)
    for name, value in (
        ("itemExpirationDate", written.expiry),
        ("productionDate", written.produced),
    ):
        if value is not None and xsd_date(value) is None:
            out.append(("/ilmd", f"{name} {value!r} is not a date (YYYY-MM-DD)"))
    if written.lot is not None and utf8_longer(written.lot, LOT_MAX_BYTES):
        out.append(("/ilmd", f"lotNumber longer than {LOT_MAX_BYTES} bytes (UTF-8)"))


def _times(event: Event, out: _Out, schema_ok: int = 0) -> None:
    if schema_ok:  # formats and offset already matched: only real dates left to check
        for key in ("eventTime", "recordTime"):
            if key in event:
                _parse_time(f"/{key}", event[key], out)
    else:
        for key in ("eventTime", "recordTime"):
            value = event.get(key)
            if value is None:
                if key == "eventTime":
                    out.append(("/eventTime", "eventTime is required"))
                continue
            _check_time(f"/{key}", value, out)
        offset = event.get("eventTimeZoneOffset")
        if offset is None:
            out.append(("/eventTimeZoneOffset", "eventTimeZoneOffset is required"))
        elif not _is_offset(offset):
            out.append(
                (
                    "/eventTimeZoneOffset",
                    f"{offset!r} is not a time-zone offset ±HH:MM (-14:00…+14:00)",
                )
            )
    err = event.get("errorDeclaration")
    if isinstance(err, dict):
        if "declarationTime" not in err:
            out.append(
                ("/errorDeclaration/declarationTime", "errorDeclaration requires declarationTime")
            )
        else:
            _check_time("/errorDeclaration/declarationTime", err["declarationTime"], out)
    for i, element in enumerate(_list(event.get("sensorElementList"))):
        if not isinstance(element, dict):
            continue
        meta = element.get("sensorMetadata")
        if isinstance(meta, dict):
            for key in ("time", "startTime", "endTime"):
                if key in meta:
                    _check_time(f"/sensorElementList/{i}/sensorMetadata/{key}", meta[key], out)
        for j, report in enumerate(_list(element.get("sensorReport"))):
            if isinstance(report, dict) and "time" in report:
                _check_time(f"/sensorElementList/{i}/sensorReport/{j}/time", report["time"], out)


def _check_time(pointer: str, value: Any, out: _Out) -> None:
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        out.append((pointer, f"{value!r} is not an ISO 8601 date-time with a time-zone offset"))
        return
    _parse_time(pointer, value, out)


def _parse_time(pointer: str, value: str, out: _Out) -> None:
    """A time that has the ISO 8601 shape must also be a real instant (no 2025-02-30) that has
    a UTC time (the event hash and the store keep UTC: 0001-01-01T00:00+08:00 has none)."""
    try:
        when = parse_time(value)
        if value.startswith(("0001", "9999")):
            when.astimezone(UTC)
    except ValueError as exc:
        out.append((pointer, f"{value!r}: {exc}"))
    except OverflowError:
        out.append((pointer, f"{value!r} is outside the years 1–9999 in UTC"))


def _identifiers(event: Event, lists_verified: bool, out: _Out) -> None:
    """Identifier rules; ``lists_verified``: the fast path already proved every EPC valid."""
    parent = event.get("parentID")
    if parent is not None:
        _check_id("/parentID", parent, out)
    if lists_verified:
        return
    for key in _EPC_LISTS:
        values = event.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            out.append((f"/{key}", f"{key} must be a list of identifiers"))
            continue
        for i, value in enumerate(values):
            _check_id(f"/{key}/{i}", value, out)


def _check_id(pointer: str, value: Any, out: _Out) -> None:
    if not isinstance(value, str) or not _URI.match(value):
        out.append((pointer, f"{value!r} is not a URI (EPC URI, GS1 Digital Link, urn:nmpa:…)"))
        return
    if value.startswith("urn:epc:"):
        if canonical_identifier(value) != value:
            return
        try:
            parse_epc_uri(value)
        except CodeError as exc:
            if "unsupported" not in exc.reason:
                out.append((pointer, exc.reason))
    elif value.startswith("urn:nmpa:"):
        try:
            parse_nmpa_uri(value)
        except CodeError as exc:
            out.append((pointer, exc.reason))
    elif value.startswith(("https://", "http://")) and looks_like_digital_link(value):
        try:
            parse_digital_link(value)
        except CodeError as exc:
            out.append((pointer, exc.reason))


def _quantity_rules(event: Event, out: _Out) -> None:
    for key in _QTY_LISTS:
        values = event.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            out.append((f"/{key}", f"{key} must be a list of quantity elements"))
            continue
        for i, q in enumerate(values):
            where = f"/{key}/{i}"
            if not isinstance(q, dict):
                out.append(
                    (where, "a quantity element must be an object {epcClass, quantity, uom}")
                )
                continue
            if "epcClass" not in q:
                out.append((f"{where}/epcClass", "epcClass is required"))
            else:
                _check_id(f"{where}/epcClass", q["epcClass"], out)
            qty = q.get("quantity")
            if qty is None:
                out.append((f"{where}/quantity", "quantity is required"))
            elif isinstance(qty, bool) or not isinstance(qty, int | float):
                out.append((f"{where}/quantity", f"quantity {qty!r} is not a number"))
            elif not qty > 0:
                out.append((f"{where}/quantity", f"quantity must be positive, got {qty!r}"))
            uom = q.get("uom")
            if uom is not None and not (isinstance(uom, str) and _UOM.fullmatch(uom)):
                out.append(
                    (f"{where}/uom", f"uom {uom!r} is not a UN/CEFACT Rec 20 code (2–3 A-Z/0-9)")
                )


def _vocab_problem(pointer: str, value: Any, vocab: cbv.Vocabulary, out: _Out) -> None:
    reason = vocab.problem(value)
    if reason is not None:
        out.append((pointer, reason))


def _vocabularies(event: Event, out: _Out) -> None:
    if "bizStep" in event:
        _vocab_problem("/bizStep", event["bizStep"], cbv.BIZ_STEP, out)
    if "disposition" in event:
        _vocab_problem("/disposition", event["disposition"], cbv.DISPOSITION, out)
    pd = event.get("persistentDisposition")
    if isinstance(pd, dict):
        for key in ("set", "unset"):
            for i, value in enumerate(_list(pd.get(key))):
                _vocab_problem(f"/persistentDisposition/{key}/{i}", value, cbv.DISPOSITION, out)
    for key, vocab in (
        ("bizTransactionList", cbv.BIZ_TRANSACTION_TYPE),
        ("sourceList", cbv.SOURCE_DEST_TYPE),
        ("destinationList", cbv.SOURCE_DEST_TYPE),
    ):
        for i, item in enumerate(_list(event.get(key))):
            if isinstance(item, dict) and "type" in item:
                _vocab_problem(f"/{key}/{i}/type", item["type"], vocab, out)
    err = event.get("errorDeclaration")
    if isinstance(err, dict) and "reason" in err:
        _vocab_problem("/errorDeclaration/reason", err["reason"], cbv.ERROR_REASON, out)
    for i, element in enumerate(_list(event.get("sensorElementList"))):
        reports = element.get("sensorReport") if isinstance(element, dict) else None
        for j, report in enumerate(_list(reports)):
            if not isinstance(report, dict):
                continue
            where = f"/sensorElementList/{i}/sensorReport/{j}"
            if "type" in report:
                _vocab_problem(f"{where}/type", report["type"], cbv.MEASUREMENT_TYPE, out)
            if "exception" in report:
                _vocab_problem(
                    f"{where}/exception", report["exception"], cbv.SENSOR_ALERT_TYPE, out
                )


# ---------------------------------------------------------------------------------- public


def validate_event(event: Event, place: str = "") -> list[Problem]:
    """Every problem of one event (empty list: valid); ``place`` is where the event sits."""
    if not isinstance(event, dict):
        return [Problem("an event must be a JSON object", place or "/")]
    schema_ok = _fast_schema_ok(event)
    found: _Out = []
    _semantic(event, schema_ok, found)
    problems = [Problem(reason, _at(place, pointer)) for pointer, reason in found]
    if not schema_ok:
        schema = _schema_problem(event, place)
        if schema is not None and not any(
            p.place == schema.place or (schema.place or "").startswith(p.place or "\0")
            for p in problems
        ):
            problems.append(schema)
    return problems


def validate_document(doc: Document) -> list[Problem]:
    """Every problem of every event in ``doc``, in document order."""
    problems: list[Problem] = []
    for i, event in enumerate(doc.events):
        problems.extend(validate_event(event, doc.place(i)))
    return problems


def ensure_valid(doc: Document) -> None:
    """Raise :class:`ValidationError` listing every problem if ``doc`` has any."""
    problems = validate_document(doc)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValidationError(f"{first.reason}{more}", place=first.place, problems=problems)
