"""Helpers for functions that accept either an engine (own transaction) or a connection, and
an insert-or-update that both databases run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite

from yaolian.store.engine import writing


@contextmanager
def write_tx(bind: Engine | Connection) -> Iterator[Connection]:
    """``bind`` itself when it is a connection (the caller owns the transaction), else a new
    write transaction on the engine, committed on success."""
    if isinstance(bind, Connection):
        yield bind
        return
    with writing(bind) as conn:
        yield conn


@contextmanager
def read_tx(bind: Engine | Connection) -> Iterator[Connection]:
    """``bind`` itself when it is a connection, else a fresh connection for reading."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


def upsert(conn: Connection, table: Table, keys: list[str], values: dict[str, Any]) -> None:
    """Insert ``values`` into ``table``; a row with the same ``keys`` (a unique index) is
    updated instead (``INSERT … ON CONFLICT``, SQLite and PostgreSQL alike)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    updates = {k: stmt.excluded[k] for k in values if k not in keys}
    if updates:
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))
    else:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))
