"""The code-state machine: folds events, in event-time order, into per-code state and rows.

One machine serves both ways the projection is kept (see ``trace.projection``):

* **forward** — the current state of the codes an event touches is loaded and the new events
  are applied; when an event is not newer than a code's last event (out of event-time order) the
  machine raises :class:`OutOfOrder` and the caller recomputes instead;
* **recompute** — blank states and the full history of a closed set of codes, applied in
  event-time order.

Events reach a code in two ways: *own* (the code is listed in the event, with its role) and
*inherited* (the code sits inside a listed container at that time — a pallet shipped carries
its cases and packs). The outputs are plain row dicts for the projection tables plus alert
triggers (anomaly rules that need the state at the moment of the event).

Status words: commissioned, active, in_transit, dispensed, decommissioned, destroyed,
recalled, expired (追溯码状态).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from yaolian.epcis.extensions import LOT_KEY, as_text, ilmd_facts, sale_line
from yaolian.epcis.model import Event, location, parties

STATUSES = (
    "commissioned",
    "active",
    "in_transit",
    "dispensed",
    "decommissioned",
    "destroyed",
    "recalled",
    "expired",
)
TERMINAL = frozenset({"dispensed", "decommissioned", "destroyed"})
# statuses a later shipping or receipt of the code does not undo: a pack sold, destroyed,
# decommissioned or marked recalled that moves again (回流, a return) is still not sellable
# (other events still set the status: a recommissioning, a destruction of a recalled pack)
_STAYS = TERMINAL | {"recalled"}
SALE_STEPS = frozenset({"dispensing", "retail_selling"})
SALE_DISPOSITIONS = frozenset({"dispensed", "retail_sold", "partially_dispensed"})
# a hand-over starts with shipping (a return: disposition ``returned``, or a custom bizStep URI
# ending in ``returning``, since CBV 2.0 has no such step)
HANDOVER_STEPS = frozenset({"shipping", "returning"})

_DISPOSITION_STATUS = {
    "encoded": "commissioned",
    "active": "active",
    "in_progress": "active",
    "container_closed": "active",
    "container_open": "active",
    "sellable_accessible": "active",
    "sellable_not_accessible": "active",
    "available": "active",
    "reserved": "active",
    "in_transit": "in_transit",
    "returned": "in_transit",
    "dispensed": "dispensed",
    "partially_dispensed": "dispensed",
    "retail_sold": "dispensed",
    "destroyed": "destroyed",
    "disposed": "destroyed",
    "recalled": "recalled",
    "expired": "expired",
    "inactive": "decommissioned",
    "damaged": "decommissioned",
    "stolen": "decommissioned",
    "non_sellable_other": "decommissioned",
}
_STEP_STATUS = {
    "commissioning": "commissioned",
    "shipping": "in_transit",
    "returning": "in_transit",
    "receiving": "active",
    "dispensing": "dispensed",
    "retail_selling": "dispensed",
    "destroying": "destroyed",
    "decommissioning": "decommissioned",
    "killing": "decommissioned",
}
CST = timedelta(hours=8)  # China Standard Time, for calendar dates (expiry)


def word(value: str | None) -> str | None:
    """A CBV value as its bare word, whatever spelling it came in (URN, web URI, bare)."""
    if not value:
        return None
    for sep in ("BizStep-", "Disp-", ":", "/"):
        if sep in value:
            value = value.rsplit(sep, 1)[1]
    return value


def _celsius(value: float, uom: str | None) -> float:
    if uom == "FAH":
        return (value - 32.0) * 5.0 / 9.0
    if uom == "KEL":
        return value - 273.15
    return value


def _sensor_range(elements: list[dict[str, Any]]) -> tuple[float, float] | None:
    """Lowest and highest temperature (°C) over every temperature report of the event."""
    values: list[float] = []
    for element in elements:
        for report in element.get("sensorReport") or ():
            if not str(report.get("type", "")).endswith("Temperature"):
                continue
            uom = report.get("uom")
            for key in ("value", "minValue", "maxValue"):
                v = report.get(key)
                if isinstance(v, int | float):
                    values.append(_celsius(float(v), uom))
    return (min(values), max(values)) if values else None


@dataclass(slots=True)
class Facts:
    """What the state machine needs from one event (its codes by id, with their roles)."""

    eid: int
    t: int
    record_us: int
    kind: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    biz_location: str | None
    read_point: str | None
    src_owner: str | None
    dst_owner: str | None
    dst_site: str | None
    lot: str | None
    expiry: str | None
    produced: str | None
    sensor: tuple[float, float] | None
    units: float | None
    settlement: str | None
    codes: list[tuple[int, str]]
    parent_id: int | None
    has_children: bool
    error: bool

    @property
    def key(self) -> tuple[int, int]:
        """Event-time order (ties broken by the stored row id)."""
        return (self.t, self.eid)

    @property
    def place(self) -> str | None:
        """Where it happened: business location, else read point."""
        return self.biz_location or self.read_point


def facts_of(
    event: Event, eid: int, t: int, record_us: int, codes: Iterable[tuple[int, str]]
) -> Facts:
    """Extract :class:`Facts` from a stored event dict and its ``(code id, role)`` list."""
    src_owner = dst_owner = dst_site = None
    src_poss = dst_poss = None
    for kind, ptype, value in parties(event):
        ptype = word(ptype) or ""
        if kind == "source":
            if ptype == "owning_party":
                src_owner = value
            elif ptype == "possessing_party":
                src_poss = value
        elif ptype == "owning_party":
            dst_owner = value
        elif ptype == "possessing_party":
            dst_poss = value
        elif ptype == "location":
            dst_site = value
    ilmd = ilmd_facts(event)
    line = sale_line(event)
    code_list = list(dict.fromkeys(codes))
    parent_id = next((cid for cid, role in code_list if role == "parent"), None)
    sensor = _sensor_range(event["sensorElementList"]) if event.get("sensorElementList") else None
    return Facts(
        eid=eid,
        t=t,
        record_us=record_us,
        kind=event.get("type", ""),
        action=event.get("action"),
        biz_step=word(event.get("bizStep")),
        disposition=word(event.get("disposition")),
        biz_location=location(event, "bizLocation"),
        read_point=location(event, "readPoint"),
        src_owner=src_owner or src_poss,
        dst_owner=dst_owner or dst_poss,
        dst_site=dst_site,
        lot=ilmd.lot or as_text(event.get(LOT_KEY)),
        expiry=ilmd.expiry,
        produced=ilmd.produced,
        sensor=sensor,
        units=line.units if line else None,
        settlement=line.settlement if line else None,
        codes=code_list,
        parent_id=parent_id,
        has_children=bool(event.get("childEPCs") or event.get("childQuantityList")),
        error="errorDeclaration" in event,
    )


@dataclass(slots=True)
class CodeState:
    """One row of ``code_state`` while the machine works on it."""

    code_id: int
    status: str = "commissioned"
    product: str | None = None
    lot: str | None = None
    expiry: str | None = None
    production_date: str | None = None
    parent_id: int | None = None
    has_children: bool = False
    custodian: str | None = None
    site: str | None = None
    commission_event_id: int | None = None
    commissioned_us: int | None = None
    last_event_id: int = 0
    last_us: int = -(2**62)
    open_ship_event_id: int | None = None
    open_ship_to: str | None = None
    sales: int = 0
    whole_sales: int = 0
    split_units: float = 0.0
    seen_site: str | None = None
    seen_us: int | None = None
    seen_event_id: int | None = None

    def row(self) -> dict[str, Any]:
        """As a ``code_state`` row."""
        return {name: getattr(self, name) for name in STATE_COLUMNS}


STATE_COLUMNS = tuple(CodeState.__dataclass_fields__)
_SIGNED = STATE_COLUMNS[1:]  # every field but the code id
_SIGNATURE = operator.attrgetter(*_SIGNED)


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What the rules need about a location: its owner and coordinates."""

    enterprise_id: int | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """What the rules need about a product: units per pack (拆零) and storage range (°C)."""

    units_per_pack: int
    temp_min: float | None
    temp_max: float | None


