"""Demand forecasts per product × region with statsforecast, model chosen per series by
cross-validation, with prediction intervals and a seasonal-naive baseline beside each.

Daily consumption is aggregated to ISO weeks before modelling: regional drug demand is sparse
day by day (many zero days), weekly sums are what replenishment plans in, and a week-level fit
costs a seventh of a day-level one — the difference between minutes and seconds for 10,000
series (``benchmarks/supply.py`` measures it). Each series is classed by its average demand
interval (ADI, Syntetos–Boylan): ADI > 1.32 is *intermittent* and competes CrostonClassic, ADIDA,
IMAPA and TSB; otherwise *dense* competes AutoETS (additive error, trend chosen by AICc), Theta
and — given a year of history — seasonal exponential smoothing with a 52-week season (two years
are too short for Theta's or ETS's own seasonality tests, which then fit no season at all).
``StatsForecast.cross_validation`` (rolling origin; models that can be updated with new data
are not refitted between windows) scores every candidate by MAE; the best is kept per series.
Prediction intervals are conformal: the chosen model's absolute cross-validation errors give
the half-width at each level. SeasonalNaive(52) (Naive when the history is shorter than a year)
is reported beside every forecast with its own cross-validation MAE.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sqlalchemy import Connection, insert

from yaolian.errors import ValidationError
from yaolian.store.schema import supply_forecast
from yaolian.supply.consumption import movement_frame
from yaolian.supply.ledger import as_of_day, day_date, day_number

SEASON_WEEKS = 52
ADI_INTERMITTENT = 1.32  # Syntetos & Boylan (2005) cut-off on the average demand interval
INTERMITTENT_MODELS = ("CrostonClassic", "ADIDA", "IMAPA", "TSB")
DENSE_MODELS = ("AutoETS", "Theta", "SeasonalES")
BASELINE = "SeasonalNaive"


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """One series' forecast: weekly means (packs) from ``start``, interval, model and baseline."""

    series: str
    model: str
    kind: str  # intermittent, dense, zero or short
    start: date  # first forecast week (Monday)
    mean: list[float]
    lo: list[float]
    hi: list[float]
    baseline: list[float]
    mae: float | None  # cross-validation MAE of the chosen model
    baseline_mae: float | None
    level: int = 80

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "series": self.series,
            "model": self.model,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "mean": self.mean,
            "lo": self.lo,
            "hi": self.hi,
            "level": self.level,
            "baseline": self.baseline,
            "mae": self.mae,
            "baseline_mae": self.baseline_mae,
        }

    def daily_rate(self, weeks: int | None = None) -> float:
        """Mean packs per day over the first ``weeks`` forecast weeks (all by default)."""
        values = self.mean[:weeks] if weeks else self.mean
        return float(sum(values)) / (7 * len(values)) if values else 0.0


@dataclass
class ForecastRun:
    """All series' forecasts plus how long each stage took (seconds)."""

    forecasts: dict[str, SeriesForecast]
    timings: dict[str, float] = field(default_factory=dict)


def weekly(daily: pl.DataFrame, end: date | None = None) -> pl.DataFrame:
    """Daily ``(unique_id, ds: date, y)`` summed to weeks starting Monday, up to the last whole
    week ending on or before ``end`` (default: the last day in the frame), zero weeks filled
    between each series' first week and that last week."""
    if daily.is_empty():
        return daily
    last_day: date = end or daily["ds"].max()  # type: ignore[assignment]
    last = last_day - timedelta(days=(last_day.weekday() + 1) % 7 + 6)  # Monday of last whole week
    daily = daily.filter(pl.col("ds") < last + timedelta(days=7))
    frame = (
        daily.with_columns(pl.col("ds").dt.truncate("1w"))
        .group_by(["unique_id", "ds"])
        .agg(pl.col("y").sum())
    )
    firsts = frame.group_by("unique_id").agg(pl.col("ds").min().alias("first"))
    grid = firsts.with_columns(
        pl.date_ranges(pl.col("first"), pl.lit(last), interval="1w").alias("ds")
    ).explode("ds")
    return (
        grid.select(["unique_id", "ds"])
        .join(frame, on=["unique_id", "ds"], how="left")
        .fill_null(0.0)
        .sort(["unique_id", "ds"])
    )


def classify(week_frame: pl.DataFrame, min_weeks: int) -> dict[str, str]:
    """Per series: ``zero`` (no demand), ``short`` (< ``min_weeks`` weeks), ``intermittent``
    (ADI > 1.32) or ``dense``."""
    stats = week_frame.group_by("unique_id").agg(
        pl.len().alias("n"), (pl.col("y") > 0).sum().alias("nonzero")
    )
    out: dict[str, str] = {}
    for uid, n, nonzero in stats.iter_rows():
        if nonzero == 0:
            out[uid] = "zero"
        elif n < min_weeks:
            out[uid] = "short"
        else:
            out[uid] = "intermittent" if n / nonzero > ADI_INTERMITTENT else "dense"
    return out


