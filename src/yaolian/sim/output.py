"""Where simulated events go: EPCIS JSON-LD files, NMPA data-set CSV files, or the store.

Every sink takes the day's events as they come and writes them in chunks, so memory stays flat
at any size. :func:`simulate` runs a simulation into a sink and writes the ground truth and the
master data beside the events.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine

from yaolian.codes.nmpa import NMPA_CODE
from yaolian.epcis.extensions import SALE_LINE_KEY
from yaolian.epcis.jsonld import write_document
from yaolian.epcis.model import Document, Event, parties
from yaolian.epcis.nmpa_dataset import HEADER_OF
from yaolian.errors import ValidationError
from yaolian.sim.engine import Simulation, Stats
from yaolian.sim.events import CONTEXT
from yaolian.sim.world import World, build_world, size_named
from yaolian.store.ingest import CaptureResult, capture_document
from yaolian.store.masterfile import load_master_data as store_master_data
from yaolian.store.masterfile import parse_master_data

FORMATS = ("jsonld", "nmpa-csv", "store")
DEFAULT_CHUNK = 20_000
Progress = Callable[[int, int, int], None]
"""Called as ``progress(days_done, days_total, events_so_far)``."""


class Sink(Protocol):
    """Receives the simulation's events in order."""

    def write(self, events: list[Event]) -> None:
        """Take some events (a day's)."""

    def close(self) -> None:
        """Flush what is buffered."""


