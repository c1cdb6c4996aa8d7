"""Shared CLI pieces: consoles, the ``--db`` and ``--json`` options, JSON and table output."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from yaolian.epcis.model import CHINA_TIME, from_epoch_us, parse_local_time, to_epoch_us
from yaolian.errors import QueryError, YaolianError
from yaolian.store.engine import open_engine

console = Console()
console_err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database: a SQLite file path or a URL (default: $YAOLIAN_DATABASE_URL or the "
        "per-user SQLite file).",
    ),
]
SHORT_CELL = 10  # display cells: a column no wider than this is not wrapped, room allowing
LONG_CELL_ROOM = 8  # display cells kept for each wider column, which wraps
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def open_store(db: str | None, *, create: bool = False) -> Engine:
    """The store for ``--db``, migrated. Only the commands that start a store (``capture``,
    ``masterdata load``, ``db init``, ``keys create``, ``serve``, ``codes issue``) pass
    ``create``: elsewhere a mistyped path is an error, not a new empty store. A database that
    cannot be reached is a clear error too."""
    try:
        return open_engine(db, create=create)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise YaolianError(f"cannot open the database: {reason}", place="--db") from None


def print_json(data: Any) -> None:
    """Print data as indented JSON (UTF-8, Chinese kept readable)."""
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows as a rich table. A cell too wide for the terminal wraps (folds) rather than
    being cut with an ellipsis, so codes and identifiers are always shown whole; a column whose
    cells are all short (numbers, statuses) keeps them on one line."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        console.print(f"{title or 'result'}: none found", style="dim")
        return
    widest = [max((cell_len(r[n]) for r in cells), default=0) for n in range(len(columns))]
    keep = [w if w <= SHORT_CELL else 0 for w in widest]  # the short ones whole, if they fit
    room = LONG_CELL_ROOM * keep.count(0)  # what rich leaves the wrapping columns at least
    fits = sum(keep) + room + 3 * len(columns) + 1 <= console.width
    table = Table(title=title)
    for col, width in zip(columns, keep, strict=True):
        table.add_column(col, overflow="fold", min_width=width if fits and width else None)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _cell(value: Any) -> str:
    """A table cell: a number of packs or days as people write it (7, 8.85 — not 7.0 or
    8.850000000001), nothing for None."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def local_time_option(value: str, place: str) -> datetime:
    """A time option as an aware datetime: ISO 8601, or a local date or time as
    :func:`~yaolian.epcis.model.parse_local_time` reads it (北京时间)."""
    try:
        return parse_local_time(value)
    except ValueError as exc:
        raise QueryError(str(exc), place=place) from None


def time_option(value: str | None, place: str) -> int | None:
    """A time option (:func:`local_time_option`) as epoch microseconds; None when not given."""
    return None if value is None else to_epoch_us(local_time_option(value, place).isoformat())


def china_time_text(us: int) -> str:
    """A stored time (epoch µs) as 北京时间 for a table: ``2026-12-07 20:46:07``."""
    return from_epoch_us(us).astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")
