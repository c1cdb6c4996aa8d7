"""API keys → :class:`~yaolian.store.access.Viewer`, and the audit trail of data changes.

A key arrives as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the store checks it
(:func:`yaolian.store.access.authenticate`, cached). Protected routes depend on
:func:`require_viewer` (no key → 401 problem+json); every request that changes data writes an
entry to the tamper-evident audit log with :func:`audit`, in the change's own transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from yaolian.errors import ForbiddenError
from yaolian.store.access import Viewer, authenticate
from yaolian.store.audit import append_audit

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def engine_of(request: Request) -> Engine:
    """The store engine opened once by :func:`yaolian.api.app.create_app`."""
    engine: Engine = request.app.state.engine
    return engine


def require_viewer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
) -> Viewer:
    """The caller behind the request's API key; AuthError (401) when missing or wrong."""
    key = bearer.credentials if bearer is not None else header_key
    viewer = authenticate(engine_of(request), key.strip() if key else None)
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]


def require_writer(viewer: ViewerDep) -> Viewer:
    """A viewer allowed to change data: enterprise, regulator or admin keys, not public ones."""
    if viewer.role == "public":
        raise ForbiddenError("a public key cannot change data", place="Authorization")
    return viewer


WriterDep = Annotated[Viewer, Depends(require_writer)]


def audit(conn: Connection, viewer: Viewer, action: str, target: str | None, detail: Any) -> None:
    """Append one entry to the audit chain for a data-changing use of ``viewer``'s key, on the
    change's own connection: the change and its entry commit together or not at all."""
    append_audit(conn, viewer.api_key_id, action, target, detail)
