"""EPCIS 2.0 top-level resources: business steps, dispositions, read points, business locations
and codes, each with its ``/events`` (the SimpleEventQuery parameters apply on top).

* ``GET /bizSteps``, ``GET /dispositions`` — the CBV 2.0 vocabulary (custom URIs work as well);
* ``GET /readPoints``, ``GET /bizLocations``, ``GET /epcs`` — those named by the events the key
  may see, in order, paged with ``perPage`` / ``nextPageToken`` and ``Link: <…>; rel="next"``;
* ``GET /{resource}/{id}`` — its sub-resources (``["events"]``, for discovery);
* ``GET /{resource}/{id}/events`` — its events (``/epcs/{epc}/events`` is in
  :mod:`yaolian.api.epcis`);
* ``GET /`` — the top-level resources; ``OPTIONS /`` — the server's EPCIS headers (discovery).

Identifiers that are URIs go URL-encoded in the path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from yaolian.api.auth import ViewerDep, engine_of
from yaolian.api.epcis import (
    ERRORS,
    EVENTS_RESPONSES,
    QUERY_DOC,
    QueryParams,
    events_where,
    next_link,
)
from yaolian.api.params import wants_html
from yaolian.epcis.cbv import BIZ_STEP, DISPOSITION
from yaolian.store.query import DEFAULT_PER_PAGE, MAX_PER_PAGE
from yaolian.store.resources import Resource, list_resource
from yaolian.store.tx import read_tx

router = APIRouter(tags=["EPCIS 2.0"])
_SUB_RESOURCES = ["events"]
_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {401: ERRORS[401], 400: ERRORS[400]}
_Id = Annotated[str, Path(description="The identifier (a URI goes URL-encoded)")]


def _item_routes(resource: str, parameter: str | None, label: str) -> None:
    """``/{resource}/{id}/events`` (with ``parameter``, the query parameter the path fixes) and
    ``/{resource}/{id}``."""
    if parameter is not None:

        @router.get(
            f"/{resource}/{{value:path}}/events",
            summary=f"Events of one {label}",
            description=QUERY_DOC,
            responses=EVENTS_RESPONSES,
            response_class=Response,
            name=f"{resource}_events",
        )
        def events(
            request: Request, viewer: ViewerDep, _params: QueryParams, value: _Id
        ) -> Response:
            """Events with this value, matching the other query parameters."""
            return events_where(request, viewer, parameter, value)

    @router.get(
        f"/{resource}/{{value:path}}",
        summary=f"Sub-resources of a {label}",
        responses={401: ERRORS[401]},
        name=f"{resource}_item",
    )
    def item(viewer: ViewerDep, value: _Id) -> list[str]:
        """``["events"]`` (EPCIS 2.0 discovery)."""
        return _SUB_RESOURCES


def _vocabulary_routes(resource: str, parameter: str, words: frozenset[str], label: str) -> None:
    """``/{resource}`` lists a CBV vocabulary; its items and their events."""

    @router.get(
        f"/{resource}", summary=f"The CBV {label}s", responses={401: ERRORS[401]}, name=resource
    )
    def vocabulary(viewer: ViewerDep) -> list[str]:
        """Every word of the CBV 2.0 vocabulary; custom values (URIs) are accepted too."""
        return sorted(words)

    _item_routes(resource, parameter, label)


def _named_routes(resource: Resource, parameter: str | None, label: str) -> None:
    """``/{resource}`` lists what the caller's events name, a page at a time; its items and
    (with ``parameter``) their events."""

    @router.get(
        f"/{resource}",
        summary=f"The {label}s named by the events this key may see",
        responses=_LIST_RESPONSES,
        name=resource,
    )
    def listing(
        request: Request,
        viewer: ViewerDep,
        perPage: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Items per page")] = (
            DEFAULT_PER_PAGE
        ),
        nextPageToken: Annotated[
            str | None, Query(description="Token from the previous page's Link rel=next header")
        ] = None,
    ) -> Response:
        """One page, in order; ``Link: <…>; rel="next"`` when there are more."""
        with read_tx(engine_of(request)) as conn:
            page = list_resource(conn, resource, viewer, per_page=perPage, token=nextPageToken)
        return JSONResponse(page.items, headers=next_link(request, page))

    _item_routes(resource, parameter, label)


TOP_LEVEL = [
    "capture",
    "events",
    "eventTypes",
    "epcs",
    "bizSteps",
    "bizLocations",
    "readPoints",
    "dispositions",
    "queries",
]


@router.get(
    "/",
    summary="The top-level resources (EPCIS 2.0 discovery)",
    response_model=list[str],
    responses={303: {"description": "A browser (Accept: text/html) is sent to the web pages"}},
)
def get_root(request: Request) -> list[str] | Response:
    """The EPCIS 2.0 top-level resources this server offers (no key needed); a browser asking
    for HTML is redirected to the web pages (``/web``)."""
    if wants_html(request):
        return RedirectResponse("/web", status_code=303)
    return TOP_LEVEL


@router.options("/", status_code=204, summary="EPCIS and CBV versions, capture limits")
def options_root() -> Response:
    """204; the ``GS1-EPCIS-Version``, ``GS1-CBV-Version``, ``GS1-EPCIS-Capture-Limit`` …
    headers every response carries tell the server's settings."""
    return Response(status_code=204)


_vocabulary_routes("bizSteps", "EQ_bizStep", BIZ_STEP.words, "business step")
_vocabulary_routes("dispositions", "EQ_disposition", DISPOSITION.words, "disposition")
_named_routes("readPoints", "EQ_readPoint", "read point")
_named_routes("bizLocations", "EQ_bizLocation", "business location")
_named_routes("epcs", None, "code")  # its /events route is api.epcis's /epcs/{epc}/events