class _Chunked:
    """Buffer events and hand them on in chunks of ``chunk`` events."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.buffer: list[Event] = []
        self.chunks = 0

    def write(self, events: list[Event]) -> None:
        self.buffer.extend(events)
        while len(self.buffer) >= self.chunk:
            head, self.buffer = self.buffer[: self.chunk], self.buffer[self.chunk :]
            self.chunks += 1
            self.flush(head)

    def close(self) -> None:
        if self.buffer:
            self.chunks += 1
            self.flush(self.buffer)
            self.buffer = []

    def flush(self, events: list[Event]) -> None:
        raise NotImplementedError


class JsonldSink(_Chunked):
    """EPCIS 2.0 JSON-LD documents ``events-000001.jsonld`` … of ``chunk`` events each."""

    def __init__(self, out: Path, creation_date: str, chunk: int = DEFAULT_CHUNK) -> None:
        super().__init__(chunk)
        self.out = out
        self.creation_date = creation_date
        self.files: list[Path] = []

    def flush(self, events: list[Event]) -> None:
        path = self.out / f"events-{self.chunks:06d}.jsonld"
        doc = Document(events=events, context=CONTEXT, creation_date=self.creation_date)
        path.write_bytes(write_document(doc))
        self.files.append(path)


class StoreSink(_Chunked):
    """Capture each chunk as one document (one transaction) into a store."""

    def __init__(self, engine: Engine, chunk: int = 5_000) -> None:
        super().__init__(chunk)
        self.engine = engine
        self.accepted = self.duplicates = self.rejected = 0
        self.errors: list[str] = []

    def flush(self, events: list[Event]) -> None:
        result: CaptureResult = capture_document(
            self.engine, Document(events=events, context=CONTEXT), behaviour="proceed"
        )
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += result.rejected
        self.errors.extend(str(p) for p in result.errors[: 20 - len(self.errors)])


class NmpaCsvSink(_Chunked):
    """NMPA trace data-set records (``yaolian.epcis.nmpa_dataset`` columns), one row per event.

    Class-level events (herb lots, transformations) have no trace codes and no row in the data
    set; they are counted in ``skipped``.
    """

    COLUMNS = tuple(HEADER_OF)

    def __init__(self, out: Path, world: World, chunk: int = 100_000) -> None:
        super().__init__(chunk)
        self.out = out
        self.files: list[Path] = []
        self.skipped = 0
        self._site_owner = {
            s.location_id: world.enterprises[s.enterprise].uscc for s in world.sites
        }
        self._party_uscc = {e.party_id: e.uscc for e in world.enterprises}
        self._doc = 0

    def flush(self, events: list[Event]) -> None:
        path = self.out / f"nmpa-{self.chunks:06d}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([HEADER_OF[c] for c in self.COLUMNS])
            for ev in events:
                row = self.row(ev)
                if row is None:
                    self.skipped += 1
                else:
                    writer.writerow([row.get(c, "") for c in self.COLUMNS])
        self.files.append(path)

    def row(self, ev: Event) -> dict[str, Any] | None:
        """The data-set record of one event, or ``None`` when it carries no trace codes."""
        biz = _biz_type(ev)
        if biz is None:
            return None
        site = (ev.get("bizLocation") or ev.get("readPoint") or {}).get("id", "")
        self._doc += 1
        tx = next((t["bizTransaction"] for t in ev.get("bizTransactionList") or ()), None)
        row: dict[str, Any] = {
            "doc_no": tx.rsplit(":", 1)[-1] if tx else f"SIM{self._doc:010d}",
            "biz_type": biz,
            "time": ev["eventTime"],
            "enterprise": self._site_owner.get(site, ""),
            "site": site,
        }
        codes = ev.get("childEPCs") if ev["type"] == "AggregationEvent" else ev.get("epcList")
        row["codes"] = ";".join(_raw(c) for c in codes or ())
        if ev.get("parentID"):
            row["parent"] = _raw(ev["parentID"])
        for kind, ptype, value in parties(ev):
            if ptype == "owning_party":
                mine = self._site_owner.get(site)
                uscc = self._party_uscc.get(value, "")
                if uscc and uscc != mine:
                    row["counterparty"] = uscc
            elif ptype == "location" and value != site:
                row["counterparty_site"] = value
            del kind
        ilmd = ev.get("ilmd") or {}
        row["lot"] = ilmd.get("cbvmda:lotNumber", "")
        row["production_date"] = ilmd.get("cbvmda:productionDate", "")
        row["expiry"] = ilmd.get("cbvmda:itemExpirationDate", "")
        line = ev.get(SALE_LINE_KEY)
        if isinstance(line, dict):
            row["split"] = "1" if line.get("splitSale") else "0"
            row["quantity"] = line.get("quantity", "")
        return row


_DISPOSITION_BIZ = {"returned": "退货", "recalled": "退货"}


def _biz_type(ev: Event) -> str | None:
    """业务类型 of an event in the NMPA data set."""
    if not (ev.get("epcList") or ev.get("childEPCs")):
        return None
    step, disp = ev.get("bizStep"), ev.get("disposition")
    if ev["type"] == "AggregationEvent":
        return "包装关联" if ev.get("action") == "ADD" else "解除关联"
    if step == "commissioning":
        return "生产"
    if step == "shipping":
        return "退货出库" if disp in _DISPOSITION_BIZ else "销售出库"
    if step == "receiving":
        return "退货入库" if disp in _DISPOSITION_BIZ else "采购入库"
    if step == "destroying":
        return "销毁"
    if step == "dispensing":
        return "使用出库"
    if step == "retail_selling":
        return "零售出库"
    return None


def _raw(uri: str) -> str:
    """A trace code as written in data-set files: NMPA codes bare, GS1 keys as EPC URIs."""
    return uri[len(NMPA_CODE) :] if uri.startswith(NMPA_CODE) else uri


# ── master data ──────────────────────────────────────────────────────────────────────────────
def master_data(world: World) -> dict[str, list[dict[str, Any]]]:
    """Enterprises, sites and products of a world as plain records."""
    ents = [
        {"uscc": e.uscc, "name": e.name, "role": e.role, "region": e.region, "party_id": e.party_id}
        for e in world.enterprises
    ]
    sites = [
        {
            "location_id": s.location_id,
            "enterprise_uscc": world.enterprises[s.enterprise].uscc,
            "name": s.name,
            "kind": s.kind,
            "region": s.region,
            "lat": s.lat,
            "lon": s.lon,
        }
        for s in world.sites
    ]
    products: list[dict[str, Any]] = []
    for p in world.products:
        spec = p.spec
        holder = world.enterprises[p.holder].uscc
        common = {
            "generic_name": spec.generic_name,
            "trade_name": spec.trade_name,
            "dosage_form": spec.dosage_form,
            "strength": spec.strength,
            "holder_uscc": holder,
            "manufacturer_uscc": holder,
            "approval_no": p.approval_no,
            "approval_valid_until": "2030-12-31",
            "temp_min": spec.temp_min,
            "temp_max": spec.temp_max,
        }
        products.append(
            {
                **common,
                "product_code": p.product_code,
                "gtin": p.gtin,
                "pack_spec": spec.pack_spec,
                "packaging_level": 1,
                "units_per_pack": spec.units_per_pack,
            }
        )
        products.append(
            {
                **common,
                "product_code": p.case_code,
                "gtin": None,
                "pack_spec": f"{spec.case_size}盒/箱",
                "packaging_level": 2,
                "units_per_pack": spec.units_per_pack,
            }
        )
    base = world.enterprises[world.sites[world.herb_base].enterprise].uscc
    proc = world.enterprises[world.sites[world.herb_processor].enterprise].uscc
    for name, gtin in world.herb_gtins.items():
        piece = name.endswith("饮片")
        holder = proc if piece else base
        products.append(
            {
                "product_code": gtin,
                "gtin": gtin,
                "generic_name": name,
                "dosage_form": "中药饮片" if piece else "中药材",
                "pack_spec": "按千克计",
                "packaging_level": 1,
                "units_per_pack": 1,
                "holder_uscc": holder,
                "manufacturer_uscc": holder,
            }
        )
    return {"enterprises": ents, "sites": sites, "products": products}


def load_master_data(engine: Engine, world: World) -> None:
    """Write the world's enterprises, sites and products into the store (one transaction)."""
    store_master_data(engine, parse_master_data(master_data(world), "simulated world"))


