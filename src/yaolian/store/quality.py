"""Data quality of the event log per enterprise (追溯数据质量: 及时率、完整率).

A trace is only as good as what each enterprise reports, and when. Each event is counted for the
enterprise owning the site where it happened (its business location, else its read point), and
the report gives, per enterprise over a period of event times:

* **timely** — recorded within ``within_hours`` of happening (上传及时率), and how late the rest
  came (within a day, three days, later);
* **located** — the event names its business location (where the goods are);
* **batch facts** — commissioning events that carry the lot and expiry (批号、有效期);
* **destination** — shipping events that name who they go to (去向);
* **corrections** — error declarations the enterprise filed (更正);
* **rejected** — events its keys sent that capture refused (from the capture jobs created in
  the period: their time is when they were sent, not when the events happened).

Events at sites no enterprise registered are counted under ``None`` (unattributed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, case, exists, func, select

from yaolian.errors import ForbiddenError, ValidationError
from yaolian.store import schema as s
from yaolian.store.access import Viewer

DEFAULT_WITHIN_HOURS = 24
_HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class QualityRow:
    """One enterprise's events and how well they were reported (``enterprise`` ``None``:
    events at unregistered sites)."""

    enterprise: str | None  # USCC
    name: str | None
    events: int
    timely: int
    within_day: int
    within_3_days: int
    located: int
    commissionings: int
    with_batch_facts: int
    shipments: int
    with_destination: int
    corrections: int
    captured: int  # events its keys had accepted by capture jobs
    rejected: int  # … and refused

    def shares(self) -> dict[str, float | None]:
        """The rates (None where nothing was counted)."""

        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        return {
            "timely": share(self.timely, self.events),
            "located": share(self.located, self.events),
            "batch_facts": share(self.with_batch_facts, self.commissionings),
            "destination": share(self.with_destination, self.shipments),
            "rejected": share(self.rejected, self.captured + self.rejected),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the counts and their ``shares``."""
        return {**asdict(self), "shares": self.shares()}


def data_quality(
    conn: Connection,
    viewer: Viewer,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    within_hours: int = DEFAULT_WITHIN_HOURS,
) -> list[QualityRow]:
    """Per enterprise (by USCC; unattributed last), events with event time in [since, until).
    Regulators and admins see every enterprise, an enterprise key only its own."""
    if not viewer.sees_all and viewer.enterprise_id is None:
        raise ForbiddenError("data quality is for regulators and enterprises", place="key")
    if not 1 <= within_hours <= 24 * 365:
        raise ValidationError("within_hours is 1 to 8760", place="within_hours")
    e, st, ilmd, party = s.event.c, s.site.c, s.event_ilmd.c, s.event_party.c
    lag = e.record_time_us - e.event_time_us
    commissioning = e.biz_step == "commissioning"
    shipping = e.biz_step == "shipping"
    batch = exists().where(ilmd.event_id == e.id, ilmd.lot.is_not(None), ilmd.expiry.is_not(None))
    destination = exists().where(party.event_id == e.id, party.kind == 2)

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    stmt = (
        select(
            st.enterprise_id,
            func.count(),
            count(lag <= within_hours * _HOUR_US),
            count(lag <= 24 * _HOUR_US),
            count(lag <= 72 * _HOUR_US),
            count(e.biz_location.is_not(None)),
            count(commissioning),
            count(commissioning & batch),
            count(shipping),
            count(shipping & destination),
            count(e.error_declared),
        )
        .select_from(
            s.event.outerjoin(s.site, st.location_id == func.coalesce(e.biz_location, e.read_point))
        )
        .group_by(st.enterprise_id)
    )
    if since_us is not None:
        stmt = stmt.where(e.event_time_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(e.event_time_us < until_us)
    if not viewer.sees_all:
        stmt = stmt.where(st.enterprise_id == viewer.enterprise_id)
    counts = {r[0]: [int(v or 0) for v in r[1:]] for r in conn.execute(stmt)}
    jobs = _capture_counts(conn, since_us, until_us)
    jobs.pop(None, None)  # captures by the platform's own keys belong to no enterprise
    names = {
        r.id: (r.uscc, r.name)
        for r in conn.execute(select(s.enterprise.c.id, s.enterprise.c.uscc, s.enterprise.c.name))
    }
    ids = set(counts) | set(jobs) if viewer.sees_all else {viewer.enterprise_id}
    rows = []
    for ent in ids:
        uscc, name = names.get(ent, (None, None)) if ent is not None else (None, None)
        events, timely, day, days3, located, comms, batched, ships, sent_to, fixes = counts.get(
            ent, [0] * 10
        )
        captured, rejected = jobs.get(ent, (0, 0))
        row = QualityRow(
            uscc, name, events, timely, day, days3, located, comms, batched, ships, sent_to, fixes,
            captured, rejected,
        )  # fmt: skip
        rows.append(row)
    return sorted(rows, key=lambda r: (r.enterprise is None, r.enterprise or ""))


def _capture_counts(
    conn: Connection, since_us: int | None, until_us: int | None
) -> dict[int | None, tuple[int, int]]:
    """Per enterprise, events accepted and refused by the capture jobs of its keys (jobs
    created in the period)."""
    j = s.capture_job.c
    stmt = select(j.enterprise_id, func.sum(j.accepted), func.sum(j.rejected)).group_by(
        j.enterprise_id
    )
    if since_us is not None:
        stmt = stmt.where(j.created_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(j.created_us < until_us)
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in conn.execute(stmt)}
