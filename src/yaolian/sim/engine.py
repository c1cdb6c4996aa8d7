"""The day-by-day supply-chain simulation: production, serialisation, aggregation, replenishment,
shipping and receiving, dispensing (NHSA sale lines, 拆零), returns, expiry and destruction, with
injected incidents recorded as ground truth.

Volume lives in numpy: demand for every site × product is drawn per day in one go and stock is
held as pack-index ranges (:mod:`yaolian.sim.stock`); Python touches each emitted event once.
:meth:`Simulation.run` yields each day's events in time order of the day's phases (production,
receiving, dispensing, shipping, returns), so a consumer can stream them.
"""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.epc import lgtin_uri, sscc_uri
from yaolian.codes.nmpa import nmpa_lot_uri
from yaolian.epcis.gcpause import gc_paused
from yaolian.epcis.model import CHINA_TIME, Event
from yaolian.sim.catalog import HERBS
from yaolian.sim.events import (
    HMS,
    TZ,
    Clock,
    CodeFormat,
    aggregation_event,
    biz_tx,
    object_event,
    parties,
    sale_event,
    temperature_report,
)
from yaolian.sim.stock import Batch, Fifo, ProductPacks, Span, pack_indexes
from yaolian.sim.truth import GroundTruth, IncidentPlan, ShortageRule, plan_incidents
from yaolian.sim.world import (
    FACTORY,
    PROVINCIAL_DC,
    REGIONAL_DC,
    RETAIL,
    Product,
    World,
    haversine_km,
    season_factor,
)
from yaolian.trace.builders import transformation_event
from yaolian.verify.dispense import SaleLine

PALLET_CASES = 24
QC_DAYS = 2  # production → release
# shelf life a tier keeps in stock, days: a pharmacy returns packs within 30 days of expiry, so
# its distributor keeps none that would reach it with less (transit and a week on the shelf)
MIN_SHELF_DAYS = {RETAIL: 30, REGIONAL_DC: 40, PROVINCIAL_DC: 50, FACTORY: 60}
Z_SERVICE = 1.65


@dataclass
class Shipment:
    """Goods in transit from one site to another."""

    arrive: int
    src: int
    dst: int
    product: int
    spans: list[Span]
    epcs: list[str]  # top-level identifiers shipped
    pallets: list[tuple[str, list[str]]]  # (SSCC URI, case URIs) to unpack on receipt
    cases: list[tuple[str, Span]]  # intact cases shipped: (case URI, pack range)
    po: dict[str, str] | None
    desadv: dict[str, str]
    ship_time: str
    kind: str = "sale"  # sale, return, recall
    excursion: bool = False


@dataclass
class Stats:
    """Counts of what the simulation produced."""

    events: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    packs: int = 0
    sale_lines: int = 0
    split_lines: int = 0


