"""EPCIS 2.0 REST bindings: capture (jobs) and event queries.

* ``POST /capture`` — an EPCISDocument (JSON-LD or XML), a capture body of one event or a list
  of events, or an NMPA data-set table (CSV / XLSX). The body is read and parsed on the request
  (bad syntax → 400 at once); validation and storage run off the request; the answer is 202 with
  ``Location: /capture/{captureID}``. ``GS1-Capture-Error-Behaviour: rollback | proceed``.
* ``GET /capture/{captureID}``, ``GET /capture`` — capture jobs (running, success, counts,
  errors).
* ``GET /events``, ``GET /events/{eventType}``, ``GET /eventTypes/{eventType}/events``,
  ``GET /epcs/{epc}/events``, ``GET /events/{eventID}`` — SimpleEventQuery parameters, paged
  with ``perPage`` / ``nextPageToken`` and the ``Link: <…>; rel="next"`` header; JSON-LD or XML
  by ``Accept``.

Interfaces only: parsing is :mod:`yaolian.epcis`, storing and querying :mod:`yaolian.store`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, BackgroundTasks, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from lxml import etree
from sqlalchemy import Engine
from starlette.responses import Response

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.params import MAX_ROW_ID, XLSX, accepted_media, read_body
from yaolian.epcis import jsonld, xml
from yaolian.epcis.extensions import YAOLIAN_NS
from yaolian.epcis.model import EVENT_TYPES, Document, Event
from yaolian.epcis.nmpa_dataset import read_nmpa_csv, read_nmpa_xlsx
from yaolian.epcis.read import read_document
from yaolian.errors import (
    BusyError,
    CaptureLimitError,
    NotFoundError,
    QueryError,
    ValidationError,
    YaolianError,
)
from yaolian.store.access import Viewer
from yaolian.store.ingest import Behaviour, capture_document
from yaolian.store.jobs import create_job, finish_job, get_job, list_jobs
from yaolian.store.query import MAX_PER_PAGE, EventPage, query_events
from yaolian.store.resources import ResourcePage
from yaolian.store.tx import read_tx, write_tx

log = logging.getLogger("yaolian.api")
T = TypeVar("T")
router = APIRouter(tags=["EPCIS 2.0"])

JSON_LD = "application/ld+json"
JSON = "application/json"
XML = "application/xml"
CSV = "text/csv"
EPCIS_QUERY_NS = "urn:epcglobal:epcis-query:xsd:2"
_JSON_TYPES = {JSON, JSON_LD}
_XML_TYPES = {XML, "text/xml"}
_CAPTURE_TYPES = {
    **dict.fromkeys(_JSON_TYPES, "json"),
    **dict.fromkeys(_XML_TYPES, "xml"),
    CSV: "csv",
    XLSX: "xlsx",
}
_RESULT_CONTEXT: list[Any] = [jsonld.EPCIS_CONTEXT, {"yaolian": YAOLIAN_NS}]


def _problem_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem_schema("Bad input (ValidationException / QueryParameterException)"),
    401: _problem_schema("No or unknown API key (SecurityException)"),
    404: _problem_schema("No such resource, or not visible to this key"),
    406: _problem_schema("No acceptable response media type (NotAcceptableException)"),
}


# ── capture ──────────────────────────────────────────────────────────────────────────────────
_CAPTURE_BODY = {
    "requestBody": {
        "required": True,
        "description": "An EPCIS 2.0 document (JSON-LD or XML 2.0/1.2), a capture body of one "
        "event or a list of events, or an NMPA trace data-set table (CSV or XLSX; columns in "
        "docs/nmpa-dataset.md).",
        "content": {
            JSON_LD: {"schema": {"type": "object"}},
            JSON: {"schema": {"type": "object"}},
            XML: {"schema": {"type": "string"}},
            CSV: {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _parse_capture(body: bytes, kind: str, content_type: str) -> Document:
    """Parse a capture body by its kind (json, xml, csv, xlsx)."""
    if kind == "csv":
        return read_nmpa_csv(body, "body")
    if kind == "xlsx":
        return read_nmpa_xlsx(io.BytesIO(body), "body")
    return read_document(body, content_type)


JOB_TURNS = 30  # busy timeouts a capture job waits for its turn (SQLite: 30 × 60 s)


def _in_turn(work: Callable[[], T]) -> T:
    """Run a background write, waiting for its turn while other writers hold the store: an
    accepted capture job is queued work, not a request that can be asked again."""
    for turn in range(1, JOB_TURNS):
        try:
            return work()
        except BusyError:
            log.info("the store is busy; capture job waits (turn %s of %s)", turn, JOB_TURNS)
    return work()


def _run_capture(
    engine: Engine, job_id: int, doc: Document, behaviour: Behaviour, enterprise_id: int | None
) -> None:
    """Background part of a capture: validate and store, closing the job in the same
    transaction — a job still running after its process stopped stored nothing."""
    try:
        result = _in_turn(
            lambda: capture_document(
                engine,
                doc,
                behaviour=behaviour,
                enterprise_id=enterprise_id,
                job_id=job_id,
                then=lambda conn, result: finish_job(conn, job_id, result),
            )
        )
    except YaolianError as exc:
        failure = str(exc)
    except Exception:
        log.exception("capture job %s failed", job_id)
        failure = "internal error while storing; the error is logged"
    else:
        if behaviour == "rollback" and result.rejected:  # nothing stored, ``then`` not run
            _in_turn(lambda: finish_job(engine, job_id, result))
        return
    _in_turn(lambda: finish_job(engine, job_id, failure=failure))


@router.post(
    "/capture",
    status_code=202,
    summary="Capture EPCIS events (asynchronous capture job)",
    openapi_extra=_CAPTURE_BODY,
    responses={
        202: {"description": "Accepted; poll the job at the Location header"},
        413: _problem_schema("Capture limit exceeded (CaptureLimitExceededException)"),
        415: _problem_schema("Unsupported Content-Type (UnsupportedMediaTypeException)"),
        **ERRORS,
    },
)
async def post_capture(
    request: Request,
    background: BackgroundTasks,
    viewer: WriterDep,
    behaviour: Annotated[
        Literal["rollback", "proceed"],
        Header(
            alias="GS1-Capture-Error-Behaviour",
            description="rollback: store nothing if any event is invalid (default); "
            "proceed: store the valid events and report each rejected one.",
        ),
    ] = "rollback",
) -> Response:
    """Accept a capture document; validation and storage run as a capture job."""
    settings = request.app.state.settings
    content_type = request.headers.get("content-type", "")
    kind = _CAPTURE_TYPES[accepted_media(request, _CAPTURE_TYPES)]
    body = await read_body(request, settings.capture_size_limit, CaptureLimitError)
    doc = await run_in_threadpool(_parse_capture, body, kind, content_type)
    if len(doc.events) > settings.capture_limit:
        raise CaptureLimitError(
            f"{len(doc.events)} events exceed the limit of {settings.capture_limit} per capture",
            place="eventList",
        )
    engine = engine_of(request)

    def open_job() -> int:
        with write_tx(engine) as conn:
            job = create_job(conn, behaviour=behaviour, enterprise_id=viewer.enterprise_id)
            audit(
                conn,
                viewer,
                "capture",
                f"/capture/{job}",
                {"events": len(doc.events), "behaviour": behaviour, "format": kind},
            )
        return job

    job_id = await run_in_threadpool(open_job)
    background.add_task(_run_capture, engine, job_id, doc, behaviour, viewer.reporter)
    webhooks = getattr(request.app.state, "webhooks", None)
    if webhooks is not None:  # the new events go out to subscribers at once
        background.add_task(webhooks.wake)
    location = f"/capture/{job_id}"
    body_out = {"captureID": str(job_id), "location": location, "events": len(doc.events)}
    return Response(
        orjson.dumps(body_out), status_code=202, media_type=JSON, headers={"Location": location}
    )


@router.get(
    "/capture/{captureID}",
    summary="One capture job: running, success, counts and errors",
    responses=ERRORS,
)
def get_capture(
    request: Request,
    viewer: ViewerDep,
    capture_id: Annotated[str, Path(alias="captureID", description="Capture job id")],
) -> dict[str, Any]:
    """The capture job, if it is the caller's (regulators see every job)."""
    if not (capture_id.isascii() and capture_id.isdigit()) or int(capture_id) > MAX_ROW_ID:
        raise NotFoundError(f"no capture job {capture_id!r}", place="captureID")
    return get_job(engine_of(request), int(capture_id), viewer).to_dict()


