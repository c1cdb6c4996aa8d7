"""HTTP interface of the supply layer: stock, consumption, forecasts, warnings,
discontinuation reports, 供需对接 posts and matches, reserves. Reads need an API key; writes a
writer key and go to the audit log.

Tenants: an enterprise key sees the stock, consumption, days of supply and stock counts of its
own sites (regional and national figures, forecasts, warnings, discontinuation reports and the
供需对接 board are shared with every key), records stock counts, demands and offers for its own
sites only, and files discontinuation reports for products it holds or makes. Reserve plans
and dispatch orders are the regulators': an enterprise key sees the plans held at its sites and
their orders. Regulator and admin keys see and do everything."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection

from yaolian.api.auth import ViewerDep, WriterDep, audit, engine_of
from yaolian.api.params import RowId
from yaolian.errors import NotFoundError
from yaolian.store.access import Viewer, own_sites, require_authority, require_own_site
from yaolian.store.schema import PRODUCT_CODE_MAX
from yaolian.store.tx import read_tx, write_tx
from yaolian.supply import consumption as cons
from yaolian.supply import forecast as fc
from yaolian.supply import ledger, matching, reserves, signals, warnings
from yaolian.supply.risk import LEVELS

router = APIRouter(tags=["supply"])
AsOf = Annotated[date | None, Query(description="Day (YYYY-MM-DD); default today")]
ProductCode = Annotated[str, StringConstraints(min_length=1, max_length=PRODUCT_CODE_MAX)]
"""A 药品标识码 or GTIN-14 (at most 20 characters)."""


@router.get("/supply/stock")
def get_stock(
    request: Request,
    viewer: ViewerDep,
    as_of: AsOf = None,
    product: str | None = None,
    site: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """Stock per product × site (an enterprise key: its own sites): packs on hand, opened ones
    included; units sold from opened packs (拆零, negative); ``net_packs``, what that leaves
    in packs (on hand + units / units per pack); packs in transit."""
    with read_tx(engine_of(request)) as conn:
        lines = ledger.stock(conn, as_of=as_of, product=product, site_id=site, region=region)
        own = own_sites(conn, viewer)
    return {"stock": [_stock_dict(line) for line in lines if own is None or line.site in own]}


def _stock_dict(line: ledger.StockLine) -> dict[str, Any]:
    return {
        "product": line.product,
        "site": line.site,
        "region": line.region,
        "site_kind": line.site_kind,
        "on_hand": line.on_hand,
        "units": line.units,
        "net_packs": line.net_packs,
        "in_transit": line.in_transit,
    }


@router.get("/supply/consumption")
def get_consumption(
    request: Request,
    viewer: ViewerDep,
    start: date,
    end: date,
    period: Literal["day", "week", "month"] = "day",
    product: str | None = None,
    region: str | None = None,
    by_site: bool = True,
) -> dict[str, Any]:
    """Packs consumed per product × site (an enterprise key: its own sites) or region × period."""
    with read_tx(engine_of(request)) as conn:
        own = own_sites(conn, viewer) if by_site else None
        frame = cons.consumption(
            conn,
            start=start,
            end=end,
            period=period,
            product=product,
            region=region,
            by_site=by_site,
        )
    if own is not None:
        frame = frame.filter(pl.col("site").is_in(sorted(own)))
    return {"consumption": _rows(frame)}


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
        for row in frame.iter_rows(named=True)
    ]


@router.get("/supply/days-of-supply")
def get_days_of_supply(
    request: Request,
    viewer: ViewerDep,
    as_of: AsOf = None,
    level: Literal["site", "region", "national"] = "region",
    product: str | None = None,
    region: str | None = None,
    periods: Annotated[int, Query(ge=1, le=24)] = 3,
) -> dict[str, Any]:
    """Stock, stockout-adjusted AMC and days/months of supply (per site: an enterprise key's
    own sites)."""
    with read_tx(engine_of(request)) as conn:
        lines = cons.supply_lines(
            conn, as_of=as_of, level=level, product=product, region=region, periods=periods
        )
        own = own_sites(conn, viewer) if level == "site" else None
    return {
        "lines": [
            {
                "product": x.product,
                "level": x.level,
                "where": x.where,
                "on_hand": x.on_hand,
                "in_transit": x.in_transit,
                "manufacturer_stock": x.manufacturer_stock,
                "amc": x.amc,
                "stockout_days": x.stockout_days,
                "days_of_supply": x.days_of_supply,
                "months_of_supply": x.months_of_supply,
            }
            for x in lines
            if own is None or x.where in own
        ]
    }


@router.get("/supply/forecasts")
def get_forecasts(
    request: Request,
    _viewer: ViewerDep,
    as_of: AsOf = None,
    product: str | None = None,
    region: str | None = None,
    horizon_weeks: Annotated[int, Query(ge=1, le=52)] = 13,
) -> dict[str, Any]:
    """Weekly demand forecasts per product × region with interval and seasonal-naive baseline."""
    with read_tx(engine_of(request)) as conn:
        run = fc.forecast_demand(
            conn, as_of=as_of, product=product, region=region, horizon_weeks=horizon_weeks
        )
    return {"forecasts": [f.as_dict() for f in run.forecasts.values()], "timings": run.timings}


@router.get("/supply/warnings")
def get_warnings(
    request: Request,
    _viewer: ViewerDep,
    as_of: AsOf = None,
    min_level: Literal["yellow", "orange", "red"] = "yellow",
    product: str | None = None,
    region: str | None = None,
    method: Literal["risk", "naive"] = "risk",
) -> dict[str, Any]:
    """Shortage warnings, most urgent first, with reasons (or the naive baseline)."""
    with read_tx(engine_of(request)) as conn:
        if method == "naive":
            found = warnings.naive_warnings(conn, as_of, product=product, region=region)
        else:
            found = warnings.compute_warnings(
                conn, as_of, min_level=min_level, product=product, region=region
            )
    return {"warnings": [w.as_dict() for w in found], "levels": list(LEVELS)}


class DiscontinuationIn(BaseModel):
    """A 停产报告 as the holder filed it: product, the filing's date (or aware time), when
    production stops, why, and the stock left."""

    product: ProductCode
    holder: str = Field(min_length=1)
    filed_on: date | AwareDatetime
    stop_date: date
    reason: str = Field(min_length=1)
    remaining_packs: float = Field(ge=0)


@router.get("/supply/discontinuations")
def get_discontinuations(
    request: Request,
    _viewer: ViewerDep,
    product: str | None = None,
    withdrawn: Annotated[bool, Query(description="Withdrawn reports too")] = False,
) -> dict[str, Any]:
    """Discontinuation reports in force (with ``withdrawn``: those withdrawn too), newest
    first."""
    with read_tx(engine_of(request)) as conn:
        found = signals.discontinuations(conn, product=product, include_withdrawn=withdrawn)
    return {"discontinuations": [d.as_dict() for d in found]}


@router.post("/supply/discontinuations", status_code=201)
def post_discontinuation(
    request: Request, viewer: WriterDep, body: DiscontinuationIn
) -> dict[str, Any]:
    """Record a discontinuation report; risk as of its filing date or later reflects it. An
    enterprise key files as ``holder`` = its own 统一社会信用代码, for a product it holds or
    makes."""
    with write_tx(engine_of(request)) as conn:
        report = signals.file_discontinuation(
            conn, **body.model_dump(), enterprise_id=viewer.reporter
        )
        audit(conn, viewer, "supply.discontinuation", body.product, report.as_dict())
    return report.as_dict()


class WithdrawalIn(BaseModel):
    """The day (or aware time) the holder withdrew its report: production resumes."""

    model_config = ConfigDict(extra="forbid")

    withdrawn_on: date | AwareDatetime


@router.post("/supply/discontinuations/{report_id}/withdraw")
def withdraw_discontinuation(
    request: Request, viewer: WriterDep, report_id: RowId, body: WithdrawalIn
) -> dict[str, Any]:
    """Withdraw a discontinuation report as of ``withdrawn_on`` (恢复生产): risk as of that day
    or later no longer counts it. An enterprise key: only a report it filed itself."""
    with write_tx(engine_of(request)) as conn:
        report = signals.withdraw_discontinuation(
            conn, report_id, withdrawn_on=body.withdrawn_on, enterprise_id=viewer.reporter
        )
        audit(conn, viewer, "supply.discontinuation.withdraw", report.product, report.as_dict())
    return report.as_dict()


class StockTakeIn(BaseModel):
    """A stock-take (盘点) at one site: packs counted per product at a time."""

    site: str = Field(min_length=1)
    counted_at: AwareDatetime
    counts: dict[ProductCode, float] = Field(min_length=1)
    counted_by: str | None = None


@router.get("/supply/stocktakes")
def get_stock_takes(
    request: Request, viewer: ViewerDep, site: str | None = None, differences: bool = False
) -> dict[str, Any]:
    """Recorded stock-take lines against book stock, newest first; ``differences``: only the
    lines that differ (盘盈/盘亏). An enterprise key: its own sites."""
    with read_tx(engine_of(request)) as conn:
        lines = ledger.stock_takes(conn, site, only_differences=differences)
        own = own_sites(conn, viewer)
    return {"stocktakes": [x.as_dict() for x in lines if own is None or x.site in own]}


@router.post("/supply/stocktakes", status_code=201)
def post_stock_take(request: Request, viewer: WriterDep, body: StockTakeIn) -> dict[str, Any]:
    """Record a stock-take at one of the key's sites; each line comes back with the book stock
    and the difference."""
    with write_tx(engine_of(request)) as conn:
        require_own_site(conn, viewer, body.site, "/site")
        lines = ledger.record_stock_take(
            conn, body.site, body.counts, counted_at=body.counted_at, counted_by=body.counted_by
        )
        result = {"stocktakes": [line.as_dict() for line in lines]}
        audit(conn, viewer, "supply.stocktake", body.site, result)
    return result


class DemandIn(BaseModel):
    """A hospital's demand post."""

    site: str = Field(min_length=1)
    product: ProductCode
    quantity: float = Field(gt=0)
    needed_by: date


