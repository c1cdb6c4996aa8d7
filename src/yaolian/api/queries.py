"""EPCIS 2.0 named queries and their subscriptions.

``POST /queries`` saves a SimpleEventQuery under a name, ``GET /queries/{queryName}/events`` runs
it (paged, JSON-LD or XML), ``GET /queries`` lists the caller's, ``GET`` / ``DELETE
/queries/{queryName}`` read or remove one. ``POST /queries/{queryName}/subscriptions`` subscribes
a webhook that receives the query's new events as they are stored, or at the times of a
schedule (:mod:`yaolian.api.webhooks`); ``GET`` / ``DELETE`` on
``…/subscriptions[/{subscriptionID}]`` list, read and end them. A WebSocket on
``/queries/{queryName}/events`` sends the new events the same ways for as long as it is open.
Every change goes to the audit log."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.epcis import (
    ERRORS,
    EVENTS_RESPONSES,
    events_response,
    query_document_json,
    run_query,
)
from yaolian.api.params import time_param
from yaolian.api.webhooks import DELIVERY_BATCH, POLL_SECONDS
from yaolian.epcis.model import to_epoch_us
from yaolian.errors import QueryError, ValidationError, YaolianError, refuse_nul
from yaolian.store.access import authenticate
from yaolian.store.named_queries import (
    PAGING,
    delete_query,
    get_query,
    list_queries,
    save_query,
)
from yaolian.store.query import MAX_PER_PAGE
from yaolian.store.subscriptions import (
    controls,
    get_subscription,
    list_subscriptions,
    newest_event,
    next_events,
    next_run_us,
    subscribe,
    unsubscribe,
)
from yaolian.store.tx import write_tx

router = APIRouter(tags=["EPCIS 2.0"])
_Name = Annotated[str, Path(alias="queryName", description="The query's name")]


class NamedQueryBody(BaseModel):
    """A query to save: its name and SimpleEventQuery parameters (a value, or a list: any of)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="1–100 of A–Z a–z 0–9 . _ ~ -, starting with a letter or digit")
    query: dict[str, Any] = Field(
        description='SimpleEventQuery parameters, e.g. {"EQ_bizStep": ["receiving"], '
        '"GE_eventTime": "2026-01-01T00:00:00+08:00"}'
    )


@router.post(
    "/queries",
    status_code=201,
    summary="Save a named query",
    responses={**ERRORS, 409: ERRORS[400] | {"description": "The name is taken"}},
)
def post_query(request: Request, body: NamedQueryBody, viewer: WriterDep) -> JSONResponse:
    """Check and save the query (201 with ``Location: /queries/{name}``); the parameters are
    checked as ``/events`` checks its query string."""
    with write_tx(engine_of(request)) as conn:
        saved = save_query(conn, viewer, body.name, body.query)
        audit(conn, viewer, "query.save", saved.name, {"query": saved.params})
    return JSONResponse(
        saved.to_dict(), status_code=201, headers={"Location": f"/queries/{saved.name}"}
    )


@router.get("/queries", summary="The caller's named queries", responses=ERRORS)
def get_queries(request: Request, viewer: ViewerDep) -> list[dict[str, Any]]:
    """Every query saved under the caller's name space (its enterprise's, or the platform's for
    regulator and admin keys), by name."""
    return [q.to_dict() for q in list_queries(engine_of(request), viewer)]


@router.get(
    "/queries/{queryName}/events",
    summary="Run a named query",
    description="The saved parameters with this request's `perPage` and `nextPageToken`; "
    "JSON-LD or XML by `Accept`; only events this key may see.",
    responses=EVENTS_RESPONSES,
    response_class=Response,
)
def get_query_events(
    request: Request,
    viewer: ViewerDep,
    name: _Name,
    perPage: Annotated[
        int | None, Query(ge=1, le=MAX_PER_PAGE, description="Events per page (default 100)")
    ] = None,
    nextPageToken: Annotated[
        str | None, Query(description="Token from the previous page's Link rel=next header")
    ] = None,
) -> Response:
    """One page of the query's events."""
    saved = get_query(engine_of(request), viewer, name)

    def saved_params(params: dict[str, list[str]]) -> None:
        extra = sorted(set(params) - PAGING)
        if extra:
            raise QueryError(
                "a named query takes only perPage and nextPageToken; save another query to "
                "filter further",
                place=extra[0],
            )
        params.update(saved.params)

    page, media = run_query(request, viewer, saved_params)
    return events_response(request, page, media, saved.name)