@router.get("/capture", summary="Capture jobs, newest first", responses=ERRORS)
def get_captures(
    request: Request,
    viewer: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs")] = 100,
) -> dict[str, Any]:
    """The caller's capture jobs (regulators: all), newest first."""
    jobs = list_jobs(engine_of(request), viewer, limit=limit)
    return {"captureJobs": [job.to_dict() for job in jobs]}


# ── queries ──────────────────────────────────────────────────────────────────────────────────
def _q(description: str, **extra: Any) -> Any:
    return Query(description=description, **extra)


StrList = list[str] | None
_TIME = "ISO 8601 time with offset, e.g. 2025-03-01T08:00:00+08:00"


def event_query_parameters(
    eventType: Annotated[StrList, _q("Event types (repeat or separate by |)")] = None,
    GE_eventTime: Annotated[str | None, _q(f"eventTime ≥ this; {_TIME}")] = None,
    LT_eventTime: Annotated[str | None, _q(f"eventTime < this; {_TIME}")] = None,
    GE_recordTime: Annotated[str | None, _q(f"recordTime ≥ this; {_TIME}")] = None,
    LT_recordTime: Annotated[str | None, _q(f"recordTime < this; {_TIME}")] = None,
    EQ_action: Annotated[StrList, _q("ADD, OBSERVE or DELETE")] = None,
    EQ_bizStep: Annotated[StrList, _q("CBV bizStep word or URI, e.g. shipping")] = None,
    EQ_disposition: Annotated[StrList, _q("CBV disposition word or URI")] = None,
    EQ_readPoint: Annotated[StrList, _q("readPoint id (e.g. SGLN URI)")] = None,
    EQ_bizLocation: Annotated[StrList, _q("bizLocation id (e.g. SGLN URI)")] = None,
    WD_readPoint: Annotated[
        StrList, _q("readPoint or one within it (no location hierarchy is kept: as EQ_)")
    ] = None,
    WD_bizLocation: Annotated[
        StrList, _q("bizLocation or one within it (no location hierarchy is kept: as EQ_)")
    ] = None,
    MATCH_epc: Annotated[StrList, _q("epcList / childEPCs contain this code (any form)")] = None,
    MATCH_parentID: Annotated[StrList, _q("parentID is this code")] = None,
    MATCH_inputEPC: Annotated[StrList, _q("inputEPCList contains this code")] = None,
    MATCH_outputEPC: Annotated[StrList, _q("outputEPCList contains this code")] = None,
    MATCH_anyEPC: Annotated[StrList, _q("any EPC field contains this code")] = None,
    MATCH_epcClass: Annotated[StrList, _q("quantityList / childQuantityList class")] = None,
    MATCH_inputEPCClass: Annotated[StrList, _q("inputQuantityList class")] = None,
    MATCH_outputEPCClass: Annotated[StrList, _q("outputQuantityList class")] = None,
    MATCH_anyEPCClass: Annotated[StrList, _q("any quantity list class")] = None,
    EQ_eventID: Annotated[StrList, _q("eventID")] = None,
    EXISTS_errorDeclaration: Annotated[
        str | None, _q("Only events with (true, or empty) / without (false) errorDeclaration")
    ] = None,
    EQ_bizTransaction_po: Annotated[
        StrList,
        _q("bizTransaction of CBV type po; any type works as EQ_bizTransaction_{type}"),
    ] = None,
    EQ_bizTransaction_desadv: Annotated[StrList, _q("bizTransaction of type desadv")] = None,
    EQ_source_owning_party: Annotated[
        StrList, _q("source of type owning_party; any type works as EQ_source_{type}")
    ] = None,
    EQ_source_location: Annotated[StrList, _q("source of type location")] = None,
    EQ_destination_owning_party: Annotated[
        StrList,
        _q("destination of type owning_party; any type works as EQ_destination_{type}"),
    ] = None,
    EQ_destination_location: Annotated[StrList, _q("destination of type location")] = None,
    orderBy: Annotated[
        Literal["eventTime", "recordTime"] | None, _q("Sort field (default eventTime)")
    ] = None,
    orderDirection: Annotated[
        Literal["ASC", "DESC"] | None, _q("ASC (default) or DESC (default when orderBy given)")
    ] = None,
    eventCountLimit: Annotated[int | None, _q("At most this many events in all", ge=1)] = None,
    maxEventCount: Annotated[
        int | None, _q("More matches than this → 413 QueryTooLargeException", ge=1)
    ] = None,
    perPage: Annotated[
        int | None, _q("Events per page (default 100)", ge=1, le=MAX_PER_PAGE)
    ] = None,
    nextPageToken: Annotated[
        str | None, _q("Token from the previous page's Link rel=next header")
    ] = None,
) -> None:
    """Declares the EPCIS SimpleEventQuery parameters for OpenAPI and type checks.

    The values themselves are read from the raw query string (so repeated parameters and the
    dynamic ``EQ_bizTransaction_{type}``, ``EQ_source_{type}``, ``EQ_destination_{type}``
    families reach the store unchanged); the store rejects unknown parameters.
    """


