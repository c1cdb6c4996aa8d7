"""Issuing trace codes over HTTP (赋码): a packaging line's system asks for the codes of a batch
and prints them; the same request id answers the same codes again (a retry never issues twice).

* ``POST /codes/issue`` — ``{"requestId", "product", "quantity", "lot", "expiry"}``; 201 with
  the print lines when issued now, 200 when the request id was seen before. An enterprise key
  issues for the products its enterprise holds (上市许可持有人) or manufactures; an admin key for
  any; regulators do not issue codes.
* ``GET /codes/issue/{requestId}`` — the codes of an earlier request, to print them again;
  ``GET /codes/issue`` — the requests, newest first.

``?format=csv`` answers the print lines as CSV, ``?format=txt`` the codes one per line. Request
ids are each enterprise's own; every issue is an audit entry (``codes.issue``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.codes.issue import (
    IssueRequest,
    IssueResult,
    export_csv,
    export_text,
    issue_codes,
    list_requests,
    load_request,
)
from yaolian.codes.registry import CodeRegistry
from yaolian.epcis.model import utc_text
from yaolian.errors import CodeError, ForbiddenError
from yaolian.store.access import Viewer
from yaolian.store.masterdata import enterprise_uscc
from yaolian.store.tx import write_tx
from yaolian.trace.directory import holds_product

router = APIRouter(tags=["codes"])
MAX_HTTP_QUANTITY = 100_000  # codes per request over HTTP (the CLI issues up to 1M at once)

Format = Annotated[
    Literal["json", "csv", "txt"],
    Query(
        alias="format", description="json (default), csv (print lines) or txt (one code per line)"
    ),
]


class IssueIn(BaseModel):
    """Codes to issue: ``quantity`` codes of one product (药品标识码 or GTIN) in one batch."""

    model_config = ConfigDict(extra="forbid")
    requestId: str = Field(min_length=1, max_length=100, description="Idempotency key")
    product: str = Field(min_length=1, max_length=20, description="药品标识码 or GTIN-14")
    quantity: int = Field(ge=1, le=MAX_HTTP_QUANTITY, description="Codes (more: several requests)")
    lot: str | None = Field(default=None, max_length=20, description="批号")
    expiry: date | None = Field(default=None, description="有效期至, YYYY-MM-DD")


def _issuer(request: Request, viewer: Viewer) -> str:
    """The namespace of ``viewer``'s request ids: its enterprise's USCC, "" for an admin."""
    if viewer.role == "admin":
        return ""
    if viewer.role == "enterprise" and viewer.enterprise_id is not None:
        return enterprise_uscc(engine_of(request), viewer.enterprise_id)
    raise ForbiddenError(
        "codes are issued by an enterprise key (for its own products) or an admin key",
        place="Authorization",
    )


@contextmanager
def _body_places() -> Iterator[None]:
    """Code errors name the field of the request body they are about (``/requestId`` …)."""
    try:
        yield
    except CodeError as exc:
        place = _BODY_PLACES.get(exc.place or "product", exc.place)
        raise CodeError(exc.reason, place=place) from None


_BODY_PLACES = {
    "request_id": "/requestId",
    "product": "/product",
    "quantity": "/quantity",
    "lot": "/lot",
}


def _answer(result: IssueResult, fmt: str, status: int) -> Any:
    """The codes as JSON (with the product and rule), CSV print lines or plain text."""
    if fmt == "csv":
        return Response(export_csv(result), status, media_type="text/csv")
    if fmt == "txt":
        return Response(export_text(result), status, media_type="text/plain")
    return {
        "requestId": result.request.request_id,
        "reused": result.reused,
        "rule": result.rule,
        "product": result.product.as_dict(),
        "lot": result.request.lot,
        "expiry": result.request.expiry.isoformat() if result.request.expiry else None,
        "codes": result.print_lines(),
    }


@router.post(
    "/codes/issue",
    status_code=201,
    responses={200: {"description": "The request id was seen before: the same codes"}},
)
def post_issue(
    request: Request, response: Response, viewer: WriterDep, body: IssueIn, fmt: Format = "json"
) -> Any:
    """Issue ``quantity`` unique, unguessable codes of a product for a batch (201), or answer
    the codes of a request id seen before (200); reusing an id for other parameters is 400."""
    issuer = _issuer(request, viewer)
    engine = engine_of(request)
    registry = CodeRegistry.for_store(engine)
    ask = IssueRequest(body.requestId, body.product, body.quantity, body.lot, body.expiry, issuer)
    with _body_places(), write_tx(engine) as conn:
        product = registry.product(body.product)
        enterprise = viewer.enterprise_id
        if viewer.role == "enterprise" and (
            enterprise is None or not holds_product(conn, enterprise, product.product_code)
        ):
            raise ForbiddenError(
                f"product {product.product_code} is not held or made by the key's enterprise",
                place="/product",
            )
        result = issue_codes(conn, registry, ask)
        if not result.reused:
            detail = {"request": ask.request_id, "quantity": ask.quantity, "lot": ask.lot}
            audit(conn, viewer, "codes.issue", product.product_code, detail)
    response.status_code = 200 if result.reused else 201
    return _answer(result, fmt, response.status_code)


@router.get("/codes/issue")
def get_issues(
    request: Request,
    viewer: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
) -> dict[str, Any]:
    """Issue requests, newest first (without their codes): an enterprise key its own, an admin
    or regulator key everyone's (``issuer``: the enterprise's USCC, null for the operator)."""
    issuer = None if viewer.sees_all else _issuer(request, viewer)
    requests = []
    for found in list_requests(engine_of(request), issuer, limit):
        created = found.pop("created_us")
        requests.append({**found, "created": utc_text(created)})
    return {"requests": requests}


@router.get("/codes/issue/{requestId:path}")
def get_issue(
    request: Request,
    viewer: ViewerDep,
    request_id: Annotated[str, Path(alias="requestId", max_length=100)],
    fmt: Format = "json",
) -> Any:
    """The codes of an earlier request of the key's enterprise (admin: the operator's), to
    print them again."""
    issuer = _issuer(request, viewer)
    engine = engine_of(request)
    return _answer(
        load_request(engine, CodeRegistry.for_store(engine), request_id, issuer), fmt, 200
    )
