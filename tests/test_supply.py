"""Supply layer: ledger, consumption, AMC, forecasts, warnings, matching — on both databases.

Events are captured through the store's real capture path (``store.ingest.capture_document``).
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from sqlalchemy import Engine, func, select

from cli_run import run_main
from conftest import _empty as empty_store
from yaolian.cli.common import console
from yaolian.epcis.extensions import SALE_LINE_KEY
from yaolian.epcis.model import Event
from yaolian.store.ingest import capture_document
from yaolian.store.masterdata import upsert_enterprise, upsert_product, upsert_site, uscc_check_char
from yaolian.store.schema import code_state, event, supply_movement
from yaolian.supply import (
    consumption,
    evaluate,
    forecast,
    ledger,
    matching,
    reserves,
    risk,
    signals,
    warnings,
)
from yaolian.supply.ledger import Kind, day_number
from yaolian.supply.projection import PROJECTOR
from yaolian.trace.builders import aggregation_event, document, object_event

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
    """Capture events as one document through the store's real capture path (all projectors,
    the supply ledger among them, run inside its transaction)."""
    result = capture_document(engine, document(events))
    assert result.success and result.accepted == len(events), result.errors


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
            ).all()
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


def _declared_chain() -> list[Event]:
    """:func:`chain` plus an error declaration of its DC → hospital shipment."""
    events = chain()
    events[5]["eventID"] = "urn:uuid:1b3f6c1e-0000-4000-8000-000000000005"
    declaration = {"declarationTime": at(9).isoformat(), "reason": "incorrect_data"}
    return [*events, {**events[5], "errorDeclaration": declaration}]


def test_error_declaration_retracts_the_movements_of_the_declared_event(engine: Engine) -> None:
    """An error declaration (EPCIS: the event as captured, plus ``errorDeclaration``) says the
    event never happened: its stock movements go when the declaration arrives, and a rebuild
    agrees."""
    setup_sites(engine)
    *events, declaration = _declared_chain()
    store(engine, events)
    assert levels(engine) == {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    shipped_from_dc = [m for m in movements(engine) if m[1] == DC and m[3] == Kind.SHIP]
    store(engine, [declaration])
    # the shipment never happened as reported, yet the hospital received, sold and destroyed
    # 5 packs: its receipt takes them from the DC, where they were (发货未上报) — no pack is
    # counted twice, and the DC's stock drops on the day of the receipt, not of the shipment
    assert levels(engine) == {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    now_from_dc = [m for m in movements(engine) if m[1] == DC and m[3] == Kind.SHIP]
    assert [(m[2], m[4]) for m in shipped_from_dc] == [(day_number(at(5).date()), -5.0)]
    assert [(m[2], m[4]) for m in now_from_dc] == [(day_number(at(6).date()), -5.0)]
    with engine.begin() as conn:
        PROJECTOR.rebuild(conn)
    assert levels(engine) == {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    assert [m for m in movements(engine) if m[1] == DC and m[3] == Kind.SHIP] == now_from_dc


@pytest.mark.parametrize("seed", range(8))
def test_any_arrival_order_gives_the_in_order_movements(engine: Engine, seed: int) -> None:
    """Documents of any size arriving in any order (receipts before shipments, a packing after
    its case was shipped, the declaration before the event it retracts) end in the movements
    of an in-order capture, and a rebuild reproduces them."""
    setup_sites(engine)
    store(engine, _declared_chain())
    expected = movements(engine)
    assert levels(engine) == {FACTORY: (2.0, 0.0), DC: (3.0, 0.0), HOSP: (1.0, 0.0)}
    empty_store(engine)
    setup_sites(engine)
    rnd = random.Random(seed)
    shuffled = _declared_chain()
    rnd.shuffle(shuffled)
    while shuffled:
        size = rnd.randint(1, 3)
        store(engine, shuffled[:size])
        shuffled = shuffled[size:]
    assert movements(engine) == expected
    with engine.begin() as conn:
        PROJECTOR.rebuild(conn)
    assert movements(engine) == expected


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


def test_forecast_of_a_short_series_has_a_real_interval() -> None:
    """Weeks too few to cross-validate: the mean of the last four, an interval as wide as the
    weeks seen were apart (not the mean twice), last week's value as the naive baseline."""
    week_totals = [14, 35, 7, 21, 28, 14]  # six weeks, a day's demand on each week's Monday
    daily = np.zeros(7 * len(week_totals))
    daily[::7] = week_totals
    run = forecast.forecast_frame(
        _daily({"new": daily, "none": np.zeros(len(daily))}), end=date(2024, 2, 11)
    )
    f, zero = run.forecasts["new"], run.forecasts["none"]
    assert (f.kind, f.model) == ("short", "mean-4w")
    assert f.mean[0] == pytest.approx(np.mean(week_totals[-4:]))
    assert f.lo[0] == pytest.approx(np.quantile(week_totals, 0.1))
    assert f.hi[0] == pytest.approx(np.quantile(week_totals, 0.9))
    assert f.lo[0] < f.mean[0] < f.hi[0] and f.baseline[0] == 14
    assert zero.kind == "zero" and zero.lo == zero.mean == zero.hi == [0.0] * len(zero.mean)


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
        report = signals.file_discontinuation(
            conn,
            product=stopped,
            holder=USCC,
            stop_date="2026-03-01",
            reason="生产线改造",
            remaining_packs=0,
            filed_on="2026-02-01",  # the filing's own date, whenever it reaches the store
        )
        signals.set_api_sources(conn, stopped, ["唯一原料药厂"])
        found = warnings.compute_warnings(conn, as_of=date(2026, 3, 31))
        before = risk.assess(conn, date(2026, 1, 31), product=stopped)
        on_the_day = risk.assess(conn, date(2026, 2, 1), product=stopped)
    assert report.filed_at == datetime(2026, 2, 1, tzinfo=CST)
    # a report is known from its filing date on, never before (no look-ahead in evaluation)
    assert not any("discontinuation" in r for x in before for r in x.reasons)
    assert all(any("discontinuation" in r for r in x.reasons) for x in on_the_day)
    products = {w.product: w for w in found}
    assert stopped in products and healthy not in products
    w = products[stopped]
    assert w.level in ("orange", "red") and w.expected_stockout is not None
    assert any("discontinuation" in r for r in w.reasons)
    assert any("single API" in r for r in w.reasons)
    # nothing is made any more and no manufacturer holds stock: said so, not "24% of 0"
    assert any(
        r.startswith("supply limited") and "and none left at manufacturers" in r for r in w.reasons
    ), w.reasons
    # the same reasons in Chinese, one for one, for the pages
    assert len(w.reasons_zh) == len(w.reasons) and w.as_dict()["reasons_zh"] == w.reasons_zh
    assert any(r.startswith("已报告停产") for r in w.reasons_zh)
    assert any("原料药仅一个来源" in r for r in w.reasons_zh)
    assert any(r.startswith("供应受限") and "生产企业已无库存" in r for r in w.reasons_zh)
    # production resumes (恢复生产): withdrawn as of 3-20, the report counts until that day only
    with engine.begin() as conn:
        withdrawn = signals.withdraw_discontinuation(conn, report.id, withdrawn_on="2026-03-20")
        still = risk.assess(conn, date(2026, 3, 19), product=stopped)
        after = risk.assess(conn, date(2026, 3, 20), product=stopped)
        assert signals.discontinuations(conn) == []
        assert signals.discontinuations(conn, include_withdrawn=True) == [withdrawn]
    assert withdrawn.withdrawn_at == datetime(2026, 3, 20, tzinfo=CST)
    assert all(any("discontinuation" in r for r in x.reasons) for x in still)
    assert not any("discontinuation" in r for x in after for r in x.reasons)