QueryParams = Annotated[None, Depends(event_query_parameters)]
QUERY_DOC = (
    "SimpleEventQuery parameters as query string. Besides those listed, every "
    "`EQ_bizTransaction_{type}`, `EQ_source_{type}` and `EQ_destination_{type}` (CBV type word "
    "or URI) is accepted. Unknown parameters → 400 QueryParameterException. Codes may be given "
    "in any form (EPC URI, Digital Link, NMPA trace code, urn:nmpa:code:…). Pages: follow the "
    '`Link: <…>; rel="next"` header (or pass `nextPageToken`). JSON-LD (`application/ld+json`, '
    "`application/json`) or XML (`application/xml`) by `Accept`."
)


def _negotiate(accept: str | None) -> str:
    """The response media type for an ``Accept`` header (JSON when absent); 406 when none fits."""
    if not accept or not accept.strip():
        return JSON
    offers: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *options = (p.strip() for p in part.split(";"))
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        offers.append((-q, index, media.lower()))
    for neg_q, _, media in sorted(offers):
        if neg_q >= 0:
            continue
        if media in (JSON_LD, JSON):
            return media
        if media in _XML_TYPES:
            return XML
        if media in ("*/*", "application/*"):
            return JSON
    raise YaolianError(
        f"cannot answer with {accept!r}; use {JSON_LD}, {JSON} or {XML}",
        place="Accept",
        status=406,
        exception_type="NotAcceptableException",
    )