class Context(Protocol):
    """Lookups the machine needs (master data, recalls, states not loaded yet)."""

    clone_speed_kmh: float

    def state(self, code_id: int) -> CodeState | None:
        """The stored state of a code outside the loaded set (forward mode), else None."""

    def new_state(self, code_id: int) -> CodeState:
        """A blank state for a code seen for the first time (product from the code itself)."""

    def site(self, location_id: str | None) -> SiteInfo | None:
        """Owner and coordinates of a location, if registered."""

    def party_enterprise(self, party: str | None) -> int | None:
        """Enterprise id of a party URI (or of a site URI used as party), if registered."""

    def product(self, product_code: str | None) -> ProductInfo | None:
        """Product facts for a product code, if registered."""

    def recall_of(self, code_id: int, product: str | None, lot: str | None, t: int) -> int | None:
        """Id of a recall created at or before ``t`` covering the code or its batch."""


class OutOfOrder(Exception):
    """An event older than a code's last applied event: recompute from history instead."""


@dataclass(slots=True)
class Trigger:
    """An anomaly seen by the machine: rule, code, the event, and evidence."""

    rule: str
    key: str
    severity: str
    code_id: int
    event_id: int
    site: str | None
    time_us: int
    record_us: int
    evidence: dict[str, Any]


