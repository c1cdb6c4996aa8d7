"""How good are the shortage warnings? Scored against a simulator's ground truth (短缺预警评估).

The ground truth (:mod:`yaolian.sim.truth`) lists the first stockout per product × province
(``stockouts``: ``product_code``, ``region``, ``first_stockout``, ``cause``). Warnings are
computed as of each date in ``as_of_dates`` from what the store knew by then, mapped from the
sites' regions (city 行政区划代码) to their province, and compared pair by pair:

* a **hit**: the pair's first warning came on or before its first stockout; *lead* = first
  stockout − first warning date (days);
* a **miss**: a stockout after the first as-of date with no warning on or before it;
* a **late** warning: the pair was first warned only after its stockout began (a real shortage,
  but no early warning — a miss for recall, neither right nor wrong for precision);
* a **false alarm**: a warned pair that never stocks out in the ground truth although one of
  its warnings expected the stockout before the run's last day;
* **unverifiable**: a warned pair that never stocks out in the run, all of whose warnings
  expected the stockout after the run's last day (the run ends before the claim can be
  checked; reported, counted neither way).

recall = hits / (hits + misses); precision = hits / (hits + false alarms); stockouts before the
first as-of date cannot be warned of and are left out (``unscorable``). The same scoring applies
to any warning function, so yaolian's model and the naive baseline (days of supply < 14 on the
last-30-day average, :func:`yaolian.supply.warnings.naive_warnings`) sit in one table.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from yaolian.errors import ValidationError
from yaolian.supply.warnings import Warning, compute_warnings, naive_warnings

WarningFunction = Callable[[Connection, date], list[Warning]]
Method = Literal["risk", "naive"]
Outcome = Literal["hit", "miss", "late", "false_alarm", "unverifiable"]
DEFAULT_STEP_DAYS = 7


def province_of(region: str) -> str:
    """The province code of a 6-digit 行政区划代码 (``440100`` → ``440000``); other codes as
    they are."""
    return region[:2] + "0000" if len(region) == 6 and region.isdigit() else region


@dataclass(frozen=True, slots=True)
class PairOutcome:
    """One product × province: when it was first warned of, when it first stocked out."""

    product: str
    region: str
    outcome: Outcome
    first_warning: date | None
    first_stockout: date | None
    cause: str | None

    @property
    def lead_days(self) -> int | None:
        """Days from the first warning to the first stockout (hits only)."""
        if self.outcome != "hit" or self.first_warning is None or self.first_stockout is None:
            return None
        return (self.first_stockout - self.first_warning).days


@dataclass
class WarningMetrics:
    """Recall, precision and lead of one warning method over a series of as-of dates."""

    method: str
    as_of_dates: list[date]
    pairs: list[PairOutcome] = field(default_factory=list)
    unscorable: int = 0  # stockouts on or before the first as-of date

    def count(self, outcome: Outcome) -> int:
        """Pairs with ``outcome``."""
        return sum(1 for p in self.pairs if p.outcome == outcome)

    @property
    def leads(self) -> list[int]:
        """Lead days of every hit."""
        return [p.lead_days for p in self.pairs if p.lead_days is not None]

    @property
    def scorable(self) -> int:
        """Stockouts that could have been warned of (hits, misses and late warnings)."""
        return self.count("hit") + self.count("miss") + self.count("late")

    @property
    def warned(self) -> int:
        """Warned pairs whose claim the run can judge (hits and false alarms)."""
        return self.count("hit") + self.count("false_alarm")

    @property
    def recall(self) -> float | None:
        """Hits over scorable stockouts."""
        return self.count("hit") / self.scorable if self.scorable else None

    @property
    def precision(self) -> float | None:
        """Hits over hits plus false alarms."""
        return self.count("hit") / self.warned if self.warned else None

    @property
    def median_lead(self) -> float | None:
        """Median lead of the hits, days."""
        return float(statistics.median(self.leads)) if self.leads else None

    def recall_by_cause(self) -> dict[str, float]:
        """Recall per ground-truth cause (raw-material shock, discontinuation, none …)."""
        out: dict[str, list[bool]] = {}
        for p in self.pairs:
            if p.outcome in ("hit", "miss", "late"):
                out.setdefault(p.cause or "?", []).append(p.outcome == "hit")
        return {cause: round(sum(v) / len(v), 3) for cause, v in sorted(out.items())}

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON): the metrics, the counts and every pair."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "method": self.method,
            "as_of": [d.isoformat() for d in (self.as_of_dates[0], self.as_of_dates[-1])],
            "step_count": len(self.as_of_dates),
            "recall": r(self.recall),
            "precision": r(self.precision),
            "median_lead_days": self.median_lead,
            "hits": self.count("hit"),
            "misses": self.count("miss"),
            "late": self.count("late"),
            "false_alarms": self.count("false_alarm"),
            "unverifiable": self.count("unverifiable"),
            "recall_by_cause": self.recall_by_cause(),
            "unscorable_stockouts": self.unscorable,
            "pairs": [
                {
                    "product": p.product,
                    "region": p.region,
                    "outcome": p.outcome,
                    "first_warning": p.first_warning.isoformat() if p.first_warning else None,
                    "first_stockout": p.first_stockout.isoformat() if p.first_stockout else None,
                    "lead_days": p.lead_days,
                    "cause": p.cause,
                }
                for p in sorted(self.pairs, key=lambda p: (p.outcome, p.product, p.region))
            ],
        }


def stockouts_of(truth: dict[str, Any]) -> dict[tuple[str, str], tuple[date, str | None]]:
    """First stockout date and cause per (product code, province) of a ground-truth document."""
    try:
        rows = truth["stockouts"]
        return {
            (str(o["product_code"]), province_of(str(o["region"]))): (
                date.fromisoformat(str(o["first_stockout"])),
                o.get("cause"),
            )
            for o in rows
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            f"ground truth has no usable stockout list: {exc}", place="truth/stockouts"
        ) from exc


def default_as_of_dates(
    truth: dict[str, Any], *, step_days: int = DEFAULT_STEP_DAYS, tail_days: int = 14
) -> list[date]:
    """Every ``step_days`` from the run's start to ``tail_days`` before its end (a warning in
    the last days cannot be confirmed or refuted by a stockout the run never reaches)."""
    if step_days < 1:
        raise ValidationError("step must be at least one day", place="step_days")
    try:
        start = date.fromisoformat(str(truth["start"]))
        days = int(truth["days"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            f"ground truth needs start and days: {exc}", place="truth/start"
        ) from exc
    last = start + timedelta(days=days - 1 - tail_days)
    return [start + timedelta(days=k) for k in range(0, (last - start).days + 1, step_days)]


def first_warnings(
    conn: Connection, as_of_dates: Iterable[date], warn: WarningFunction
) -> dict[tuple[str, str], tuple[date, date | None]]:
    """Per (product, province): the first as-of date it was warned of, and the earliest
    stockout date any of its warnings expected."""
    first: dict[tuple[str, str], tuple[date, date | None]] = {}
    for day in sorted(as_of_dates):
        for w in warn(conn, day):
            pair = (w.product, province_of(w.region))
            when, expected = first.get(pair, (day, None))
            if w.expected_stockout is not None:
                expected = min(expected or w.expected_stockout, w.expected_stockout)
            first[pair] = (when, expected)
    return first


def score(
    first: dict[tuple[str, str], tuple[date, date | None]],
    truth: dict[str, Any],
    as_of_dates: Sequence[date],
    method: str,
) -> WarningMetrics:
    """Score first-warning dates against the ground truth's stockouts (module docstring)."""
    dates = sorted(as_of_dates)
    outs = stockouts_of(truth)
    run_end = default_as_of_dates(truth, step_days=1, tail_days=0)[-1]
    metrics = WarningMetrics(method, dates)
    for (product, region), (stockout, cause) in outs.items():
        warned = first[(product, region)][0] if (product, region) in first else None
        if stockout <= dates[0]:
            metrics.unscorable += 1
            continue
        if warned is None:
            outcome: Outcome = "miss"
        else:
            outcome = "hit" if warned <= stockout else "late"
        metrics.pairs.append(PairOutcome(product, region, outcome, warned, stockout, cause))
    for (product, region), (warned, expected) in first.items():
        if (product, region) not in outs:
            claim: Outcome = (
                "unverifiable" if expected is None or expected > run_end else "false_alarm"
            )
            metrics.pairs.append(PairOutcome(product, region, claim, warned, None, None))
    return metrics