def test_season_end_is_not_a_shortage(engine: Engine) -> None:
    """Two products consumed at 10 packs a day for eight weeks, then no more deliveries: a flu
    drug whose demand fell to a pack every other day (season over) is not warned with 3 days of
    supply on the 84-day rate, one still consumed at 5 a day is — it is short on the recent rate
    too."""
    setup_sites(engine)
    seasonal, steady = "3333333", "4444444"
    events: list[Event] = []
    serial = 0
    for product, late_per_day in ((seasonal, 0.5), (steady, 5.0)):
        late = [int(d * late_per_day) - int((d - 1) * late_per_day) for d in range(57, 91)]
        codes = [pack(serial + i, product) for i in range(560 + sum(late) + 20)]
        serial += len(codes)
        for week in range(8):
            batch = codes[week * 70 : week * 70 + 70] if week < 7 else codes[490:]
            events.append(
                object_event(batch, at(1 + 7 * week), "receiving", "in_progress", site=HOSP)
            )
        sold = 0
        for d, n in [(d, 10) for d in range(1, 57)] + list(zip(range(57, 91), late, strict=True)):
            if n:
                events.append(
                    object_event(
                        codes[sold : sold + n], at(d, 15), "dispensing", "dispensed", site=HOSP
                    )
                )
                sold += n
    store(engine, events)
    with engine.connect() as conn:
        found = {w.product for w in warnings.compute_warnings(conn, as_of=date(2026, 3, 31))}
    assert seasonal not in found and steady in found


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