def _raw_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def _query_document(events: list[Event]) -> Document:
    return Document(events=events, context=list(_RESULT_CONTEXT))


def _xml_query_document(document_xml: bytes, query_name: str) -> bytes:
    """Re-root an EPCIS XML document as ``epcisq:EPCISQueryDocument`` with its EventList under
    ``EPCISBody/epcisq:QueryResults/resultsBody`` (EPCIS 2.0 query schema)."""
    source = etree.fromstring(document_xml)
    nsmap = {**source.nsmap, "epcisq": EPCIS_QUERY_NS}
    root = etree.Element(f"{{{EPCIS_QUERY_NS}}}EPCISQueryDocument", nsmap=nsmap)
    for name, value in source.attrib.items():
        root.set(name, value)
    results = etree.SubElement(
        etree.SubElement(root, "EPCISBody"), f"{{{EPCIS_QUERY_NS}}}QueryResults"
    )
    etree.SubElement(results, "queryName").text = query_name
    body = source.find("EPCISBody")
    event_list = body.find("EventList") if body is not None else None
    etree.SubElement(results, "resultsBody").append(
        event_list if event_list is not None else etree.Element("EventList")
    )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def query_document_json(
    events: list[Event], query_name: str = "SimpleEventQuery", subscription_id: str | None = None
) -> bytes:
    """``events`` as an EPCIS 2.0 JSON-LD ``EPCISQueryDocument`` (the answer of a query, or what
    a subscription delivers: then with its ``subscriptionID``)."""
    out = jsonld.to_json(_query_document(events))
    out["type"] = "EPCISQueryDocument"
    results: dict[str, Any] = {"queryName": query_name}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": events}
    out["epcisBody"] = {"queryResults": results}
    return orjson.dumps(out)


