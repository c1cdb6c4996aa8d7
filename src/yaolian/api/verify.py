"""Verification (public) and alerts (authenticated).

* ``GET /verify/{code}`` — any code form (NMPA code, element string, EPC URI, Digital Link);
  no key needed. Without a key the answer is the public view (product facts, status,
  circulation path by enterprise names and dates); with a regulator key, or the key of an
  enterprise party to the code, ``detail`` is added.
* ``POST /verify`` — ``{"codes": [...]}`` (a scanner's list, up to 1000) → verdicts in order.
* ``POST /verify/image`` — a photo of a pack (any image type as the body): every barcode found
  in it (DataMatrix, QR, …; zxing-cpp) with the verdict for its code; no key needed.
* ``GET /01/{gtin}/…`` — a GS1 Digital Link resolver for the QR code on a pack: a browser is
  sent to the consumer query page, any other client gets the verdict as ``GET /verify`` does.
* ``POST /dispense`` — NHSA sale lines (销售/使用出库, 拆零) recorded as dispensing events, all or
  none; an enterprise key records sales at its own sites.
* ``GET /alerts`` — anomaly alerts with filters and counts per rule and review status;
  enterprises see alerts about codes they are party to or of their products.
* ``POST /alerts/{id}/review`` — a regulator's finding (预警核查): investigating, confirmed,
  dismissed, or open again; with a note.
* ``POST /alerts/{id}/response`` — the account (情况说明) of an enterprise the alert concerns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request, Response, Security
from fastapi.responses import RedirectResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy.pool import QueuePool

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.params import (
    XLSX,
    RowId,
    accepted_media,
    read_body,
    time_param,
    wants_html,
)
from yaolian.codes.barcode import read_image
from yaolian.errors import ForbiddenError, ValidationError
from yaolian.store.access import Viewer, authenticate
from yaolian.store.engine import is_sqlite
from yaolian.store.masterdata import require_enterprise
from yaolian.store.tx import read_tx, write_tx
from yaolian.trace import rawsql
from yaolian.verify.anomalies import RULES, AlertFilter, alerts_workbook, list_alerts
from yaolian.verify.dispense import read_sales, record_sales, sales_summary
from yaolian.verify.receive import expected_arrivals, receive
from yaolian.verify.review import NOTE_MAX, STATUSES, respond_to_alert, review_alert
from yaolian.verify.status import verify, verify_many
from yaolian.web.pages import SCAN_PAGE

router = APIRouter(tags=["verify"])
_bearer = HTTPBearer(auto_error=False, description="API key (optional here)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (optional)")
MAX_CODES = 1000
MAX_RECEIPT_CODES = 10_000  # a delivery's packs, scanned one by one
SITE_MAX = 500


def optional_viewer(request: Request) -> Viewer | None:
    """The caller behind an API key when one is given (a wrong key is still 401), else None.

    Read from ``Authorization: Bearer …`` or ``X-API-Key`` directly (cached check).
    """
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key")
    if not key:
        return None
    return authenticate(engine_of(request), key.strip())


def _verdict(request: Request, code: str) -> Response:
    with rawsql.reading(engine_of(request)) as conn:
        body = verify(conn, code, optional_viewer(request)).as_dict()
    return Response(orjson.dumps(body), media_type="application/json")


def _app_limiter(request: Request, name: str, size: Callable[[], int]) -> anyio.CapacityLimiter:
    """The app's thread limiter called ``name``, made with ``size()`` places on first use."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, name, None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(size())
        setattr(state, name, limiter)
    return limiter


def _pool_size(request: Request) -> int:
    pool = engine_of(request).pool
    return pool.size() if isinstance(pool, QueuePool) else 5


def _pool_limiter(request: Request) -> anyio.CapacityLimiter:
    """As many threads at once as the engine's pool keeps connections: beyond that each request
    would open and close an overflow connection (a new PostgreSQL backend, its prepared
    statements lost)."""
    return _app_limiter(request, "verify_limiter", lambda: _pool_size(request))