STOCKED = ("commissioned", "active")  # code_state statuses of a pack on a site's shelf


def book_and_code_states(engine: Engine) -> tuple[dict[Any, float], dict[Any, float]]:
    """Packs on hand of P1 per (product, site): the ledger's, and the trace projection's
    count of codes on a shelf there."""
    with engine.connect() as conn:
        book = {(s.product, s.site): s.on_hand for s in ledger.stock(conn) if s.on_hand}
        counted = {
            (product, where): float(n)
            for product, where, n in conn.execute(
                select(code_state.c.product, code_state.c.site, func.count())
                .where(code_state.c.status.in_(STOCKED), code_state.c.product == P1)
                .group_by(code_state.c.product, code_state.c.site)
            )
        }
    return book, counted


def test_stock_equals_code_state(engine: Engine) -> None:
    """Stock per product × site from the ledger = packs in ``code_state`` with a stocked status
    at that site (the trace engineer's projection), after the same captured chain."""
    setup_sites(engine)
    store(engine, chain())
    extra = [pack(i) for i in range(20, 26)]
    store(  # a second delivery: commissioned, shipped loose, received, one dispensed
        engine,
        [
            object_event(extra, at(10), "commissioning", "active", action="ADD", site=FACTORY),
            object_event(
                extra[:4], at(11), "shipping", "in_transit", site=FACTORY, destination_site=HOSP
            ),
            object_event(extra[:4], at(12), "receiving", "in_progress", site=HOSP),
            object_event(extra[:1], at(13), "dispensing", "dispensed", site=HOSP),
        ],
    )
    book, counted = book_and_code_states(engine)
    assert book == counted == {(P1, FACTORY): 4.0, (P1, DC): 3.0, (P1, HOSP): 4.0}


def test_receiving_without_shipping_and_unrecorded_packing(engine: Engine) -> None:
    """A receipt nobody shipped adds stock and takes nothing out of transit; a case unpacked
    without its packing ever being reported held the packs it releases."""
    setup_sites(engine)
    packs = [pack(i) for i in range(4)]
    case = case_code(7)
    store(
        engine,
        [
            object_event([case], at(1), "receiving", "in_progress", site=DC),
            aggregation_event(case, packs, at(2), action="DELETE", site=DC),
            object_event(
                packs[:3], at(3), "shipping", "in_transit", site=DC, destination_site=HOSP
            ),
        ],
    )
    assert levels(engine) == {DC: (1.0, 0.0), HOSP: (0.0, 3.0)}


def _imperfect_chain() -> list[Event]:
    """A chain as real reporting leaves it: a case shipped whole and received pack by pack, a
    receipt sent twice, a shipment naming only the receiving party, a receipt whose shipping
    was never reported (发货未上报), a pack sold before its receipt was reported, a pack sent
    on by a distributor that never reported receiving it, and a pack never commissioned sold
    (假药)."""
    packs = [pack(i) for i in range(10)]
    hospital = "urn:epc:id:pgln:6901234.00003"
    return [
        object_event(packs, at(1), "commissioning", "active", action="ADD", site=FACTORY),
        aggregation_event(case_code(1), packs[:4], at(1, 11), site=FACTORY),
        object_event(
            [case_code(1)], at(2), "shipping", "in_transit", site=FACTORY, destination_site=DC
        ),
        object_event(packs[:4], at(3), "receiving", "in_progress", site=DC),
        object_event(packs[:1], at(3, 15), "receiving", "in_progress", site=DC),  # sent twice
        object_event(
            packs[4:6], at(2), "shipping", "in_transit", site=FACTORY, destination=hospital
        ),
        object_event(packs[4:6], at(3), "receiving", "in_progress", site=HOSP),
        object_event(packs[6:7], at(4), "receiving", "in_progress", site=HOSP),
        object_event(packs[1:3], at(5), "shipping", "in_transit", site=DC, destination_site=HOSP),
        object_event(packs[1:2], at(6), "dispensing", "dispensed", site=HOSP),
        object_event(
            packs[7:8], at(5), "shipping", "in_transit", site=FACTORY, destination_site=DC
        ),
        object_event(packs[7:8], at(6), "shipping", "in_transit", site=DC, destination_site=HOSP),
        object_event(packs[7:8], at(7), "receiving", "in_progress", site=HOSP),
        object_event([pack(99)], at(7), "dispensing", "dispensed", site=HOSP),
    ]


