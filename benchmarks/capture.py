"""Capture throughput into SQLite and PostgreSQL, and MATCH_anyEPC latency on a big store.

    .venv/bin/python benchmarks/capture.py                   # 100k ObjectEvents × 10 EPCs
    .venv/bin/python benchmarks/capture.py --events 20000    # smaller, while developing
    .venv/bin/python benchmarks/capture.py --big             # + 10M EPC rows, MATCH_anyEPC p99

The document holds N ObjectEvents (commissioning, 10 SGTINs each, lot ILMD) plus N/10
AggregationEvents (packing 10 packs into an SSCC case), as EPCIS 2.0 JSON-LD bytes. End to end =
parse + validate + hash + intern + insert + projections, one transaction. The floor, measured in
the same run, is what no capture can beat: ``orjson.loads`` of the same bytes plus a plain
``sqlite3.executemany`` of the same event and EPC rows into bare tables.

PostgreSQL runs on a fresh database created on ``$YAOLIAN_TEST_PG_URL``'s server (default
``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards; skipped if the server
does not answer. Targets: ≥ 50,000 events/s into SQLite, ≥ 30,000 into PostgreSQL,
MATCH_anyEPC p99 < 5 ms with 10M EPC rows.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, make_url

from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.epc import sgln_uri, sgtin_uri, sscc_uri
from yaolian.epcis.jsonld import read_document
from yaolian.epcis.model import iter_epcs
from yaolian.epcis.validate import validate_event
from yaolian.store import projections
from yaolian.store.access import Viewer
from yaolian.store.engine import is_sqlite, open_engine, writing
from yaolian.store.ingest import capture_document
from yaolian.store.query import query_events

GTINS = [b + gs1_check_digit(b) for b in ("0690123456789", "0690123456790", "0690123456791")]
START = datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
FACTORY = sgln_uri("690123400002" + gs1_check_digit("690123400002"))


def make_document(n_events: int, epcs_per_event: int) -> bytes:
    """EPCIS 2.0 JSON-LD: n ObjectEvents × epcs_per_event SGTINs + n/10 AggregationEvents."""
    events: list[dict[str, object]] = []
    serial = 0
    firsts: list[str] = []
    for i in range(n_events):
        gtin = GTINS[i % len(GTINS)]
        epcs = [sgtin_uri(gtin, str(serial + k), 7) for k in range(epcs_per_event)]
        serial += epcs_per_event
        firsts.append(epcs[0])
        events.append(
            {
                "type": "ObjectEvent",
                "eventTime": (START + timedelta(milliseconds=100 * i)).isoformat(
                    timespec="milliseconds"
                ),
                "eventTimeZoneOffset": "+08:00",
                "epcList": epcs,
                "action": "ADD",
                "bizStep": "commissioning",
                "disposition": "active",
                "readPoint": {"id": FACTORY},
                "bizLocation": {"id": FACTORY},
                "ilmd": {
                    "cbvmda:lotNumber": f"L{i // 1000:04d}",
                    "cbvmda:itemExpirationDate": "2028-02-29",
                },
            }
        )
        if len(firsts) == 10:
            case = f"0690123{len(events):010d}"
            events.append(
                {
                    "type": "AggregationEvent",
                    "eventTime": "2026-03-01T20:00:00+08:00",
                    "eventTimeZoneOffset": "+08:00",
                    "parentID": sscc_uri(case + gs1_check_digit(case), 7),
                    "childEPCs": firsts,
                    "action": "ADD",
                    "bizStep": "packing",
                    "readPoint": {"id": FACTORY},
                }
            )
            firsts = []
    return orjson.dumps(
        {
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-03-01T00:00:00Z",
            "epcisBody": {"eventList": events},
        }
    )


def floor_seconds(data: bytes, workdir: Path) -> float:
    """orjson parse + plain sqlite3 executemany of the same event and EPC rows (bare tables)."""
    path = workdir / "floor.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE event (id INTEGER PRIMARY KEY, time TEXT, payload BLOB)")
    db.execute("CREATE TABLE event_epc (epc TEXT, event_id INTEGER, role INTEGER)")
    start = time.perf_counter()
    events = orjson.loads(data)["epcisBody"]["eventList"]
    rows = [(i, ev["eventTime"], orjson.dumps(ev)) for i, ev in enumerate(events, 1)]
    epcs = [
        (epc, i, 1)
        for i, ev in enumerate(events, 1)
        for epc in ev.get("epcList") or ev.get("childEPCs") or ()
    ]
    db.execute("BEGIN")
    db.executemany("INSERT INTO event VALUES (?, ?, ?)", rows)
    db.executemany("INSERT INTO event_epc VALUES (?, ?, ?)", epcs)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh database on the PostgreSQL test server, dropped afterwards (None: no server)."""
    server = os.environ.get("YAOLIAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    admin_url = make_url(server).set(drivername="postgresql", database="postgres")
    try:
        admin = psycopg.connect(
            admin_url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
    except psycopg.Error as exc:
        print(f"postgres: skipped ({exc})")
        yield None
        return
    name = f"yaolian_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield (
                make_url(server)
                .set(drivername="postgresql", database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_capture(label: str, engine: Engine, data: bytes, floor: float) -> None:
    """Parse + capture ``data`` once; print rates, the ratio to the floor and where time went
    (prepare = validate + hash + code keys; store = dictionary + bulk inserts + projectors)."""
    stage_end: dict[str, float] = {}
    projector_time: dict[str, float] = {}
    for projector in projections.projectors():
        apply = projector.apply

        def timed(conn: Any, events: Any, apply: Any = apply, name: str = projector.name) -> None:
            t0 = time.perf_counter()
            apply(conn, events)
            projector_time[name] = projector_time.get(name, 0.0) + time.perf_counter() - t0

        projector.apply = timed  # type: ignore[method-assign]
    stage_time = {"validate": 0.0, "store": 0.0}
    last = [0.0]

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        stage_time[stage] += now - last[0]
        last[0] = now
        stage_end[stage] = now

    start = time.perf_counter()
    doc = read_document(data)
    parsed = last[0] = time.perf_counter()
    result = capture_document(engine, doc, progress=progress)
    done = time.perf_counter()
    for projector in projections.projectors():
        vars(projector).pop("apply", None)
    total = done - start
    n_events = len(doc.events)
    n_epcs = sum(len(list(iter_epcs(ev))) for ev in doc.events)
    assert result.accepted == n_events, result.errors[:5]
    print(
        f"{label:>9}: {n_events / total:>9,.0f} events/s  {n_epcs / total:>11,.0f} EPC rows/s  "
        f"({total:.2f} s)  {total / floor:.1f}× the floor"
    )
    in_projectors = sum(projector_time.values())
    print(
        f"{'':>9}  parse {parsed - start:.2f} s · prepare {stage_time['validate']:.2f} s · "
        f"store {stage_time['store'] - in_projectors:.2f} s · commit "
        f"{done - max(stage_end.values()):.2f} s · projectors {in_projectors:.2f} s ("
        + ", ".join(f"{k} {v:.2f} s" for k, v in projector_time.items())
        + ")"
    )
    without = total - in_projectors
    print(
        f"{'':>9}  without projectors: {n_events / without:,.0f} events/s, "
        f"{without / floor:.1f}× the floor"
    )


def load_big(engine: Engine, n_epc_rows: int) -> None:
    """Fill the store with ``n_epc_rows`` EPC rows (10 per event) by set-based SQL."""
    n_events = n_epc_rows // 10
    sqlite = is_sqlite(engine)
    start = time.perf_counter()
    with writing(engine) as conn:
        if sqlite:
            conn.exec_driver_sql(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
                "INSERT INTO code(id, key) SELECT i, printf('01/06901234567892/21/B%d', i) FROM s",
                (n_epc_rows,),
            )
            conn.exec_driver_sql(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
                "INSERT INTO event(id, hash, type, action, event_time_us, tz_offset, "
                "record_time_us, error_declared, payload) "
                "SELECT i, 'bulk' || i, 1, 1, 1772323200000000 + i * 1000, '+08:00', "
                "1772323200000000 + i * 1000, 0, "
                'CAST(\'{"type":"ObjectEvent","eventTime":"2026-03-01T00:00:00Z"}\' AS BLOB) '
                "FROM s",
                (n_events,),
            )
            conn.exec_driver_sql(
                "INSERT INTO event_epc(code_id, event_id, role) "
                "SELECT id, (id - 1) / 10 + 1, 1 FROM code WHERE key LIKE '01/06901234567892/21/B%'"
            )
        else:
            conn.exec_driver_sql(
                "INSERT INTO code(id, key) SELECT i, '01/06901234567892/21/B' || i "
                "FROM generate_series(1, %s) i",
                (n_epc_rows,),
            )
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('code', 'id'), %s)", (n_epc_rows,)
            )
            conn.exec_driver_sql(
                "INSERT INTO event(id, hash, type, action, event_time_us, tz_offset, "
                "record_time_us, error_declared, payload) "
                "SELECT i, 'bulk' || i, 1, 1, 1772323200000000 + i * 1000, '+08:00', "
                "1772323200000000 + i * 1000, false, "
                'convert_to(\'{"type":"ObjectEvent","eventTime":"2026-03-01T00:00:00Z"}\', '
                "'UTF8') FROM generate_series(1, %s) i",
                (n_events,),
            )
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('event', 'id'), %s)", (n_events,)
            )
            conn.exec_driver_sql(
                "INSERT INTO event_epc(code_id, event_id, role) "
                "SELECT i, (i - 1) / 10 + 1, 1 FROM generate_series(1, %s) i",
                (n_epc_rows,),
            )
    if not sqlite:
        with engine.connect() as conn:
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql("ANALYZE")
    print(
        f"   loaded {n_epc_rows:,} EPC rows / {n_events:,} events in "
        f"{time.perf_counter() - start:.0f} s"
    )


