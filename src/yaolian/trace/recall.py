"""Recalls (药品召回): create, scope, progress.

A recall names batches (药品标识码/GTIN + 批号) and/or codes; a container code recalls everything
inside it at that moment. Its **scope** is read from the projections: every current holder with
the quantity it holds (a pallet's holder holds the pallet's packs — custody is kept per code
through aggregation), what is in transit and to whom, and what is already dispensed and where.
**Progress** follows the events that arrive afterwards: returns shipped (bizStep
``returning``), codes marked recalled (``recalling``), destroyed or decommissioned.
Verification reports every code in an open recall as recalled, and a sale of one raises a
``recalled_sale`` alert. The **notice list** (召回通知清单) turns a scope into one row per
enterprise and site to notify, as CSV for Excel.

Classes follow 药品召回管理办法: I (一级, may cause serious harm), II (二级), III (三级).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, union

from yaolian.codes.identity import canonical_key, typed
from yaolian.epcis.validate import LOT_MAX_BYTES, utf8_longer
from yaolian.errors import CodeError, ForbiddenError, NotFoundError, Problem, ValidationError
from yaolian.store import schema as s
from yaolian.store.access import Viewer
from yaolian.store.dictionary import lookup_codes
from yaolian.store.tx import read_tx, write_tx
from yaolian.tables import csv_text, xlsx_bytes
from yaolian.trace.directory import (
    Directory,
    enterprise_rows,
    holds_product,
    party_to_code,
    product_rows,
)
from yaolian.trace.lineage import batch_of_key, dispensed_by_site, holdings
from yaolian.trace.projection import chunks, recompute
from yaolian.trace.state import sale_day

CLASSES = {1: "一级召回 (class I)", 2: "二级召回 (class II)", 3: "三级召回 (class III)"}
_GONE = frozenset({"dispensed", "destroyed", "decommissioned"})


def _now_us() -> int:
    return time.time_ns() // 1000


def parse_batch(text: str) -> tuple[str, str]:
    """``PRODUCT/LOT``, ``PRODUCT:LOT`` or a batch-class URI (NMPA, LGTIN, Digital Link)."""
    text = typed(text)
    try:
        batch = batch_of_key(canonical_key(text))
    except CodeError:
        batch = None
    if batch is None:
        for sep in ("/", ":"):
            product, found, lot = text.partition(sep)
            product, lot = product.strip(), lot.strip()
            if (
                found
                and 0 < len(product) <= s.PRODUCT_CODE_MAX
                and lot
                and not utf8_longer(lot, LOT_MAX_BYTES)
            ):
                return product, lot
        raise ValidationError(
            f"{text[:80]!r} is not a batch: write PRODUCT/LOT (a product code of at most "
            f"{s.PRODUCT_CODE_MAX} characters, a lot of at most {LOT_MAX_BYTES} bytes) or a "
            "batch URI",
            place="batches",
        )
    return batch


def _open_descendants(conn: Connection, ids: set[int]) -> set[int]:
    a = s.aggregation.c
    found = set(ids)
    frontier = set(ids)
    while frontier:
        kids: set[int] = set()
        for part in chunks(frontier):
            kids.update(
                r[0]
                for r in conn.execute(
                    select(a.child_id).where(a.parent_id.in_(part), a.to_us.is_(None))
                )
            )
        frontier = kids - found
        found |= frontier
    return found


def create_recall(
    bind: Engine | Connection,
    *,
    klass: int,
    reason: str,
    batches: Sequence[str] = (),
    codes: Sequence[str] = (),
    enterprise_id: int | None = None,
    now_us: int | None = None,
) -> int:
    """Create a recall; returns its id. Every fault is reported with its place.

    ``enterprise_id`` (an enterprise creating it): only batches of products it holds or makes,
    and codes it is party to. ``None``: the platform or a regulator, anything.
    """
    problems: list[Problem] = []
    if klass not in CLASSES:
        problems.append(Problem("class must be 1, 2 or 3 (一级/二级/三级)", "class"))
    if not reason.strip():
        problems.append(Problem("a recall needs a reason", "reason"))
    if not batches and not codes:
        problems.append(Problem("name at least one batch or code", "batches"))
    parsed: list[tuple[str, str]] = []
    for n, text in enumerate(batches):
        try:
            parsed.append(parse_batch(text))
        except ValidationError as exc:
            problems.append(Problem(exc.reason, f"batches[{n}]"))
    keys: list[tuple[int, str]] = []
    for n, text in enumerate(codes):
        try:
            keys.append((n, canonical_key(typed(text))))
        except CodeError as exc:
            problems.append(Problem(exc.reason, f"codes[{n}]"))
    created = now_us if now_us is not None else _now_us()
    with write_tx(bind) as conn:
        ids = lookup_codes(conn, [k for _, k in keys])
        for n, key in keys:
            if key not in ids:
                problems.append(Problem(f"code {codes[n]!r} is not in the store", f"codes[{n}]"))
        if enterprise_id is not None:  # a holder recalls its own products (药品召回 by 持有人)
            for n, (product, _) in enumerate(parsed):
                if not holds_product(conn, enterprise_id, product):
                    problems.append(
                        Problem(
                            f"product {product} is not held or made by this enterprise",
                            f"batches[{n}]",
                        )
                    )
            for n, key in keys:
                cid = ids.get(key)
                if cid is not None and not party_to_code(conn, enterprise_id, cid):
                    problems.append(
                        Problem("this enterprise is not party to the code", f"codes[{n}]")
                    )
        if problems:
            raise ValidationError(
                f"recall not created: {len(problems)} problem(s)", problems=problems
            )
        recall_id = int(
            conn.execute(
                insert(s.recall)
                .values(
                    klass=klass,
                    reason=reason.strip(),
                    created_us=created,
                    enterprise_id=enterprise_id,
                )
                .returning(s.recall.c.id)
            ).scalar_one()
        )
        if parsed:
            conn.execute(
                insert(s.recall_batch),
                [
                    {"recall_id": recall_id, "product": p, "lot": lot}
                    for p, lot in dict.fromkeys(parsed)
                ],
            )
        code_ids = _open_descendants(conn, set(ids.values()))
        if code_ids:
            conn.execute(
                insert(s.recall_code),
                [{"recall_id": recall_id, "code_id": c} for c in sorted(code_ids)],
            )
        _reevaluate_sales(conn, recall_id, created)
    return recall_id


def close_recall(
    bind: Engine | Connection,
    recall_id: int,
    now_us: int | None = None,
    viewer: Viewer | None = None,
) -> None:
    """Close a recall (completed): its codes are no longer reported as recalled. Only its
    issuer, a regulator or the platform (``viewer`` None) closes it."""
    closed = now_us if now_us is not None else _now_us()
    with write_tx(bind) as conn:
        if not _issuer_side(_recall_row(conn, recall_id, viewer), viewer):
            raise ForbiddenError(
                "only the enterprise that issued the recall or a regulator ends it",
                place="recall",
            )
        done = conn.execute(
            s.recall.update()
            .where(s.recall.c.id == recall_id, s.recall.c.closed_us.is_(None))
            .values(closed_us=closed)
        ).rowcount
        if done:
            _reevaluate_sales(conn, recall_id, closed)
    if not done:
        raise NotFoundError(f"no open recall {recall_id}", place="recall")


def _reevaluate_sales(conn: Connection, recall_id: int, since_us: int) -> None:
    """Recompute the trace projections of the recall's codes already sold at or after
    ``since_us``. A recall recorded, or closed, with a time in the past changes whether those
    stored sales were sales of a recalled code (``recalled_sale``: a recall open at the time of
    the sale), as a rebuild would find; a recall of now finds none (one indexed look-up)."""
    d, rc, rb = s.dispense.c, s.recall_code.c, s.recall_batch.c
    named = (  # per recalled code: the sales index by code
        select(d.code_id)
        .join(s.recall_code, rc.code_id == d.code_id)
        .where(rc.recall_id == recall_id, d.time_us >= since_us)
    )
    in_batch = (  # per recalled batch: the sales index by product and lot
        select(d.code_id)
        .join(s.recall_batch, and_(rb.product == d.product, rb.lot == d.lot))
        .where(rb.recall_id == recall_id, d.time_us >= since_us)
    )
    codes = set(conn.execute(union(named, in_batch)).scalars())
    if codes:
        recompute(conn, codes)


def _recall_row(conn: Connection, recall_id: int, viewer: Viewer | None) -> Any:
    """The recall, if ``viewer`` may see it: the platform, a regulator, the enterprise that
    issued it, or one with a part in its scope (:func:`_concerns`)."""
    row = conn.execute(select(s.recall).where(s.recall.c.id == recall_id)).first()
    if row is None or (
        viewer is not None
        and not viewer.sees_all
        and row.enterprise_id != viewer.enterprise_id
        and (viewer.enterprise_id is None or not _concerns(conn, row.id, viewer.enterprise_id))
    ):
        raise NotFoundError(f"no recall {recall_id}", place="recall")
    return row


def _issuer_side(row: Any, viewer: Viewer | None) -> bool:
    """The platform, a regulator or the enterprise that issued the recall: it sees the whole
    scope and may end the recall; an enterprise with a part in it sees its own part."""
    return viewer is None or viewer.sees_all or row.enterprise_id == viewer.enterprise_id


def _scope_of(conn: Connection, recall_id: int) -> tuple[list[tuple[str, str]], list[int]]:
    """The recall's batches (product, lot) and its named codes (ids, containers' contents
    included)."""
    batches = [
        (b.product, b.lot)
        for b in conn.execute(select(s.recall_batch).where(s.recall_batch.c.recall_id == recall_id))
    ]
    rc = s.recall_code.c
    code_ids = list(conn.execute(select(rc.code_id).where(rc.recall_id == recall_id)).scalars())
    return batches, code_ids


def _concerns(conn: Connection, recall_id: int, enterprise_id: int) -> bool:
    """Whether an enterprise has a part in the recall: it holds, shipped, received or sold a
    code in its scope — who must stop selling or using it and help bring it back (经营企业、
    使用单位 under 药品召回管理办法). A batch is one probe of ``batch_party`` for the
    enterprise's party and sites; named codes one probe per projection."""
    batches, code_ids = _scope_of(conn, recall_id)
    bp = s.batch_party.c
    ours = (
        select(s.enterprise.c.party_id)
        .where(s.enterprise.c.id == enterprise_id, s.enterprise.c.party_id.is_not(None))
        .union_all(select(s.site.c.location_id).where(s.site.c.enterprise_id == enterprise_id))
    )
    if (
        batches
        and conn.execute(
            select(
                exists().where(
                    or_(*(and_(bp.product == p, bp.lot == lot) for p, lot in batches)),
                    bp.party.in_(ours),
                )
            )
        ).scalar()
    ):
        return True
    return any(
        conn.execute(select(exists().where(cond, mine))).scalar()
        for table, mine in enterprise_rows(enterprise_id)
        for cond in _scope_conds(table.c, [], code_ids)
    )