@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_stock_follows_each_pack_from_where_it_was(engine: Engine, seed: int | None) -> None:
    """Each event takes its packs from where the log last put them, not from where it is
    reported: stock equals the trace projection's code states, nothing is counted twice or
    left in transit for ever, every sale is consumption, in any arrival order and after a
    rebuild."""
    setup_sites(engine)
    events = _imperfect_chain()
    if seed is None:
        store(engine, events)
    else:
        random.Random(seed).shuffle(events)
        for start in range(0, len(events), 3):
            store(engine, events[start : start + 3])
    # factory: 10 made, 8 gone (a case of 4, 2 to the hospital, 1 unreported, 1 to the DC);
    # DC: 4 received (once), 2 shipped on, the forwarded pack in and out of transit;
    # hospital: 2 + the unreported 1 + the forwarded 1 on hand, 1 still on the road to it
    expected = {FACTORY: (2.0, 0.0), DC: (2.0, 0.0), HOSP: (4.0, 1.0)}
    assert levels(engine) == expected
    book, counted = book_and_code_states(engine)
    with engine.connect() as conn:
        sold = conn.execute(
            select(func.sum(supply_movement.c.packs)).where(
                supply_movement.c.kind == int(Kind.DISPENSE), supply_movement.c.site == HOSP
            )
        ).scalar_one()
    assert book == counted
    assert sold == -2.0  # the pack sold off the road and the counterfeit are both demand
    before = movements(engine)
    with engine.begin() as conn:
        PROJECTOR.rebuild(conn)
    assert movements(engine) == before


def test_a_pack_repacked_without_unpacking_counts_once(engine: Engine) -> None:
    """A pack packed into a second case with no unpacking from the first has left the first:
    each case ships what it holds then — the second packing arriving in an earlier document or
    in the same one — and a rebuild (which learns who was packed twice from the whole log)
    gives the same movements."""
    setup_sites(engine)
    packs = [pack(i) for i in range(6)]
    first, second, pallet = case_code(1), case_code(2), case_code(3)
    store(
        engine,
        [
            object_event(packs, at(1), "commissioning", "active", action="ADD", site=FACTORY),
            aggregation_event(first, packs[:3], at(1, 11), site=FACTORY),
            aggregation_event(second, packs[:1], at(1, 12), site=FACTORY),  # moved, not unpacked
        ],
    )
    ship = {"site": FACTORY, "destination_site": DC}
    store(engine, [object_event([first], at(2), "shipping", "in_transit", **ship)])
    assert levels(engine) == {FACTORY: (4.0, 0.0), DC: (0.0, 2.0)}  # packs 1 and 2
    store(
        engine,
        [
            aggregation_event(second, packs[3:5], at(3), site=FACTORY),
            aggregation_event(pallet, [second, packs[5]], at(3, 11), site=FACTORY),
            aggregation_event(second, packs[4:5], at(3, 12), action="DELETE", site=FACTORY),
            aggregation_event(pallet, packs[4:5], at(3, 13), site=FACTORY),  # into the pallet
            object_event([pallet], at(4), "shipping", "in_transit", **ship),
        ],
    )
    assert levels(engine) == {DC: (0.0, 6.0)}  # each pack shipped once, none left
    before = movements(engine)
    with engine.begin() as conn:
        PROJECTOR.rebuild(conn)
    assert movements(engine) == before


