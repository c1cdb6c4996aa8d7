"""The audit log over HTTP (审计日志, 责任可究): who changed what, and when.

* ``GET /audit`` — entries newest first, by action (or family: ``supply`` is every
  ``supply.*``), key prefix, enterprise and time. A regulator or admin key reads every entry;
  an enterprise key reads the entries made with its own enterprise's keys.
* ``GET /audit/verify`` — the whole hash chain recomputed (a regulator or admin key): how many
  entries are intact and the entry where each break is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from yaolian.api.auth import ViewerDep, engine_of
from yaolian.api.params import time_param
from yaolian.errors import ForbiddenError
from yaolian.store.access import Viewer, require_authority
from yaolian.store.audit import AuditFilter, audit_entries, chain_status
from yaolian.store.masterdata import require_enterprise
from yaolian.store.tx import read_tx

router = APIRouter(tags=["audit"])


def _readable_enterprise(viewer: Viewer, asked: int | None) -> int | None:
    """The enterprise whose keys' entries ``viewer`` reads (None: every entry)."""
    if viewer.sees_all:
        return asked
    if viewer.enterprise_id is None:
        raise ForbiddenError("this key reads no audit entries", place="Authorization")
    if asked is not None and asked != viewer.enterprise_id:
        raise ForbiddenError(
            "an enterprise key reads the audit entries of its own enterprise's keys",
            place="enterprise",
        )
    return viewer.enterprise_id


@router.get("/audit")
def get_audit(
    request: Request,
    viewer: ViewerDep,
    action: Annotated[
        str | None,
        Query(
            max_length=200,
            description="An action (recall.create) or a family of them (recall, supply)",
        ),
    ] = None,
    key: Annotated[
        str | None, Query(max_length=12, description="Entries made with this key (its prefix)")
    ] = None,
    enterprise: Annotated[
        str | None,
        Query(max_length=18, description="Entries made with this enterprise's keys (USCC)"),
    ] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time with offset")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    """Audit entries, newest first, with the key (prefix, role, label, enterprise) that made
    each; ``actor`` null is a local operator (a change made on the command line)."""
    since_us, until_us = time_param("since", since), time_param("until", until)
    with read_tx(engine_of(request)) as conn:
        asked = require_enterprise(conn, enterprise, "enterprise") if enterprise else None
        flt = AuditFilter(
            action=action,
            key_prefix=key,
            enterprise_id=_readable_enterprise(viewer, asked),
            since_us=since_us,
            until_us=until_us,
            limit=limit,
            offset=offset,
        )
        total, entries = audit_entries(conn, flt)
    return {"total": total, "entries": [e.as_dict() for e in entries]}


@router.get("/audit/verify")
def get_audit_verify(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """Recompute the chain: ``intact`` when every entry's hash matches its content and links to
    the entry before; each break names the entry (``audit_log[id]``) and what is wrong."""
    require_authority(viewer, "audit chain checks")
    with read_tx(engine_of(request)) as conn:
        return chain_status(conn)
