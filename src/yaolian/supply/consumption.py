"""Consumption (消耗) and months/days of supply, from the ledger's movements.

Consumption is what left stock to patients (dispensing and retail sales, split-sale units
converted to packs). The average monthly consumption follows OpenLMIS (standards.md §5): each
period's consumption is scaled by the days the site had stock,
``adjusted = consumed × days_in_period / (days_in_period − stockout_days)`` (unchanged when the
site was out of stock the whole period, as OpenLMIS does), and AMC is the mean of the last ``n``
periods. Periods are rolling 30-day windows ending on ``as_of`` so the figure is current every
day. Days of supply = stock on hand / (AMC / 30); months of supply = stock on hand / AMC.
Manufacturer stock (sites of kind ``factory``) and stock in transit are reported apart from
stock in the distribution and use network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import polars as pl
from sqlalchemy import Connection, Integer, case, func, literal, select

from yaolian.errors import ValidationError
from yaolian.store.schema import product as product_table
from yaolian.store.schema import site, supply_movement
from yaolian.supply.ledger import (
    ON_HAND_KINDS,
    TRANSIT_KINDS,
    Kind,
    as_of_day,
    day_date,
    pack_equivalent,
    quantity,
)

PERIOD_DAYS = 30
MANUFACTURER_SITE_KINDS = ("factory", "manufacturer")
Period = Literal["day", "week", "month"]
Level = Literal["site", "region", "national"]
UNKNOWN_REGION = "?"


def movement_frame(
    conn: Connection,
    first_day: int,
    last_day: int,
    *,
    product: str | None = None,
    region: str | None = None,
) -> pl.DataFrame:
    """Per product × site × day: on-hand change, in-transit change and packs consumed, with the
    site's region and kind (one SQL group-by; days from ``first_day`` to ``last_day``)."""
    kinds_on_hand = [int(k) for k in ON_HAND_KINDS]
    kinds_transit = [int(k) for k in TRANSIT_KINDS]
    m = supply_movement.c
    equivalent = pack_equivalent()
    region_col = func.coalesce(site.c.region, UNKNOWN_REGION).label("region")
    kind_col = func.coalesce(site.c.kind, "").label("site_kind")
    delta = func.sum(case((m.kind.in_(kinds_on_hand), equivalent), else_=0.0)).label("delta")
    transit = func.sum(case((m.kind.in_(kinds_transit), m.packs), else_=0.0)).label("transit")
    consumed = func.sum(case((m.kind == int(Kind.DISPENSE), -equivalent), else_=0.0)).label(
        "consumed"
    )

    def query(day_col: Any, where: Any) -> pl.DataFrame:
        q = (
            select(m.product, m.site, region_col, kind_col, day_col, delta, transit, consumed)
            .outerjoin(site, site.c.location_id == m.site)
            .outerjoin(product_table, product_table.c.product_code == m.product)
            .where(where)
            .group_by(
                m.product,
                m.site,
                site.c.region,
                site.c.kind,
                *([m.day] if day_col is m.day else []),
            )
        )
        if product:
            q = q.where(m.product == product)
        if region:
            q = q.where(site.c.region == region)
        return pl.DataFrame(conn.execute(q).all(), schema=_FRAME_SCHEMA, orient="row")

    # Everything before first_day folds into one opening row on first_day - 1.
    opening = query(literal(first_day - 1, Integer).label("day"), m.day < first_day)
    window = query(m.day, m.day.between(first_day, last_day))
    return pl.concat([opening.with_columns(pl.lit(0.0).alias("consumed")), window])


_FRAME_SCHEMA = {
    "product": pl.Utf8,
    "site": pl.Utf8,
    "region": pl.Utf8,
    "site_kind": pl.Utf8,
    "day": pl.Int64,
    "delta": pl.Float64,
    "transit": pl.Float64,
    "consumed": pl.Float64,
}


def daily_levels(frame: pl.DataFrame, first_day: int, last_day: int) -> pl.DataFrame:
    """A full grid product × site × day (``first_day``..``last_day``) with end-of-day stock on
    hand (``level``), in transit and packs consumed that day."""
    pairs = frame.select(["product", "site", "region", "site_kind"]).unique()
    days = pl.DataFrame({"day": pl.int_range(first_day - 1, last_day + 1, eager=True)})
    grid = pairs.join(days, how="cross")
    full = grid.join(
        frame.select(["product", "site", "day", "delta", "transit", "consumed"]),
        on=["product", "site", "day"],
        how="left",
    ).fill_null(0.0)
    full = full.sort(["product", "site", "day"]).with_columns(
        pl.col("delta").cum_sum().over(["product", "site"]).alias("level"),
        pl.col("transit").cum_sum().over(["product", "site"]).alias("in_transit"),
    )
    return full.filter(pl.col("day") >= first_day).drop(["delta", "transit"])


def consumption(
    conn: Connection,
    *,
    start: date,
    end: date,
    period: Period = "day",
    product: str | None = None,
    region: str | None = None,
    by_site: bool = True,
) -> pl.DataFrame:
    """Packs consumed per product × site (or region) × period between ``start`` and ``end``."""
    if period not in ("day", "week", "month"):
        raise ValidationError(f"unknown period {period!r}; use day, week or month", place="period")
    lo, hi = as_of_day(start), as_of_day(end)
    if hi < lo:
        raise ValidationError("end is before start", place="end")
    frame = movement_frame(conn, lo, hi, product=product, region=region).filter(pl.col("day") >= lo)
    frame = frame.with_columns(
        (pl.lit(date(1970, 1, 1)) + pl.duration(days=pl.col("day"))).alias("date")
    )
    every = {"day": "1d", "week": "1w", "month": "1mo"}[period]
    keys = ["product", "region"] + (["site"] if by_site else [])
    frame = frame.with_columns(pl.col("date").dt.truncate(every).alias("period_start"))
    return (
        frame.group_by([*keys, "period_start"])
        .agg(pl.col("consumed").sum())
        .filter(pl.col("consumed") != 0)
        .sort([*keys, "period_start"])
    )