def list_recalls(bind: Engine | Connection, viewer: Viewer | None = None) -> list[dict[str, Any]]:
    """Recalls, newest first. An enterprise sees those it issued and those it has a part in
    (it holds, shipped, received or sold codes in scope); ``may_close`` says whether this
    viewer may end it."""
    r = s.recall.c
    with read_tx(bind) as conn:
        rows = conn.execute(select(s.recall).order_by(r.id.desc())).all()
        if viewer is not None and not viewer.sees_all:
            ent = viewer.enterprise_id
            rows = [
                x
                for x in rows
                if x.enterprise_id == ent or (ent is not None and _concerns(conn, x.id, ent))
            ]
        batches: dict[int, list[str]] = defaultdict(list)
        for b in conn.execute(select(s.recall_batch)):
            batches[b.recall_id].append(f"{b.product}/{b.lot}")
        ncodes: dict[int, int] = dict(
            conn.execute(
                select(s.recall_code.c.recall_id, func.count()).group_by(s.recall_code.c.recall_id)
            ).all()
        )
    return [
        {
            "id": x.id,
            "class": x.klass,
            "reason": x.reason,
            "created": sale_day(x.created_us).isoformat(),
            "created_us": x.created_us,
            "closed_us": x.closed_us,
            "batches": batches.get(x.id, []),
            "codes": int(ncodes.get(x.id, 0)),
            "may_close": _issuer_side(x, viewer),
        }
        for x in rows
    ]


