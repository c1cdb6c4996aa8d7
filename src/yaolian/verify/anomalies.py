"""Anomaly rules (异常预警) and the alerts they raise.

The rules run inside the trace projection (``trace.projection``): the state machine calls them
at the moment of each sale, move and sensor reading, with the code's state just before the
event — so they run incrementally on every capture, and in bulk over the whole log on
``yaolian rebuild`` (``store.projections.rebuild``), with identical results either way. Each
trigger has a stable key, so an anomaly seen again (a third sale of a re-sold pack) updates
one alert instead of adding another; its evidence lists every event involved.

Rules:

* ``double_sale`` — a whole-pack code settled twice or more (回流药 resale, swapped or fake);
* ``split_overrun`` — split sales (拆零) of one pack beyond the product's ``units_per_pack``;
* ``unknown_code`` — a sale of a code never commissioned (suspected counterfeit);
* ``custody_break`` — dispensed at a site whose enterprise never received the code (diversion);
* ``clone`` — one code seen at two sites farther apart than travel at
  ``$YAOLIAN_CLONE_SPEED_KMH`` (default 300 km/h) allows;
* ``cold_chain`` — a temperature reading outside the product's range (``temp_min``/``temp_max``)
  for the code or any container it was in at that time;
* ``expired_sale`` — sold after its expiry date (China Standard Time calendar day);
* ``recalled_sale`` — sold while recalled (a recall naming it or its batch, or a recall event).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from yaolian.codes.identity import canonical_key, typed, uri_for_key
from yaolian.errors import CodeError, ForbiddenError, QueryError
from yaolian.store import schema as s
from yaolian.store.access import Viewer
from yaolian.store.dictionary import code_keys, lookup_codes
from yaolian.store.tx import read_tx
from yaolian.tables import xlsx_bytes
from yaolian.trace.directory import Directory, concerns_code
from yaolian.trace.state import CodeState, Context, Facts, SiteInfo, Trigger, sale_day
from yaolian.verify.review import STATUSES, responses_of, review_is, reviews_of

RULES = {
    "double_sale": "whole-pack code settled more than once (回流药)",
    "split_overrun": "拆零 units beyond the pack's unit count",
    "unknown_code": "sale of a code never commissioned (suspected counterfeit)",
    "custody_break": "dispensed at a site that never received the code (diversion)",
    "clone": "same code at two sites farther apart than travel allows (cloned code)",
    "cold_chain": "temperature outside the product's storage range",
    "expired_sale": "sold after expiry",
    "recalled_sale": "sold while recalled",
}
RULE_NAMES_ZH = {  # as Chinese pages and exports name them
    "double_sale": "回流药 重复结算",
    "split_overrun": "拆零超量",
    "unknown_code": "查无此码",
    "custody_break": "流向异常",
    "clone": "克隆码",
    "cold_chain": "冷链超温",
    "expired_sale": "过期销售",
    "recalled_sale": "召回品销售",
}
RULE_REASONS_ZH = {  # what each rule found
    "double_sale": "整盒追溯码被重复结算（回流药）",
    "split_overrun": "拆零销售数量超过整盒数量",
    "unknown_code": "销售了从未赋码入库的追溯码（疑似假药）",
    "custody_break": "在从未收货的机构销售（流向异常）",
    "clone": "同一追溯码出现在相距过远的两地（疑似克隆码）",
    "cold_chain": "温度超出药品储存范围",
    "expired_sale": "过期后仍在销售",
    "recalled_sale": "召回期间仍在销售",
}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
EARTH_RADIUS_KM = 6371.0


def distance_km(a: SiteInfo, b: SiteInfo) -> float | None:
    """Great-circle distance between two sites, when both have coordinates."""
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    return _haversine(a.lat, a.lon, b.lat, b.lon)


@functools.lru_cache(maxsize=65_536)
def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _trigger(
    rule: str, key: str, severity: str, st: CodeState, f: Facts, evidence: dict[str, Any]
) -> Trigger:
    return Trigger(
        rule,
        key,
        severity,
        st.code_id,
        f.eid,
        f.place,
        f.t,
        f.record_us,
        {"reason": RULES[rule], **evidence},
    )


def _held_here(st: CodeState, f: Facts, ctx: Context) -> bool:
    """Whether the selling site's enterprise held the code (or it was at this very site)."""
    place = f.place
    if place is None or place == st.site:
        return True
    here = ctx.site(place)
    if here is None or here.enterprise_id is None:
        return False
    owners = {ctx.party_enterprise(st.custodian)}
    held = ctx.site(st.site)
    if held is not None:
        owners.add(held.enterprise_id)
    return here.enterprise_id in owners