@router.get("/queries/{queryName}", summary="A named query", responses=ERRORS)
def get_named_query(request: Request, viewer: ViewerDep, name: _Name) -> dict[str, Any]:
    """The query's name, parameters, when it was saved and where its events are."""
    return get_query(engine_of(request), viewer, name).to_dict()


@router.delete(
    "/queries/{queryName}", status_code=204, summary="Delete a named query", responses=ERRORS
)
def delete_named_query(request: Request, viewer: WriterDep, name: _Name) -> Response:
    """Remove the query (204); 404 if the caller has none of that name."""
    with write_tx(engine_of(request)) as conn:
        delete_query(conn, viewer, name)
        audit(conn, viewer, "query.delete", name, None)
    return Response(status_code=204)


# ── subscriptions (webhooks) ─────────────────────────────────────────────────────────────────
class SubscriptionBody(BaseModel):
    """A webhook subscription: where to post the query's new events — streamed as they are
    stored, or at the query times of a schedule."""

    model_config = ConfigDict(extra="forbid")
    dest: str = Field(description="http(s) URL the events are POSTed to")
    signatureToken: str | None = Field(
        None, description="Key of the GS1-Signature header (hex HMAC-SHA256 of the body)"
    )
    stream: bool | None = Field(None, description="true: push events as they are stored")
    schedule: dict[str, Any] | None = Field(
        None,
        description="Run the query at these times (UTC+08:00): second, minute, hour, "
        'dayOfMonth, month, dayOfWeek (1 = Monday), each like "0", "[1-5]" or "0,30"; an '
        "omitted field matches any value. Each run sends what was stored since the last.",
        examples=[{"second": "0", "minute": "30", "hour": "2"}],
    )
    reportIfEmpty: bool | None = Field(
        None, description="With a schedule: post a run's result even when no event matched"
    )
    initialRecordTime: str | None = Field(
        None, description="Also deliver the stored events recorded since this time"
    )


def _initial_record_us(body: SubscriptionBody) -> int | None:
    """The body's start time in µs."""
    if body.initialRecordTime is None:
        return None
    try:
        return to_epoch_us(body.initialRecordTime)
    except ValueError as exc:
        raise ValidationError(
            f"not an ISO 8601 time with offset: {exc}", place="/initialRecordTime"
        ) from None


_Subscription = Annotated[str, Path(alias="subscriptionID", description="The subscription's id")]


@router.post(
    "/queries/{queryName}/subscriptions",
    status_code=201,
    summary="Subscribe a webhook to a named query",
    responses=ERRORS,
)
def post_subscription(
    request: Request, body: SubscriptionBody, viewer: WriterDep, name: _Name
) -> JSONResponse:
    """201 with ``Location``; from then on every new event the query matches and this key may
    see is POSTed to ``dest`` as it is stored, or at the times of the ``schedule`` (with
    ``initialRecordTime``: those recorded since then first)."""
    with write_tx(engine_of(request)) as conn:
        created = subscribe(
            conn,
            viewer,
            name,
            dest=body.dest,
            signature_token=body.signatureToken,
            initial_record_us=_initial_record_us(body),
            schedule=controls(body.stream, body.schedule, body.reportIfEmpty),
            report_if_empty=bool(body.reportIfEmpty),
        )
        location = f"/queries/{name}/subscriptions/{created.subscription_id}"
        audit(conn, viewer, "subscription.create", location, {"dest": created.dest})
    return JSONResponse(created.to_dict(), status_code=201, headers={"Location": location})


@router.get(
    "/queries/{queryName}/subscriptions",
    summary="The subscriptions of a named query",
    responses=ERRORS,
)
def get_subscriptions(request: Request, viewer: ViewerDep, name: _Name) -> list[dict[str, Any]]:
    """Every subscription of the query, oldest first, with its delivery progress."""
    return [s.to_dict() for s in list_subscriptions(engine_of(request), viewer, name)]


@router.get(
    "/queries/{queryName}/subscriptions/{subscriptionID}",
    summary="One subscription",
    responses=ERRORS,
)
def get_one_subscription(
    request: Request, viewer: ViewerDep, name: _Name, subscription_id: _Subscription
) -> dict[str, Any]:
    """The subscription: where it posts, how many events went out, the last error."""
    return get_subscription(engine_of(request), viewer, name, subscription_id).to_dict()


