"""Verify a code: is this pack genuine and sellable? (药品追溯码 查询验证)

A handful of indexed look-ups on the projections: code key → id, ``code_state``, product,
open recalls, hand-overs and sales. The verdict carries what a consumer query page shows
(NMPAB/T 1012: product names, strength, pack, dosage form, approval number, holder and
manufacturer, batch, production and expiry dates, circulation path with enterprise names and
dates, status).

Visibility (docs/trace-verify.md): the public view has product facts, status and the
circulation path as the standard prints it — enterprise names and calendar days only; never
document numbers, event ids, site identifiers, times of day, counterparties of a sale or the
exact quantities held. Regulators, and enterprises that are party to the code's custody (they
held it, shipped it, received it or sold it), also get ``detail``: internal ids, sites, parent
container, last event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from yaolian.codes.identity import canonical_key, key_kind, product_of_key, typed
from yaolian.codes.issue import issued_at
from yaolian.errors import CodeError
from yaolian.store.access import Viewer
from yaolian.trace import rawsql
from yaolian.trace.directory import Directory
from yaolian.trace.state import sale_day

VERDICTS = (
    "genuine",  # 正品，可销售
    "unknown",  # 未找到 / 从未赋码: suspected counterfeit, malformed or unregistered
    "recalled",  # 已召回 or in a recalled batch
    "destroyed",  # 已销毁
    "decommissioned",  # 已注销
    "dispensed",  # 已售出 / 已使用
    "expired",  # 已过期
    "in_transit",  # 在途
)
_REASONS = {
    "genuine": "genuine and sellable (正品)",
    "recalled": "recalled — do not sell or use (已召回)",
    "destroyed": "destroyed (已销毁)",
    "decommissioned": "decommissioned (已注销)",
    "dispensed": "already dispensed or sold (已售出)",
    "expired": "past its expiry date (已过期)",
    "in_transit": "in transit between enterprises (在途)",
}
_REASONS_ZH = {
    "genuine": "正品，可销售",
    "recalled": "已召回，不得销售或使用",
    "destroyed": "已销毁",
    "decommissioned": "已注销",
    "dispensed": "已售出（已销售或使用出库）",
    "expired": "已过期",
    "in_transit": "在途（企业间运输中）",
}
_PUBLIC_PRODUCT = (
    "product_code",
    "gtin",
    "generic_name",
    "trade_name",
    "dosage_form",
    "strength",
    "pack_spec",
    "packaging_level",
    "units_per_pack",
    "approval_no",
    "approval_valid_until",
    "holder",
    "manufacturer",
)
RECENT_SALES = 5


def _day(us: int | None) -> str | None:
    return sale_day(us).isoformat() if us is not None else None


@dataclass
class Verdict:
    """The answer for one code; :meth:`as_dict` renders the public or the full view."""

    code: str
    status: str
    reason: str
    reason_zh: str  # the reason as a Chinese clerk or patient reads it
    key: str | None = None
    product: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None
    circulation: list[dict[str, Any]] = field(default_factory=list)
    sales: list[dict[str, Any]] = field(default_factory=list)
    sale_count: int = 0
    units_sold: float | None = None
    recall: dict[str, Any] | None = None
    detail: dict[str, Any] | None = None
    issued: str | None = None  # day the platform issued a code never commissioned (赋码)
    contents: int | None = None  # a logistics unit's packs inside now (物流单元)
    malformed: bool = False  # not a code at all (a typo, a wrong barcode): not "unknown" to us

    @property
    def sellable(self) -> bool:
        """Genuine and sellable now."""
        return self.status == "genuine"

    def as_dict(self) -> dict[str, Any]:
        """Plain data; ``detail`` only when the viewer may see it (set by :func:`verify`)."""
        out: dict[str, Any] = {
            "code": self.code,
            "status": self.status,
            "sellable": self.sellable,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
            "product": self.product,
            "batch": self.batch,
            "circulation": self.circulation,
            "sales": self.sales,
            "sale_count": self.sale_count,
        }
        if self.key is not None:  # the code's identity: the same for every form of it
            out["key"] = self.key
        if self.units_sold is not None:
            out["units_sold"] = self.units_sold
        if self.recall is not None:
            out["recall"] = self.recall
        if self.issued is not None:
            out["issued"] = self.issued
        if self.contents is not None:
            out["contents"] = self.contents
        if self.malformed:
            out["malformed"] = True
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def _unknown(code: str, reason: str, reason_zh: str, key: str | None = None) -> Verdict:
    return Verdict(code=code, status="unknown", reason=reason, reason_zh=reason_zh, key=key)


_STATE_SQL = (
    "SELECT c.id, cs.status, cs.product, cs.lot, cs.expiry, cs.production_date, cs.custodian, "
    "cs.site, cs.parent_id, cs.commission_event_id, cs.last_event_id, cs.last_us, cs.sales, "
    "cs.has_children FROM code c LEFT JOIN code_state cs ON cs.code_id = c.id WHERE c.key = ?"
)
# what a logistics unit (pallet, case) holds now, at every level
_INSIDE = (
    "WITH RECURSIVE inside(id) AS ("
    "SELECT child_id FROM aggregation WHERE parent_id = ? AND to_us IS NULL UNION "
    "SELECT a.child_id FROM aggregation a JOIN inside ON a.parent_id = inside.id "
    "WHERE a.to_us IS NULL) "
)
_CONTENTS_SQL = (
    _INSIDE + "SELECT count(*) FROM inside JOIN code_state cs ON cs.code_id = inside.id "
    "WHERE NOT cs.has_children"
)
_CONTENTS_RECALL_SQL = (
    _INSIDE + "SELECT r.id, r.klass, r.reason, r.created_us FROM recall r "
    "WHERE r.closed_us IS NULL AND ("
    "r.id IN (SELECT rc.recall_id FROM recall_code rc JOIN inside ON rc.code_id = inside.id) OR "
    "r.id IN (SELECT rb.recall_id FROM recall_batch rb JOIN code_state cs "
    "ON cs.product = rb.product AND cs.lot = rb.lot JOIN inside ON inside.id = cs.code_id)) "
    "ORDER BY r.klass, r.id LIMIT 1"
)
_PRODUCT_SQL = (
    "SELECT p.product_code, p.gtin, p.generic_name, p.trade_name, p.dosage_form, p.strength, "
    "p.pack_spec, p.packaging_level, p.units_per_pack, p.approval_no, p.approval_valid_until, "
    "h.name, m.name, p.holder_id, p.manufacturer_id FROM product p "
    "LEFT JOIN enterprise h ON h.id = p.holder_id "
    "LEFT JOIN enterprise m ON m.id = p.manufacturer_id "
    "WHERE p.product_code = ? OR p.gtin = ?"
)
_RECALL_SQL = (
    "SELECT r.id, r.klass, r.reason, r.created_us FROM recall r WHERE r.closed_us IS NULL AND ("
    "r.id IN (SELECT recall_id FROM recall_code WHERE code_id = ?) OR "
    "r.id IN (SELECT recall_id FROM recall_batch WHERE product = ? AND lot = ?)) "
    "ORDER BY r.klass, r.id LIMIT 1"
)
# hand-overs with the enterprises of both ends: by party id, else by the site's owner
_CUSTODY_SQL = (
    "SELECT c.ship_us, c.recv_us, c.kind, "
    "COALESCE(fp.id, fso.id), COALESCE(fp.name, fso.name), "
    "COALESCE(tp.id, tso.id), COALESCE(tp.name, tso.name), c.from_party, c.to_party, "
    "c.ship_event_id "
    "FROM custody c "
    "LEFT JOIN enterprise fp ON fp.party_id = c.from_party "
    "LEFT JOIN site fs ON fs.location_id = c.from_site "
    "LEFT JOIN enterprise fso ON fso.id = fs.enterprise_id "
    "LEFT JOIN enterprise tp ON tp.party_id = c.to_party "
    "LEFT JOIN site ts ON ts.location_id = c.to_site "
    "LEFT JOIN enterprise tso ON tso.id = ts.enterprise_id "
    "WHERE c.code_id = ?"
)
_SALES_SQL = (
    "SELECT d.time_us, d.units, e.id, e.name FROM dispense d "
    "LEFT JOIN site st ON st.location_id = d.site "
    "LEFT JOIN enterprise e ON e.id = st.enterprise_id WHERE d.code_id = ? ORDER BY d.time_us"
)


def _product(rows: list[tuple[Any, ...]]) -> tuple[dict[str, Any], set[int]] | None:
    """Public product facts and the ids of its holder and manufacturer (``_PRODUCT_SQL``)."""
    if not rows:
        return None
    row = rows[0]
    return dict(zip(_PUBLIC_PRODUCT, row[:13], strict=True)), {i for i in row[13:] if i}


def verify(
    conn: Connection,
    code: str,
    viewer: Viewer | None = None,
    *,
    now_us: int | None = None,
) -> Verdict:
    """The verdict for ``code`` in any form (NMPA code, element string, EPC URI, Digital Link).

    ``viewer`` ``None`` means the public; see the module docstring for what each one sees.
    Four or five indexed look-ups: the code's state, then the rest together (one pipelined round
    trip on PostgreSQL).
    """
    try:
        key = canonical_key(typed(code))
    except CodeError as exc:
        verdict = _unknown(
            code,
            f"not a valid code: {exc.reason}",
            f"不是有效的追溯码或条码内容，请核对后重新扫描或输入（{exc.reason_zh or exc.reason}）",
        )
        verdict.malformed = True
        return verdict
    if key_kind(key) != "instance":
        return _unknown(
            code,
            "not a pack/case/pallet code (a product or batch class)",
            "这是品种或批次的标识，不是单盒（箱、托）的追溯码",
            key,
        )
    found = rawsql.fetch(conn, _STATE_SQL, (key,))
    st = found[0] if found else None
    (
        code_id,
        status,
        product_code,
        lot,
        expiry,
        produced,
        custodian,
        site,
        parent_id,
        commission_id,
        last_id,
        last_us,
        sales,
        has_children,
    ) = st or (None,) * 14
    if status is None:
        product_code = product_of_key(key)
    # a logistics unit (SSCC pallet, case) is made by packing, not commissioning: known, genuine
    container = status is not None and commission_id is None and bool(has_children)
    known = status is not None and (commission_id is not None or container)  # made, or packed
    # the remaining look-ups depend only on the state row: one round trip on PostgreSQL
    queries: dict[str, tuple[str, tuple[Any, ...]]] = {}
    if product_code:
        queries["product"] = (_PRODUCT_SQL, (product_code, product_code))
    if known:
        queries["recall"] = (_RECALL_SQL, (code_id, product_code, lot))
        queries["custody"] = (_CUSTODY_SQL, (code_id,))
    if container:
        queries["contents"] = (_CONTENTS_SQL, (code_id,))
        queries["contents_recall"] = (_CONTENTS_RECALL_SQL, (code_id,))
    if sales:
        queries["sales"] = (_SALES_SQL, (code_id,))
    rows = dict(zip(queries, rawsql.fetch_batch(conn, list(queries.values())), strict=True))
    product = _product(rows.get("product", []))
    facts = product[0] if product else None
    if not known:
        issued = issued_at(conn, key)
        if issued is not None:
            reason = (
                f"issued (赋码) on {_day(issued)} but its production was never reported "
                "(未上报生产): not sellable until the holder reports it"
            )
            reason_zh = f"已于 {_day(issued)} 赋码，但企业未上报生产：上报前不可销售"
        elif product_code and product is None:
            reason = f"unregistered 药品标识码/GTIN {product_code}; never commissioned"
            reason_zh = f"药品标识码/GTIN {product_code} 未注册，且从未赋码激活"
        else:
            reason = "never commissioned — suspected counterfeit (查无此码)"
            reason_zh = "查无此码：从未赋码激活，疑似假冒"
        verdict = _unknown(code, reason, reason_zh, key)
        verdict.issued = _day(issued)
        verdict.product = facts
        if sales:
            _add_sales(verdict, rows["sales"], facts)
        return verdict
    now = now_us if now_us is not None else time.time_ns() // 1000
    recall = None
    found_recall = rows["recall"] or rows.get("contents_recall")
    if found_recall:
        rid, klass, why, created = found_recall[0]
        recall = {"id": rid, "class": klass, "reason": why, "date": _day(created)}
    if recall is not None or status == "recalled":
        verdict_status = "recalled"
    elif status in ("destroyed", "decommissioned", "dispensed"):
        verdict_status = status
    elif status == "expired" or (expiry and sale_day(now).isoformat() > expiry):
        verdict_status = "expired"  # also on the road: an expired delivery is not received
    elif status == "in_transit":
        verdict_status = status
    else:
        verdict_status = "genuine"
    verdict = Verdict(
        code=code,
        status=verdict_status,
        reason=_REASONS[verdict_status],
        reason_zh=_REASONS_ZH[verdict_status],
        key=key,
        recall=recall,
        product=facts,
        batch=None if container else {"lot": lot, "production_date": produced, "expiry": expiry},
    )
    if container:
        verdict.contents = int(rows["contents"][0][0])
        verdict.reason, verdict.reason_zh = _unit_reason(verdict, bool(rows["recall"]))
    involved = set(product[1]) if product else set()
    involved |= _add_circulation(verdict, rows["custody"])
    if sales:
        involved |= _add_sales(verdict, rows["sales"], facts)
    if viewer is not None and (
        viewer.sees_all or (viewer.enterprise_id is not None and viewer.enterprise_id in involved)
    ):
        directory = Directory(conn)
        holder = directory.holder(custodian, site)
        place = directory.place(site)
        verdict.detail = {
            "code_id": code_id,
            "key": key,
            "state": status,
            "site": site,
            "site_name": place.name if place else None,
            "custodian": holder.as_dict() if holder else None,
            "parent_id": parent_id,
            "commission_event_id": commission_id,
            "last_event_id": last_id,
            "last_time_us": last_us,
            "custodian_party": custodian,
        }
        shipment = _open_shipment(rows["custody"], viewer)
        if shipment is not None:  # on the road (a recalled or sold one too: a return, 回流)
            verdict.detail["shipment"] = shipment
    return verdict


def _open_shipment(rows: list[tuple[Any, ...]], viewer: Viewer) -> dict[str, Any] | None:
    """The hand-over a code is on, if any (``_CUSTODY_SQL`` rows, sorted): who sent it to whom
    and when, ``kind`` shipping or returning (退货); ``to_you`` when it is addressed to the
    viewer's enterprise (收货方)."""
    open_rows = [r for r in rows if r[0] is not None and r[1] is None]
    if not open_rows:
        return None
    ship_us, _, kind, src_id, src, dst_id, dst, src_party, dst_party, event_id = open_rows[-1]
    return {
        "event_id": event_id,  # the shipping event: one delivery (GET /arrivals lists them)
        "from_enterprise_id": src_id,
        "from": src,
        "from_party": src_party,
        "to_enterprise_id": dst_id,
        "to": dst,
        "to_party": dst_party,
        "shipped": _day(ship_us),
        "kind": kind,
        "to_you": dst_id is not None and dst_id == viewer.enterprise_id,
    }


