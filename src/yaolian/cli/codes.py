"""CLI: ``yaolian codes parse|validate|issue|render|read`` — trace codes and GS1 keys."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from yaolian.cli.common import (
    DbOption,
    JsonOption,
    console,
    console_err,
    open_store,
    print_json,
    print_table,
)
from yaolian.codes.barcode import Kind, read_image, render_to_file
from yaolian.codes.inspect import describe
from yaolian.codes.issue import IssueRequest, export_csv, export_text, issue_codes
from yaolian.codes.registry import CodeRegistry
from yaolian.epcis.model import parse_local_date
from yaolian.errors import CodeError
from yaolian.store.audit import append_audit
from yaolian.store.tx import write_tx
from yaolian.tables import read_text

codes_app = typer.Typer(
    name="codes",
    help="Trace codes (药品追溯码) and GS1 keys: parse, validate, issue, render, read.",
    no_args_is_help=True,
)

RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="Issuer rules CSV (码制规则) instead of the bundled/db ones."),
]
ProductsOption = Annotated[
    Path | None,
    typer.Option("--products", help="Registered products CSV instead of the bundled/db ones."),
]


def register(app: typer.Typer) -> None:
    """Add the ``codes`` command group to the root app."""
    app.add_typer(codes_app, name="codes")


def _registry(db: str | None, rules: Path | None, products: Path | None) -> CodeRegistry:
    """Registry from ``--db`` when given, else the bundled files; CSV options override."""
    base = CodeRegistry.for_store(open_store(db)) if db is not None else CodeRegistry.bundled()
    if rules is None and products is None:
        return base
    override = CodeRegistry.from_files(rules, products)
    return CodeRegistry(
        override.rules if rules else base.rules,
        (override if products else base).products.values(),
    )


def _summary(info: dict[str, Any]) -> str:
    product = info.get("product")
    if product:
        return " ".join(
            str(v)
            for v in (product["generic_name"], product["strength"], product["pack_spec"])
            if v
        )
    return info.get("name") or ""


def _parts(info: dict[str, Any]) -> str:
    if "fields" in info:
        return " ".join(f"({f['ai']}){f['value']}" for f in info["fields"])
    if info.get("product_code"):
        serial = info.get("serial")
        return f"药品标识码 {info['product_code']}" + (f" 序列号 {serial}" if serial else "")
    return ""


@codes_app.command("parse")
def parse_cmd(
    codes: Annotated[list[str], typer.Argument(help="Codes in any form (trace code, URI …).")],
    db: DbOption = None,
    rules: RulesOption = None,
    products: ProductsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Say what each code is: kind, parts, canonical key, product."""
    registry = _registry(db, rules, products)
    results: list[dict[str, Any]] = []
    bad = 0
    for code in codes:
        try:
            results.append({"ok": True, **describe(code, registry)})
        except CodeError as exc:
            bad += 1
            results.append({"ok": False, "input": code, "reason": str(exc)})
    if as_json:
        print_json(results)
    else:
        print_table(
            "codes",
            ["input", "kind", "parts", "key", "product / reason"],
            [
                (r["input"], r.get("kind"), _parts(r), r.get("key"), _summary(r))
                if r["ok"]
                else (r["input"], "invalid", "", "", r["reason"])
                for r in results
            ],
        )
    if bad:
        raise typer.Exit(1)


def _read_lines(file: Path) -> list[tuple[int, str]]:
    text = sys.stdin.read() if str(file) == "-" else read_text(file)
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


