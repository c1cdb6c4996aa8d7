"""Tamper-evident audit log: each entry's SHA-256 covers its content and the previous hash.

Changing, deleting or re-ordering any entry breaks the chain from that entry on, which
:func:`verify_audit_chain` reports with the entry id.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from sqlalchemy import Connection, select

from yaolian.errors import Problem, Report
from yaolian.store.schema import audit_log


def _entry_hash(
    prev_hash: str | None,
    time_us: int,
    api_key_id: int | None,
    action: str,
    target: str | None,
    detail: Any,
) -> str:
    body = orjson.dumps(
        [prev_hash or "", time_us, api_key_id, action, target, detail],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def append_audit(
    conn: Connection,
    api_key_id: int | None,
    action: str,
    target: str | None = None,
    detail: Any = None,
) -> int:
    """Append an entry chained to the last one; returns its id. ``conn``: the caller's
    :func:`~yaolian.store.engine.writing` transaction (one writer at a time keeps one chain)."""
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    time_us = time.time_ns() // 1000
    digest = _entry_hash(prev, time_us, api_key_id, action, target, detail)
    row_id = conn.execute(
        audit_log.insert()
        .values(
            time_us=time_us,
            api_key_id=api_key_id,
            action=action,
            target=target,
            detail=detail,
            prev_hash=prev,
            hash=digest,
        )
        .returning(audit_log.c.id)
    ).scalar_one()
    return int(row_id)


def verify_audit_chain(conn: Connection) -> Report:
    """Recompute the chain; ``ok`` counts intact entries, each break is a problem naming the id."""
    report = Report()
    prev: str | None = None
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).yield_per(1000)
    for row in rows:
        place = f"audit_log[{row.id}]"
        if row.prev_hash != prev:
            report.problems.append(
                Problem("previous-hash link broken (entry missing or moved)", place)
            )
        expected = _entry_hash(
            row.prev_hash, row.time_us, row.api_key_id, row.action, row.target, row.detail
        )
        if row.hash != expected:
            report.problems.append(
                Problem("content does not match its hash (entry altered)", place)
            )
        else:
            report.ok += 1
        prev = row.hash
    return report
