"""Query schedules of scheduled subscriptions (EPCIS ``QuerySchedule``): when a subscribed
query runs.

A schedule has up to six fields — ``second`` (0–59), ``minute`` (0–59), ``hour`` (0–23),
``dayOfMonth`` (1–31), ``month`` (1–12), ``dayOfWeek`` (1 Monday … 7 Sunday) — each a list of
numbers and ranges such as ``"0"``, ``"[1-5]"`` or ``"0,15,[30-32]"``. A moment is a query time
when every field given matches it (an omitted field matches any value): ``{"second": "0",
"minute": "0"}`` runs every hour on the hour, ``{"second": "0", "minute": "30", "hour": "2"}``
every day at 02:30. The standard leaves the time zone to the service: here it is China Standard
Time (UTC+08:00), the zone of the people who read the reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from yaolian.epcis.model import CHINA_TIME
from yaolian.errors import SubscriptionControlsError

SERVICE_ZONE = CHINA_TIME  # schedules run in China Standard Time
FIELDS: dict[str, tuple[int, int]] = {  # name → legal range, both ends included
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (1, 7),
}
_ELEMENT = re.compile(r"(\d{1,9})|\[(\d{1,9})-(\d{1,9})\]", re.ASCII)
_GREGORIAN_CYCLE_DAYS = 146_097  # the calendar repeats every 400 years, weekdays included


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed query schedule: the fields as given and the values each one allows."""

    fields: Mapping[str, str]
    allowed: Mapping[str, tuple[int, ...]]  # every field, sorted; an omitted one: its range

    @classmethod
    def parse(cls, raw: Any) -> Schedule:
        """Read a ``schedule`` object; a field that breaks the grammar, a number out of its
        field's range, a range running backwards, an unknown field or a schedule no date can
        meet (30 February) is a :class:`SubscriptionControlsError` naming the field."""
        if not isinstance(raw, Mapping):
            raise SubscriptionControlsError(
                "schedule is an object of second, minute, hour, dayOfMonth, month, dayOfWeek",
                place="/schedule",
            )
        fields: dict[str, str] = {}
        allowed: dict[str, tuple[int, ...]] = {}
        for name, value in raw.items():
            if name not in FIELDS:
                raise SubscriptionControlsError(
                    f"unknown schedule field {str(name)[:40]!r} (fields: {', '.join(FIELDS)})",
                    place=f"/schedule/{str(name)[:40]}",
                )
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise SubscriptionControlsError(
                    f'{name} is a string such as "0", "[1-5]" or "0,30"',
                    place=f"/schedule/{name}",
                )
            fields[name] = value
            allowed[name] = _values(name, value)
        for name, (low, high) in FIELDS.items():
            allowed.setdefault(name, tuple(range(low, high + 1)))
        schedule = cls(fields, allowed)
        if schedule.next_after(datetime(2000, 1, 1, tzinfo=SERVICE_ZONE)) is None:
            raise SubscriptionControlsError(
                "no date meets this schedule (its dayOfMonth, month and dayOfWeek never coincide)",
                place="/schedule",
            )
        return schedule

    def to_dict(self) -> dict[str, str]:
        """The fields as given (omitted ones left out)."""
        return dict(self.fields)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first query time strictly after ``moment`` (whole seconds, in
        :data:`SERVICE_ZONE`); ``None`` when no date ever meets the schedule."""
        start = moment.astimezone(SERVICE_ZONE).replace(microsecond=0) + timedelta(seconds=1)
        day = start.date()
        floor = (start.hour, start.minute, start.second)
        for _ in range(_GREGORIAN_CYCLE_DAYS + 1):
            if self._day_matches(day):
                found = self._first_time(*floor)
                if found is not None:
                    return datetime.combine(day, time(*found), SERVICE_ZONE)
            day += timedelta(days=1)
            floor = (0, 0, 0)
        return None

    def _day_matches(self, day: date) -> bool:
        a = self.allowed
        return (
            day.month in a["month"]
            and day.day in a["dayOfMonth"]
            and (day.isoweekday() in a["dayOfWeek"])
        )

    def _first_time(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        """The earliest allowed (hour, minute, second) at or after the given one, that day."""
        a = self.allowed
        for h in a["hour"]:
            if h < hour:
                continue
            for m in a["minute"]:
                if h == hour and m < minute:
                    continue
                for s in a["second"]:
                    if h == hour and m == minute and s < second:
                        continue
                    return h, m, s
        return None


def _values(name: str, text: str) -> tuple[int, ...]:
    """The values a field allows: ``Element ("," Element)*``, ``Element = Number | "[" Number
    "-" Number "]"``, every number within the field's range."""
    low, high = FIELDS[name]
    found: set[int] = set()
    for element in text.split(","):
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise SubscriptionControlsError(
                f"{name} {text[:60]!r}: {element[:30]!r} is neither a number nor a range "
                "[from-to] (elements are separated by commas, no spaces)",
                place=f"/schedule/{name}",
            )
        single, first, last = match.groups()
        lo, hi = (int(single), int(single)) if single is not None else (int(first), int(last))
        if lo > hi:
            raise SubscriptionControlsError(
                f"{name} {text[:60]!r}: the range [{lo}-{hi}] runs backwards",
                place=f"/schedule/{name}",
            )
        if lo < low or hi > high:
            raise SubscriptionControlsError(
                f"{name} {text[:60]!r}: {lo if lo < low else hi} is outside {low}–{high}",
                place=f"/schedule/{name}",
            )
        found.update(range(lo, hi + 1))
    return tuple(sorted(found))