class OfferIn(BaseModel):
    """A supply offer."""

    site: str = Field(min_length=1)
    product: ProductCode
    quantity: float = Field(gt=0)
    available_from: date
    expiry: date | None = None
    lot: str | None = None


@router.get("/supply/demands")
def get_demands(request: Request, _viewer: ViewerDep) -> dict[str, Any]:
    """Open demand posts."""
    with read_tx(engine_of(request)) as conn:
        return {"demands": matching.list_posts(conn, "demand")}


@router.post("/supply/demands", status_code=201)
def post_demand(request: Request, viewer: WriterDep, body: DemandIn) -> dict[str, Any]:
    """Post a demand for one of the key's sites."""
    with write_tx(engine_of(request)) as conn:
        require_own_site(conn, viewer, body.site, "/site")
        post_id = matching.post_demand(
            conn,
            site_id=body.site,
            product=body.product,
            quantity=body.quantity,
            needed_by=body.needed_by,
        )
        audit(conn, viewer, "supply.demand", body.product, {"id": post_id})
    return {"id": post_id}


@router.get("/supply/offers")
def get_offers(request: Request, _viewer: ViewerDep) -> dict[str, Any]:
    """Open supply offers."""
    with read_tx(engine_of(request)) as conn:
        return {"offers": matching.list_posts(conn, "offer")}


