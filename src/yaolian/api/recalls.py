"""Recalls: ``POST /recalls``, ``GET /recalls``, ``GET /recalls/{id}`` (scope and progress),
``POST /recalls/{id}/close``. Enterprise keys create and see their own recalls; regulators all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.params import RowId
from yaolian.store.tx import write_tx
from yaolian.trace.recall import close_recall, create_recall, list_recalls, recall_scope

router = APIRouter(tags=["recall"])


class RecallIn(BaseModel):
    """A new recall: class I/II/III, reason, batches (PRODUCT/LOT or batch URIs) and/or codes."""

    klass: int = Field(alias="class", ge=1, le=3)
    reason: str = Field(min_length=1, max_length=2000)
    batches: list[str] = Field(default_factory=list, max_length=1000)
    codes: list[str] = Field(default_factory=list, max_length=100_000)


@router.post("/recalls", status_code=201)
def post_recall(request: Request, body: RecallIn, viewer: WriterDep) -> JSONResponse:
    """Create a recall; 201 with its scope and ``Location``."""
    engine = engine_of(request)
    with write_tx(engine) as conn:
        recall_id = create_recall(
            conn,
            klass=body.klass,
            reason=body.reason,
            batches=body.batches,
            codes=body.codes,
            enterprise_id=viewer.reporter,
        )
        audit(conn, viewer, "recall.create", str(recall_id), body.model_dump(by_alias=True))
    return JSONResponse(
        recall_scope(engine, recall_id, viewer),
        status_code=201,
        headers={"Location": f"/recalls/{recall_id}"},
    )


@router.get("/recalls")
def get_recalls(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """Recalls, newest first: a regulator's key sees every one; an enterprise's key those it
    issued and those it has a part in (it holds, shipped, received or sold codes in scope),
    with ``may_close`` false for the latter."""
    return {"recalls": list_recalls(engine_of(request), viewer)}


@router.get("/recalls/{recall_id}")
def get_recall(request: Request, recall_id: RowId, viewer: ViewerDep) -> dict[str, Any]:
    """Scope (holders with quantities, in transit, dispensed) and progress of a recall; an
    enterprise with a part in it, not its issuer, sees its own holdings, shipments and sales."""
    return recall_scope(engine_of(request), recall_id, viewer)


@router.post("/recalls/{recall_id}/close")
def post_close(request: Request, recall_id: RowId, viewer: WriterDep) -> dict[str, Any]:
    """Close a recall (completed): its issuer or a regulator (403 for an enterprise that only
    has a part in it)."""
    engine = engine_of(request)
    with write_tx(engine) as conn:
        close_recall(conn, recall_id, viewer=viewer)  # 404 unseen, 403 unless its issuer's
        audit(conn, viewer, "recall.close", str(recall_id), None)
    return recall_scope(engine, recall_id, viewer)
