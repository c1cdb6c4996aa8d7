"""Verification verdicts and anomaly rules on hand-built chains (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from yaolian.epcis.model import to_epoch_us
from yaolian.store.access import Viewer
from yaolian.store.projections import rebuild
from yaolian.store.schema import alert
from yaolian.trace.builders import object_event
from yaolian.trace.recall import close_recall, create_recall
from yaolian.verify.anomalies import RULES, AlertFilter, list_alerts
from yaolian.verify.dispense import SaleLine, record_sales
from yaolian.verify.status import verify

REGULATOR = Viewer(enterprise_id=None, role="regulator")


def supply_chain(
    w: Any, packs: int = 3, product: str = "8600001", expiry: str = "2027-12-31"
) -> list[str]:
    """Packs commissioned at MFR, in case 1, shipped MFR → DIST → PHA and received there."""
    codes = [w.pack(i, product) for i in range(packs)]
    w.capture(
        w.commission(codes, 0, lot="L001", expiry=expiry, produced="2025-12-31"),
        w.pack_into(w.case(1), codes, 1),
        w.ship(w.case(1), 3, "MFR", "DIST"),
        w.receive(w.case(1), 20, "DIST"),
        w.ship(w.case(1), 30, "DIST", "PHA"),
        w.receive(w.case(1), 40, "PHA"),
    )
    return codes


def sell(
    w: Any,
    code: str,
    hours: float,
    site: str = "PHA",
    units: float | None = None,
    settlement: str | None = None,
) -> None:
    line = SaleLine(
        codes=(code,),
        split=units is not None,
        quantity=units or 1,
        site=w.sites[site],
        time=w.at(hours),
        settlement=settlement or f"S{hours}",
        kind="retail_selling",
    )
    result = record_sales(w.engine, [line])
    assert result.success, result.errors


def verdict(w: Any, code: str, viewer: Viewer | None = None, **kw: Any) -> dict[str, Any]:
    with w.engine.connect() as conn:
        return verify(conn, code, viewer, **kw).as_dict()


def alerts(w: Any, rule: str) -> list[dict[str, Any]]:
    return list_alerts(w.engine, REGULATOR, AlertFilter(rule=rule))["alerts"]


# ── verdicts ──
def test_genuine_with_consumer_facts(trace_world: Any) -> None:
    w = trace_world
    code = supply_chain(w)[1]
    v = verdict(w, code, now_us=to_epoch_us("2026-02-01T00:00:00+08:00"))
    assert v["status"] == "genuine" and v["sellable"] and v["reason_zh"] == "正品，可销售"
    assert v["product"]["generic_name"] == "阿莫西林胶囊"
    assert v["product"]["approval_no"] == "国药准字H00000001"
    assert v["product"]["holder"] == "示例制药有限公司"
    assert v["batch"] == {"lot": "L001", "production_date": "2025-12-31", "expiry": "2027-12-31"}
    assert [(h["from"], h["to"]) for h in v["circulation"]] == [
        ("示例制药有限公司", "示例医药物流有限公司"),
        ("示例医药物流有限公司", "北京示例大药房"),
    ]
    assert v["circulation"][0]["shipped"] == "2026-01-05"
    assert "detail" not in v  # public


def test_detail_only_for_parties_and_regulators(trace_world: Any) -> None:
    w = trace_world
    code = supply_chain(w)[1]
    pha = Viewer(enterprise_id=w.ids["PHA"], role="enterprise")
    phb = Viewer(enterprise_id=w.ids["PHB"], role="enterprise")
    assert verdict(w, code, REGULATOR)["detail"]["custodian"]["name"] == "北京示例大药房"
    assert verdict(w, code, pha)["detail"]["site"] == w.sites["PHA"]
    assert "detail" not in verdict(w, code, phb)


def test_unknown_malformed_unregistered(trace_world: Any) -> None:
    w = trace_world
    supply_chain(w)
    never = verdict(w, w.pack(99))
    assert never["status"] == "unknown" and "counterfeit" in never["reason"]
    assert never["reason_zh"] == "查无此码：从未赋码激活，疑似假冒" and "malformed" not in never
    assert never["product"]["generic_name"] == "阿莫西林胶囊"
    bad = verdict(w, "12345")
    assert bad["status"] == "unknown" and "not a valid code" in bad["reason"]
    assert bad["malformed"] is True and bad["reason_zh"].startswith("不是有效的追溯码")
    unregistered = verdict(w, "89999990000000000001")
    assert unregistered["status"] == "unknown" and "unregistered" in unregistered["reason"]
    assert "8999999 未注册" in unregistered["reason_zh"]
    # the commonest misreads say what is wrong in Chinese, not in the codes layer's English
    for misread, words in (
        (
            w.pack(0).removeprefix("urn:nmpa:code:")[:-1],
            "位数不对：药品追溯码应为 20 位，这里是 19 位",
        ),
        ("(01)06901234567893(21)ABC", "校验位不符：末位应为 2，实为 3"),
        ("(01)0690123456789(21)A", "条码中 (01) 段长度不对：应为 14 位，这里是 13 位"),
        ("hello", "无法识别"),
        ("(01)06901234567892(17)281331(21)A", "条码中 (17) 段日期 281331 无效：没有 13 月"),
        ("(01)06901234567892(17)280230(21)A", "2028 年 2 月没有 30 日"),
        ("(01)06901234567892(23)X", "应用标识符 (23) 无法识别"),
        ("(01)06901234567892(21)A~B", "条码中 (21) 段含不允许的字符 '~'"),
    ):
        said = verdict(w, misread)
        assert said["malformed"] and words in said["reason_zh"], said["reason_zh"]
        assert not re.search("[a-z]{4}", said["reason_zh"])  # no English words


def test_a_code_issued_here_but_never_commissioned_is_a_data_gap(trace_world: Any) -> None:
    """A code the platform issued (赋码) whose commissioning the holder never reported is not
    sellable, but the answer says so instead of "suspected counterfeit"; once commissioned it
    is an ordinary genuine pack."""
    from datetime import date

    from yaolian.codes.issue import IssueRequest, issue_codes
    from yaolian.codes.registry import CodeRegistry

    w = trace_world
    request = IssueRequest("line-1", "8600001", 2, "B1", date(2028, 1, 31))
    issued = issue_codes(w.engine, CodeRegistry.for_store(w.engine), request).codes
    first = verdict(w, issued[0].code)
    assert first["status"] == "unknown" and first["sellable"] is False
    assert "未上报生产" in first["reason"] and "counterfeit" not in first["reason"]
    assert first["issued"] and first["product"]["generic_name"] == "阿莫西林胶囊"
    w.capture(w.commission(f"urn:nmpa:code:{issued[0].code}", 1, lot="B1", expiry="2028-01-31"))
    now = verdict(w, issued[0].code)
    assert now["status"] == "genuine" and "issued" not in now
    assert "counterfeit" in verdict(w, w.pack(98))["reason"]  # never issued here either


def test_any_code_form(trace_world: Any) -> None:
    w = trace_world
    code = supply_chain(w)[0]
    bare = code.removeprefix("urn:nmpa:code:")
    assert verdict(w, bare)["status"] == verdict(w, code)["status"] == "genuine"
    wide = bare.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})  # typed in 全角 mode
    assert verdict(w, f"\u3000{wide}")["status"] == "genuine"


def test_dispensed_in_transit_destroyed_expired(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50)
    v = verdict(w, codes[0])
    assert v["status"] == "dispensed" and v["sale_count"] == 1
    assert v["sales"][0]["where"] == "北京示例大药房" and v["sales"][0]["date"] == "2026-01-07"
    w.capture(w.destroy(codes[1], 51, "PHA"))
    assert verdict(w, codes[1])["status"] == "destroyed"
    w.capture(w.ship(codes[2], 52, "PHA", "PHB"))
    assert verdict(w, codes[2])["status"] == "in_transit"
    other = supply_chain(w, product="8600004", expiry="2026-01-31")[0]
    assert verdict(w, other, now_us=to_epoch_us("2026-01-20T00:00:00+08:00"))["sellable"]
    assert verdict(w, other, now_us=to_epoch_us("2026-02-01T00:00:00+08:00"))["status"] == (
        "expired"
    )
    # an expired pack on the road reads expired, not in transit: it is not to be received
    w.capture(w.ship(other, 53, "PHA", "PHB"))
    late = to_epoch_us("2026-02-01T00:00:00+08:00")
    assert verdict(w, other, now_us=late)["status"] == "expired"
    assert verdict(w, other, now_us=to_epoch_us("2026-01-20T00:00:00+08:00"))["status"] == (
        "in_transit"
    )


def test_recall_marks_codes(trace_world: Any) -> None:
    w = trace_world
    code = supply_chain(w)[0]
    rid = create_recall(w.engine, klass=2, reason="溶出度不合格", batches=["8600001/L001"])
    v = verdict(w, code)
    assert v["status"] == "recalled" and v["recall"]["class"] == 2
    close_recall(w.engine, rid)
    assert verdict(w, code)["status"] == "genuine"


def test_a_logistics_unit_is_known_by_its_packing(trace_world: Any) -> None:
    """A pallet (SSCC) or case made by packing, never commissioned itself, is a known logistics
    unit — not "查无此码" — with the packs inside it now, its hand-overs, in transit while
    shipped, recalled while it holds recalled packs, empty once unpacked; an SSCC the platform
    never saw stays unknown."""
    w = trace_world
    packs = supply_chain(w, packs=4)  # case 1 holds them, at PHA
    w.capture(
        w.pack_into(w.pallet(1), [w.case(1)], 41),
        w.ship(w.pallet(1), 42, "PHA", "DIST"),  # a return in a pallet
    )
    pallet = verdict(w, w.pallet(1))
    assert (pallet["status"], pallet["contents"], pallet["batch"]) == ("in_transit", 4, None)
    assert "logistics unit" in pallet["reason"] and "4 pack(s) inside" in pallet["reason"]
    assert pallet["reason_zh"] == "在途（企业间运输中）；物流单元，内有 4 盒"
    case = verdict(w, w.case(1))
    assert case["status"] == "in_transit" and case["contents"] == 4
    assert [h["to"] for h in case["circulation"]] == [
        "示例医药物流有限公司",
        "北京示例大药房",
        "示例医药物流有限公司",  # on its way back inside the pallet
    ]
    w.capture(w.receive(w.pallet(1), 50, "DIST"))
    assert verdict(w, w.pallet(1))["status"] == "genuine"
    rid = create_recall(w.engine, klass=1, reason="无菌", batches=["8600001/L001"])
    held = verdict(w, w.pallet(1))
    assert held["status"] == "recalled" and held["recall"]["id"] == rid
    assert "holds recalled packs" in held["reason"]
    assert held["reason_zh"] == "物流单元，内有 4 盒：含召回品，不得接收"
    close_recall(w.engine, rid)
    w.capture(w.unpack(w.pallet(1), 51, "DIST"))
    empty = verdict(w, w.pallet(1))
    assert (empty["status"], empty["contents"]) == ("genuine", 0) and "empty" in empty["reason"]
    assert "逐盒扫码" in empty["reason_zh"]  # nothing in it to receive: its packs one by one
    assert verdict(w, w.pallet(2))["status"] == "unknown"  # never seen
    assert "contents" not in verdict(w, packs[0])  # a pack is no logistics unit


# ── anomaly rules ──
def test_double_sale_positive_negative_and_dedup(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50)
    assert alerts(w, "double_sale") == [] and alerts(w, "unknown_code") == []
    sell(w, codes[0], 60)
    sell(w, codes[0], 70)
    found = alerts(w, "double_sale")
    assert len(found) == 1  # deduplicated per code
    assert [e["event_id"] for e in found[0]["evidence"]["events"]] == sorted(
        e["event_id"] for e in found[0]["evidence"]["events"]
    )
    assert len(found[0]["evidence"]["events"]) == 2  # the 2nd and 3rd sale
    assert verdict(w, codes[0])["sale_count"] == 3


def test_split_sales_within_and_beyond_pack(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50, units=10)
    sell(w, codes[0], 51, units=14)  # 24 of 24 capsules: fine
    assert alerts(w, "split_overrun") == [] and alerts(w, "double_sale") == []
    assert verdict(w, codes[0])["units_sold"] == 24
    sell(w, codes[0], 52, units=2)
    (found,) = alerts(w, "split_overrun")
    assert found["evidence"]["units_sold"] == 26 and found["evidence"]["units_per_pack"] == 24


def test_unknown_code_sale(trace_world: Any) -> None:
    w = trace_world
    supply_chain(w)
    sell(w, w.pack(77), 50)
    (found,) = alerts(w, "unknown_code")
    assert found["code"].endswith("0000000000077")
    assert alerts(w, "custody_break") == []


def test_custody_break_and_clone(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50, site="PHA")
    assert alerts(w, "custody_break") == []
    sell(w, codes[1], 40.5, site="PHB")  # Guangzhou, 30 minutes after receipt in Beijing
    (brk,) = alerts(w, "custody_break")
    assert brk["site"] == w.sites["PHB"]
    (clone,) = alerts(w, "clone")
    assert clone["evidence"]["km"] > 1800
    sell(w, codes[2], 200, site="PHB")  # a week later: custody break, but no clone
    assert len(alerts(w, "clone")) == 1 and len(alerts(w, "custody_break")) == 2


def test_cold_chain_flags_every_pack_in_the_container(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w, product="8600004")
    w.capture(
        object_event([w.case(1)], w.at(41), "storing", site=w.sites["PHA"], temperatures=[4.0, 5.5])
    )
    assert alerts(w, "cold_chain") == []
    w.capture(
        object_event(
            [w.case(1)], w.at(42), "storing", site=w.sites["PHA"], temperatures=[4.0, 12.5]
        )
    )
    found = alerts(w, "cold_chain")
    assert sorted(a["code"] for a in found) == sorted(
        c.replace("urn:nmpa:code:", "n:") for c in codes
    )
    assert all(a["evidence"]["max_c"] == 12.5 for a in found)


def test_expired_and_recalled_sales(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w, expiry="2026-01-06")
    sell(w, codes[0], 10)  # 2026-01-05 10:00 CST: before expiry
    assert alerts(w, "expired_sale") == []
    sell(w, codes[1], 50)  # 2026-01-07
    assert len(alerts(w, "expired_sale")) == 1
    create_recall(
        w.engine,
        klass=1,
        reason="污染",
        codes=[codes[2]],
        now_us=to_epoch_us("2026-01-07T00:00:00+00:00"),
    )
    create_recall(
        w.engine,
        klass=2,
        reason="later",
        batches=["8600001/L001"],
        now_us=to_epoch_us("2026-02-01T00:00:00+00:00"),
    )  # after every sale here
    sell(w, codes[2], 60)
    (found,) = alerts(w, "recalled_sale")
    assert found["evidence"]["recall_id"] is not None
    page = list_alerts(w.engine, REGULATOR, AlertFilter(rule="double_sale"))
    assert page["total"] == 0  # the rule filter narrows the list, not the counts per rule
    assert page["by_rule"]["recalled_sale"] == 1
    assert set(page["by_rule"]) == set(RULES)


def test_a_recall_judges_stored_sales_by_its_own_times(trace_world: Any) -> None:
    """A recall counts from its time, not from when it was recorded: sales already stored that
    came after a backdated recall become recalled sales; closing it keeps those made while it
    was open and clears those after; a rebuild finds the same alerts."""
    w = trace_world
    codes = supply_chain(w)
    for code, hours in zip(codes, (50, 70, 90), strict=True):
        sell(w, code, hours)

    def recalled() -> set[str]:
        return {a["code"] for a in alerts(w, "recalled_sale")}

    short = [c.replace("urn:nmpa:code:", "n:") for c in codes]
    at = lambda hours: to_epoch_us(w.at(hours).isoformat())  # noqa: E731
    rid = create_recall(
        w.engine, klass=2, reason="含量偏低", batches=["8600001/L001"], now_us=at(60)
    )
    assert recalled() == {short[1], short[2]}
    close_recall(w.engine, rid, now_us=at(80))
    assert recalled() == {short[1]}
    before = w.snapshot()
    rebuild(w.engine)
    assert w.snapshot() == before


def test_alerts_survive_rebuild_and_out_of_order(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50)
    sell(w, codes[0], 45)  # an earlier sale arriving late: still a double sale
    sell(w, w.pack(50), 46)
    before = w.snapshot()
    with w.engine.connect() as conn:
        n = len(conn.execute(select(alert)).all())
    assert n == 2
    rebuild(w.engine)
    assert w.snapshot() == before


def test_enterprise_sees_only_its_alerts(trace_world: Any) -> None:
    w = trace_world
    codes = supply_chain(w)
    sell(w, codes[0], 50)
    sell(w, codes[0], 60)
    sell(w, codes[1], 50, site="PHB")  # PHB sells a pack it never received
    seen = {
        tag: {
            (a["rule"], a["code_id"])
            for a in list_alerts(
                w.engine, Viewer(enterprise_id=w.ids[tag], role="enterprise"), AlertFilter()
            )["alerts"]
        }
        for tag in ("MFR", "DIST", "PHA", "PHB")
    }
    settled_twice = ("double_sale", w.code_id(codes[0]))
    never_received = ("custody_break", w.code_id(codes[1]))
    # whoever shipped, received or holds a pack sees its alerts; PHB only the sale it made
    for tag in ("MFR", "DIST", "PHA"):
        assert seen[tag] == {settled_twice, never_received}
    assert seen["PHB"] == {never_received}


@pytest.mark.parametrize("rule", ["nope"])
def test_unknown_rule_is_a_query_error(trace_world: Any, rule: str) -> None:
    from yaolian.errors import QueryError

    with pytest.raises(QueryError, match="unknown rule"):
        list_alerts(trace_world.engine, REGULATOR, AlertFilter(rule=rule))


def test_gs1_pack_in_every_form(trace_world: Any) -> None:
    """A GS1 pack (rule b): EPC URI at capture; element string and Digital Link at the scanner."""
    from yaolian.codes.epc import sgtin_uri
    from yaolian.codes.gs1 import with_check_digit
    from yaolian.store.masterdata import upsert_product

    w = trace_world
    gtin = with_check_digit("0690123456789")
    upsert_product(
        w.engine, gtin, "布洛芬缓释胶囊", gtin=gtin, units_per_pack=20, holder_uscc=w.usccs["MFR"]
    )
    w.capture(w.commission(sgtin_uri(gtin, "SN0001", 7), 0, lot="G01", expiry="2027-06-30"))
    for form in (
        f"(01){gtin}(21)SN0001",
        f"https://id.gs1.org/01/{gtin}/21/SN0001",
        sgtin_uri(gtin, "SN0001", 7),
    ):
        v = verdict(w, form)
        assert v["status"] == "genuine", form
        assert v["product"]["generic_name"] == "布洛芬缓释胶囊"
        assert v["batch"]["lot"] == "G01"
    assert verdict(w, f"(01){gtin}(21)SN9999")["status"] == "unknown"
