"""Trace & verify benchmark: one batch of 100k packs → 1k cases → 50 pallets, manufacturer →
2 distributors → 200 pharmacies → dispensing.

Prints, with the ratio to a plain indexed SQL lookup measured in the same run:

* forward trace of the batch and recall scope of the batch, median of 5 runs (target < 200 ms);
* verify in-process p50/p99 (target p99 < 2 ms) vs ``SELECT … FROM code_state WHERE code_id=?``;
* HTTP ``GET /verify/{code}``: uvicorn in a subprocess, load from a second process on loopback
  (asyncio + httpx, bounded in count and time) — target ≥ 2,000 req/s, p99 < 20 ms;
* rebuild of the projections: EPC rows/s and the time extrapolated to 10M rows (target < 60 s);
  ``--rebuild-rows N`` first grows the log to about N EPC rows (more batches) and times that.
  Its floor: rewriting the trace projection's own rows as the rebuild writes them (empty the
  tables, drop their indexes, bulk-insert, re-create the indexes, commit) with no event folded.

    .venv/bin/python benchmarks/trace.py [--packs 100000] [--db URL] [--http-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exists, func, select

from yaolian.codes.epc import pgln_uri, sgln_uri, sscc_uri
from yaolian.codes.gs1 import with_check_digit
from yaolian.codes.nmpa import nmpa_code_uri
from yaolian.epcis.gcpause import gc_paused
from yaolian.store.access import Viewer
from yaolian.store.engine import is_sqlite, open_engine, writing
from yaolian.store.ingest import capture_document
from yaolian.store.masterdata import upsert_enterprise, upsert_product, upsert_site, uscc_check_char
from yaolian.store.projections import rebuild
from yaolian.store.schema import code_state, enterprise, event_epc
from yaolian.supply.projection import SupplyLedgerProjector
from yaolian.trace import rawsql
from yaolian.trace.builders import aggregation_event, document, object_event
from yaolian.trace.directory import enterprise_rows
from yaolian.trace.lineage import resolve, trace_forward
from yaolian.trace.projection import (
    AGG_COLUMNS,
    CUSTODY_COLUMNS,
    DISPENSE_COLUMNS,
    SENSOR_COLUMNS,
    bulk_load,
    rebuild_all,
)
from yaolian.trace.recall import create_recall, list_recalls, recall_scope
from yaolian.trace.state import STATE_COLUMNS
from yaolian.verify.dispense import SaleLine
from yaolian.verify.status import verify

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PRODUCT = "8600001"


def _uscc(n: int) -> str:
    body = f"91110000MB{n:07d}"
    return body + uscc_check_char(body)


def setup_master(engine: Engine, pharmacies: int) -> dict[str, Any]:
    """Manufacturer, 2 distributors, N pharmacies (sites with coordinates), the product."""
    rnd = random.Random(7)
    actors: dict[str, Any] = {"dist": [], "pharm": []}
    for n in range(3 + pharmacies):
        role = "manufacturer" if n == 0 else "distributor" if n < 3 else "pharmacy"
        party = pgln_uri(with_check_digit(f"6901235{n:05d}"))
        site = sgln_uri(with_check_digit(f"6901236{n:05d}"))
        upsert_enterprise(engine, _uscc(n), f"{role} {n}", role, party_id=party)
        upsert_site(
            engine,
            site,
            _uscc(n),
            f"{role} {n} site",
            kind=role,
            lat=30 + rnd.random() * 10,
            lon=110 + rnd.random() * 10,
        )
        entry = (party, site)
        if n == 0:
            actors["mfr"] = entry
        else:
            actors["dist" if n < 3 else "pharm"].append(entry)
    upsert_product(
        engine,
        PRODUCT,
        "阿莫西林胶囊",
        units_per_pack=24,
        holder_uscc=_uscc(0),
        manufacturer_uscc=_uscc(0),
    )
    return actors


def batch_events(
    actors: dict[str, Any], packs: int, lot: str, offset: int, sold_share: float
) -> list[list[dict[str, Any]]]:
    """The documents of one batch, in event-time order (each a list of events)."""
    at = lambda h: T0 + timedelta(hours=h)  # noqa: E731
    mfr_party, mfr_site = actors["mfr"]
    codes = [nmpa_code_uri(f"{PRODUCT}{offset + i:013d}") for i in range(packs)]
    n_cases = max(packs // 100, 1)
    n_pallets = max(n_cases // 20, 1)
    cases = [nmpa_code_uri(f"8600002{offset // 100 + i:013d}") for i in range(n_cases)]
    pallets = [
        sscc_uri(with_check_digit(f"0690123{offset // 2000 + i:010d}")) for i in range(n_pallets)
    ]
    docs: list[list[dict[str, Any]]] = []
    docs.append(
        [
            object_event(
                codes[i : i + 1000],
                at(0),
                "commissioning",
                "active",
                action="ADD",
                site=mfr_site,
                lot=lot,
                expiry="2028-02-28",
            )
            for i in range(0, packs, 1000)
        ]
    )
    docs.append(
        [
            aggregation_event(c, codes[i * 100 : (i + 1) * 100], at(1), site=mfr_site)
            for i, c in enumerate(cases)
        ]
    )
    docs.append(
        [
            aggregation_event(p, cases[i * 20 : (i + 1) * 20], at(2), site=mfr_site)
            for i, p in enumerate(pallets)
        ]
    )
    ship, recv, unpack, ship2, recv2 = [], [], [], [], []
    pharm = actors["pharm"]
    for i, p in enumerate(pallets):
        d_party, d_site = actors["dist"][i % 2]
        ship.append(
            object_event(
                [p], at(3), "shipping", "in_transit", source=mfr_party, destination=d_party
            )
        )
        recv.append(
            object_event([p], at(24), "receiving", "active", site=d_site, destination=d_party)
        )
        unpack.append(aggregation_event(p, [], at(25), action="DELETE", site=d_site))
    for i, c in enumerate(cases):
        d_party, d_site = actors["dist"][(i // 20) % 2]
        ph_party, ph_site = pharm[i % len(pharm)]
        ship2.append(
            object_event(
                [c], at(30), "shipping", "in_transit", source=d_party, destination=ph_party
            )
        )
        recv2.append(
            object_event([c], at(48), "receiving", "active", site=ph_site, destination=ph_party)
        )
    docs += [ship, recv, unpack, ship2, recv2]
    sales = []
    for i, c in enumerate(codes[: int(packs * sold_share)]):
        _, ph_site = pharm[(i // 100) % len(pharm)]
        sales.append(
            SaleLine(
                (c,), False, 1, ph_site, at(72 + (i % 500) / 10), lot, f"SETL{offset + i}"
            ).event()
        )
    for i in range(0, len(sales), 5000):
        docs.append(sales[i : i + 5000])
    return docs


def capture_all(engine: Engine, docs: list[list[dict[str, Any]]]) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    for events in docs:
        result = capture_document(engine, document(events))
        if not result.success:
            raise SystemExit(f"capture failed: {result.errors[:3]}")
        n += result.accepted
    return n, time.perf_counter() - t


REPEAT = 5


def median_ms(run: Any) -> float:
    """Median wall time of ``REPEAT`` calls of ``run``, in ms."""
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_recall_list(engine: Engine, pharmacies: int) -> dict[str, float]:
    """``list_recalls`` for an enterprise with a part in the batch's recall (a pharmacy it
    reached) and one with none (registered, no events); the baseline probes the batch's own
    rows in each projection for the latter (its hand-overs, states and sales), as the recall
    list did before ``batch_party``."""
    outsider = upsert_enterprise(engine, _uscc(pharmacies + 3), "no part", "pharmacy")
    upsert_site(engine, sgln_uri(with_check_digit("690123799999")), _uscc(pharmacies + 3), "x")
    with engine.connect() as conn:
        insider = conn.execute(select(enterprise.c.id).where(enterprise.c.uscc == _uscc(3))).one()[
            0
        ]

        def probe() -> bool:
            return any(
                conn.execute(
                    select(exists().where(table.c.product == PRODUCT, table.c.lot == "B0001", mine))
                ).scalar()
                for table, mine in enterprise_rows(outsider)
            )

        assert not probe()
        base_ms = median_ms(probe)
    views = {
        name: Viewer(enterprise_id=ent, role="enterprise")
        for name, ent in (("insider", insider), ("outsider", outsider))
    }
    listed = list_recalls(engine, views["insider"])
    assert listed and not list_recalls(engine, views["outsider"])
    return {
        "recalls": len(listed),
        "base": base_ms,
        **{name: median_ms(lambda v=v: list_recalls(engine, v)) for name, v in views.items()},
    }


def bench_verify(engine: Engine, codes: list[str], ids: list[int]) -> dict[str, float]:
    times, base = [], []
    with engine.connect() as conn:
        for code in codes[:50]:
            verify(conn, code)  # warm caches
        for code in codes:
            t = time.perf_counter()
            verify(conn, code)
            times.append((time.perf_counter() - t) * 1000)
        raw: Any = conn.connection.dbapi_connection
        sql = (
            "SELECT * FROM code_state WHERE code_id = ?"
            if is_sqlite(conn)
            else "SELECT * FROM code_state WHERE code_id = %s"
        )
        cur = raw.cursor()
        for cid in ids:
            t = time.perf_counter()
            cur.execute(sql, (cid,))
            cur.fetchall()
            base.append((time.perf_counter() - t) * 1000)
    return {
        "p50": statistics.median(times),
        "p99": pct(times, 0.99),
        "base_p50": statistics.median(base),
        "base_p99": pct(base, 0.99),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; returns the status code."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


def _load(
    port: int, codes: list[str], seconds: float, limit: int, concurrency: int, out: Any
) -> None:
    """The load generator (a separate process): ``concurrency`` keep-alive connections send
    GET /verify/{code} until ``limit`` requests or ``seconds`` have passed. A minimal client
    (asyncio streams) so the generator costs less CPU than the server it measures."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> tuple[int, int, list[float], float]:
        latencies: list[float] = []
        errors = 0
        sent = 0
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal errors, sent
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            i = k
            try:
                while time.perf_counter() < deadline and sent < limit:
                    sent += 1
                    t = time.perf_counter()
                    status = await _get(
                        reader, writer, "127.0.0.1", f"/verify/{codes[i % len(codes)]}"
                    )
                    latencies.append((time.perf_counter() - t) * 1000)
                    errors += status != 200
                    i += concurrency
            finally:
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return len(latencies), errors, latencies, time.perf_counter() - start

    n, errors, latencies, elapsed = asyncio.run(main())
    out.put(
        (
            n,
            errors,
            pct(latencies, 0.5) if latencies else 0.0,
            pct(latencies, 0.99) if latencies else 0.0,
            elapsed,
        )
    )


