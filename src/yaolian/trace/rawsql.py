"""Plain DB-API access for the hot paths (projection folding, verification): one SQL text per
query, ids passed as ONE parameter (``json_each`` on SQLite, ``= ANY(array)`` on PostgreSQL),
``executemany`` for rows — no per-statement SQL construction.

SQL is written with ``?`` placeholders and ``{ids}`` where an id list goes; :func:`sql` adapts
it to the connection's dialect (cached).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

IDS_CHUNK = 50_000


@functools.cache
def _adapt(text: str, pg: bool) -> str:
    if pg:
        return text.replace("{ids}", "= ANY(?)").replace("?", "%s")
    return text.replace("{ids}", "IN (SELECT value FROM json_each(?))")


def is_pg(conn: Connection) -> bool:
    """Whether the connection talks to PostgreSQL."""
    return conn.dialect.name == "postgresql"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for a short read-only request (verify).

    On PostgreSQL in autocommit: each statement sees its own snapshot, as it would in a READ
    COMMITTED transaction, without the BEGIN and COMMIT round trips — and without the ROLLBACK
    the pool resets a returned connection with, on which psycopg drops its prepared statements
    (the hot queries would be planned again on every request). On SQLite one transaction (one
    snapshot).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
        return
    with engine.connect() as conn, conn.begin():
        yield conn


def sql(conn: Connection, text: str) -> str:
    """``text`` in the connection's paramstyle, ``{ids}`` expanded."""
    return _adapt(text, is_pg(conn))


def cursor(conn: Connection) -> Any:
    """A DB-API cursor on the connection's current transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw.cursor()


def ids_param(conn: Connection, ids: Sequence[Any]) -> Any:
    """An id list as the single parameter ``{ids}`` expects."""
    return list(ids) if is_pg(conn) else orjson.dumps(list(ids)).decode()


def _ids_chunks(conn: Connection, ids: Collection[Any]) -> Iterator[Any]:
    """Sorted ids as ``{ids}`` parameters of at most :data:`IDS_CHUNK` ids each; integer ids go
    to PostgreSQL as one array literal (text), several times faster to send than a list."""
    ordered: list[Any] = sorted(ids)
    pg_ints = is_pg(conn) and bool(ordered) and isinstance(ordered[0], int)
    for start in range(0, len(ordered), IDS_CHUNK):
        chunk = ordered[start : start + IDS_CHUNK]
        yield "{" + ",".join(map(str, chunk)) + "}" if pg_ints else ids_param(conn, chunk)


def fetch(conn: Connection, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """All rows of one query."""
    cur = cursor(conn)
    cur.execute(sql(conn, text), tuple(params))
    return list(cur.fetchall())


def fetch_batch(
    conn: Connection, queries: Sequence[tuple[str, Sequence[Any]]]
) -> list[list[tuple[Any, ...]]]:
    """The rows of several independent queries, in order; on PostgreSQL they go in one
    pipeline (one network round trip instead of one per query)."""
    if len(queries) < 2 or not is_pg(conn):
        return [fetch(conn, text, params) for text, params in queries]
    raw: Any = conn.connection.dbapi_connection
    cursors = []
    with raw.pipeline():
        for text, params in queries:
            cur = raw.cursor()
            cur.execute(sql(conn, text), tuple(params))
            cursors.append(cur)
    return [list(cur.fetchall()) for cur in cursors]


def fetch_ids(
    conn: Connection, text: str, ids: Collection[int] | Collection[str], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Rows of a query with ``{ids}`` (its first parameter), the ids sent in chunks."""
    out: list[tuple[Any, ...]] = []
    cur = cursor(conn)
    q = sql(conn, text)
    for chunk in _ids_chunks(conn, ids):
        cur.execute(q, (chunk, *params))
        out.extend(cur.fetchall())
    return out


def execute_ids(conn: Connection, text: str, ids: Collection[int]) -> None:
    """A statement with ``{ids}`` (e.g. a DELETE), the ids sent in chunks."""
    cur = cursor(conn)
    q = sql(conn, text)
    for chunk in _ids_chunks(conn, ids):
        cur.execute(q, (chunk,))


def insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT of tuples in ``columns`` order: ``executemany`` on SQLite, ``COPY`` on
    PostgreSQL (values adapted by psycopg, as for a query)."""
    if not rows:
        return
    if is_pg(conn):
        with (
            cursor(conn) as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    cursor(conn).executemany(
        sql(conn, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"), rows
    )


def insert_alike(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """INSERT of tuples that mostly differ only in their first column (a code id: the codes in
    one container share everything else). On SQLite the rows alike go as ONE row of parameters
    with their first values as a JSON array (``INSERT … SELECT value, ? … FROM json_each(?)``):
    binding every column of every row costs several times the insert itself. PostgreSQL: COPY,
    as :func:`insert`."""
    if is_pg(conn):
        insert(conn, table, columns, list(rows))
        return
    alike: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in rows:
        alike[tuple(row[1:])].append(row[0])
    if not alike:
        return
    executemany(
        conn,
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT value, "
        + ", ".join(f"?{i}" for i in range(2, len(columns) + 1))
        + " FROM json_each(?1)",
        [(orjson.dumps(firsts).decode(), *rest) for rest, firsts in alike.items()],
    )


def executemany(conn: Connection, text: str, rows: Sequence[Sequence[Any]]) -> None:
    """``executemany`` of any statement."""
    if rows:
        cursor(conn).executemany(sql(conn, text), rows)