class AnomalyRules:
    """The rules above, as the state machine's :class:`~yaolian.trace.state.Rules`."""

    def on_sale(self, st: CodeState, f: Facts, ctx: Context) -> list[Trigger]:
        """Sale rules: 回流药, 拆零 overrun, unknown code, custody break, expired, recalled."""
        c = st.code_id
        out: list[Trigger] = []
        info = ctx.product(st.product)
        per_pack = info.units_per_pack if info else 1
        sale = {"sale_site": f.place, "settlement": f.settlement, "units": f.units}
        if st.commission_event_id is None:
            out.append(_trigger("unknown_code", f"unknown_code:{c}", "high", st, f, sale))
        elif not _held_here(st, f, ctx):
            out.append(
                _trigger(
                    "custody_break",
                    f"custody_break:{c}:{f.eid}",
                    "medium",
                    st,
                    f,
                    {**sale, "last_site": st.site, "last_custodian": st.custodian},
                )
            )
        if (f.units is None and st.sales >= 1) or (f.units is not None and st.whole_sales >= 1):
            out.append(
                _trigger(
                    "double_sale",
                    f"double_sale:{c}",
                    "high",
                    st,
                    f,
                    {**sale, "earlier_sales": st.sales},
                )
            )
        elif f.units is not None and st.split_units + f.units > per_pack + 1e-9:
            out.append(
                _trigger(
                    "split_overrun",
                    f"split_overrun:{c}",
                    "high",
                    st,
                    f,
                    {**sale, "units_per_pack": per_pack, "units_sold": st.split_units + f.units},
                )
            )
        if st.expiry and sale_day(f.t).isoformat() > st.expiry:
            out.append(
                _trigger(
                    "expired_sale",
                    f"expired_sale:{c}:{f.eid}",
                    "high",
                    st,
                    f,
                    {**sale, "expiry": st.expiry},
                )
            )
        recall_id = ctx.recall_of(c, st.product, st.lot, f.t)
        if st.status == "recalled" or recall_id is not None:
            out.append(
                _trigger(
                    "recalled_sale",
                    f"recalled_sale:{c}:{f.eid}",
                    "high",
                    st,
                    f,
                    {**sale, "recall_id": recall_id},
                )
            )
        return out

    def on_move(self, st: CodeState, f: Facts, place: str, ctx: Context) -> list[Trigger]:
        """Clone rule: faster than travel allows between the last sighting and this one."""
        if st.seen_site is None or st.seen_us is None:
            return []
        a, b = ctx.site(st.seen_site), ctx.site(place)
        km = distance_km(a, b) if a is not None and b is not None else None
        hours = max(f.t - st.seen_us, 1) / 3.6e9
        if km is None or km / hours <= ctx.clone_speed_kmh:
            return []
        return [
            _trigger(
                "clone",
                f"clone:{st.code_id}:{st.seen_event_id}:{f.eid}",
                "high",
                st,
                f,
                {
                    "from_site": st.seen_site,
                    "from_event_id": st.seen_event_id,
                    "from_time_us": st.seen_us,
                    "to_site": place,
                    "km": round(km, 1),
                    "km_per_hour": round(km / hours, 1),
                    "limit_km_per_hour": ctx.clone_speed_kmh,
                },
            )
        ]

    def on_sensor(self, st: CodeState, f: Facts, via: int | None, ctx: Context) -> list[Trigger]:
        """Cold chain: readings outside the product's storage range."""
        info = ctx.product(st.product)
        if info is None or f.sensor is None:
            return []
        lo, hi = f.sensor
        if (info.temp_min is None or lo >= info.temp_min) and (
            info.temp_max is None or hi <= info.temp_max
        ):
            return []
        return [
            _trigger(
                "cold_chain",
                f"cold_chain:{f.eid}:{st.code_id}",
                "high",
                st,
                f,
                {
                    "min_c": lo,
                    "max_c": hi,
                    "allowed": [info.temp_min, info.temp_max],
                    "container_id": via,
                },
            )
        ]


@dataclass(frozen=True)
class AlertFilter:
    """Filters for :func:`list_alerts` (all optional)."""

    rule: str | None = None
    review: str | None = None  # verify.review.STATUSES: open (no finding yet), confirmed …
    code: str | None = None  # in any form
    site: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    limit: int = 100
    offset: int = 0


def _uri_of(key: str | None) -> str | None:
    """The code as a URI the API reads back (``code`` is the store's canonical key)."""
    try:
        return uri_for_key(key, "any") if key else None
    except CodeError:
        return None


