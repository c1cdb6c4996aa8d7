"""Supply signals kept as data: discontinuation reports (停产报告), production plans, API
(原料药) sources, lead times between regions and the monitored lists (重点监测清单 /
易短缺药品清单) with their thresholds — everything the risk model reads besides the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from yaolian.epcis.model import CHINA_TIME, parse_local_date
from yaolian.errors import ForbiddenError, NotFoundError, ValidationError
from yaolian.store.schema import (
    enterprise,
    supply_api_source,
    supply_discontinuation,
    supply_lead_time,
    supply_list,
    supply_list_item,
    supply_production_plan,
)
from yaolian.store.tx import upsert
from yaolian.supply.ledger import require_known_product, require_product, stored_us
from yaolian.trace.directory import holds_product

DEFAULT_LEAD_DAYS = 14.0
# Default thresholds (days of supply) for products on no monitored list.
DEFAULT_THRESHOLDS = (7.0, 21.0, 45.0)  # red, orange, yellow


def parse_day(value: str | date, place: str) -> date:
    """A date, or its text as :func:`~yaolian.epcis.model.parse_local_date` reads it
    (``2026-03-01``, ``2026/3/1``, ``20260301`` …); ValidationError naming ``place`` otherwise."""
    if isinstance(value, date):
        return value
    try:
        return parse_local_date(value)
    except ValueError as exc:
        raise ValidationError(str(exc), place=place) from None


# ── discontinuation reports (停产报告) ───────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Discontinuation:
    """A holder's report that production of a product stops."""

    id: int
    product: str
    holder: str
    stop_date: date
    reason: str
    remaining_packs: float
    filed_at: datetime  # when the holder filed it (the filing's own date), not when stored
    withdrawn_at: datetime | None  # when the holder withdrew it: production resumes (恢复生产)

    @property
    def withdrawn(self) -> bool:
        """Withdrawn by its holder."""
        return self.withdrawn_at is not None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        d = asdict(self)
        d["stop_date"] = self.stop_date.isoformat()
        d["filed_at"] = self.filed_at.isoformat()
        d["withdrawn_at"] = self.withdrawn_at.isoformat() if self.withdrawn_at else None
        d["withdrawn"] = self.withdrawn
        return d


