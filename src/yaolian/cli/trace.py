"""CLI: trace, verify, alerts, recalls and NHSA sale lines.

Commands: ``trace CODE [--forward] [--lot] [--at]`` · ``verify CODE…`` · ``alerts`` ·
``coverage`` · ``quality`` ·
``recall create|show|list|close`` · ``dispense FILE``; ``--json`` everywhere. The local CLI
acts as the platform itself (it sees everything, like a regulator). Interfaces only: the work
is in :mod:`yaolian.trace` and :mod:`yaolian.verify`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from yaolian.cli.common import (
    DbOption,
    JsonOption,
    console,
    open_store,
    print_json,
    print_table,
    time_option,
)
from yaolian.cli.names import Names
from yaolian.errors import ValidationError
from yaolian.store.access import Viewer
from yaolian.store.audit import append_audit
from yaolian.store.masterdata import require_enterprise
from yaolian.store.quality import DEFAULT_WITHIN_HOURS, data_quality
from yaolian.store.tx import read_tx, write_tx
from yaolian.trace.coverage import DEFAULT_OVERDUE_DAYS, CoverageFilter, Grouping, coverage
from yaolian.trace.lineage import Graph, resolve, trace_backward, trace_forward
from yaolian.trace.recall import (
    close_recall,
    create_recall,
    list_recalls,
    notice_csv,
    notice_rows,
    notice_xlsx,
    recall_scope,
)
from yaolian.verify.anomalies import RULES, AlertFilter, alerts_workbook, list_alerts
from yaolian.verify.dispense import read_sale_file, record_sales, sales_summary
from yaolian.verify.receive import expected_arrivals, receive
from yaolian.verify.review import STATUSES, review_alert
from yaolian.verify.status import verify_many

SYSTEM = Viewer.system()
_STATUS_STYLE = {
    "genuine": "green",
    "unknown": "bold red",
    "recalled": "bold red",
    "dispensed": "yellow",
    "expired": "red",
    "destroyed": "red",
    "decommissioned": "red",
    "in_transit": "cyan",
}


def _label(graph: Graph, node_id: str) -> str:
    node = graph.nodes.get(node_id, {})
    kind = node.get("kind")
    if kind == "code":
        extra = " ".join(str(node[k]) for k in ("status", "lot") if node.get(k))
        return f"[bold]{node.get('uri') or node.get('key')}[/] {extra}"
    if kind == "lot":
        return f"lot {node.get('product')}/{node.get('lot')}"
    return str(node.get("name") or node.get("uri") or node_id)


def _holder(graph: Graph, edge: dict[str, Any]) -> str:
    """Where an edge goes; an enterprise holding at one of its sites (a chain's branch 分店)
    with that site's name."""
    label = _label(graph, edge["to"])
    site = graph.nodes.get(edge.get("site") or "", {}).get("name")
    return f"{label} · {site}" if site and site != label else label


def graph_tree(graph: Graph) -> Tree:
    """A readable rich tree of a trace graph (by edge kind, in time order)."""
    tree = Tree(f"{graph.direction} trace of {_label(graph, graph.root)}")
    for kind, title in (
        ("commissioned", "commissioned"),
        ("inside", "containers"),
        ("handed_over", "hand-overs"),
        ("held_by", "held by"),
        ("dispensed", "dispensed"),
        ("dispensed_at", "dispensed at"),
        ("transformed_into", "transformations"),
        ("batch_of", "batch"),
    ):
        found = [e for e in graph.edges if e["kind"] == kind]
        if not found:
            continue
        branch = tree.add(f"[bold]{title}[/] ({len(found)})")
        for e in found[:200]:
            when = " ".join(
                f"{k}={e[k]}"
                for k in (
                    "date",
                    "since",
                    "until",
                    "shipped",
                    "received",
                    "first",
                    "count",
                    "units",
                    "status",
                    "codes",
                    "quantity",
                )
                if e.get(k) is not None
            )
            branch.add(f"{_label(graph, e['from'])} → {_holder(graph, e)}  {when}")
        if len(found) > 200:
            branch.add(f"… {len(found) - 200} more")
    if graph.summary:
        summary = tree.add("[bold]summary[/]")
        for key, value in graph.summary.items():
            if isinstance(value, dict):  # counts by status or holder
                value = ", ".join(f"{k} {n}" for k, n in value.items()) or "none"
            elif key == "status" and value is None:  # not made yet (as of --at)
                value = "none on record" + (" as of then" if graph.at_us is not None else "")
            summary.add(f"{key}: {value}")
    return tree


def trace(
    code: Annotated[
        str, typer.Argument(help="Code in any form, a batch URI, or a product code with --lot.")
    ],
    forward: Annotated[
        bool, typer.Option("--forward", help="Where it went (default: where it came from).")
    ] = False,
    lot: Annotated[str | None, typer.Option("--lot", help="批号: trace batch CODE/LOT.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="As of this ISO 8601 time.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace a code, batch or lot backward or forward, as a tree."""
    engine = open_store(db)
    with read_tx(engine) as conn:
        target = resolve(conn, code, lot)
        run = trace_forward if forward or target.is_batch else trace_backward
        graph = run(conn, target, at_us=time_option(at, "--at"), viewer=SYSTEM)
    if as_json:
        print_json(graph.as_dict())
    else:
        console.print(graph_tree(graph))


def verify(
    codes: Annotated[list[str], typer.Argument(help="Codes in any form.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify codes: genuine and sellable, unknown, dispensed, recalled …"""
    engine = open_store(db)
    with read_tx(engine) as conn:
        verdicts = [v.as_dict() for v in verify_many(conn, codes, SYSTEM)]
    if as_json:
        print_json(verdicts)
        return
    rows = []
    for v in verdicts:
        product = v["product"] or {}
        batch = v["batch"] or {}
        style = _STATUS_STYLE.get(v["status"], "")
        rows.append(
            (
                v["code"],
                f"[{style}]{v['status']}[/]",
                product.get("generic_name"),
                batch.get("lot"),
                batch.get("expiry"),
                " → ".join(
                    [v["circulation"][0]["from"] or "?"]
                    + [h["to"] or "?" for h in v["circulation"]]
                )
                if v["circulation"]
                else "",
                v["reason"],
            )
        )
    print_table(
        "verification", ["code", "status", "product", "lot", "expiry", "path", "reason"], rows
    )


alerts_app = typer.Typer(
    help="Anomaly alerts, newest first (the filters of GET /alerts); `alerts review` records a "
    "finding (预警核查).",
    invoke_without_command=True,
)


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option("--rule", help=", ".join(RULES))] = None,
    review: Annotated[
        str | None,
        typer.Option("--review", help="Review status: " + ", ".join(STATUSES)),
    ] = None,
    code: Annotated[str | None, typer.Option("--code", help="About this code (any form)")] = None,
    site: Annotated[str | None, typer.Option("--site", help="At this site (location URI)")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this day or time")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this day or time")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write them as an Excel workbook (告警清单, .xlsx)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Anomaly alerts, newest first (the filters of GET /alerts)."""
    if ctx.invoked_subcommand is not None:
        return
    if out is not None and out.suffix.lower() != ".xlsx":
        raise ValidationError("the alerts are written as an .xlsx workbook", place=str(out))
    engine = open_store(db)
    flt = AlertFilter(
        rule=rule,
        review=review,
        code=code,
        site=site,
        since_us=time_option(since, "--since"),
        until_us=time_option(until, "--until"),
        limit=limit,
    )
    found = list_alerts(engine, SYSTEM, flt)
    if out is not None:  # a path that cannot be written: reported by the CLI's entry point
        out.write_bytes(alerts_workbook(engine, found))
    if as_json:
        print_json(found)
        return
    with engine.connect() as conn:
        names = Names(conn, sites=(a["site"] for a in found["alerts"]))
    print_table(
        f"alerts ({found['total']})",
        ["id", "rule", "severity", "date", "code", "site", "reason", "review"],
        [
            (
                a["id"],
                a["rule"],
                a["severity"],
                a["time"],
                (a["uri"] or a["code"]).removeprefix("urn:nmpa:code:"),  # as `trace` reads it
                names.site(a["site"]),
                a["evidence"].get("reason"),
                a["review"]["status_zh"] if a["review"] else STATUSES["open"],
            )
            for a in found["alerts"]
        ],
    )


def _review_text(review: dict[str, Any] | None) -> str:
    if review is None:
        return STATUSES["open"]
    return f"{review['status_zh']}: {review['note']}" if review["note"] else review["status_zh"]


@alerts_app.command("review")
def alerts_review(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (first column of `alerts`)")],
    status: Annotated[str, typer.Argument(help=", ".join(STATUSES))],
    note: Annotated[str | None, typer.Option("--note", help="What was found (核查情况)")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a finding on an alert (预警核查): investigating, confirmed, dismissed, or open."""
    with write_tx(open_store(db)) as conn:
        answer = review_alert(conn, alert_id, status, note, SYSTEM)
        append_audit(conn, None, "alert.review", str(alert_id), {"status": status, "note": note})
    if as_json:
        print_json(answer)
    else:
        console.print(f"alert {alert_id}: {_review_text(answer['review'])}")


def coverage_report(
    product: Annotated[
        list[str] | None, typer.Option("--product", help="Only this product (repeatable)")
    ] = None,
    list_code: Annotated[
        str | None, typer.Option("--list", help="Only the products of this monitored list")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Region code prefix: 2, 4 or 6 digits")
    ] = None,
    overdue_days: Annotated[
        int,
        typer.Option("--overdue-days", min=1, max=3650, help="Unreceived this long is a gap"),
    ] = DEFAULT_OVERDUE_DAYS,
    by: Annotated[
        Grouping, typer.Option("--by", help="One row per product, province or city")
    ] = "product",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace coverage (追溯覆盖率): per product (or area), packs whose trace is complete and
    each gap."""
    flt = CoverageFilter(tuple(product or ()), list_code, region, overdue_days, by)
    with read_tx(open_store(db)) as conn:
        rows = coverage(conn, SYSTEM, flt)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    named = by == "product"  # areas have a code only
    print_table(
        f"trace coverage (gaps: in transit over {overdue_days} days)",
        [
            by,
            *(["name"] if named else []),
            *("packs", "complete", "share", "no origin", "no shipping", "overdue", "flagged"),
            "sold",
        ],
        [
            (
                r.product or r.region or ("total" if r is rows[-1] else "(no region)"),
                *([r.name or ""] if named else []),
                r.packs,
                r.complete,
                "" if r.complete_share is None else f"{r.complete_share:.1%}",
                r.no_origin,
                r.receipt_without_shipping,
                r.overdue_in_transit,
                r.flagged,
                r.dispensed,
            )
            for r in rows
        ],
    )


def quality_report(
    since: Annotated[str | None, typer.Option("--since", help="ISO time: events from then")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time: … before then")] = None,
    within_hours: Annotated[
        int,
        typer.Option("--within-hours", min=1, max=8760, help="Recorded within this: timely"),
    ] = DEFAULT_WITHIN_HOURS,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Data quality (追溯数据质量) per enterprise: timely, located, batch facts, destinations."""
    with read_tx(open_store(db)) as conn:
        rows = data_quality(
            conn,
            SYSTEM,
            since_us=time_option(since, "--since"),
            until_us=time_option(until, "--until"),
            within_hours=within_hours,
        )
    if as_json:
        print_json([r.as_dict() for r in rows])
        return

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    print_table(
        f"data quality (timely: recorded within {within_hours} h)",
        ["enterprise", "events", "timely", "located", "batch facts", "destination", "refused"],
        [
            (
                r.name or r.enterprise or "(unregistered sites)",
                r.events,
                pct(shares["timely"]),
                pct(shares["located"]),
                pct(shares["batch_facts"]),
                pct(shares["destination"]),
                pct(shares["rejected"]),
            )
            for r in rows
            for shares in [r.shares()]
        ],
    )


def dispense(
    file: Annotated[Path, typer.Argument(help="NHSA sale lines: JSON, CSV or XLSX.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record NHSA sale lines (drug_trac_codg, trdn_flag, sel_retn_cnt …) as dispensing events."""
    lines = read_sale_file(file)
    result = record_sales(
        open_store(db),
        lines,
        then=lambda conn, done: append_audit(
            conn, None, "dispense", str(file), sales_summary(lines, done)
        ),
    )
    if as_json:
        print_json({"lines": len(lines), **result.to_dict()})
        return
    console.print(
        f"{len(lines)} sale line(s): {result.accepted} recorded, "
        f"{result.duplicates} duplicate, {result.rejected} rejected"
    )
    for problem in result.errors[:20]:
        console.print(f"  - {problem}")


def receive_cmd(
    site: Annotated[str, typer.Argument(help="The receiving site's id (urn:epc:id:sgln:…).")],
    codes: Annotated[list[str], typer.Argument(help="Scanned codes, any form.")],
    when: Annotated[
        str | None, typer.Option("--time", help="Moment of receipt (default now; 北京时间).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the receipt (收货 / 购进入库) of scanned codes at a site, all or none: each in
    transit to the site's enterprise, or held by one that never reported shipping it."""
    receipt = receive(
        open_store(db),
        codes,
        site,
        when=when,
        then=lambda conn, done: append_audit(conn, None, "receive", site, done.as_dict()),
    )
    if as_json:
        print_json(receipt.as_dict())
        return
    unreported = (
        f"; shipping never reported for {receipt.unreported} (发货未上报)"
        if receipt.unreported
        else ""
    )
    console.print(f"received {receipt.codes} code(s) from {', '.join(receipt.senders)}{unreported}")


def arrivals_cmd(
    enterprise: Annotated[
        str | None, typer.Option("--enterprise", help="USCC of the receiving enterprise")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 200,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliveries on their way (待收货), newest first: open shipments with sender, day shipped,
    destination and packs per product and lot — to one enterprise, or to every one."""
    with read_tx(open_store(db)) as conn:
        whose = require_enterprise(conn, enterprise, "--enterprise") if enterprise else None
        found = expected_arrivals(conn, whose, limit)
    if as_json:
        print_json(found)
        return
    print_table(
        "arrivals (待收货)",
        ["shipped", "from", "to", "site", "packs", "product lot × packs"],
        [
            (
                a["shipped"],
                a["from"],
                a["to"],
                a["to_site_name"] or a["to_site"],
                a["packs"],
                "; ".join(
                    f"{x['generic_name'] or x['product']} {x['lot'] or ''} × {x['packs']}"
                    for x in a["lines"]
                ),
            )
            for a in found
        ],
    )


recall_app = typer.Typer(
    help="Recalls (药品召回): create, show scope and progress, list, close.", no_args_is_help=True
)


def _print_scope(scope: dict[str, Any]) -> None:
    console.print(
        f"[bold]recall {scope['id']}[/] {scope['class_name']} — {scope['reason']} "
        f"(created {scope['created']}{', closed' if scope['closed_us'] else ''})"
    )
    statuses = ", ".join(f"{status} {n}" for status, n in scope["by_status"].items() if n)
    console.print(f"codes in scope: {scope['total']}" + (f" ({statuses})" if statuses else ""))
    for b in scope["batches"]:
        if not b["codes"]:
            console.print(
                f"[yellow]batch {b['product']}/{b['lot']}: no code of it is on record[/] — check "
                "the lot; codes of it reported later are recalled as they arrive"
            )
    if not scope["holders"]:
        console.print("no holder has any of it in stock")
    else:
        print_table(
            "holders",
            ["holder", "role", "count", "sites"],
            [
                (
                    h["holder"],
                    h["role"],
                    h["count"],
                    ", ".join(f"{k}: {v}" for k, v in h["sites"].items()),
                )
                for h in scope["holders"]
            ],
        )
    if scope["in_transit"]:
        print_table(
            "in transit",
            ["from", "to", "kind", "count", "shipped"],
            [
                (t["from"], t["to"], t["kind"], t["count"], t["shipped"])
                for t in scope["in_transit"]
            ],
        )
    if scope["dispensed"]:
        print_table(
            "dispensed",
            ["site", "holder", "codes", "units (拆零)", "first", "last"],
            [
                (
                    d["site_name"] or d["site"],
                    d["holder"],
                    d["codes"],
                    f"{d['split_units']:g}" if d["split_units"] else "",
                    d["first"],
                    d["last"],
                )
                for d in scope["dispensed"]
            ],
        )
    done = scope["progress"]
    if done["percent_complete"] is None:
        console.print("progress: nothing on record to bring back yet")
        return
    console.print(
        f"progress: {done['percent_complete']}% out of the market — returned "
        f"{done['returned']}, destroyed {done['destroyed']}, marked recalled "
        f"{done['recalled_status']}, outstanding {done['outstanding']}"
    )


@recall_app.command("create")
def recall_create(
    reason: Annotated[str, typer.Option("--reason", help="Why (召回原因).")],
    klass: Annotated[int, typer.Option("--class", help="1, 2 or 3 (一级/二级/三级).")],
    batch: Annotated[
        list[str] | None, typer.Option("--batch", help="PRODUCT/LOT or a batch URI; repeatable.")
    ] = None,
    code: Annotated[list[str] | None, typer.Option("--code", help="A code; repeatable.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a recall and print its scope."""
    engine = open_store(db)
    detail = {"class": klass, "reason": reason, "batches": batch or [], "codes": code or []}
    with write_tx(engine) as conn:
        rid = create_recall(conn, klass=klass, reason=reason, batches=batch or [], codes=code or [])
        append_audit(conn, None, "recall.create", str(rid), detail)
    scope = recall_scope(engine, rid)
    print_json(scope) if as_json else _print_scope(scope)


@recall_app.command("show")
def recall_show(
    recall_id: int,
    notice: Annotated[
        Path | None,
        typer.Option(
            "--notice",
            help="Also write the notice list (召回通知清单: whom to notify, how many, what to "
            "do): .xlsx or .csv.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scope and progress of a recall."""
    suffix = notice.suffix.lower() if notice is not None else None
    if suffix not in {None, ".csv", ".xlsx"}:
        raise ValidationError("the notice list is written as .xlsx or .csv", place=str(notice))
    scope = recall_scope(open_store(db), recall_id)
    if notice is not None:
        if suffix == ".csv":
            notice.write_text(notice_csv(scope), "utf-8")
        else:
            notice.write_bytes(notice_xlsx(scope))
    print_json(scope) if as_json else _print_scope(scope)
    if notice is not None and not as_json:
        console.print(f"notice list: {len(notice_rows(scope))} row(s) written to {notice}")


@recall_app.command("list")
def recall_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every recall, newest first."""
    found = list_recalls(open_store(db))
    if as_json:
        print_json(found)
        return
    print_table(
        "recalls",
        ["id", "class", "created", "closed", "batches", "codes named", "reason"],
        [
            (
                r["id"],
                r["class"],
                r["created"],
                "yes" if r["closed_us"] else "",
                ", ".join(r["batches"]),
                r["codes"] or "",  # codes named one by one (a batch's are counted in its scope)
                r["reason"],
            )
            for r in found
        ],
    )


@recall_app.command("close")
def recall_close(recall_id: int, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Close a recall (completed)."""
    engine = open_store(db)
    with write_tx(engine) as conn:
        close_recall(conn, recall_id)
        append_audit(conn, None, "recall.close", str(recall_id))
    if as_json:
        print_json(recall_scope(engine, recall_id))
    else:
        console.print(f"recall {recall_id} closed")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("trace")(trace)
    app.command("verify")(verify)
    app.add_typer(alerts_app, name="alerts")
    app.command("coverage")(coverage_report)
    app.command("quality")(quality_report)
    app.command("dispense")(dispense)
    app.command("receive")(receive_cmd)
    app.command("arrivals")(arrivals_cmd)
    app.add_typer(recall_app, name="recall")