def test_split_sale_counts_units(engine: Engine) -> None:
    """An NHSA split sale (拆零, ``partially_dispensed`` with a sale line) takes units out of an
    opened pack; consumption counts them as fractions of ``units_per_pack``."""
    setup_sites(engine)
    with engine.begin() as conn:
        upsert_product(conn, P1, "阿莫西林胶囊", units_per_pack=24, holder_uscc=USCC)
    packs = [pack(i) for i in range(2)]
    sale = object_event(
        [packs[0]],
        at(3),
        "dispensing",
        "partially_dispensed",
        site=HOSP,
        extra={SALE_LINE_KEY: {"splitSale": True, "quantity": 6, "units": 6}},
    )
    store(
        engine,
        [
            object_event(packs, at(1), "receiving", "in_progress", site=HOSP),
            sale,
            object_event([packs[1]], at(4), "dispensing", "dispensed", site=HOSP),
        ],
    )
    with engine.connect() as conn:
        (line,) = ledger.stock(conn)
        used = consumption.consumption(conn, start=date(2026, 1, 1), end=date(2026, 1, 5))
    assert (line.on_hand, line.units) == (1.0, -6.0)  # the opened pack stays, 6 units sold
    assert line.net_packs == pytest.approx(0.75)  # what is left of it, in packs
    assert used["consumed"].sum() == pytest.approx(1.25)


def test_evaluate_warnings_scoring() -> None:
    """Hits, misses, late warnings, false alarms and unverifiable claims by hand."""
    truth = {
        "start": "2026-01-01",
        "days": 100,
        "stockouts": [
            {
                "product_code": "A",
                "region": "440000",
                "first_stockout": "2026-02-20",
                "cause": "discontinuation",
            },
            {
                "product_code": "B",
                "region": "330000",
                "first_stockout": "2026-02-01",
                "cause": "none",
            },
            {
                "product_code": "C",
                "region": "510000",
                "first_stockout": "2026-01-20",
                "cause": "none",
            },
            {
                "product_code": "Z",
                "region": "510000",
                "first_stockout": "2025-12-20",
                "cause": "none",
            },
        ],
    }
    d = date.fromisoformat
    first = {
        ("A", "440000"): (d("2026-01-15"), d("2026-02-25")),  # hit, 36 days ahead
        ("C", "510000"): (d("2026-01-22"), d("2026-01-25")),  # after the stockout: late
        ("D", "440000"): (d("2026-01-08"), d("2026-02-01")),  # never stocks out: false alarm
        ("E", "440000"): (d("2026-03-01"), d("2026-06-01")),  # claim beyond the run
    }
    dates = [d("2026-01-01") + timedelta(days=7 * k) for k in range(12)]
    m = evaluate.score(first, truth, dates, "by hand")
    assert (m.count("hit"), m.count("miss"), m.count("late")) == (1, 1, 1)
    assert (m.count("false_alarm"), m.count("unverifiable"), m.unscorable) == (1, 1, 1)
    assert m.recall == pytest.approx(1 / 3) and m.precision == pytest.approx(0.5)
    assert m.median_lead == 36.0 and m.recall_by_cause() == {"discontinuation": 1.0, "none": 0.0}
    assert evaluate.province_of("440100") == "440000"


def test_evaluate_warnings_on_a_store(engine: Engine) -> None:
    """End to end: the discontinued product of the warning test is warned of ahead of its
    (hand-written) ground-truth stockout; the naive baseline is scored the same way."""
    test_warning_fires_for_discontinued_single_source_not_healthy(engine)
    truth = {
        "start": "2026-03-01",
        "days": 60,
        "stockouts": [
            {
                "product_code": "2222222",
                "region": "310000",
                "first_stockout": "2026-04-20",
                "cause": "discontinuation",
            }
        ],
    }
    dates = [date(2026, 3, 10), date(2026, 3, 31)]
    with engine.connect() as conn:
        risk = evaluate.evaluate_warnings(conn, truth, dates)
        naive = evaluate.evaluate_warnings(conn, truth, dates, method="naive")
    assert risk.recall == 1.0 and risk.leads and risk.leads[0] >= 21
    assert naive.as_dict()["method"].startswith("naive")