@codes_app.command("validate")
def validate_cmd(
    codes: Annotated[list[str] | None, typer.Argument(help="Codes to validate.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="File with one code per line ('-': stdin).")
    ] = None,
    db: DbOption = None,
    rules: RulesOption = None,
    products: ProductsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate codes fully (issuer rule, length, characters, check digits, dates, registered
    product). Every bad code is reported with its line and reason; exit 1 if any is bad."""
    from yaolian.codes.bulk import validate_many  # pandas and polars: this command's only

    if not codes and file is None:
        raise CodeError("give codes as arguments or --file F")
    numbered = _read_lines(file) if file is not None else []
    numbered += [(n, c.strip()) for n, c in enumerate(codes or [], 1)]
    registry = _registry(db, rules, products)
    result = validate_many([c for _, c in numbered], registry)
    place = "line" if file is not None else "arg"
    problems = [
        {place: numbered[i][0], "code": numbered[i][1], "reason": reason}
        for i, reason in result.problems
    ]
    if as_json:
        print_json(
            {
                "total": result.total,
                "valid": result.n_ok,
                "invalid": len(problems),
                "problems": problems,
            }
        )
    else:
        if problems:
            print_table(
                "invalid codes",
                [place, "code", "reason"],
                [(p[place], p["code"], p["reason"]) for p in problems],
            )
        style = "red" if problems else "green"
        console.print(
            f"[{style}]{result.n_ok} valid, {len(problems)} invalid[/] of {result.total} codes"
        )
    if problems:
        raise typer.Exit(1)


@codes_app.command("issue")
def issue_cmd(
    product_code: Annotated[str, typer.Argument(help="药品标识码 (or GTIN-14) of the product.")],
    quantity: Annotated[int, typer.Option("--quantity", "-n", help="How many codes.")] = 10,
    lot: Annotated[str | None, typer.Option("--lot", help="Batch number (批号).")] = None,
    expiry: Annotated[
        str | None, typer.Option("--expiry", help="Expiry date YYYY-MM-DD (有效期至).")
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option("--request-id", help="Idempotency key: the same id returns the same codes."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write print lines: .csv or .txt.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue unique, unguessable codes for a product × batch (赋码) and export print lines."""

    expiry_date = None
    if expiry is not None:
        try:
            expiry_date = parse_local_date(expiry)
        except ValueError as exc:
            raise CodeError(str(exc), place="--expiry") from None
    if out is not None and out.suffix.lower() not in (".csv", ".txt"):  # before any is issued
        raise CodeError("output file must end in .csv or .txt", place=str(out))
    engine = open_store(db, create=True)
    registry = CodeRegistry.for_store(engine)
    request = IssueRequest(
        request_id or f"cli-{uuid.uuid4()}", product_code, quantity, lot, expiry_date
    )
    with write_tx(engine) as conn:
        result = issue_codes(conn, registry, request)
        detail = {"request": request.request_id, "quantity": quantity, "lot": lot}
        append_audit(conn, None, "codes.issue", product_code, detail)
    if out is not None:
        text = export_csv(result) if out.suffix.lower() == ".csv" else export_text(result)
        try:
            out.write_text(text, "utf-8")
        except OSError as exc:
            raise CodeError(
                f"cannot write: {exc.strerror}; the codes are issued under request id "
                f"{request.request_id!r}: --request-id {request.request_id} answers them again",
                place=str(out),
            ) from exc
    if as_json:
        print_json(
            {
                "request_id": request.request_id,
                "reused": result.reused,
                "rule": result.rule,
                "product": result.product.as_dict(),
                "codes": result.print_lines(),
            }
        )
        return
    head = result.codes[:20]
    print_table(
        f"{len(result.codes)} codes · {result.product.generic_name} · request {request.request_id}"
        + (" (already issued)" if result.reused else ""),
        ["#", "code", "serial"],
        [(c.seq, c.code, c.serial) for c in head],
    )
    if len(result.codes) > len(head):
        console.print(f"… {len(result.codes) - len(head)} more")
    if out is not None:
        console.print(f"print lines written to {out}")


@codes_app.command("render")
def render_cmd(
    data: Annotated[str, typer.Argument(help="Code or GS1 element string to encode.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file: .png or .svg.")],
    kind: Annotated[str, typer.Option("--kind", help="datamatrix or qr.")] = "datamatrix",
    scale: Annotated[int, typer.Option("--scale", help="Pixels per module.")] = 4,
) -> None:
    """Render a GS1 DataMatrix / GS1 QR (GS1 element strings) or a plain symbol."""
    if kind not in ("datamatrix", "qr"):
        raise CodeError(f"unknown kind {kind!r}: use datamatrix or qr", place="--kind")
    if not 1 <= scale <= 50:
        raise CodeError("scale must be 1–50", place="--scale")
    symbol: Kind = "qr" if kind == "qr" else "datamatrix"
    render_to_file(data.replace("\\x1d", "\x1d"), out, symbol, scale)
    console.print(f"{kind} written to {out}")


@codes_app.command("read")
def read_cmd(
    image: Annotated[Path, typer.Argument(help="Image file (PNG, JPEG …).")],
    as_json: JsonOption = False,
) -> None:
    """Read every barcode in an image; GS1 data comes back with GS separators."""
    found = read_image(image)
    if as_json:
        print_json([d.as_dict() for d in found])
    else:
        print_table(
            str(image),
            ["format", "gs1", "data", "element string"],
            [(d.format, d.gs1, d.text.replace("\x1d", "<GS>"), d.hri) for d in found],
        )
    if not found:
        console_err.print("no barcode found")
        raise typer.Exit(1)