def _models(kind: str, season: int) -> list[object]:
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoETS,
        CrostonClassic,
        Naive,
        SeasonalExponentialSmoothingOptimized,
        SeasonalNaive,
        Theta,
    )

    baseline: object = (
        SeasonalNaive(season_length=season, alias=BASELINE)
        if season > 1
        else (Naive(alias=BASELINE))
    )
    if kind == "intermittent":
        return [
            CrostonClassic(),
            ADIDA(),
            IMAPA(),
            TSB(alpha_d=0.2, alpha_p=0.2),
            baseline,
        ]
    dense: list[object] = [
        AutoETS(season_length=1, model="AZN", damped=False),
        Theta(season_length=season),
    ]
    if season > 1:
        dense.append(
            SeasonalExponentialSmoothingOptimized(season_length=season, alias="SeasonalES")
        )
    return [*dense, baseline]


def forecast_frame(
    daily: pl.DataFrame,
    *,
    horizon_weeks: int = 13,
    cv_horizon: int = 8,
    cv_windows: int = 2,
    level: int = 80,
    n_jobs: int | None = None,
    end: date | None = None,
) -> ForecastRun:
    """Forecast every series of a daily frame ``(unique_id, ds: date, y: packs)`` whose data
    end on ``end`` (default: its last day); forecasts start the week after the last whole week."""
    import time

    if horizon_weeks < 1 or cv_horizon < 1 or cv_windows < 1:
        raise ValidationError("horizon and cross-validation sizes must be at least 1")
    if not 50 <= level < 100:
        raise ValidationError(f"level {level} must be between 50 and 99", place="level")
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    weeks = weekly(daily, end)
    min_weeks = cv_horizon * cv_windows + 8
    kinds = classify(weeks, min_weeks)
    timings["prepare"] = time.perf_counter() - t0
    out: dict[str, SeriesForecast] = {}
    if weeks.is_empty():
        return ForecastRun(out, timings)
    last_week: date = weeks["ds"].max()  # type: ignore[assignment]
    start = last_week + timedelta(days=7)
    lengths = dict(weeks.group_by("unique_id").agg(pl.len()).iter_rows())
    for uid, kind in kinds.items():
        if kind in ("zero", "short"):
            series = weeks.filter(pl.col("unique_id") == uid)["y"].to_numpy()
            rate = float(series[-4:].mean()) if len(series) else 0.0
            flat = [rate] * horizon_weeks
            out[uid] = SeriesForecast(
                uid,
                "mean-4w" if kind == "short" else "zero",
                kind,
                start,
                flat,
                flat,
                flat,
                flat,
                None,
                None,
                level,
            )
    for kind in ("intermittent", "dense"):
        ids = [u for u, k in kinds.items() if k == kind]
        long_ids = [u for u in ids if lengths[u] > SEASON_WEEKS + cv_horizon * cv_windows]
        short_ids = [u for u in ids if lengths[u] <= SEASON_WEEKS + cv_horizon * cv_windows]
        for group, season in ((long_ids, SEASON_WEEKS), (short_ids, 1)):
            if not group:
                continue
            t1 = time.perf_counter()
            part = weeks.filter(pl.col("unique_id").is_in(group)).to_pandas()
            part["ds"] = pd.to_datetime(part["ds"])
            cv, fc = _cross_validate_and_forecast(
                part, _models(kind, season), jobs, cv_horizon, cv_windows, horizon_weeks
            )
            timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - t1
            names = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")]
            out.update(_choose(cv, fc, names, kind, start, level))
    timings["total"] = time.perf_counter() - t0
    return ForecastRun(out, timings)


