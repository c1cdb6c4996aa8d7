"""CLI: ``yaolian sim`` (simulate a supply chain), ``yaolian demo`` (the guided tour on a fresh
SQLite store) and ``yaolian eval`` (detection quality against ground truth).

Interfaces only: the work is in :mod:`yaolian.sim` and the layers it calls. The demo ends with
the codes walkthrough (issue codes for a product, render one, read it back, validate good and
bad codes, one pack under its many names).
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine, func, select

from yaolian.cli.common import DbOption, console, console_err, print_table
from yaolian.errors import ValidationError
from yaolian.store.engine import open_engine

DEMO_PRODUCT = "8600001"  # bundled sample product (阿莫西林胶囊, pack level)
DEMO_GTIN = "06901234567892"  # bundled sample product with a GTIN (GS1 trace codes)


SizeOption = Annotated[
    str, typer.Option("--size", help="World size: tiny, demo, small or benchmark (≥ 10M events).")
]
SeedOption = Annotated[
    int, typer.Option("--seed", min=0, help="Random seed (same seed → same data).")
]


def register(app: typer.Typer) -> None:
    """Add the ``sim``, ``demo`` and ``eval`` commands to the root app."""

    @app.command("sim")
    def sim_cmd(
        size: SizeOption = "demo",
        seed: SeedOption = 1,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Folder for event files, ground_truth.json and "
                "masterdata.json (required unless --format store).",
            ),
        ] = None,
        fmt: Annotated[
            str,
            typer.Option(
                "--format",
                help="jsonld (EPCIS 2.0 files), nmpa-csv (NMPA "
                "data-set CSV) or store (capture into --db).",
            ),
        ] = "jsonld",
        chunk: Annotated[
            int, typer.Option("--chunk", min=100, help="Events per file or capture document.")
        ] = 20_000,
        db: DbOption = None,
    ) -> None:
        """Simulate a drug supply chain with injected incidents and write it out."""
        from yaolian.sim.output import (
            FORMATS,
            JsonldSink,
            NmpaCsvSink,
            Sink,
            simulate,
            write_side_files,
        )
        from yaolian.sim.pipeline import populate_store
        from yaolian.sim.world import build_world, size_named

        if fmt not in FORMATS:
            raise ValidationError(
                f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", place="--format"
            )
        world = build_world(size_named(size), seed)
        if fmt != "store" and out is None:
            raise ValidationError("give --out FOLDER for file output", place="--out")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        total = world.size.days + world.size.warmup_days
        with _progress() as progress:
            task = progress.add_task(f"simulating {size} (seed {seed})", total=total)
            if fmt == "store":
                engine = open_engine(db)
                _sim, result, _recall = populate_store(
                    engine,
                    size,
                    seed,
                    world=world,
                    chunk=min(chunk, 20_000),
                    progress=lambda _s, done, _t: progress.update(task, completed=done),
                )
            else:
                assert out is not None
                sink: Sink = (
                    JsonldSink(out, f"{world.size.start.isoformat()}T00:00:00Z", chunk)
                    if fmt == "jsonld"
                    else NmpaCsvSink(out, world, chunk)
                )
                _sim, result = simulate(
                    size,
                    seed,
                    sink,
                    world=world,
                    progress=lambda done, _t, n: progress.update(
                        task, completed=done, description=f"simulating {size}: {n:,} events"
                    ),
                )
        if out is not None:
            truth, master = write_side_files(out, result)
            console.print(f"ground truth: {truth}\nmaster data: {master}")
        rate = result.stats.events / result.seconds if result.seconds else 0.0
        print_table(
            f"simulated {size}, seed {seed}",
            ["events", "by type", "sale lines (拆零)", "files", "seconds", "events/s"],
            [
                (
                    f"{result.stats.events:,}",
                    ", ".join(f"{k} {v:,}" for k, v in sorted(result.stats.by_type.items())),
                    f"{result.stats.sale_lines:,} ({result.stats.split_lines:,})",
                    len(result.files),
                    f"{result.seconds:.1f}",
                    f"{rate:,.0f}",
                )
            ],
        )

    @app.command("demo")
    def demo(
        folder: Annotated[
            Path | None,
            typer.Option(
                "--dir",
                help="Folder for the demo database and files (default: a fresh temporary folder).",
            ),
        ] = None,
        seed: SeedOption = 1,
        size: SizeOption = "demo",
        codes: Annotated[bool, typer.Option(help="Also walk through the codes layer.")] = True,
    ) -> None:
        """Simulate a supply chain into a fresh SQLite store and walk through what yaolian
        finds: trace, verification, alerts against ground truth, a recall, shortages."""
        target = folder or Path(tempfile.mkdtemp(prefix="yaolian-demo-"))
        run_demo(target, seed, size, codes)

    @app.command("eval")
    def eval_cmd(
        seeds: Annotated[str, typer.Option("--seeds", help="Seeds: 1,2,3 or 1-5.")] = "1,2,3",
        size: SizeOption = "demo",  # tiny runs end before any supply incident causes a shortage
        out: Annotated[
            Path | None, typer.Option("--out", help="Write the metrics as JSON here.")
        ] = None,
        workdir: Annotated[
            Path | None, typer.Option("--workdir", help="Keep the per-seed databases here.")
        ] = None,
    ) -> None:
        """Score yaolian's alerts and shortage warnings against the simulator's ground truth."""
        from yaolian.sim.evaluate import parse_seeds, run_eval
        from yaolian.sim.world import size_named

        chosen = parse_seeds(seeds)
        size_named(size)
        with _progress() as progress:
            task = progress.add_task("eval", total=None)

            def step(seed: int, stage: str, done: int, total: int) -> None:
                progress.update(
                    task, description=f"seed {seed}: {stage}", completed=done, total=total
                )

            report = run_eval(chosen, size, workdir, step)
        _print_scores(
            f"yaolian eval — size {size}, seeds {', '.join(map(str, chosen))}", report["pooled"]
        )
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
            console.print(f"metrics written to {out}")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
    )


SHORT_LABEL = {
    "cold_chain_excursion": "cold chain",
    "recalled_sale": "recalled sale",
    "shortage": "shortage (risk)",
    "shortage_naive": "shortage (naive)",
}


def _print_scores(title: str, scores: list[dict[str, Any]]) -> None:
    """Precision, recall and delay per incident type, in 80 columns (the rule behind each
    type and the worst delay are in the JSON)."""

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    def delay(sc: dict[str, Any]) -> str:
        if sc["delay_median"] is None:
            return "—"
        unit = "d" if sc["delay_unit"].startswith("days") else "h"
        return f"{sc['delay_median']:g} {unit}"

    print_table(
        title,
        ["incident", "n", "found", "alerts", "prec.", "any", "recall", "delay"],
        [
            (
                SHORT_LABEL.get(sc["type"], sc["type"]),
                sc["incidents"],
                sc["detected"],
                sc["alerts"],
                pct(sc["precision"]),
                pct(sc["precision_any"]),
                pct(sc["recall"]),
                delay(sc),
            )
            for sc in scores
        ],
    )
    console.print(
        "[dim]prec. = alerts of the type's rule naming its codes; any = naming any injected "
        "code; delay = median hours after the incident, or days of warning before a "
        "shortage[/]"
    )


def run_demo(folder: Path, seed: int, size: str, codes: bool = True) -> None:
    """The guided demo (see :func:`register`): simulate, capture, then report."""
    from yaolian.sim.output import write_side_files
    from yaolian.sim.pipeline import populate_store
    from yaolian.sim.world import build_world, size_named

    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "yaolian-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    world = build_world(size_named(size), seed)
    console.print(
        Panel(
            f"[bold]药链 yaolian demo[/] — a simulated drug supply chain, seed {seed}\n"
            f"{len(world.enterprises)} enterprises, {len(world.sites)} sites in "
            f"{world.size.provinces} provinces, {len(world.products)} products (cold chain, TCM, "
            f"flu season), {world.size.days} days from {world.size.start} after a "
            f"{world.size.warmup_days}-day warm-up.\nIncidents are injected (counterfeit, clone, "
            "回流药, diversion, cold-chain excursion, recall, raw-material shock, discontinuation, "
            f"demand spike) and written to a ground-truth file.\nDatabase: {db_path}",
            title="1 · the world",
        )
    )
    engine = open_engine(str(db_path))
    with _progress() as progress:
        task = progress.add_task(
            "simulate → capture → projections",
            total=world.size.days + world.size.warmup_days,
        )
        sim, result, recall_id = populate_store(
            engine,
            size,
            seed,
            world=world,
            progress=lambda _s, done, _t: progress.update(task, completed=done),
        )
    truth_path, _master = write_side_files(folder, result)
    truth = result.truth
    console.print(
        f"captured {result.stats.events:,} events in "
        f"{time.perf_counter() - started:.0f} s · ground truth: {truth_path}"
    )
    _section_counts(engine)
    _section_trace(engine, truth)
    _section_verify(engine, truth)
    _section_alerts(engine, truth)
    _section_recall(engine, truth, recall_id)
    _section_shortages(engine, truth)
    if codes:
        console.rule("[bold]the codes layer")
        codes_walkthrough(folder)  # bundled sample products, in a store of their own
    _section_next(engine, db_path, truth)
    console.print(f"[dim]demo finished in {time.perf_counter() - started:.0f} s[/]")
    del sim


def _section_counts(engine: Engine) -> None:
    from yaolian.store import schema as s

    type_names = {v: k for k, v in s.EVENT_TYPE_IDS.items()}
    e, si, en = s.event.c, s.site.c, s.enterprise.c
    with engine.connect() as conn:
        by_step = conn.execute(
            select(e.type, e.biz_step, func.count())
            .group_by(e.type, e.biz_step)
            .order_by(func.count().desc())
        ).all()
        by_actor = conn.execute(
            select(en.role, si.kind, func.count(), func.count(func.distinct(si.id)))
            .select_from(
                s.event.join(
                    s.site, s.site.c.location_id == func.coalesce(e.biz_location, e.read_point)
                ).join(s.enterprise, s.enterprise.c.id == si.enterprise_id)
            )
            .group_by(en.role, si.kind)
            .order_by(func.count().desc())
        ).all()
    console.rule("[bold]2 · what was captured")
    print_table(
        "events by type and business step",
        ["event type", "bizStep", "events"],
        [(type_names.get(t, t), step, f"{n:,}") for t, step, n in by_step],
    )
    print_table(
        "events by actor",
        ["enterprise role", "site kind", "events", "sites"],
        [(role, kind, f"{n:,}", sites) for role, kind, n, sites in by_actor],
    )


def _section_trace(engine: Engine, truth: dict[str, Any]) -> None:
    from yaolian.cli.trace import graph_tree
    from yaolian.trace.lineage import resolve, trace_backward

    sample = truth["samples"].get("tcm") or truth["samples"].get("genuine")
    console.rule("[bold]3 · where has this pack been? (backward trace)")
    if not sample:
        console.print("no sample pack on a shelf at the end of the run")
        return
    with engine.connect() as conn:
        graph = trace_backward(conn, resolve(conn, sample["code"]))
    console.print(
        f"{sample['generic_name']} · code {sample['raw']} — from the herb base "
        "through 饮片 to the 中成药 batch, every case, pallet and hand-over:"
    )
    console.print(graph_tree(graph))


def _section_verify(engine: Engine, truth: dict[str, Any]) -> None:
    from yaolian.epcis.model import to_epoch_us
    from yaolian.store.access import Viewer
    from yaolian.verify.status import verify

    picks: list[tuple[str, str, str]] = []  # (case, code to verify, code as printed)
    if truth["samples"].get("genuine"):
        sample = truth["samples"]["genuine"]
        picks.append(("genuine", sample["code"], sample["raw"]))
    for kind, label in (
        ("counterfeit", "counterfeit"),
        ("resale", "回流药 re-sold"),
        ("cold_chain_excursion", "cold chain"),
    ):
        inc = next((i for i in truth["incidents"] if i["type"] == kind), None)
        if inc:
            printed = inc["raw_codes"][0] if inc["raw_codes"] else inc["codes"][0]
            picks.append((label, inc["codes"][0], printed))
    rows = []
    end = to_epoch_us(truth["samples"]["end"])  # as of the last simulated day
    with engine.connect() as conn:
        for label, code, printed in picks:
            v = verify(conn, code, Viewer.system(), now_us=end)
            rows.append((label, printed, v.status, v.sale_count, v.reason))
    console.rule("[bold]4 · is this pack genuine and sellable? (verify)")
    print_table(None, ["case", "code as printed", "status", "sales"], [r[:4] for r in rows])
    for label, _printed, _status, _sales, reason in rows:
        console.print(f"  · {label}: {reason}")


def _section_alerts(engine: Engine, truth: dict[str, Any]) -> None:
    from yaolian.epcis.model import to_epoch_us
    from yaolian.sim.evaluate import load_alerts, score_alerts
    from yaolian.store.access import Viewer
    from yaolian.trace.coverage import CoverageFilter, coverage

    console.rule("[bold]5 · anomaly alerts against the ground truth, and trace coverage")
    scores = score_alerts(truth, load_alerts(engine))
    _print_scores(
        "alerts raised at capture time vs injected incidents", [sc.as_dict() for sc in scores]
    )
    end = to_epoch_us(truth["samples"]["end"])  # as of the last simulated day
    with engine.connect() as conn:
        rows = coverage(conn, Viewer.system(), CoverageFilter(), now_us=end)
    total, worst = rows[-1], sorted(rows[:-1], key=lambda r: r.complete / r.packs)[:3]
    print_table(
        f"trace coverage (追溯覆盖率): {total.complete:,} of {total.packs:,} packs "
        f"({total.complete / max(total.packs, 1):.2%}) traced end to end on the last simulated "
        "day; the least covered products",
        ["product", "packs", "complete", "no origin", "no shipping", "overdue", "flagged"],
        [
            (
                r.name or r.product,
                r.packs,
                f"{r.complete / r.packs:.2%}",
                r.no_origin,
                r.receipt_without_shipping,
                r.overdue_in_transit,
                r.flagged,
            )
            for r in worst
        ],
    )


def _section_recall(engine: Engine, truth: dict[str, Any], recall_id: int | None) -> None:
    from yaolian.trace.recall import recall_scope

    console.rule("[bold]6 · recall scope")
    info = truth.get("recall")
    if not info or recall_id is None:
        console.print("no recall in this run")
        return
    scope = recall_scope(engine, recall_id)
    console.print(
        f"recall #{recall_id} ({scope['class_name']}): {info['generic_name']} batch "
        f"{info['lot']}, issued {info['time']} — {info['reason']}"
    )
    if scope["holders"]:
        print_table(
            "where the batch is now (current holders)",
            ["holder", "role", "packs", "sites"],
            [
                (h["holder"], h["role"], h["count"], ", ".join(h["sites"]))
                for h in scope["holders"][:12]
            ],
        )
    else:
        console.print("no one holds packs of this batch any more (returned, destroyed or sold)")
    progress = scope["progress"]
    console.print(
        f"dispensed to patients: {sum(d.get('codes', 0) for d in scope['dispensed']):,} packs "
        f"at {len(scope['dispensed'])} sites · returned {progress['returned']:,} · "
        f"outstanding {progress['outstanding']:,} · {progress['percent_complete']}% complete\n"
        f"ground truth at issue time: {sum(h['packs'] for h in info['holders']):,} packs held at "
        f"{len(info['holders'])} sites, {info['in_transit']} in transit, {info['dispensed']} "
        f"dispensed; {len(info['noncompliant_sites'])} site(s) never sent theirs back"
    )


SUPPLY_LABEL = {
    "raw_material_shock": "raw-material shock",
    "discontinuation": "discontinuation",
    "demand_spike": "demand spike",
}


def _section_shortages(engine: Engine, truth: dict[str, Any]) -> None:
    from yaolian.sim.catalog import PROVINCES
    from yaolian.sim.evaluate import supply_available

    province = {p.code: p.name for p in PROVINCES}
    console.rule("[bold]7 · shortages")
    print_table(
        "injected supply incidents",
        ["incident", "product", "from", "until", "where"],
        [
            (
                SUPPLY_LABEL.get(i["type"], i["type"]),
                i["generic_name"],
                i.get("date"),
                i.get("end_date", "—"),
                province.get(i.get("region") or "", "everywhere"),
            )
            for i in truth["supply_incidents"]
        ],
    )
    rule = truth.get("shortage_rule") or {}
    print_table(
        "ground truth: regional shortages (短缺) per product × province",
        ["product", "province", "first day", "days short", "cause"],
        [
            (
                o["generic_name"],
                o["region_name"],
                o["first_stockout"],
                o["stockout_days"],
                SUPPLY_LABEL.get(o["cause"], o["cause"]),
            )
            for o in truth["stockouts"]
        ],
    )
    if rule:
        console.print(
            f"[dim]a shortage: ≥ {rule['site_share']:.0%} of the province's dispensing sites "
            f"stocked out or regional fill rate < {rule['fill_rate']:.0%}, "
            f"{rule['sustain']} days in a row[/]"
        )
    if not supply_available():
        console.print("(the supply layer is not installed: no warnings to show)")
        return
    from yaolian.supply.evaluate import evaluate_warnings, province_of
    from yaolian.supply.warnings import compute_warnings

    names = {p["product_code"]: p["generic_name"] for p in truth["stockouts"]}
    for inc in truth["supply_incidents"]:
        names[inc["product_code"]] = inc["generic_name"]
    with engine.connect() as conn:
        risk = evaluate_warnings(conn, truth, method="risk")
        naive = evaluate_warnings(conn, truth, method="naive")
    print_table(
        "were the shortages warned of in time? (warnings computed weekly)",
        ["product", "province", "warned", "short from", "lead", "outcome"],
        [
            (
                names.get(pr.product, pr.product),
                province.get(pr.region, pr.region),
                pr.first_warning or "—",
                pr.first_stockout or "—",
                "—" if pr.lead_days is None else f"{pr.lead_days} d",
                pr.outcome.replace("_", " "),
            )
            for pr in sorted(risk.pairs, key=lambda x: (x.outcome, x.product, x.region))
        ],
    )
    print_table(
        None,
        ["method", "recall", "precision", "median lead"],
        [
            (
                label,
                _share(m.count("hit"), m.scorable),
                _share(m.count("hit"), m.warned),
                "—" if m.median_lead is None else f"{m.median_lead:g} d",
            )
            for label, m in (("yaolian risk", risk), ("naive: < 14 days", naive))
        ],
    )
    as_of = _warnings_day(truth)
    with engine.connect() as conn:
        found = compute_warnings(conn, as_of)[:5]
    if not found:
        console.print(f"no yaolian shortage warning (yellow or above) as of {as_of}")
        return
    print_table(
        f"yaolian shortage warnings as of {as_of} (top {len(found)})",
        ["level", "product", "province", "expected", "lead"],
        [
            (
                w.level,
                names.get(w.product, w.product),
                province.get(province_of(w.region), w.region),
                w.expected_stockout or "—",
                "—" if w.lead_days is None else f"{w.lead_days} d",
            )
            for w in found
        ],
    )
    for w in found[:3]:
        console.print(
            f"why {w.level}: {names.get(w.product, w.product)} in "
            f"{province.get(province_of(w.region), w.region)}"
        )
        for reason in w.reasons:
            console.print(f"  · {reason}")


def _warnings_day(truth: dict[str, Any]) -> date:
    """The day the demo asks for shortage warnings: midway through the run, while most of the
    incidents' shortages are still ahead."""
    return date.fromisoformat(truth["start"]) + timedelta(days=int(truth["days"]) // 2)


def _share(part: int, whole: int) -> str:
    return "—" if not whole else f"{part / whole:.0%} ({part}/{whole})"


def _section_next(engine: Engine, db_path: Path, truth: dict[str, Any]) -> None:
    from yaolian.store.access import create_key
    from yaolian.store.schema import code_state, custody, enterprise, product

    key = create_key(engine, None, "regulator", label="demo")
    code = (truth["samples"].get("genuine") or {}).get("raw", "CODE")
    with engine.connect() as conn:
        hospital = conn.execute(  # the one with the most packs on the way to it (待收货)
            select(enterprise.c.uscc)
            .outerjoin(custody, custody.c.to_party == enterprise.c.party_id)
            .outerjoin(
                code_state,
                (code_state.c.code_id == custody.c.code_id)
                & (code_state.c.open_ship_event_id == custody.c.ship_event_id),
            )
            .where(enterprise.c.role == "hospital")
            .group_by(enterprise.c.uscc)
            .order_by(func.count(code_state.c.code_id).desc(), enterprise.c.uscc)
            .limit(1)
        ).scalar()
        holder = conn.execute(  # of the genuine pack's product (its 药品标识码 leads the code)
            select(enterprise.c.uscc)
            .join(product, product.c.holder_id == enterprise.c.id)
            .where(product.c.product_code == code[:7])
        ).scalar()
    fake = next((i["raw_codes"][0] for i in truth["incidents"] if i["type"] == "counterfeit"), code)
    console.print(
        Panel(
            f"yaolian serve --db {db_path}\n\n"
            "then, in another terminal:\n"
            f"  curl http://127.0.0.1:8000/verify/{code}\n"
            f"  curl http://127.0.0.1:8000/verify/{fake}\n"
            f"  curl -H 'X-API-Key: {key}' 'http://127.0.0.1:8000/trace/{code}?direction=backward'\n"
            f"  curl -H 'X-API-Key: {key}' http://127.0.0.1:8000/alerts\n"
            f"  curl -H 'X-API-Key: {key}' 'http://127.0.0.1:8000/events?EQ_bizStep=receiving"
            "&perPage=5'\n"
            f"  curl -H 'X-API-Key: {key}' "
            f"'http://127.0.0.1:8000/supply/warnings?as_of={_warnings_day(truth)}'   # the "
            "demo's months lie in the past: without as_of, warnings are as of today\n"
            f"  curl -H 'X-API-Key: {key}' 'http://127.0.0.1:8000/coverage?by=province'\n"
            f"  curl -H 'X-API-Key: {key}' -H 'Content-Type: application/json' -d "
            """'{"name": "sales", "query": {"EQ_bizStep": "retail_selling"}}' """
            "http://127.0.0.1:8000/queries   # then /queries/sales/events, …/subscriptions\n"
            f"  curl -H 'X-API-Key: {key}' http://127.0.0.1:8000/audit   # who changed what "
            "(审计日志); /audit/verify checks the chain\n\n"
            "in a browser (paste the key where a page asks for it):\n"
            f"  http://127.0.0.1:8000/web/scan?code={code}   consumer query (no key)\n"
            f"  http://127.0.0.1:8000/web/check   receiving check: paste {code} and {fake}; "
            "with a hospital's key (below) also its deliveries on the way (待收货) and 确认收货\n"
            f"  http://127.0.0.1:8000/web/trace?code={code}   trace graph\n"
            f"  http://127.0.0.1:8000/web/dashboard?as_of={_warnings_day(truth)}   regulator "
            "dashboard\n"
            f"  http://127.0.0.1:8000/web/supply?as_of={_warnings_day(truth)}   供需对接: its "
            "stock and days of supply, demands and offers (a hospital's or distributor's key: "
            f"yaolian keys create --role enterprise --enterprise {hospital or 'USCC'} "
            f"--db {db_path})\n"
            f"  http://127.0.0.1:8000/web/codes   赋码 of product {code[:7]} (its holder's key: "
            f"--enterprise {holder or 'USCC'})\n"
            "  http://127.0.0.1:8000/web/keys   密钥管理: with that key, one more per system\n\n"
            "API docs: http://127.0.0.1:8000/docs · the regulator key above was made for this "
            "demo (shown once)\n"
            f"command line: yaolian trace {code} --db {db_path} · yaolian alerts --db {db_path}"
            f" · yaolian coverage --by province --db {db_path} (it judges shipments overdue "
            "from today: those still on the road when the simulation ended count as overdue) · "
            f"yaolian quality --db {db_path} (its timeliness counts from when events reached the "
            "store: the demo loaded its months at once, so none is timely)\n"
            f"more data: yaolian sim --size small --out ./sim · yaolian eval --seeds 1,2,3",
            title="8 · go on from here",
        )
    )


def codes_walkthrough(folder: Path) -> None:
    """Issue → render → read → validate → one identity, printed step by step; the store and the
    images go into ``folder``."""
    from yaolian.codes import canonical_key, digital_link, sgtin_uri
    from yaolian.codes.barcode import read_image, render_to_file
    from yaolian.codes.bulk import validate_many
    from yaolian.codes.issue import IssueRequest, issue_codes
    from yaolian.codes.registry import CodeRegistry
    from yaolian.store.engine import open_engine

    folder.mkdir(parents=True, exist_ok=True)
    engine = open_engine(str(folder / "codes-walkthrough.db"))
    registry = CodeRegistry.for_store(engine)
    product = registry.product(DEMO_PRODUCT)
    console.rule("[bold]1 · issue trace codes (赋码)")
    request = IssueRequest("demo-nmpa-1", DEMO_PRODUCT, 5, "B20261101", date(2028, 10, 31))
    nmpa = issue_codes(engine, registry, request)
    console.print(
        f"{product.generic_name} {product.strength} {product.pack_spec} — holder {product.holder}"
        f"\nrequest {request.request_id}: {len(nmpa.codes)} codes"
        + (" (same request id → the same codes as last time)" if nmpa.reused else "")
    )
    print_table(
        None,
        ["#", "trace code", "药品标识码", "serial"],
        [(c.seq, c.code, DEMO_PRODUCT, c.serial) for c in nmpa.codes],
    )
    gs1 = issue_codes(
        engine, registry, IssueRequest("demo-gs1-1", DEMO_GTIN, 2, "L2611", date(2028, 10, 31))
    )
    gs1_line = gs1.print_lines()[0]
    console.print(f"GS1 trace code (ISO/IEC 15459, rule b): {gs1_line['barcode_data']}")

    console.rule("[bold]2 · render and read back")
    pictures = [
        (nmpa.codes[0].code, folder / "nmpa-datamatrix.png", "datamatrix"),
        (gs1_line["barcode_data"], folder / "gs1-datamatrix.png", "datamatrix"),
        (gs1_line["uri"], folder / "digital-link-qr.png", "qr"),
    ]
    for data, path, kind in pictures:
        render_to_file(data, path, "qr" if kind == "qr" else "datamatrix")
        found = read_image(path)
        text = found[0].hri or found[0].text if found else "(nothing read)"
        mark = "[green]✓[/]" if found and text in (data, found[0].text) else "[red]✗[/]"
        console.print(f"{mark} {kind:10} {path}\n    read back: {text}")

    console.rule("[bold]3 · validate good and bad codes")
    samples = [
        nmpa.codes[1].code,
        gs1_line["barcode_data"],
        nmpa.codes[2].code[:-1],  # one digit short
        "9" + nmpa.codes[3].code[1:],  # unknown issuer prefix
        "8600099" + nmpa.codes[4].serial,  # unregistered 药品标识码
        gs1_line["barcode_data"].replace("(17)281031", "(17)281331"),  # expiry not a date
        "(01)06901234567893(21)X1",  # bad check digit
    ]
    result = validate_many(samples, registry)
    reasons = dict(result.problems)
    print_table(
        None,
        ["code", "valid", "reason"],
        [(c, "yes" if result.ok[i] else "no", reasons.get(i, "")) for i, c in enumerate(samples)],
    )

    console.rule("[bold]4 · one pack, many names, one key")
    serial = gs1.codes[0].serial
    forms = [
        sgtin_uri(DEMO_GTIN, serial),
        digital_link(DEMO_GTIN, serial=serial, lot="L2611", expiry="281031"),
        gs1_line["barcode_data"],
        "urn:nmpa:code:" + gs1_line["barcode_data"],
    ]
    rows = [(form, canonical_key(form)) for form in forms]
    print_table(None, ["representation", "canonical key"], rows)
    console.print(f"\nimages in {folder}; try [bold]yaolian codes --help[/]")
