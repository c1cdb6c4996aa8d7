"""Recalls: ``POST /recalls``, ``GET /recalls``, ``GET /recalls/{id}`` (scope and progress),
``POST /recalls/{id}/close``; ``GET /recalls/{id}?format=xlsx|csv`` is the notice list
(召回通知清单). Enterprise keys create and see their own recalls; regulators all."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.params import XLSX, RowId
from yaolian.store.tx import write_tx
from yaolian.trace.recall import (
    close_recall,
    create_recall,
    list_recalls,
    notice_csv,
    notice_xlsx,
    recall_scope,
)

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


@router.get(
    "/recalls/{recall_id}",
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
def get_recall(
    request: Request,
    recall_id: RowId,
    viewer: ViewerDep,
    fmt: Annotated[
        Literal["json", "csv", "xlsx"],
        Query(
            alias="format",
            description="json (default); csv or xlsx: the notice list (召回通知清单)",
        ),
    ] = "json",
) -> Any:
    """Scope (holders with quantities, in transit, dispensed) and progress of a recall; an
    enterprise with a part in it, not its issuer, sees its own holdings, shipments and sales.
    ``?format=xlsx`` (or ``csv``): the notice list — one row per enterprise and site to
    notify, with its 统一社会信用代码, quantity and what it is to do."""
    scope = recall_scope(engine_of(request), recall_id, viewer)
    if fmt == "json":
        return scope
    body, media = (
        (notice_csv(scope), "text/csv; charset=utf-8")
        if fmt == "csv"
        else (notice_xlsx(scope), XLSX)
    )
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="recall-{recall_id}.{fmt}"'},
    )


@router.post("/recalls/{recall_id}/close")
def post_close(request: Request, recall_id: RowId, viewer: WriterDep) -> dict[str, Any]:
    """Close a recall (completed): its issuer or a regulator (403 for an enterprise that only
    has a part in it)."""
    engine = engine_of(request)
    with write_tx(engine) as conn:
        close_recall(conn, recall_id, viewer=viewer)  # 404 unseen, 403 unless its issuer's
        audit(conn, viewer, "recall.close", str(recall_id), None)
    return recall_scope(engine, recall_id, viewer)