def events_response(
    request: Request, page: EventPage, media: str, query_name: str = "SimpleEventQuery"
) -> Response:
    """The page as an EPCISQueryDocument (JSON-LD or XML), with ``Link: <…>; rel="next"``."""
    if media == XML:
        try:
            document = xml.write_document(_query_document(page.events))
            content = _xml_query_document(document, query_name)
        except ValidationError as exc:  # an extension whose namespace the store does not know
            raise YaolianError(
                f"these events cannot be written as XML ({exc}); ask for application/ld+json",
                place="Accept",
                status=406,
                exception_type="NotAcceptableException",
            ) from exc
    else:
        content = query_document_json(page.events, query_name)
    return Response(
        content, media_type=media, headers={"Vary": "Accept", **next_link(request, page)}
    )


def next_link(request: Request, page: EventPage | ResourcePage) -> dict[str, str]:
    """The ``Link: <…>; rel="next"`` header of a page that has a next one."""
    if not page.next_page_token:
        return {}
    next_url = request.url.include_query_params(nextPageToken=page.next_page_token)
    return {"Link": f'<{next_url}>; rel="next"'}


def run_query(
    request: Request,
    viewer: Viewer,
    adjust: Callable[[dict[str, list[str]]], None] | None = None,
) -> tuple[EventPage, str]:
    """The page of events the request's query string asks for (``adjust`` may change its
    parameters first) and the media type to answer in."""
    media = _negotiate(request.headers.get("accept"))
    params = _raw_params(request)
    if adjust:
        adjust(params)
    with read_tx(engine_of(request)) as conn:
        page = query_events(conn, params, viewer=viewer)
    return page, media


def events_where(request: Request, viewer: Viewer, name: str, value: str) -> Response:
    """Events matching the query string and the parameter ``name`` = ``value`` that the path
    gives (``/bizSteps/shipping/events``: EQ_bizStep=shipping); the same parameter in the query
    string as well is refused."""

    def fix(params: dict[str, list[str]]) -> None:
        if name in params:
            raise QueryError("is given by the path already", place=name)
        params[name] = [value]

    page, media = run_query(request, viewer, fix)
    return events_response(request, page, media)


EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCISQueryDocument (JSON-LD or XML)",
        "content": {JSON_LD: {}, JSON: {}, XML: {}},
    },
    **ERRORS,
}


@router.get(
    "/events",
    summary="Query events (SimpleEventQuery)",
    description=QUERY_DOC,
    responses=EVENTS_RESPONSES,
    response_class=Response,
)
def get_events(request: Request, viewer: ViewerDep, _params: QueryParams) -> Response:
    """Events matching the query parameters that the caller may see, one page."""
    page, media = run_query(request, viewer)
    return events_response(request, page, media)