def recall_scope(
    bind: Engine | Connection, recall_id: int, viewer: Viewer | None = None
) -> dict[str, Any]:
    """Scope and progress of a recall (see the module docstring)."""
    with read_tx(bind) as conn:
        rec = _recall_row(conn, recall_id, viewer)
        only = None if viewer is None or _issuer_side(rec, viewer) else viewer.enterprise_id
        batches, code_ids = _scope_of(conn, recall_id)
        extra = _outside_batches(conn, code_ids, batches)
        held: list[dict[str, Any]] = []
        sold: list[dict[str, Any]] = []
        on_record: dict[tuple[str, str], int] = {}
        for batch in batches:
            rows = holdings(conn, None, batch=batch)
            on_record[batch] = sum(h["count"] for h in rows)
            held += rows
            sold += dispensed_by_site(conn, None, batch=batch)
        if extra:
            held += holdings(conn, extra)
            sold += dispensed_by_site(conn, extra)
        returned, returned_out = _returned(conn, batches, extra, rec.created_us)
        directory = Directory(conn)
        directory.load(
            [h["custodian"] for h in held] + [h["site"] for h in held] + [x["site"] for x in sold]
        )
        in_transit = _in_transit(conn, batches, extra, directory, only)
        products = product_rows(conn, {p for p, _ in batches})
    by_status: Counter[str] = Counter()
    holders: dict[str, dict[str, Any]] = {}
    for h in held:
        by_status[h["status"]] += h["count"]
        if h["status"] in _GONE or h["status"] == "in_transit":
            continue
        holder = directory.holder(h["custodian"], h["site"])
        if only is not None and (holder is None or holder.enterprise_id != only):
            continue  # an enterprise with a part in the recall sees its own
        place = directory.place(h["site"])
        name = holder.name if holder else (h["custodian"] or h["site"] or "unknown")
        entry = holders.setdefault(
            name,
            {
                "holder": name,
                "enterprise_id": holder.enterprise_id if holder else None,
                "uscc": holder.uscc if holder else None,
                "role": holder.role if holder else None,
                "count": 0,
                "sites": {},
            },
        )
        entry["count"] += h["count"]
        site_name = place.name if place else (h["site"] or "unknown")
        entry["sites"][site_name] = entry["sites"].get(site_name, 0) + h["count"]
    dispensed = []
    for x in sold:
        place = directory.place(x["site"])
        if only is not None and (place is None or place.owner.enterprise_id != only):
            continue
        dispensed.append(
            {
                **x,
                "site_name": place.name if place else None,
                "holder": place.owner.name if place else None,
                "uscc": place.owner.uscc if place else None,
            }
        )
    total = sum(by_status.values())
    # each code once: destroyed ones, plus returned ones not yet destroyed (or sold again)
    out_of_market = by_status["destroyed"] + by_status["decommissioned"] + returned_out
    reachable = total - by_status["dispensed"]
    return {
        "id": rec.id,
        "class": rec.klass,
        "class_name": CLASSES.get(rec.klass),
        "reason": rec.reason,
        "created": sale_day(rec.created_us).isoformat(),
        "created_us": rec.created_us,
        "closed_us": rec.closed_us,
        "may_close": only is None,
        "batches": [  # codes: of the batch on record (0: a lot mistyped, or not yet reported)
            {
                "product": p,
                "lot": lot,
                "generic_name": products.get(p, {}).get("generic_name"),
                "codes": on_record[(p, lot)],
            }
            for p, lot in batches
        ],
        "codes": len(code_ids),
        "total": total,
        "by_status": dict(by_status),
        "holders": sorted(holders.values(), key=lambda e: -e["count"]),
        "in_transit": in_transit,
        "dispensed": sorted(dispensed, key=lambda e: -e["codes"]),
        "progress": {
            "returned": returned,
            "destroyed": by_status["destroyed"] + by_status["decommissioned"],
            "recalled_status": by_status["recalled"],
            "outstanding": max(reachable - out_of_market, 0),
            # None: no code on record, nothing to bring back yet (not "done")
            "percent_complete": (
                round(100.0 * out_of_market / reachable, 1)
                if reachable
                else (100.0 if total else None)
            ),
        },
    }


