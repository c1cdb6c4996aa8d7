"""EPCIS XML reader (2.0 and 1.2, streamed) and writer (2.0).

The reader walks the document with :func:`lxml.etree.iterparse` and turns each event element
into the model's JSON-LD shape as soon as it ends, then clears it, so memory stays flat for
documents of any size. EPCIS 1.2 documents come out in the same 2.0 shape: ``extension`` and
``baseExtension`` wrappers are folded into their parent, so ``quantityList``, ``sourceList``,
``ilmd``, ``eventID``, ``errorDeclaration`` and the 1.2 ``TransformationEvent`` land where 2.0 has
them. Namespaced (user extension) elements become ``prefix:name`` keys; the prefixes are
collected into the document's ``@context``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from lxml import etree

from yaolian.epcis import cbv
from yaolian.epcis.context import (
    CONTEXT_KEY,
    PROTECTED_PREFIXES,
    WELL_KNOWN_NAMESPACES,
    event_namespaces,
    expand_name,
    header_namespaces,
)
from yaolian.epcis.gcpause import gc_paused
from yaolian.epcis.model import EVENT_TYPES, Document, Event
from yaolian.errors import ValidationError

EPCIS2_NS = "urn:epcglobal:epcis:xsd:2"
EPCIS_NAMESPACES = frozenset(
    (
        "urn:epcglobal:epcis:xsd:1",
        EPCIS2_NS,
        "urn:epcglobal:epcis-query:xsd:1",
        "urn:epcglobal:epcis-query:xsd:2",
        "urn:epcglobal:epcis-masterdata:xsd:1",
        "urn:epcglobal:epcis-masterdata:xsd:2",
    )
)
_TEXT_FIELDS = frozenset(
    [
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "eventID",
        "certificationInfo",
        "parentID",
        "action",
        "bizStep",
        "disposition",
        "transformationID",
    ]
)
_EPC_LISTS = frozenset(("epcList", "childEPCs", "inputEPCList", "outputEPCList"))
_QTY_LISTS = frozenset(
    ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
)
_WRAPPERS = frozenset(("extension", "baseExtension"))
_NUMERIC_ATTRS = frozenset(
    ["value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"]
)
_INT = re.compile(r"[+-]?\d+\Z", re.ASCII)
_NCNAME = re.compile(r"[^\W\d][\w.\-]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_XML_PREFIX = re.compile(r"[A-Za-z_][\w.-]*")

Source = bytes | str | Path | IO[bytes]


_KNOWN_BY_URI = {uri: prefix for prefix, uri in WELL_KNOWN_NAMESPACES.items()}


class _Namespaces:
    """prefix ↔ namespace of the extensions met in one document (prefixes made unique)."""

    def __init__(self) -> None:
        self.by_uri: dict[str, str] = {}
        self.by_prefix: dict[str, str] = {}
        self.hints: dict[str, str] = {}  # namespace → prefix the document declared for it
        self.used: dict[str, str] = {}  # prefixes met in the event being converted

    def declare(self, nsmap: dict[str | None, str]) -> None:
        """Remember the prefixes in scope (used only once a namespace is actually met)."""
        for prefix, uri in nsmap.items():
            if prefix and uri not in self.hints:
                self.hints[uri] = prefix

    def add(self, prefix: str | None, uri: str) -> str:
        """The prefix for ``uri`` in the model: the document's where free, else made unique;
        never a protected EPCIS JSON-LD term unless ``uri`` is that term's namespace."""
        if uri in self.by_uri:
            return self.by_uri[uri]
        base = _KNOWN_BY_URI.get(uri) or prefix or self.hints.get(uri) or "ns"
        name, n = base, 1
        while name in self.by_prefix or (
            name in PROTECTED_PREFIXES and WELL_KNOWN_NAMESPACES.get(name) != uri
        ):
            n += 1
            name = f"{base}{n}"
        self.by_uri[uri] = name
        self.by_prefix[name] = uri
        return name

    def key(self, tag: str, prefix: str | None = None) -> str:
        """``{uri}local`` → ``prefix:local`` (``prefix``: the one the document used, a hint);
        unqualified names unchanged."""
        if tag[0] != "{":
            return tag
        uri, local = tag[1:].split("}", 1)
        if uri in EPCIS_NAMESPACES:
            return local
        name = self.add(prefix, uri)
        self.used[name] = uri
        return f"{name}:{local}"