def bench_http(
    url_db: str, codes: list[str], seconds: float, workers: int, concurrency: int
) -> dict[str, float]:
    port = _free_port()
    env = {**os.environ, "YAOLIAN_DATABASE_URL": url_db}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "yaolian.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    try:
        import httpx

        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/verify/{codes[0]}", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        warm = ctx.Process(target=_load, args=(port, codes, 1.0, 2000, concurrency, queue))
        warm.start()
        queue.get()
        warm.join()
        proc = ctx.Process(target=_load, args=(port, codes, seconds, 200_000, concurrency, queue))
        proc.start()
        n, errors, p50, p99, elapsed = queue.get()
        proc.join()
    finally:
        server.terminate()
        server.wait(10)
    return {"requests": n, "errors": errors, "rps": n / elapsed, "p50": p50, "p99": p99}


def write_floor(engine: Engine) -> tuple[float, int]:
    """Seconds to rewrite the trace projection's current rows the way ``rebuild_all`` writes
    them, and how many rows: what any rebuild producing these rows costs before it folds a
    single event (alerts left out: the benchmark's chain raises none)."""
    tables = (
        ("code_state", STATE_COLUMNS),
        ("aggregation", AGG_COLUMNS),
        ("custody", CUSTODY_COLUMNS),
        ("dispense", DISPENSE_COLUMNS),
        ("code_sensor", SENSOR_COLUMNS),
        ("batch_party", ("product", "lot", "party")),
    )
    with engine.connect() as conn:
        saved = [
            (name, columns, rawsql.fetch(conn, f"SELECT {', '.join(columns)} FROM {name}"))
            for name, columns in tables
        ]
    t = time.perf_counter()
    with writing(engine) as conn, bulk_load(conn):
        for name, columns, rows in saved:
            rawsql.insert_alike(conn, name, columns, rows)
    return time.perf_counter() - t, sum(len(rows) for _, _, rows in saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", type=int, default=100_000)
    ap.add_argument("--pharmacies", type=int, default=200)
    ap.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    ap.add_argument("--verify-samples", type=int, default=5000)
    ap.add_argument("--http-seconds", type=float, default=10.0)
    ap.add_argument("--http-workers", type=int, default=2)
    ap.add_argument("--http-concurrency", type=int, default=16)
    ap.add_argument("--reuse", help="skip building: run the measurements on this SQLite file")
    ap.add_argument(
        "--rebuild-rows",
        type=int,
        default=0,
        help="grow the log to about this many EPC rows before timing rebuild",
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="yaolian-bench-")
    url = (
        f"sqlite:///{Path(args.reuse).resolve()}"
        if args.reuse
        else args.db or f"sqlite:///{Path(tmp) / 'trace.db'}"
    )
    engine = open_engine(url)
    actors = setup_master(engine, args.pharmacies)
    if not args.reuse:
        docs = batch_events(actors, args.packs, "B0001", 0, 0.2)
        n_events, secs = capture_all(engine, docs)
        print(
            f"captured {n_events:,} events in {secs:.1f} s ({n_events / secs:,.0f} events/s,"
            f" all projectors) into {url.split(':', 1)[0]}"
        )
    packs = [nmpa_code_uri(f"{PRODUCT}{i:013d}") for i in range(args.packs)]

    # forward trace / recall scope of the batch (median of REPEAT runs after a warm-up)
    with engine.connect() as conn:
        target = resolve(conn, PRODUCT, "B0001")
        graph = trace_forward(conn, target)
        fwd_ms = median_ms(lambda: trace_forward(conn, target))
        query = (
            select(code_state.c.custodian, func.count())
            .where(code_state.c.product == PRODUCT, code_state.c.lot == "B0001")
            .group_by(code_state.c.custodian)
        )
        base_rows = conn.execute(query).all()
        base_ms = median_ms(lambda: conn.execute(query).all())
    rid = create_recall(engine, klass=2, reason="benchmark", batches=[f"{PRODUCT}/B0001"])
    scope = recall_scope(engine, rid)
    scope_ms = median_ms(lambda: recall_scope(engine, rid))
    print(
        f"forward trace of the batch ({graph.summary['codes']:,} codes, "
        f"{len(graph.summary['holders'])} holders): {fwd_ms:.0f} ms (target < 200); "
        f"plain GROUP BY over the batch index: {base_ms:.0f} ms "
        f"(ratio {fwd_ms / max(base_ms, 1e-6):.1f}x, {len(base_rows)} groups)"
    )
    print(
        f"recall scope of the batch ({scope['total']:,} codes, {len(scope['holders'])} holders):"
        f" {scope_ms:.0f} ms (target < 200; ratio {scope_ms / max(base_ms, 1e-6):.1f}x)"
    )

    lists = bench_recall_list(engine, args.pharmacies)
    probes_ms = lists["base"] * lists["recalls"]
    print(
        f"recalls listed for an enterprise ({lists['recalls']:.0f} recalls of the batch): with a "
        f"part {lists['insider']:.1f} ms, with none {lists['outsider']:.1f} ms; probing the "
        f"batch's rows per projection instead (before batch_party): {lists['base']:.1f} ms a "
        f"recall (ratio {probes_ms / lists['outsider']:.0f}x)"
    )

    # verify in process
    rnd = random.Random(1)
    sample = [rnd.choice(packs) for _ in range(args.verify_samples)]
    with engine.connect() as conn:
        id_rows = conn.execute(select(code_state.c.code_id).limit(args.verify_samples)).all()
    v = bench_verify(engine, sample, [r[0] for r in id_rows])
    print(
        f"verify in-process: p50 {v['p50']:.3f} ms, p99 {v['p99']:.3f} ms (target < 2); "
        f"plain indexed lookup p50 {v['base_p50']:.3f} ms, p99 {v['base_p99']:.3f} ms "
        f"(ratio p50 {v['p50'] / v['base_p50']:.0f}x)"
    )

    # HTTP
    if args.http_seconds > 0:
        h = bench_http(
            url,
            [c.removeprefix("urn:nmpa:code:") for c in sample],
            args.http_seconds,
            args.http_workers,
            args.http_concurrency,
        )
        print(
            f"HTTP GET /verify: {h['rps']:,.0f} req/s over {h['requests']:,} requests "
            f"({h['errors']} errors), p50 {h['p50']:.1f} ms, p99 {h['p99']:.1f} ms "
            f"(targets ≥ 2,000 req/s, p99 < 20 ms; {args.http_workers} uvicorn workers, "
            f"{args.http_concurrency} connections)"
        )

    # rebuild
    offset = args.packs
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(event_epc)).scalar_one()
    batch_no = 2
    while rows < args.rebuild_rows:
        more = batch_events(actors, args.packs, f"B{batch_no:04d}", offset, 0.2)
        capture_all(engine, more)
        offset += args.packs
        batch_no += 1
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(event_epc)).scalar_one()
    alone = {}
    for name, run in (("trace", rebuild_all), ("supply ledger", SupplyLedgerProjector().rebuild)):
        t = time.perf_counter()
        with gc_paused(), writing(engine) as conn:  # as rebuild() runs them
            run(conn)
        alone[name] = time.perf_counter() - t
    t = time.perf_counter()
    replayed = rebuild(engine)
    rb = time.perf_counter() - t
    print(
        f"rebuild: {replayed:,} events, {rows:,} EPC rows in {rb:.1f} s, all projectors "
        f"({rows / rb:,.0f} EPC rows/s; 10M rows ≈ {1e7 / (rows / rb):.0f} s, target < 60); "
        + "; ".join(
            f"{name} alone (set-based) {secs:.1f} s ({rows / secs:,.0f} EPC rows/s; 10M rows ≈ "
            f"{1e7 / (rows / secs):.0f} s)"
            for name, secs in alone.items()
        )
    )
    floor, written = write_floor(engine)
    print(
        f"  floor: rewriting the trace projection's {written:,} rows (bulk insert, indexes "
        f"re-created) takes {floor:.1f} s (10M EPC rows ≈ {1e7 / rows * floor:.0f} s); trace "
        f"rebuild / floor {alone['trace'] / floor:.1f}x"
    )
    if is_sqlite(engine) and not args.db:
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as raw:
            t = time.perf_counter()
            raw.execute("SELECT code_id, event_id, role FROM event_epc").fetchall()
            scan = time.perf_counter() - t
        print(
            f"  baseline: a bare scan of event_epc takes {scan:.2f} s "
            f"(rebuild/scan ratio {rb / scan:.0f}x)"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