def _scope_conds(cols: Any, batches: list[tuple[str, str]], code_ids: list[int]) -> list[Any]:
    """Rows of the recall's codes: batches by the (product, lot) columns, codes by id."""
    conds = [and_(cols.product == p, cols.lot == lot) for p, lot in batches]
    conds += [cols.code_id.in_(part) for part in chunks(code_ids)]
    return conds


def _outside_batches(
    conn: Connection, code_ids: list[int], batches: list[tuple[str, str]]
) -> list[int]:
    """The named codes that are not in a named batch (those are counted with their batch)."""
    if not batches or not code_ids:
        return code_ids
    cs = s.code_state.c
    named = set(batches)
    inside = {
        r[0]
        for part in chunks(code_ids)
        for r in conn.execute(select(cs.code_id, cs.product, cs.lot).where(cs.code_id.in_(part)))
        if (r[1], r[2]) in named
    }
    return [c for c in code_ids if c not in inside]


def _returned(
    conn: Connection, batches: list[tuple[str, str]], code_ids: list[int], since_us: int
) -> tuple[int, int]:
    """Codes shipped back (退货, kind ``returning``) since the recall was created: all of them,
    and those still out of the market by the return alone (not destroyed or sold since)."""
    c, cs = s.custody.c, s.code_state.c
    found: dict[int, str] = {}
    for cond in _scope_conds(c, batches, code_ids):
        found.update(
            (r[0], r[1])
            for r in conn.execute(
                select(c.code_id, cs.status)
                .join(s.code_state, cs.code_id == c.code_id)
                .where(cond, c.kind == "returning", c.ship_us >= since_us)
            )
        )
    return len(found), sum(status not in _GONE for status in found.values())