@dataclass
class Outputs:
    """Rows produced by a machine run, and updates to rows stored before it."""

    aggregation: list[dict[str, Any]] = field(default_factory=list)
    aggregation_closes: list[dict[str, Any]] = field(default_factory=list)
    custody: list[dict[str, Any]] = field(default_factory=list)
    custody_receipts: list[dict[str, Any]] = field(default_factory=list)
    dispense: list[dict[str, Any]] = field(default_factory=list)
    sensor: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)


def _is_sale(f: Facts) -> bool:
    """Whether ``f`` sells or dispenses what it lists (销售/使用出库)."""
    return f.biz_step in SALE_STEPS or (f.biz_step is None and f.disposition in SALE_DISPOSITIONS)


def sale_day(t_us: int) -> date:
    """Calendar day of an event time in China Standard Time."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=t_us) + CST).date()


class Machine:
    """Applies events to code states; see the module docstring.

    ``states`` holds the codes the run may change; ``children`` the open aggregation (parent →
    children) among them. ``scope`` (recompute mode) limits the run to a closed set of codes;
    ``strict`` (forward mode) raises :class:`OutOfOrder` on an event not newer than a code's last.
    ``rules`` are the anomaly rules consulted on sales, moves and sensor readings. ``grouped``
    (the default) applies an event once per group of codes in the same state (see
    :meth:`_apply_group`); ``False`` applies it code by code (the reference the tests compare to).
    """

    def __init__(
        self,
        states: dict[int, CodeState],
        children: dict[int, set[int]],
        ctx: Context,
        *,
        strict: bool,
        scope: set[int] | None = None,
        rules: Rules | None = None,
        grouped: bool = True,
    ) -> None:
        self.states = states
        self.rules: Rules = rules or NoRules()
        self.children = children
        self.ctx = ctx
        self.strict = strict
        self.scope = scope
        self.grouped = grouped
        self.out = Outputs()
        self.dirty: set[int] = set()
        self._open_agg: dict[int, dict[str, Any]] = {}  # child → its open row made in this run
        self._open_custody: dict[int, dict[str, Any]] = {}  # code → its open row made here

    # ── state access ──
    def _state(self, code_id: int) -> CodeState | None:
        s = self.states.get(code_id)
        if s is None:
            if self.scope is not None:
                if code_id not in self.scope:
                    return None
                s = self.ctx.new_state(code_id)
            else:
                s = self.ctx.state(code_id) or self.ctx.new_state(code_id)
            self.states[code_id] = s
        return s

    def _touch(self, s: CodeState, f: Facts) -> None:
        if (s.last_us, s.last_event_id) >= f.key:
            if self.strict:
                raise OutOfOrder(f"event {f.eid} is older than the last event of code {s.code_id}")
            return
        s.last_us, s.last_event_id = f.key
        self.dirty.add(s.code_id)

    # ── the fold ──
    def apply(self, f: Facts) -> None:
        """Fold one event into the states of its codes and of what is inside them."""
        if f.error:
            if self.strict:
                raise OutOfOrder(f"event {f.eid} declares an error: recompute")
            return
        own: dict[int, str] = {}
        for cid, role in f.codes:
            own.setdefault(cid, role)
        done: set[int] = set()
        if self.grouped and f.kind == "ObjectEvent" and not _is_sale(f):  # state-only effects
            groups: dict[tuple[Any, ...], list[CodeState]] = {}
            for cid, role in own.items():
                s = self._state(cid)
                if s is not None:
                    done.add(cid)
                    key = (role, _SIGNATURE(s), cid in self._open_custody)
                    groups.setdefault(key, []).append(s)
            for (role, *_), group in groups.items():
                self._apply_group(group, f, role, None)
        else:
            for cid, role in own.items():
                s = self._state(cid)
                if s is not None:
                    done.add(cid)
                    self._own(s, f, role)
        if f.kind == "AggregationEvent":
            if f.action == "DELETE" and not f.has_children and f.parent_id is not None:
                for child in sorted(self.children.get(f.parent_id, ())):
                    cs = self._state(child)
                    if cs is not None and cs.parent_id == f.parent_id:
                        self._touch(cs, f)
                        self._close(cs, f)
            return
        children = self.children
        for cid in own:
            if cid in done and children.get(cid):
                self._inherit_below(cid, f, done)

    def _inherit_below(self, top: int, f: Facts, done: set[int]) -> None:
        """Apply ``f`` to everything inside ``top`` (a shipped pallet carries its cases and packs).

        The codes inside are grouped by their state (all but the code id): one code of each group
        goes through the machine and the others get the same changes and copies of its rows
        (:meth:`_apply_group`) — a container's contents mostly share one state.
        """
        groups: dict[tuple[Any, ...], list[CodeState]] = {}
        open_custody = self._open_custody
        stack = list(self.children.get(top, ()))
        while stack:
            child = stack.pop()
            if child in done:
                continue
            done.add(child)
            s = self.states.get(child) or self._state(child)
            if s is None:
                continue
            key = (_SIGNATURE(s), child in open_custody) if self.grouped else (child,)
            groups.setdefault(key, []).append(s)
            stack.extend(self.children.get(child, ()))
        for group in groups.values():
            self._apply_group(group, f, None, top)

    def _apply_one(self, s: CodeState, f: Facts, role: str | None, via: int | None) -> None:
        """``f`` for one code: its own event (``role``) or inherited through container ``via``."""
        if role is not None:
            self._own(s, f, role)
            return
        self._touch(s, f)
        if s.status not in TERMINAL:
            self._general(s, f, None, via)

    def _apply_group(
        self, group: list[CodeState], f: Facts, role: str | None, via: int | None
    ) -> None:
        """Apply an event to codes of one state and role: the first through the machine, the
        others by copying its changes; codes an anomaly rule fired for each go their own way.

        Only for events whose effect on a code depends on nothing but its state (not an
        aggregation, whose rows and containers are per code, nor a sale, whose rules look up
        recalls by code)."""
        first = group[0]
        if len(group) == 1:
            self._apply_one(first, f, role, via)
            return
        out = self.out
        marks = (len(out.custody), len(out.custody_receipts), len(out.sensor), len(out.triggers))
        before = _SIGNATURE(first)
        was_open = self._open_custody.get(first.code_id)
        self._apply_one(first, f, role, via)
        if len(out.triggers) > marks[3]:  # rule evidence is per code: no copying
            for s in group[1:]:
                self._apply_one(s, f, role, via)
            return
        rest = group[1:]
        for name, old, value in zip(_SIGNED, before, _SIGNATURE(first), strict=True):
            if old != value:
                for s in rest:
                    setattr(s, name, value)
        ids = [s.code_id for s in rest]
        if first.code_id in self.dirty:
            self.dirty.update(ids)
        now_open = self._open_custody.get(first.code_id)
        if was_open is not None and now_open is None:  # a receipt closed the open hand-over
            receipt = {k: was_open[k] for k in ("recv_event_id", "recv_us", "to_party", "to_site")}
            for cid in ids:
                self._open_custody.pop(cid).update(receipt)
        for row in out.custody[marks[0] :]:  # a copy: the loop appends
            copies = [{**row, "code_id": cid} for cid in ids]
            out.custody.extend(copies)
            if row is now_open:
                self._open_custody.update(zip(ids, copies, strict=True))
        for rows, key, mark in (
            (out.custody_receipts, "b_code", marks[1]),
            (out.sensor, "code_id", marks[2]),
        ):
            for row in rows[mark:]:
                rows.extend([{**row, key: cid} for cid in ids])

    def _own(self, s: CodeState, f: Facts, role: str) -> None:
        self._touch(s, f)
        if f.kind == "AggregationEvent":
            if role == "child" and f.parent_id is not None:
                if f.action in ("ADD", "OBSERVE"):
                    if s.parent_id != f.parent_id:
                        self._close(s, f)
                        self._open(s, f.parent_id, f)
                elif f.action == "DELETE" and s.parent_id == f.parent_id:
                    self._close(s, f)
            elif role == "parent" and f.action in ("ADD", "OBSERVE") and f.has_children:
                s.has_children = True
        self._general(s, f, role, None)

    def _open(self, s: CodeState, parent_id: int, f: Facts) -> None:
        s.parent_id = parent_id
        self.children.setdefault(parent_id, set()).add(s.code_id)
        ps = self._state(parent_id)
        if ps is not None:
            ps.has_children = True
            self.dirty.add(parent_id)
        row = {
            "parent_id": parent_id,
            "child_id": s.code_id,
            "from_us": f.t,
            "from_event_id": f.eid,
            "to_us": None,
            "to_event_id": None,
        }
        self.out.aggregation.append(row)
        self._open_agg[s.code_id] = row

    def _close(self, s: CodeState, f: Facts) -> None:
        parent = s.parent_id
        if parent is None:
            return
        s.parent_id = None
        kids = self.children.get(parent)
        if kids is not None:
            kids.discard(s.code_id)
        ps = self._state(parent)
        if ps is not None and ps.last_event_id != f.eid:
            self._touch(ps, f)  # the container's contents changed at this moment
        row = self._open_agg.pop(s.code_id, None)
        if row is not None:
            row["to_us"], row["to_event_id"] = f.t, f.eid
        else:
            self.out.aggregation_closes.append(
                {"b_child": s.code_id, "b_parent": parent, "to_us": f.t, "to_event_id": f.eid}
            )

    def _general(self, s: CodeState, f: Facts, role: str | None, via: int | None) -> None:
        """Status, place, custody, sale and sensor facts (own events and inherited ones)."""
        own = role is not None
        step = f.biz_step
        if own and role in ("epc", "output") and _is_sale(f):
            self._sale(s, f)
        if own and (
            step == "commissioning"
            or role == "output"
            or (f.kind == "ObjectEvent" and f.action == "ADD" and s.commission_event_id is None)
        ):
            s.commission_event_id, s.commissioned_us = f.eid, f.t
            if f.src_owner or f.dst_owner:
                s.custodian = f.dst_owner or f.src_owner
        if own and role in ("epc", "output", "parent") and (f.lot or f.expiry or f.produced):
            s.lot = f.lot or s.lot
            s.expiry = f.expiry or s.expiry
            s.production_date = f.produced or s.production_date
        if step in HANDOVER_STEPS:
            self._ship(s, f, via)
        elif step == "receiving":
            self._receive(s, f, via)
        if f.sensor is not None:
            self.out.sensor.append(
                {
                    "code_id": s.code_id,
                    "event_id": f.eid,
                    "time_us": f.t,
                    "min_c": f.sensor[0],
                    "max_c": f.sensor[1],
                }
            )
            self._cold_chain(s, f, via)
        place = f.place
        if place:
            self._seen(s, f, place)
        if f.biz_location:
            s.site = f.biz_location
        status = _DISPOSITION_STATUS.get(f.disposition or "") or _STEP_STATUS.get(step or "")
        if status == "in_transit" and step == "receiving":
            status = "active"  # a receipt ends the transit, also one that keeps its disposition
            # ``returned`` (退货入库: the return is back in stock at the receiver)
        if own and f.kind == "ObjectEvent" and f.action == "DELETE" and status not in TERMINAL:
            status = "decommissioned"
        if own and role == "input" and f.kind == "TransformationEvent":
            status = "decommissioned"  # consumed into the outputs
        if s.status in _STAYS and (step in HANDOVER_STEPS or step == "receiving"):
            status = None  # moving it again does not make it sellable (回流 of a sold pack …)
        if status is not None:
            s.status = status

    # ── custody (hand-overs) ──
    def _ship(self, s: CodeState, f: Facts, via: int | None) -> None:
        row = {
            "code_id": s.code_id,
            "via_id": via,
            "from_party": f.src_owner or s.custodian,
            "to_party": f.dst_owner,
            "from_site": s.site,
            "to_site": f.dst_site,
            "ship_event_id": f.eid,
            "ship_us": f.t,
            "recv_event_id": None,
            "recv_us": None,
            "kind": "returning"
            if f.biz_step == "returning" or f.disposition == "returned"
            else "shipping",
            "product": s.product,
            "lot": s.lot,
        }
        self.out.custody.append(row)
        self._open_custody[s.code_id] = row
        s.open_ship_event_id, s.open_ship_to = f.eid, f.dst_owner

    def _receive(self, s: CodeState, f: Facts, via: int | None) -> None:
        row = self._open_custody.pop(s.code_id, None)
        if row is not None:
            row["recv_event_id"], row["recv_us"] = f.eid, f.t
            row["to_party"] = f.dst_owner or row["to_party"]
            row["to_site"] = f.biz_location or row["to_site"]
            s.custodian = row["to_party"]
        elif s.open_ship_event_id is not None:
            self.out.custody_receipts.append(
                {
                    "b_code": s.code_id,
                    "b_ship": s.open_ship_event_id,
                    "recv_event_id": f.eid,
                    "recv_us": f.t,
                    "to_party": f.dst_owner,
                    "to_site": f.biz_location,
                }
            )
            s.custodian = f.dst_owner or s.open_ship_to  # None → the site's owner when read
        else:  # a receipt with no shipping on record
            self.out.custody.append(
                {
                    "code_id": s.code_id,
                    "via_id": via,
                    "from_party": f.src_owner,
                    "to_party": f.dst_owner,
                    "from_site": None,
                    "to_site": f.biz_location,
                    "ship_event_id": None,
                    "ship_us": None,
                    "recv_event_id": f.eid,
                    "recv_us": f.t,
                    "kind": "shipping",
                    "product": s.product,
                    "lot": s.lot,
                }
            )
            s.custodian = f.dst_owner
        s.open_ship_event_id = s.open_ship_to = None

    # ── sales (销售/使用出库) ──
    def _sale(self, s: CodeState, f: Facts) -> None:
        self.out.dispense.append(
            {
                "code_id": s.code_id,
                "event_id": f.eid,
                "time_us": f.t,
                "site": f.place,
                "units": f.units,
                "settlement": f.settlement,
                "prior_status": s.status,
                "prior_site": s.site,
                "prior_custodian": s.custodian,
                "product": s.product,
                "lot": s.lot,
            }
        )
        self.out.triggers.extend(self.rules.on_sale(s, f, self.ctx))
        s.sales += 1
        if f.units is None:
            s.whole_sales += 1
        else:
            s.split_units += f.units

    def _seen(self, s: CodeState, f: Facts, place: str) -> None:
        if s.seen_site is not None and s.seen_site != place:
            self.out.triggers.extend(self.rules.on_move(s, f, place, self.ctx))
        s.seen_site, s.seen_us, s.seen_event_id = place, f.t, f.eid

    def _cold_chain(self, s: CodeState, f: Facts, via: int | None) -> None:
        self.out.triggers.extend(self.rules.on_sensor(s, f, via, self.ctx))


class Rules(Protocol):
    """Anomaly rules the machine consults at the moment of an event (``verify.anomalies``).

    Each sees the code's state *before* the event is applied and returns its triggers.
    """

    def on_sale(self, s: CodeState, f: Facts, ctx: Context) -> list[Trigger]:
        """A dispensing / retail sale of the code."""

    def on_move(self, s: CodeState, f: Facts, place: str, ctx: Context) -> list[Trigger]:
        """The code is seen at ``place``, another place than where it was last seen."""

    def on_sensor(self, s: CodeState, f: Facts, via: int | None, ctx: Context) -> list[Trigger]:
        """Sensor readings for the code (``via``: the container that carried the sensor)."""


class NoRules:
    """No anomaly rules (projection only)."""

    def on_sale(self, s: CodeState, f: Facts, ctx: Context) -> list[Trigger]:
        """Nothing."""
        return []

    def on_move(self, s: CodeState, f: Facts, place: str, ctx: Context) -> list[Trigger]:
        """Nothing."""
        return []

    def on_sensor(self, s: CodeState, f: Facts, via: int | None, ctx: Context) -> list[Trigger]:
        """Nothing."""
        return []
