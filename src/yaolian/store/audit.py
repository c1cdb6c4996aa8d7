"""Tamper-evident audit log (审计日志): each entry's SHA-256 covers its content and the
previous hash.

Every data-changing use of an API key, every change made on the command line and every key
created or revoked is an entry; :func:`audit_entries` reads them back (who, what, when).
Changing, deleting or re-ordering any entry breaks the chain from that entry on, which
:func:`verify_audit_chain` reports with the entry id.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, or_, select

from yaolian.epcis.model import utc_text
from yaolian.errors import Problem, Report
from yaolian.store.schema import api_key, audit_log, enterprise


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
    """Recompute the chain; ``ok`` counts intact entries (content matches the hash, linked to
    the entry before), each fault is a problem naming the entry's id."""
    report = Report()
    prev: str | None = None
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).yield_per(1000)
    for row in rows:
        place = f"audit_log[{row.id}]"
        faults = []
        if row.prev_hash != prev:
            faults.append("previous-hash link broken (entry missing or moved)")
        expected = _entry_hash(
            row.prev_hash, row.time_us, row.api_key_id, row.action, row.target, row.detail
        )
        if row.hash != expected:
            faults.append("content does not match its hash (entry altered)")
        report.problems.extend(Problem(fault, place) for fault in faults)
        if not faults:
            report.ok += 1
        prev = row.hash
    return report


def chain_status(conn: Connection) -> dict[str, Any]:
    """:func:`verify_audit_chain` as JSON: ``intact``, how many ``entries`` were checked and
    each of the ``breaks`` (the entry, what is wrong)."""
    report = verify_audit_chain(conn)
    broken = {p.place for p in report.problems}
    return {
        "intact": not broken,
        "entries": report.ok + len(broken),
        "breaks": [{"place": p.place, "reason": p.reason} for p in report.problems],
    }


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to read: ``action`` itself or a family (``supply`` = ``supply.*``), made
    with the key of ``key_prefix`` or with a key of ``enterprise_id``, in [since, until)."""

    action: str | None = None
    key_prefix: str | None = None
    enterprise_id: int | None = None
    since_us: int | None = None
    until_us: int | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry with the key that made it (``prefix`` None: a local operator, e.g. the CLI)."""

    id: int
    time_us: int
    action: str
    target: str | None
    detail: Any
    prefix: str | None  # the key's prefix
    role: str | None
    label: str | None
    enterprise: str | None  # the key's enterprise, 统一社会信用代码
    enterprise_name: str | None
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form: the time as UTC text, the actor as one object (null: local operator)."""
        actor = None
        if self.prefix is not None:
            actor = {
                "prefix": self.prefix,
                "role": self.role,
                "label": self.label,
                "enterprise": self.enterprise,
                "enterpriseName": self.enterprise_name,
            }
        return {
            "id": self.id,
            "time": utc_text(self.time_us),
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "actor": actor,
            "hash": self.hash,
        }


def audit_entries(conn: Connection, flt: AuditFilter) -> tuple[int, list[AuditEntry]]:
    """(how many entries match, the page of them newest first)."""
    joined = audit_log.outerjoin(api_key, api_key.c.id == audit_log.c.api_key_id).outerjoin(
        enterprise, enterprise.c.id == api_key.c.enterprise_id
    )
    where = []
    if flt.action is not None:
        where.append(
            or_(
                audit_log.c.action == flt.action,
                audit_log.c.action.startswith(flt.action + ".", autoescape=True),
            )
        )
    if flt.key_prefix is not None:
        where.append(api_key.c.prefix == flt.key_prefix)
    if flt.enterprise_id is not None:
        where.append(api_key.c.enterprise_id == flt.enterprise_id)
    if flt.since_us is not None:
        where.append(audit_log.c.time_us >= flt.since_us)
    if flt.until_us is not None:
        where.append(audit_log.c.time_us < flt.until_us)
    total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    rows = conn.execute(
        select(
            audit_log.c.id,
            audit_log.c.time_us,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.detail,
            api_key.c.prefix,
            api_key.c.role,
            api_key.c.label,
            enterprise.c.uscc,
            enterprise.c.name,
            audit_log.c.hash,
        )
        .select_from(joined)
        .where(*where)
        .order_by(audit_log.c.id.desc())
        .limit(flt.limit)
        .offset(flt.offset)
    )
    return int(total), [AuditEntry(*row) for row in rows]