# ── running ──────────────────────────────────────────────────────────────────────────────────
@dataclass
class SimResult:
    """What a run produced: counts, the ground truth and where things were written."""

    world: World
    stats: Stats
    truth: dict[str, Any]
    seconds: float
    files: list[Path]


def simulate(
    size: str,
    seed: int,
    sink: Sink | None = None,
    *,
    progress: Progress | None = None,
    world: World | None = None,
    sim: Simulation | None = None,
) -> tuple[Simulation, SimResult]:
    """Run one simulation into ``sink`` (or nowhere) and return it with its result."""
    import time

    if seed < 0:
        raise ValidationError("seed must be a non-negative integer", place="--seed")
    world = world or build_world(size_named(size), seed)
    sim = sim or Simulation(world)
    started = time.perf_counter()
    total_days = world.size.days + world.size.warmup_days
    for n, (_day, events) in enumerate(sim.run(), start=1):
        if sink is not None:
            sink.write(events)
        if progress is not None:
            progress(n, total_days, sim.stats.events)
    if sink is not None:
        sink.close()
    seconds = time.perf_counter() - started
    files = list(getattr(sink, "files", []))
    return sim, SimResult(world, sim.stats, sim.truth.to_json(), seconds, files)


def write_side_files(out: Path, result: SimResult) -> tuple[Path, Path]:
    """Write ``ground_truth.json`` and ``masterdata.json`` into ``out``."""
    truth = out / "ground_truth.json"
    truth.write_bytes(orjson.dumps(result.truth, option=orjson.OPT_INDENT_2))
    master = out / "masterdata.json"
    master.write_bytes(orjson.dumps(master_data(result.world), option=orjson.OPT_INDENT_2))
    return truth, master