@router.delete(
    "/queries/{queryName}/subscriptions/{subscriptionID}",
    status_code=204,
    summary="End a subscription",
    responses=ERRORS,
)
def delete_subscription(
    request: Request, viewer: WriterDep, name: _Name, subscription_id: _Subscription
) -> Response:
    """Stop posting to it (204)."""
    location = f"/queries/{name}/subscriptions/{subscription_id}"
    with write_tx(engine_of(request)) as conn:
        unsubscribe(conn, viewer, name, subscription_id)
        audit(conn, viewer, "subscription.delete", location, None)
    return Response(status_code=204)


# ── streamed subscription over a WebSocket ───────────────────────────────────────────────────
WS_POLICY_VIOLATION = 1008  # WebSocket close code: the request broke the server's policy


def _ws_key(websocket: WebSocket) -> str | None:
    """The API key of a WebSocket request (``X-API-Key`` or ``Authorization: Bearer``)."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.headers.get("x-api-key")


class _Departure:
    """Watches a WebSocket client for leaving while the server waits (messages are ignored)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.listener = asyncio.ensure_future(websocket.receive())

    async def within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; whether the client left meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait({self.listener}, timeout=left)
            if not done:
                return False
            if self.listener.result()["type"] == "websocket.disconnect":
                return True
            self.listener = asyncio.ensure_future(self.websocket.receive())
        return False

    def cancel(self) -> None:
        """Stop watching."""
        self.listener.cancel()


@router.websocket("/queries/{queryName}/events")
async def stream_query_events(
    websocket: WebSocket,
    queryName: str,
    initialRecordTime: str | None = None,
    stream: bool | None = None,
    reportIfEmpty: bool | None = None,
    second: str | None = None,
    minute: str | None = None,
    hour: str | None = None,
    dayOfMonth: str | None = None,
    month: str | None = None,
    dayOfWeek: str | None = None,
) -> None:
    """EPCIS 2.0 subscription over a WebSocket: open it on the query's events (with the API key
    in ``X-API-Key`` or ``Authorization``) and each new event the query matches that the key may
    see arrives as an ``EPCISQueryDocument`` text message, in the order stored — as it is stored
    (``stream``, the default), or at the query times of a schedule given as query parameters
    (``second``, ``minute``, ``hour``, ``dayOfMonth``, ``month``, ``dayOfWeek``; with
    ``reportIfEmpty=true`` a run that found nothing sends an empty document). With
    ``?initialRecordTime=`` the stored events recorded since then come first. Nothing is kept
    once the socket closes (a webhook subscription is the durable form)."""
    engine = websocket.app.state.engine
    fields = {"second": second, "minute": minute, "hour": hour, "dayOfMonth": dayOfMonth}
    fields |= {"month": month, "dayOfWeek": dayOfWeek}
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        refuse_nul({"queryName": queryName, "initialRecordTime": initialRecordTime, **given}, "")
        schedule = controls(stream, given or None, reportIfEmpty, stream_by_default=True)
        viewer = await run_in_threadpool(authenticate, engine, _ws_key(websocket))
        saved = await run_in_threadpool(get_query, engine, viewer, queryName)
        start = time_param("initialRecordTime", initialRecordTime)
        after = 0 if start is not None else await run_in_threadpool(newest_event, engine)
    except YaolianError as exc:
        await websocket.close(WS_POLICY_VIOLATION, str(exc)[:120])
        return
    await websocket.accept()
    departure = _Departure(websocket)  # the client leaving ends the subscription
    try:
        while True:
            if schedule is not None:  # until the next query time
                now_us = time.time_ns() // 1000
                if await departure.within(max(0.0, (next_run_us(schedule, now_us) - now_us) / 1e6)):
                    return
            sent = 0
            while True:  # everything stored since the last run, batch after batch
                events, after = await run_in_threadpool(
                    next_events,
                    engine,
                    saved.params,
                    viewer,
                    after_event=after,
                    min_record_us=start,
                    limit=DELIVERY_BATCH,
                )
                if events or (reportIfEmpty and not sent):
                    document = query_document_json([e for _, e in events], saved.name)
                    await websocket.send_text(document.decode())
                    sent += 1
                if len(events) < DELIVERY_BATCH:
                    break
            if schedule is None and await departure.within(POLL_SECONDS):
                return
    except (WebSocketDisconnect, OSError):  # gone while a batch was on its way
        return
    finally:
        departure.cancel()
