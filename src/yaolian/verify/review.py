"""Alert review (预警核查处置): a regulator's finding on an alert, and the accounts of the
enterprises it concerns.

An alert is raised by the rules (``verify.anomalies``); what an inspector found when looking
into it is not in the event log, so it is kept apart, by the alert's stable key — a rebuild
that raises the same alert again finds its review. An alert without a review is ``open``
(待核查); a regulator's or admin's key (or the local command line) sets it to
``investigating`` (核查中), ``confirmed`` (属实: a real violation, handed to enforcement) or
``dismissed`` (排除: an explained or false alarm), with a note; ``open`` again clears it.

An enterprise the alert concerns (it handled the code, or the code is of its product) gives its
account (情况说明: a return re-sold by mistake, a transfer not yet reported …), one per
enterprise, which the regulator reads beside the alert; others' accounts are not shown to it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, select

from yaolian.errors import ForbiddenError, NotFoundError, ValidationError
from yaolian.store import schema as s
from yaolian.store.access import Viewer
from yaolian.store.tx import upsert
from yaolian.trace.directory import concerns_code

STATUSES = {
    "open": "待核查",
    "investigating": "核查中",
    "confirmed": "属实",
    "dismissed": "排除",
}
NOTE_MAX = 2000


def review_alert(
    conn: Connection,
    alert_id: int,
    status: str,
    note: str | None,
    viewer: Viewer,
    now_us: int | None = None,
) -> dict[str, Any]:
    """Record a finding on alert ``alert_id`` (its review, or none for ``open``); answers the
    alert's key and review. Regulators and admins review; an enterprise key gets 403."""
    if viewer.role not in ("regulator", "admin"):
        raise ForbiddenError("alerts are reviewed with a regulator's key", place="Authorization")
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", place="status")
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise ValidationError(f"a note has at most {NOTE_MAX} characters", place="note")
    key = conn.execute(select(s.alert.c.key).where(s.alert.c.id == alert_id)).scalar()
    if key is None:
        raise NotFoundError(f"no alert {alert_id}", place="alert")
    r = s.alert_review.c
    if status == "open":
        conn.execute(delete(s.alert_review).where(r.key == key))
        return {"id": alert_id, "key": key, "review": None}
    upsert(
        conn,
        s.alert_review,
        ["key"],
        {
            "key": key,
            "status": status,
            "note": note,
            "api_key_id": viewer.api_key_id,
            "updated_us": now_us if now_us is not None else time.time_ns() // 1000,
        },
    )
    return {"id": alert_id, "key": key, "review": reviews_of(conn, [key]).get(key)}


def reviews_of(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The reviews of these alert keys (absent: open), with the reviewing key's prefix and
    label (``by`` None: a local operator)."""
    if not keys:
        return {}
    r, k = s.alert_review.c, s.api_key.c
    rows = conn.execute(
        select(r.key, r.status, r.note, r.updated_us, k.prefix, k.label)
        .select_from(s.alert_review.outerjoin(s.api_key, k.id == r.api_key_id))
        .where(r.key.in_(keys))
    )
    return {
        row.key: {
            "status": row.status,
            "status_zh": STATUSES[row.status],
            "note": row.note,
            "updated_us": row.updated_us,
            "by": None if row.prefix is None else {"prefix": row.prefix, "label": row.label},
        }
        for row in rows
    }


def review_is(status: str, key: Any) -> ColumnElement[bool]:
    """SQL condition: the alert with key ``key`` (a column) has this review status (``open``:
    no review)."""
    r = s.alert_review.c
    if status == "open":
        return ~exists().where(r.key == key)
    return exists().where(r.key == key, r.status == status)


def respond_to_alert(
    conn: Connection, alert_id: int, note: str, viewer: Viewer, now_us: int | None = None
) -> dict[str, Any]:
    """Record the account (情况说明) of the viewer's enterprise on alert ``alert_id``, which
    must concern it (404 otherwise, as for an alert it does not see); a later account replaces
    it. Enterprise keys only: a regulator records a finding (:func:`review_alert`)."""
    ent = viewer.enterprise_id
    if viewer.role != "enterprise" or ent is None:
        raise ForbiddenError(
            "an account is an enterprise's; a regulator records a finding (review)",
            place="Authorization",
        )
    note = note.strip()
    if not note or len(note) > NOTE_MAX:
        raise ValidationError(f"an account has 1 to {NOTE_MAX} characters", place="note")
    a = s.alert.c
    key = conn.execute(
        select(a.key).where(a.id == alert_id, concerns_code(ent, a.code_id))
    ).scalar()
    if key is None:
        raise NotFoundError(f"no alert {alert_id}", place="alert")
    upsert(
        conn,
        s.alert_response,
        ["key", "enterprise_id"],
        {
            "key": key,
            "enterprise_id": ent,
            "note": note,
            "updated_us": now_us if now_us is not None else time.time_ns() // 1000,
        },
    )
    return {"id": alert_id, "key": key, "responses": responses_of(conn, [key], viewer)[key]}


def responses_of(
    conn: Connection, keys: list[str], viewer: Viewer
) -> dict[str, list[dict[str, Any]]]:
    """The accounts on these alert keys, by key: every one for a regulator or admin, an
    enterprise's own only."""
    if not keys:
        return {}
    r, e = s.alert_response.c, s.enterprise.c
    stmt = (
        select(r.key, r.note, r.updated_us, e.name, e.uscc)
        .join(s.enterprise, e.id == r.enterprise_id)
        .where(r.key.in_(keys))
        .order_by(r.key, r.updated_us)
    )
    if not viewer.sees_all:
        stmt = stmt.where(r.enterprise_id == viewer.enterprise_id)
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for row in conn.execute(stmt):
        out[row.key].append(
            {
                "enterprise": row.name,
                "uscc": row.uscc,
                "note": row.note,
                "updated_us": row.updated_us,
            }
        )
    return out
