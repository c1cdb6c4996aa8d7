"""Subscriptions to named queries (EPCIS 2.0 webhooks): every event stored after the
subscription (or recorded since its ``initialRecordTime``) that matches the query and that the
subscribing key may see is pushed to the subscriber's URL, in the order it was stored — as soon
as it is stored (a stream), or at the query times of a schedule (:mod:`yaolian.store.schedule`):
then each run sends what was stored since the last one, and with ``reportIfEmpty`` an empty
result too.

This module keeps the subscriptions and their progress: ``after_event``, the event row up to
which everything has been delivered or skipped, moves only when a delivery succeeded, so nothing
is lost when the receiver is down (it is retried with a growing pause) and a batch the receiver
accepted is not sent again (unless the server stops before recording that it was). A dispatcher
claims a subscription for a while (a lease) before delivering, so several API processes never
deliver the same events. Rights are the subscribing key's at the time of each delivery: a
revoked key's subscriptions stop. The HTTP side is :mod:`yaolian.api.webhooks`.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from yaolian.config import WEBHOOK_HOSTS_ENV, webhook_hosts
from yaolian.epcis.model import Event, utc_text
from yaolian.errors import (
    ForbiddenError,
    NotFoundError,
    SubscriptionControlsError,
    ValidationError,
)
from yaolian.store.access import Role, Viewer
from yaolian.store.named_queries import query_id, query_named
from yaolian.store.query import events_after
from yaolian.store.schedule import Schedule
from yaolian.store.schema import api_key, event, named_query, subscription
from yaolian.store.tx import read_tx, write_tx

DEST_MAX = 2000
TOKEN_MAX = 200
LEASE_US = 120_000_000  # a claim lasts 2 min: longer than a delivery's timeouts
FIRST_RETRY_US = 2_000_000  # after a failure 2 s, doubling up to 5 min
LAST_RETRY_US = 300_000_000
ERROR_MAX = 500


def _now_us() -> int:
    return time.time_ns() // 1000


def _iso(us: int | None) -> str | None:
    return None if us is None else utc_text(us)


def next_run_us(schedule: Schedule, after_us: int) -> int:
    """The first query time of ``schedule`` after ``after_us`` (µs since the epoch)."""
    moment = datetime.fromtimestamp(after_us / 1e6, UTC)
    found = schedule.next_after(moment)
    assert found is not None, "Schedule.parse refuses schedules that never run"
    return int(found.timestamp()) * 1_000_000


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as its owner sees it (the signature token is never shown)."""

    subscription_id: str
    query_name: str
    dest: str
    signed: bool
    created_us: int
    min_record_us: int | None
    failures: int
    last_error: str | None
    delivered_us: int | None
    delivered_events: int
    schedule: Schedule | None
    report_if_empty: bool
    next_run_us: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: the EPCIS 2.0 subscription fields and the delivery progress."""
        return {
            "subscriptionID": self.subscription_id,
            "queryName": self.query_name,
            "createdAt": _iso(self.created_us),
            "dest": self.dest,
            "stream": self.schedule is None,
            "schedule": self.schedule.to_dict() if self.schedule is not None else None,
            "reportIfEmpty": self.report_if_empty,
            "nextRunAt": _iso(self.next_run_us),
            "signed": self.signed,
            "initialRecordTime": _iso(self.min_record_us),
            "deliveredEvents": self.delivered_events,
            "lastDeliveryAt": _iso(self.delivered_us),
            "failures": self.failures,
            "lastError": self.last_error,
        }


def check_dest(dest: str, *, resolve: bool = False) -> str:
    """``dest`` if it is an absolute http(s) URL a webhook may be posted to: of a host
    ``$YAOLIAN_WEBHOOK_HOSTS`` allows, when that is set; else of a public host — a loopback,
    private, link-local or reserved address (the server's own network) is refused, so a key
    cannot make the server call inside its network. ``resolve`` (at delivery) also looks the
    name up and checks every address it has."""
    parts = urlsplit(dest) if len(dest) <= DEST_MAX else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() for ch in dest)
    ):
        raise ValidationError(
            f"dest must be an http:// or https:// URL of at most {DEST_MAX} characters, not "
            f"{dest[:120]!r}",
            place="/dest",
        )
    allowed = webhook_hosts()
    host = parts.hostname.lower()
    if allowed is None:
        _refuse_inner(host, resolve)
    elif not any(
        host == name or (name.startswith(".") and host.endswith(name)) for name in allowed
    ):
        raise ValidationError(
            f"this server posts webhooks only to {', '.join(allowed)} ({WEBHOOK_HOSTS_ENV}), "
            f"not to {host}",
            place="/dest",
        )
    return dest


def _refuse_inner(host: str, resolve: bool) -> None:
    """ValidationError when ``host`` is, or (``resolve``) resolves to, an address that is not
    public."""
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        addresses = [host]
    else:
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:  # a name
            addresses = _addresses(host) if resolve else []
    for address in addresses:
        try:
            public = ipaddress.ip_address(address.split("%")[0]).is_global
        except ValueError:
            public = False
        if not public:
            raise ValidationError(
                f"{host} is not a public host ({address}): this server posts webhooks to "
                f"public hosts only, unless {WEBHOOK_HOSTS_ENV} names it",
                place="/dest",
            )


def _addresses(host: str) -> list[str]:
    """The addresses ``host`` resolves to; a name that does not resolve is refused."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ValidationError(f"cannot resolve {host}: {exc}", place="/dest") from None
    return sorted({str(info[4][0]) for info in found})


def controls(
    stream: bool | None,
    schedule: Mapping[str, Any] | None,
    report_if_empty: bool | None,
    *,
    stream_by_default: bool = False,
) -> Schedule | None:
    """The schedule a subscription's controls ask for (``None``: a stream): exactly one of
    ``stream`` true and a ``schedule`` (``stream_by_default``: neither means a stream), and
    ``reportIfEmpty`` only with a schedule — else a :class:`SubscriptionControlsError`."""
    if schedule is not None and stream:
        raise SubscriptionControlsError(
            'give either "stream": true or a "schedule", not both', place="/schedule"
        )
    if schedule is None and not (stream or (stream is None and stream_by_default)):
        raise SubscriptionControlsError(
            'give "stream": true (events as they are stored) or a "schedule" (at set times)',
            place="/stream",
        )
    if report_if_empty and schedule is None:
        raise SubscriptionControlsError(
            "a stream reports only when events match: reportIfEmpty needs a schedule",
            place="/reportIfEmpty",
        )
    return None if schedule is None else Schedule.parse(schedule)


def subscribe(
    bind: Engine | Connection,
    viewer: Viewer,
    query_name: str,
    *,
    dest: str,
    signature_token: str | None = None,
    initial_record_us: int | None = None,
    schedule: Schedule | None = None,
    report_if_empty: bool = False,
) -> Subscription:
    """Subscribe ``dest`` to the query: events stored from now on, or recorded since
    ``initial_record_us`` when given (those already stored go out first) — streamed, or at the
    query times of ``schedule`` (with ``report_if_empty``: an empty result too), as
    :func:`controls` gives them."""
    if viewer.api_key_id is None:
        raise ForbiddenError("a subscription needs an API key", place="Authorization")
    check_dest(dest)
    if signature_token is not None and not 0 < len(signature_token) <= TOKEN_MAX:
        raise ValidationError(
            f"signatureToken is 1–{TOKEN_MAX} characters", place="/signatureToken"
        )
    assert schedule is not None or not report_if_empty, "controls() refuses this"
    public_id = str(uuid.uuid4())
    now = _now_us()
    with write_tx(bind) as conn:
        of_query = query_id(conn, viewer, query_name)
        newest = newest_event(conn)
        conn.execute(
            insert(subscription).values(
                subscription_id=public_id,
                query_id=of_query,
                dest=dest,
                signature_token=signature_token,
                api_key_id=viewer.api_key_id,
                min_record_us=initial_record_us,
                after_event=0 if initial_record_us is not None else newest,
                created_us=now,
                failures=0,
                delivered_events=0,
                schedule=schedule.to_dict() if schedule is not None else None,
                report_if_empty=report_if_empty,
                next_run_us=next_run_us(schedule, now) if schedule is not None else None,
            )
        )
    return get_subscription(bind, viewer, query_name, public_id)


_COLUMNS = (
    subscription.c.subscription_id,
    named_query.c.name,
    subscription.c.dest,
    subscription.c.signature_token,
    subscription.c.created_us,
    subscription.c.min_record_us,
    subscription.c.failures,
    subscription.c.last_error,
    subscription.c.delivered_us,
    subscription.c.delivered_events,
    subscription.c.schedule,
    subscription.c.report_if_empty,
    subscription.c.next_run_us,
)


def _from_row(row: Any) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id,
        query_name=row.name,
        dest=row.dest,
        signed=row.signature_token is not None,
        created_us=int(row.created_us),
        min_record_us=row.min_record_us,
        failures=int(row.failures),
        last_error=row.last_error,
        delivered_us=row.delivered_us,
        delivered_events=int(row.delivered_events),
        schedule=_schedule(row.schedule),
        report_if_empty=bool(row.report_if_empty),
        next_run_us=row.next_run_us,
    )