def filing_time(value: str | date | datetime, place: str = "filed_on") -> datetime:
    """When a report was filed: a date (its 00:00 China time), an aware datetime, or their ISO
    text; ValidationError naming ``place`` otherwise."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text) if len(text) > 10 else date.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError(
                f"{value!r} is not a date (YYYY-MM-DD) or a time with offset", place=place
            ) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError("the filing time needs a time-zone offset", place=place)
        return value
    return datetime.combine(value, time(), CHINA_TIME)  # a date-only filing: its 00:00


def _require_filer(conn: Connection, enterprise_id: int, holder: str, product: str) -> None:
    own = conn.execute(select(enterprise.c.uscc).where(enterprise.c.id == enterprise_id)).scalar()
    if own is None or holder.strip() != own:
        raise ForbiddenError(
            f"this key files for enterprise {own or '(none)'}, not {holder[:40]!r}", place="holder"
        )
    if not holds_product(conn, enterprise_id, product):
        raise ForbiddenError(
            f"product {product} is not one enterprise {own} holds or makes (master data)",
            place="product",
        )


def file_discontinuation(
    conn: Connection,
    *,
    product: str,
    holder: str,
    stop_date: str | date,
    reason: str,
    remaining_packs: float,
    filed_on: str | date | datetime,
    enterprise_id: int | None = None,
) -> Discontinuation:
    """Record a holder's discontinuation report as filed on ``filed_on`` (the report's own
    date, not the moment it is stored); risk assessed as of that day or later reflects it.
    ``enterprise_id`` (an enterprise filing it): only as itself (``holder`` = its 统一社会信用代码)
    and for a product it holds or makes (ForbiddenError otherwise)."""
    product = require_known_product(conn, product)
    if enterprise_id is not None:
        _require_filer(conn, enterprise_id, holder, product)
    if not holder.strip():
        raise ValidationError("the reporting holder is required", place="holder")
    if not reason.strip():
        raise ValidationError("a reason is required", place="reason")
    if remaining_packs < 0:
        raise ValidationError("remaining stock cannot be negative", place="remaining_packs")
    day = parse_day(stop_date, "stop_date")
    filed_at = filing_time(filed_on)
    row_id = conn.execute(
        insert(supply_discontinuation)
        .values(
            product=product,
            holder=holder.strip(),
            stop_date=day.isoformat(),
            reason=reason.strip(),
            remaining_packs=float(remaining_packs),
            filed_us=stored_us(filed_at, "filed_on"),
        )
        .returning(supply_discontinuation.c.id)
    ).scalar_one()
    return Discontinuation(
        int(row_id),
        product,
        holder.strip(),
        day,
        reason.strip(),
        float(remaining_packs),
        filed_at,
        None,
    )


def withdraw_discontinuation(
    conn: Connection,
    report_id: int,
    *,
    withdrawn_on: str | date | datetime,
    enterprise_id: int | None = None,
) -> Discontinuation:
    """The holder withdraws its report as of ``withdrawn_on`` (production resumes, 恢复生产):
    risk assessed as of that day or later no longer counts it, earlier days still do.
    ``enterprise_id`` (an enterprise withdrawing it): only a report it filed itself."""
    d = supply_discontinuation.c
    row = conn.execute(select(supply_discontinuation).where(d.id == report_id)).first()
    if row is None:
        raise NotFoundError(f"no discontinuation report {report_id}", place="id")
    if enterprise_id is not None:
        _require_filer(conn, enterprise_id, row.holder, row.product)
    if row.withdrawn_us is not None:
        raise ValidationError(f"report {report_id} is withdrawn already", place="id")
    at = filing_time(withdrawn_on, "withdrawn_on")
    at_us = stored_us(at, "withdrawn_on")
    if at_us < row.filed_us:
        raise ValidationError(
            "a report cannot be withdrawn before it was filed", place="withdrawn_on"
        )
    conn.execute(update(supply_discontinuation).where(d.id == report_id).values(withdrawn_us=at_us))
    return _report(conn.execute(select(supply_discontinuation).where(d.id == report_id)).one())


def _report(r: Any) -> Discontinuation:
    """A ``supply_discontinuation`` row as a report."""
    return Discontinuation(
        r.id,
        r.product,
        r.holder,
        date.fromisoformat(r.stop_date),
        r.reason,
        r.remaining_packs,
        datetime.fromtimestamp(r.filed_us / 1e6, CHINA_TIME),
        None
        if r.withdrawn_us is None
        else datetime.fromtimestamp(r.withdrawn_us / 1e6, CHINA_TIME),
    )


def discontinuations(
    conn: Connection,
    *,
    product: str | None = None,
    include_withdrawn: bool = False,
    filed_by: datetime | None = None,
) -> list[Discontinuation]:
    """Reports, newest filing first: those in force now, or with ``filed_by`` those in force
    then (filed at or before it, not withdrawn by it); ``include_withdrawn``: withdrawn too."""
    d = supply_discontinuation.c
    q = select(supply_discontinuation).order_by(d.filed_us.desc(), d.id.desc())
    if product:
        q = q.where(d.product == product)
    if filed_by is not None:
        by_us = stored_us(filed_by, "filed_by")
        q = q.where(d.filed_us <= by_us)
        if not include_withdrawn:
            q = q.where(or_(d.withdrawn_us.is_(None), d.withdrawn_us > by_us))
    elif not include_withdrawn:
        q = q.where(d.withdrawn_us.is_(None))
    return [_report(r) for r in conn.execute(q)]


# ── production plans, API sources, lead times ──────────────────────────────────────────────


def set_production_plan(
    conn: Connection, product: str, manufacturer: str, month: str, planned_packs: float
) -> None:
    """Planned output of a product by a manufacturer in a month (``YYYY-MM``)."""
    product = require_product(product)
    try:
        datetime.strptime(month, "%Y-%m")
    except ValueError as exc:
        raise ValidationError(f"{month!r} is not a month (YYYY-MM)", place="month") from exc
    if planned_packs < 0:
        raise ValidationError("planned quantity cannot be negative", place="planned_packs")
    upsert(
        conn,
        supply_production_plan,
        ["product", "manufacturer", "month"],
        {
            "product": product,
            "manufacturer": manufacturer,
            "month": month,
            "planned_packs": float(planned_packs),
        },
    )


def planned_packs(conn: Connection, months: Iterable[str]) -> dict[str, float]:
    """Planned packs per product over ``months`` (products with a plan only)."""
    rows = conn.execute(
        select(supply_production_plan.c.product, func.sum(supply_production_plan.c.planned_packs))
        .where(supply_production_plan.c.month.in_(list(months)))
        .group_by(supply_production_plan.c.product)
    )
    return {p: float(q or 0) for p, q in rows}


def products_with_plans(conn: Connection) -> set[str]:
    """Products that have any production plan on record."""
    return set(conn.execute(select(supply_production_plan.c.product).distinct()).scalars())


def set_api_sources(conn: Connection, product: str, suppliers: Iterable[str]) -> None:
    """Replace the API (原料药) suppliers of a product."""
    product = require_product(product)
    names = sorted({s.strip() for s in suppliers if s.strip()})
    if not names:
        raise ValidationError("at least one API supplier is needed", place="suppliers")
    conn.execute(supply_api_source.delete().where(supply_api_source.c.product == product))
    conn.execute(insert(supply_api_source), [{"product": product, "supplier": s} for s in names])


def api_source_counts(conn: Connection) -> dict[str, int]:
    """Number of API suppliers per product (products with any recorded)."""
    rows = conn.execute(
        select(supply_api_source.c.product, func.count()).group_by(supply_api_source.c.product)
    )
    return {p: int(n) for p, n in rows}


def set_lead_time(conn: Connection, from_region: str, to_region: str, days: float) -> None:
    """Replenishment lead time in days from one region to another."""
    if days < 0:
        raise ValidationError("lead time cannot be negative", place="days")
    upsert(
        conn,
        supply_lead_time,
        ["from_region", "to_region"],
        {"from_region": from_region, "to_region": to_region, "days": float(days)},
    )


def inbound_lead_times(conn: Connection) -> dict[str, float]:
    """Longest recorded inbound lead time per destination region."""
    rows = conn.execute(
        select(supply_lead_time.c.to_region, func.max(supply_lead_time.c.days)).group_by(
            supply_lead_time.c.to_region
        )
    )
    return {r: float(d) for r, d in rows}


# ── monitored lists (重点监测清单 / 易短缺药品清单) ──────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Days of supply at or below which a product turns red / orange / yellow."""

    red: float
    orange: float
    yellow: float
    list_name: str | None = None