def _cross_validate_and_forecast(
    part: pd.DataFrame,
    models: list[object],
    jobs: int,
    cv_horizon: int,
    cv_windows: int,
    horizon: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validation and forecast of ``models``; models that can be updated with new data
    (``forward``) are fitted once for all windows, the others refitted per window."""
    from statsforecast import StatsForecast

    keys = ["unique_id", "ds", "cutoff"]
    cvs: list[pd.DataFrame] = []
    fcs: list[pd.DataFrame] = []
    for refit in (False, True):
        group = [m for m in models if hasattr(m, "forward") != refit]
        if not group:
            continue
        sf = StatsForecast(models=group, freq="W-MON", n_jobs=jobs)
        cv = pd.DataFrame(
            sf.cross_validation(
                df=part, h=cv_horizon, n_windows=cv_windows, step_size=cv_horizon, refit=refit
            )
        )
        cvs.append(cv if not cvs else cv.drop(columns=["y"]))
        fcs.append(pd.DataFrame(sf.forecast(df=part, h=horizon)))
    cv_all = cvs[0]
    for extra in cvs[1:]:
        cv_all = cv_all.merge(extra, on=keys)
    fc_all = fcs[0]
    for extra in fcs[1:]:
        fc_all = fc_all.merge(extra, on=["unique_id", "ds"])
    return cv_all, fc_all


def _choose(
    cv: pd.DataFrame,
    fc: pd.DataFrame,
    names: Sequence[str],
    kind: str,
    start: date,
    level: int,
) -> dict[str, SeriesForecast]:
    cv = cv.reset_index() if "unique_id" not in cv.columns else cv
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    errors = {n: (cv[n] - cv["y"]).abs() for n in names}
    err_frame = pd.DataFrame({"unique_id": cv["unique_id"].to_numpy(), **errors})
    mae = err_frame.groupby("unique_id").mean()
    candidates = [n for n in names if n != BASELINE]
    best = mae[candidates].idxmin(axis=1)
    q = level / 100.0
    out: dict[str, SeriesForecast] = {}
    fc_groups = {uid: g for uid, g in fc.groupby("unique_id", sort=False)}
    err_groups = {uid: g for uid, g in err_frame.groupby("unique_id", sort=False)}
    for uid, model in best.items():
        g = fc_groups[uid]
        mean = np.clip(g[model].to_numpy(dtype=float), 0.0, None)
        base = np.clip(g[BASELINE].to_numpy(dtype=float), 0.0, None)
        width = float(np.quantile(err_groups[uid][model].to_numpy(dtype=float), q))
        out[str(uid)] = SeriesForecast(
            series=str(uid),
            model=str(model),
            kind=kind,
            start=start,
            mean=mean.tolist(),
            lo=np.clip(mean - width, 0.0, None).tolist(),
            hi=(mean + width).tolist(),
            baseline=base.tolist(),
            mae=float(mae.at[uid, model]),
            baseline_mae=float(mae.at[uid, BASELINE]),
            level=level,
        )
    return out


SERIES_SEPARATOR = "|"


def demand_history(
    conn: Connection,
    as_of: date | datetime | None = None,
    *,
    days: int = 730,
    product: str | None = None,
    region: str | None = None,
) -> pl.DataFrame:
    """Daily packs consumed per product × region (``unique_id`` = ``product|region``) over the
    ``days`` up to ``as_of``."""
    last = as_of_day(as_of)
    frame = movement_frame(conn, last - days + 1, last, product=product, region=region)
    frame = frame.filter(pl.col("day") >= last - days + 1)
    return (
        frame.group_by(["product", "region", "day"])
        .agg(pl.col("consumed").sum().alias("y"))
        .with_columns(
            (pl.col("product") + SERIES_SEPARATOR + pl.col("region")).alias("unique_id"),
            (pl.lit(date(1970, 1, 1)) + pl.duration(days=pl.col("day"))).cast(pl.Date).alias("ds"),
        )
        .select(["unique_id", "ds", "y"])
        .sort(["unique_id", "ds"])
    )


def forecast_demand(
    conn: Connection,
    as_of: date | datetime | None = None,
    *,
    product: str | None = None,
    region: str | None = None,
    horizon_weeks: int = 13,
) -> ForecastRun:
    """Forecast every product × region from the ledger's consumption up to ``as_of``."""
    history = demand_history(conn, as_of, product=product, region=region)
    return forecast_frame(history, horizon_weeks=horizon_weeks, end=day_date(as_of_day(as_of)))


def store_forecasts(conn: Connection, run: ForecastRun) -> int:
    """Save a run's forecasts as daily rates (``supply_forecast``), replacing earlier ones of the
    same series and days; the risk model reads them. Returns rows written."""
    made = int(datetime.now(UTC).timestamp() * 1_000_000)
    rows: list[dict[str, Any]] = []
    for f in run.forecasts.values():
        prod, _, reg = f.series.partition(SERIES_SEPARATOR)
        first = day_number(f.start)
        for week, (mean, lo, hi, base) in enumerate(
            zip(f.mean, f.lo, f.hi, f.baseline, strict=True)
        ):
            for d in range(7):
                rows.append(
                    {
                        "product": prod,
                        "region": reg,
                        "day": first + 7 * week + d,
                        "model": f.model,
                        "mean": mean / 7,
                        "lo": lo / 7,
                        "hi": hi / 7,
                        "baseline": base / 7,
                        "made_us": made,
                    }
                )
    series = {f.series.partition(SERIES_SEPARATOR) for f in run.forecasts.values()}
    for prod, _sep, reg in series:
        conn.execute(
            supply_forecast.delete().where(
                supply_forecast.c.product == prod, supply_forecast.c.region == reg
            )
        )
    if rows:
        conn.execute(insert(supply_forecast), rows)
    return len(rows)
