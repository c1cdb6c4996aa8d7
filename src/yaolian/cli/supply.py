"""CLI: supply commands (``yaolian supply …``) and reserves (``yaolian reserves …``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from yaolian.cli.common import DbOption, JsonOption, open_store, print_json, print_table
from yaolian.cli.names import Names
from yaolian.errors import ValidationError
from yaolian.store.audit import append_audit
from yaolian.store.tx import write_tx
from yaolian.supply import ledger, reserves, signals

AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Day YYYY-MM-DD (default: today)")]
ProductOption = Annotated[str | None, typer.Option("--product", help="Product code")]
RegionOption = Annotated[str | None, typer.Option("--region", help="Region code")]


def _day(value: str | None, place: str = "--as-of") -> date | None:
    return signals.parse_day(value, place) if value else None


def register(app: typer.Typer) -> None:
    """Add ``supply`` and ``reserves`` command groups to the root app."""
    supply = typer.Typer(
        help="Supply assurance: stock, consumption, forecasts, warnings.", no_args_is_help=True
    )
    res = typer.Typer(help="Reserve plans (医药储备) and dispatch.", no_args_is_help=True)
    app.add_typer(supply, name="supply")
    app.add_typer(res, name="reserves")

    @supply.command("stock")
    def stock_cmd(
        db: DbOption = None,
        as_of: AsOfOption = None,
        product: ProductOption = None,
        site: Annotated[
            str | None, typer.Option("--site", help="Site location id (urn:epc:id:sgln:…)")
        ] = None,
        region: RegionOption = None,
        json: JsonOption = False,
    ) -> None:
        """Stock on hand and in transit per product × site."""
        with open_store(db).connect() as conn:
            lines = ledger.stock(
                conn, as_of=_day(as_of), product=product, site_id=site, region=region
            )
            names = Names(conn, (x.product for x in lines), (x.site for x in lines))
        rows = [
            (
                x.product,
                x.site,
                x.region,
                x.site_kind,
                x.on_hand,
                x.units,
                x.net_packs,
                x.in_transit,
            )
            for x in lines
        ]
        cols = ("product", "site", "region", "kind", "on_hand", "units", "net_packs", "in_transit")
        if json:
            print_json([dict(zip(cols, r, strict=True)) for r in rows])
            return
        print_table(
            "Stock",
            ("product", "name", *cols[1:]),
            [(r[0], names.product(r[0]), names.site(r[1]), *r[2:]) for r in rows],
        )

    @supply.command("consumption")
    def consumption_cmd(
        db: DbOption = None,
        as_of: AsOfOption = None,
        product: ProductOption = None,
        region: RegionOption = None,
        level: Annotated[str, typer.Option("--level", help="site, region or national")] = "region",
        periods: Annotated[int, typer.Option("--periods", help="30-day periods for AMC")] = 3,
        json: JsonOption = False,
    ) -> None:
        """Stockout-adjusted AMC and days/months of supply."""
        from yaolian.supply import consumption  # polars: loaded by the commands that use it

        with open_store(db).connect() as conn:
            lines = consumption.supply_lines(
                conn,
                as_of=_day(as_of),
                level=level,  # type: ignore[arg-type]
                product=product,
                region=region,
                periods=periods,
            )
            names = Names(conn, (x.product for x in lines), (x.where for x in lines))
        cols = (
            "product",
            "where",
            "on_hand",
            "in_transit",
            "mfr_stock",
            "amc",
            "stockout_days",
            "days_of_supply",
        )
        rows = [
            (
                x.product,
                x.where,
                x.on_hand,
                x.in_transit,
                x.manufacturer_stock,
                round(x.amc, 2),
                x.stockout_days,
                None if x.days_of_supply is None else round(x.days_of_supply, 1),
            )
            for x in lines
        ]
        if json:
            print_json([dict(zip(cols, r, strict=True)) for r in rows])
        else:
            print_table(
                f"Supply ({level})",
                ("product", "name", *cols[1:]),
                [(r[0], names.product(r[0]), names.site(r[1]), *r[2:]) for r in rows],
            )

    @supply.command("forecast")
    def forecast_cmd(
        db: DbOption = None,
        as_of: AsOfOption = None,
        product: ProductOption = None,
        region: RegionOption = None,
        weeks: Annotated[int, typer.Option("--weeks", help="Horizon in weeks")] = 13,
        save: Annotated[bool, typer.Option("--save", help="Store for the risk model")] = False,
        json: JsonOption = False,
    ) -> None:
        """Demand forecasts per product × region (model chosen by cross-validation)."""
        from yaolian.supply import forecast  # polars and statsforecast: this command's only

        engine = open_store(db)
        with engine.connect() as conn:
            run = forecast.forecast_demand(
                conn, _day(as_of), product=product, region=region, horizon_weeks=weeks
            )
        if save:
            with write_tx(engine) as conn:
                forecast.store_forecasts(conn, run)
        if json:
            print_json(
                {"forecasts": [f.as_dict() for f in run.forecasts.values()], "timings": run.timings}
            )
            return
        print_table(
            "Forecasts (packs/week)",
            (
                "series",
                "kind",
                "model",
                "next week",
                "80% interval",
                "seasonal naive",
                "MAE",
                "naive MAE",
            ),
            [
                (
                    f.series,
                    f.kind,
                    f.model,
                    round(f.mean[0], 1),
                    f"{f.lo[0]:.1f}–{f.hi[0]:.1f}",
                    round(f.baseline[0], 1),
                    None if f.mae is None else round(f.mae, 2),
                    None if f.baseline_mae is None else round(f.baseline_mae, 2),
                )
                for f in run.forecasts.values()
            ],
        )

    @supply.command("warnings")
    def warnings_cmd(
        db: DbOption = None,
        as_of: AsOfOption = None,
        min_level: Annotated[str, typer.Option("--min-level")] = "yellow",
        product: ProductOption = None,
        region: RegionOption = None,
        naive: Annotated[bool, typer.Option("--naive", help="The naive baseline")] = False,
        json: JsonOption = False,
    ) -> None:
        """Shortage warnings with expected stockout dates and reasons."""
        from yaolian.supply import warnings  # polars: loaded by the commands that use it

        with open_store(db).connect() as conn:
            found = (
                warnings.naive_warnings(conn, _day(as_of), product=product, region=region)
                if naive
                else warnings.compute_warnings(
                    conn,
                    _day(as_of),
                    min_level=min_level,  # type: ignore[arg-type]
                    product=product,
                    region=region,
                )
            )
            names = Names(conn, (w.product for w in found))
        if json:
            print_json([w.as_dict() for w in found])
            return
        print_table(
            "Shortage warnings",
            (
                "level",
                "product",
                "name",
                "region",
                "stockout",
                "lead days",
                "days of supply",
                "reasons",
            ),
            [
                (
                    w.level,
                    w.product,
                    names.product(w.product),
                    w.region,
                    w.expected_stockout,
                    w.lead_days,
                    None if w.days_of_supply is None else round(w.days_of_supply, 1),
                    "; ".join(w.reasons),
                )
                for w in found
            ],
        )

    @supply.command("discontinue")
    def discontinue_cmd(
        product: str,
        holder: str,
        stop_date: str,
        reason: str,
        filed: Annotated[
            str,
            typer.Option(
                "--filed", help="Date the holder filed the report (YYYY-MM-DD, or ISO time)."
            ),
        ],
        remaining: Annotated[float, typer.Option("--remaining", help="Packs left")] = 0.0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Record a discontinuation report (停产报告) as filed on its own date."""
        with write_tx(open_store(db)) as conn:
            report = signals.file_discontinuation(
                conn,
                product=product,
                holder=holder,
                stop_date=stop_date,
                reason=reason,
                remaining_packs=remaining,
                filed_on=filed,
            )
            append_audit(conn, None, "supply.discontinuation", product, report.as_dict())
        if json:
            print_json(report.as_dict())
        else:
            print_table(
                "Discontinuation filed", list(report.as_dict()), [list(report.as_dict().values())]
            )

    @supply.command("withdraw")
    def withdraw_cmd(
        report: Annotated[int, typer.Argument(help="The report's id (supply discontinue).")],
        on: Annotated[
            str,
            typer.Option("--on", help="Date the holder withdrew it (YYYY-MM-DD, or ISO time)."),
        ],
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Withdraw a discontinuation report as of its own date: production resumes (恢复生产)."""
        with write_tx(open_store(db)) as conn:
            found = signals.withdraw_discontinuation(conn, report, withdrawn_on=on)
            append_audit(
                conn, None, "supply.discontinuation.withdraw", found.product, found.as_dict()
            )
        if json:
            print_json(found.as_dict())
        else:
            print_table(
                "Discontinuation withdrawn", list(found.as_dict()), [list(found.as_dict().values())]
            )

    @supply.command("stocktake")
    def stock_take_cmd(
        site: Annotated[str, typer.Argument(help="Site (location id) that was counted.")],
        counts: Annotated[list[str], typer.Argument(help="PRODUCT=PACKS per counted product.")],
        at: Annotated[
            str,
            typer.Option("--at", help="When counted: YYYY-MM-DD or an ISO 8601 time with offset."),
        ],
        by: Annotated[str | None, typer.Option("--by", help="Who counted.")] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Record a stock-take (盘点) and show each line against book stock (盘盈/盘亏)."""
        counted: dict[str, float] = {}
        for item in counts:
            product, _, packs = item.partition("=")
            try:
                counted[product] = float(packs)
            except ValueError:
                raise ValidationError(f"{item!r} is not PRODUCT=PACKS", place="counts") from None
        with write_tx(open_store(db)) as conn:
            lines = ledger.record_stock_take(
                conn, site, counted, counted_at=signals.filing_time(at, "--at"), counted_by=by
            )
            detail = {"stocktakes": [line.as_dict() for line in lines]}
            append_audit(conn, None, "supply.stocktake", site, detail)
            names = Names(conn, (x.product for x in lines), (x.site for x in lines))
        _print_stock_take("Stock-take", lines, names, json)

    @supply.command("stocktakes")
    def stock_takes_cmd(
        site: Annotated[str | None, typer.Option("--site")] = None,
        differences: Annotated[
            bool, typer.Option("--differences", help="Only lines that differ from book.")
        ] = False,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Recorded stock-take lines, newest first."""
        with open_store(db).connect() as conn:
            lines = ledger.stock_takes(conn, site, only_differences=differences)
            names = Names(conn, (x.product for x in lines), (x.site for x in lines))
        _print_stock_take("Stock-takes", lines, names, json)

    @supply.command("match")
    def match_cmd(
        db: DbOption = None,
        product: ProductOption = None,
        as_of: AsOfOption = None,
        transfers: Annotated[
            bool, typer.Option("--transfers", help="Region transfers, not posts")
        ] = False,
        json: JsonOption = False,
    ) -> None:
        """Match demand posts to offers, or suggest transfers between regions."""
        from yaolian.supply import matching  # scipy's optimiser: loaded by this command only

        with open_store(db).connect() as conn:
            found, unmet = (
                matching.suggest_transfers(conn, _day(as_of), product=product)
                if transfers
                else matching.match_posts(conn, product=product)
            )
            names = Names(
                conn, (m.product for m in found), [s for m in found for s in (m.source, m.sink)]
            )
        if json:
            print_json({"matches": [m.as_dict() for m in found], "unmet": unmet})
            return
        print_table(
            "Matches",
            ("from", "to", "product", "name", "packs", "lead days", "arrives", "expiry"),
            [
                (
                    names.site(m.source),
                    names.site(m.sink),
                    m.product,
                    names.product(m.product),
                    m.quantity,
                    m.lead_days,
                    m.arrives,
                    m.expiry,
                )
                for m in found
            ],
        )
        if unmet:
            print_table("Unmet", ("need", "packs"), list(unmet.items()))

    @res.command("list")
    def reserves_list(db: DbOption = None, json: JsonOption = False) -> None:
        """Reserve plans with stock against target."""
        with open_store(db).connect() as conn:
            found = [s.as_dict() for s in reserves.reserve_status(conn)]
            names = Names(conn, (r["product"] for r in found), (r["site"] for r in found))
        if json:
            print_json(found)
        else:
            cols = ("id", "product", "name", "level", "site", "target", "on_hand", "fill", "status")
            shown = [
                {**r, "name": names.product(r["product"]), "site": names.site(r["site"])}
                for r in found
            ]
            print_table("Reserves", cols, [[r[c] for c in cols] for r in shown])

    @res.command("plan")
    def reserves_plan(
        product: str, level: str, target: float, site: str, db: DbOption = None
    ) -> None:
        """Create a reserve plan."""
        with write_tx(open_store(db)) as conn:
            plan_id = reserves.create_plan(
                conn, product=product, level=level, target=target, site_id=site
            )
            detail = {"product": product, "level": level, "target": target, "site": site}
            append_audit(conn, None, "reserve.plan", product, detail)
        typer.echo(f"reserve plan {plan_id}")

    @res.command("dispatch")
    def reserves_dispatch(
        plan_id: int, to_site: str, packs: float, db: DbOption = None, json: JsonOption = False
    ) -> None:
        """Dispatch reserve stock (captured as a shipping event)."""
        order = reserves.dispatch(
            open_store(db),
            plan_id,
            to_site=to_site,
            packs=packs,
            then=lambda conn, order: append_audit(
                conn, None, "reserve.dispatch", str(plan_id), order
            ),
        )
        if json:
            print_json(order)
        else:
            print_table("Dispatch", list(order), [list(order.values())])


def _print_stock_take(
    title: str, lines: list[ledger.Discrepancy], names: Names, json: bool
) -> None:
    rows = [line.as_dict() for line in lines]
    if json:
        print_json(rows)
    else:
        cols = ["site", "product", "name", "counted", "book", "difference", "counted_at"]
        shown = [
            {**r, "site": names.site(r["site"]), "name": names.product(r["product"])} for r in rows
        ]
        print_table(title, cols, [[r[c] for c in cols] for r in shown])