def _open(source: Source) -> Any:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if isinstance(source, str):
        return io.BytesIO(source.encode("utf-8"))
    if isinstance(source, Path):
        return str(source)
    return source


def iter_events(
    source: Source, header: dict[str, Any] | None = None
) -> Iterator[tuple[str, Event]]:
    """Stream ``(place, event)`` from EPCIS XML 2.0 or 1.2; ``place`` is ``line N``.

    ``header`` (if given) receives ``schemaVersion``, ``creationDate`` and the ``namespaces``
    (prefix → URI) seen, filled while the stream is consumed.
    """
    info = header if header is not None else {}
    names = _Namespaces()
    info["namespaces"] = names.by_prefix
    root_checked = False
    try:
        parser = etree.iterparse(
            _open(source),
            events=("end",),
            tag=EVENT_TYPES,  # only event elements come back to Python: the rest stays in C
            resolve_entities=False,
            no_network=True,
            huge_tree=True,
            remove_comments=True,
        )
        for _, node in parser:
            elem: Any = node
            if not root_checked:
                _root_info(elem.getroottree().getroot(), info)
                root_checked = True
            parent = elem.getparent()
            if not _in_event_list(parent):
                continue
            names.declare(elem.nsmap)
            place = f"line {elem.sourceline}"
            try:
                event = _event(elem, elem.tag, names)
            except ValidationError as exc:
                raise ValidationError(exc.reason, place=exc.place or place) from None
            yield place, event
            elem.clear()
            while elem.getprevious() is not None:
                del parent[0]
        if not root_checked:
            _root_info(parser.root, info)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else exc.lineno
        raise ValidationError(f"not well-formed XML: {exc.msg}", place=f"line {line}") from None


def _in_event_list(parent: Any) -> bool:
    """An event element belongs to the document if it sits in EventList (1.2: in its extension)."""
    if parent is None:
        return False
    if parent.tag == "EventList":
        return True
    grand = parent.getparent()
    return parent.tag == "extension" and grand is not None and grand.tag == "EventList"


def _root_info(elem: Any, info: dict[str, Any]) -> None:
    tag = elem.tag if elem is not None and isinstance(elem.tag, str) else ""
    local = tag.rsplit("}", 1)[-1]
    if local not in ("EPCISDocument", "EPCISQueryDocument"):
        raise ValidationError(
            f"root element {local!r} is not an EPCISDocument or EPCISQueryDocument",
            place=f"line {elem.sourceline if elem is not None else 1}",
        )
    info["schemaVersion"] = elem.get("schemaVersion", "")
    info["creationDate"] = elem.get("creationDate")


def read_document(source: Source) -> Document:
    """Read a whole EPCIS XML document (2.0 or 1.2) into a :class:`Document`."""
    header: dict[str, Any] = {}
    places: list[str] = []
    events: list[Event] = []
    with gc_paused():
        for place, event in iter_events(source, header):
            places.append(place)
            events.append(event)
    context: list[Any] = []
    if header["namespaces"]:
        context.append(dict(header["namespaces"]))
    return Document(
        events=events,
        context=context,
        schema_version="2.0",
        creation_date=header.get("creationDate"),
        places=places,
        self_contained=True,
    )


# ---------------------------------------------------------------------------------- reading


def _children(elem: Any) -> Iterator[Any]:
    """Child elements, with EPCIS 1.x ``extension``/``baseExtension`` wrappers folded in."""
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        if child.tag in _WRAPPERS:
            yield from _children(child)
        else:
            yield child


def _text(elem: Any) -> str:
    return (elem.text or "").strip()


