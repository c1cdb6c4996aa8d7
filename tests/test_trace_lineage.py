"""Backward and forward trace graphs: containers, hand-overs, sales, transformations, ``at``."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import select

from test_recall import spread
from yaolian.codes.nmpa import nmpa_lot_uri
from yaolian.epcis.model import to_epoch_us
from yaolian.epcis.validate import validate_event
from yaolian.errors import CodeError, NotFoundError, Problem
from yaolian.store.schema import EVENT_TYPE_IDS, event
from yaolian.trace.builders import transformation_event
from yaolian.trace.lineage import resolve, trace_backward, trace_forward


def edges(graph: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in graph.edges if e["kind"] == kind]


def names(graph: Any, node_id: str) -> str:
    return str(graph.nodes[node_id].get("name", node_id))


def test_backward_containers_handovers_sale(trace_world: Any) -> None:
    w = trace_world
    packs = spread(w)
    with w.engine.connect() as conn:
        g = trace_backward(conn, resolve(conn, packs[3]))
    inside = {
        (e["from"], names(g, e["to"]) if e["to"] in g.nodes else e["to"])
        for e in edges(g, "inside")
    }
    assert {e["to"] for e in edges(g, "inside")} == {
        f"code:{w.code_id(w.case(2))}",
        f"code:{w.code_id(w.pallet(1))}",
    }
    assert len(inside) == 2
    hops = [(names(g, e["from"]), names(g, e["to"]), e["shipped"]) for e in edges(g, "handed_over")]
    assert hops == [
        ("示例制药有限公司", "示例医药物流有限公司", "2026-01-05"),
        ("示例医药物流有限公司", "北京示例大药房", "2026-01-06"),
    ]
    (sale,) = edges(g, "dispensed")
    assert sale["date"] == "2026-01-07"
    (made,) = edges(g, "commissioned")
    assert names(g, made["from"]) == "示例制药有限公司" and made["lot"] == "L001"
    assert all(
        eid in {ev["id"] for ev in g.as_dict()["events"]}
        for eid in [sale["event_id"], made["event_id"]]
    )
    assert g.to_networkx().number_of_edges() == len(g.edges)


def test_backward_as_of_a_time(trace_world: Any) -> None:
    w = trace_world
    packs = spread(w)
    at = to_epoch_us(w.at(25).isoformat())
    with w.engine.connect() as conn:
        g = trace_backward(conn, resolve(conn, packs[3]), at_us=at)
    assert len(edges(g, "handed_over")) == 1 and edges(g, "dispensed") == []
    pallet = [e for e in edges(g, "inside") if e["to"] == f"code:{w.code_id(w.pallet(1))}"]
    assert pallet[0]["until"] == "2026-01-06"  # unpacked 21:00 UTC = 05:00 next day in CST


def test_a_code_as_of_a_time_has_the_status_it_had_then(trace_world: Any) -> None:
    """Pack 3 was made at hour 0, shipped on its pallet at 3, received at 20, shipped in its case
    at 30, received at 40 and sold at 50: a trace as of each time says so, not today's status;
    before it was made it has none."""
    w = trace_world
    packs = spread(w)
    expected = {-1: None, 10: "in_transit", 25: "active", 35: "in_transit", 45: "active"}
    expected[60] = expected[None] = "dispensed"  # after its last event: the status it has now
    with w.engine.connect() as conn:
        pack = resolve(conn, packs[3])
        for hours, status in expected.items():
            at = None if hours is None else to_epoch_us(w.at(hours).isoformat())
            g = trace_backward(conn, pack, at_us=at)
            assert (g.summary["status"], g.nodes[g.root].get("status")) == (status, status), hours
        shipped = trace_backward(conn, pack, at_us=to_epoch_us(w.at(10).isoformat()))
        pallet = shipped.nodes[f"code:{w.code_id(w.pallet(1))}"]
        assert pallet["status"] == "in_transit"  # its containers as of then too
        ahead = trace_forward(conn, pack, at_us=to_epoch_us(w.at(35).isoformat()))
        assert ahead.nodes[ahead.root]["status"] == "in_transit"


def test_forward_batch_and_pallet(trace_world: Any) -> None:
    w = trace_world
    spread(w)
    with w.engine.connect() as conn:
        g = trace_forward(conn, resolve(conn, "8600001", "L001"))
        # PRODUCT/LOT, as recalls list batches, is the same batch
        assert resolve(conn, "8600001/L001") == resolve(conn, "8600001", "L001")
        assert g.summary["codes"] == 6
        assert g.summary["holders"] == {"示例医药物流有限公司": 3, "北京示例大药房": 2}
        assert g.summary["dispensed_codes"] == 1
        reached = {
            (names(g, e["from"]), names(g, e["to"])): e["count"] for e in edges(g, "handed_over")
        }
        assert reached == {
            ("示例制药有限公司", "示例医药物流有限公司"): 6,
            ("示例医药物流有限公司", "北京示例大药房"): 3,
        }
        early = trace_forward(
            conn, resolve(conn, "8600001", "L001"), at_us=to_epoch_us(w.at(25).isoformat())
        )
        assert early.summary["holders"] == {"示例医药物流有限公司": 6}
        pallet = trace_forward(conn, resolve(conn, w.pallet(1)))
        assert pallet.summary["codes"] == 10  # pallet, 2 cases, 7 packs
        assert len(edges(pallet, "inside")) == 9


def test_transformation_chain_herb_to_pack(trace_world: Any) -> None:
    w = trace_world
    herb, slices = nmpa_lot_uri("9000001", "HERB-1"), nmpa_lot_uri("9000002", "YP-1")
    batch = nmpa_lot_uri("8600001", "L001")
    w.capture(
        transformation_event(
            [],
            [],
            w.at(-48),
            input_classes=[(herb, 500.0, "KGM")],
            output_classes=[(slices, 420.0, "KGM")],
            site=w.sites["MFR"],
        ),
        transformation_event(
            [],
            [],
            w.at(-24),
            input_classes=[(slices, 400.0, "KGM")],
            output_classes=[(batch, 100000.0, None)],
            site=w.sites["MFR"],
        ),
        w.commission(w.pack(1), 0, lot="L001"),
    )
    with w.engine.connect() as conn:
        back = trace_backward(conn, resolve(conn, w.pack(1)))
        lots = {n["lot"] for n in back.nodes.values() if n["kind"] == "lot"}
        assert lots == {"HERB-1", "YP-1", "L001"}
        assert len(edges(back, "transformed_into")) == 2
        fwd = trace_forward(conn, resolve(conn, herb))
        assert {n.get("lot") for n in fwd.nodes.values() if n["kind"] == "lot"} >= {
            "HERB-1",
            "YP-1",
            "L001",
        }


def test_transformations_built_pass_the_validator(trace_world: Any) -> None:
    w = trace_world
    herb, slices = nmpa_lot_uri("9000001", "HERB-1"), nmpa_lot_uri("9000002", "YP-1")
    by_class = transformation_event(
        [],
        [],
        w.at(0),
        input_classes=[(herb, 500.0, "KGM")],
        output_classes=[(slices, 420.0, "KGM")],
        site=w.sites["MFR"],
        lot="YP-1",
    )
    by_instance = transformation_event(
        [w.pack(1)], [w.pack(2)], w.at(1), site=w.sites["MFR"], lot="L001"
    )
    assert by_class["bizStep"] == "creating_class_instance"
    assert by_instance["bizStep"] == "commissioning"
    for built in (by_class, by_instance):
        assert validate_event(built, "/events/0") == []
        assert validate_event({**built, "bizStep": "transforming"}, "/events/0") == [
            Problem(ANY, "/events/0/bizStep")
        ]
    w.capture(by_class, by_instance)
    with w.engine.connect() as conn:
        steps = conn.execute(
            select(event.c.biz_step).where(event.c.type == EVENT_TYPE_IDS["TransformationEvent"])
        ).scalars()
        assert sorted(steps) == ["commissioning", "creating_class_instance"]
    assert w.state(w.pack(1)).status == "decommissioned"
    assert w.state(w.pack(2)).status == "commissioned" and w.state(w.pack(2)).lot == "L001"


def test_resolve_errors(trace_world: Any) -> None:
    w = trace_world
    with w.engine.connect() as conn:
        with pytest.raises(NotFoundError):
            resolve(conn, w.pack(404))
        with pytest.raises(CodeError):
            resolve(conn, "not a code")
        for half_batch in ("8600001/", "/L001", "8600001/L/1"):
            with pytest.raises(CodeError):
                resolve(conn, half_batch)
        with pytest.raises(CodeError, match="add the lot"):
            resolve(conn, "urn:nmpa:product:8600001")
