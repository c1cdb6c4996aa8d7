"""Receipts (收货 / 购进入库) from a receiving check: over HTTP, in the CLI, on both stores."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cli_run import run_main
from test_recall import at_the_distributor
from yaolian.api.app import create_app
from yaolian.errors import ValidationError
from yaolian.store.access import Viewer, create_key
from yaolian.store.schema import custody
from yaolian.supply.ledger import stock
from yaolian.trace.recall import create_recall
from yaolian.verify.dispense import SaleLine, record_sales
from yaolian.verify.receive import receive
from yaolian.verify.status import verify


def arrival(w: Any) -> list[str]:
    """:func:`~test_recall.at_the_distributor`, then case 2 (packs 3–5) is shipped on to
    pharmacy A and is on the road; pack 0 leaves the distributor's shelf for pharmacy A with
    no shipping reported; pack 1 is destroyed at the distributor's."""
    packs, events = at_the_distributor(w)
    w.capture(
        *events,
        w.unpack(w.case(1), 22, "DIST"),
        w.ship(w.case(2), 30, "DIST", "PHA"),
        w.destroy(packs[1], 31, "DIST"),
    )
    return packs


def keyed(w: Any, tag: str | None, role: str = "enterprise") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(w.engine, w.usccs[tag] if tag else None, role)}"}


def test_receipt_over_http(trace_world: Any, db_url: str) -> None:
    w = trace_world
    packs = arrival(w)
    http = TestClient(create_app(db_url))
    pha, phb = keyed(w, "PHA"), keyed(w, "PHB")
    # the receiver's key sees where the shipment is going; a stranger's sees no detail
    mine = http.get(f"/verify/{packs[3]}", headers=pha).json()
    assert mine["status"] == "in_transit"
    assert mine["detail"]["shipment"]["to_you"] is True
    assert mine["detail"]["shipment"]["from"] == "示例医药物流有限公司"
    assert "detail" not in http.get(f"/verify/{packs[3]}", headers=phb).json()

    # what is on its way to A (待收货): the one delivery, per product and lot
    (coming,) = http.get("/arrivals", headers=pha).json()["arrivals"]
    assert (coming["from"], coming["to"], coming["to_site"], coming["packs"]) == (
        "示例医药物流有限公司",
        "北京示例大药房",
        None,  # the shipping named the receiving party, not a site of it
        3,
    )
    assert coming["lines"] == [
        {"product": "8600001", "generic_name": "阿莫西林胶囊", "lot": "L001", "packs": 3}
    ]
    assert coming["shipment"] == mine["detail"]["shipment"]["event_id"]
    assert http.get("/arrivals", headers=phb).json() == {"arrivals": []}
    regulator = keyed(w, None, "regulator")
    seen = http.get("/arrivals", params={"enterprise": w.usccs["PHA"]}, headers=regulator)
    assert seen.json()["arrivals"] == [coming]
    assert (
        http.get("/arrivals", params={"enterprise": w.usccs["PHA"]}, headers=phb).status_code == 403
    )
    assert http.get("/arrivals").status_code == 401

    def post(body: dict[str, Any], headers: dict[str, str] = pha) -> Any:
        return http.post("/receive", json=body, headers=headers)

    site = w.sites["PHA"]
    assert post({"site": site, "codes": [packs[3]]}, {}).status_code == 401
    # anything that cannot be received refuses the whole receipt, each code named
    bad = post({"site": site, "codes": [packs[3], packs[1], "86000010000000000999", "x!"]})
    assert bad.status_code == 400 and "nothing recorded" in bad.json()["detail"]
    errors = {e["place"]: e["reason"] for e in bad.json()["errors"]}
    assert set(errors) == {"codes[1]", "codes[2]", "codes[3]"}
    assert "已销毁" in errors["codes[1]"] and "查无此码" in errors["codes[2]"]
    with w.engine.connect() as conn:
        assert verify(conn, packs[3]).status == "in_transit"  # nothing half-written
    # B's pharmacy cannot take A's delivery, nor A receive at B's site or a made-up one
    to_b = post({"site": w.sites["PHB"], "codes": [packs[3]]}, phb).json()
    assert "发往其他企业" in to_b["errors"][0]["reason"]
    assert "another enterprise" in post({"site": w.sites["PHB"], "codes": [packs[3]]}).text
    assert post({"site": "urn:epc:id:sgln:0000000.00000.0", "codes": [packs[3]]}).status_code == 404
    future = post({"site": site, "codes": [packs[3]], "time": "2099-01-01 08:00"})
    assert future.status_code == 400 and future.json()["detail"].startswith("time: ")
    assert post({"site": site, "codes": []}).status_code == 400
    # the delivery, one pack scanned twice (once as its code, once in full-width digits), and
    # a pack whose shipping the distributor never reported: one receiving event from it
    full_width = (
        packs[4]
        .removeprefix("urn:nmpa:code:")
        .translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    )
    done = post({"site": site, "codes": [*packs[3:], full_width, packs[0]]})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "site": site,
        "codes": 4,
        "senders": ["示例医药物流有限公司"],
        "unreported_shipping": 1,
        "events": 1,
    }
    with w.engine.connect() as conn:
        for code in (*packs[3:], packs[0]):
            verdict = verify(conn, code, Viewer.system())
            assert verdict.status == "genuine"
            assert verdict.detail is not None and verdict.detail["site"] == site
            assert verdict.detail["custodian"]["name"] == "北京示例大药房"
            assert verdict.circulation[-1]["to"] == "北京示例大药房"
    assert http.get("/arrivals", headers=pha).json() == {"arrivals": []}  # all received
    again = post({"site": site, "codes": [packs[3]]})
    assert again.status_code == 400 and "已在本单位库存" in again.json()["errors"][0]["reason"]
    audit = http.get("/audit", headers=keyed(w, None, "regulator")).json()
    assert [e["action"] for e in audit["entries"]].count("receive") == 1