@router.get(
    "/eventTypes",
    summary="The EPCIS event types",
    responses={401: ERRORS[401]},
)
def get_event_types(viewer: ViewerDep) -> list[str]:
    """The five EPCIS 2.0 event types."""
    return list(EVENT_TYPES)


@router.get(
    "/eventTypes/{eventTypeName}/events",
    summary="Events of one type",
    description=QUERY_DOC,
    responses=EVENTS_RESPONSES,
    response_class=Response,
)
def get_events_of_type(
    request: Request,
    viewer: ViewerDep,
    _params: QueryParams,
    event_type: Annotated[
        Literal[
            "ObjectEvent",
            "AggregationEvent",
            "TransactionEvent",
            "TransformationEvent",
            "AssociationEvent",
        ],
        Path(alias="eventTypeName", description="An EPCIS event type"),
    ],
) -> Response:
    """Events of ``eventType`` matching the other query parameters."""
    return events_where(request, viewer, "eventType", event_type)


@router.get(
    "/eventTypes/{eventTypeName}",
    summary="Sub-resources of an event type",
    responses={401: ERRORS[401], 404: ERRORS[404]},
)
def get_event_type(
    viewer: ViewerDep,
    event_type: Annotated[str, Path(alias="eventTypeName", description="An EPCIS event type")],
) -> list[str]:
    """``["events"]`` for each of the five event types (EPCIS 2.0 discovery)."""
    if event_type not in EVENT_TYPES:
        raise NotFoundError(f"no event type {event_type[:100]!r}", place="eventTypeName")
    return ["events"]


@router.get(
    "/events/{eventTypeOrID:path}",
    summary="Events of one type, or the event with this eventID",
    description="An event type name (ObjectEvent …) lists events of that type (same query "
    "parameters as /events); anything else is an eventID (URL-encoded, e.g. "
    "ni:///sha-256;…?ver=CBV2.0 or urn:uuid:…) and returns that one event or 404.\n\n" + QUERY_DOC,
    responses=EVENTS_RESPONSES,
    response_class=Response,
)
def get_events_by_type_or_id(
    request: Request,
    viewer: ViewerDep,
    _params: QueryParams,
    ref: Annotated[str, Path(alias="eventTypeOrID", description="Event type or eventID")],
) -> Response:
    """``/events/ObjectEvent`` lists by type; ``/events/{eventID}`` fetches one event."""
    if ref in EVENT_TYPES:
        return events_where(request, viewer, "eventType", ref)
    extra = set(request.query_params) - {"perPage", "nextPageToken"}
    if extra:
        raise QueryError("an eventID lookup takes no query parameters", place=sorted(extra)[0])

    def by_id(params: dict[str, list[str]]) -> None:
        params.clear()
        params["EQ_eventID"] = [ref]

    page, media = run_query(request, viewer, by_id)
    if not page.events:
        raise NotFoundError(f"no event with eventID {ref!r} visible to this key", place="eventID")
    return events_response(request, page, media)


@router.get(
    "/epcs/{epc:path}/events",
    summary="Every event naming one code (MATCH_anyEPC)",
    description="`epc` is URL-encoded and may be in any form: EPC URI, GS1 Digital Link, GS1 "
    "element string, NMPA trace code or urn:nmpa:code:….\n\n" + QUERY_DOC,
    responses=EVENTS_RESPONSES,
    response_class=Response,
)
def get_epc_events(
    request: Request,
    viewer: ViewerDep,
    _params: QueryParams,
    epc: Annotated[str, Path(description="The code, URL-encoded")],
) -> Response:
    """Events in which ``epc`` appears in any role (epc, parent, child, input, output)."""
    return events_where(request, viewer, "MATCH_anyEPC", epc)