def list_alerts(bind: Engine | Connection, viewer: Viewer, flt: AlertFilter) -> dict[str, Any]:
    """Alerts matching ``flt``, newest first, with the code keys and each one's review
    (``None``: open), ``by_rule`` and ``by_review``: how many match each rule and each review
    status under the other filters (every rule and status listed). An enterprise sees only alerts
    about codes it handled or of products it holds or makes (a counterfeit of its product
    sold anywhere), regulators and admins see all."""
    if flt.rule is not None and flt.rule not in RULES:
        raise QueryError(f"unknown rule {flt.rule!r}; one of {', '.join(RULES)}", place="rule")
    if flt.review is not None and flt.review not in STATUSES:
        raise QueryError(
            f"unknown review status {flt.review!r}; one of {', '.join(STATUSES)}", place="review"
        )
    if not 1 <= flt.limit <= 10_000:
        raise QueryError("limit must be 1–10000", place="limit")
    if not viewer.sees_all and viewer.enterprise_id is None:  # the public
        raise ForbiddenError("alerts need an enterprise or regulator key", place="Authorization")
    a = s.alert.c
    conds = []
    key = None
    if flt.code is not None:
        try:
            key = canonical_key(typed(flt.code))
        except CodeError as exc:
            raise QueryError(exc.reason, place="code") from None
    if flt.site:
        conds.append(a.site == flt.site)
    if flt.since_us is not None:
        conds.append(a.time_us >= flt.since_us)
    if flt.until_us is not None:
        conds.append(a.time_us < flt.until_us)
    if not viewer.sees_all and viewer.enterprise_id is not None:  # codes it handled or makes
        ent = viewer.enterprise_id
        conds.append(concerns_code(ent, a.code_id))
    reviewed = s.alert.outerjoin(s.alert_review, s.alert_review.c.key == a.key)
    review = func.coalesce(s.alert_review.c.status, "open")
    with read_tx(bind) as conn:
        if key is not None:
            conds.append(a.code_id == lookup_codes(conn, [key]).get(key, -1))  # unknown: none
        counts = conn.execute(  # one pass: per rule × review status, under the other filters
            select(a.rule, review, func.count())
            .select_from(reviewed)
            .where(*conds)
            .group_by(a.rule, review)
        ).all()
        if flt.rule:
            conds.append(a.rule == flt.rule)
        if flt.review:
            conds.append(review_is(flt.review, a.key))
        rows = conn.execute(
            select(s.alert)
            .where(*conds)
            .order_by(a.time_us.desc(), a.id.desc())
            .limit(flt.limit)
            .offset(flt.offset)
        ).all()
        keys = code_keys(conn, {r.code_id for r in rows})
        findings = reviews_of(conn, [r.key for r in rows])
        accounts = responses_of(conn, [r.key for r in rows], viewer)
    by_rule, by_review = dict.fromkeys(RULES, 0), dict.fromkeys(STATUSES, 0)
    total = 0
    for rule, status, n in counts:
        of_rule, of_review = flt.rule in (None, rule), flt.review in (None, status)
        if of_review:
            by_rule[rule] = by_rule.get(rule, 0) + n
        if of_rule:
            by_review[status] += n
        if of_rule and of_review:
            total += n
    return {
        "total": total,
        "by_rule": by_rule,
        "by_review": by_review,
        "rules_zh": RULE_NAMES_ZH,
        "reviews_zh": STATUSES,
        "alerts": [
            {
                "id": r.id,
                "key": r.key,
                "rule": r.rule,
                "rule_zh": RULE_NAMES_ZH.get(r.rule, r.rule),
                "reason_zh": RULE_REASONS_ZH.get(r.rule),
                "severity": r.severity,
                "severity_zh": SEVERITY_ZH.get(r.severity, r.severity),
                "code": keys.get(r.code_id),
                "uri": _uri_of(keys.get(r.code_id)),
                "code_id": r.code_id,
                "event_id": r.event_id,
                "site": r.site,
                "time": sale_day(r.time_us).isoformat(),
                "time_us": r.time_us,
                "record_us": r.record_us,
                "evidence": r.evidence,
                "review": findings.get(r.key),
                "responses": accounts.get(r.key, []),
            }
            for r in rows
        ],
    }


ALERT_SHEET_HEADER = (
    "告警编号",
    "日期",
    "规则",
    "级别",
    "追溯码",
    "场所",
    "企业",
    "统一社会信用代码",
    "原因",
    "核查",
    "核查情况",
    "企业说明",
)


def alerts_workbook(bind: Engine | Connection, found: dict[str, Any]) -> bytes:
    """The alerts of a :func:`list_alerts` answer as an Excel workbook (告警清单), in Chinese:
    where each happened (site, its enterprise and 统一社会信用代码) and its review."""
    with read_tx(bind) as conn:
        directory = Directory(conn)
        directory.load(a["site"] for a in found["alerts"])
        places = [directory.place(a["site"]) for a in found["alerts"]]
    rows = []
    for a, place in zip(found["alerts"], places, strict=True):
        review = a["review"]
        rows.append(
            (
                a["id"],
                a["time"],
                a["rule_zh"],
                a["severity_zh"],
                (a["uri"] or a["code"] or "").removeprefix("urn:nmpa:code:"),
                place.name if place else a["site"],
                place.owner.name if place else None,
                place.owner.uscc if place else None,
                a["reason_zh"] or a["evidence"].get("reason"),
                STATUSES[review["status"]] if review else STATUSES["open"],
                review["note"] if review else None,
                "；".join(f"{x['enterprise']}：{x['note']}" for x in a["responses"]) or None,
            )
        )
    return xlsx_bytes("告警清单", ALERT_SHEET_HEADER, rows)