def publish_list(
    conn: Connection,
    *,
    code: str,
    name: str,
    valid_from: str | date,
    products: Iterable[str],
    red_days: float,
    orange_days: float,
    yellow_days: float,
) -> int:
    """Publish a new version of a monitored list; returns the version number."""
    if not code.strip():
        raise ValidationError("list code is required", place="code")
    if not 0 <= red_days <= orange_days <= yellow_days:
        raise ValidationError(
            "thresholds must satisfy 0 ≤ red ≤ orange ≤ yellow days", place="thresholds"
        )
    items = sorted({require_product(p, "products") for p in products})
    if not items:
        raise ValidationError("a monitored list needs at least one product", place="products")
    day = parse_day(valid_from, "valid_from")
    version = (
        conn.execute(
            select(func.max(supply_list.c.version)).where(supply_list.c.code == code)
        ).scalar()
        or 0
    ) + 1
    list_id = conn.execute(
        insert(supply_list)
        .values(
            code=code,
            version=version,
            name=name,
            valid_from=day.isoformat(),
            red_days=red_days,
            orange_days=orange_days,
            yellow_days=yellow_days,
        )
        .returning(supply_list.c.id)
    ).scalar_one()
    conn.execute(insert(supply_list_item), [{"list_id": list_id, "product": p} for p in items])
    return int(version)


def thresholds_by_product(conn: Connection, as_of: date) -> dict[str, Thresholds]:
    """Per product, the strictest thresholds of the lists in force on ``as_of`` (the newest
    version valid by then of each list)."""
    rows = conn.execute(
        select(supply_list).where(supply_list.c.valid_from <= as_of.isoformat())
    ).all()
    current: dict[str, Any] = {}
    for r in rows:
        if r.code not in current or r.version > current[r.code].version:
            current[r.code] = r
    out: dict[str, Thresholds] = {}
    if not current:
        return out
    by_id = {r.id: r for r in current.values()}
    for list_id, product in conn.execute(
        select(supply_list_item.c.list_id, supply_list_item.c.product).where(
            supply_list_item.c.list_id.in_(list(by_id))
        )
    ):
        r = by_id[list_id]
        t = Thresholds(r.red_days, r.orange_days, r.yellow_days, f"{r.name} v{r.version}")
        old = out.get(product)
        if old is None or t.yellow > old.yellow:
            out[product] = t
    return out


def monitored_lists(conn: Connection) -> list[dict[str, Any]]:
    """Every list version with its products and thresholds."""
    items: dict[int, list[str]] = {}
    for list_id, product in conn.execute(select(supply_list_item)):
        items.setdefault(list_id, []).append(product)
    return [
        {
            "code": r.code,
            "version": r.version,
            "name": r.name,
            "valid_from": r.valid_from,
            "thresholds": {"red": r.red_days, "orange": r.orange_days, "yellow": r.yellow_days},
            "products": sorted(items.get(r.id, [])),
        }
        for r in conn.execute(
            select(supply_list).order_by(supply_list.c.code, supply_list.c.version)
        )
    ]
