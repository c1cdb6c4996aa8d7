"""Supply benchmark: forecast N product × region series of two years' daily demand, recompute
all warnings for M product × site pairs, and measure what the supply-ledger projector adds to
capture; each beside a baseline in the same run.

    .venv/bin/python benchmarks/supply.py [--series 10000] [--pairs 100000] [--capture 10000]

Targets (issue 7): 10k series < 60 s; warnings for 100k pairs < 30 s. The forecast baseline is a
seasonal-naive forecast of the same weekly series (numpy); the warnings baseline is the naive
days-of-supply rule on the same database; the projector's baseline is the same capture
(``benchmarks/capture.py``'s document) into a fresh SQLite store without the supply projector.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import insert

from yaolian.store.engine import open_engine
from yaolian.store.schema import enterprise, supply_movement
from yaolian.store.schema import site as site_table
from yaolian.supply import forecast, warnings
from yaolian.supply.ledger import Kind, day_number


def series_frame(n: int, days: int, rng: np.random.Generator) -> pl.DataFrame:
    """Half dense seasonal, half intermittent daily series."""
    t = np.arange(days)
    start = date(2024, 1, 1)
    ds = [start + timedelta(days=i) for i in range(days)]
    ids, ys = [], []
    for i in range(n):
        if i % 2:
            y = rng.binomial(1, 0.05, days) * rng.integers(1, 5, days)
        else:
            y = rng.poisson(5 + 4 * np.sin(2 * np.pi * t / 365.25 + i))
        ids.append(np.full(days, f"s{i}"))
        ys.append(y.astype(float))
    return pl.DataFrame({"unique_id": np.concatenate(ids), "ds": ds * n, "y": np.concatenate(ys)})


def bench_forecast(n: int) -> None:
    rng = np.random.default_rng(7)
    days = 730
    frame = series_frame(n, days, rng)
    t0 = time.perf_counter()
    weeks = forecast.weekly(frame).sort(["unique_id", "ds"])
    y = weeks["y"].to_numpy().reshape(n, -1)
    _snaive = y[:, -52:-39]  # seasonal naive: the same 13 weeks a year earlier
    base = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = forecast.forecast_frame(frame, end=date(2024, 1, 1) + timedelta(days=days - 1))
    took = time.perf_counter() - t1
    scored = [(f.mae, f.baseline_mae) for f in run.forecasts.values() if f.mae is not None]
    better = sum(
        1
        for mae, base_mae in scored
        if mae is not None and base_mae is not None and mae <= base_mae
    )
    print(
        f"forecast: {n} series × {days} days in {took:.1f} s ({n / took:.0f} series/s); "
        f"stages { ({k: round(v, 1) for k, v in run.timings.items()}) }"
    )
    print(
        f"  seasonal-naive baseline (weekly numpy) {base:.2f} s → ratio {took / base:.0f}×; "
        f"chosen model CV-MAE ≤ seasonal naive on {better}/{len(scored)} series"
    )


def bench_warnings(pairs: int) -> None:
    rng = np.random.default_rng(8)
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        n_sites = 500
        n_products = pairs // n_sites
        first = day_number(date(2026, 1, 1))
        with engine.begin() as conn:
            conn.execute(insert(enterprise).values(id=1, uscc="X" * 18, name="e", role="hospital"))
            conn.execute(
                insert(site_table),
                [
                    {
                        "location_id": f"urn:site:{s}",
                        "enterprise_id": 1,
                        "name": str(s),
                        "kind": "hospital",
                        "region": f"{s % 31:02d}0000",
                    }
                    for s in range(n_sites)
                ],
            )
            rows = []
            for p in range(n_products):
                # Products from short (5 days of supply left) to well stocked (180 days); per
                # site 1–7 packs a week for 12 weeks, and that cover left at the end.
                cover = float(rng.choice([5, 15, 30, 90, 180]))
                for s in range(n_sites):
                    weekly = int(rng.integers(1, 8))
                    left = weekly / 7 * cover * rng.uniform(0.5, 1.5)
                    stock = float(round(left) + 12 * weekly)
                    rows.append(
                        {
                            "event_id": 0,
                            "product": f"P{p:06d}",
                            "site": f"urn:site:{s}",
                            "day": first,
                            "kind": int(Kind.RECEIVE),
                            "packs": stock,
                            "units": 0.0,
                        }
                    )
                    for w in range(12):  # weekly consumption rows over 84 days
                        rows.append(
                            {
                                "event_id": 0,
                                "product": f"P{p:06d}",
                                "site": f"urn:site:{s}",
                                "day": first + 7 * w + 3,
                                "kind": int(Kind.DISPENSE),
                                "packs": -float(weekly),
                                "units": 0.0,
                            }
                        )
                if len(rows) > 200_000:
                    conn.execute(insert(supply_movement), rows)
                    rows = []
            if rows:
                conn.execute(insert(supply_movement), rows)
        as_of = date(2026, 3, 31)
        with engine.connect() as conn:
            t0 = time.perf_counter()
            naive = warnings.naive_warnings(conn, as_of)
            base = time.perf_counter() - t0
            t1 = time.perf_counter()
            found = warnings.compute_warnings(conn, as_of)
            took = time.perf_counter() - t1
        print(
            f"warnings: {pairs} product × site pairs ({n_products} products × {n_sites} sites) "
            f"in {took:.1f} s → {len(found)} warnings; naive baseline {base:.1f} s "
            f"({len(naive)} warnings); ratio {took / base:.2f}×"
        )
        engine.dispose()


def bench_projector(n_events: int) -> None:
    """Capture the same document twice into fresh SQLite stores: with every projector, and
    without the supply ledger; the difference is what the ledger adds to capture."""
    from capture import make_document
    from yaolian.epcis.jsonld import read_document
    from yaolian.store import projections
    from yaolian.store.ingest import capture_document
    from yaolian.supply.projection import PROJECTOR

    data = make_document(n_events, 10)
    projections.projectors()
    took: dict[bool, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for with_supply in (False, True, False, True):  # twice each: warm caches, keep the best
            if not with_supply:
                projections._registry.pop(PROJECTOR.name, None)
            engine = open_engine(f"sqlite:///{Path(tmp) / f'cap{len(took)}{with_supply}.db'}")
            doc = read_document(data)
            t0 = time.perf_counter()
            result = capture_document(engine, doc)
            seconds = time.perf_counter() - t0
            assert result.accepted == len(doc.events), result.errors[:3]
            took[with_supply] = min(took.get(with_supply, seconds), seconds)
            projections.register(PROJECTOR)
            engine.dispose()
    n = len(doc.events)
    extra = took[True] - took[False]
    print(
        f"capture: {n} events ({n_events} × 10 EPCs + packing) with the supply ledger "
        f"{took[True]:.2f} s ({n / took[True]:,.0f} events/s), without {took[False]:.2f} s "
        f"({n / took[False]:,.0f} events/s): the ledger adds {extra:.2f} s "
        f"= {extra / took[False]:.0%} of capture without it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--capture", type=int, default=10_000, help="ObjectEvents captured")
    args = parser.parse_args()
    bench_forecast(args.series)
    bench_warnings(args.pairs)
    bench_projector(args.capture)


if __name__ == "__main__":
    main()
