"""CLI: capture and query events, serve the API, manage keys and the database.

Commands: ``capture FILE…`` · ``events`` · ``serve`` · ``keys create|list|revoke`` ·
``rebuild`` · ``db init|info``. Interfaces only: reading files is :mod:`yaolian.epcis`,
storing, querying and keys are :mod:`yaolian.store`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Connection, Engine, func, select

from yaolian.cli.common import (
    DbOption,
    JsonOption,
    china_time_text,
    console,
    console_err,
    local_time_option,
    open_store,
    print_json,
    print_table,
    time_option,
)
from yaolian.cli.names import Names
from yaolian.config import DATABASE_URL_ENV, database_url
from yaolian.epcis import jsonld, xml
from yaolian.epcis.model import (
    EVENT_TYPES,
    Document,
    Event,
    iter_epcs,
    iter_quantities,
)
from yaolian.epcis.nmpa_dataset import party_uri
from yaolian.errors import Problem, ValidationError, YaolianError
from yaolian.store.access import Viewer, create_key, list_keys, revoke_key
from yaolian.store.audit import AuditFilter, append_audit, audit_entries, chain_status
from yaolian.store.engine import current_revision, head_revision
from yaolian.store.ingest import Behaviour, CaptureResult, capture_file
from yaolian.store.masterdata import MasterDataWriter, enterprise_id_for, require_enterprise
from yaolian.store.query import MAX_PER_PAGE, query_events
from yaolian.store.schema import api_key, capture_job, code, enterprise, event
from yaolian.store.tx import read_tx, write_tx

MAX_REASONS_SHOWN = 20
WORKER_STARTUP_SECONDS = 60  # a worker imports every layer; on a busy machine that takes a while


# ── capture ──────────────────────────────────────────────────────────────────────────────────
def _capture_one(
    engine: Engine,
    path: Path,
    behaviour: Behaviour,
    enterprise_id: int | None,
    progress: Progress,
) -> CaptureResult:
    task = progress.add_task(f"{path.name}: reading", total=None)

    def report(stage: str, done: int, total: int | None) -> None:
        progress.update(task, description=f"{path.name}: {stage}", completed=done, total=total)

    def audited(conn: Connection, result: CaptureResult) -> None:
        counts = {k: v for k, v in result.to_dict().items() if k != "errors"}
        append_audit(conn, None, "capture", str(path), {"behaviour": behaviour, **counts})

    try:
        return capture_file(
            engine,
            path,
            behaviour=behaviour,
            enterprise_id=enterprise_id,
            progress=report,
            then=audited,
        )
    finally:
        progress.update(task, description=f"{path.name}: done")
        progress.stop_task(task)


def _reasons(errors: list[dict[str, Any]]) -> str:
    """Table cell: the first reason, whole (the table wraps it), and how many more are listed
    below the table."""
    if not errors:
        return ""
    first = str(Problem(errors[0]["reason"], errors[0]["place"]))
    return first + (f" (+{len(errors) - 1} more below)" if len(errors) > 1 else "")


def capture(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="EPCIS 2.0 JSON-LD / XML (2.0, 1.2) files or NMPA data sets (.csv, .xlsx).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    proceed: Annotated[
        bool,
        typer.Option(
            "--proceed",
            help="Store the valid events and report the rejected ones (default: a file with any "
            "invalid event stores nothing).",
        ),
    ] = False,
    enterprise_uscc: Annotated[
        str | None,
        typer.Option(
            "--enterprise",
            help="统一社会信用代码 of the capturing enterprise (it may then see these events).",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Capture event files into the store: accepted / duplicate / rejected per file.

    Exit status 0 when everything was stored, 1 when events were rejected, 2 when a file could
    not be read at all.
    """
    engine = open_store(db, create=True)
    enterprise_id = None
    if enterprise_uscc:
        with read_tx(engine) as conn:
            enterprise_id = enterprise_id_for(conn, enterprise_uscc)
        if enterprise_id is None:
            raise ValidationError(
                f"no enterprise with USCC {enterprise_uscc!r}; register it with `yaolian keys "
                "create --enterprise USCC --name NAME`",
                place="--enterprise",
            )
    behaviour: Behaviour = "proceed" if proceed else "rollback"
    rows: list[dict[str, Any]] = []
    unreadable = False
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
        transient=True,
    ) as progress:
        for path in files:
            try:
                result = _capture_one(engine, path, behaviour, enterprise_id, progress)
            except YaolianError as exc:
                unreadable = True
                problems = exc.problems or [Problem(exc.reason, exc.place)]
                rows.append(
                    {
                        "file": str(path),
                        "readable": False,
                        "accepted": 0,
                        "duplicates": 0,
                        "rejected": None,
                        "errors": [{"place": p.place, "reason": p.reason} for p in problems],
                    }
                )
                continue
            rows.append({"file": str(path), "readable": True, **result.to_dict()})
    if as_json:
        print_json(rows)
    else:
        print_table(
            "capture",
            ["file", "accepted", "duplicate", "rejected", "reasons"],
            [
                (
                    Path(r["file"]).name,
                    r["accepted"],
                    r["duplicates"],
                    "unreadable" if not r["readable"] else r["rejected"],
                    _reasons(r["errors"]),
                )
                for r in rows
            ],
        )
        for r in rows:
            if len(r["errors"]) > 1:
                console_err.print(f"[bold red]{r['file']}[/]:")
                for e in r["errors"][:MAX_REASONS_SHOWN]:
                    console_err.print(f"  - {Problem(e['reason'], e['place'])}")
                if len(r["errors"]) > MAX_REASONS_SHOWN:
                    console_err.print(f"  … {len(r['errors']) - MAX_REASONS_SHOWN} more")
    if unreadable:
        raise typer.Exit(2)
    if any(r["rejected"] for r in rows):
        raise typer.Exit(1)


