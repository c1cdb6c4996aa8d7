"""Simulate straight into a store, as the real parties would report: master data first, events
captured in chunks as the days pass, the recall issued on its day, the discontinuation report
(停产报告) filed on its report day."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from yaolian.epcis.model import Event, to_epoch_us
from yaolian.sim.engine import Simulation
from yaolian.sim.output import SimResult, StoreSink, load_master_data, simulate
from yaolian.sim.world import World, build_world, size_named

CaptureProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages ``simulate`` (days) and ``capture``."""


class _ReplaySink(StoreSink):
    """A store sink that also issues the recall and files the discontinuation report on time."""

    def __init__(self, engine: Engine, sim_ref: list[Simulation], chunk: int) -> None:
        super().__init__(engine, chunk)
        self.sim_ref = sim_ref
        self.recall_id: int | None = None
        self.discontinuation_filed = False

    def write(self, events: list[Event]) -> None:
        super().write(events)
        truth = self.sim_ref[0].truth
        if truth.recall_info is not None and self.recall_id is None:
            self.close()  # everything before the recall is in the store first
            self.recall_id = _issue_recall(self.engine, truth.recall_info)
        if not self.discontinuation_filed:
            self._maybe_file_discontinuation()

    def _maybe_file_discontinuation(self) -> None:
        sim = self.sim_ref[0]
        for inc in sim.plan.supply_incidents:
            if inc["type"] != "discontinuation":
                continue
            if sim.day >= inc["report_day"]:
                _file_discontinuation(self.engine, sim, inc)
                self.discontinuation_filed = True


def _issue_recall(engine: Engine, info: dict[str, Any]) -> int:
    from yaolian.trace.recall import create_recall

    return create_recall(
        engine,
        klass=2,
        reason=info["reason"],
        batches=[f"{info['product_code']}:{info['lot']}"],
        now_us=to_epoch_us(info["time"]),
    )


def _file_discontinuation(engine: Engine, sim: Simulation, inc: dict[str, Any]) -> None:
    try:
        from yaolian.supply.signals import file_discontinuation
    except ImportError:  # the supply layer is optional for the simulator
        return
    from yaolian.store.tx import write_tx

    p = sim.w.products[inc["product"]]
    holder = sim.w.enterprises[p.holder]
    with write_tx(engine) as conn:
        file_discontinuation(
            conn,
            product=p.product_code,
            holder=holder.name,
            stop_date=sim.clock.date(inc["day"]),
            reason=inc["reason"],
            remaining_packs=float(sim.stock[p.factory, p.index] + sim.wip[p.index]),
            filed_on=sim.clock.date(inc["report_day"]),
        )


def populate_store(
    engine: Engine,
    size: str,
    seed: int,
    *,
    progress: CaptureProgress | None = None,
    chunk: int = 5_000,
    world: World | None = None,
) -> tuple[Simulation, SimResult, int | None]:
    """Load master data, simulate into ``engine`` and return the run and the recall id."""
    world = world or build_world(size_named(size), seed)
    load_master_data(engine, world)
    holder: list[Simulation] = []
    sink = _ReplaySink(engine, holder, chunk)

    def on_day(done: int, total: int, events: int) -> None:
        if progress is not None:
            progress("simulate", done, total)

    sim = Simulation(world)
    holder.append(sim)
    sim_run, result = simulate(size, seed, sink, progress=on_day, world=world, sim=sim)
    return sim_run, result, sink.recall_id