def _number(text: str) -> int | float | str:
    text = text.strip()
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``, turning repeated keys into a list (repeated XML elements)."""
    if key in target:
        old = target[key]
        if isinstance(old, list):
            old.append(value)
        else:
            target[key] = [old, value]
    else:
        target[key] = value


def _event(elem: Any, kind: str, names: _Namespaces) -> Event:
    event: Event = {"type": kind}
    names.used = {}
    for child in _children(elem):
        tag = child.tag
        if tag[0] == "{":
            _put(event, names.key(tag, child.prefix), _extension(child, names))
            continue
        handler = _FIELDS.get(tag)
        if handler is not None:
            event[tag] = handler(child, names)
        elif tag in _TEXT_FIELDS:
            _put(event, tag, _text(child))
        else:
            _put(event, tag, _extension(child, names))
    cbv.normalise_event(event)
    declared = {
        prefix: uri
        for prefix, uri in sorted(names.used.items())
        if WELL_KNOWN_NAMESPACES.get(prefix) != uri
    }
    if declared:  # the event keeps the namespaces of its extensions (context.py)
        event[CONTEXT_KEY] = declared
    return event


def _extension(elem: Any, names: _Namespaces) -> Any:
    """A user-extension element as JSON: text, or an object of its children and attributes."""
    out: dict[str, Any] = {}
    for attr, value in elem.attrib.items():
        _put(out, "@" + names.key(attr), value)
    kids = list(_children(elem))
    if not kids:
        text = _text(elem)
        if not out:
            return text
        if text:
            out["#text"] = text
        return out
    for kid in kids:
        _put(out, names.key(kid.tag, kid.prefix), _extension(kid, names))
    return out


def _epcs(elem: Any, names: _Namespaces) -> list[str]:
    return [_text(c) for c in _children(elem)]


def _quantities(elem: Any, names: _Namespaces) -> list[dict[str, Any]]:
    out = []
    for qe in _children(elem):
        item: dict[str, Any] = {}
        for field in _children(qe):
            key = names.key(field.tag)
            if key == "quantity":
                item[key] = _number(_text(field))
            elif key in ("epcClass", "uom"):
                item[key] = _text(field)
            else:
                _put(item, key, _extension(field, names))
        out.append(item)
    return out


def _location(elem: Any, names: _Namespaces) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _children(elem):
        key = names.key(child.tag)
        if key == "id":
            out["id"] = _text(child)
        else:
            _put(out, key, _extension(child, names))
    return out


def _typed_list(field: str) -> Callable[[Any, _Namespaces], list[dict[str, Any]]]:
    def convert(elem: Any, names: _Namespaces) -> list[dict[str, Any]]:
        out = []
        for child in _children(elem):
            item: dict[str, Any] = {}
            if child.get("type") is not None:
                item["type"] = child.get("type").strip()
            item[field] = _text(child)
            out.append(item)
        return out

    return convert


def _persistent(elem: Any, names: _Namespaces) -> dict[str, Any]:
    out: dict[str, list[str]] = {}
    for child in _children(elem):
        out.setdefault(names.key(child.tag), []).append(_text(child))
    return out


def _error(elem: Any, names: _Namespaces) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _children(elem):
        key = names.key(child.tag)
        if key in ("declarationTime", "reason"):
            out[key] = _text(child)
        elif key == "correctiveEventIDs":
            out[key] = [_text(c) for c in _children(child)]
        else:
            _put(out, key, _extension(child, names))
    return out


def _attributes(elem: Any, names: _Namespaces) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, value in elem.attrib.items():
        key = names.key(attr)
        value = value.strip()
        if key in _NUMERIC_ATTRS:
            out[key] = _number(value)
        elif key == "booleanValue":
            out[key] = value in ("true", "1") if value in ("true", "1", "false", "0") else value
        else:
            out[key] = value
    return out


def _sensors(elem: Any, names: _Namespaces) -> list[dict[str, Any]]:
    out = []
    for element in _children(elem):
        item: dict[str, Any] = {}
        for child in _children(element):
            key = names.key(child.tag)
            if key == "sensorMetadata":
                item[key] = _attributes(child, names)
            elif key == "sensorReport":
                item.setdefault(key, []).append(_attributes(child, names))
            else:
                _put(item, key, _extension(child, names))
        out.append(item)
    return out


def _ilmd(elem: Any, names: _Namespaces) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _children(elem):
        _put(out, names.key(child.tag, child.prefix), _extension(child, names))
    return out


_FIELDS: dict[str, Callable[[Any, _Namespaces], Any]] = {
    **{name: _epcs for name in _EPC_LISTS},
    **{name: _quantities for name in _QTY_LISTS},
    "readPoint": _location,
    "bizLocation": _location,
    "bizTransactionList": _typed_list("bizTransaction"),
    "sourceList": _typed_list("source"),
    "destinationList": _typed_list("destination"),
    "persistentDisposition": _persistent,
    "errorDeclaration": _error,
    "sensorElementList": _sensors,
    "ilmd": _ilmd,
}

# ---------------------------------------------------------------------------------- writing

_HEAD = (
    "eventTime",
    "recordTime",
    "eventTimeZoneOffset",
    "eventID",
    "errorDeclaration",
    "certificationInfo",
)
_WHY = ("bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation")
_ORDER: dict[str, tuple[str, ...]] = {
    "ObjectEvent": (
        *_HEAD,
        "epcList",
        "action",
        *_WHY,
        "bizTransactionList",
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "ilmd",
    ),
    "AggregationEvent": (
        *_HEAD,
        "parentID",
        "childEPCs",
        "action",
        *_WHY,
        "bizTransactionList",
        "childQuantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
    ),
    "TransactionEvent": (
        *_HEAD,
        "bizTransactionList",
        "parentID",
        "epcList",
        "action",
        *_WHY,
        "quantityList",
        "sourceList",
        "destinationList",
        "sensorElementList",
    ),
    "TransformationEvent": (
        *_HEAD,
        "inputEPCList",
        "inputQuantityList",
        "outputEPCList",
        "outputQuantityList",
        "transformationID",
        *_WHY,
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "ilmd",
    ),
    "AssociationEvent": (
        *_HEAD,
        "parentID",
        "childEPCs",
        "childQuantityList",
        "action",
        *_WHY,
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
    ),
}


class _Writer:
    def __init__(self, namespaces: dict[str, str]) -> None:
        self.namespaces = {**WELL_KNOWN_NAMESPACES, **namespaces}

    def qname(self, key: str, place: str) -> str:
        """``prefix:name`` → ``{uri}name``; standard (unprefixed) names unchanged."""
        if ":" not in key:
            return key
        uri, local = expand_name(key, self.namespaces)
        if not _NCNAME.fullmatch(local) or not _SCHEME.match(uri):
            raise ValidationError(
                f"{key!r} cannot be written as an XML element or attribute name "
                "(undeclared prefix or not an XML name)",
                place=place,
            )
        return f"{{{uri}}}{local}"

    def event(self, parent: Any, event: Event, place: str) -> None:
        kind = event.get("type", "")
        order = _ORDER.get(kind, _HEAD)
        header = self.namespaces
        own = event_namespaces(event) if CONTEXT_KEY in event else {}
        local = {p: u for p, u in own.items() if header.get(p) != u and _XML_PREFIX.fullmatch(p)}
        elem = etree.SubElement(
            parent, kind if kind in EVENT_TYPES else "extension", nsmap=local or None
        )
        if own:
            self.namespaces = {**header, **own}
        try:
            for key in order:
                if key in event:
                    self.field(elem, key, event[key], f"{place}/{key}")
            for key, value in event.items():
                if key not in order and key != "type" and key != CONTEXT_KEY:
                    self.extension(elem, key, value, f"{place}/{key}")
        finally:
            self.namespaces = header

    def field(self, parent: Any, key: str, value: Any, place: str) -> None:
        sub = etree.SubElement
        if key in _EPC_LISTS:
            lst = sub(parent, key)
            for epc in value:
                sub(lst, "epc").text = str(epc)
        elif key in _QTY_LISTS:
            lst = sub(parent, key)
            for q in value:
                qe = sub(lst, "quantityElement")
                for name in ("epcClass", "quantity", "uom"):
                    if name in q:
                        sub(qe, name).text = _lexical(q[name])
                for name, v in q.items():
                    if name not in ("epcClass", "quantity", "uom"):
                        self.extension(qe, name, v, place)
        elif key in ("readPoint", "bizLocation"):
            loc = sub(parent, key)
            sub(loc, "id").text = str(value.get("id", ""))
            for name, v in value.items():
                if name != "id":
                    self.extension(loc, name, v, place)
        elif key in ("bizTransactionList", "sourceList", "destinationList"):
            item_name = key[:-4]
            vocab = (
                cbv.BIZ_TRANSACTION_TYPE if item_name == "bizTransaction" else cbv.SOURCE_DEST_TYPE
            )
            lst = sub(parent, key)
            for item in value:
                el = sub(lst, item_name)
                if item.get("type"):
                    el.set("type", vocab.uri(item["type"]))
                el.text = str(item.get(item_name, ""))
        elif key == "persistentDisposition":
            pd = sub(parent, key)
            for name in ("set", "unset"):
                for v in value.get(name, ()):
                    sub(pd, name).text = cbv.DISPOSITION.uri(v)
        elif key == "errorDeclaration":
            err = sub(parent, key)
            if "declarationTime" in value:
                sub(err, "declarationTime").text = value["declarationTime"]
            if "reason" in value:
                sub(err, "reason").text = cbv.ERROR_REASON.uri(value["reason"])
            if value.get("correctiveEventIDs"):
                ids = sub(err, "correctiveEventIDs")
                for eid in value["correctiveEventIDs"]:
                    sub(ids, "correctiveEventID").text = eid
            for name, v in value.items():
                if name not in ("declarationTime", "reason", "correctiveEventIDs"):
                    self.extension(err, name, v, place)
        elif key == "sensorElementList":
            lst = sub(parent, key)
            for element in value:
                el = sub(lst, "sensorElement")
                if "sensorMetadata" in element:
                    self.attributes(sub(el, "sensorMetadata"), element["sensorMetadata"], place)
                for report in element.get("sensorReport", ()):
                    self.attributes(sub(el, "sensorReport"), _report_uris(report), place)
                for name, v in element.items():
                    if name not in ("sensorMetadata", "sensorReport"):
                        self.extension(el, name, v, place)
        elif key == "ilmd":
            ilmd = sub(parent, key)
            for name, v in value.items():
                self.extension(ilmd, name, v, place)
        elif key == "bizStep":
            sub(parent, key).text = cbv.BIZ_STEP.uri(value)
        elif key == "disposition":
            sub(parent, key).text = cbv.DISPOSITION.uri(value)
        elif isinstance(value, list):
            for v in value:
                sub(parent, key).text = _lexical(v)
        else:
            sub(parent, key).text = _lexical(value)

    def attributes(self, elem: Any, values: dict[str, Any], place: str) -> None:
        for name, v in values.items():
            elem.set(self.qname(name, place), _lexical(v))

    def extension(self, parent: Any, key: str, value: Any, place: str) -> None:
        if isinstance(value, list):
            for v in value:
                self.extension(parent, key, v, place)
            return
        qname = self.qname(key, place)
        prefix = key.partition(":")[0]
        local_ns = None
        if (
            prefix not in self.namespaces
            and qname.startswith(f"{{{prefix}:}}")
            and _NCNAME.fullmatch(prefix)
            and not prefix.lower().startswith("xml")
        ):
            local_ns = {prefix: f"{prefix}:"}  # an undeclared prefix: keep it visible in XML
        el = etree.SubElement(parent, qname, nsmap=local_ns)
        if isinstance(value, dict):
            for name, v in value.items():
                if name == "#text":
                    el.text = _lexical(v)
                elif name.startswith("@"):
                    el.set(self.qname(name[1:], place), _lexical(v))
                else:
                    self.extension(el, name, v, place)
        else:
            el.text = _lexical(value)


def _report_uris(report: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    for key, vocab in (
        ("type", cbv.MEASUREMENT_TYPE),
        ("exception", cbv.SENSOR_ALERT_TYPE),
        ("component", cbv.COMPONENT),
    ):
        if isinstance(out.get(key), str):
            out[key] = vocab.uri(out[key])
    return out


def _lexical(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_document(doc: Document) -> bytes:
    """Serialise ``doc`` as an EPCIS 2.0 XML ``EPCISDocument`` (UTF-8 bytes)."""
    writer = _Writer(header_namespaces(doc.namespaces(), doc.events))
    nsmap: dict[str | None, str] = {"epcis": EPCIS2_NS}
    for prefix, uri in writer.namespaces.items():
        if prefix and prefix != "epcis" and _XML_PREFIX.fullmatch(prefix):
            nsmap[prefix] = uri
    created = doc.creation_date or datetime.now(UTC).isoformat(timespec="milliseconds")
    root = etree.Element(
        f"{{{EPCIS2_NS}}}EPCISDocument", nsmap=nsmap, schemaVersion="2.0", creationDate=created
    )
    event_list = etree.SubElement(etree.SubElement(root, "EPCISBody"), "EventList")
    for i, event in enumerate(doc.events):
        try:
            writer.event(event_list, event, doc.place(i))
        except (ValueError, TypeError, AttributeError) as exc:  # e.g. control characters
            raise ValidationError(f"cannot be written as XML: {exc}", place=doc.place(i)) from None
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