def _unit_reason(verdict: Verdict, itself_recalled: bool) -> tuple[str, str]:
    """The reason for a logistics unit's verdict, in English and in Chinese: what it is and
    what it holds."""
    held = f"{verdict.contents} pack(s) inside" if verdict.contents else "now empty (unpacked)"
    held_zh = f"内有 {verdict.contents} 盒" if verdict.contents else "已拆空"
    if verdict.status == "recalled" and not itself_recalled:
        return (
            f"logistics unit (物流单元), {held}: it holds recalled packs — do not accept "
            "(含召回品)",
            f"物流单元，{held_zh}：含召回品，不得接收",
        )
    if verdict.status == "genuine" and not verdict.contents:
        return (
            "logistics unit (物流单元) known to the platform, now empty (unpacked): "
            "scan its packs one by one",
            "平台已知的物流单元，已拆空：其中的药品请逐盒扫码",
        )
    if verdict.status == "genuine":
        return (
            f"logistics unit (物流单元) known to the platform, {held}",
            f"平台已知的物流单元，{held_zh}",
        )
    return (
        f"{_REASONS[verdict.status]}; logistics unit (物流单元), {held}",
        f"{_REASONS_ZH[verdict.status]}；物流单元，{held_zh}",
    )


def _add_circulation(verdict: Verdict, rows: list[tuple[Any, ...]]) -> set[int]:
    """Hand-overs (``_CUSTODY_SQL`` rows) as the public path shows them; returns the enterprise
    ids involved."""
    rows.sort(key=lambda r: r[0] if r[0] is not None else (r[1] or 0))
    involved: set[int] = set()
    for ship_us, recv_us, kind, src_id, src, dst_id, dst, *_ in rows:
        involved.update(i for i in (src_id, dst_id) if i is not None)
        if src_id is not None and src_id == dst_id:
            continue  # a move inside one enterprise is not a hand-over
        verdict.circulation.append(
            {
                "from": src,
                "to": dst,
                "shipped": _day(ship_us),
                "received": _day(recv_us),
                "kind": kind,
            }
        )
    return involved


def _add_sales(
    verdict: Verdict, rows: list[tuple[Any, ...]], product: dict[str, Any] | None
) -> set[int]:
    """Sales (``_SALES_SQL`` rows) on the verdict; returns the enterprise ids of the sellers."""
    verdict.sale_count = len(rows)
    split = [r[1] for r in rows if r[1] is not None]
    if split:
        verdict.units_sold = float(sum(split))
        if product is not None:
            verdict.reason += f"; 拆零 {verdict.units_sold:g} of {product['units_per_pack']} units"
            verdict.reason_zh += f"；拆零已售 {verdict.units_sold:g}/{product['units_per_pack']}"
    for time_us, units, _, where in rows[-RECENT_SALES:]:
        verdict.sales.append({"date": _day(time_us), "where": where, "units": units})
    return {r[2] for r in rows if r[2] is not None}


def verify_many(
    conn: Connection, codes: Sequence[str], viewer: Viewer | None = None
) -> list[Verdict]:
    """Verdicts for a scanner's list of codes, in the same order."""
    now = time.time_ns() // 1000
    return [verify(conn, code, viewer, now_us=now) for code in codes]
