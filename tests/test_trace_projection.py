"""Trace projections: code state, aggregation history, custody — on hand-built chains with known
answers, arriving in and out of event-time order, and equal after ``rebuild``."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from yaolian.store.engine import writing
from yaolian.store.projections import rebuild
from yaolian.store.schema import aggregation, alert, custody, supply_movement
from yaolian.trace.builders import object_event
from yaolian.trace.projection import rebuild_all
from yaolian.verify.dispense import SaleLine, record_sales
from yaolian.verify.status import verify


def chain(w: Any) -> list[dict[str, Any]]:
    """3 packs → case → pallet; MFR → DIST (pallet); unpack; DIST → PHA (case); pack 0 sold."""
    packs = [w.pack(i) for i in range(3)]
    case, pallet = w.case(1), w.pallet(1)
    s = w.sites
    return [
        w.commission(packs, 0, lot="L001", expiry="2027-12-31", produced="2025-12-31"),
        w.commission(case, 0.5),
        w.pack_into(case, packs, 1),
        w.pack_into(pallet, [case], 2),
        w.ship(pallet, 3, "MFR", "DIST", read_point=s["MFR"], destination_site=s["DIST"]),
        w.receive(pallet, 20, "DIST", src="MFR", disposition="in_progress"),
        w.unpack(pallet, 21, "DIST"),
        w.ship(case, 30, "DIST", "PHA", read_point=s["DIST"]),
        w.receive(case, 40, "PHA", src="DIST"),
        object_event([packs[0]], w.at(50), "retail_selling", "retail_sold", site=s["PHA"]),
    ]


def check_chain(w: Any) -> None:
    sold, kept = w.state(w.pack(0)), w.state(w.pack(1))
    assert sold.status == "dispensed" and sold.sales == 1 and sold.whole_sales == 1
    assert kept.status == "active"
    assert kept.custodian == w.parties["PHA"] and kept.site == w.sites["PHA"]
    assert kept.product == "8600001" and kept.lot == "L001" and kept.expiry == "2027-12-31"
    assert kept.production_date == "2025-12-31"
    assert kept.parent_id == w.code_id(w.case(1))
    case = w.state(w.case(1))
    assert case.parent_id is None and case.has_children
    assert w.state(w.pallet(1)).custodian == w.parties["DIST"]
    with w.engine.connect() as conn:
        hops = conn.execute(
            select(custody)
            .where(custody.c.code_id == w.code_id(w.pack(1)))
            .order_by(custody.c.ship_us)
        ).all()
        intervals = conn.execute(
            select(aggregation).where(aggregation.c.child_id == w.code_id(w.case(1)))
        ).all()
    assert [(h.from_party, h.to_party) for h in hops] == [
        (w.parties["MFR"], w.parties["DIST"]),
        (w.parties["DIST"], w.parties["PHA"]),
    ]
    assert hops[0].via_id == w.code_id(w.pallet(1)) and hops[1].via_id == w.code_id(w.case(1))
    assert all(h.recv_event_id is not None for h in hops)
    assert len(intervals) == 1 and intervals[0].to_us is not None  # unpacked at DIST


def test_chain_in_order(trace_world: Any) -> None:
    trace_world.capture(*chain(trace_world))
    check_chain(trace_world)
    assert (
        trace_world.state(trace_world.pack(2)).last_us
        == trace_world.state(trace_world.case(1)).last_us
    )


def test_chain_one_event_per_capture(trace_world: Any) -> None:
    for ev in chain(trace_world):
        trace_world.capture(ev)
    check_chain(trace_world)


def assert_rebuild_reproduces(w: Any) -> None:
    """A rebuild from the log gives the very projection rows the captures left, also when it
    folds every aggregation component in a pass of its own."""
    before = w.snapshot()
    rebuild(w.engine)
    assert w.snapshot() == before
    with writing(w.engine) as conn:
        assert rebuild_all(conn, codes_per_pass=1) == len(before["code_state"])
    assert w.snapshot() == before


@pytest.mark.parametrize("split", range(1, 10))
def test_in_order_chain_in_two_documents(trace_world: Any, split: int) -> None:
    """Every cut of the in-order chain gives the known answer, as a rebuild does."""
    events = chain(trace_world)
    trace_world.capture(*events[:split])
    trace_world.capture(*events[split:])
    check_chain(trace_world)
    assert_rebuild_reproduces(trace_world)


def test_shipment_reaches_stored_contents_packed_in_the_same_document(trace_world: Any) -> None:
    """A stored case of packs put on a new pallet and the pallet shipped, in one document: the
    forward fold loads the stored contents that the shipment reaches through the new packing."""
    w = trace_world
    packs = [w.pack(i) for i in range(3)]
    w.capture(w.commission(packs, 0, lot="L001"), w.commission(w.case(1), 0.5))
    w.capture(w.pack_into(w.case(1), packs, 1))
    w.capture(
        w.pack_into(w.pallet(1), [w.case(1)], 2),
        w.ship(w.pallet(1), 3, "MFR", "DIST", read_point=w.sites["MFR"]),
    )
    st = w.state(packs[1])
    assert st.status == "in_transit" and st.open_ship_event_id is not None
    assert_rebuild_reproduces(w)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_out_of_order_arrival_equals_rebuild(trace_world: Any, seed: int) -> None:
    events = chain(trace_world)
    random.Random(seed).shuffle(events)
    for ev in events:
        trace_world.capture(ev)
    check_chain(trace_world)
    before = trace_world.snapshot()
    stock = movements(trace_world.engine)
    assert stock  # the supply ledger's set-based rebuild runs in the same rebuild
    rebuild(trace_world.engine)
    assert trace_world.snapshot() == before
    assert movements(trace_world.engine) == stock


def movements(engine: Any) -> list[tuple[Any, ...]]:
    """Every ``supply_movement`` row (ids left out), sorted."""
    cols = [c for c in supply_movement.c if c.name != "id"]
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(*cols)))


def test_receipt_before_shipping_and_late_commissioning(trace_world: Any) -> None:
    w = trace_world
    events = chain(w)
    late = [events[0], events[4]]  # commissioning and the first shipping arrive last
    for ev in events:
        if ev not in late:
            w.capture(ev)
    early = w.state(w.pack(1))
    assert early.commission_event_id is None  # not known yet
    w.capture(*late)
    check_chain(w)
    assert_rebuild_reproduces(w)


def test_repack_follows_the_new_case(trace_world: Any) -> None:
    w = trace_world
    w.capture(*chain(w)[:6])  # up to the receipt of the pallet at DIST
    moved = w.pack(2)
    w.capture(
        w.unpack(w.case(1), 22, "DIST", children=[moved]),
        w.pack_into(w.case(2), [moved], 23, site="DIST"),
        w.ship(w.case(2), 24, "DIST", "PHB"),
    )
    assert w.state(moved).status == "in_transit"
    assert w.state(moved).parent_id == w.code_id(w.case(2))
    assert w.state(w.pack(1)).status == "active"  # still in case 1 at DIST
    assert w.state(w.pack(1)).custodian == w.parties["DIST"]
    assert_rebuild_reproduces(w)


@pytest.mark.parametrize("received_as", ["active", "returned"])
def test_return_to_distributor(trace_world: Any, received_as: str) -> None:
    """A return (退货) is in transit until received, then back in stock at the receiver —
    also when the receipt keeps the disposition ``returned``, as an NMPA data set's 退货入库
    row reads."""
    w = trace_world
    w.capture(*chain(w)[:9])
    w.capture(w.ship(w.case(1), 60, "PHA", "DIST", disposition="returned"))
    assert w.state(w.pack(1)).status == "in_transit"
    w.capture(w.receive(w.case(1), 70, "DIST", disposition=received_as))
    st = w.state(w.pack(1))
    assert st.status == "active" and st.custodian == w.parties["DIST"]
    with w.engine.connect() as conn:
        kinds = [
            r.kind
            for r in conn.execute(
                select(custody)
                .where(custody.c.code_id == w.code_id(w.pack(1)))
                .order_by(custody.c.ship_us)
            )
        ]
    assert kinds == ["shipping", "shipping", "returning"]
    with w.engine.connect() as conn:
        assert verify(conn, w.pack(1)).status == "genuine"  # not 在途 for ever
    assert_rebuild_reproduces(w)


def test_a_pack_recalled_by_its_holder_stays_recalled_through_its_return(
    trace_world: Any,
) -> None:
    """A pharmacy marks a pack recalled (召回, disposition recalled) and sends it back; received at
    the distributor it is still recalled, not sellable again — and selling it there is the
    recalled-sale anomaly (a recalled pack re-entering the market)."""
    w = trace_world
    w.capture(*chain(w)[:9])
    pack = w.pack(1)
    w.capture(
        object_event([pack], w.at(60), "holding", "recalled", site=w.sites["PHA"]),  # quarantined
        w.ship(pack, 61, "PHA", "DIST", disposition="returned"),
        w.receive(pack, 70, "DIST", disposition="returned"),
    )
    st = w.state(pack)
    assert (st.status, st.custodian) == ("recalled", w.parties["DIST"])
    with w.engine.connect() as conn:
        assert verify(conn, pack).status == "recalled"
    record_sales(w.engine, [SaleLine((pack,), False, 1, w.sites["DIST"], w.at(80))])
    with w.engine.connect() as conn:
        rules = {
            r.rule for r in conn.execute(select(alert).where(alert.c.code_id == w.code_id(pack)))
        }
    assert "recalled_sale" in rules
    assert_rebuild_reproduces(w)


@pytest.mark.parametrize("gone", ["sold", "destroyed"])
def test_a_pack_gone_from_the_market_stays_gone_when_it_moves_again(
    trace_world: Any, gone: str
) -> None:
    """回流: a pack sold to a patient (or destroyed) that turns up in a shipment and is received
    by a distributor still reads sold (destroyed) — not genuine — while its custody is kept."""
    w = trace_world
    w.capture(*chain(w)[:9])
    pack = w.pack(1)
    if gone == "sold":
        record_sales(w.engine, [SaleLine((pack,), False, 1, w.sites["PHA"], w.at(55))])
    else:
        w.capture(w.destroy(pack, 55, "PHA"))
    w.capture(w.ship(pack, 61, "PHA", "DIST"), w.receive(pack, 70, "DIST"))
    st = w.state(pack)
    expected = "dispensed" if gone == "sold" else "destroyed"
    assert (st.status, st.custodian) == (expected, w.parties["DIST"])
    with w.engine.connect() as conn:
        assert verify(conn, pack).status == expected
    assert_rebuild_reproduces(w)


def test_error_declaration_undoes_an_event(trace_world: Any) -> None:
    w = trace_world
    events = chain(w)[:9]
    wrong = w.ship(w.case(1), 45, "PHA", "PHB")
    wrong["eventID"] = "urn:uuid:6f1a3c2e-0000-4000-8000-000000000001"
    w.capture(*events, wrong)
    assert w.state(w.pack(1)).status == "in_transit"
    declared = {
        **wrong,
        "errorDeclaration": {"declarationTime": w.at(46).isoformat(), "reason": "incorrect_data"},
    }
    w.capture(declared)  # same eventID, with errorDeclaration: the shipping never happened
    st = w.state(w.pack(1))
    assert st.status == "active" and st.custodian == w.parties["PHA"]
    assert_rebuild_reproduces(w)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=st.permutations(range(10)), split=st.integers(min_value=1, max_value=9))
def test_any_arrival_order_gives_the_chain_and_equals_rebuild(
    sqlite_engine: Any, order: list[int], split: int
) -> None:
    """Property: whatever order the chain's events arrive in (in two documents), the state is
    the known answer and a rebuild reproduces every projection row."""
    from conftest import TraceWorld, _empty

    _empty(sqlite_engine)
    w = TraceWorld(sqlite_engine)
    events = chain(w)
    shuffled = [events[i] for i in order]
    w.capture(*shuffled[:split])
    w.capture(*shuffled[split:])
    check_chain(w)
    assert_rebuild_reproduces(w)


def test_grouped_fold_equals_code_by_code(trace_world: Any) -> None:
    """The fold applies an event once per group of codes in the same state and copies the
    result; folding code by code gives the same states, rows and alerts (containers shipped,
    received, unpacked, carrying sensor readings, with a return)."""
    from yaolian.trace.projection import fold_log
    from yaolian.trace.state import STATE_COLUMNS

    w = trace_world
    w.capture(*chain(w))
    s = w.sites
    w.capture(
        object_event([w.case(1)], w.at(41), "storing", site=s["PHA"], temperatures=[4.0, 30.0]),
        w.ship(
            w.case(1),
            42,
            "PHA",
            "DIST",
            disposition="returned",
            read_point=s["PHA"],
            destination_site=s["DIST"],
        ),
        object_event([w.case(1)], w.at(50), "receiving", "active", site=s["DIST"]),
    )

    def rows(machine: Any) -> dict[str, list[str]]:
        out = machine.out
        return {
            "states": sorted(
                repr(tuple(getattr(st, c) for c in STATE_COLUMNS)) for st in machine.states.values()
            ),
            **{
                name: sorted(repr(sorted(r.items())) for r in getattr(out, name))
                for name in ("aggregation", "custody", "custody_receipts", "dispense", "sensor")
            },
            "triggers": sorted(repr(t) for t in out.triggers),
        }

    with w.engine.connect() as conn:
        grouped = fold_log(conn)
        single = fold_log(conn, grouped=False)
    assert rows(grouped) == rows(single)
    assert len(grouped.out.custody) >= 8  # packs inherited the hand-overs of their containers
    assert len(grouped.out.sensor) == 4  # the case and its three packs