def evaluate_warnings(
    conn: Connection,
    truth: dict[str, Any],
    as_of_dates: Sequence[date | datetime] | None = None,
    *,
    method: Method | WarningFunction = "risk",
    min_level: str = "yellow",
) -> WarningMetrics:
    """Recall, precision and median lead of shortage warnings against ground truth.

    ``method`` is ``"risk"`` (:func:`~yaolian.supply.warnings.compute_warnings` at
    ``min_level`` or above), ``"naive"`` (the days-of-supply < 14 baseline) or any function
    ``(conn, as_of) -> list[Warning]``. ``as_of_dates`` default to
    :func:`default_as_of_dates`. The store must hold the simulated events (and filed
    discontinuation reports) of the run the truth describes.
    """
    if as_of_dates is None:
        dates = default_as_of_dates(truth)
    else:
        dates = [d.date() if isinstance(d, datetime) else d for d in as_of_dates]
    if not dates:
        raise ValidationError("at least one as-of date is needed", place="as_of_dates")
    warn: WarningFunction
    if method == "risk":
        level: Any = min_level

        def warn(c: Connection, d: date) -> list[Warning]:
            return compute_warnings(c, d, min_level=level)

        name = f"yaolian risk ≥ {min_level}"
    elif method == "naive":
        warn, name = naive_warnings, "naive: days of supply < 14"
    elif callable(method):
        warn, name = method, getattr(method, "__name__", "custom")
    else:
        raise ValidationError(f"unknown method {method!r}; use risk or naive", place="method")
    return score(first_warnings(conn, dates, warn), truth, dates, name)