class Simulation:
    """One deterministic run over a :class:`World`; iterate :meth:`run` for events."""

    def __init__(self, world: World, shortage_rule: ShortageRule | None = None) -> None:
        self.w = world
        size = world.size
        self.rng = np.random.default_rng([world.seed, 2])
        self.first_day = -size.warmup_days
        self.clock = Clock(size.start, self.first_day - 40, size.days + 30)  # TCM lots precede
        n_sites, n_prod = len(world.sites), len(world.products)
        self.packs = [ProductPacks() for _ in world.products]
        self.fmt = [CodeFormat(p.product_code, p.gtin) for p in world.products]
        self.case_fmt = [
            CodeFormat(p.case_code, _case_gtin(p.gtin) if p.gtin else None) for p in world.products
        ]
        self.fifo = [[Fifo() for _ in world.products] for _ in world.sites]
        self.stock = np.zeros((n_sites, n_prod), dtype=np.int64)
        self.pipeline = np.zeros((n_sites, n_prod), dtype=np.int64)
        self.wip = np.zeros(n_prod, dtype=np.int64)
        self.transit: dict[int, list[Shipment]] = defaultdict(list)
        self.releases: dict[int, list[tuple[int, Batch]]] = defaultdict(list)
        # per site and product: the pack opened for 拆零 and its units left
        self.open_split = [[(-1, 0)] * n_prod for _ in range(n_sites)]
        self.tier = np.array([s.tier for s in world.sites])
        self.parent = np.array([s.parent for s in world.sites])
        self.retail = np.array(world.retail_sites(), dtype=np.int64)
        self.is_hospital = np.array([s.kind == "hospital" for s in world.sites])
        self.units = np.array([p.spec.units_per_pack for p in world.products])
        self.units_list: list[int] = self.units.tolist()
        self.case_size = np.array([p.spec.case_size for p in world.products])
        self.split_share = np.array([p.spec.split_share for p in world.products])
        self.forecast = world.base_demand * np.array(
            [season_factor(p.spec.season, self.clock.date(0)) for p in world.products]
        )
        provinces = sorted({s.province for s in world.sites if s.tier == RETAIL})
        self.provinces = provinces
        self.site_province = np.array(
            [provinces.index(s.province) if s.province in provinces else -1 for s in world.sites]
        )
        self.demand_lines = np.zeros((size.days, len(provinces), n_prod), dtype=np.int64)
        self.unmet_lines = np.zeros((size.days, len(provinces), n_prod), dtype=np.int64)
        # per day: the province's dispensing sites of a product stocked out (an empty shelf when
        # the doors open, or a line turned away), against the sites that dispense it
        self.sites_out = np.zeros((size.days, len(provinces), n_prod), dtype=np.int64)
        self.retail_serves = world.base_demand[self.retail] > 0
        self.sites_dispensing = np.zeros((len(provinces), n_prod), dtype=np.int64)
        np.add.at(
            self.sites_dispensing,
            self.site_province[self.retail],
            self.retail_serves.astype(np.int64),
        )
        # a factory starts at most one batch a week, of at most two peak weeks of demand
        peak = np.array(
            [
                max(season_factor(p.spec.season, self.clock.date(d)) for d in range(0, 365, 7))
                for p in world.products
            ]
        )
        self.capacity = np.maximum(
            4 * self.case_size, world.base_demand.sum(axis=0) * peak * 7 * 2.0
        )
        self.last_batch = np.full(n_prod, -(10**6))
        self.capacity_factor = np.ones(n_prod)
        self.discontinued = np.zeros(n_prod, dtype=bool)
        self.spike = np.ones((len(provinces), n_prod))
        self._counters: dict[str, int] = defaultdict(int)
        self.dispensed_by_batch: dict[tuple[int, int], int] = defaultdict(int)
        self.stats = Stats()
        self.plan: IncidentPlan = plan_incidents(world, self.rng, provinces)
        self.truth = GroundTruth(world, self.clock, self.plan, shortage_rule)
        self._today_whole: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        self._recalled: tuple[int, int] | None = None  # (product, batch index)
        self._noncompliant: set[int] = set()
        self._herb_lot_seq = 0
        self._day_events: list[Event] = []
        self.day = self.first_day
        self._protos: dict[int, tuple[Event, Event]] = {}
        self._init_factories()

    # ── helpers ───────────────────────────────────────────────────────────────────────────
    def _next(self, key: str) -> int:
        self._counters[key] += 1
        return self._counters[key]

    def _when(self, day: int, second: int) -> datetime:
        return datetime.fromisoformat(self.clock.at(day, second))

    def _emit(self, ev: Event) -> None:
        self._day_events.append(ev)

    def _site_loc(self, site: int) -> str:
        return self.w.sites[site].location_id

    def _party(self, site: int) -> str:
        return self.w.enterprises[self.w.sites[site].enterprise].party_id

    def _uscc(self, site: int) -> str:
        return self.w.enterprises[self.w.sites[site].enterprise].uscc

    def pack_uri(self, product: int, pack: int) -> str:
        """EPC URI of a pack by product and pack index."""
        b = self.packs[product].batch_of(pack)
        return self.fmt[product].uri(int(b.serials[pack - b.start]))

    def pack_raw(self, product: int, pack: int) -> str:
        """Printed code of a pack by product and pack index."""
        b = self.packs[product].batch_of(pack)
        return self.fmt[product].raw(int(b.serials[pack - b.start]))

    def _uris(self, product: int, spans: list[Span]) -> list[str]:
        fmt, packs = self.fmt[product], self.packs[product]
        out: list[str] = []
        prefix = fmt.uri_prefix
        for s, e in spans:
            b = packs.batch_of(s)
            out.extend([f"{prefix}{v:013d}" for v in b.serial_list[s - b.start : e - b.start]])
        return out

    def _case_uri(self, product: int, batch: Batch, case: int) -> str:
        return self.case_fmt[product].uri(int(batch.case_serials[case]))

    # ── production ────────────────────────────────────────────────────────────────────────
    def _init_factories(self) -> None:
        """Opening stock: one older batch per product at its factory (some expire in the run)."""
        for p in self.w.products:
            cover = self.w.base_demand[:, p.index].sum() * 45
            n = max(int(cover), 4 * p.spec.case_size)
            age = int(self.rng.uniform(0.55, 0.9) * p.spec.shelf_life_days)
            self._produce(p, self.first_day, n, produced_days_ago=age, release_now=True)

    def _produce(
        self, p: Product, day: int, n: int, *, produced_days_ago: int = 0, release_now: bool = False
    ) -> None:
        cs = p.spec.case_size
        n = max(cs, -(-n // cs) * cs)
        packs = self.packs[p.index]
        produced = self.clock.date(day - produced_days_ago)
        seq = self._next(f"lot{p.index}")
        lot = f"{produced:%y%m%d}{seq % 100:02d}"
        batch = Batch(
            len(packs.batches),
            lot,
            packs.next_pack,
            n,
            cs,
            packs.next_case,
            packs.fresh_serials(self.rng, n),
            self.rng.integers(10**12, 10**13, size=n // cs, dtype=np.int64),
            produced,
            produced + timedelta(days=p.spec.shelf_life_days),
            day,
        )
        packs.add(batch)
        self.stats.packs += n
        fac = p.factory
        loc = self._site_loc(fac)
        base = 6 * 3600 + int(self.rng.integers(0, 1800))
        if p.spec.tcm:
            self._tcm_chain(p, day, batch, loc)
        ilmd = {
            "cbvmda:lotNumber": lot,
            "cbvmda:productionDate": produced.isoformat(),
            "cbvmda:itemExpirationDate": batch.expiry.isoformat(),
        }
        t = self.clock.at(day, base)
        prodorder = biz_tx("prodorder", self.w.sites[fac].gln, f"PO{p.index:02d}{seq:05d}")
        case_uris = [self._case_uri(p.index, batch, c) for c in range(n // cs)]
        for c in range(n // cs):
            lo = batch.start + c * cs
            children = self._uris(p.index, [(lo, lo + cs)])
            self._emit(
                object_event(
                    t,
                    children,
                    "ADD",
                    "commissioning",
                    "active",
                    loc,
                    bizTransactionList=[prodorder],
                    ilmd=dict(ilmd),
                )
            )
            self._emit(aggregation_event(t, case_uris[c], children, "ADD", loc))
        self._emit(
            object_event(
                t,
                case_uris,
                "ADD",
                "commissioning",
                "active",
                loc,
                bizTransactionList=[prodorder],
                ilmd=dict(ilmd),
            )
        )
        if release_now:
            self._release(p.index, batch)
        else:
            self.wip[p.index] += n
            self.releases[day + QC_DAYS].append((p.index, batch))
        self.truth.batch(p, batch)

    def _release(self, product: int, batch: Batch) -> None:
        fac = self.w.products[product].factory
        self.fifo[fac][product].put([(batch.start, batch.end)])
        self.stock[fac, product] += batch.n

    def _tcm_chain(self, p: Product, day: int, batch: Batch, factory_loc: str) -> None:
        """Herb base → harvest lot → primary processing → 饮片 batch → this 中成药 batch."""
        w = self.w
        base, proc = w.herb_base, w.herb_processor
        base_loc, proc_loc = self._site_loc(base), self._site_loc(proc)
        t_harvest, t_primary = day - 20, day - 16
        t_piece, t_final = day - 8, day
        piece_inputs: list[tuple[str, float, str | None]] = []
        for herb, piece, kg_per_k in HERBS:
            self._herb_lot_seq += 1
            seq = self._herb_lot_seq
            kg = round(batch.n / 1000 * kg_per_k, 1)
            fresh = round(kg / 0.3 / 0.8, 1)  # drying ratio, processing yield
            herb_gtin, piece_gtin = w.herb_gtins[herb], w.herb_gtins[piece]
            harvest_lot = f"H{self.clock.date(t_harvest):%y%m%d}{seq:03d}"
            harvest = lgtin_uri(herb_gtin, harvest_lot)
            dried = lgtin_uri(herb_gtin, harvest_lot + "D")
            piece_lot = f"YP{self.clock.date(t_piece):%y%m%d}{seq:03d}"
            piece_cls = lgtin_uri(piece_gtin, piece_lot)
            self._emit(
                {
                    "type": "ObjectEvent",
                    "eventTime": self.clock.at(t_harvest, 7 * 3600),
                    "eventTimeZoneOffset": "+08:00",
                    "quantityList": [{"epcClass": harvest, "quantity": fresh, "uom": "KGM"}],
                    "action": "ADD",
                    "bizStep": "commissioning",
                    "disposition": "active",
                    "readPoint": {"id": base_loc},
                    "bizLocation": {"id": base_loc},
                    "ilmd": {
                        "cbvmda:lotNumber": harvest_lot,
                        "cbvmda:harvestStartDate": self.clock.iso_date(t_harvest),
                    },
                    "yaolian:herb": herb,
                }
            )
            self._emit(
                _transformation(
                    self._when(t_primary, 9 * 3600),
                    input_classes=[(harvest, fresh, "KGM")],
                    output_classes=[(dried, round(kg / 0.8, 1), "KGM")],
                    site=base_loc,
                    lot=harvest_lot + "D",
                )
            )
            self._ship_class(base, proc, dried, round(kg / 0.8, 1), t_primary + 1, t_primary + 3)
            self._emit(
                _transformation(
                    self._when(t_piece, 9 * 3600),
                    input_classes=[(dried, round(kg / 0.8, 1), "KGM")],
                    output_classes=[(piece_cls, kg, "KGM")],
                    site=proc_loc,
                    lot=piece_lot,
                )
            )
            self._ship_class(proc, p.factory, piece_cls, kg, t_piece + 1, t_piece + 3)
            piece_inputs.append((piece_cls, kg, "KGM"))
        self._emit(
            _transformation(
                self._when(t_final, 5 * 3600),
                input_classes=piece_inputs,
                output_classes=[(nmpa_lot_uri(p.product_code, batch.lot), float(batch.n), None)],
                site=factory_loc,
                lot=batch.lot,
                expiry=batch.expiry.isoformat(),
            )
        )
        self.truth.tcm_chain(p, batch, [c for c, _, _ in piece_inputs])

    def _ship_class(self, src: int, dst: int, cls: str, kg: float, ship: int, arrive: int) -> None:
        number = f"DN{self._next('herb'):06d}"
        desadv = biz_tx("desadv", self.w.sites[src].gln, number)
        quantity = [{"epcClass": cls, "quantity": kg, "uom": "KGM"}]
        sd = parties(self._party(src), self._site_loc(src), self._party(dst), self._site_loc(dst))
        for day, step, disp, site in (
            (ship, "shipping", "in_transit", src),
            (arrive, "receiving", "in_progress", dst),
        ):
            ev = object_event(
                self.clock.at(day, 10 * 3600),
                [],
                "OBSERVE",
                step,
                disp,
                self._site_loc(site),
                bizTransactionList=[desadv],
                **sd,
            )
            del ev["epcList"]
            ev["quantityList"] = quantity
            self._emit(ev)

    def _plan_production(self, day: int) -> None:
        w = self.w
        factory_f = np.zeros(len(w.products))
        for p in w.products:
            factory_f[p.index] = self.forecast[self.tier == PROVINCIAL_DC, p.index].sum()
        for p in w.products:
            i = p.index
            if self.discontinued[i]:
                continue
            position = self.stock[p.factory, i] + self.wip[i]
            if day - self.last_batch[i] < 7:
                continue
            if position < factory_f[i] * (QC_DAYS + 20):
                n = int(
                    min(
                        max(factory_f[i] * 30, 4 * p.spec.case_size),
                        self.capacity[i] * self.capacity_factor[i],
                    )
                )
                if n >= p.spec.case_size:
                    self.last_batch[i] = day
                    self._produce(p, day, n)

    # ── shipping and receiving ────────────────────────────────────────────────────────────
    def _pick(
        self, src: int, product: int, spans: list[Span], time: str
    ) -> tuple[list[str], list[tuple[str, Span]]]:
        """Top-level codes for picked packs: intact cases by case code, the rest loose (opening
        cases at the source with an unpacking event)."""
        packs, p = self.packs[product], self.w.products[product]
        cs = p.spec.case_size
        epcs: list[str] = []
        cases: list[tuple[str, Span]] = []
        loose: list[Span] = []
        loc = self._site_loc(src)
        for s, e in spans:
            b = packs.batch_of(s)
            c0, c1 = (s - b.start) // cs, (e - 1 - b.start) // cs
            for c in range(c0, c1 + 1):
                lo = b.start + c * cs
                hi = lo + cs
                a, z = max(s, lo), min(e, hi)
                if a == lo and z == hi and not b.case_open[c]:
                    uri = self._case_uri(product, b, c)
                    epcs.append(uri)
                    cases.append((uri, (lo, hi)))
                    continue
                if not b.case_open[c]:
                    b.case_open[c] = True
                    self._emit(
                        aggregation_event(
                            time,
                            self._case_uri(product, b, c),
                            self._uris(product, [(lo, hi)]),
                            "DELETE",
                            loc,
                        )
                    )
                loose.append((a, z))
        epcs.extend(self._uris(product, loose))
        return epcs, cases

    def _ship(
        self,
        src: int,
        dst: int,
        product: int,
        n: int,
        day: int,
        lead: int,
        kind: str = "sale",
        spans: list[Span] | None = None,
    ) -> int:
        if spans is None:
            spans = self.fifo[src][product].take(n)
            n = sum(e - s for s, e in spans)
            if n == 0:
                return 0
            self.stock[src, product] -= n
        w = self.w
        number = f"{self._next('doc'):08d}"
        t = self.clock.at(day, 15 * 3600 + int(number) * 37 % 7200)  # spread over the afternoon
        epcs, cases = self._pick(src, product, spans, t)
        pallets: list[tuple[str, list[str]]] = []
        if w.sites[src].tier == FACTORY and kind == "sale" and len(cases) >= 2:
            whole = {c for c, _ in cases}
            top = [u for u in epcs if u not in whole]
            for k in range(0, len(cases), PALLET_CASES):
                chunk = [c for c, _ in cases[k : k + PALLET_CASES]]
                sscc = self._sscc(src)
                self._emit(aggregation_event(t, sscc, chunk, "ADD", self._site_loc(src)))
                pallets.append((sscc, chunk))
                top.append(sscc)
            epcs = top
        desadv = biz_tx("desadv", w.sites[src].gln, f"DN{number}")
        po = biz_tx("po", w.sites[dst].gln, f"PO{number}") if kind == "sale" else None
        txs = [po, desadv] if po else [desadv]
        # returns (near expiry, or a recall) go back as shipping with disposition returned
        disp = "in_transit" if kind == "sale" else "returned"
        extra: dict[str, Any] = {"bizTransactionList": txs}
        extra.update(
            parties(self._party(src), self._site_loc(src), self._party(dst), self._site_loc(dst))
        )
        if kind != "sale":
            extra["yaolian:returnReason"] = "near_expiry" if kind == "return" else "recall"
        self._emit(object_event(t, epcs, "OBSERVE", "shipping", disp, self._site_loc(src), **extra))
        ship = Shipment(
            day + lead, src, dst, product, spans, epcs, pallets, cases, po, desadv, t, kind
        )
        if kind == "sale":
            self.pipeline[dst, product] += n
            if self.w.products[product].cold and self.plan.take_excursion(day, dst, w):
                ship.excursion = True
        self.transit[day + lead].append(ship)
        return n

    def _sscc(self, site: int) -> str:
        prefix = self.w.enterprises[self.w.sites[site].enterprise].company_prefix
        body = "0" + prefix + f"{self._next(f'sscc{site}'):09d}"
        return sscc_uri(body + gs1_check_digit(body))

    def _receive(self, day: int) -> None:
        w = self.w
        for k, sh in enumerate(self.transit.pop(day, [])):
            dst, product = sh.dst, sh.product
            t = self.clock.at(day, 8 * 3600 + k % 3600)
            loc = self._site_loc(dst)
            extra: dict[str, Any] = {"bizTransactionList": [x for x in (sh.po, sh.desadv) if x]}
            p = w.products[product]
            if p.cold and p.spec.temp_min is not None and p.spec.temp_max is not None:
                lo, hi = p.spec.temp_min, p.spec.temp_max
                if sh.excursion:
                    high = round(float(self.rng.uniform(hi + 4, hi + 9)), 1)
                    low = round(float(self.rng.uniform(lo + 0.5, lo + 2)), 1)
                else:
                    low = round(float(self.rng.uniform(lo + 0.3, lo + 1.5)), 1)
                    high = round(float(self.rng.uniform(hi - 2.5, hi - 0.4)), 1)
                mean = round((low + high) / 2, 1)
                prefix = w.enterprises[w.sites[sh.src].enterprise].company_prefix
                device = f"urn:epc:id:giai:{prefix}.T{sh.src:05d}"  # the shipper's data logger
                extra["sensorElementList"] = temperature_report(
                    sh.ship_time, t, device, low, high, mean
                )
            disp = "in_progress" if sh.kind == "sale" else "returned"
            extra.update(
                parties(self._party(sh.src), self._site_loc(sh.src), self._party(dst), loc)
            )
            self._emit(object_event(t, sh.epcs, "OBSERVE", "receiving", disp, loc, **extra))
            if sh.excursion:
                raw = [self.pack_raw(product, pk) for pk in pack_indexes(sh.spans).tolist()]
                self.truth.excursion(sh, t, self._uris(product, sh.spans), raw)
            for sscc, children in sh.pallets:
                self._emit(aggregation_event(t, sscc, children, "DELETE", loc))
            n = sum(e - s for s, e in sh.spans)
            if sh.kind != "sale":
                # returns and recalled goods are quarantined, then destroyed at the receiver
                self._destroy(dst, product, sh.spans, day + 1, "destroyed")
                continue
            if w.sites[dst].tier == RETAIL:
                packs = self.packs[product]
                for uri, (lo_, hi_) in sh.cases:
                    b = packs.batch_of(lo_)
                    b.case_open[(lo_ - b.start) // p.spec.case_size] = True
                    self._emit(
                        aggregation_event(t, uri, self._uris(product, [(lo_, hi_)]), "DELETE", loc)
                    )
            self.pipeline[dst, product] -= n
            self.fifo[dst][product].put(sh.spans)
            self.stock[dst, product] += n

    def _destroy(self, site: int, product: int, spans: list[Span], day: int, why: str) -> None:
        if not spans:
            return
        t = self.clock.at(day, 17 * 3600 + int(self.rng.integers(0, 3600)))
        uris = self._uris(product, spans)
        loc = self._site_loc(site)
        number = f"XH{self._next('destroy'):07d}"
        self._emit(
            object_event(
                t,
                uris,
                "DELETE",
                "destroying",
                "destroyed",
                loc,
                bizTransactionList=[biz_tx("bol", self.w.sites[site].gln, number)],
                **{"yaolian:reason": why},
            )
        )
        if why == "expired":
            self.truth.note_destroyed(len(uris))

    # ── dispensing ────────────────────────────────────────────────────────────────────────
    def _demand(self, day: int) -> np.ndarray:
        w = self.w
        when = self.clock.date(day)
        season = np.array([season_factor(p.spec.season, when) for p in w.products])
        trend = np.array([(1 + p.spec.trend) ** (day / 365) for p in w.products])
        weekend = when.weekday() >= 5
        site_factor = np.where(self.is_hospital, 0.6 if weekend else 1.1, 1.15 if weekend else 1.0)
        noise = self.rng.gamma(25.0, 1 / 25.0, size=(len(self.provinces), len(w.products)))
        noise *= self.spike
        prov = np.maximum(self.site_province, 0)
        lam = w.base_demand * (season * trend)[None, :] * site_factor[:, None] * noise[prov]
        return lam

    def _dispense(self, day: int) -> None:
        lam = self._demand(day)
        rng = self.rng
        empty_at_open = self.stock[self.retail] <= 0
        lines = rng.poisson(lam[self.retail])
        hosp = self.is_hospital[self.retail]
        split = rng.binomial(lines, self.split_share[None, :] * hosp[:, None])
        rows, cols = np.nonzero(lines)
        k = lines[rows, cols]
        total = int(k.sum())
        if total == 0:
            return
        # per-line draws for the whole day at once: extra pack, time of day, units of a split
        starts = np.repeat(np.cumsum(k) - k, k)
        j = np.arange(total) - starts
        kk = np.repeat(k, k)
        secs = (9 * 3600 + (j + rng.random(total)) * (43_200 / kk)).astype(np.int64)
        extra = (rng.random(total) < 0.12).astype(np.int64)
        half = np.repeat(self.units[cols] // 2, k)
        units = np.maximum(1, (rng.random(total) * half).astype(np.int64))
        date = self.clock.iso_date(day)
        times = [f"{date}T{HMS[s]}{TZ}" for s in secs.tolist()]
        extra_l, units_l = extra.tolist(), units.tolist()
        whole_k = (k - split[rows, cols]).tolist()
        demanded = np.zeros((len(self.retail), len(self.w.products)))
        unmet = np.zeros_like(demanded, dtype=np.int64)
        cursor = 0
        for r, i, n, nw in zip(rows.tolist(), cols.tolist(), k.tolist(), whole_k, strict=True):
            sl = slice(cursor, cursor + n)
            cursor += n
            need, missed = self._sale_lines(
                int(self.retail[r]), i, day, times[sl], extra_l[sl], units_l[sl], nw
            )
            demanded[r, i] = need
            unmet[r, i] = missed
        self.forecast[self.retail] = 0.88 * self.forecast[self.retail] + 0.12 * demanded
        if day >= 0:
            pv = self.site_province[self.retail]
            np.add.at(self.demand_lines[day], pv, lines)
            np.add.at(self.unmet_lines[day], pv, unmet)
            out = self.retail_serves & (empty_at_open | (unmet > 0))
            np.add.at(self.sites_out[day], pv, out.astype(np.int64))

    def _sale_lines(
        self,
        site: int,
        i: int,
        day: int,
        times: list[str],
        extra: list[int],
        units: list[int],
        n_whole: int,
    ) -> tuple[float, int]:
        """Emit one dispensing event per NHSA sale line (拆零 lines sell units of an opened pack).

        Returns the packs demanded and the lines left unserved.
        """
        fifo = self.fifo[site][i]
        whole_proto, split_proto = self._protos.get(site) or self._sale_prototypes(site)
        per_pack = self.units_list[i]
        packs = self.packs[i]
        prefix = self.fmt[i].uri_prefix
        emit = self._day_events.append
        doc = f"YB{site:05d}{day + 1000:05d}"
        whole = self._today_whole[site]
        dispensed = self.dispensed_by_batch
        opened_here = self.open_split[site]
        open_pack, open_units = opened_here[i]
        recalled = self._recalled is not None and self._recalled[0] == i
        spans = fifo.spans
        batch = packs.batch_of(spans[0][0]) if spans else packs.batches[-1]
        taken = unmet = 0
        need = 0.0
        for j in range(n_whole):
            t = times[j]
            if extra[j] == 0:  # the common case: one pack
                need += 1
                if not spans:
                    unmet += 1
                    continue
                head = spans[0]
                pk = head[0]
                head[0] = pk + 1
                if head[0] == head[1]:
                    spans.popleft()
                fifo.qty -= 1
                taken += 1
                if not batch.start <= pk < batch.end:
                    batch = packs.batch_of(pk)
                uri = f"{prefix}{batch.serial_list[pk - batch.start]:013d}"
                dispensed[(i, batch.index)] += 1
                emit(sale_event(whole_proto, t, [uri], f"{doc}{j:05d}", 1, False))
                whole.append((pk, i, t))
                if recalled:
                    self.truth.recalled_sale(self, i, [pk], site, t)
                continue
            need += 2
            got = fifo.take(2)
            if not got:
                unmet += 1
                continue
            pack_list = [pk for a, z in got for pk in range(a, z)]
            taken += len(pack_list)
            uris = []
            for pk in pack_list:
                if not batch.start <= pk < batch.end:
                    batch = packs.batch_of(pk)
                uris.append(f"{prefix}{batch.serial_list[pk - batch.start]:013d}")
            dispensed[(i, batch.index)] += len(pack_list)
            emit(sale_event(whole_proto, t, uris, f"{doc}{j:05d}", len(pack_list), False))
            if recalled:
                self.truth.recalled_sale(self, i, pack_list, site, t)
        for j in range(n_whole, len(times)):
            # 拆零: units from the opened pack; when it runs short, its rest is one line and a
            # new pack is opened for another (one code per split line, as pharmacies record)
            u = units[j]
            need += u / per_pack
            t = times[j]
            parts: list[tuple[int, int, bool]] = []  # (pack, units, newly opened)
            if 0 < open_units < u:
                parts.append((open_pack, open_units, False))
                u -= open_units
                open_units = 0
            if open_units == 0:
                got = fifo.take(1)
                if not got:
                    if not parts:
                        unmet += 1
                    u = 0
                else:
                    taken += 1
                    open_pack, open_units = got[0][0], per_pack
                    parts.append((open_pack, u, True))
            else:
                parts.append((open_pack, u, False))
            open_units -= u
            for n, (pk, units_sold, opened) in enumerate(parts):
                if not batch.start <= pk < batch.end:
                    batch = packs.batch_of(pk)
                if opened:
                    dispensed[(i, batch.index)] += 1
                uri = f"{prefix}{batch.serial_list[pk - batch.start]:013d}"
                emit(sale_event(split_proto, t, [uri], f"{doc}{j:04d}{n}", units_sold, True))
                if recalled:
                    self.truth.recalled_sale(self, i, [pk], site, t)
        if taken:
            self.stock[site, i] -= taken
        opened_here[i] = (open_pack, open_units)
        self.stats.sale_lines += len(times) - unmet
        self.stats.split_lines += len(times) - n_whole
        return need, unmet

    def _sale_prototypes(self, site: int) -> tuple[Event, Event]:
        """The site's whole-pack and split-sale line events as :mod:`yaolian.verify.dispense`
        builds them; each sale line copies one and sets its own time, codes and settlement."""
        protos = self._protos.get(site)
        if protos is None:
            s = self.w.sites[site]
            kind = "dispensing" if s.kind == "hospital" else "retail_selling"
            when = datetime(2025, 1, 1, tzinfo=CHINA_TIME)
            protos = (
                SaleLine(("urn:x:0",), False, 1, s.location_id, when, None, "0", kind).event(),
                SaleLine(("urn:x:0",), True, 1, s.location_id, when, None, "0", kind).event(),
            )
            self._protos[site] = protos
        return protos

    def _sale_event(self, t: str, uri: str, site: int, day: int) -> Event:
        """A whole-pack sale line outside the daily flow (incidents)."""
        number = f"YB{site:05d}{day + 1000:05d}9{self._next(f'sale{site}'):04d}"
        return sale_event(self._sale_prototypes(site)[0], t, [uri], number, 1, False)

    # ── replenishment ─────────────────────────────────────────────────────────────────────
    def _replenish(self, day: int) -> None:
        # forecasts upstream: a distributor forecasts the sum of what its customers forecast
        for tier in (REGIONAL_DC, PROVINCIAL_DC):
            down = np.nonzero((self.tier == tier + 1) & (self.parent >= 0))[0]
            agg = np.zeros_like(self.forecast)
            np.add.at(agg, self.parent[down], self.forecast[down])
            mask = self.tier == tier
            self.forecast[mask] = agg[mask]
        cases = self.case_size[None, :]
        for tier, lead, cover_s, cover_S in (
            (RETAIL, 1, 2.0, 8.0),
            (REGIONAL_DC, 1, 4.0, 12.0),
            (PROVINCIAL_DC, 3, 9.0, 24.0),
        ):
            idx = np.nonzero(self.tier == tier)[0]
            f = self.forecast[idx]
            position = self.stock[idx] + self.pipeline[idx]
            s = f * cover_s + Z_SERVICE * np.sqrt(f * cover_s) + (tier == RETAIL)
            big_s = s + f * (cover_S - cover_s)
            order = np.where(position <= s, np.ceil(big_s - position), 0).astype(np.int64)
            if tier != RETAIL:
                order = -(-order // cases) * cases
            rows, cols = np.nonzero(order)
            if tier == PROVINCIAL_DC:
                self._factory_orders(day, idx, rows, cols, order)
                continue
            for r, i in zip(rows.tolist(), cols.tolist(), strict=True):
                site = int(idx[r])
                parent = int(self.parent[site])
                self._ship(parent, site, i, int(order[r, i]), day, lead)

    def _factory_orders(
        self, day: int, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, order: np.ndarray
    ) -> None:
        """Provincial DCs order from each product's factory; scarce stock goes nearest-first."""
        w = self.w
        wanted = sorted(
            zip(rows.tolist(), cols.tolist(), strict=True),
            key=lambda rc: (rc[1], self._distance(int(idx[rc[0]]), w.products[rc[1]].factory)),
        )
        for r, i in wanted:
            site = int(idx[r])
            fac = w.products[i].factory
            lead = 1 + math.ceil(self._distance(site, fac) / 700)
            self._ship(fac, site, i, int(order[r, i]), day, lead)

    def _distance(self, a: int, b: int) -> float:
        sa, sb = self.w.sites[a], self.w.sites[b]
        return haversine_km(sa.lat, sa.lon, sb.lat, sb.lon)

    # ── returns, expiry ───────────────────────────────────────────────────────────────────
    def _housekeeping(self, day: int) -> None:
        """Weekly: users return packs near expiry to their distributor; distributors and
        factories destroy what their customers would no longer accept (近效期), so no tier
        ships stock the next one sends back."""
        if (day - self.first_day) % 7 != 6:
            return
        today = self.clock.date(day)
        for site in self.w.sites:
            cutoff = today + timedelta(days=MIN_SHELF_DAYS[site.tier])
            for i in range(len(self.w.products)):
                fifo = self.fifo[site.index][i]
                if fifo.qty == 0:
                    continue
                spans = fifo.remove_where(self.packs[i], cutoff)
                if not spans:
                    continue
                n = sum(e - s for s, e in spans)
                self.stock[site.index, i] -= n
                if site.tier == RETAIL:
                    self._ship(site.index, site.parent, i, n, day, 1, "return", spans)
                    self.truth.note_returned(n)
                else:
                    self._destroy(site.index, i, spans, day, "expired")

    # ── incidents ─────────────────────────────────────────────────────────────────────────
    def _incidents(self, day: int) -> None:
        plan = self.plan
        for ev in plan.shortage_events(day):
            kind, i = ev["type"], ev["product"]
            if kind == "raw_material_shock":
                self.capacity_factor[i] = ev["capacity_factor"]
            elif kind == "raw_material_recovery":
                self.capacity_factor[i] = 1.0
            elif kind == "discontinuation":
                self.discontinued[i] = True
            elif kind == "demand_spike":
                self.spike[ev["province"], i] = ev["factor"]
            elif kind == "demand_spike_end":
                self.spike[ev["province"], i] = 1.0
        for inc in plan.code_incidents(day):
            getattr(self, f"_inject_{inc['type']}")(day, inc)
        if plan.recall_day == day:
            self._recall(day)
        self._today_whole.clear()

    def _donor(self) -> tuple[int, int, int, str] | None:
        """A whole-pack sale made today: (site, product, pack index, time)."""
        sites = sorted(site for site, recs in self._today_whole.items() if recs)
        if not sites:
            return None
        site = sites[int(self.rng.integers(0, len(sites)))]
        recs = self._today_whole[site]
        pack, product, time = recs[int(self.rng.integers(0, len(recs)))]
        return site, product, pack, time

    def _other_retail(self, site: int, *, far: bool, other_owner: bool = False) -> int:
        """Another hospital or pharmacy: the farthest one, or one in the same city (of another
        enterprise when ``other_owner``)."""
        here = self.w.sites[site]
        cands = [s for s in self.retail.tolist() if s != site]
        if other_owner:
            cands = [s for s in cands if self.w.sites[s].enterprise != here.enterprise] or cands
        if far:
            return max(cands, key=lambda s: self._distance(site, s))
        same = [s for s in cands if self.w.sites[s].region == here.region] or cands
        return same[int(self.rng.integers(0, len(same)))]

    def _incident_sale(self, site: int, day: int, sec: int, uri: str) -> str:
        t = self.clock.at(day, sec)
        self._emit(self._sale_event(t, uri, site, day))
        self.stats.sale_lines += 1
        return t

    def _inject_counterfeit(self, day: int, inc: dict[str, Any]) -> None:
        site = int(self.retail[int(self.rng.integers(0, len(self.retail)))])
        choices = [p.index for p in self.w.products if self.w.base_demand[site, p.index] > 0]
        i = choices[int(self.rng.integers(0, len(choices)))]
        serial = int(self.packs[i].fresh_serials(self.rng, 1)[0])
        uri, raw = self.fmt[i].uri(serial), self.fmt[i].raw(serial)
        t = self._incident_sale(site, day, 19 * 3600 + int(self.rng.integers(0, 3600)), uri)
        self.truth.code_incident(
            "counterfeit", t, [uri], [raw], i, [site], "code never commissioned sold at a pharmacy"
        )

    def _inject_clone(self, day: int, inc: dict[str, Any]) -> None:
        donor = self._donor()
        if donor is None:
            return
        site, i, pack, t0 = donor
        other = self._other_retail(site, far=True)
        sec = int(t0[11:13]) * 3600 + int(t0[14:16]) * 60 + int(t0[17:19])
        t = self._incident_sale(
            other, day, sec + 3600 + int(self.rng.integers(0, 3600)), self.pack_uri(i, pack)
        )
        self.truth.code_incident(
            "clone",
            t,
            [self.pack_uri(i, pack)],
            [self.pack_raw(i, pack)],
            i,
            [site, other],
            f"same code sold {self._distance(site, other):.0f} km apart on the same day",
            first_time=t0,
        )

    def _inject_resale(self, day: int, inc: dict[str, Any]) -> None:
        donor = self._donor()
        if donor is None:
            return
        site, i, pack, t0 = donor
        self.plan.later(
            day + int(self.rng.integers(5, 20)),
            {
                "type": "resale_second",
                "uri": self.pack_uri(i, pack),
                "raw": self.pack_raw(i, pack),
                "product": i,
                "site": site,
                "first_time": t0,
            },
        )

    def _inject_resale_second(self, day: int, inc: dict[str, Any]) -> None:
        other = self._other_retail(inc["site"], far=False)
        t = self._incident_sale(
            other, day, 10 * 3600 + int(self.rng.integers(0, 28_800)), inc["uri"]
        )
        self.truth.code_incident(
            "resale",
            t,
            [inc["uri"]],
            [inc["raw"]],
            inc["product"],
            [inc["site"], other],
            "whole pack settled a second time (回流药)",
            first_time=inc["first_time"],
        )

    def _inject_diversion(self, day: int, inc: dict[str, Any]) -> None:
        order = self.rng.permutation(self.retail)
        for site in order.tolist():
            stocked = [
                i
                for i in range(len(self.w.products))
                if self.fifo[site][i].qty > 2 and not self.w.products[i].spec.tcm
            ]
            if not stocked:
                continue
            i = stocked[int(self.rng.integers(0, len(stocked)))]
            pack = self.fifo[site][i].take_last()
            assert pack is not None
            self.stock[site, i] -= 1
            other = self._other_retail(site, far=False, other_owner=True)
            uri, raw = self.pack_uri(i, pack), self.pack_raw(i, pack)
            t = self._incident_sale(other, day, 16 * 3600 + int(self.rng.integers(0, 7200)), uri)
            self.truth.code_incident(
                "diversion",
                t,
                [uri],
                [raw],
                i,
                [other, site],
                "dispensed at a site that never received it (received by the second site)",
            )
            return

    def _recall(self, day: int) -> None:
        """Recall the batch of the planned product found at the most hospitals and pharmacies
        (then: the most packs outside the factory)."""
        i = self.plan.recall_product
        packs = self.packs[i]
        downstream = np.zeros(len(packs.batches), dtype=np.int64)
        at_retail = np.zeros(len(packs.batches), dtype=np.int64)
        for site in self.w.sites:
            if site.tier == FACTORY:
                continue
            seen: set[int] = set()
            for s, e in self.fifo[site.index][i].spans:
                index = packs.batch_of(s).index
                downstream[index] += e - s
                if site.tier == RETAIL and index not in seen:
                    seen.add(index)
                    at_retail[index] += 1
        b = packs.batches[int(np.lexsort((downstream, at_retail))[-1])]
        self._recalled = (i, b.index)
        # issued when the day's trading is over (sales run 09:00–21:00, a clone's second sale
        # up to two hours later): the recall acts from the next morning, so no sale of this day
        # may come after its time (the trace system would rightly call it a recalled sale,
        # which the truth does not list)
        t = self.clock.at(day, 23 * 3600)
        holders: dict[int, int] = {}
        for site in self.w.sites:
            got = sum(
                min(e, b.end) - max(s, b.start)
                for s, e in self.fifo[site.index][i].spans
                if min(e, b.end) > max(s, b.start)
            )
            if got:
                holders[site.index] = got
        in_transit = sum(
            sum(
                min(e, b.end) - max(s, b.start)
                for s, e in sh.spans
                if min(e, b.end) > max(s, b.start)
            )
            for ships in self.transit.values()
            for sh in ships
            if sh.product == i
        )
        retail_holders = [s for s in holders if self.w.sites[s].tier == RETAIL]
        n_bad = max(1, len(retail_holders) // 4) if retail_holders else 0
        bad = (
            set(self.rng.choice(retail_holders, size=n_bad, replace=False).tolist())
            if n_bad
            else set()
        )
        self._noncompliant = bad
        self.truth.recall(
            self, i, b, t, holders, in_transit, self.dispensed_by_batch[(i, b.index)], sorted(bad)
        )
        for holder in holders:
            if holder in bad:
                continue
            # compliant holders quarantine at once and send the packs back within days
            spans = self.fifo[holder][i].remove_range(b.start, b.end)
            self.stock[holder, i] -= sum(e - s for s, e in spans)
            delay = 1 if self.w.sites[holder].tier != RETAIL else int(self.rng.integers(1, 7))
            self.plan.later(
                day + delay,
                {"type": "recall_return", "site": holder, "product": i, "spans": spans},
            )

    def _inject_recall_return(self, day: int, inc: dict[str, Any]) -> None:
        site, i, spans = inc["site"], inc["product"], inc["spans"]
        n = sum(e - s for s, e in spans)
        fac = self.w.products[i].factory
        if site == fac:
            self._destroy(site, i, spans, day, "recalled")
            return
        self._ship(site, fac, i, n, day, 2, "recall", spans)

    # ── the run ───────────────────────────────────────────────────────────────────────────
    def run(self) -> Iterator[tuple[int, list[Event]]]:
        """Simulate every day; yield ``(day, events)`` per day (day 0 = first reported day)."""
        # Events are acyclic dicts: the cyclic GC would only rescan them (it doubles the run
        # time), so it pauses for the run, with a cheap young-generation pass once a week.
        with gc_paused():
            yield from self._days()
        self.truth.finish(self)

    def _days(self) -> Iterator[tuple[int, list[Event]]]:
        for day in range(self.first_day, self.w.size.days):
            self.day = day
            if day % 7 == 0:
                gc.collect(1)
            for product, batch in self.releases.pop(day, []):
                self.wip[product] -= batch.n
                self._release(product, batch)
            self._plan_production(day)
            self._receive(day)
            if day >= self.first_day + 7:
                self._dispense(day)
            self._incidents(day)
            self._housekeeping(day)
            self._replenish(day)
            events, self._day_events = self._day_events, []
            for ev in events:
                self.stats.by_type[ev["type"]] += 1
            self.stats.events += len(events)
            yield day, events


def _transformation(when: datetime, **kwargs: Any) -> Event:
    """A class-level TransformationEvent from :func:`yaolian.trace.builders.transformation_event`.

    bizStep ``commissioning`` (the outputs come into being): CBV 2.0 has no ``transforming``.
    """
    ev = transformation_event((), (), when, **kwargs)
    ev["bizStep"] = "commissioning"
    return ev


def _case_gtin(gtin: str) -> str:
    """GTIN-14 of the case level: indicator digit 1 on the pack's GTIN."""
    body = "1" + gtin[1:13]
    return body + gs1_check_digit(body)
