"""Master data over HTTP: ``POST /masterdata`` upserts a document of enterprises, sites and
products (enterprise keys only their own; regulators and admins any), ``GET /masterdata``
returns the registry in the same shape, ``GET /me`` what the caller's key is (role, enterprise,
own sites). Writes go to the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.store.access import describe_viewer
from yaolian.store.masterfile import SECTIONS, MasterData, export_master_data, load_master_data
from yaolian.store.tx import write_tx

router = APIRouter(tags=["masterdata"])


@router.post("/masterdata")
def post_masterdata(request: Request, body: MasterData, viewer: WriterDep) -> dict[str, int]:
    """Upsert every row in one transaction (any bad or foreign row: nothing written); alerts
    of stored events are re-judged with the new owners, places, units and storage ranges."""
    with write_tx(engine_of(request)) as conn:
        loaded = load_master_data(conn, body, viewer)
        audit(conn, viewer, "masterdata.load", None, loaded.as_dict())
    return loaded.as_dict()


@router.get("/masterdata")
def get_masterdata(
    request: Request,
    _viewer: ViewerDep,
    section: Annotated[
        list[Literal["enterprises", "sites", "products"]] | None,
        Query(description="Only these sections (repeatable); default all"),
    ] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Registered enterprises, sites and products, as a document ``POST /masterdata`` reads."""
    return export_master_data(engine_of(request), section or SECTIONS)


@router.get("/me")
def get_me(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """The caller's key: ``role``, ``sees_all`` (regulators and admins see every event), its
    ``enterprise`` and that enterprise's ``sites`` (where it reports events, counts stock and
    posts demands and offers)."""
    return describe_viewer(engine_of(request), viewer)