def test_case_code_without_contents_resolves_to_packs(engine: Engine) -> None:
    """A case-level NMPA code (箱 level 药品标识码) received and shipped with no aggregation
    events counts as the packs its product master says a case holds ("20盒/箱")."""
    setup_sites(engine)
    with engine.begin() as conn:
        upsert_enterprise(conn, USCC, "药厂", "manufacturer", region="110000")
        common = {"dosage_form": "片剂", "strength": "10mg", "holder_uscc": USCC}
        upsert_product(conn, P1, "硝苯地平控释片", pack_spec="10mg×7片", **common)
        upsert_product(
            conn, "8385794", "硝苯地平控释片", pack_spec="20盒/箱", packaging_level=2, **common
        )
    case = pack(1, "8385794")
    store(
        engine,
        [
            object_event([case], at(1), "receiving", "in_progress", site=DC),
            object_event([case], at(2), "shipping", "in_transit", site=DC, destination_site=HOSP),
        ],
    )
    with engine.connect() as conn:
        lines = {(s.product, s.site): (s.on_hand, s.in_transit) for s in ledger.stock(conn)}
    assert lines == {(P1, HOSP): (0.0, 20.0)}  # the DC's stock is back to nothing


def test_trend_test_prunes_candidates() -> None:
    """Only series whose year-over-year change is significant let AutoETS fit a trend and Theta
    compete; a purely seasonal series is no trend."""
    rng = np.random.default_rng(5)
    t = np.arange(730)
    growing = rng.poisson(20 + 0.05 * t)
    seasonal = rng.poisson(30 + 25 * np.sin(2 * np.pi * t / 365.25))
    weeks = forecast.weekly(_daily({"growing": growing, "seasonal": seasonal}))
    assert forecast.trended(weeks) == {"growing"}
    names = [str(m) for m in forecast._models("dense", 52, trend=False)]
    assert "Theta" not in names and names[-1] == forecast.BASELINE
    run = forecast.forecast_frame(
        _daily({"growing": growing}), end=date(2024, 1, 1) + timedelta(days=729), n_jobs=1
    )
    g = run.forecasts["growing"]
    assert g.kind == "dense" and g.mean[-1] > 7 * 20  # the forecast keeps the growth