@router.post("/supply/offers", status_code=201)
def post_offer(request: Request, viewer: WriterDep, body: OfferIn) -> dict[str, Any]:
    """Post a supply offer from one of the key's sites."""
    with write_tx(engine_of(request)) as conn:
        require_own_site(conn, viewer, body.site, "/site")
        post_id = matching.post_offer(
            conn,
            site_id=body.site,
            product=body.product,
            quantity=body.quantity,
            available_from=body.available_from,
            expiry=body.expiry,
            lot=body.lot,
        )
        audit(conn, viewer, "supply.offer", body.product, {"id": post_id})
    return {"id": post_id}


@router.post("/supply/{kind}/{post_id}/close")
def close_post(
    request: Request, viewer: WriterDep, kind: Literal["demands", "offers"], post_id: RowId
) -> dict[str, Any]:
    """Close a demand or offer of one of the key's sites (met, or no longer wanted): it leaves
    the board and the matching."""
    post = kind.removesuffix("s")
    with write_tx(engine_of(request)) as conn:
        require_own_site(conn, viewer, matching.post_site(conn, post, post_id), "post_id")
        matching.close_post(conn, post, post_id)
        audit(conn, viewer, f"supply.{post}.close", str(post_id), None)
    return {"id": post_id, "status": "closed"}


