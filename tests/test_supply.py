"""Supply layer: ledger, consumption, AMC, forecasts, warnings, matching — on both databases.

Events are stored through the store's capture path when it is importable, else written row by
row into the real event tables and handed to the projector (the same StoredEvent contract).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from sqlalchemy import Engine, insert, select

from yaolian.codes.identity import canonical_key
from yaolian.epcis.model import Event, iter_epcs, iter_quantities, location, parties, to_epoch_us
from yaolian.store.dictionary import intern_codes
from yaolian.store.masterdata import upsert_enterprise, upsert_site, uscc_check_char
from yaolian.store.projections import StoredEvent
from yaolian.store.schema import (
    ACTION_IDS,
    EVENT_TYPE_IDS,
    ROLE_IDS,
    event,
    event_epc,
    event_party,
    event_quantity,
    supply_movement,
)
from yaolian.supply import consumption, forecast, ledger, matching, signals, warnings
from yaolian.supply.projection import PROJECTOR
from yaolian.trace.builders import aggregation_event, object_event

CST = __import__("datetime").timezone(timedelta(hours=8))
P1 = "8385793"  # 药品标识码
FACTORY = "urn:epc:id:sgln:6901234.00001.0"
DC = "urn:epc:id:sgln:6901234.00002.0"
HOSP = "urn:epc:id:sgln:6901234.00003.0"
USCC = "91110000100000000" + uscc_check_char("91110000100000000")


def pack(n: int, product: str = P1) -> str:
    """An NMPA pack code URI of ``product`` with serial ``n``."""
    return f"urn:nmpa:code:{product}{n:013d}"


def case_code(n: int) -> str:
    """An SSCC of a case."""
    from yaolian.codes.epc import sscc_uri
    from yaolian.codes.gs1 import with_check_digit

    return sscc_uri(with_check_digit(f"06901234{n:09d}"))


def at(day: int, hour: int = 10) -> datetime:
    """Day ``day`` of January 2026 (and on), China time."""
    return datetime(2026, 1, 1, hour, tzinfo=CST) + timedelta(days=day - 1)


def store(engine: Engine, events: list[Event]) -> None:
    """Store events in one transaction and run the supply projector on them."""
    with engine.begin() as conn:
        keys = {canonical_key(c) for e in events for c, _ in iter_epcs(e)}
        keys |= {canonical_key(c) for e in events for c, *_ in iter_quantities(e)}
        ids = intern_codes(conn, keys)
        stored = []
        for e in events:
            t = to_epoch_us(e["eventTime"])
            row_id = conn.execute(
                insert(event)
                .values(
                    hash=hashlib.sha256(orjson.dumps(e, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                    type=EVENT_TYPE_IDS[e["type"]],
                    action=ACTION_IDS.get(e.get("action", "")),
                    event_time_us=t,
                    tz_offset=e["eventTimeZoneOffset"],
                    record_time_us=t,
                    biz_step=e.get("bizStep"),
                    disposition=e.get("disposition"),
                    read_point=location(e, "readPoint"),
                    biz_location=location(e, "bizLocation"),
                    error_declared=False,
                    payload=orjson.dumps(e),
                )
                .returning(event.c.id)
            ).scalar_one()
            epcs = [(ids[canonical_key(c)], role) for c, role in iter_epcs(e)]
            for cid, role in epcs:
                conn.execute(
                    insert(event_epc).values(code_id=cid, event_id=row_id, role=ROLE_IDS[role])
                )
            classes = []
            for c, q, uom, role in iter_quantities(e):
                cid = ids[canonical_key(c)]
                classes.append((cid, q, uom, role))
                conn.execute(
                    insert(event_quantity).values(
                        event_id=row_id, class_id=cid, quantity=q, uom=uom, role=ROLE_IDS[role]
                    )
                )
            for kind, typ, value in parties(e):
                conn.execute(
                    insert(event_party).values(
                        event_id=row_id, kind=1 if kind == "source" else 2, type=typ, value=value
                    )
                )
            stored.append(StoredEvent(row_id, e, "h", t, t, tuple(epcs), tuple(classes)))
        PROJECTOR.apply(conn, stored)


def setup_sites(engine: Engine) -> None:
    """A factory, a distributor and a hospital in two regions."""
    with engine.begin() as conn:
        upsert_enterprise(conn, USCC, "药厂", "manufacturer", region="110000")
        for loc, kind, region in (
            (FACTORY, "factory", "110000"),
            (DC, "warehouse", "310000"),
            (HOSP, "hospital", "310000"),
        ):
            upsert_site(conn, loc, USCC, loc[-9:], kind=kind, region=region)


def chain(n_packs: int = 10) -> list[Event]:
    """Commission 10 packs, pack 6 in a case, ship the case + 2 loose to the DC, receive, ship 5
    on to the hospital, receive, dispense 3, destroy 1."""
    packs = [pack(i) for i in range(n_packs)]
    case = case_code(1)
    return [
        object_event(packs, at(1), "commissioning", "active", action="ADD", site=FACTORY),
        aggregation_event(case, packs[:6], at(1, 11), site=FACTORY),
        object_event(
            [case, *packs[6:8]], at(2), "shipping", "in_transit", site=FACTORY, destination_site=DC
        ),
        object_event([case, *packs[6:8]], at(4), "receiving", "in_progress", site=DC),
        aggregation_event(case, [], at(5, 9), action="DELETE", site=DC),
        object_event(packs[:5], at(5), "shipping", "in_transit", site=DC, destination_site=HOSP),
        object_event(packs[:5], at(6), "receiving", "in_progress", site=HOSP),
        object_event(packs[:3], at(7), "dispensing", "dispensed", site=HOSP),
        object_event([packs[3]], at(8), "destroying", "destroyed", site=HOSP),
    ]


def levels(engine: Engine, as_of: date | None = None) -> dict[str, tuple[float, float]]:
    with engine.connect() as conn:
        return {s.site: (s.on_hand, s.in_transit) for s in ledger.stock(conn, as_of=as_of)}


def movements(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(
                    supply_movement.c.product,
                    supply_movement.c.site,
                    supply_movement.c.day,
                    supply_movement.c.kind,
                    supply_movement.c.packs,
                )
            )
            .tuples()
            .all()
        )


def test_chain_stock_known_answers(engine: Engine) -> None:
    setup_sites(engine)
    store(engine, chain())
    # factory 10 − 8 shipped = 2; DC 8 − 5 = 3; hospital 5 − 3 − 1 = 1; nothing in transit
    assert levels(engine) == {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    # on day 3 the 8 packs are in transit to the DC
    assert levels(engine, date(2026, 1, 3)) == {FACTORY: (2.0, 0.0), DC: (0.0, 8.0)}
    with engine.connect() as conn:
        daily = ledger.daily_stock(conn, P1, HOSP, date(2026, 1, 5), date(2026, 1, 8))
    assert [q for _, q in daily] == [0.0, 5.0, 2.0, 1.0]


def test_out_of_order_and_rebuild_identical(engine: Engine, sqlite_engine: Engine) -> None:
    setup_sites(engine)
    events = chain()
    # reverse arrival: receiving before shipping, aggregation after the case shipped
    for e in reversed(events):
        store(engine, [e])
    expected = {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    assert levels(engine) == expected
    before = movements(engine)
    with engine.begin() as conn:
        PROJECTOR.reset(conn)
        ids = conn.execute(select(event.c.id).order_by(event.c.event_time_us)).scalars().all()
        ledger.recompute(conn, ledger.affected_events(conn, ids))
    assert movements(engine) == before


def test_stock_take_reports_discrepancy(engine: Engine) -> None:
    setup_sites(engine)
    store(engine, chain())
    with engine.begin() as conn:
        lines = ledger.record_stock_take(conn, DC, {P1: 2, "9999999": 1}, counted_at=at(9))
    by_product = {d.product: d for d in lines}
    assert by_product[P1].book == 3.0 and by_product[P1].difference == -1.0
    assert by_product["9999999"].difference == 1.0
    with engine.connect() as conn:
        assert len(ledger.stock_takes(conn, DC, only_differences=True)) == 2


def test_stockout_adjusted_amc_by_hand() -> None:
    # 3 periods of 30 days: 60 packs (no stockout), 45 packs with 15 days out, 0 packs all out
    # adjusted: 60, 45 × 30 / 15 = 90, 0 (fully out: unchanged) → AMC = 50
    assert consumption.adjusted_amc([60, 45, 0], [0, 15, 30]) == pytest.approx(50.0)


def test_consumption_and_days_of_supply(engine: Engine) -> None:
    setup_sites(engine)
    packs = [pack(i) for i in range(100)]
    events = [
        object_event(packs, at(1), "commissioning", "active", action="ADD", site=HOSP),
    ]
    # dispense 2 packs a day for 30 days → 60 consumed, 40 left
    for d in range(30):
        events.append(
            object_event(packs[2 * d : 2 * d + 2], at(d + 2), "dispensing", "dispensed", site=HOSP)
        )
    store(engine, events)
    with engine.connect() as conn:
        weekly = consumption.consumption(
            conn, start=date(2026, 1, 1), end=date(2026, 1, 31), period="month"
        )
        lines = consumption.supply_lines(conn, as_of=date(2026, 1, 31), level="site", periods=1)
        region = consumption.supply_lines(conn, as_of=date(2026, 1, 31), level="region", periods=1)
    assert weekly["consumed"].sum() == 60
    (line,) = lines
    assert line.on_hand == 40 and line.amc == pytest.approx(60.0)
    assert line.days_of_supply == pytest.approx(20.0)
    assert region[0].where == "310000" and region[0].months_of_supply == pytest.approx(40 / 60)


def _daily(series: dict[str, np.ndarray]) -> pl.DataFrame:
    start = date(2024, 1, 1)
    frames = [
        pl.DataFrame(
            {
                "unique_id": uid,
                "ds": [start + timedelta(days=i) for i in range(len(y))],
                "y": y.astype(float),
            }
        )
        for uid, y in series.items()
    ]
    return pl.concat(frames)


def test_forecast_model_choice_and_intervals() -> None:
    rng = np.random.default_rng(3)
    days = 730
    t = np.arange(days)
    seasonal = rng.poisson(30 + 25 * np.sin(2 * np.pi * t / 365.25))
    sparse = rng.binomial(1, 0.03, days) * rng.integers(1, 4, days)
    run = forecast.forecast_frame(
        _daily({"seasonal": seasonal, "sparse": sparse}),
        end=date(2024, 1, 1) + timedelta(days=days - 1),
    )
    s, p = run.forecasts["seasonal"], run.forecasts["sparse"]
    assert p.kind == "intermittent" and p.model in forecast.INTERMITTENT_MODELS
    assert s.kind == "dense" and s.model in forecast.DENSE_MODELS
    assert all(lo <= m <= hi for lo, m, hi in zip(s.lo, s.mean, s.hi, strict=True))
    # held-out check: the chosen model's cross-validation error beats a flat naive forecast
    weeks = forecast.weekly(_daily({"seasonal": seasonal}))["y"].to_numpy()
    naive_mae = float(np.mean(np.abs(np.diff(weeks[-17:]))))
    assert s.mae is not None and s.mae < naive_mae


def test_warning_fires_for_discontinued_single_source_not_healthy(engine: Engine) -> None:
    setup_sites(engine)
    healthy, stopped = "1111111", "2222222"
    events = []
    serial = 0
    for product in (healthy, stopped):
        for d in range(1, 91, 7):  # weekly deliveries to the hospital keep up with demand
            if product == stopped and d > 60:
                break
            batch = [pack(serial + i, product) for i in range(14)]
            serial += 14
            events.append(object_event(batch, at(d), "receiving", "in_progress", site=HOSP))
            for k in range(7):
                events.append(
                    object_event(
                        batch[2 * k : 2 * k + 2],
                        at(d + k, 15),
                        "dispensing",
                        "dispensed",
                        site=HOSP,
                    )
                )
    store(engine, events)
    with engine.begin() as conn:
        signals.file_discontinuation(
            conn,
            product=stopped,
            holder=USCC,
            stop_date="2026-03-01",
            reason="生产线改造",
            remaining_packs=0,
        )
        signals.set_api_sources(conn, stopped, ["唯一原料药厂"])
        found = warnings.compute_warnings(conn, as_of=date(2026, 3, 31))
    products = {w.product: w for w in found}
    assert stopped in products and healthy not in products
    w = products[stopped]
    assert w.level in ("orange", "red") and w.expected_stockout is not None
    assert any("discontinuation" in r for r in w.reasons)
    assert any("single API" in r for r in w.reasons)


def test_matching_fefo_and_lead_time() -> None:
    today = date(2026, 3, 1)
    sources = [
        matching.Source("late", "P", "A", 100, today, date(2027, 1, 1)),
        matching.Source("early", "P", "A", 60, today, date(2026, 6, 1)),
        matching.Source("far", "P", "B", 500, today, date(2026, 5, 1)),
    ]
    sinks = [matching.Sink("need", "P", "A", 100, today + timedelta(days=5))]
    found, unmet = matching.solve(sources, sinks, {("B", "A"): 10.0})
    used = {m.source: m.quantity for m in found}
    # "far" would expire first but cannot arrive in time; the earlier-expiring local lot first
    assert "far" not in used and used == {"early": 60, "late": 40} and not unmet
    short = [matching.Sink("need", "P", "A", 1000, today + timedelta(days=3))]
    _, unmet = matching.solve(sources, short, {})
    assert unmet == {"need": 840.0}