def _in_transit(
    conn: Connection,
    batches: list[tuple[str, str]],
    code_ids: list[int],
    directory: Directory,
    only: int | None = None,
) -> list[dict[str, Any]]:
    """Open shipments of codes in scope: from whom, to whom, how many, shipped when (``only``:
    those from or to this enterprise)."""
    c, cs = s.custody.c, s.code_state.c
    counter: Counter[tuple[Any, ...]] = Counter()
    for cond in _scope_conds(c, batches, code_ids):
        for r in conn.execute(
            select(
                c.from_party,
                c.from_site,
                c.to_party,
                c.to_site,
                c.kind,
                func.min(c.ship_us),
                func.count(),
            )
            .join(
                s.code_state, (cs.code_id == c.code_id) & (cs.open_ship_event_id == c.ship_event_id)
            )
            .where(cond, c.recv_us.is_(None))
            .group_by(c.from_party, c.from_site, c.to_party, c.to_site, c.kind)
        ):
            counter[tuple(r[:6])] += int(r[6])
    out = []
    for (fp, fs, tp, ts, kind, shipped), n in counter.items():
        src, dst = directory.holder(fp, fs), directory.holder(tp, ts)
        if only is not None and only not in {x.enterprise_id for x in (src, dst) if x}:
            continue
        out.append(
            {
                "from": src.name if src else fp,
                "from_uscc": src.uscc if src else None,
                "to": dst.name if dst else tp,
                "to_uscc": dst.uscc if dst else None,
                "to_site": _site_name(directory, ts),
                "kind": kind,
                "count": n,
                "shipped": sale_day(shipped).isoformat(),
            }
        )
    return sorted(out, key=lambda e: -e["count"])


def _site_name(directory: Directory, uri: str | None) -> str | None:
    place = directory.place(uri)
    return place.name if place else uri


NOTICE_HEADER = ("环节", "企业名称", "统一社会信用代码", "场所", "数量", "日期", "处置要求")
_NOTICE_PARTS = {"held": "在库持有", "in_transit": "在途待收", "dispensed": "已销售使用"}


def notice_rows(scope: dict[str, Any]) -> list[dict[str, Any]]:
    """The recall notice list (召回通知清单) of a scope from :func:`recall_scope`: one row per
    enterprise and site to notify — holders (stop selling, quarantine, return or destroy),
    receivers of open shipments (refuse or quarantine on arrival), sites that dispensed codes
    in scope (tell the patients or wards that received them)."""
    rows: list[dict[str, Any]] = []
    for h in scope["holders"]:
        rows += [
            {
                "part": "held",
                "enterprise": h["holder"],
                "uscc": h["uscc"],
                "site": site,
                "count": n,
                "date": None,
                "action": "立即停止销售和使用，就地封存，按召回要求退回或销毁",
            }
            for site, n in h["sites"].items()
        ]
    rows += [
        {
            "part": "in_transit",
            "enterprise": t["to"],
            "uscc": t["to_uscc"],
            "site": t["to_site"],
            "count": t["count"],
            "date": t["shipped"],
            "action": f"拒收，或到货即封存；发货方 {t['from']}（{t['shipped']} 发出）",
        }
        for t in scope["in_transit"]
    ]
    rows += [
        {
            "part": "dispensed",
            "enterprise": d["holder"] or d["site"],
            "uscc": d["uscc"],
            "site": d["site_name"] or d["site"],
            "count": d["codes"],
            "date": d["last"],
            "action": f"通知 {d['first']} 至 {d['last']} 售出或使用的患者、科室，停止使用并回收",
        }
        for d in scope["dispensed"]
    ]
    return rows


def _notice_table(scope: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            _NOTICE_PARTS[r["part"]],
            r["enterprise"],
            r["uscc"] or "",
            r["site"] or "",
            r["count"],
            r["date"] or "",
            r["action"],
        )
        for r in notice_rows(scope)
    ]


def notice_csv(scope: dict[str, Any]) -> str:
    """The notice list as CSV (Chinese headings; a byte-order mark for Excel)."""
    return csv_text(NOTICE_HEADER, _notice_table(scope), excel=True)


def notice_xlsx(scope: dict[str, Any]) -> bytes:
    """The notice list as an Excel workbook (USCCs kept as text)."""
    return xlsx_bytes(f"召回{scope['id']}通知清单", NOTICE_HEADER, _notice_table(scope))