def _schedule(stored: dict[str, str] | None) -> Schedule | None:
    return None if stored is None else Schedule.parse(stored)


def _of_query(viewer: Viewer, query_name: str) -> Any:
    return (
        select(*_COLUMNS)
        .join(named_query, named_query.c.id == subscription.c.query_id)
        .where(query_named(viewer, query_name))
    )


def list_subscriptions(
    bind: Engine | Connection, viewer: Viewer, query_name: str
) -> list[Subscription]:
    """The subscriptions of one of ``viewer``'s queries, oldest first (404: no such query)."""
    with read_tx(bind) as conn:
        query_id(conn, viewer, query_name)
        rows = conn.execute(_of_query(viewer, query_name).order_by(subscription.c.id)).all()
    return [_from_row(r) for r in rows]


def get_subscription(
    bind: Engine | Connection, viewer: Viewer, query_name: str, subscription_id: str
) -> Subscription:
    """One subscription of one of ``viewer``'s queries (404 if there is none)."""
    with read_tx(bind) as conn:
        row = conn.execute(
            _of_query(viewer, query_name).where(subscription.c.subscription_id == subscription_id)
        ).first()
    if row is None:
        raise NotFoundError(
            f"no subscription {subscription_id[:60]!r} of query {query_name[:120]!r}",
            place="subscriptionID",
        )
    return _from_row(row)