# ── events ───────────────────────────────────────────────────────────────────────────────────
def _quantity_text(epc_class: str, quantity: float | None, uom: str | None) -> str:
    """``urn:epc:class:lgtin:… 7.9 KGM``: a class, and its quantity when the event gives one."""
    amount = "" if quantity is None else f" {quantity:g}" + (f" {uom}" if uom else "")
    return epc_class + amount


def _location(ev: Event) -> str:
    """The event's bizLocation, else its readPoint."""
    return str((ev.get("bizLocation") or ev.get("readPoint") or {}).get("id", ""))


def _event_row(ev: Event, names: Names) -> tuple[Any, ...]:
    epcs = [epc for epc, _ in iter_epcs(ev)]
    if not epcs:  # class-level only (a herb lot's kilograms): what and how much
        epcs = [_quantity_text(cls, qty, uom) for cls, qty, uom, _ in iter_quantities(ev)]
    shown = epcs[0] + (f" (+{len(epcs) - 1})" if len(epcs) > 1 else "") if epcs else ""
    where = _location(ev)
    return (
        ev.get("eventTime"),
        ev.get("type"),
        ev.get("action", ""),
        ev.get("bizStep", ""),
        ev.get("disposition", ""),
        shown,
        names.site(where),
    )


def events(
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help=f"Event type ({', '.join(EVENT_TYPES)}); repeatable."),
    ] = None,
    epc: Annotated[
        list[str] | None, typer.Option("--epc", help="MATCH_epc: code in epcList/childEPCs.")
    ] = None,
    any_epc: Annotated[
        list[str] | None, typer.Option("--any-epc", help="MATCH_anyEPC: code in any role.")
    ] = None,
    biz_step: Annotated[
        list[str] | None, typer.Option("--biz-step", help="EQ_bizStep, e.g. shipping.")
    ] = None,
    disposition: Annotated[
        list[str] | None, typer.Option("--disposition", help="EQ_disposition.")
    ] = None,
    biz_location: Annotated[
        list[str] | None, typer.Option("--biz-location", help="EQ_bizLocation.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="GE_eventTime (date or time; +08:00 if none).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="LT_eventTime (date or time; +08:00 if none).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Any other EPCIS query parameter as NAME=VALUE."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events.")] = 50,
    output: Annotated[
        str, typer.Option("--format", help="table, jsonld or xml.", case_sensitive=False)
    ] = "table",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Query the event log with EPCIS query parameters (all events: local store access)."""
    fmt = "jsonld" if as_json else output.lower()
    if fmt not in ("table", "jsonld", "xml"):
        raise ValidationError(
            f"unknown format {output!r}; use table, jsonld or xml", place="--format"
        )
    params: dict[str, list[str]] = {}
    for name, values in (
        ("eventType", event_type),
        ("MATCH_epc", epc),
        ("MATCH_anyEPC", any_epc),
        ("EQ_bizStep", biz_step),
        ("EQ_disposition", disposition),
        ("EQ_bizLocation", biz_location),
    ):
        if values:
            params[name] = list(values)
    if since:
        params["GE_eventTime"] = [local_time_option(since, "--since").isoformat()]
    if until:
        params["LT_eventTime"] = [local_time_option(until, "--until").isoformat()]
    for item in param or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValidationError(f"{item!r} is not NAME=VALUE", place="--param")
        params.setdefault(name, []).append(value)
    params["eventCountLimit"] = [str(limit)]
    params["perPage"] = [str(min(limit, MAX_PER_PAGE))]
    engine = open_store(db)
    found: list[Event] = []
    with read_tx(engine) as conn:
        while True:
            page = query_events(conn, params, viewer=Viewer.system())
            found.extend(page.events)
            if not page.next_page_token:
                break
            params["nextPageToken"] = [page.next_page_token]
        if fmt == "table":  # a registered site by its name
            names = Names(conn, sites=(_location(ev) for ev in found))
            print_table(
                f"{len(found)} event(s)",
                ["eventTime", "type", "action", "bizStep", "disposition", "codes", "location"],
                [_event_row(ev, names) for ev in found],
            )
            return
    doc = Document(events=found, context=[jsonld.EPCIS_CONTEXT])
    data = xml.write_document(doc) if fmt == "xml" else jsonld.write_document(doc)
    if fmt == "jsonld":
        data = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2)
    sys.stdout.write(data.decode() + "\n")


# ── serve ────────────────────────────────────────────────────────────────────────────────────
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    db: DbOption = None,
) -> None:
    """Serve the REST API (EPCIS 2.0 capture and query; OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    url = database_url(db)
    # migrate once before the workers start; fail early on a bad URL
    open_store(url, create=True).dispose()
    os.environ[DATABASE_URL_ENV] = url  # the workers' create_app() reads it
    console_err.print(
        f"yaolian API on http://{host}:{port}  (pages: /web, docs: /docs, database: {url})"
    )
    uvicorn.run(
        "yaolian.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,
    )


# ── keys ─────────────────────────────────────────────────────────────────────────────────────
keys_app = typer.Typer(
    help="API keys (stored hashed; the key is shown once).", no_args_is_help=True
)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="enterprise, regulator or admin.")],
    enterprise_uscc: Annotated[
        str | None,
        typer.Option("--enterprise", help="统一社会信用代码 (needed for enterprise keys)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Register or rename the enterprise with this name first."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Enterprise kind: holder, manufacturer, distributor, hospital, pharmacy, "
            "regulator … (default for a new one: distributor; else unchanged).",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Note shown in keys list.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; an enterprise key sees only events its enterprise is party to."""
    engine = open_store(db, create=True)
    if name and not enterprise_uscc:
        raise ValidationError("--name needs --enterprise USCC", place="--name")
    with write_tx(engine) as conn:  # the enterprise and its key together, or neither
        if name and enterprise_uscc:
            known = enterprise_id_for(conn, enterprise_uscc) is not None
            with MasterDataWriter(conn) as writer:
                if known:  # a rename (and a new kind if given): its party id and region stay
                    writer.enterprise(enterprise_uscc, name, **({"role": kind} if kind else {}))
                else:
                    writer.enterprise(
                        enterprise_uscc,
                        name,
                        kind or "distributor",
                        party_id=party_uri(enterprise_uscc.upper()),
                    )
            detail = {"enterprise": enterprise_uscc.strip().upper(), "name": name, "kind": kind}
            append_audit(conn, None, "masterdata.enterprise", detail["enterprise"], detail)
        key = create_key(conn, enterprise_uscc, role, label)
    if as_json:
        print_json({"key": key, "role": role, "enterprise": enterprise_uscc, "label": label})
        return
    console.print(f"[bold green]{key}[/]")
    console_err.print(
        "Keep this key: it is shown only now. Use it as `Authorization: Bearer <key>` or "
        "`X-API-Key: <key>`."
    )


@keys_app.command("list")
def keys_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every API key, newest first (never the secrets)."""
    keys = list_keys(open_store(db))
    if as_json:
        print_json([k.as_dict() for k in keys])
    else:
        print_table(
            "API keys",
            ["prefix", "role", "enterprise", "label", "created (UTC+8)", "revoked"],
            [
                (
                    k.prefix,
                    k.role,
                    " ".join(filter(None, (k.enterprise_name, k.enterprise))),
                    k.label,
                    china_time_text(k.created_us),
                    "revoked" if k.revoked else "",
                )
                for k in keys
            ],
        )


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (shown by keys list).")],
    db: DbOption = None,
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    revoke_key(open_store(db), prefix)
    console.print(f"revoked {prefix}")


# ── audit ────────────────────────────────────────────────────────────────────────────────────
audit_app = typer.Typer(
    help="The audit log (审计日志): who changed what and when; is the hash chain intact.",
    no_args_is_help=True,
)


@audit_app.command("list")
def audit_list(
    action: Annotated[
        str | None,
        typer.Option("--action", help="An action (recall.create) or family (recall, supply)."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Made with this key (its prefix).")
    ] = None,
    enterprise_uscc: Annotated[
        str | None,
        typer.Option("--enterprise", help="Made with this enterprise's keys (统一社会信用代码)."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time: from then")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time: … before then")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audit entries, newest first, with the key that made each ("local" = this command line)."""
    flt = AuditFilter(
        action=action,
        key_prefix=key,
        since_us=time_option(since, "--since"),
        until_us=time_option(until, "--until"),
        limit=limit,
    )
    with read_tx(open_store(db)) as conn:
        if enterprise_uscc:
            ent_id = require_enterprise(conn, enterprise_uscc, "--enterprise")
            flt = replace(flt, enterprise_id=ent_id)
        total, entries = audit_entries(conn, flt)
    if as_json:
        print_json({"total": total, "entries": [e.as_dict() for e in entries]})
        return
    print_table(
        f"audit log: {len(entries)} of {total} entries",
        ["id", "time (UTC+8)", "action", "target", "key", "role", "enterprise"],
        [
            (
                e.id,
                china_time_text(e.time_us),
                e.action,
                e.target,
                e.prefix or "local",
                e.role,
                e.enterprise_name or e.enterprise,
            )
            for e in entries
        ],
    )


@audit_app.command("verify")
def audit_verify(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Recompute the hash chain; exit 1 and name each entry where it breaks."""
    with read_tx(open_store(db)) as conn:
        status = chain_status(conn)
    if as_json:
        print_json(status)
    elif status["intact"]:
        console.print(f"audit chain intact: {status['entries']} entries")
    else:
        console.print(f"[bold red]audit chain broken[/] ({status['entries']} entries checked)")
        for fault in status["breaks"]:
            console.print(f"  - {fault['place']}: {fault['reason']}")
    if not status["intact"]:
        raise typer.Exit(1)


# ── rebuild ──────────────────────────────────────────────────────────────────────────────────
def rebuild(db: DbOption = None) -> None:
    """Rebuild every projection from the event log (the log itself is untouched)."""
    from yaolian.store import projections

    engine = open_store(db)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:  # one bar per projection
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        count = projections.rebuild(engine, progress=report)
    console.print(f"rebuilt projections from {count} event(s)")


# ── db ───────────────────────────────────────────────────────────────────────────────────────
db_app = typer.Typer(help="The database: create/migrate and inspect.", no_args_is_help=True)


@db_app.command("init")
def db_init(db: DbOption = None) -> None:
    """Create the database (or bring it to the newest schema)."""
    engine = open_store(db, create=True)
    with read_tx(engine) as conn:
        revision = current_revision(conn)
    console.print(f"database ready: {engine.url.render_as_string()} (schema {revision})")


@db_app.command("info")
def db_info(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Where the database is, its schema revision and how much it holds."""
    engine = open_store(db)
    tables = {
        "events": event,
        "codes": code,
        "capture jobs": capture_job,
        "enterprises": enterprise,
        "API keys": api_key,
    }
    with read_tx(engine) as conn:
        info: dict[str, Any] = {
            "url": engine.url.render_as_string(),
            "backend": engine.dialect.name,
            "revision": current_revision(conn),
            "head": head_revision(),
        }
        for label, table in tables.items():
            info[label] = conn.execute(select(func.count()).select_from(table)).scalar_one()
    if as_json:
        print_json(info)
    else:
        print_table("database", ["", "value"], info.items())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("capture")(capture)
    app.command("events")(events)
    app.command("serve")(serve)
    app.command("rebuild")(rebuild)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")
