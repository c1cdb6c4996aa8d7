"""One helper for functions that accept either an engine (own transaction) or a connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

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
