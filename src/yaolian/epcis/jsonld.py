"""EPCIS 2.0 JSON / JSON-LD reader and writer.

Accepted inputs: an ``EPCISDocument``, an ``EPCISQueryDocument`` (events under
``epcisBody/queryResults/resultsBody/eventList``), a capture body holding ONE event, or a
JSON array of events. Every event is returned in the model's normalised shape (CBV values as
bare words, see :mod:`yaolian.epcis.cbv`) together with its JSON pointer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from yaolian.epcis import cbv
from yaolian.epcis.context import (
    CONTEXT_KEY,
    PROTECTED_PREFIXES,
    attach_namespaces,
    context_namespaces,
    event_namespaces,
    header_namespaces,
)
from yaolian.epcis.gcpause import gc_paused
from yaolian.epcis.model import EVENT_TYPES, Document, Event
from yaolian.errors import Problem, ValidationError, refuse_nul

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_HEADER_KEYS = ("@context", "type", "schemaVersion", "creationDate", "epcisBody")
_NUL_ESCAPE = b"\\u0000"
_MASTER_DATA_SECTIONS = {"enterprises", "sites", "products"}  # masterdata.json, not events


def read_document(data: bytes | str) -> Document:
    """Parse EPCIS JSON(-LD) text into a :class:`Document`; ``ValidationError`` on bad input."""
    with gc_paused():
        try:
            root = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(
                f"not valid JSON: {exc.msg}", place=f"line {exc.lineno} column {exc.colno}"
            ) from None
        escaped = _NUL_ESCAPE in data if isinstance(data, bytes) else _NUL_ESCAPE.decode() in data
        if escaped:  # the only way JSON text holds a NUL; a full walk only then
            refuse_nul(root)
        return document_from_json(root)


def document_from_json(root: Any) -> Document:
    """Build a :class:`Document` from already parsed JSON (any accepted top-level shape)."""
    if isinstance(root, list):
        return _from_events(root, "", [])
    if not isinstance(root, dict):
        raise ValidationError("an EPCIS document, an event or a list of events expected", place="")
    kind = root.get("type")
    context = _context_list(root.get("@context"))
    if kind == "EPCISDocument":
        body = root.get("epcisBody")
        events = body.get("eventList") if isinstance(body, dict) else None
        pointer = "/epcisBody/eventList"
    elif kind == "EPCISQueryDocument":
        body = root.get("epcisBody")
        results = body.get("queryResults") if isinstance(body, dict) else None
        rbody = results.get("resultsBody") if isinstance(results, dict) else None
        events = rbody.get("eventList") if isinstance(rbody, dict) else None
        pointer = "/epcisBody/queryResults/resultsBody/eventList"
    else:
        if kind in EVENT_TYPES or "eventTime" in root:
            root.pop(CONTEXT_KEY, None)  # a lone event's @context is the document's
            doc = _from_events([root], "", context)
            doc.places = [""]
            return doc
        if root and kind is None and root.keys() <= _MASTER_DATA_SECTIONS:
            raise ValidationError(
                "a master data document (enterprises, sites, products), not EPCIS events: "
                "load it with `yaolian masterdata load` or POST /masterdata",
                place="",
            )
        raise ValidationError(
            f"unknown document type {kind!r}: expected EPCISDocument, EPCISQueryDocument or an "
            "EPCIS event",
            place="/type",
        )
    if not isinstance(events, list):
        raise ValidationError("missing or not a list", place=pointer)
    doc = _from_events(events, pointer, context)
    doc.schema_version = str(root.get("schemaVersion", "2.0"))
    created = root.get("creationDate")
    doc.creation_date = created if isinstance(created, str) else None
    header = root.get("epcisHeader")
    sender = root.get("sender")
    doc.sender = sender if isinstance(sender, str) else None
    doc.extra = {k: v for k, v in root.items() if k not in _HEADER_KEYS and k != "sender"}
    if isinstance(header, dict):
        doc.extra["epcisHeader"] = header
    return doc


def _context_list(context: Any) -> list[Any]:
    if context is None:
        return []
    return list(context) if isinstance(context, list) else [context]


def _from_events(items: list[Any], pointer: str, context: list[Any]) -> Document:
    problems = [
        Problem("an event must be a JSON object", f"{pointer}/{i}")
        for i, item in enumerate(items)
        if not isinstance(item, dict)
    ]
    if problems:
        raise ValidationError(problems[0].reason, place=problems[0].place, problems=problems)
    events: list[Event] = items
    declared = context_namespaces(context)
    for event in events:
        if declared or CONTEXT_KEY in event:  # each event keeps the prefixes it uses
            attach_namespaces(event, declared)
        cbv.normalise_event(event)
    places = [f"{pointer}/{i}" for i in range(len(events))]
    return Document(events=events, context=context, places=places, self_contained=True)


def to_json(doc: Document) -> dict[str, Any]:
    """The EPCISDocument JSON object for ``doc``: the events' own prefix declarations are
    lifted into the header ``@context`` (an event keeps its own only where it means another
    namespace by a prefix than the header does)."""
    base = doc.namespaces()
    merged = header_namespaces(base, doc.events)
    context: list[Any] = []
    for item in doc.context:
        if isinstance(item, dict):  # the EPCIS context defines (and protects) these terms
            item = {k: v for k, v in item.items() if k not in PROTECTED_PREFIXES}
            if not item:
                continue
        context.append(item)
    lifted = {k: v for k, v in merged.items() if k not in base and k not in PROTECTED_PREFIXES}
    if lifted:
        context.append(lifted)
    if not any(isinstance(item, str) for item in context):
        context.insert(0, EPCIS_CONTEXT)
    events = [_without_redundant_context(e, merged) for e in doc.events]
    out: dict[str, Any] = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": doc.schema_version or "2.0",
        "creationDate": doc.creation_date or _now(),
    }
    if doc.sender:
        out["sender"] = doc.sender
    out.update(doc.extra)
    out["epcisBody"] = {"eventList": events}
    return out


def _without_redundant_context(event: Event, header: dict[str, str]) -> Event:
    """``event`` without its ``@context`` when the header declares the same prefixes."""
    if CONTEXT_KEY not in event:
        return event
    own = event_namespaces(event)
    if any(
        header.get(prefix) != uri or prefix in PROTECTED_PREFIXES for prefix, uri in own.items()
    ):
        return event
    return {k: v for k, v in event.items() if k != CONTEXT_KEY}


def write_document(doc: Document) -> bytes:
    """Serialise ``doc`` as an EPCIS 2.0 JSON-LD ``EPCISDocument`` (UTF-8 bytes)."""
    return orjson.dumps(to_json(doc))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
