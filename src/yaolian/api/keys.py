"""API keys over HTTP (密钥管理): an admin key manages every key; an enterprise key the keys of
its own enterprise — one per system that reports for it (ERP, WMS, a pharmacy's till) — and can
revoke a leaked one itself. Regulator keys read the list. Every key made or revoked is in the
audit log with the key that did it.

* ``GET /keys`` — keys without secrets, newest first.
* ``POST /keys`` — a new key, shown in the answer once (201).
* ``DELETE /keys/{prefix}`` — revoke (204); requests with it are refused from then on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from yaolian.api.auth import ViewerDep, WriterDep, engine_of
from yaolian.errors import ForbiddenError
from yaolian.store.access import Viewer, create_key, list_keys, revoke_key
from yaolian.store.masterdata import enterprise_uscc

router = APIRouter(tags=["keys"])

_Prefix = Annotated[
    str, Path(pattern=r"^[0-9a-f]{10}$", description="The key's prefix (after yl_)")
]


class KeyIn(BaseModel):
    """A key to make: its role, enterprise (统一社会信用代码) and a label saying what uses it."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["enterprise", "regulator", "admin"] = "enterprise"
    enterprise: str | None = Field(default=None, min_length=18, max_length=18)
    label: str | None = Field(default=None, max_length=200)


def _managed_enterprise(viewer: Viewer) -> int | None:
    """Whose keys ``viewer`` manages: None for an admin (every key), else its enterprise."""
    if viewer.role == "admin":
        return None
    if viewer.role == "enterprise" and viewer.enterprise_id is not None:
        return viewer.enterprise_id
    raise ForbiddenError(
        "keys are made and revoked by an admin key, or by an enterprise's key for its own",
        place="Authorization",
    )


@router.get("/keys")
def get_keys(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """Keys, newest first, never their secrets: every key for an admin or regulator key,
    the enterprise's own for an enterprise key."""
    own = None if viewer.sees_all else _managed_enterprise(viewer)
    return {"keys": [k.as_dict() for k in list_keys(engine_of(request), own)]}


@router.post("/keys", status_code=201)
def post_key(request: Request, viewer: WriterDep, body: KeyIn) -> dict[str, Any]:
    """Make a key; ``key`` in the answer is the only time its secret is shown. An enterprise
    key makes enterprise keys of its own enterprise (``enterprise`` may be left out)."""
    own = _managed_enterprise(viewer)
    engine = engine_of(request)
    uscc = body.enterprise
    if own is not None:
        mine = enterprise_uscc(engine, own)
        if body.role != "enterprise":
            raise ForbiddenError("an enterprise key makes enterprise keys", place="/role")
        if uscc is not None and uscc.strip().upper() != mine:
            raise ForbiddenError(
                "an enterprise key makes keys of its own enterprise", place="/enterprise"
            )
        uscc = mine
    key = create_key(engine, uscc, body.role, body.label, by=viewer.api_key_id)
    prefix = key.split("_", 2)[1]
    return {"key": key, "prefix": prefix, "role": body.role, "enterprise": uscc}


@router.delete("/keys/{prefix}", status_code=204)
def delete_key(request: Request, viewer: WriterDep, prefix: _Prefix) -> Response:
    """Revoke a key (an enterprise key: one of its own enterprise's, itself included); 404
    for a prefix it may not revoke."""
    own = _managed_enterprise(viewer)
    revoke_key(engine_of(request), prefix, by=viewer.api_key_id, enterprise_id=own)
    return Response(status_code=204)
