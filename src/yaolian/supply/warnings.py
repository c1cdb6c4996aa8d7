"""Shortage early warnings (短缺预警): the product × region risks at or above a level, with
expected stockout date, lead time and reasons; and the naive baseline the evaluation compares
against (days of supply < 14 on the last-30-day average consumption)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Connection

from yaolian.errors import ValidationError
from yaolian.supply.consumption import MANUFACTURER_SITE_KINDS, UNKNOWN_REGION, movement_frame
from yaolian.supply.ledger import as_of_day, day_date
from yaolian.supply.risk import LEVELS, Level, Risk, assess

NAIVE_DAYS = 14.0
NAIVE_WINDOW = 30


@dataclass(frozen=True)
class Warning:
    """One shortage warning for a product in a region."""

    product: str
    region: str
    as_of: date
    level: Level
    score: float
    expected_stockout: date | None
    lead_days: int | None  # days from as_of to the expected stockout
    days_of_supply: float | None
    demand_per_day: float
    stock: float
    reasons: list[str] = field(default_factory=list)
    method: str = "risk"  # risk (yaolian) or naive (baseline)
    reasons_zh: list[str] = field(default_factory=list)  # the reasons in Chinese (the pages)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "product": self.product,
            "region": self.region,
            "as_of": self.as_of.isoformat(),
            "level": self.level,
            "score": round(self.score, 1),
            "expected_stockout": self.expected_stockout.isoformat()
            if self.expected_stockout
            else None,
            "lead_days": self.lead_days,
            "days_of_supply": None
            if self.days_of_supply is None
            else round(self.days_of_supply, 1),
            "demand_per_day": round(self.demand_per_day, 3),
            "stock": self.stock,
            "reasons": self.reasons,
            "reasons_zh": self.reasons_zh,
            "method": self.method,
        }


def _from_risk(r: Risk) -> Warning:
    return Warning(
        r.product,
        r.region,
        r.as_of,
        r.level,
        r.score,
        r.expected_stockout,
        r.lead_days,
        r.days_of_supply,
        r.demand_per_day,
        r.stock + r.in_transit,
        list(r.reasons),
        reasons_zh=list(r.reasons_zh),
    )


def compute_warnings(
    conn: Connection,
    as_of: date | datetime | None = None,
    *,
    min_level: Level = "yellow",
    product: str | None = None,
    region: str | None = None,
) -> list[Warning]:
    """Warnings for every product × region at or above ``min_level`` on ``as_of``, most urgent
    first (see :mod:`yaolian.supply.risk` for the model)."""
    if min_level not in LEVELS:
        raise ValidationError(
            f"unknown level {min_level!r}; use {', '.join(LEVELS)}", place="min_level"
        )
    floor = LEVELS.index(min_level)
    risks = assess(conn, as_of, product=product, region=region)
    return [_from_risk(r) for r in risks if LEVELS.index(r.level) >= max(floor, 1)]


def naive_warnings(
    conn: Connection,
    as_of: date | datetime | None = None,
    *,
    product: str | None = None,
    region: str | None = None,
) -> list[Warning]:
    """Baseline: a warning wherever a region's days of supply on the plain last-30-day average
    consumption fall below 14 (stock on hand + in transit, manufacturers excluded)."""
    day = as_of_day(as_of)
    today = day_date(day)
    window = movement_frame(conn, day - NAIVE_WINDOW + 1, day, product=product, region=region)
    frame = window.filter(
        ~pl.col("site_kind").is_in(list(MANUFACTURER_SITE_KINDS))
        & (pl.col("region") != UNKNOWN_REGION)
    )
    per_region = frame.group_by(["product", "region"]).agg(
        (pl.col("delta").sum() + pl.col("transit").sum()).alias("stock"),
        pl.col("consumed").sum().alias("consumed"),
    )
    out = []
    for prod, reg, stock, consumed in per_region.iter_rows():
        if consumed <= 0:
            continue
        rate = consumed / NAIVE_WINDOW
        dos = max(stock, 0.0) / rate
        if dos < NAIVE_DAYS:
            out.append(
                Warning(
                    prod,
                    reg,
                    today,
                    "red" if dos < 7 else "orange",
                    100.0 * (1 - dos / NAIVE_DAYS),
                    today + timedelta(days=int(dos)),
                    int(dos),
                    dos,
                    rate,
                    stock,
                    [f"{dos:.1f} days of supply on the last-30-day average"],
                    "naive",
                    [f"按近 30 天平均用量可供 {dos:.1f} 天"],
                )
            )
    out.sort(key=lambda w: (-w.score, w.product, w.region))
    return out
