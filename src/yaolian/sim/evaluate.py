"""``yaolian eval``: what yaolian detected against what the simulator injected.

Code-level incidents are matched to the alerts of ``yaolian.verify`` by code (canonical key):
an incident is *detected* when an alert of its rule names one of its codes; an alert is
*correct* when its code belongs to an incident of that type (precision) — ``precision_any``
also accepts codes of any injected incident (a cloned code is also a double sale). Delay is
alert time minus the time the incident became detectable, in hours (event time).

Shortages (when the supply layer is installed) are scored by
:func:`yaolian.supply.evaluate.evaluate_warnings` — one definition for ``yaolian eval`` and the
supply layer: per product × province, a *hit* is a first warning on or before the first
stockout (lead = the days between), recall = hits / (hits + misses + late), precision = hits /
(hits + false alarms); the naive baseline (days of supply < 14 on the last-30-day average) is
scored the same way. Their delay column is the lead in days.
"""

from __future__ import annotations

import importlib
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from yaolian.codes.identity import canonical_key
from yaolian.epcis.model import to_epoch_us
from yaolian.errors import CodeError, ValidationError
from yaolian.store import schema as s
from yaolian.store.dictionary import code_keys
from yaolian.store.engine import open_engine
from yaolian.store.tx import read_tx

# incident type → the verify rule that should catch it
RULE_FOR: dict[str, str] = {
    "counterfeit": "unknown_code",
    "clone": "clone",
    "resale": "double_sale",
    "diversion": "custody_break",
    "cold_chain_excursion": "cold_chain",
    "recalled_sale": "recalled_sale",
}


@dataclass
class Score:
    """Detection quality for one incident type."""

    kind: str
    detector: str
    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    correct: int = 0
    correct_any: int = 0
    delays: list[float] = field(default_factory=list)  # hours, or lead days for shortages

    def as_dict(self) -> dict[str, Any]:
        """Plain data with the derived rates."""
        return {
            "type": self.kind,
            "detector": self.detector,
            "incidents": self.incidents,
            "detected": self.detected,
            "alerts": self.alerts,
            "correct_alerts": self.correct,
            "precision": round(self.correct / self.alerts, 3) if self.alerts else None,
            "precision_any": round(self.correct_any / self.alerts, 3) if self.alerts else None,
            "recall": round(self.detected / self.incidents, 3) if self.incidents else None,
            "delay_median": round(statistics.median(self.delays), 2) if self.delays else None,
            "delay_max": round(max(self.delays), 2) if self.delays else None,
            "delay_unit": "days before stockout" if self.kind.startswith("shortage") else "hours",
        }


def _key(code: str) -> str | None:
    try:
        return canonical_key(code)
    except CodeError:
        return None


def load_alerts(engine: Engine) -> list[dict[str, Any]]:
    """Every alert in the store with its code's canonical key."""
    a = s.alert.c
    with read_tx(engine) as conn:
        rows = conn.execute(select(a.rule, a.code_id, a.time_us, a.site)).all()
        keys = code_keys(conn, {r.code_id for r in rows})
    return [
        {"rule": r.rule, "key": keys.get(r.code_id), "time_us": r.time_us, "site": r.site}
        for r in rows
    ]


def score_alerts(truth: dict[str, Any], alerts: list[dict[str, Any]]) -> list[Score]:
    """Per incident type: incidents found, alerts raised, precision, recall, delay."""
    keys_of: dict[str, list[tuple[set[str], int]]] = defaultdict(list)
    every_key: set[str] = set()
    for inc in truth["incidents"]:
        codes = list(inc["codes"]) + list(inc.get("containers", []))
        keys = {k for k in (_key(c) for c in codes) if k}
        keys_of[inc["type"]].append((keys, to_epoch_us(inc["time"])))
        every_key |= keys
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        by_rule[alert["rule"]].append(alert)
    scores: list[Score] = []
    for kind, rule in RULE_FOR.items():
        sc = Score(kind, rule)
        incidents = keys_of.get(kind, [])
        type_keys = set().union(*(k for k, _ in incidents)) if incidents else set()
        mine = by_rule.get(rule, [])
        sc.incidents = len(incidents)
        sc.alerts = len(mine)
        sc.correct = sum(1 for al in mine if al["key"] in type_keys)
        sc.correct_any = sum(1 for al in mine if al["key"] in every_key)
        for keys, t_us in incidents:
            hits = [al["time_us"] for al in mine if al["key"] in keys]
            if hits:
                sc.detected += 1
                sc.delays.append((min(hits) - t_us) / 3.6e9)
        scores.append(sc)
    return scores


