"""``GET /trace/{code}?direction=backward|forward&at=…`` → graph JSON (nodes, edges, events);
``GET /coverage`` → trace coverage (追溯覆盖率) per product; ``GET /quality`` → data quality
(追溯数据质量) per enterprise.

``code`` is any code form, or a batch: a batch-class URI, or a product code with ``lot=``.
Regulators trace anything; an enterprise traces codes it is party to and batches of products it
holds or makes (others are 404, as if absent); event details are limited to events it may see.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from yaolian.api.auth import ViewerDep, engine_of
from yaolian.api.params import time_param
from yaolian.errors import NotFoundError
from yaolian.store.quality import DEFAULT_WITHIN_HOURS, data_quality
from yaolian.store.tx import read_tx
from yaolian.trace.coverage import DEFAULT_OVERDUE_DAYS, CoverageFilter, Grouping, coverage
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
                raise NotFoundError(
                    f"batch {target.text!r} is not visible to this key: a batch is traced by "
                    "its product's marketing-authorisation holder (上市许可持有人) or "
                    "manufacturer; trace a code your enterprise handled instead"
                    if target.code_id is None
                    else f"{code!r} is not visible to this key: an enterprise traces the codes "
                    "it shipped, received, holds or sold",
                    place="code",
                )
        if direction == "forward":
            graph = trace_forward(conn, target, at_us=at_us, viewer=viewer)
        else:
            graph = trace_backward(conn, target, at_us=at_us, viewer=viewer)
    return graph.as_dict()


@router.get("/coverage")
def get_coverage(
    request: Request,
    viewer: ViewerDep,
    product: Annotated[
        list[str] | None, Query(description="Only these product codes (repeatable)")
    ] = None,
    list_code: Annotated[
        str | None, Query(alias="list", description="Only the products of this monitored list")
    ] = None,
    region: Annotated[str | None, Query(description="Region code prefix: 2, 4 or 6 digits")] = None,
    overdue_days: Annotated[
        int, Query(ge=1, le=3650, description="A shipping unreceived this long is a gap")
    ] = DEFAULT_OVERDUE_DAYS,
    by: Annotated[
        Grouping, Query(description="One row per product, or per province or city")
    ] = "product",
) -> dict[str, Any]:
    """Trace coverage (追溯覆盖率) per product: packs, complete traces and each kind of gap
    (no origin, receipt without shipping, overdue in transit, custody break or clone alert).
    Regulators see every product, an enterprise those it holds or makes."""
    flt = CoverageFilter(tuple(product or ()), list_code, region, overdue_days, by)
    with read_tx(engine_of(request)) as conn:
        rows = coverage(conn, viewer, flt)
    return {
        "by": by,
        "rows": [r.as_dict() for r in rows[:-1]],
        "total": rows[-1].as_dict(),
        "overdue_days": overdue_days,
    }


@router.get("/quality")
def get_quality(
    request: Request,
    viewer: ViewerDep,
    since: Annotated[str | None, Query(description="Events that happened from then (ISO)")] = None,
    until: Annotated[str | None, Query(description="… and before then (ISO)")] = None,
    within_hours: Annotated[
        int, Query(ge=1, le=8760, description="Recorded within this many hours: timely")
    ] = DEFAULT_WITHIN_HOURS,
) -> dict[str, Any]:
    """Data quality (追溯数据质量) per enterprise: events at its sites, how many were recorded in
    time, located, with batch facts, with a destination; its corrections and refused events.
    Regulators see every enterprise, an enterprise key its own."""
    since_us, until_us = time_param("since", since), time_param("until", until)
    with read_tx(engine_of(request)) as conn:
        rows = data_quality(
            conn, viewer, since_us=since_us, until_us=until_us, within_hours=within_hours
        )
    return {"enterprises": [r.as_dict() for r in rows], "within_hours": within_hours}
