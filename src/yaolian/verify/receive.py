"""Receipts (收货 / 购进入库) from a receiving check: the scanned codes of an arrival recorded as
receiving events at one of the receiver's sites.

A pharmacy, hospital or distributor scans what arrived (扫码验收) and confirms. Each code must be

* in transit to the site's enterprise — its supplier reported the shipping (发货); a recalled
  or expired pack sent back to it (召回退货) is taken back too, but not a sold one (回流); or
* in stock at another enterprise that has not reported shipping it yet (发货未上报): the receipt
  is recorded all the same, naming that holder as the source, and the custody chain stays whole.

Anything else refuses the whole receipt, naming each code: unknown (查无此码), sold, recalled,
expired, destroyed, in transit to another enterprise, a case or pallet that holds nothing now,
or already in the receiver's stock. One ObjectEvent per sender — bizStep ``receiving``,
disposition ``in_progress``, the site as readPoint and bizLocation, sourceList and
destinationList naming both owning parties — captured all or none, like any document.

What is on its way (待收货) is listed by :func:`expected_arrivals`: each open shipment addressed
to the enterprise's party, the delivery a receiving check is compared with (应到 / 实到).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from yaolian.codes.identity import uri_for_key
from yaolian.epcis.model import parse_local_time, to_epoch_us
from yaolian.errors import NotFoundError, Problem, ValidationError
from yaolian.store.access import Viewer
from yaolian.store.ingest import capture_document
from yaolian.store.schema import enterprise, site
from yaolian.trace import rawsql
from yaolian.trace.builders import document, object_event
from yaolian.trace.directory import Directory, product_rows
from yaolian.trace.state import sale_day
from yaolian.verify.status import Verdict, verify_many

CLOCK_SKEW = timedelta(minutes=5)  # a scanner's clock a little ahead is not "the future"


@dataclass(frozen=True)
class Receiver:
    """The receiving site and the enterprise that owns it."""

    site: str
    enterprise_id: int
    party: str


@dataclass(frozen=True)
class Receipt:
    """What recording a receipt did."""

    site: str
    codes: int  # distinct codes received
    senders: list[str]  # who they came from, by name
    unreported: int  # codes whose shipping was never reported (发货未上报)
    events: int  # receiving events recorded: one per sender

    def as_dict(self) -> dict[str, Any]:
        """The API's answer and the audit entry's detail."""
        return {
            "site": self.site,
            "codes": self.codes,
            "senders": self.senders,
            "unreported_shipping": self.unreported,
            "events": self.events,
        }


def receiver_of(engine: Engine, location: str, viewer: Viewer) -> Receiver:
    """The registered site ``location`` and its owner; an enterprise key receives at its own
    sites only."""
    with engine.connect() as conn:
        row = conn.execute(
            select(site.c.enterprise_id, enterprise.c.party_id)
            .join(enterprise, enterprise.c.id == site.c.enterprise_id)
            .where(site.c.location_id == location)
        ).first()
    if row is None:
        raise NotFoundError(
            f"{location!r} is not a registered site (收货地点须为已登记的场所)", place="site"
        )
    if viewer.reporter is not None and viewer.reporter != row[0]:
        raise ValidationError(
            "a site of another enterprise: a key receives at its own enterprise's sites",
            place="site",
        )
    return Receiver(location, int(row[0]), row[1])


def _refusal(v: Verdict, receiver: Receiver) -> str | None:
    """Why this code cannot be received at ``receiver`` (Chinese first, as the clerk reads it),
    or None."""
    detail = v.detail or {}
    shipment = detail.get("shipment") or {}
    returned = shipment.get("kind") == "returning" and v.status in ("recalled", "expired")
    if shipment.get("to_enterprise_id") == receiver.enterprise_id and (
        v.status == "in_transit" or returned
    ):
        return None  # a delivery to it, or a recalled or expired pack sent back (召回退货)
    if v.status == "in_transit":
        return "在途，但发往其他企业 (in transit to another enterprise)"
    if v.status != "genuine":
        return f"{v.reason_zh} ({v.reason})"
    if v.contents == 0:
        return (
            "物流单元已拆空：请逐盒扫码 (a case or pallet that holds nothing now: scan its packs)"
        )
    holder = detail.get("custodian") or {}
    if holder.get("enterprise_id") == receiver.enterprise_id:
        return "已在本单位库存 (already in your stock)"
    return None


def _before_last_event(v: Verdict, when_us: int) -> str | None:
    """Why a receipt dated ``when_us`` would come before what is on record of the code (its
    shipping, say) — a back-dated receipt the replay would put first, or None."""
    last = (v.detail or {}).get("last_time_us")
    if last is None or when_us >= last:
        return None
    day = sale_day(last).isoformat()
    return f"收货时间早于该码最近一次记录（{day}）(a receipt cannot come before its last event)"


def _sender(v: Verdict, party_of: dict[int, str]) -> tuple[str | None, str | None, bool]:
    """(party URI, name, shipping reported) of whoever hands this code over: the shipment's
    sender, else its holder (the party on record, else its enterprise's — ``party_of``)."""
    detail = v.detail or {}
    shipment = detail.get("shipment")
    if shipment:
        return shipment.get("from_party"), shipment.get("from"), True
    holder = detail.get("custodian") or {}
    party = detail.get("custodian_party") or party_of.get(holder.get("enterprise_id", -1))
    return party, holder.get("name"), False


def receive(
    engine: Engine,
    codes: Sequence[str],
    location: str,
    *,
    viewer: Viewer | None = None,
    when: str | datetime | None = None,
    then: Callable[[Connection, Receipt], object] | None = None,
) -> Receipt:
    """Record the receipt of ``codes`` at ``location`` (see the module docstring), all or none.

    ``viewer``: the key recording it (an enterprise key: at its own sites); ``when``: the
    moment of receipt (default now; not in the future; text without an offset is 北京时间);
    ``then(conn, receipt)`` writes what goes with it (an audit entry) in its transaction."""
    viewer = viewer or Viewer.system()
    now = datetime.now(UTC)
    if isinstance(when, str):  # as a clerk or a WMS writes it; no offset = 北京时间
        try:
            when = parse_local_time(when)
        except ValueError as exc:
            raise ValidationError(str(exc), place="time") from None
    when = when or now
    if when.tzinfo is None:
        raise ValidationError("a time with its offset (e.g. +08:00)", place="time")
    if when > now + CLOCK_SKEW:
        raise ValidationError("a receipt cannot be dated in the future", place="time")
    receiver = receiver_of(engine, location, viewer)
    with engine.connect() as conn:
        verdicts = verify_many(conn, codes, Viewer.system())
        holders = {((v.detail or {}).get("custodian") or {}).get("enterprise_id") for v in verdicts}
        party_of = {
            int(r[0]): r[1]
            for r in conn.execute(
                select(enterprise.c.id, enterprise.c.party_id).where(
                    enterprise.c.id.in_(sorted(h for h in holders if h is not None))
                )
            )
        }
    problems: list[Problem] = []
    by_sender: dict[str | None, list[str]] = {}
    names: dict[str | None, str | None] = {}
    seen: set[str] = set()
    unreported = 0
    when_us = to_epoch_us(when.isoformat())
    for n, v in enumerate(verdicts):
        why = _refusal(v, receiver) or _before_last_event(v, when_us)
        if why is not None:
            problems.append(Problem(f"{v.code}: {why}", f"codes[{n}]"))
            continue
        assert v.key is not None  # a genuine or in-transit code has its key
        if v.key in seen:  # the same pack scanned twice (or as another form of its code)
            continue
        seen.add(v.key)
        party, name, reported = _sender(v, party_of)
        unreported += not reported
        by_sender.setdefault(party, []).append(uri_for_key(v.key, "any"))
        names[party] = name
    if problems:
        raise ValidationError(
            f"{len(problems)} of {len(codes)} code(s) cannot be received: nothing recorded",
            problems=problems,
            place="codes",
        )
    events = [
        object_event(
            uris,
            when,
            "receiving",
            "in_progress",
            site=receiver.site,
            read_point=receiver.site,
            source=party,
            destination=receiver.party,
        )
        for party, uris in by_sender.items()
    ]
    receipt = Receipt(
        site=receiver.site,
        codes=len(seen),
        senders=sorted({name or party or "unknown" for party, name in names.items()}),
        unreported=unreported,
        events=len(events),
    )
    result = capture_document(
        engine,
        document(events),
        enterprise_id=viewer.reporter,
        then=None if then is None else lambda conn, _: then(conn, receipt),
    )
    if not result.success:  # the capture's own rules (a place of another enterprise …)
        raise ValidationError(
            "receipt refused: nothing recorded", problems=result.errors, place="codes"
        )
    return receipt


_OPEN_CODES_SQL = (  # through the partial index of codes in transit (ix_code_state_open_ship)
    "SELECT code_id, open_ship_event_id, product, lot FROM code_state "
    "WHERE open_ship_event_id IS NOT NULL AND NOT has_children"
)
_OPEN_LEGS_SQL = (
    "SELECT code_id, ship_event_id, from_party, from_site, to_party, to_site, ship_us "
    "FROM custody WHERE code_id {ids} AND recv_us IS NULL"
)


def expected_arrivals(
    conn: Connection, enterprise_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Deliveries on their way (待收货): open shipments addressed to ``enterprise_id``'s party
    (every one when None), newest first — sender, day shipped, destination site, and the packs
    per product and lot still in transit on each (a container counts by what it holds)."""
    if enterprise_id is None:
        codes = rawsql.fetch(conn, _OPEN_CODES_SQL)
    else:
        party = conn.execute(
            select(enterprise.c.party_id).where(enterprise.c.id == enterprise_id)
        ).scalar()
        codes = rawsql.fetch(conn, _OPEN_CODES_SQL + " AND open_ship_to = ?", (party,))
    open_leg = {(code, event): (product, lot) for code, event, product, lot in codes}
    legs: dict[int, dict[str, Any]] = {}  # shipping event → its delivery
    packs: Counter[tuple[int, str | None, str | None]] = Counter()
    for code, event, *ends, shipped in rawsql.fetch_ids(
        conn, _OPEN_LEGS_SQL, {c[0] for c in codes}
    ):
        if (code, event) not in open_leg:
            continue  # an older leg of a code shipped on since
        legs.setdefault(event, {"ends": ends, "shipped": shipped})  # one time per shipping
        packs[(event, *open_leg[(code, event)])] += 1
    newest = sorted(legs, key=lambda e: (legs[e]["shipped"], e), reverse=True)[:limit]
    directory = Directory(conn)
    directory.load([uri for event in newest for uri in legs[event]["ends"]])
    names = product_rows(conn, {product for (_, product, _) in packs if product})
    out: dict[int, dict[str, Any]] = {}
    for event in newest:
        src, src_site, dst, dst_site = legs[event]["ends"]
        sender, receiver = directory.holder(src, src_site), directory.holder(dst, dst_site)
        place = directory.place(dst_site)
        out[event] = {
            "shipment": event,
            "from": sender.name if sender else src,
            "from_uscc": sender.uscc if sender else None,
            "to": receiver.name if receiver else dst,
            "to_site": dst_site,
            "to_site_name": place.name if place else None,
            "shipped": sale_day(legs[event]["shipped"]).isoformat(),
            "shipped_us": legs[event]["shipped"],
            "packs": 0,
            "lines": [],
        }
    by_line = sorted(packs.items(), key=lambda kv: (kv[0][1] or "", kv[0][2] or "", kv[0][0]))
    for (event, product, lot), n in by_line:
        if event in out:
            out[event]["packs"] += n
            name = names.get(product or "", {}).get("generic_name")
            out[event]["lines"].append(
                {"product": product, "generic_name": name, "lot": lot, "packs": n}
            )
    return list(out.values())