@router.get("/supply/matches")
def get_matches(
    request: Request,
    _viewer: ViewerDep,
    product: str | None = None,
    kind: Literal["posts", "transfers"] = "posts",
    as_of: AsOf = None,
) -> dict[str, Any]:
    """Optimal matches of demand posts to offers, or transfer suggestions between regions."""
    with read_tx(engine_of(request)) as conn:
        if kind == "transfers":
            found, unmet = matching.suggest_transfers(conn, as_of, product=product)
        else:
            found, unmet = matching.match_posts(conn, product=product)
    return {"matches": [m.as_dict() for m in found], "unmet": unmet}


class ReservePlanIn(BaseModel):
    """A reserve plan."""

    product: ProductCode
    level: Literal["central", "provincial"]
    target: float = Field(gt=0)
    site: str = Field(min_length=1)


class DispatchIn(BaseModel):
    """A dispatch order from a plan's holding site."""

    to_site: str = Field(min_length=1)
    packs: float = Field(gt=0)


@router.get("/reserves")
def get_reserves(
    request: Request, viewer: ViewerDep, level: Literal["central", "provincial"] | None = None
) -> dict[str, Any]:
    """Reserve plans with stock against target (an enterprise key: those held at its sites)."""
    with read_tx(engine_of(request)) as conn:
        plans = reserves.reserve_status(conn, level)
        own = own_sites(conn, viewer)
    return {"reserves": [p.as_dict() for p in plans if own is None or p.site in own]}


@router.post("/reserves", status_code=201)
def post_reserve(request: Request, viewer: WriterDep, body: ReservePlanIn) -> dict[str, Any]:
    """Create a reserve plan (储备计划下达: a regulator key)."""
    require_authority(viewer, "reserve plans")
    with write_tx(engine_of(request)) as conn:
        plan_id = reserves.create_plan(
            conn, product=body.product, level=body.level, target=body.target, site_id=body.site
        )
        audit(conn, viewer, "reserve.plan", body.product, body.model_dump())
    return {"id": plan_id}


@router.post("/reserves/{plan_id}/dispatch", status_code=201)
def post_dispatch(
    request: Request, viewer: WriterDep, plan_id: RowId, body: DispatchIn
) -> dict[str, Any]:
    """Dispatch reserve stock (储备调度: a regulator key): a shipping event is captured and the
    order recorded."""
    require_authority(viewer, "reserve dispatch orders")
    return reserves.dispatch(
        engine_of(request),
        plan_id,
        to_site=body.to_site,
        packs=body.packs,
        then=lambda conn, order: audit(conn, viewer, "reserve.dispatch", str(plan_id), order),
    )


@router.get("/reserves/{plan_id}/dispatches")
def get_dispatches(request: Request, viewer: ViewerDep, plan_id: RowId) -> dict[str, Any]:
    """Dispatch orders of a plan (an enterprise key: of a plan held at its sites)."""
    with read_tx(engine_of(request)) as conn:
        _require_plan_site(conn, viewer, plan_id)
        return {"dispatches": reserves.dispatches(conn, plan_id)}


def _require_plan_site(conn: Connection, viewer: Viewer, plan_id: int) -> None:
    own = own_sites(conn, viewer)
    if own is not None and reserves.plan_site(conn, plan_id) not in own:
        raise NotFoundError(f"no reserve plan {plan_id} held at this key's sites", place="plan_id")
