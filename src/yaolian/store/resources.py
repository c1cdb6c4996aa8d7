"""EPCIS 2.0 top-level resources: the read points, business locations and codes named by the
events a viewer may see (``/readPoints``, ``/bizLocations``, ``/epcs``), in order, a page at a
time. Each is a walk of an index from the last value of the previous page, so a page costs the
same however large the store."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import Connection, exists, select

from yaolian.codes.identity import uri_for_key
from yaolian.errors import QueryError
from yaolian.store.access import Viewer
from yaolian.store.query import visible
from yaolian.store.schema import code, event, event_epc

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
    if resource == "epcs":
        named = (
            select(event_epc.c.event_id)
            .join(event, event.c.id == event_epc.c.event_id)
            .where(event_epc.c.code_id == code.c.id, visible(viewer))
        )
        value = code.c.key
        stmt = select(value).where(exists(named))
    else:
        value = _LOCATION_COLUMNS[resource]
        stmt = select(value).distinct().where(value.is_not(None), visible(viewer))
    if after is not None:
        stmt = stmt.where(value > after)
    rows = conn.execute(stmt.order_by(value).limit(per_page + 1)).scalars().all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    items = [uri_for_key(k) for k in rows] if resource == "epcs" else list(rows)
    return ResourcePage(items, _token(resource, rows[-1]) if more else None)
