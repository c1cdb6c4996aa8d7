"""Named queries (EPCIS 2.0 ``/queries``): a SimpleEventQuery saved under a name, run on demand.

A trading partner saves "what I want to see" once (``{"name": "inbound", "query":
{"EQ_bizStep": "receiving", "EQ_bizLocation": "urn:epc:id:sgln:…"}}``) and reads
``/queries/inbound/events`` whenever it likes. Names live in their owner's space: an
enterprise's keys share one, the platform's own keys (regulators, admins) another, so two
enterprises may both have an ``inbound``. A saved query runs with the reader's rights, like any
query: it never shows events the reader could not see through ``/events``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, select

from yaolian.epcis.model import utc_text
from yaolian.errors import ForbiddenError, NotFoundError, QueryError, ValidationError
from yaolian.store.access import Viewer
from yaolian.store.query import check_query
from yaolian.store.schema import named_query, subscription
from yaolian.store.tx import read_tx, write_tx

NAME_MAX = 100
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")  # URL-safe as it stands: /queries/{name}
RESERVED = frozenset({"SimpleEventQuery", "SimpleMasterDataQuery"})  # EPCIS predefined queries
PAGING = frozenset({"perPage", "nextPageToken"})  # chosen per request, not saved
MAX_PARAMS = 100
PLATFORM_OWNER = 0


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """A saved query: its name, parameters (name → values) and when it was saved."""

    name: str
    params: dict[str, list[str]]
    created_us: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the EPCIS 2.0 named-query shape plus its links)."""
        return {
            "name": self.name,
            "query": self.params,
            "createdAt": utc_text(self.created_us),
            "events": f"/queries/{self.name}/events",
        }


def owner_of(viewer: Viewer) -> int:
    """The name space of ``viewer``'s queries; a public key has none (403)."""
    if viewer.role == "enterprise" and viewer.enterprise_id is not None:
        return viewer.enterprise_id
    if viewer.sees_all:
        return PLATFORM_OWNER
    raise ForbiddenError("this key cannot keep named queries", place="Authorization")


def check_name(name: str) -> str:
    """``name`` if it can name a query: 1–100 URL-safe characters, not a predefined query."""
    if not 0 < len(name) <= NAME_MAX or NAME.fullmatch(name) is None:
        raise ValidationError(
            f"a query name is 1–{NAME_MAX} letters, digits, '.', '_', '~' or '-', starting with "
            f"a letter or digit; not {name[:120]!r}",
            place="/name",
        )
    if name in RESERVED:
        raise ValidationError(f"{name} is a predefined EPCIS query", place="/name")
    return name


def query_params(query: Mapping[str, Any]) -> dict[str, list[str]]:
    """A query object as parameter → values: a value may be a string, number or boolean, or a
    list of them (any of). Checked as ``/events`` checks its query string; paging parameters
    are refused (they belong to each read)."""
    if len(query) > MAX_PARAMS:
        raise ValidationError(f"more than {MAX_PARAMS} parameters", place="/query")
    params: dict[str, list[str]] = {}
    for name, value in query.items():
        place = f"/query/{name.replace('~', '~0').replace('/', '~1')}"
        if name in PAGING:
            raise ValidationError(f"{name} is chosen per read, not saved", place=place)
        items = value if isinstance(value, list) else [value]
        texts = [_text(item, place) for item in items]
        if not texts:
            raise ValidationError("needs a value", place=place)
        params[name] = texts
    try:
        check_query(params)
    except QueryError as exc:
        raise ValidationError(
            exc.reason, place=f"/query/{exc.place}" if exc.place else "/query"
        ) from None
    return params


def _text(item: Any, place: str) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str | int | float):
        return str(item)
    raise ValidationError("a value is a string, number or boolean, or a list of them", place=place)


def save_query(
    bind: Engine | Connection, viewer: Viewer, name: str, query: Mapping[str, Any]
) -> NamedQuery:
    """Save a new query under ``name`` in ``viewer``'s name space (409 if the name is taken)."""
    owner = owner_of(viewer)
    saved = NamedQuery(check_name(name), query_params(query), time.time_ns() // 1000)
    with write_tx(bind) as conn:  # writers take turns: nothing can save the name meanwhile
        if conn.execute(select(named_query.c.id).where(query_named(viewer, saved.name))).first():
            raise ValidationError(
                f"a query named {saved.name!r} exists; delete it first or choose another name",
                place="/name",
                status=409,
            )
        conn.execute(
            insert(named_query).values(
                owner=owner,
                name=saved.name,
                params=saved.params,
                created_us=saved.created_us,
                api_key_id=viewer.api_key_id,
            )
        )
    return saved


def query_named(viewer: Viewer, name: str) -> Any:
    """SQL condition: the query ``name`` of ``viewer``'s name space."""
    return and_(named_query.c.owner == owner_of(viewer), named_query.c.name == name)


def _no_such_query(name: str) -> NotFoundError:
    return NotFoundError(f"no query named {name[:120]!r}", place="queryName")


def query_id(conn: Connection, viewer: Viewer, name: str) -> int:
    """The row id of the query ``name`` of ``viewer``'s name space (404 if there is none)."""
    found = conn.execute(select(named_query.c.id).where(query_named(viewer, name))).scalar()
    if found is None:
        raise _no_such_query(name)
    return int(found)


def get_query(bind: Engine | Connection, viewer: Viewer, name: str) -> NamedQuery:
    """The query ``name`` of ``viewer``'s name space (404 if there is none)."""
    with read_tx(bind) as conn:
        row = conn.execute(
            select(named_query.c.name, named_query.c.params, named_query.c.created_us).where(
                query_named(viewer, name)
            )
        ).first()
    if row is None:
        raise _no_such_query(name)
    return NamedQuery(row.name, dict(row.params), int(row.created_us))


def list_queries(bind: Engine | Connection, viewer: Viewer) -> list[NamedQuery]:
    """Every query of ``viewer``'s name space, by name."""
    with read_tx(bind) as conn:
        rows = conn.execute(
            select(named_query.c.name, named_query.c.params, named_query.c.created_us)
            .where(named_query.c.owner == owner_of(viewer))
            .order_by(named_query.c.name)
        ).all()
    return [NamedQuery(r.name, dict(r.params), int(r.created_us)) for r in rows]


def delete_query(bind: Engine | Connection, viewer: Viewer, name: str) -> None:
    """Delete the query ``name`` of ``viewer``'s name space and its subscriptions (404 if there
    is none)."""
    with write_tx(bind) as conn:
        found = query_id(conn, viewer, name)
        conn.execute(delete(subscription).where(subscription.c.query_id == found))
        conn.execute(delete(named_query).where(named_query.c.id == found))
