"""Shared CLI pieces: consoles, the ``--db`` and ``--json`` options, JSON and table output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import orjson
import typer
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
    """Print rows as a rich table."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def time_option(value: str | None, place: str) -> int | None:
    """A time option as epoch microseconds (ISO 8601, or a local date or time as
    :func:`~yaolian.epcis.model.parse_local_time` reads it: 北京时间); None when not given."""
    if value is None:
        return None
    try:
        return to_epoch_us(parse_local_time(value).isoformat())
    except ValueError as exc:
        raise QueryError(str(exc), place=place) from None


def china_time_text(us: int) -> str:
    """A stored time (epoch µs) as 北京时间 for a table: ``2026-12-07 20:46:07``."""
    return from_epoch_us(us).astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")
