"""EPCIS 2.0 event queries (SimpleEventQuery parameters) over the event log, with keyset paging.

Parameters arrive as a mapping of name → values (repeated parameters and ``|``-separated
values both mean "any of"). Codes may be given in any form the codes layer knows (EPC URI,
Digital Link, NMPA code …): they are looked up by canonical key, so ``MATCH_anyEPC`` is an
index lookup on ``event_epc`` (primary key code → event). CBV values may be bare words
(``shipping``) or URIs (``urn:epcglobal:cbv:bizstep:shipping``,
``https://ref.gs1.org/cbv/BizStep-shipping``).

Pages are ordered by (eventTime or recordTime, row id); ``nextPageToken`` is the base64 of the
last position plus a checksum tying it to the query, so it cannot be replayed on another query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)

from yaolian.codes.identity import canonical_key
from yaolian.epcis.cbv import BIZ_STEP, BIZ_TRANSACTION_TYPE, DISPOSITION, SOURCE_DEST_TYPE
from yaolian.epcis.model import EVENT_TYPES, Event, to_epoch_us
from yaolian.errors import QueryError, YaolianError
from yaolian.store.access import Viewer
from yaolian.store.schema import (
    ACTION_IDS,
    EVENT_TYPE_IDS,
    ROLE_IDS,
    code,
    event,
    event_access,
    event_biz_tx,
    event_epc,
    event_party,
    event_quantity,
)

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 10_000
MAX_COUNT = 2**31 - 1  # eventCountLimit / maxEventCount

# MATCH_* parameter → the roles of event_epc it searches (EPCIS 2.0 §8.2.7.1).
_EPC_MATCH = {
    "MATCH_epc": ("epc", "child"),
    "MATCH_parentID": ("parent",),
    "MATCH_inputEPC": ("input",),
    "MATCH_outputEPC": ("output",),
    "MATCH_anyEPC": ("epc", "parent", "child", "input", "output"),
}
_CLASS_MATCH = {
    "MATCH_epcClass": ("epc", "child"),
    "MATCH_inputEPCClass": ("input",),
    "MATCH_outputEPCClass": ("output",),
    "MATCH_anyEPCClass": ("epc", "child", "input", "output"),
}
_TIME_PARAMS = {
    "GE_eventTime": ("event_time_us", ">="),
    "LT_eventTime": ("event_time_us", "<"),
    "GE_recordTime": ("record_time_us", ">="),
    "LT_recordTime": ("record_time_us", "<"),
}
_PAGING = frozenset({"perPage", "nextPageToken"})
_ORDER_COLUMNS = {"eventTime": "event_time_us", "recordTime": "record_time_us"}


@dataclass
class EventPage:
    """One page of matching events and the token for the next page (``None`` on the last)."""

    events: list[Event]
    next_page_token: str | None


def _values(name: str, raw: Sequence[str] | str) -> list[str]:
    items = [raw] if isinstance(raw, str) else list(raw)
    out = [part.strip() for item in items for part in str(item).split("|")]
    out = [v for v in out if v]
    if not out:
        raise QueryError("needs a value", place=name)
    return out


def _single(name: str, raw: Sequence[str] | str) -> str:
    values = _values(name, raw)
    if len(values) != 1:
        raise QueryError("takes exactly one value", place=name)
    return values[0]


def _int(name: str, raw: Sequence[str] | str, low: int, high: int | None = None) -> int:
    text = _single(name, raw)
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{text!r} is not an integer", place=name) from None
    if value < low or (high is not None and value > high):
        bound = f"{low}…{high}" if high is not None else f"≥ {low}"
        raise QueryError(f"{value} is out of range ({bound})", place=name)
    return value


def _time_us(name: str, raw: Sequence[str] | str) -> int:
    text = _single(name, raw)
    try:
        return to_epoch_us(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise QueryError(f"not an ISO 8601 time with offset: {exc}", place=name) from None


EPC_PATTERN = "urn:epc:idpat:"


def _key(name: str, value: str) -> str:
    try:
        return canonical_key(value)
    except YaolianError as exc:
        raise QueryError(f"{value!r}: {exc.reason}", place=name) from None


def _code_terms(
    name: str, values: list[str], column: Any, classes: bool
) -> list[ColumnElement[bool]]:
    """Terms on a code-id ``column`` for exact codes (any form) and EPC patterns.

    A pattern ``urn:epc:idpat:sgtin:CP.ITEM.*`` matches every instance of that product (keys
    under ``01/{gtin}/``) and, for classes, the product class itself and its lots.
    """
    exact = [_key(name, v) for v in values if not v.startswith(EPC_PATTERN)]
    terms: list[ColumnElement[bool]] = []
    if exact:
        terms.append(column.in_(select(code.c.id).where(code.c.key.in_(exact))))
    for value in values:
        if not value.startswith(EPC_PATTERN):
            continue
        if not value.endswith(".*"):
            raise QueryError(f"{value!r}: only patterns ending in .* are supported", place=name)
        product = _key(name, value)
        low, high = product + "/", product + "0"  # every key under "{product}/"
        in_range = and_(code.c.key >= low, code.c.key < high)
        matching = code.c.key == product if classes else false()
        terms.append(column.in_(select(code.c.id).where(or_(in_range, matching))))
    return terms


class _Filters:
    """Builds the WHERE terms from the parameters; remembers whether a code filter is present."""

    def __init__(self) -> None:
        self.terms: list[ColumnElement[bool]] = []
        self.selective = False  # a code/eventID filter: drive the plan from it, not the order

    def add(self, name: str, raw: Sequence[str] | str) -> None:
        if name == "eventType":
            values = _values(name, raw)
            unknown = [v for v in values if v not in EVENT_TYPES]
            if unknown:
                raise QueryError(f"unknown event type {unknown[0]!r}", place=name)
            self.terms.append(event.c.type.in_([EVENT_TYPE_IDS[v] for v in values]))
        elif name in _TIME_PARAMS:
            column_name, op = _TIME_PARAMS[name]
            bound = _time_us(name, raw)
            col = event.c[column_name]
            self.terms.append(col >= bound if op == ">=" else col < bound)
        elif name == "EQ_action":
            values = _values(name, raw)
            bad = [v for v in values if v not in ACTION_IDS]
            if bad:
                raise QueryError(
                    f"action must be ADD, OBSERVE or DELETE, not {bad[0]!r}", place=name
                )
            self.terms.append(event.c.action.in_([ACTION_IDS[v] for v in values]))
        elif name in ("EQ_bizStep", "EQ_disposition"):
            vocab = BIZ_STEP if name == "EQ_bizStep" else DISPOSITION
            words = [vocab.word(v) for v in _values(name, raw)]
            cbv_col = event.c.biz_step if vocab is BIZ_STEP else event.c.disposition
            self.terms.append(cbv_col.in_(words))
        elif name in ("EQ_readPoint", "EQ_bizLocation", "WD_readPoint", "WD_bizLocation"):
            # WD_ ("with descendants", by master data): the master data keeps no hierarchy of
            # locations, so a location's descendants are none and WD_ matches as EQ_ does
            loc_col = event.c.read_point if name.endswith("readPoint") else event.c.biz_location
            self.terms.append(loc_col.in_(_values(name, raw)))
        elif name == "EQ_eventID":
            self.selective = True
            self.terms.append(event.c.event_id.in_(_values(name, raw)))
        elif name in _EPC_MATCH:
            self._codes(name, raw, event_epc.c.code_id, event_epc, _EPC_MATCH[name])
        elif name in _CLASS_MATCH:
            self._codes(name, raw, event_quantity.c.class_id, event_quantity, _CLASS_MATCH[name])
        elif name == "EXISTS_errorDeclaration":
            text = _values(name, raw)[0] if raw not in ("", [], [""]) else "true"
            if text not in ("true", "false"):
                raise QueryError(f"takes true or false, not {text!r}", place=name)
            self.terms.append(event.c.error_declared.is_(text == "true"))
        elif name.startswith("EQ_bizTransaction_"):
            kind = BIZ_TRANSACTION_TYPE.word(name[len("EQ_bizTransaction_") :])
            sub = select(event_biz_tx.c.event_id).where(
                event_biz_tx.c.type == kind, event_biz_tx.c.value.in_(_values(name, raw))
            )
            self.terms.append(event.c.id.in_(sub))
        elif name.startswith(("EQ_source_", "EQ_destination_")):
            kind_name, _, ptype = name[3:].partition("_")
            sub = select(event_party.c.event_id).where(
                event_party.c.kind == (1 if kind_name == "source" else 2),
                event_party.c.type == SOURCE_DEST_TYPE.word(ptype),
                event_party.c.value.in_(_values(name, raw)),
            )
            self.terms.append(event.c.id.in_(sub))
        else:
            raise QueryError("unknown or unsupported query parameter", place=name)

    def _codes(
        self,
        name: str,
        raw: Sequence[str] | str,
        column: Any,
        table: Any,
        roles: tuple[str, ...],
    ) -> None:
        self.selective = True
        terms = _code_terms(name, _values(name, raw), column, classes=table is event_quantity)
        role_ids = [ROLE_IDS[r] for r in roles]
        role_term = table.c.role.in_(role_ids) if len(roles) < len(ROLE_IDS) else true()
        self.terms.append(event.c.id.in_(select(table.c.event_id).where(or_(*terms), role_term)))


def visible(viewer: Viewer) -> ColumnElement[bool]:
    """The events ``viewer`` may see: all (regulators, admins), those in ``event_access`` for
    its enterprise, or none (public keys)."""
    if viewer.sees_all:
        return true()
    if viewer.role != "enterprise" or viewer.enterprise_id is None:
        return false()
    return exists().where(
        event_access.c.enterprise_id == viewer.enterprise_id,
        event_access.c.event_id == event.c.id,
    )


def _fingerprint(params: Mapping[str, Sequence[str] | str]) -> str:
    items = sorted(
        (k, [v] if isinstance(v, str) else list(v)) for k, v in params.items() if k not in _PAGING
    )
    return hashlib.sha256(orjson.dumps(items)).hexdigest()[:16]


def _encode_token(position: list[Any], fingerprint: str) -> str:
    body = orjson.dumps([position, fingerprint])
    check = hashlib.sha256(body).hexdigest()[:12]
    return (
        base64.urlsafe_b64encode(orjson.dumps([position, fingerprint, check])).decode().rstrip("=")
    )


def _decode_token(token: str, fingerprint: str) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        position, fp, check = orjson.loads(base64.urlsafe_b64decode(padded))
        body = orjson.dumps([position, fp])
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise QueryError("malformed page token", place="nextPageToken") from None
    if hashlib.sha256(body).hexdigest()[:12] != check:
        raise QueryError("page token was altered", place="nextPageToken")
    if fp != fingerprint:
        raise QueryError("page token belongs to a different query", place="nextPageToken")
    if not (
        isinstance(position, list)
        and len(position) == 3
        and all(isinstance(v, int) and abs(v) < 2**62 for v in position[:2])
        and (position[2] is None or (isinstance(position[2], int) and 0 < position[2] <= MAX_COUNT))
    ):
        raise QueryError("malformed page token", place="nextPageToken")
    return position


@dataclass
class _Plan:
    """A parsed query: its filters, order, limits and page size."""

    filters: _Filters
    order_by: str = "eventTime"
    direction: str = "ASC"
    count_limit: int | None = None
    max_count: int | None = None
    per_page: int = DEFAULT_PER_PAGE


def _parse(params: Mapping[str, Sequence[str] | str]) -> _Plan:
    """The plan of query ``params``; :class:`QueryError` naming any unknown or malformed one."""
    plan = _Plan(_Filters())
    for name, raw in params.items():
        if name == "orderBy":
            plan.order_by = _single(name, raw)
            if plan.order_by not in _ORDER_COLUMNS:
                raise QueryError("orderBy must be eventTime or recordTime", place=name)
            if "orderDirection" not in params:
                plan.direction = "DESC"
        elif name == "orderDirection":
            plan.direction = _single(name, raw).upper()
            if plan.direction not in ("ASC", "DESC"):
                raise QueryError("orderDirection must be ASC or DESC", place=name)
        elif name == "eventCountLimit":
            plan.count_limit = _int(name, raw, 1, MAX_COUNT)
        elif name == "maxEventCount":
            plan.max_count = _int(name, raw, 1, MAX_COUNT)
        elif name == "perPage":
            plan.per_page = _int(name, raw, 1, MAX_PER_PAGE)
        elif name == "nextPageToken":
            continue
        else:
            plan.filters.add(name, raw)
    if plan.count_limit is not None and plan.max_count is not None:
        raise QueryError(
            "eventCountLimit and maxEventCount exclude each other", place="maxEventCount"
        )
    return plan


def check_query(params: Mapping[str, Sequence[str] | str]) -> None:
    """Raise :class:`QueryError` naming the first unknown or malformed parameter of ``params``
    (nothing is run: a named query is checked when it is saved)."""
    _parse(params)


def query_events(
    conn: Connection,
    params: Mapping[str, Sequence[str] | str],
    *,
    viewer: Viewer,
) -> EventPage:
    """Events matching the EPCIS query ``params`` that ``viewer`` may see, one page at a time.

    Besides the filters: ``orderBy`` (eventTime | recordTime, default eventTime),
    ``orderDirection`` (ASC | DESC; default ASC, DESC when ``orderBy`` is given, as in EPCIS),
    ``eventCountLimit`` (at most this many events in all pages), ``maxEventCount`` (more
    matches → QueryTooLargeException), ``perPage`` and ``nextPageToken``.
    Raises :class:`QueryError` naming any unknown or malformed parameter.
    """
    plan = _parse(params)
    filters, order_by, direction = plan.filters, plan.order_by, plan.direction
    max_count, per_page = plan.max_count, plan.per_page
    fingerprint = _fingerprint(params)
    remaining = plan.count_limit
    after: tuple[int, int] | None = None
    if "nextPageToken" in params:
        last_value, last_id, remaining = _decode_token(
            _single("nextPageToken", params["nextPageToken"]), fingerprint
        )
        after = (last_value, last_id)
    where = and_(visible(viewer), *filters.terms)

    if max_count is not None and after is None:
        over = conn.execute(
            select(func.count()).select_from(
                select(literal(1)).select_from(event).where(where).limit(max_count + 1).subquery()
            )
        ).scalar_one()
        if over > max_count:
            raise YaolianError(
                f"more than {max_count} events match",
                place="maxEventCount",
                status=413,
                exception_type="QueryTooLargeException",
            )

    column = event.c[_ORDER_COLUMNS[order_by]]
    # With a code filter the matching set is small: sort it rather than walk the time index.
    sort_key = column + 0 if filters.selective else column
    position = tuple_(sort_key, event.c.id)
    if after is not None:
        where = and_(
            where, position > tuple_(*after) if direction == "ASC" else position < tuple_(*after)
        )
    limit = per_page if remaining is None else min(per_page, remaining)
    ordering = (
        (sort_key.asc(), event.c.id.asc())
        if direction == "ASC"
        else (sort_key.desc(), event.c.id.desc())
    )
    rows = conn.execute(
        select(event.c.id, column, event.c.payload)
        .where(where)
        .order_by(*ordering)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if remaining is not None:
        remaining -= len(rows)
        more = more and remaining > 0
    token = None
    if more and rows:
        last = rows[-1]
        token = _encode_token([int(last[1]), int(last[0]), remaining], fingerprint)
    return EventPage(events=[orjson.loads(r[2]) for r in rows], next_page_token=token)


def events_after(
    conn: Connection,
    params: Mapping[str, Sequence[str] | str],
    *,
    viewer: Viewer,
    after_row: int,
    upto_row: int,
    limit: int,
    min_record_us: int | None = None,
) -> list[tuple[int, Event]]:
    """Events stored after row ``after_row`` and up to row ``upto_row`` that match the query
    filters of ``params`` and that ``viewer`` may see, in the order they were stored (row id),
    at most ``limit``; with ``min_record_us`` only those recorded then or later. What a
    subscription delivers next: the order, count and page parameters of ``params`` do not
    apply to a stream."""
    terms = [
        event.c.id > after_row,
        event.c.id <= upto_row,
        visible(viewer),
        *_parse(params).filters.terms,
    ]
    if min_record_us is not None:
        terms.append(event.c.record_time_us >= min_record_us)
    rows = conn.execute(
        select(event.c.id, event.c.payload).where(*terms).order_by(event.c.id).limit(limit)
    ).all()
    return [(int(r[0]), orjson.loads(r[1])) for r in rows]