def _percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    at = [ordered[int(len(ordered) * q)] * 1000 for q in (0.5, 0.95, 0.99)]
    return f"p50 {at[0]:.2f} ms  p95 {at[1]:.2f} ms  p99 {at[2]:.2f} ms"


def match_any_epc_latency(label: str, engine: Engine, n_codes: int, samples: int = 2000) -> None:
    """Percentiles of a full ``query_events(MATCH_anyEPC=…)`` call for random stored codes.

    Wall-clock time includes waiting for a CPU on a busy machine; the in-process CPU time shows
    the query's own cost (all of it on SQLite; only the client's part on PostgreSQL).
    """
    rng = random.Random(7)
    viewer = Viewer(None, "regulator")
    wall: list[float] = []
    cpu: list[float] = []
    with engine.connect() as conn:
        for _ in range(samples):
            code = f"https://id.gs1.org/01/06901234567892/21/B{rng.randint(1, n_codes)}"
            start, start_cpu = time.perf_counter(), time.thread_time()
            page = query_events(conn, {"MATCH_anyEPC": [code]}, viewer=viewer)
            wall.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            assert len(page.events) == 1
            conn.rollback()
    print(
        f"{label:>9}: MATCH_anyEPC wall {_percentiles(wall)}  ({samples} queries, machine load "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"{'':>9}  in-process CPU {_percentiles(cpu)}")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="ObjectEvents (default 100k)")
    parser.add_argument("--epcs", type=int, default=10, help="EPCs per ObjectEvent")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--big", action="store_true", help="also: 10M EPC rows, MATCH_anyEPC p99")
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    args = parser.parse_args()

    data = make_document(args.events, args.epcs)
    for event in read_document(make_document(1, 1)).events:  # compile the schema validator once
        validate_event(event, "")
    print(
        f"document: {args.events:,} ObjectEvents × {args.epcs} EPCs + {args.events // 10:,} "
        f"AggregationEvents, {len(data) / 1e6:.0f} MB JSON"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        floor = floor_seconds(data, workdir)
        n_total = args.events + args.events // 10
        print(
            f"    floor: {n_total / floor:>9,.0f} events/s  (orjson + sqlite3 executemany, "
            f"{floor:.2f} s)"
        )
        if args.backend in ("sqlite", "both"):
            engine = open_engine(f"sqlite:///{workdir / 'bench.db'}")
            run_capture("sqlite", engine, data, floor)
            engine.dispose()
            if args.big:
                big = open_engine(f"sqlite:///{workdir / 'big.db'}")
                load_big(big, args.big_rows)
                match_any_epc_latency("sqlite", big, args.big_rows)
                big.dispose()
        if args.backend in ("postgres", "both"):
            with postgres_database() as url:
                if url:
                    engine = open_engine(url)
                    run_capture("postgres", engine, data, floor)
                    engine.dispose()
            if args.big:
                with postgres_database() as url:
                    if url:
                        big = open_engine(url)
                        load_big(big, args.big_rows)
                        match_any_epc_latency("postgres", big, args.big_rows)
                        big.dispose()


if __name__ == "__main__":
    main()
