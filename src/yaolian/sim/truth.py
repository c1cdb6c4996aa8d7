"""Injected incidents: the plan (what happens when) and the ground truth written beside the data.

Code-level incidents (counterfeit, clone, 回流药 resale, diversion, cold-chain excursion, sale of a
recalled pack) carry the affected codes, sites and the time of the event that makes each one
detectable. Supply incidents (raw-material shock, discontinuation, demand spike) carry their
dates; the first stockout per product × region (province) is measured from the simulated
fill rate, whatever its cause.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from yaolian.sim.catalog import PROVINCES
from yaolian.sim.events import Clock
from yaolian.sim.stock import Batch
from yaolian.sim.world import REGIONAL_DC, RETAIL, Product, World

if TYPE_CHECKING:
    from yaolian.sim.engine import Shipment, Simulation

CODE_INCIDENT_TYPES = (
    "counterfeit",
    "clone",
    "resale",
    "diversion",
    "cold_chain_excursion",
    "recalled_sale",
)
SUPPLY_INCIDENT_TYPES = ("raw_material_shock", "discontinuation", "demand_spike")
_BASE_COUNTS = {"counterfeit": 3, "clone": 2, "resale": 4, "diversion": 2, "excursion": 2}


@dataclass(frozen=True)
class ShortageRule:
    """When a province is short of a drug (短缺: the region cannot get it), as a regulator means
    it — not one pharmacy's restocking gap. A day is *short* when at least ``site_share`` of
    the province's dispensing sites are stocked out (the stockout rate: sites stocked out /
    sites reporting, standards.md §5; a site is out when its shelf is empty as it opens or it
    turns a sale line away) or the day's regional fill rate (sale lines served / demanded) is
    below ``fill_rate``; a shortage is ``sustain`` short days in a row and begins on the first
    of them. Warm-up days never count."""

    site_share: float = 0.3
    fill_rate: float = 0.9
    sustain: int = 7


def regional_shortage(
    demand: np.ndarray,
    unmet: np.ndarray,
    sites_out: np.ndarray,
    sites: int,
    rule: ShortageRule,
) -> tuple[int, int] | None:
    """First day and number of short days of a province's shortage of one product, from its
    daily sale lines demanded, lines unserved and sites stocked out; ``None`` without one."""
    if sites == 0:
        return None
    short = (sites_out >= rule.site_share * sites) | (unmet > (1 - rule.fill_rate) * demand)
    first: int | None = None
    days = count = 0
    for k, bad in enumerate(short.tolist()):
        count = count + 1 if bad else 0
        if count == rule.sustain:
            first = k - count + 1 if first is None else first
            days += count
        elif count > rule.sustain:
            days += 1
    return None if first is None else (first, days)


def _first(present: list[str], wanted: tuple[str, ...], taken: set[str]) -> str | None:
    for key in wanted:
        if key in present and key not in taken:
            taken.add(key)
            return key
    return None


@dataclass
class IncidentPlan:
    """When each incident happens (simulation days)."""

    code: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    supply: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    excursion_days: list[int] = field(default_factory=list)
    supply_incidents: list[dict[str, Any]] = field(default_factory=list)
    recall_day: int = -1
    recall_product: int = -1

    def code_incidents(self, day: int) -> list[dict[str, Any]]:
        """Code-level incidents (and follow-ups) due on a day."""
        return self.code.pop(day, [])

    def shortage_events(self, day: int) -> list[dict[str, Any]]:
        """Supply changes (shock, recovery, discontinuation, spike start/end) due on a day."""
        return self.supply.pop(day, [])

    def later(self, day: int, incident: dict[str, Any]) -> None:
        """Schedule a follow-up action."""
        self.code[day].append(incident)

    def take_excursion(self, day: int, dst: int, world: World) -> bool:
        """Whether a cold-chain shipment leaving today to ``dst`` suffers a planned excursion."""
        if not self.excursion_days or self.excursion_days[0] > day:
            return False
        if world.sites[dst].tier not in (RETAIL, REGIONAL_DC):
            return False
        self.excursion_days.pop(0)
        return True


def plan_incidents(world: World, rng: np.random.Generator, provinces: list[str]) -> IncidentPlan:
    """Draw the incident schedule for a world."""
    plan = IncidentPlan()
    days, k = world.size.days, world.size.incidents_scale
    hi = max(4, days - 25)
    for kind, n in _BASE_COUNTS.items():
        when = sorted(int(d) for d in rng.integers(3, hi, size=n * k))
        if kind == "excursion":
            plan.excursion_days = when
            continue
        for d in when:
            plan.code[d].append({"type": kind})
    keys = [p.spec.key for p in world.products]
    index = {key: i for i, key in enumerate(keys)}
    taken: set[str] = set()
    shock = _first(keys, ("amoxicillin", "cefuroxime", "ibuprofen"), taken)
    if shock:
        start, length = int(days * 0.08), int(days * 0.7)
        inc = {
            "type": "raw_material_shock",
            "product": index[shock],
            "day": start,
            "end_day": start + length,
            "capacity_factor": 0.15,
            "reason": "原料药供应中断 (API supply cut)",
        }
        plan.supply[start].append(inc)
        plan.supply[start + length].append(
            {"type": "raw_material_recovery", "product": index[shock]}
        )
        plan.supply_incidents.append(inc)
    stop = _first(keys, ("nifedipine", "metformin"), taken)
    if stop:
        day = int(days * 0.12)
        inc = {
            "type": "discontinuation",
            "product": index[stop],
            "day": day,
            "report_day": day - 14,
            "reason": "生产线改造停产 (production line closed)",
        }
        plan.supply[day].append(inc)
        plan.supply_incidents.append(inc)
    spike = _first(keys, ("smectite", "ibuprofen", "oseltamivir"), taken)
    if spike:
        day, length = int(days * 0.5), 14
        prov = int(rng.integers(0, len(provinces)))
        inc = {
            "type": "demand_spike",
            "product": index[spike],
            "day": day,
            "end_day": day + length,
            "province": prov,
            "region": provinces[prov],
            "factor": 3.0,
            "reason": "local outbreak",
        }
        plan.supply[day].append(inc)
        plan.supply[day + length].append(
            {"type": "demand_spike_end", "product": index[spike], "province": prov}
        )
        plan.supply_incidents.append(inc)
    recall = _first(keys, ("atorvastatin", "amlodipine", "insulin", "oseltamivir"), taken)
    if recall:
        plan.recall_day = int(days * 0.55)
        plan.recall_product = index[recall]
    return plan


class GroundTruth:
    """Collects what really happened; :meth:`to_json` is the ground-truth file."""

    def __init__(
        self,
        world: World,
        clock: Clock,
        plan: IncidentPlan,
        shortage_rule: ShortageRule | None = None,
    ) -> None:
        self.w = world
        self.shortage_rule = shortage_rule or ShortageRule()
        self.clock = clock
        self.plan = plan
        self.incidents: list[dict[str, Any]] = []
        self.recall_info: dict[str, Any] | None = None
        self.tcm: list[dict[str, Any]] = []
        self.batches: int = 0
        self.returned = 0
        self.destroyed_expired = 0
        self.stockouts: list[dict[str, Any]] = []
        self.samples: dict[str, Any] = {}
        self._recalled_seen: set[str] = set()
        self._counts: dict[str, int] = defaultdict(int)

    def _product(self, i: int) -> dict[str, Any]:
        p = self.w.products[i]
        return {"product_code": p.product_code, "generic_name": p.spec.generic_name}

    def _site(self, site: int) -> dict[str, Any]:
        s = self.w.sites[site]
        return {
            "location_id": s.location_id,
            "name": s.name,
            "region": s.region,
            "province": s.province,
        }

    def batch(self, p: Product, batch: Batch) -> None:
        """Note a produced batch."""
        self.batches += 1

    def tcm_chain(self, p: Product, batch: Batch, inputs: list[str]) -> None:
        """Note the lineage of a 中成药 batch."""
        self.tcm.append({**self._product(p.index), "lot": batch.lot, "inputs": inputs})

    def note_returned(self, n: int) -> None:
        """Packs returned near expiry."""
        self.returned += n

    def note_destroyed(self, n: int) -> None:
        """Packs destroyed at expiry."""
        self.destroyed_expired += n

    def code_incident(
        self,
        kind: str,
        time: str,
        codes: list[str],
        raw: list[str],
        product: int,
        sites: list[int],
        detail: str,
        first_time: str | None = None,
    ) -> None:
        """Record a code-level incident; ``time`` is when it becomes detectable."""
        self._counts[kind] += 1
        entry: dict[str, Any] = {
            "id": f"{kind}-{self._counts[kind]}",
            "type": kind,
            "time": time,
            "codes": codes,
            "raw_codes": raw,
            **self._product(product),
            "sites": [self._site(s) for s in sites],
            "detail": detail,
        }
        if first_time:
            entry["first_time"] = first_time
        self.incidents.append(entry)

    def excursion(self, sh: Shipment, time: str, packs: list[str], raw: list[str]) -> None:
        """A cold-chain shipment received with readings outside the product's range."""
        p = self.w.products[sh.product]
        self.code_incident(
            "cold_chain_excursion",
            time,
            packs,
            raw,
            sh.product,
            [sh.dst, sh.src],
            f"transit temperature above {p.spec.temp_max} °C; {len(packs)} packs in "
            f"{len(sh.epcs)} containers",
        )
        self.incidents[-1]["containers"] = sh.epcs

    def recall(
        self,
        sim: Simulation,
        product: int,
        batch: Batch,
        time: str,
        holders: dict[int, int],
        in_transit: int,
        dispensed: int,
        noncompliant: list[int],
    ) -> None:
        """The recall and its true scope at the time it was issued."""
        from yaolian.codes.nmpa import nmpa_lot_uri

        p = self.w.products[product]
        self.recall_info = {
            **self._product(product),
            "lot": batch.lot,
            "lot_uri": nmpa_lot_uri(p.product_code, batch.lot),
            "time": time,
            "class": "II",
            "reason": "溶出度不合格 (dissolution out of specification)",
            "packs": batch.n,
            "holders": [{**self._site(s), "packs": n} for s, n in holders.items()],
            "in_transit": in_transit,
            "dispensed": dispensed,
            "noncompliant_sites": [self._site(s)["location_id"] for s in noncompliant],
            "sample_code": sim.pack_uri(product, batch.start),
        }

    def recalled_sale(
        self, sim: Simulation, product: int, packs: list[int], site: int, time: str
    ) -> None:
        """A pack of the recalled batch sold after the recall."""
        if sim._recalled is None:
            return
        batch = sim.packs[product].batches[sim._recalled[1]]
        for pk in packs:
            if batch.start <= pk < batch.end:
                uri = sim.pack_uri(product, pk)
                if uri in self._recalled_seen:
                    continue
                self._recalled_seen.add(uri)
                self.code_incident(
                    "recalled_sale",
                    time,
                    [uri],
                    [sim.pack_raw(product, pk)],
                    product,
                    [site],
                    "pack of a recalled batch sold after recall",
                )

    def finish(self, sim: Simulation) -> None:
        """Measure stockouts and pick sample codes for the demo once the run is over."""
        names = {p.code: p.name for p in PROVINCES}
        causes: dict[tuple[int, str | None], str] = {}
        for inc in self.plan.supply_incidents:
            causes[(inc["product"], inc.get("region"))] = inc["type"]
        rule = self.shortage_rule
        for pv, region in enumerate(sim.provinces):
            for i in range(len(self.w.products)):
                found = regional_shortage(
                    sim.demand_lines[:, pv, i],
                    sim.unmet_lines[:, pv, i],
                    sim.sites_out[:, pv, i],
                    int(sim.sites_dispensing[pv, i]),
                    rule,
                )
                if found is None:
                    continue
                first, days_short = found
                d, u = sim.demand_lines[:, pv, i], sim.unmet_lines[:, pv, i]
                cause = causes.get((i, region)) or causes.get((i, None)) or "none"
                self.stockouts.append(
                    {
                        **self._product(i),
                        "region": region,
                        "region_name": names.get(region, ""),
                        "first_stockout": self.clock.iso_date(first),
                        "day": first,
                        "stockout_days": days_short,
                        "cause": cause,
                        "fill_rate": round(1 - float(u.sum()) / max(1, int(d.sum())), 3),
                    }
                )
        # sample codes for the demo: the freshest pack on a shelf, and a 中成药 pack (TCM chain)
        shelf: list[tuple[str, int, int, int]] = []
        for site in sim.retail.tolist():
            for i, p in enumerate(self.w.products):
                fifo = sim.fifo[site][i]
                if fifo.qty and not p.spec.gs1:
                    pack = fifo.spans[-1][1] - 1
                    expiry = sim.packs[i].batch_of(pack).expiry.isoformat()
                    shelf.append((expiry, site, i, pack))
        if shelf:
            _expiry, site, i, pack = max(shelf, key=lambda x: (x[0], -x[1], -x[2]))
            self.samples["genuine"] = {
                "code": sim.pack_uri(i, pack),
                "raw": sim.pack_raw(i, pack),
                **self._product(i),
                "site": self._site(site),
            }
        tcm = [x for x in shelf if self.w.products[x[2]].spec.tcm]
        if tcm:
            _expiry, site, i, pack = tcm[0]
            self.samples["tcm"] = {
                "code": sim.pack_uri(i, pack),
                "raw": sim.pack_raw(i, pack),
                **self._product(i),
                "site": self._site(site),
            }
        self.samples["end"] = self.clock.at(self.w.size.days - 1, 86_399)

    def to_json(self) -> dict[str, Any]:
        """The ground-truth document."""
        supply = []
        for inc in self.plan.supply_incidents:
            entry = {k: v for k, v in inc.items() if k not in ("product", "province")}
            entry.update(self._product(inc["product"]))
            for key in ("day", "end_day", "report_day"):
                if key in inc:
                    entry[key.replace("day", "date")] = self.clock.iso_date(
                        max(inc[key], self.clock.first_day)
                    )
            supply.append(entry)
        by_type = dict(self._counts)
        return {
            "seed": self.w.seed,
            "size": self.w.size.name,
            "start": self.clock.iso_date(0),
            "days": self.w.size.days,
            "timezone": "+08:00",
            "incident_counts": by_type,
            "incidents": self.incidents,
            "supply_incidents": supply,
            "shortage_rule": asdict(self.shortage_rule),
            "stockouts": self.stockouts,
            "recall": self.recall_info,
            "tcm_chains": self.tcm[:20],
            "samples": self.samples,
            "batches": self.batches,
            "returned_packs": self.returned,
            "destroyed_expired_packs": self.destroyed_expired,
        }
