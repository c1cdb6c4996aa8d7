"""``yaolian masterdata`` — load, export and list enterprises, sites and products (主数据)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from yaolian.cli.common import DbOption, JsonOption, console, open_store, print_json, print_table
from yaolian.errors import ValidationError
from yaolian.store.audit import append_audit
from yaolian.store.masterfile import (
    SECTIONS,
    export_master_data,
    load_master_data,
    read_master_data,
)
from yaolian.store.tx import write_tx

masterdata_app = typer.Typer(
    help="Master data (主数据): enterprises, their sites and products, from JSON or XLSX.",
    no_args_is_help=True,
)

_COLUMNS = {
    "enterprises": ("uscc", "name", "role", "region", "party_id"),
    "sites": ("location_id", "name", "kind", "enterprise_uscc", "region", "lat", "lon"),
    "products": (
        "product_code",
        "generic_name",
        "dosage_form",
        "strength",
        "units_per_pack",
        "holder_uscc",
        "temp_min",
        "temp_max",
    ),
}


@masterdata_app.command("load")
def load(
    files: Annotated[list[Path], typer.Argument(help="masterdata .json or .xlsx files.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upsert each file's enterprises, sites and products (one transaction per file; a file
    with any bad row writes nothing). Alerts of events already stored are re-judged with the
    new owners, places, unit counts and storage ranges."""
    engine = open_store(db, create=True)
    results = []
    for path in files:
        with write_tx(engine) as conn:
            loaded = load_master_data(conn, read_master_data(path))
            append_audit(conn, None, "masterdata.load", str(path), loaded.as_dict())
        results.append({"file": str(path), **loaded.as_dict()})
    if as_json:
        print_json(results)
        return
    for r in results:
        console.print(
            f"[green]{r['file']}[/]: {r['enterprises']} enterprises, {r['sites']} sites, "
            f"{r['products']} products; {r['codesRecomputed']} codes re-judged"
        )


@masterdata_app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON document here (else stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Every enterprise, site and product as one JSON document (`load` reads it back)."""
    data = export_master_data(open_store(db))
    if out is None:
        print_json(data)
        return
    out.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    console.print(
        f"[green]{out}[/]: " + ", ".join(f"{len(data[s])} {s}" for s in SECTIONS), highlight=False
    )


@masterdata_app.command("list")
def list_section(
    section: Annotated[str, typer.Argument(help="enterprises, sites or products.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The registered enterprises, sites or products."""
    if section not in SECTIONS:
        raise ValidationError(f"use one of {', '.join(SECTIONS)}", place="SECTION")
    rows = export_master_data(open_store(db), [section])[section]
    if as_json:
        print_json(rows)
        return
    columns = _COLUMNS[section]
    print_table(f"{section} ({len(rows)})", columns, ([r.get(c) for c in columns] for r in rows))


def register(app: typer.Typer) -> None:
    """Add the ``masterdata`` command group to the root app."""
    app.add_typer(masterdata_app, name="masterdata")
