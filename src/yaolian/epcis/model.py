"""The in-memory event: an EPCIS 2.0 event as a JSON-LD compact dict, plus typed accessors.

Every reader (JSON-LD, XML 2.0, XML 1.2, NMPA data sets, the simulator) produces events in this
one shape and every consumer (hash, store, writers) reads it, so formats never leak past
``epcis``. The shape is the EPCIS 2.0 JSON schema's, normalised:

* ``type`` is one of :data:`EVENT_TYPES`; ``eventTime`` / ``recordTime`` are ISO 8601 strings
  with an offset, ``eventTimeZoneOffset`` is ``±HH:MM``;
* standard CBV values (``bizStep``, ``disposition``, source/destination/bizTransaction types,
  sensor types) are bare words (``"shipping"``); non-standard ones stay full URIs;
* ``readPoint`` / ``bizLocation`` are ``{"id": uri}``; lists keep the schema's names
  (``epcList``, ``childEPCs``, ``inputEPCList`` … ``quantityList`` items
  ``{"epcClass", "quantity", "uom"}``);
* user extensions keep their compact ``prefix:name`` keys; an event read from a document
  carries an ``@context`` declaring the prefixes it uses (``{"ex": "https://…/"}``), so it can
  be stored, hashed and written on its own; the document's ``@context`` stays in
  :class:`Document` (see :mod:`yaolian.epcis.context`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal

Event = dict[str, Any]

EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
EpcRole = Literal["epc", "parent", "child", "input", "output"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHINA_TIME = timezone(timedelta(hours=8), "CST")  # 北京时间: a local time without an offset
EPC_ROLES: tuple[EpcRole, ...] = ("epc", "parent", "child", "input", "output")

# (list key, role) for the EPC lists of each event shape; parentID is handled apart.
EPC_LISTS: tuple[tuple[str, EpcRole], ...] = (
    ("epcList", "epc"),
    ("childEPCs", "child"),
    ("inputEPCList", "input"),
    ("outputEPCList", "output"),
)
_QUANTITY_LISTS: tuple[tuple[str, EpcRole], ...] = (
    ("quantityList", "epc"),
    ("childQuantityList", "child"),
    ("inputQuantityList", "input"),
    ("outputQuantityList", "output"),
)


@dataclass
class Document:
    """A capture document: its events plus the header facts needed to write it back."""

    events: list[Event]
    context: list[Any] = field(default_factory=list)
    schema_version: str = "2.0"
    creation_date: str | None = None
    sender: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Where each event came from, parallel to ``events``: a JSON pointer
    # (``/epcisBody/eventList/3``) or an XML line (``line 120``); empty when built in memory.
    places: list[str] = field(default_factory=list)
    # True when every event carries in its own ``@context`` the prefixes it uses (the readers
    # attach them, epcis/context.py); events built in memory rely on the document's context.
    self_contained: bool = False

    def place(self, index: int) -> str:
        """The source place of event ``index`` (its JSON pointer or XML line)."""
        return self.places[index] if index < len(self.places) else f"/epcisBody/eventList/{index}"

    def namespaces(self) -> dict[str, str]:
        """Extension prefixes declared in ``@context`` (prefix → namespace URI)."""
        out: dict[str, str] = {}
        for item in self.context:
            if isinstance(item, dict):
                out.update({k: v for k, v in item.items() if isinstance(v, str)})
        return out


def iter_epcs(event: Event) -> Iterator[tuple[str, EpcRole]]:
    """Every instance-level identifier in the event with its role (epc, parent, child …)."""
    parent = event.get("parentID")
    if parent:
        yield parent, "parent"
    for key, role in EPC_LISTS:
        for epc in event.get(key) or ():
            yield epc, role


def iter_quantities(event: Event) -> Iterator[tuple[str, float | None, str | None, EpcRole]]:
    """Every class-level quantity as (epcClass, quantity or None, uom or None, role)."""
    for key, role in _QUANTITY_LISTS:
        for q in event.get(key) or ():
            qty = q.get("quantity")
            yield q["epcClass"], (float(qty) if qty is not None else None), q.get("uom"), role


def parties(event: Event) -> Iterator[tuple[Literal["source", "destination"], str, str]]:
    """Source and destination parties as (kind, CBV type, identifier)."""
    for s in event.get("sourceList") or ():
        yield "source", s.get("type", ""), s.get("source", "")
    for d in event.get("destinationList") or ():
        yield "destination", d.get("type", ""), d.get("destination", "")


def biz_transactions(event: Event) -> Iterator[tuple[str, str]]:
    """Business transactions as (type or '', identifier)."""
    for t in event.get("bizTransactionList") or ():
        yield t.get("type", ""), t.get("bizTransaction", "")


def location(event: Event, key: Literal["readPoint", "bizLocation"]) -> str | None:
    """The ``id`` of readPoint or bizLocation, if present."""
    loc = event.get(key)
    return loc.get("id") if isinstance(loc, dict) else None


def parse_time(value: str) -> datetime:
    """An ISO 8601 timestamp with offset (``Z`` allowed) as an aware datetime.

    Raises ``ValueError`` for a malformed time or one without an offset.
    """
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"time {value!r} has no time-zone offset")
    return dt


# 2026-01-09 10:00:00, 2026/1/9 10:00 (Excel's zh-CN default), 2026年1月9日, 20260109100000
_LOCAL = re.compile(
    r"(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))"
    r"(?:(?:[ T]+|(?=\d{6}$))(\d{1,2}):?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?"
)


def parse_local_time(text: str) -> datetime:
    """A business time as systems in China write it — ISO 8601 (an offset kept), or a local
    date and time in the usual spellings (dashes, slashes or 年月日, unpadded month, day and
    hour, ``YYYYMMDD[HHMMSS]``), taken as 北京时间. A date alone is its 00:00.

    Raises ``ValueError`` naming the accepted forms."""
    text = text.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = _local_fields(text, "time", "2025-03-01 08:30:00 or ISO 8601 with offset")
    return dt if dt.tzinfo else dt.replace(tzinfo=CHINA_TIME)


def parse_local_date(text: str) -> date:
    """A calendar date in the spellings :func:`parse_local_time` takes (without a time).

    Raises ``ValueError`` naming the accepted forms."""
    return _local_fields(text.strip(), "date", "YYYY-MM-DD or YYYYMMDD", with_time=False).date()


def _local_fields(text: str, what: str, forms: str, *, with_time: bool = True) -> datetime:
    """The naive datetime a local spelling (:data:`_LOCAL`) writes."""
    found = _LOCAL.fullmatch(text)
    if found is None or (not with_time and found.group(6) is not None):
        raise ValueError(f"{text!r} is not a {what} (use {forms})")
    y, mo, d, mo8, d8, h, mi, s, frac = found.groups()
    try:
        return datetime(
            int(y), int(mo or mo8), int(d or d8), int(h or 0), int(mi or 0), int(s or 0),
            int((frac or "0").ljust(6, "0")),
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a {what}: {exc}") from None


def to_epoch_us(value: str) -> int:
    """An ISO 8601 timestamp as integer microseconds since 1970-01-01T00:00Z (store format)."""
    dt = parse_time(value)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    """Store format back to an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def utc_text(us: int) -> str:
    """Store format as ISO 8601 UTC text to the millisecond: ``2026-12-07T03:48:50.529Z``."""
    return from_epoch_us(us).isoformat(timespec="milliseconds").replace("+00:00", "Z")