async def _verdict_response(request: Request, code: str) -> Response:
    """On SQLite the few sub-millisecond look-ups run on the event loop (cheaper than a thread
    hop); on PostgreSQL in the thread pool, so requests overlap their network round trips."""
    if is_sqlite(engine_of(request)):
        return _verdict(request, code)
    return await anyio.to_thread.run_sync(_verdict, request, code, limiter=_pool_limiter(request))


async def _fast_verify(request: Request) -> Response:
    return await _verdict_response(request, request.path_params["code"])


# The hot path: a plain route, matched before the documented one below (same answer), so a
# scan costs no dependency solving, thread-pool hop or response-model pass.
router.add_route("/verify/{code:path}", _fast_verify, methods=["GET"], include_in_schema=False)


@router.get("/01/{path:path}", response_class=Response, summary="GS1 Digital Link resolver")
async def resolve_digital_link(request: Request, path: str) -> Response:
    """The pack's Digital Link (``/01/{gtin}/10/{lot}/21/{serial}?17=…``, as its QR code reads
    when this server is the resolver): a browser (``Accept: text/html``) is redirected to the
    consumer query page for it, other clients get the verdict JSON."""
    uri = str(request.url)
    if wants_html(request):
        return RedirectResponse(f"{SCAN_PAGE}?{urlencode({'code': uri})}", status_code=303)
    return await _verdict_response(request, uri)


class CodeList(BaseModel):
    """A scanner's list of codes."""

    codes: list[str] = Field(min_length=1, max_length=MAX_CODES)


@router.get(
    "/verify/{code:path}",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}},
            "description": "The verdict (status, product, batch, circulation)",
        }
    },
)
async def get_verify(
    request: Request,
    code: str,
    _key: Annotated[str | None, Security(_header)] = None,
    _bearer: Annotated[Any, Security(_bearer)] = None,
) -> Response:
    """Is this pack genuine and sellable? (public; a key adds ``detail`` for parties)

    Served by the plain route above; declared here for the OpenAPI description.
    """
    return await _verdict_response(request, code)


@router.post("/verify")
def post_verify(
    request: Request,
    body: CodeList,
    viewer: Annotated[Viewer | None, Security(optional_viewer)] = None,
) -> dict[str, Any]:
    """Verdicts for a list of codes, in order (public)."""
    with rawsql.reading(engine_of(request)) as conn:
        return {"results": [v.as_dict() for v in verify_many(conn, body.codes, viewer)]}


MAX_IMAGE_BYTES = 12 * 1024 * 1024
IMAGE_DECODERS = 2  # photos decoded at once per process: the rest wait, scans go on


def _image_limiter(request: Request) -> anyio.CapacityLimiter:
    """Decoding a large photo takes a core for a while: a burst of uploads queues here instead
    of taking every worker thread from ``GET /verify``."""
    return _app_limiter(request, "image_limiter", lambda: IMAGE_DECODERS)


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("image/png", "image/jpeg", "image/webp", "image/bmp")
        },
    }
}


@router.post("/verify/image", openapi_extra=IMAGE_BODY)
async def post_verify_image(
    request: Request, viewer: Annotated[Viewer | None, Security(optional_viewer)] = None
) -> dict[str, Any]:
    """Read every barcode in a photo of a pack and verify each code (public): ``codes`` lists
    what was read (``text``, ``format``, ``gs1``) with its ``verdict``; empty when none was
    found. At most 12 MiB and 40 megapixels; an unreadable image is a 400 naming why."""
    body = await read_body(request, MAX_IMAGE_BYTES)
    if not body:
        raise ValidationError("no image: send the photo as the request body", place="body")
    decoded = await anyio.to_thread.run_sync(read_image, body, limiter=_image_limiter(request))
    with rawsql.reading(engine_of(request)) as conn:
        verdicts = verify_many(conn, [d.text for d in decoded], viewer)
    return {
        "codes": [
            {"text": d.text, "format": d.format, "gs1": d.gs1, "verdict": v.as_dict()}
            for d, v in zip(decoded, verdicts, strict=True)
        ]
    }


