"""医药储备: reserve plans per product, level (central / provincial) and holding site; status
against plan from the ledger; dispatch orders (储备调度) captured as EPCIS shipping events with a
dispatch business transaction, so each dispatch is in the event log, the ledger and trace."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from yaolian.codes.identity import canonical_key, uri_for_key
from yaolian.epcis.jsonld import EPCIS_CONTEXT
from yaolian.epcis.model import Document
from yaolian.errors import CodeError, NotFoundError, ValidationError
from yaolian.store.ingest import CaptureResult, capture_document
from yaolian.store.schema import event as event_table
from yaolian.store.schema import reserve_dispatch, reserve_plan
from yaolian.store.tx import read_tx
from yaolian.supply.ledger import require_known_product, require_site, stock
from yaolian.trace.builders import object_event

RESERVE_LEVELS = ("central", "provincial")
DISPATCH_TX_TYPE = "urn:yaolian:btt:reserve_dispatch"


@dataclass(frozen=True, slots=True)
class ReserveStatus:
    """A plan with the stock its holding site has now."""

    id: int
    product: str
    level: str
    site: str
    target: float
    on_hand: float

    @property
    def fill(self) -> float:
        """On hand as a share of target."""
        return self.on_hand / self.target if self.target else 1.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "id": self.id,
            "product": self.product,
            "level": self.level,
            "site": self.site,
            "target": self.target,
            "on_hand": self.on_hand,
            "fill": round(self.fill, 3),
            "status": "met" if self.on_hand >= self.target else "short",
        }


def _now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def create_plan(conn: Connection, *, product: str, level: str, target: float, site_id: str) -> int:
    """A reserve plan (储备计划); returns its id."""
    if level not in RESERVE_LEVELS:
        raise ValidationError(f"level must be one of {', '.join(RESERVE_LEVELS)}", place="level")
    if target <= 0:
        raise ValidationError("target quantity must be positive", place="target")
    product, site_id = require_known_product(conn, product), require_site(site_id)
    exists = conn.execute(
        select(reserve_plan.c.id).where(
            reserve_plan.c.product == product,
            reserve_plan.c.level == level,
            reserve_plan.c.site == site_id,
        )
    ).first()
    if exists:
        raise ValidationError(
            f"a {level} plan for {product} at {site_id} exists (id {exists[0]})", place="product"
        )
    return int(
        conn.execute(
            insert(reserve_plan)
            .values(
                product=product,
                level=level,
                target_packs=float(target),
                site=site_id,
                created_us=_now_us(),
            )
            .returning(reserve_plan.c.id)
        ).scalar_one()
    )


def plan_site(conn: Connection, plan_id: int) -> str:
    """The holding site of a plan (NotFoundError when there is no such plan)."""
    found = conn.execute(select(reserve_plan.c.site).where(reserve_plan.c.id == plan_id)).scalar()
    if found is None:
        raise NotFoundError(f"no reserve plan {plan_id}", place="plan_id")
    return str(found)


def reserve_status(conn: Connection, level: str | None = None) -> list[ReserveStatus]:
    """Every plan with the holding site's stock on hand now."""
    q = select(reserve_plan).order_by(reserve_plan.c.id)
    if level:
        q = q.where(reserve_plan.c.level == level)
    out = []
    for r in conn.execute(q).all():
        lines = stock(conn, product=r.product, site_id=r.site)
        on_hand = sum(line.on_hand for line in lines)
        out.append(ReserveStatus(r.id, r.product, r.level, r.site, r.target_packs, on_hand))
    return out


def _product_class_uri(product: str) -> str:
    try:
        return uri_for_key(canonical_key(f"urn:nmpa:product:{product}"))
    except CodeError as exc:
        raise ValidationError(f"product code {product!r}: {exc}", place="product") from exc


def dispatch(
    engine: Engine,
    plan_id: int,
    *,
    to_site: str,
    packs: float,
    when: datetime | None = None,
    then: Callable[[Connection, dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Dispatch reserve stock: capture a shipping event from the holding site to ``to_site``
    (bizTransaction = the dispatch order number) and record the order, in one transaction;
    ``then(conn, order)`` writes what goes with it there (the API's audit entry)."""
    if packs <= 0:
        raise ValidationError("dispatched quantity must be positive", place="packs")
    to_site = require_site(to_site, "to_site")
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValidationError("dispatch time needs a time-zone offset", place="when")
    with read_tx(engine) as conn:
        plan = conn.execute(select(reserve_plan).where(reserve_plan.c.id == plan_id)).first()
        if plan is None:
            raise NotFoundError(f"no reserve plan {plan_id}", place="plan_id")
        on_hand = sum(line.on_hand for line in stock(conn, product=plan.product, site_id=plan.site))
    if packs > on_hand:
        raise ValidationError(
            f"only {on_hand:g} packs of {plan.product} on hand at {plan.site}", place="packs"
        )
    order_no = f"urn:yaolian:dispatch:{when.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    event = object_event(
        [],
        when,
        "shipping",
        "in_transit",
        site=plan.site,
        destination_site=to_site,
        biz_transactions=[(DISPATCH_TX_TYPE, order_no)],
        extra={
            "quantityList": [
                {"epcClass": _product_class_uri(plan.product), "quantity": float(packs)}
            ]
        },
    )
    del event["epcList"]
    order = {
        "order_no": order_no,
        "plan_id": plan_id,
        "product": plan.product,
        "from_site": plan.site,
        "to_site": to_site,
        "packs": float(packs),
        "time": when.isoformat(),
    }

    def record_order(conn: Connection, result: CaptureResult) -> None:
        (event_id,) = result.event_ids
        event_hash = conn.execute(
            select(event_table.c.hash).where(event_table.c.id == event_id)
        ).scalar_one()
        conn.execute(
            insert(reserve_dispatch).values(
                plan_id=plan_id,
                to_site=to_site,
                packs=float(packs),
                order_no=order_no,
                event_hash=str(event_hash),
                dispatched_us=int(when.timestamp() * 1_000_000),
            )
        )
        if then is not None:
            then(conn, order)

    document = Document([event], context=[EPCIS_CONTEXT])
    result = capture_document(engine, document, then=record_order)
    if not result.success:
        raise ValidationError(f"dispatch event rejected: {result.to_dict()}", place="dispatch")
    return order


def dispatches(conn: Connection, plan_id: int | None = None) -> list[dict[str, Any]]:
    """Dispatch orders, newest first."""
    q = select(reserve_dispatch).order_by(reserve_dispatch.c.dispatched_us.desc())
    if plan_id is not None:
        q = q.where(reserve_dispatch.c.plan_id == plan_id)
    return [dict(r._mapping) for r in conn.execute(q)]
