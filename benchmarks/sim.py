"""Simulator generation speed: events/s (wall and CPU) and the ratio to a floor in the same run.

    .venv/bin/python benchmarks/sim.py                      # size small (≈ 470k events)
    .venv/bin/python benchmarks/sim.py --size benchmark     # ≥ 10M events (a few minutes)
    .venv/bin/python benchmarks/sim.py --size small --jsonld DIR   # + JSON-LD writing

Both are measured in CPU seconds too (wall time depends on what else the machine runs). The
floor is what no generator of these events can beat in CPython: copying a prototype sale
event and formatting one trace-code URI and one time string per event, for as many events as
the run produced. Target: ≥ 100,000 events/s generated.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

from yaolian.sim.engine import Simulation
from yaolian.sim.events import HMS
from yaolian.sim.output import JsonldSink
from yaolian.sim.world import build_world, size_named


def floor(n: int) -> float:
    """CPU seconds to build ``n`` minimal events (dict copy + code URI + time string), with
    the cyclic GC paused as the simulator pauses it."""
    proto = {
        "type": "ObjectEvent",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": "retail_selling",
        "disposition": "retail_sold",
        "readPoint": {"id": "urn:epc:id:sgln:6900001.00001.0"},
    }
    out = []
    gc.disable()
    started = time.process_time()
    for k in range(n):
        ev = proto.copy()
        ev["eventTime"] = f"2025-10-01T{HMS[k % 86_400]}+08:00"
        ev["epcList"] = [f"urn:nmpa:code:8123456{k:013d}"]
        out.append(ev)
        if len(out) >= 10_000:
            out.clear()
    spent = time.process_time() - started
    gc.enable()
    return spent


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jsonld", type=Path, help="also write JSON-LD files into this folder")
    args = parser.parse_args()
    base_n = 1_000_000
    base_rate = base_n / floor(base_n)  # first, on a small heap, like the simulator's start
    started, cpu0 = time.perf_counter(), time.process_time()
    world = build_world(size_named(args.size), args.seed)
    sim = Simulation(world)
    sink = None
    if args.jsonld:
        args.jsonld.mkdir(parents=True, exist_ok=True)
        sink = JsonldSink(args.jsonld, "2025-10-01T00:00:00Z")
    for _day, events in sim.run():
        if sink is not None:
            sink.write(events)
    if sink is not None:
        sink.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    n = sim.stats.events
    print(
        f"size {args.size}, seed {args.seed}: {n:,} events "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(sim.stats.by_type.items()))})"
    )
    print(
        f"generated{' + written' if sink else ''} in {wall:.1f} s wall, {cpu:.1f} s CPU: "
        f"{n / wall:,.0f} events/s wall, {n / cpu:,.0f} events/CPU-s"
    )
    print(
        f"floor (prototype copy + URI + time per event): {base_rate:,.0f} events/CPU-s; "
        f"simulator / floor = {n / cpu / base_rate:.2f} (CPU time: the machine is shared)"
    )


if __name__ == "__main__":
    main()
