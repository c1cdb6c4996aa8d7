"""Demand forecasts per product × region with statsforecast, model chosen per series by
cross-validation, with prediction intervals and a seasonal-naive baseline beside each.

Daily consumption is aggregated to ISO weeks before modelling: regional drug demand is sparse
day by day (many zero days), weekly sums are what replenishment plans in, and a week-level fit
costs a seventh of a day-level one — the difference between minutes and seconds for 10,000
series (``benchmarks/supply.py`` measures it). Each series is classed by its average demand
interval (ADI, Syntetos–Boylan): ADI > 1.32 is *intermittent* and competes CrostonClassic, ADIDA,
IMAPA and TSB; otherwise *dense* competes AutoETS (additive error, trend chosen by AICc), Theta
and — given a year of history — seasonal exponential smoothing with a 52-week season and a fixed
weight of 0.5 (two years are too short for Theta's or ETS's own seasonality tests, which then
fit no season at all, and give each week of the year two points: nothing to optimise on).
Cross-validation over the last 16 weeks scores every candidate by MAE and the best is kept per
series: two 8-week rolling windows for models that can be carried forward, one 16-week window
for those that would be refitted at every origin (Croston and kin, seasonal ES). To be fast at
10,000 series (``benchmarks/supply.py``), each candidate is fitted once: a model that can be
updated with new data (statsforecast's ``forward``) is fitted on the first training window and
carried forward over the later window *and* the full history for the final forecast; only
series whose year-over-year change is significant (:func:`trended`) let AutoETS consider a trend
and let Theta (SES with drift) compete; series are fitted in worker processes.
Prediction intervals are conformal: the chosen model's absolute cross-validation errors give
the half-width at each level. SeasonalNaive(52) (Naive when the history is shorter than a year)
is reported beside every forecast with its own cross-validation MAE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
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
TREND_T = 2.0  # |t| of the slope above which a dense series may have a trend


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


def trended(week_frame: pl.DataFrame, t_min: float = TREND_T) -> set[str]:
    """Series with a trend: year-over-year differences (or, under two seasons of history, the
    weekly values' slope) with |t| ≥ ``t_min``. Only these let AutoETS consider an additive
    trend — a trend fit costs ten times a level-only one, and a season is no trend."""
    out: set[str] = set()
    for uid, y in _arrays(week_frame):
        if len(y) >= 2 * SEASON_WEEKS:
            d = y[SEASON_WEEKS:] - y[:-SEASON_WEEKS]
            sd = float(d.std(ddof=1))
            t = float(d.mean()) / (sd / np.sqrt(len(d))) if sd > 0 else 0.0
        elif len(y) > 3 and float(y.std()) > 0:
            r = float(np.corrcoef(np.arange(len(y)), y)[0, 1])
            t = r * float(np.sqrt((len(y) - 2) / max(1e-12, 1 - r * r)))
        else:
            t = 0.0
        if abs(t) >= t_min:
            out.add(uid)
    return out


def _arrays(week_frame: pl.DataFrame) -> list[tuple[str, np.ndarray]]:
    """Per series, its weekly values in time order."""
    grouped = week_frame.sort(["unique_id", "ds"]).group_by("unique_id", maintain_order=True)
    return [
        (str(uid), np.asarray(ys, dtype=float)) for uid, ys in grouped.agg(pl.col("y")).iter_rows()
    ]


def _models(kind: str, season: int, trend: bool = True) -> list[Any]:
    """Candidate models of a series class, the baseline last."""
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoETS,
        CrostonClassic,
        Naive,
        SeasonalExponentialSmoothing,
        SeasonalNaive,
        Theta,
    )

    baseline: Any = (
        SeasonalNaive(season_length=season, alias=BASELINE) if season > 1 else Naive(alias=BASELINE)
    )
    if kind == "intermittent":
        return [CrostonClassic(), ADIDA(), IMAPA(), TSB(alpha_d=0.2, alpha_p=0.2), baseline]
    # Theta is simple exponential smoothing with drift (Hyndman & Billah, 2003): on a series
    # without a significant trend its drift is nil and it duplicates AutoETS(ANN), so only
    # trended series pay for its fit (half the cost of a dense series otherwise).
    dense: list[Any] = [AutoETS(season_length=1, model="AZN" if trend else "ANN", damped=False)]
    if trend:
        dense.append(Theta(season_length=season))
    if season > 1:
        # two years give each week of the year two observations: optimising a smoothing
        # weight per week (52 searches) fits noise, so the weight is fixed (last year counts
        # as much as the year before)
        dense.append(
            SeasonalExponentialSmoothing(season_length=season, alpha=0.5, alias="SeasonalES")
        )
    return [*dense, baseline]


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to model one group of series (picklable: handed to worker processes)."""

    kind: str
    cv_horizon: int
    cv_windows: int
    horizon: int
    level: int
    start: date


def _fit_series(uid: str, y: np.ndarray, trend: bool, plan: _Plan) -> SeriesForecast:
    """Cross-validate every candidate on one series over its last ``cv_windows × cv_horizon``
    weeks (rolling origin for a model that can be updated with new data: fitted once on the
    first training window and carried forward; one origin for the others, whose every window
    would be a refit), keep the lowest-MAE one and forecast with it — carried forward over
    the whole history when it can be, so no candidate is fitted twice."""
    season = SEASON_WEEKS if len(y) > SEASON_WEEKS + plan.cv_horizon * plan.cv_windows else 1
    h, cut = plan.cv_horizon, len(y) - plan.cv_horizon * plan.cv_windows
    actual = y[cut:]
    errors: dict[str, np.ndarray] = {}
    fitted: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    for model in _models(plan.kind, season, trend):
        name = str(model)
        by_name[name] = model
        try:
            if hasattr(model, "forward"):
                f = model.new().fit(y[:cut])
                preds = [f.forward(y[: cut + k * h], h=h)["mean"] for k in range(plan.cv_windows)]
                fitted[name] = f
            else:  # refitted models: one origin over the same weeks (half the fits)
                preds = [model.new().forecast(y[:cut], h=len(actual))["mean"]]
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError, FloatingPointError):
            continue  # a candidate that cannot fit this series does not compete
        errors[name] = np.abs(np.concatenate(preds) - actual)
    mae = {n: float(np.mean(e)) for n, e in errors.items() if np.all(np.isfinite(e))}
    candidates = [n for n in mae if n != BASELINE] or [BASELINE]
    best = min(candidates, key=lambda n: mae[n])

    def final(name: str) -> np.ndarray:
        if name in fitted:
            out = fitted[name].forward(y, h=plan.horizon)["mean"]
        else:
            out = by_name[name].new().forecast(y, h=plan.horizon)["mean"]
        return np.clip(np.asarray(out, dtype=float), 0.0, None)

    mean, base = final(best), final(BASELINE)
    width = float(np.quantile(errors[best], plan.level / 100.0))
    return SeriesForecast(
        series=uid,
        model=best,
        kind=plan.kind,
        start=plan.start,
        mean=mean.tolist(),
        lo=np.clip(mean - width, 0.0, None).tolist(),
        hi=(mean + width).tolist(),
        baseline=base.tolist(),
        mae=mae[best],
        baseline_mae=mae.get(BASELINE),
        level=plan.level,
    )