def test_cli_discontinue_records_the_filing_date(
    sqlite_url: str,
    sqlite_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``yaolian supply discontinue`` stores the date the holder filed, not the time it ran;
    a malformed date is a clear error naming the field."""
    common = ("supply", "discontinue", P1, USCC, "2026-05-01", "停产", "--db", sqlite_url)
    code, out = run_main(monkeypatch, capsys, *common, "--json", "--filed", "2026-03-02")
    assert code == 2 and "product" in out and "unknown product 8385793" in out  # no such product
    upsert_enterprise(sqlite_engine, USCC, "示例制药", "holder")
    upsert_product(sqlite_engine, P1, "阿莫西林胶囊", holder_uscc=USCC)
    code, out = run_main(monkeypatch, capsys, *common, "--json", "--filed", "2026-03-02")
    assert code == 0, out
    code, out = run_main(monkeypatch, capsys, *common, "--filed", "2026-13-40")
    assert code == 2 and "filed_on" in out
    with sqlite_engine.connect() as conn:
        (report,) = signals.discontinuations(conn)
    assert report.filed_at == datetime(2026, 3, 2, tzinfo=CST)
    # ``supply withdraw``: as of its own date, not before the filing
    withdraw = ("supply", "withdraw", str(report.id), "--db", sqlite_url)
    code, out = run_main(monkeypatch, capsys, *withdraw, "--on", "2026-03-01")
    assert code == 2 and "withdrawn_on" in out and "before it was filed" in out
    code, out = run_main(monkeypatch, capsys, *withdraw, "--on", "2026-04-01", "--json")
    assert code == 0 and orjson.loads(out)["withdrawn_at"] == "2026-04-01T00:00:00+08:00"
    with sqlite_engine.connect() as conn:
        assert signals.discontinuations(conn) == []


def test_cli_stock_take(
    sqlite_url: str,
    sqlite_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``yaolian supply stocktake`` records counts against book stock; ``stocktakes`` lists the
    differences; a malformed count is a clear error and records nothing."""
    setup_sites(sqlite_engine)
    store(sqlite_engine, chain())
    take = ("supply", "stocktake", DC, "--at", "2026-01-09T12:00:00+08:00", "--db", sqlite_url)
    code, out = run_main(monkeypatch, capsys, *take, f"{P1}=oops")
    assert code == 2 and f"'{P1}=oops' is not PRODUCT=PACKS" in out
    code, out = run_main(monkeypatch, capsys, *take, f"{P1}=2", "--json")
    assert code == 0, out
    (line,) = orjson.loads(out)
    assert (line["product"], line["counted"], line["book"], line["difference"]) == (
        P1,
        2.0,
        3.0,
        -1.0,
    )
    listed = ("supply", "stocktakes", "--differences", "--json", "--db", sqlite_url)
    code, out = run_main(monkeypatch, capsys, *listed)
    assert code == 0 and [x["id"] for x in orjson.loads(out)] == [line["id"]]


def test_cli_tables_name_products_and_sites(
    sqlite_url: str,
    sqlite_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The supply tables show the product's 通用名 and the site's name from master data (a code
    without master data as itself); ``--json`` keeps the codes, with ``net_packs``; warnings
    take ``--product`` and ``--region`` like the API."""
    setup_sites(sqlite_engine)
    with sqlite_engine.begin() as conn:
        upsert_product(conn, P1, "阿莫西林胶囊", units_per_pack=24, holder_uscc=USCC)
    unregistered = "urn:epc:id:sgln:6909999.00009.0"
    busy = [pack(60 + i) for i in range(20)]  # the hospital sells fast: days of supply < 14
    store(
        sqlite_engine,
        [
            *chain(),
            object_event([pack(50)], at(6), "receiving", "in_progress", site=unregistered),
            object_event(busy, at(6), "receiving", "in_progress", site=HOSP),
            object_event(busy[:18], at(7), "dispensing", "dispensed", site=HOSP),
        ],
    )
    monkeypatch.setattr(console, "width", 250)  # a wide terminal: no cell cut short
    code, out = run_main(monkeypatch, capsys, "supply", "stock", "--db", sqlite_url)
    assert code == 0, out
    hospital = next(line for line in out.splitlines() if HOSP[-9:] in line)
    assert "阿莫西林胶囊" in hospital and HOSP not in hospital  # the site's name, not its URI
    assert unregistered in out  # no master data: the URI itself
    cells = [cell.strip() for cell in hospital.split("│")[1:-1]]
    assert cells[5:9] == ["3", "0", "3", "0"]  # packs as people write them, not 3.0
    code, out = run_main(
        monkeypatch, capsys, "supply", "stock", "--site", "nowhere", "--db", sqlite_url
    )
    assert code == 0 and out.strip() == "Stock: none found"  # not an empty grid
    code, out = run_main(monkeypatch, capsys, "supply", "stock", "--json", "--db", sqlite_url)
    rows = {r["site"]: r for r in orjson.loads(out)}
    assert rows[HOSP]["net_packs"] == rows[HOSP]["on_hand"] == 3.0
    naive = ("supply", "warnings", "--naive", "--as-of", "2026-01-20", "--json")
    code, out = run_main(monkeypatch, capsys, *naive, "--db", sqlite_url)
    assert code == 0 and {w["region"] for w in orjson.loads(out)} == {"310000"}, out
    for option in (("--product", "1111111"), ("--region", "440000")):
        code, out = run_main(monkeypatch, capsys, *naive, *option, "--db", sqlite_url)
        assert code == 0 and orjson.loads(out) == [], option


def test_cli_writes_refuse_a_product_code_longer_than_the_store_keeps(
    db_url: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PostgreSQL refuses text longer than varchar(20) where SQLite stores it: a stock-take or a
    reserve plan for a 21-character product was an internal error there, and kept on SQLite.
    Both stores now refuse it, naming the field."""
    long, far = "9" * 21, "urn:x:" + "f" * 600  # a site longer than the store indexes
    for args, expected in (
        (
            ("supply", "stocktake", DC, f"{long}=3", "--at", "2026-01-09"),
            f"counts/{long}: product code must have 1 to 20 characters",
        ),
        (
            ("reserves", "plan", long, "central", "10", DC),
            "product: product code must have 1 to 20 characters",
        ),
        (
            ("supply", "stocktake", far, f"{P1}=3", "--at", "2026-01-09"),
            "site: site longer than 500 bytes (UTF-8)",
        ),
    ):
        code, out = run_main(monkeypatch, capsys, *args, "--db", db_url)
        assert code == 2, out
        assert expected in " ".join(out.split())
    with engine.connect() as conn:
        assert ledger.stock_takes(conn) == [] and reserves.reserve_status(conn) == []