def unsubscribe(
    bind: Engine | Connection, viewer: Viewer, query_name: str, subscription_id: str
) -> None:
    """End a subscription (404 if ``viewer``'s query has none of that id)."""
    with write_tx(bind) as conn:
        of_query = query_id(conn, viewer, query_name)
        gone = conn.execute(
            delete(subscription).where(
                subscription.c.query_id == of_query,
                subscription.c.subscription_id == subscription_id,
            )
        ).rowcount
    if not gone:
        raise NotFoundError(
            f"no subscription {subscription_id[:60]!r} of query {query_name[:120]!r}",
            place="subscriptionID",
        )


# ── delivery ─────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True, slots=True)
class Claim:
    """A subscription claimed for one delivery: what to run, with whose rights, where to."""

    id: int
    subscription_id: str
    query_name: str
    params: dict[str, list[str]]
    dest: str
    signature_token: str | None
    viewer: Viewer
    after_event: int
    min_record_us: int | None
    schedule: Schedule | None
    report_if_empty: bool


def _free(now: int) -> Any:
    """SQL condition: not claimed by a dispatcher, not pausing after a failure, and (when
    scheduled) its query time has come."""
    s = subscription.c
    return and_(
        or_(s.lease_until_us.is_(None), s.lease_until_us < now),
        or_(s.retry_at_us.is_(None), s.retry_at_us <= now),
        or_(s.next_run_us.is_(None), s.next_run_us <= now),
    )


def due(bind: Engine | Connection, now_us: int | None = None) -> list[int]:
    """Subscriptions to run now, not claimed and not pausing after a failure: streams with
    events stored past their progress, scheduled ones whose query time has come."""
    now = _now_us() if now_us is None else now_us
    s = subscription.c
    newest = select(func.coalesce(func.max(event.c.id), 0)).scalar_subquery()
    with read_tx(bind) as conn:
        return [
            int(i)
            for i in conn.execute(
                select(s.id)
                .where(
                    _free(now),
                    or_(s.next_run_us.is_not(None), s.after_event < newest),
                )
                .order_by(s.id)
            ).scalars()
        ]