def _fit_chunk(chunk: list[tuple[str, np.ndarray, bool]], plan: _Plan) -> list[SeriesForecast]:
    return [_fit_series(uid, y, trend, plan) for uid, y, trend in chunk]


def _fit_all(
    series: list[tuple[str, np.ndarray, bool]], plan: _Plan, jobs: int
) -> list[SeriesForecast]:
    """Fit every series, in ``jobs`` worker processes when there are enough of them."""
    if jobs <= 1 or len(series) < 2 * _CHUNK_SERIES:
        return _fit_chunk(series, plan)
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    chunks = [series[i : i + _CHUNK_SERIES] for i in range(0, len(series), _CHUNK_SERIES)]
    # fork is fastest, but a fork of a threaded process (a web server) can inherit held locks:
    # there, workers come from a clean single-threaded fork server instead
    if os.name != "posix":
        method = "spawn"
    else:
        method = "fork" if threading.active_count() == 1 else "forkserver"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        parts = pool.map(_fit_chunk, chunks, [plan] * len(chunks))
        return [f for part in parts for f in part]


_CHUNK_SERIES = 250


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
    end on ``end`` (default: its last day); forecasts start the week after the last whole week.
    ``n_jobs`` worker processes (default: up to two, the cores of the reference machine)."""
    import time

    if horizon_weeks < 1 or cv_horizon < 1 or cv_windows < 1:
        raise ValidationError("horizon and cross-validation sizes must be at least 1")
    if not 50 <= level < 100:
        raise ValidationError(f"level {level} must be between 50 and 99", place="level")
    jobs = n_jobs if n_jobs is not None else min(2, os.cpu_count() or 1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    weeks = weekly(daily, end)
    out: dict[str, SeriesForecast] = {}
    if weeks.is_empty():
        timings["prepare"] = time.perf_counter() - t0
        return ForecastRun(out, timings)
    kinds = classify(weeks, cv_horizon * cv_windows + 8)
    last_week: date = weeks["ds"].max()  # type: ignore[assignment]
    start = last_week + timedelta(days=7)
    arrays = dict(_arrays(weeks))
    dense = weeks.filter(pl.col("unique_id").is_in([u for u, k in kinds.items() if k == "dense"]))
    with_trend = trended(dense)
    timings["prepare"] = time.perf_counter() - t0
    for uid, kind in kinds.items():
        if kind == "zero":
            zeros = [0.0] * horizon_weeks
            out[uid] = SeriesForecast(
                uid, "zero", kind, start, zeros, zeros, zeros, zeros, None, None, level
            )
        elif kind == "short":
            out[uid] = _short_forecast(uid, arrays[uid], start, horizon_weeks, level)
    for kind in ("intermittent", "dense"):
        t1 = time.perf_counter()
        group = [(u, arrays[u], u in with_trend) for u, k in kinds.items() if k == kind]
        plan = _Plan(kind, cv_horizon, cv_windows, horizon_weeks, level, start)
        out.update((f.series, f) for f in _fit_all(group, plan, jobs))
        timings[kind] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return ForecastRun(out, timings)


def _short_forecast(
    uid: str, weeks: np.ndarray, start: date, horizon: int, level: int
) -> SeriesForecast:
    """Too few weeks to choose a model by cross-validation: the mean of the last four weeks,
    an interval spanning the weeks seen (their empirical quantiles at ``level``: a week like
    the ones so far), and last week's value as the naive baseline."""
    tail = (1 - level / 100) / 2
    lo, hi = (float(q) for q in np.quantile(weeks, [tail, 1 - tail]))
    mean = float(weeks[-4:].mean())
    return SeriesForecast(
        uid,
        "mean-4w",
        "short",
        start,
        [mean] * horizon,
        [min(lo, mean)] * horizon,
        [max(hi, mean)] * horizon,
        [float(weeks[-1])] * horizon,
        None,
        None,
        level,
    )


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
