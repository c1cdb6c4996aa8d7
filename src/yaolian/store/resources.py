"""EPCIS 2.0 top-level resources: the read points, business locations and codes named by the
events a viewer may see (``/readPoints``, ``/bizLocations``, ``/epcs``), in order, a page at a
time. For regulators a page walks an index from the last value of the previous page, so it costs
the same however large the store; for an enterprise it is read from the enterprise's own events,
so it costs what its own share of the log does."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import Connection, exists, func, select

from yaolian.codes.identity import uri_for_key
from yaolian.errors import QueryError
from yaolian.store.access import Viewer
from yaolian.store.schema import code, event, event_access, event_epc

Resource = Literal["readPoints", "bizLocations", "epcs"]
_LOCATION_COLUMNS = {"readPoints": event.c.read_point, "bizLocations": event.c.biz_location}


@dataclass(frozen=True, slots=True)
class ResourcePage:
    """One page of a resource list and the token for the next (``None`` on the last)."""

    items: list[str]
    next_page_token: str | None


def _token(resource: Resource, last: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([resource, last])).decode().rstrip("=")


def _after(resource: Resource, token: str | None) -> str | None:
    """The last value of the previous page, from its token (made for this resource)."""
    if token is None:
        return None
    try:
        kind, last = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise QueryError("malformed page token", place="nextPageToken") from None
    if kind != resource or not isinstance(last, str):
        raise QueryError(f"not a page token of /{resource}", place="nextPageToken")
    return last


WALK_SHARE = 0.01
"""An enterprise that may see this share of the events or more has its codes listed by walking
the code dictionary (each probe likely hits); one that sees less, from its own events."""


def _sees_much(conn: Connection, enterprise_id: int | None) -> bool:
    """Whether the enterprise may see at least :data:`WALK_SHARE` of the stored events."""
    newest = conn.execute(select(func.coalesce(func.max(event.c.id), 0))).scalar_one()
    threshold = max(int(newest * WALK_SHARE), 1)
    seen = conn.execute(
        select(func.count()).select_from(
            select(event_access.c.event_id)
            .where(event_access.c.enterprise_id == enterprise_id)
            .limit(threshold)
            .subquery()
        )
    ).scalar_one()
    return bool(seen >= threshold)


def list_resource(
    conn: Connection,
    resource: Resource,
    viewer: Viewer,
    *,
    per_page: int,
    token: str | None = None,
) -> ResourcePage:
    """Read points or business locations (as written in the events) or codes (as EPC URIs or
    ``urn:nmpa:`` URIs) of the events ``viewer`` may see, ordered, ``per_page`` at a time."""
    after = _after(resource, token)
    if not viewer.sees_all and (viewer.role != "enterprise" or viewer.enterprise_id is None):
        return ResourcePage([], None)  # a public key sees no events
    access = event_access.c
    if resource == "epcs":
        value = code.c.key
        if viewer.sees_all or _sees_much(conn, viewer.enterprise_id):
            # walk the dictionary in key order: most codes are named in events it may see
            named = select(event_epc.c.event_id).where(event_epc.c.code_id == code.c.id)
            if not viewer.sees_all:
                named = named.join(event_access, access.event_id == event_epc.c.event_id).where(
                    access.enterprise_id == viewer.enterprise_id
                )
            stmt = select(value).where(exists(named))
        else:  # from its own few events: a pharmacy's page costs what its own data does
            stmt = (
                select(value)
                .distinct()
                .select_from(event_access)
                .join(event_epc, event_epc.c.event_id == access.event_id)
                .join(code, code.c.id == event_epc.c.code_id)
                .where(access.enterprise_id == viewer.enterprise_id)
            )
    else:
        value = _LOCATION_COLUMNS[resource]
        stmt = select(value).distinct().where(value.is_not(None))
        if not viewer.sees_all:
            stmt = stmt.join(event_access, access.event_id == event.c.id).where(
                access.enterprise_id == viewer.enterprise_id
            )
    if after is not None:
        stmt = stmt.where(value > after)
    rows = conn.execute(stmt.order_by(value).limit(per_page + 1)).scalars().all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    items = [uri_for_key(k, "any") for k in rows] if resource == "epcs" else list(rows)
    return ResourcePage(items, _token(resource, rows[-1]) if more else None)
