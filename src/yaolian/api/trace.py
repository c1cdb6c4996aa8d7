"""``GET /trace/{code}?direction=backward|forward&at=…`` → graph JSON (nodes, edges, events).

``code`` is any code form, or a batch: a batch-class URI, or a product code with ``lot=``.
Regulators trace anything; an enterprise traces codes it is party to and batches of products it
holds or makes (others are 404, as if absent); event details are limited to events it may see.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from yaolian.api.auth import ViewerDep, engine_of
from yaolian.api.verify import time_param
from yaolian.errors import NotFoundError
from yaolian.store.tx import read_tx
from yaolian.trace.directory import holds_product, party_to_code
from yaolian.trace.lineage import resolve, trace_backward, trace_forward

router = APIRouter(tags=["trace"])


@router.get("/trace/{code:path}")
def get_trace(
    request: Request,
    code: str,
    viewer: ViewerDep,
    direction: Literal["backward", "forward"] = "backward",
    at: Annotated[str | None, Query(description="ISO 8601 time: trace as of then")] = None,
    lot: Annotated[str | None, Query(description="批号, with a product code as {code}")] = None,
) -> dict[str, Any]:
    """Trace a code, batch or lot backward (where from) or forward (where to)."""
    at_us = time_param("at", at)
    with read_tx(engine_of(request)) as conn:
        target = resolve(conn, code, lot)
        if not viewer.sees_all:
            ent = viewer.enterprise_id
            allowed = ent is not None and (
                party_to_code(conn, ent, target.code_id)
                if target.code_id is not None
                else holds_product(conn, ent, target.product or "")
            )
            if not allowed:
                raise NotFoundError(f"{code!r} is not visible to this key", place="code")
        if direction == "forward":
            graph = trace_forward(conn, target, at_us=at_us, viewer=viewer)
        else:
            graph = trace_backward(conn, target, at_us=at_us, viewer=viewer)
    return graph.as_dict()