def claim(bind: Engine | Connection, sub_id: int, now_us: int | None = None) -> Claim | None:
    """Take the subscription for one delivery (``None``: another dispatcher has it or has just
    run it — a scheduled one's next query time has not come, a failed one is pausing —, it is
    gone, or the key that made it was revoked, which is recorded as its error)."""
    now = _now_us() if now_us is None else now_us
    s = subscription.c
    with write_tx(bind) as conn:
        taken = conn.execute(
            update(subscription)
            .where(s.id == sub_id, _free(now))
            .values(lease_until_us=now + LEASE_US)
        ).rowcount
        if not taken:
            return None
        row = conn.execute(
            select(
                s.id,
                s.subscription_id,
                named_query.c.name,
                named_query.c.params,
                s.dest,
                s.signature_token,
                s.after_event,
                s.min_record_us,
                s.schedule,
                s.report_if_empty,
                api_key.c.role,
                api_key.c.enterprise_id,
                api_key.c.revoked,
                api_key.c.id.label("key_id"),
            )
            .join(named_query, named_query.c.id == s.query_id)
            .join(api_key, api_key.c.id == s.api_key_id, isouter=True)
            .where(s.id == sub_id)
        ).one()
        if row.key_id is None or row.revoked:
            conn.execute(
                update(subscription)
                .where(s.id == sub_id)
                .values(
                    lease_until_us=None,
                    retry_at_us=now + LAST_RETRY_US,
                    last_error="the API key that subscribed was revoked: nothing is delivered",
                )
            )
            return None
    viewer = Viewer(
        enterprise_id=row.enterprise_id, role=cast(Role, row.role), api_key_id=row.key_id
    )
    return Claim(
        id=int(row.id),
        subscription_id=row.subscription_id,
        query_name=row.name,
        params=dict(row.params),
        dest=row.dest,
        signature_token=row.signature_token,
        viewer=viewer,
        after_event=int(row.after_event),
        min_record_us=row.min_record_us,
        schedule=_schedule(row.schedule),
        report_if_empty=bool(row.report_if_empty),
    )


def next_events(
    bind: Engine | Connection,
    params: dict[str, list[str]],
    viewer: Viewer,
    *,
    after_event: int,
    min_record_us: int | None,
    limit: int,
) -> tuple[list[tuple[int, Event]], int]:
    """A stream's next events after row ``after_event`` (at most ``limit``) that match the
    query ``params`` and that ``viewer`` may see, and the event row up to which the stream is
    done once they are sent."""
    with read_tx(bind) as conn:
        newest = newest_event(conn)
        found = events_after(
            conn,
            params,
            viewer=viewer,
            after_row=after_event,
            upto_row=newest,
            limit=limit,
            min_record_us=min_record_us,
        )
    return found, found[-1][0] if len(found) == limit else newest


def newest_event(bind: Engine | Connection) -> int:
    """The row id of the last stored event (0: none): where a stream starting now begins."""
    with read_tx(bind) as conn:
        return int(conn.execute(select(func.coalesce(func.max(event.c.id), 0))).scalar_one())


def delivered(
    bind: Engine | Connection, claimed: Claim, through_event: int, count: int, *, caught_up: bool
) -> None:
    """Record a successful delivery of ``count`` events (0: nothing matched) up to row
    ``through_event``, and release the claim; ``caught_up``: nothing stored is left to send, so
    a scheduled subscription's run is over (its next query time is set)."""
    now = _now_us()
    s = subscription.c
    values: dict[str, Any] = {
        "after_event": through_event,
        "lease_until_us": None,
        "retry_at_us": None,
        "failures": 0,
        "last_error": None,
        "delivered_events": s.delivered_events + count,
    }
    if count or claimed.report_if_empty:  # a run with reportIfEmpty posts even when empty
        values["delivered_us"] = now
    if claimed.schedule is not None and caught_up:
        values["next_run_us"] = next_run_us(claimed.schedule, now)
    with write_tx(bind) as conn:
        conn.execute(update(subscription).where(s.id == claimed.id).values(**values))


def failed(bind: Engine | Connection, claimed: Claim, reason: str) -> None:
    """Record a failed delivery (the events stay pending) and pause before the next try:
    2 s, doubling with each failure in a row, at most 5 min."""
    now = _now_us()
    s = subscription.c
    with write_tx(bind) as conn:
        failures = int(conn.execute(select(s.failures).where(s.id == claimed.id)).scalar() or 0) + 1
        pause = min(FIRST_RETRY_US * 2 ** min(failures - 1, 20), LAST_RETRY_US)
        conn.execute(
            update(subscription)
            .where(s.id == claimed.id)
            .values(
                failures=failures,
                last_error=reason[:ERROR_MAX],
                retry_at_us=now + pause,
                lease_until_us=None,
            )
        )
