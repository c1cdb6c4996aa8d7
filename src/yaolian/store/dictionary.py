"""The code dictionary: canonical code key (``yaolian.codes.identity``) ↔ integer id.

Every table refers to codes by id, so a code is stored once however many events name it, and
lookups compare integers. Bulk get-or-create is one or two set-based statements: SQLite reads the
keys from one JSON array parameter (``json_each``), PostgreSQL from a temporary table filled by
``COPY``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection

_CHUNK = 50_000
SMALL_INTERN = 1_000  # PostgreSQL: up to this many keys go as one array parameter, not by COPY
_COPY_SPECIAL = re.compile(r"[\\\t\r]")  # characters text COPY would read as escapes


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def lookup_codes(conn: Connection, keys: Collection[str]) -> dict[str, int]:
    """Ids of the keys already in the dictionary (unknown keys are left out)."""
    found: dict[str, int] = {}
    if not keys:
        return found
    raw: Any = conn.connection.dbapi_connection
    ordered = list(dict.fromkeys(keys))
    if conn.dialect.name == "sqlite":
        sql = "SELECT c.key, c.id FROM json_each(?) j JOIN code c ON c.key = j.value"
        for chunk in _chunks(ordered):
            found.update(raw.execute(sql, (orjson.dumps(chunk).decode(),)).fetchall())
    else:
        with raw.cursor() as cur:
            for chunk in _chunks(ordered):
                cur.execute("SELECT key, id FROM code WHERE key = ANY(%s)", (chunk,))
                found.update(cur.fetchall())
    return found


class Interned(NamedTuple):
    """Result of :func:`intern_codes`: the id of every key, and the ids it added just now."""

    ids: dict[str, int]
    fresh: set[int]  # first interned by this call: nothing in the store names them yet


def intern_codes(conn: Connection, keys: Collection[str]) -> Interned:
    """Ids for every key, adding the missing ones (inside the caller's transaction).

    New keys are inserted and their ids returned by the same statement (those are ``fresh``);
    only keys that were already there are looked up. Keys go in sorted order: the unique index
    is filled page by page.
    """
    if not keys:
        return Interned({}, set())
    raw: Any = conn.connection.dbapi_connection
    found: dict[str, int] = {}
    ordered = sorted(set(keys))  # sorted: index pages are filled in order (≈2× faster on SQLite)
    if conn.dialect.name == "sqlite":
        insert = (
            "INSERT INTO code(key) SELECT value FROM json_each(?) WHERE true "
            "ON CONFLICT DO NOTHING RETURNING key, id"
        )
        for chunk in _chunks(ordered):
            found.update(raw.execute(insert, (orjson.dumps(chunk).decode(),)).fetchall())
    elif len(ordered) <= SMALL_INTERN:  # one statement: a temp table costs 4 round trips more
        with raw.cursor() as cur:
            cur.execute(
                "INSERT INTO code(key) SELECT unnest(%s::text[]) ORDER BY 1 "
                "ON CONFLICT DO NOTHING RETURNING key, id",
                (ordered,),
            )
            found.update(cur.fetchall())
    else:
        return _intern_by_copy(raw, ordered)
    fresh = set(found.values())
    if len(found) < len(ordered):
        found.update(lookup_codes(conn, [k for k in ordered if k not in found]))
    return Interned(found, fresh)


def _intern_by_copy(raw: Any, ordered: list[str]) -> Interned:
    """PostgreSQL, many keys: COPY into a temp table, insert the new ones from it, look up the
    others by a correlated sub-select — one probe of the key index per key, whatever the size
    of the dictionary (a join would hash all of it: the planner knows nothing of the temp
    table)."""
    found: dict[str, int] = {}
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS intern_key (key text) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE intern_key")
        with cur.copy("COPY intern_key (key) FROM STDIN") as copy:
            text = "\n".join(ordered)
            if _COPY_SPECIAL.search(text) or text.count("\n") != len(ordered) - 1:
                for key in ordered:  # let psycopg escape them
                    copy.write_row((key,))
            else:
                copy.write(text + "\n")
        cur.execute(
            "INSERT INTO code(key) SELECT key FROM intern_key ORDER BY key "
            "ON CONFLICT DO NOTHING RETURNING key, id"
        )
        found.update(cur.fetchall())
        fresh = set(found.values())
        if len(found) < len(ordered):
            cur.execute(
                "SELECT k.key, (SELECT c.id FROM code c WHERE c.key = k.key) FROM intern_key k"
            )
            found.update(row for row in cur.fetchall() if row[0] not in found)
    return Interned(found, fresh)


def code_keys(conn: Connection, ids: Collection[int]) -> dict[int, str]:
    """Canonical keys of code ids (unknown ids are left out)."""
    if not ids:
        return {}
    raw: Any = conn.connection.dbapi_connection
    wanted = list(dict.fromkeys(int(i) for i in ids))
    out: dict[int, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        if conn.dialect.name == "sqlite":
            rows = raw.execute(
                "SELECT c.id, c.key FROM json_each(?) j JOIN code c ON c.id = j.value",
                (orjson.dumps(chunk).decode(),),
            ).fetchall()
        else:
            with raw.cursor() as cur:
                cur.execute("SELECT id, key FROM code WHERE id = ANY(%s)", (chunk,))
                rows = cur.fetchall()
        out.update(rows)
    return out