@dataclass(frozen=True, slots=True)
class SupplyLine:
    """Stock, AMC and days/months of supply of one product at a site, region or nationally."""

    product: str
    level: Level
    where: str  # site location id, region code, or "national"
    on_hand: float
    in_transit: float
    manufacturer_stock: float
    amc: float  # stockout-adjusted average monthly consumption, packs
    stockout_days: int  # days out of stock in the last n periods (summed over sites)
    days_of_supply: float | None  # None when nothing is consumed
    months_of_supply: float | None


def adjusted_amc(consumed: list[float], stockout_days: list[int], days: int = PERIOD_DAYS) -> float:
    """OpenLMIS stockout-adjusted AMC; one consumption and stockout-day count per period."""
    if not consumed:
        return 0.0
    if len(consumed) != len(stockout_days):
        raise ValidationError("one stockout count per period is needed", place="stockout_days")
    adjusted = [
        c * days / (days - s) if 0 <= s < days else c
        for c, s in zip(consumed, stockout_days, strict=True)
    ]
    return sum(adjusted) / len(adjusted)


def site_amc_frame(levels: pl.DataFrame, last_day: int, periods: int) -> pl.DataFrame:
    """Per product × site: stock, in-transit and OpenLMIS AMC over ``periods`` 30-day periods
    ending on ``last_day`` (from :func:`daily_levels`)."""
    first = last_day - periods * PERIOD_DAYS + 1
    window = levels.filter(pl.col("day") >= first).with_columns(
        ((last_day - pl.col("day")) // PERIOD_DAYS).alias("period"),
        (pl.col("level") <= 0).cast(pl.Int64).alias("out"),
    )
    per_period = (
        window.group_by(["product", "site", "period"])
        .agg(pl.col("consumed").sum(), pl.col("out").sum().alias("stockout"))
        .with_columns(
            pl.when(pl.col("stockout") < PERIOD_DAYS)
            .then(pl.col("consumed") * PERIOD_DAYS / (PERIOD_DAYS - pl.col("stockout")))
            .otherwise(pl.col("consumed"))
            .alias("adjusted")
        )
    )
    amc = per_period.group_by(["product", "site"]).agg(
        (pl.col("adjusted").sum() / periods).alias("amc"),
        pl.col("stockout").sum().alias("stockout_days"),
    )
    last = levels.filter(pl.col("day") == last_day).select(
        ["product", "site", "region", "site_kind", "level", "in_transit"]
    )
    return last.join(amc, on=["product", "site"], how="left").fill_null(0)


def supply_lines(
    conn: Connection,
    *,
    as_of: date | datetime | None = None,
    level: Level = "site",
    product: str | None = None,
    region: str | None = None,
    periods: int = 3,
) -> list[SupplyLine]:
    """Stock, AMC (last ``periods`` 30-day periods, stockout-adjusted) and days/months of supply
    per product at site, region or national level; manufacturer stock and in-transit apart."""
    if level not in ("site", "region", "national"):
        raise ValidationError(
            f"unknown level {level!r}; use site, region or national", place="level"
        )
    if periods < 1:
        raise ValidationError("periods must be at least 1", place="periods")
    last = as_of_day(as_of)
    first = last - periods * PERIOD_DAYS + 1
    frame = movement_frame(conn, first, last, product=product, region=region)
    if frame.is_empty():
        return []
    per_site = site_amc_frame(daily_levels(frame, first, last), last, periods).with_columns(
        pl.col("site_kind").is_in(list(MANUFACTURER_SITE_KINDS)).alias("is_mfr")
    )
    stock_expr = pl.when(pl.col("is_mfr")).then(0.0).otherwise(pl.col("level"))
    mfr_expr = pl.when(pl.col("is_mfr")).then(pl.col("level")).otherwise(0.0)
    per_site = per_site.with_columns(stock_expr.alias("on_hand"), mfr_expr.alias("mfr"))
    if level == "site":
        grouped = per_site.with_columns(pl.col("site").alias("where"))
    else:
        key = pl.col("region") if level == "region" else pl.lit("national")
        grouped = (
            per_site.with_columns(key.alias("where"))
            .group_by(["product", "where"])
            .agg(
                pl.col("on_hand").sum(),
                pl.col("in_transit").sum(),
                pl.col("mfr").sum(),
                pl.col("amc").sum(),
                pl.col("stockout_days").sum(),
            )
        )
    out = []
    for r in grouped.sort(["product", "where"]).iter_rows(named=True):
        amc, on_hand = quantity(r["amc"]), quantity(r["on_hand"])
        out.append(
            SupplyLine(
                product=r["product"],
                level=level,
                where=r["where"],
                on_hand=on_hand,
                in_transit=quantity(r["in_transit"]),
                manufacturer_stock=quantity(r["mfr"]),
                amc=amc,
                stockout_days=int(r["stockout_days"]),
                days_of_supply=quantity(on_hand / (amc / PERIOD_DAYS)) if amc > 0 else None,
                months_of_supply=quantity(on_hand / amc) if amc > 0 else None,
            )
        )
    return out


def as_of_date(as_of: date | datetime | None) -> date:
    """The ledger date of ``as_of``."""
    return day_date(as_of_day(as_of))