@router.get(
    "/alerts",
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
)
def get_alerts(
    request: Request,
    viewer: ViewerDep,
    rule: Annotated[str | None, Query(description=", ".join(RULES))] = None,
    review: Annotated[
        str | None, Query(description="review status (预警核查): " + ", ".join(STATUSES))
    ] = None,
    code: str | None = None,
    site: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # beyond: no database stores as many
    fmt: Annotated[
        Literal["json", "xlsx"],
        Query(alias="format", description="json (default) or xlsx: the page as 告警清单"),
    ] = "json",
) -> Any:
    """Anomaly alerts, newest first, each with its review (null: open, 待核查);
    ``?format=xlsx`` answers the page as an Excel workbook (告警清单, in Chinese)."""
    flt = AlertFilter(
        rule=rule,
        review=review,
        code=code,
        site=site,
        since_us=time_param("since", since),
        until_us=time_param("until", until),
        limit=limit,
        offset=offset,
    )
    engine = engine_of(request)
    found = list_alerts(engine, viewer, flt)
    if fmt == "xlsx":
        return Response(
            alerts_workbook(engine, found),
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="alerts.xlsx"'},
        )
    return found


class ReviewIn(BaseModel):
    """A finding on an alert: its review status and a note (核查情况)."""

    status: Literal["open", "investigating", "confirmed", "dismissed"]
    note: str | None = Field(default=None, max_length=NOTE_MAX)


@router.post("/alerts/{alert_id}/review")
def post_review(
    request: Request, alert_id: RowId, body: ReviewIn, viewer: WriterDep
) -> dict[str, Any]:
    """Record a regulator's finding on an alert (预警核查): ``investigating`` (核查中),
    ``confirmed`` (属实), ``dismissed`` (排除) or ``open`` again, with a note; kept by the
    alert's stable key, so a rebuild keeps it. 403 for an enterprise key."""
    with write_tx(engine_of(request)) as conn:
        answer = review_alert(conn, alert_id, body.status, body.note, viewer)
        audit(conn, viewer, "alert.review", str(alert_id), body.model_dump())
    return answer


class ResponseIn(BaseModel):
    """An enterprise's account of an alert (情况说明)."""

    note: str = Field(min_length=1, max_length=NOTE_MAX)


@router.post("/alerts/{alert_id}/response")
def post_response(
    request: Request, alert_id: RowId, body: ResponseIn, viewer: WriterDep
) -> dict[str, Any]:
    """Record the account (情况说明) of the key's enterprise on an alert that concerns it (it
    handled the code, or the code is of its product): what happened, for the regulator who
    reviews the alert; a later account replaces it. 403 for a regulator's key, 404 for an
    alert the enterprise does not see."""
    with write_tx(engine_of(request)) as conn:
        answer = respond_to_alert(conn, alert_id, body.note, viewer)
        audit(conn, viewer, "alert.response", str(alert_id), body.model_dump())
    return answer