def test_receipt_in_the_cli(
    trace_world: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    w = trace_world
    packs = arrival(w)
    listed = ("arrivals", "--enterprise", w.usccs["PHA"], "--json", "--db", db_url)
    code, out = run_main(monkeypatch, capsys, *listed)
    assert code == 0 and [a["packs"] for a in orjson.loads(out)] == [3], out
    code, out = run_main(monkeypatch, capsys, "arrivals", "--enterprise", "X", "--db", db_url)
    assert code == 2 and "no enterprise with USCC 'X'" in out
    code, out = run_main(monkeypatch, capsys, "receive", w.sites["PHA"], packs[5], "--db", db_url)
    assert code == 0 and "received 1 code(s) from 示例医药物流有限公司" in out, out
    code, out = run_main(monkeypatch, capsys, "receive", w.sites["PHA"], packs[1], "--db", db_url)
    assert code == 2 and "codes[0]" in out and "已销毁" in out, out
    code, out = run_main(monkeypatch, capsys, *listed)
    assert [a["packs"] for a in orjson.loads(out)] == [2]  # one of the three received


def test_a_case_received_whole_brings_its_packs(trace_world: Any) -> None:
    """Scanning the case code receives what is in it (a distributor receiving a pallet)."""
    w = trace_world
    packs = arrival(w)
    # back-dated before its shipping (2026-01-06 14:00 北京时间): the replay would put the
    # receipt first and leave the case on the road
    with pytest.raises(ValidationError) as early:
        receive(w.engine, [w.case(2)], w.sites["PHA"], when="2026-01-06 10:00")
    assert "收货时间早于该码最近一次记录（2026-01-06）" in early.value.problems[0].reason
    receipt = receive(w.engine, [w.case(2)], w.sites["PHA"], when="2026-01-07 09:00")
    assert receipt.codes == 1 and receipt.unreported == 0
    with w.engine.connect() as conn:
        assert {verify(conn, p).status for p in packs[3:]} == {"genuine"}
    with pytest.raises(ValidationError) as refused:
        receive(w.engine, [packs[3]], w.sites["PHA"])
    assert "already in your stock" in refused.value.problems[0].reason


def test_an_unreported_shipping_names_the_holder_as_source(trace_world: Any) -> None:
    """A pack its maker made (no party on the commissioning) and handed over without reporting
    it: the receipt names the maker's party as the source, so the custody chain has both ends,
    and the stock ledger moves the pack off the maker's shelf onto the pharmacy's."""
    w = trace_world
    w.capture(w.commission(w.pack(7), 0, lot="L001", expiry="2027-12-31"))

    def shelves() -> dict[str, float]:
        with w.engine.connect() as conn:
            return {line.site: line.on_hand for line in stock(conn) if line.on_hand}

    assert shelves() == {w.sites["MFR"]: 1.0}
    receipt = receive(w.engine, [w.pack(7)], w.sites["PHA"], when="2026-01-06 10:00")
    assert shelves() == {w.sites["PHA"]: 1.0}
    assert (receipt.senders, receipt.unreported) == (["示例制药有限公司"], 1)
    with w.engine.connect() as conn:
        (sent,) = conn.execute(
            select(custody.c.from_party, custody.c.to_party).where(
                custody.c.code_id == w.code_id(w.pack(7))
            )
        ).all()
    assert tuple(sent) == (w.parties["MFR"], w.parties["PHA"])


def test_a_recalled_pack_is_refused_in_a_delivery_but_taken_back_as_a_return(
    trace_world: Any,
) -> None:
    """召回退货: a pharmacy does not take in a delivery of a recalled batch, but the distributor
    takes back the recalled packs the pharmacy returns — the return is what the recall asks."""
    w = trace_world
    packs = arrival(w)  # case 2 (packs 3–5) on its way to pharmacy A
    create_recall(w.engine, klass=2, reason="溶出度不合格", batches=["8600001/L001"])
    with pytest.raises(ValidationError) as refused:
        receive(w.engine, [packs[3]], w.sites["PHA"])
    assert "已召回" in refused.value.problems[0].reason
    w.capture(w.receive(w.case(2), 40, "PHA"))  # its WMS reported the receipt all the same
    w.capture(w.ship(packs[4], 41, "PHA", "DIST", disposition="returned"))
    with w.engine.connect() as conn:
        detail = verify(conn, packs[4], Viewer.system()).detail
    assert detail is not None and detail["shipment"]["kind"] == "returning"
    assert detail["shipment"]["to"] == "示例医药物流有限公司"
    receipt = receive(w.engine, [packs[4]], w.sites["DIST"], when="2026-01-07 09:00")
    assert (receipt.codes, receipt.senders) == (1, ["北京示例大药房"])
    with w.engine.connect() as conn:
        back = verify(conn, packs[4], Viewer.system())
        assert back.status == "recalled" and back.detail is not None
        assert back.detail["custodian"]["name"] == "示例医药物流有限公司"


def test_a_sold_pack_sent_back_is_not_taken_back(trace_world: Any) -> None:
    """回流: a pack sold to a patient that comes back up the chain as a 'return' is refused."""
    w = trace_world
    packs = arrival(w)
    w.capture(w.receive(w.case(2), 40, "PHA"))
    record_sales(w.engine, [SaleLine((packs[5],), False, 1, w.sites["PHA"], w.at(42))])
    w.capture(w.ship(packs[5], 43, "PHA", "DIST", disposition="returned"))
    with pytest.raises(ValidationError) as resold:
        receive(w.engine, [packs[5]], w.sites["DIST"], when="2026-01-07 10:00")
    assert "已售出" in resold.value.problems[0].reason