def _province(region: str) -> str:
    return region[:2] + "0000" if len(region) == 6 and region.isdigit() else region


def supply_available() -> bool:
    """Whether the supply layer's warning functions are installed."""
    try:
        module = importlib.import_module("yaolian.supply.warnings")
    except ImportError:
        return False
    return callable(getattr(module, "compute_warnings", None))


def evaluate_store(engine: Engine, truth: dict[str, Any]) -> list[Score]:
    """Score one populated store against its ground truth."""
    scores = score_alerts(truth, load_alerts(engine))
    if supply_available():  # scored by yaolian.supply.evaluate (one definition for both)
        from yaolian.supply.evaluate import evaluate_warnings

        with read_tx(engine) as conn:
            runs = {
                "shortage": evaluate_warnings(conn, truth, method="risk"),
                "shortage_naive": evaluate_warnings(conn, truth, method="naive"),
            }
        for label, m in runs.items():
            hits = m.count("hit")
            scores.append(
                Score(
                    label,
                    m.method,
                    incidents=m.scorable,
                    detected=hits,
                    alerts=m.warned,
                    correct=hits,
                    correct_any=hits,
                    delays=[float(x) for x in m.leads],
                )
            )
    return scores


def merge(scores: list[list[Score]]) -> list[Score]:
    """Pool the scores of several seeds (counts summed, delays concatenated)."""
    out: dict[str, Score] = {}
    for run in scores:
        for sc in run:
            acc = out.setdefault(sc.kind, Score(sc.kind, sc.detector))
            acc.incidents += sc.incidents
            acc.detected += sc.detected
            acc.alerts += sc.alerts
            acc.correct += sc.correct
            acc.correct_any += sc.correct_any
            acc.delays.extend(sc.delays)
    return list(out.values())


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` or ``"1-5"`` → seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                seeds.extend(range(lo, hi + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ValidationError(
            f"seeds {text!r}: use numbers like 1,2,3 or 1-5", place="--seeds"
        ) from None
    if not seeds or any(x < 0 for x in seeds):
        raise ValidationError(
            f"seeds {text!r}: give at least one non-negative seed", place="--seeds"
        )
    return seeds


def run_eval(
    seeds: list[int],
    size: str,
    workdir: Path | None = None,
    progress: Callable[[int, str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulate each seed into a fresh SQLite store, score it, and pool the results."""
    from yaolian.sim.pipeline import populate_store

    runs: list[dict[str, Any]] = []
    all_scores: list[list[Score]] = []
    with tempfile.TemporaryDirectory(prefix="yaolian-eval-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            db = base / f"eval-{size}-{seed}.db"
            db.unlink(missing_ok=True)
            engine = open_engine(str(db))
            try:

                def step(stage: str, done: int, total: int, seed: int = seed) -> None:
                    if progress is not None:
                        progress(seed, stage, done, total)

                _sim, result, _recall = populate_store(engine, size, seed, progress=step)
                if progress is not None:
                    progress(seed, "score", 0, 1)
                scores = evaluate_store(engine, result.truth)
            finally:
                engine.dispose()
            all_scores.append(scores)
            runs.append(
                {
                    "seed": seed,
                    "events": result.stats.events,
                    "scores": [sc.as_dict() for sc in scores],
                }
            )
    return {
        "size": size,
        "seeds": seeds,
        "runs": runs,
        "pooled": [sc.as_dict() for sc in merge(all_scores)],
    }