MAX_SALES_BYTES = 8 * 1024 * 1024
_SALE_LINE = {
    "type": "object",
    "required": ["drug_trac_codg", "sel_retn_cnt", "sel_retn_time"],
    "properties": {
        "drug_trac_codg": {"type": "array", "items": {"type": "string"}},
        "trdn_flag": {"type": "string", "enum": ["0", "1"]},
        "sel_retn_cnt": {"type": "number"},
        "sel_retn_time": {"type": "string"},
        "manu_lotnum": {"type": "string"},
        "setl_id": {"type": "string"},
        "site": {"type": "string"},
        "fixmedins_code": {"type": "string"},
    },
}
SALES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": _SALE_LINE}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/dispense", openapi_extra=SALES_BODY)
async def post_dispense(request: Request, viewer: WriterDep) -> dict[str, Any]:
    """Record NHSA sale lines (销售/使用出库) as dispensing events, all or none: a JSON list of
    lines (or ``{"lines": [...]}``), or CSV or an XLSX workbook with a header row —
    ``drug_trac_codg`` (codes),
    ``trdn_flag`` (1 = 拆零), ``sel_retn_cnt``, ``sel_retn_time``, ``manu_lotnum``,
    ``setl_id``, ``site`` or ``fixmedins_code`` (docs/trace-verify.md). An enterprise key
    records sales at its own sites. Answers how many lines were recorded and how many were
    already (a re-sent upload records nothing twice); 400 naming each bad line."""
    media = accepted_media(request, ("application/json", "text/csv", XLSX))
    body = await read_body(request, MAX_SALES_BYTES)
    lines = read_sales(body, "body", as_json=media == "application/json", as_xlsx=media == XLSX)
    engine = engine_of(request)
    result = await anyio.to_thread.run_sync(
        lambda: record_sales(
            engine,
            lines,
            enterprise_id=viewer.reporter,
            then=lambda conn, done: audit(
                conn, viewer, "dispense", None, sales_summary(lines, done)
            ),
        )
    )
    if not result.success:
        raise ValidationError(
            f"{result.rejected} of {len(lines)} sale line(s) refused: nothing recorded",
            problems=result.errors,
            place="body",
        )
    answer = sales_summary(lines, result)
    webhooks = getattr(request.app.state, "webhooks", None)
    if webhooks is not None:  # the sales go out to subscribers at once
        webhooks.wake()
    return answer


class ReceiptBody(BaseModel):
    """Codes scanned at an arrival (扫码验收), to be received at one site."""

    site: str = Field(min_length=1, max_length=SITE_MAX, description="the receiving site's id")
    codes: list[str] = Field(min_length=1, max_length=MAX_RECEIPT_CODES)
    time: str | None = Field(
        default=None,
        max_length=40,
        description="moment of receipt (ISO 8601, or local 北京时间); default now",
    )


@router.post("/receive")
async def post_receive(request: Request, body: ReceiptBody, viewer: WriterDep) -> dict[str, Any]:
    """Record the receipt (收货 / 购进入库) of scanned codes at one of the key's sites, all or
    none: each code in transit to its enterprise, or in stock at an enterprise that has not
    reported shipping it (发货未上报; counted in ``unreported_shipping``). One receiving event
    per sender. 400 naming each code that cannot be received (unknown, sold, recalled, expired,
    in transit to another enterprise, already in your stock …); 404 for a site not
    registered."""
    engine = engine_of(request)
    receipt = await anyio.to_thread.run_sync(
        lambda: receive(
            engine,
            body.codes,
            body.site,
            viewer=viewer,
            when=body.time,
            then=lambda conn, done: audit(conn, viewer, "receive", body.site, done.as_dict()),
        )
    )
    webhooks = getattr(request.app.state, "webhooks", None)
    if webhooks is not None:
        webhooks.wake()
    return receipt.as_dict()


@router.get("/arrivals")
def get_arrivals(
    request: Request,
    viewer: ViewerDep,
    enterprise: Annotated[
        str | None,
        Query(max_length=18, description="a regulator's view of one enterprise (USCC)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Deliveries on their way (待收货) to the key's enterprise, newest first: each open shipment
    with its sender, day shipped, destination site and packs per product and lot — what a
    receiving check compares the scan with (应到). A regulator's key sees every enterprise's,
    or one's with ``enterprise``."""
    with read_tx(engine_of(request)) as conn:
        whose = require_enterprise(conn, enterprise, "enterprise") if enterprise else None
        if not viewer.sees_all:
            if viewer.enterprise_id is None or whose not in (None, viewer.enterprise_id):
                raise ForbiddenError(
                    "an enterprise key sees its own arrivals (a regulator's, any one's)",
                    place="enterprise",
                )
            whose = viewer.enterprise_id
        return {"arrivals": expected_arrivals(conn, whose, limit)}
