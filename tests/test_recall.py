"""Recall scope (holders through aggregation, in transit, dispensed) and progress."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from yaolian.epcis.model import Event, to_epoch_us
from yaolian.errors import ForbiddenError, NotFoundError, ValidationError
from yaolian.store.access import Viewer
from yaolian.store.engine import alembic_config, forget_migrated, upgrade, writing
from yaolian.store.projections import rebuild
from yaolian.store.schema import batch_party
from yaolian.trace.builders import object_event
from yaolian.trace.recall import (
    NOTICE_HEADER,
    close_recall,
    create_recall,
    list_recalls,
    notice_csv,
    notice_rows,
    notice_xlsx,
    recall_scope,
)
from yaolian.verify.dispense import SaleLine, record_sales


def at_the_distributor(w: Any) -> tuple[list[str], list[Event]]:
    """Packs 0–5 of batch L001 in 2 cases (0–2 in case 1, 3–5 in case 2) on a pallet, shipped
    to DIST, received and unpacked there; pack 9 (batch L002) is in case 1 too: the packs and
    the events."""
    packs = [w.pack(i) for i in range(6)]
    return packs, [
        w.commission(packs, 0, lot="L001", expiry="2027-12-31"),
        w.commission(w.pack(9), 0, lot="L002", expiry="2027-12-31"),
        w.pack_into(w.case(1), [*packs[:3], w.pack(9)], 1),
        w.pack_into(w.case(2), packs[3:], 1),
        w.pack_into(w.pallet(1), [w.case(1), w.case(2)], 2),
        w.ship(w.pallet(1), 3, "MFR", "DIST"),
        w.receive(w.pallet(1), 20, "DIST"),
        w.unpack(w.pallet(1), 21, "DIST"),
    ]


def spread(w: Any) -> list[str]:
    """:func:`at_the_distributor`, then case 2 goes on to PHA, where one pack is sold; case 1
    stays at DIST."""
    packs, events = at_the_distributor(w)
    w.capture(*events, w.ship(w.case(2), 30, "DIST", "PHA"), w.receive(w.case(2), 40, "PHA"))
    record_sales(
        w.engine, [SaleLine((packs[3],), False, 1, w.sites["PHA"], w.at(50), "L001", "S1")]
    )
    return packs


def test_batch_scope_holders_transit_dispensed(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    rid = create_recall(w.engine, klass=1, reason="无菌检查不合格", batches=["8600001/L001"])
    scope = recall_scope(w.engine, rid)
    assert scope["total"] == 6
    holders = {h["holder"]: h["count"] for h in scope["holders"]}
    assert holders == {"示例医药物流有限公司": 3, "北京示例大药房": 2}
    (sold,) = scope["dispensed"]
    assert sold["holder"] == "北京示例大药房" and sold["codes"] == 1
    assert scope["in_transit"] == []
    assert scope["progress"]["outstanding"] == 5


def test_pallet_code_recall_and_in_transit(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    w.capture(w.ship(w.case(1), 60, "DIST", "PHB"))
    rid = create_recall(w.engine, klass=2, reason="标签错误", codes=[w.case(1)])
    scope = recall_scope(w.engine, rid)
    assert scope["codes"] == 5  # the case and its 4 packs (two batches)
    assert scope["holders"] == []
    (transit,) = scope["in_transit"]
    assert transit["from"] == "示例医药物流有限公司" and transit["to"] == "广州示例大药房"
    assert transit["count"] == 5


def test_progress_with_returns_and_destruction(trace_world: Any) -> None:
    w = trace_world
    packs = spread(w)
    rid = create_recall(w.engine, klass=2, reason="含量偏低", batches=["8600001/L001"], now_us=0)
    w.capture(w.ship(w.case(2), 70, "PHA", "DIST", disposition="returned"))
    w.capture(w.destroy(packs[:3], 80, "DIST"))
    progress = recall_scope(w.engine, rid)["progress"]
    assert progress["destroyed"] == 3
    assert progress["returned"] == 2  # packs 4 and 5 (pack 3 was sold)
    assert progress["outstanding"] == 0 and progress["percent_complete"] == 100.0


def test_bad_recalls_are_refused_whole(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    with pytest.raises(ValidationError) as info:
        create_recall(
            w.engine,
            klass=4,
            reason="",
            batches=["nolot", "8" * 21 + "/L001", "8600001/" + "L" * 201],  # too long
            codes=[w.pack(404), "x"],
        )
    places = {p.place for p in info.value.problems}
    assert {"class", "reason", "batches[0]", "batches[1]", "batches[2]", "codes[0]"} <= places
    assert list_recalls(w.engine) == []


def test_enterprise_sees_own_recalls(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    rid = create_recall(
        w.engine, klass=3, reason="包装", batches=["8600001/L001"], enterprise_id=w.ids["MFR"]
    )
    mfr = Viewer(enterprise_id=w.ids["MFR"], role="enterprise")
    other = Viewer(enterprise_id=w.ids["PHB"], role="enterprise")
    assert [r["id"] for r in list_recalls(w.engine, mfr)] == [rid]
    assert list_recalls(w.engine, other) == []
    with pytest.raises(NotFoundError):
        recall_scope(w.engine, rid, other)


def test_enterprises_with_a_part_see_their_own_part(trace_world: Any) -> None:
    """A distributor or pharmacy that holds, shipped, received or sold codes in a recall sees
    it (药品召回: it must stop selling and help bring them back), with its own holdings,
    shipments and sales only, and may not end it; the issuer sees everything."""
    w = trace_world
    spread(w)  # DIST holds case 1 (3 packs), shipped case 2 to PHA, which holds 2 and sold 1
    rid = create_recall(
        w.engine, klass=1, reason="无菌", batches=["8600001/L001"], enterprise_id=w.ids["MFR"]
    )
    mfr, dist, pha, phb = (
        Viewer(enterprise_id=w.ids[tag], role="enterprise") for tag in ("MFR", "DIST", "PHA", "PHB")
    )
    for viewer, may_close in ((mfr, True), (dist, False), (pha, False)):
        (listed,) = list_recalls(w.engine, viewer)
        assert (listed["id"], listed["may_close"]) == (rid, may_close)
    assert list_recalls(w.engine, phb) == []  # no part in it
    whole = recall_scope(w.engine, rid, mfr)
    assert {h["holder"] for h in whole["holders"]} == {"示例医药物流有限公司", "北京示例大药房"}
    assert whole["may_close"] and whole["dispensed"]
    own = recall_scope(w.engine, rid, pha)
    assert [h["holder"] for h in own["holders"]] == ["北京示例大药房"]
    assert [d["holder"] for d in own["dispensed"]] == ["北京示例大药房"]
    assert not own["may_close"] and own["total"] == whole["total"] == 6
    at_dist = recall_scope(w.engine, rid, dist)
    assert [(h["holder"], h["count"]) for h in at_dist["holders"]] == [("示例医药物流有限公司", 3)]
    assert at_dist["dispensed"] == []  # the pharmacy's sales are not the distributor's to see
    with pytest.raises(ForbiddenError):
        close_recall(w.engine, rid, viewer=pha)
    with pytest.raises(NotFoundError):
        close_recall(w.engine, rid, viewer=phb)
    close_recall(w.engine, rid, viewer=mfr)
    assert recall_scope(w.engine, rid, pha)["closed_us"] is not None


def test_enterprise_recalls_only_its_products(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    with pytest.raises(ValidationError) as info:
        create_recall(
            w.engine,
            klass=2,
            reason="not mine",
            batches=["8600001/L001"],
            codes=[w.pack(0)],
            enterprise_id=w.ids["PHB"],
        )
    assert {p.place for p in info.value.problems} == {"batches[0]", "codes[0]"}
    assert (
        create_recall(
            w.engine, klass=2, reason="mine", batches=["8600001/L001"], enterprise_id=w.ids["MFR"]
        )
        > 0
    )


def returned_chain(w: Any) -> tuple[list[str], int]:
    """6 packs of L001 commissioned, cased, shipped to and received by PHA, unpacked there, 2
    dispensed; then (after the recall's creation time, returned) the other 4 are shipped back
    to MFR as returns (退货), received there and destroyed."""
    packs = [w.pack(i) for i in range(6)]
    w.capture(
        w.commission(packs, 0, lot="L001"),
        w.pack_into(w.case(1), packs, 1),
        w.ship(w.case(1), 2, "MFR", "PHA"),
        w.receive(w.case(1), 10, "PHA"),
        w.unpack(w.case(1), 11, "PHA"),
        object_event(packs[:2], w.at(20), "dispensing", "dispensed", site=w.sites["PHA"]),
    )
    return packs, to_epoch_us(w.at(30).isoformat())


def test_scope_and_progress_of_a_returned_and_destroyed_batch(trace_world: Any) -> None:
    w = trace_world
    packs, created = returned_chain(w)
    by_batch = create_recall(
        w.engine, klass=1, reason="异物", batches=["8600001/L001"], now_us=created
    )
    both = create_recall(  # a code named inside a named batch is counted once
        w.engine, klass=1, reason="异物", batches=["8600001/L001"], codes=[packs[2]], now_us=created
    )
    assert recall_scope(w.engine, both)["codes"] == 1  # the named code, counted in its batch
    for rid in (by_batch, both):
        scope = recall_scope(w.engine, rid)
        assert scope["total"] == 6 and scope["by_status"] == {"active": 4, "dispensed": 2}
        assert [(h["holder"], h["count"]) for h in scope["holders"]] == [("北京示例大药房", 4)]
        assert [(x["holder"], x["codes"]) for x in scope["dispensed"]] == [("北京示例大药房", 2)]
        assert scope["progress"] == {
            "returned": 0,
            "destroyed": 0,
            "recalled_status": 0,
            "outstanding": 4,
            "percent_complete": 0.0,
        }
    rma = [("rma", "urn:yaolian:rma:R1")]
    w.capture(w.ship(packs[2:], 40, "PHA", "MFR", disposition="returned", biz_transactions=rma))
    scope = recall_scope(w.engine, by_batch)
    assert [(t["from"], t["to"], t["kind"], t["count"]) for t in scope["in_transit"]] == [
        ("北京示例大药房", "示例制药有限公司", "returning", 4)
    ]
    assert scope["progress"]["returned"] == 4 and scope["progress"]["outstanding"] == 0
    w.capture(
        w.receive(packs[2:], 50, "MFR", disposition="returned", biz_transactions=rma),
        w.destroy(packs[2:], 60, "MFR"),
    )
    for rid in (by_batch, both):
        scope = recall_scope(w.engine, rid)
        assert scope["total"] == 6 and scope["by_status"] == {"destroyed": 4, "dispensed": 2}
        assert scope["holders"] == [] and scope["in_transit"] == []
        assert scope["progress"] == {
            "returned": 4,
            "destroyed": 4,
            "recalled_status": 0,
            "outstanding": 0,
            "percent_complete": 100.0,
        }


def test_notice_list_names_whom_to_notify(trace_world: Any) -> None:
    """召回通知清单: one row per enterprise and site that holds codes in scope, receives them
    in an open shipment or dispensed them, with its USCC, the count and what it is to do."""
    w = trace_world
    spread(w)  # DIST holds 3 of L001 in case 1, PHA holds 2 and sold 1
    w.capture(w.ship(w.case(1), 60, "DIST", "PHB"))  # case 1 (3 of L001, 1 of L002) on the road
    rid = create_recall(w.engine, klass=1, reason="无菌", batches=["8600001/L001"])
    scope = recall_scope(w.engine, rid)
    rows = {(r["part"], r["uscc"]): r for r in notice_rows(scope)}
    assert set(rows) == {
        ("held", w.usccs["PHA"]),
        ("in_transit", w.usccs["PHB"]),
        ("dispensed", w.usccs["PHA"]),
    }
    held = rows["held", w.usccs["PHA"]]
    assert (held["enterprise"], held["site"], held["count"]) == (
        "北京示例大药房",
        "北京示例大药房pharmacy",
        2,
    )
    road = rows["in_transit", w.usccs["PHB"]]
    assert (road["enterprise"], road["site"], road["count"]) == (
        "广州示例大药房",
        None,  # the shipment names the receiving party, not its site
        3,  # the batch's packs in the case, not the other batch's
    )
    assert "示例医药物流有限公司" in road["action"]  # whom it comes from
    sold = rows["dispensed", w.usccs["PHA"]]
    assert sold["count"] == 1 and "患者" in sold["action"]

    text = notice_csv(scope)
    assert text.startswith("\ufeff")  # Excel reads the UTF-8 Chinese headings
    table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert tuple(table[0]) == NOTICE_HEADER and len(table) == 4
    assert {(r[0], r[2], r[4]) for r in table[1:]} == {
        ("在库持有", w.usccs["PHA"], "2"),
        ("在途待收", w.usccs["PHB"], "3"),
        ("已销售使用", w.usccs["PHA"], "1"),
    }

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(notice_xlsx(scope))).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert [(c[0], c[2], c[4]) for c in cells[1:]] == [(r[0], r[2], int(r[4])) for r in table[1:]]
    assert all(isinstance(c[2], str) for c in cells[1:])  # a USCC stays text, never a number


def test_notice_list_of_an_enterprise_is_its_own_part(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    rid = create_recall(
        w.engine, klass=2, reason="标签", batches=["8600001/L001"], enterprise_id=w.ids["MFR"]
    )
    dist = Viewer(enterprise_id=w.ids["DIST"], role="enterprise")
    whole = notice_rows(recall_scope(w.engine, rid))
    assert {r["uscc"] for r in whole} == {w.usccs["DIST"], w.usccs["PHA"]}
    own = notice_rows(recall_scope(w.engine, rid, dist))
    assert [(r["part"], r["uscc"], r["count"]) for r in own] == [("held", w.usccs["DIST"], 3)]


def batch_parties(engine: Any) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(batch_party))}  # type: ignore[misc]


def test_a_part_taken_once_stays_a_part(trace_world: Any) -> None:
    """A pharmacy that received codes of the batch and sent them all back has a part in its
    recall (it must check that nothing is left); the parties of a batch come out the same from
    captures, from a rebuild and from the migration that fills them in an older store."""
    w = trace_world
    spread(w)
    w.capture(
        w.ship(w.case(1), 60, "DIST", "PHB"),
        w.receive(w.case(1), 61, "PHB", src="DIST"),
        w.ship(w.case(1), 62, "PHB", "DIST", disposition="returned"),
        w.receive(w.case(1), 63, "DIST", src="PHB"),
    )
    rid = create_recall(
        w.engine, klass=2, reason="标签", batches=["8600001/L001"], enterprise_id=w.ids["MFR"]
    )
    phb = Viewer(enterprise_id=w.ids["PHB"], role="enterprise")
    assert [r["id"] for r in list_recalls(w.engine, phb)] == [rid]
    assert recall_scope(w.engine, rid, phb)["holders"] == []
    parties = batch_parties(w.engine)
    for tag in ("MFR", "DIST", "PHA", "PHB"):
        assert ("8600001", "L001", w.parties[tag]) in parties
    assert {p for _, lot, p in parties if lot == "L002"} >= {w.parties["PHB"], w.sites["PHB"]}
    rebuild(w.engine)
    assert batch_parties(w.engine) == parties
    cfg = alembic_config()
    with writing(w.engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    forget_migrated(w.engine)
    upgrade(w.engine)
    assert batch_parties(w.engine) == parties
    assert [r["id"] for r in list_recalls(w.engine, phb)] == [rid]


def test_an_event_declared_erroneous_gives_no_part(trace_world: Any) -> None:
    """A shipment to pharmacy B entered by mistake and then declared erroneous (EPCIS
    errorDeclaration): B never had the packs and does not see their batch's recall — unless
    other packs of the batch did reach it."""
    w = trace_world
    spread(w)
    wrong = w.ship(w.case(1), 60, "DIST", "PHB")
    wrong["eventID"] = "urn:uuid:6f1a3c2e-0000-4000-8000-000000000002"
    w.capture(wrong)
    rid = create_recall(w.engine, klass=2, reason="标签", batches=["8600001/L001"])
    phb = Viewer(enterprise_id=w.ids["PHB"], role="enterprise")
    assert [r["id"] for r in list_recalls(w.engine, phb)] == [rid]
    declared = {
        **wrong,
        "errorDeclaration": {"declarationTime": w.at(61).isoformat(), "reason": "incorrect_data"},
    }
    w.capture(declared)
    assert list_recalls(w.engine, phb) == []
    assert w.parties["PHB"] not in {p for _, _, p in batch_parties(w.engine)}
    # B receives case 2 for real, then case 1 is sent to it by mistake once more and undone:
    # B keeps its part in L001 by case 2, and has none in L002 (only case 1 held pack 9)
    w.capture(w.ship(w.case(2), 62, "PHA", "PHB"), w.receive(w.case(2), 63, "PHB", src="PHA"))
    again = w.ship(w.case(1), 64, "DIST", "PHB")
    again["eventID"] = "urn:uuid:6f1a3c2e-0000-4000-8000-000000000003"
    w.capture(again)
    assert {lot for _, lot, p in batch_parties(w.engine) if p == w.parties["PHB"]} == {
        "L001",
        "L002",
    }
    w.capture({**again, "errorDeclaration": declared["errorDeclaration"]})
    assert [r["id"] for r in list_recalls(w.engine, phb)] == [rid]
    assert {lot for _, lot, p in batch_parties(w.engine) if p == w.parties["PHB"]} == {"L001"}
    before = batch_parties(w.engine)
    rebuild(w.engine)
    assert batch_parties(w.engine) == before


def test_a_batch_with_no_code_on_record_says_so(trace_world: Any) -> None:
    """A recall of a lot nobody has reported (mistyped, or its events not in yet) is kept — its
    packs are recalled as they arrive — but its scope says the batch has no code on record and
    gives no percentage, where it said "100 % out of the market"."""
    w = trace_world
    spread(w)
    rid = create_recall(w.engine, klass=2, reason="标签", batches=["8600001/L009", "8600001/L001"])
    scope = recall_scope(w.engine, rid)
    assert [(b["lot"], b["codes"]) for b in scope["batches"]] == [("L009", 0), ("L001", 6)]
    alone = create_recall(w.engine, klass=2, reason="标签", batches=["8600001/L009"])
    assert recall_scope(w.engine, alone)["progress"]["percent_complete"] is None
    w.capture(w.commission([w.pack(20), w.pack(21)], 70, lot="L009", expiry="2027-12-31"))
    late = recall_scope(w.engine, alone)
    assert late["batches"][0]["codes"] == late["total"] == 2
    assert late["progress"]["percent_complete"] == 0.0
