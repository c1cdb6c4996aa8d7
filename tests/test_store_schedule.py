"""Query schedules of scheduled subscriptions: the grammar, the examples of the standard, and
the next query time against a plain second-by-second search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.errors import SubscriptionControlsError
from yaolian.store.schedule import FIELDS, SERVICE_ZONE, Schedule

CST = timezone(timedelta(hours=8))


def at(text: str) -> datetime:
    """A time written in China Standard Time."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


def test_the_standards_examples() -> None:
    hourly = Schedule.parse({"second": "0", "minute": "0"})
    assert hourly.next_after(at("2026-12-07 10:15:30")) == at("2026-12-07 11:00:00")
    assert hourly.next_after(at("2026-12-07 11:00:00")) == at("2026-12-07 12:00:00")  # strictly
    daily = Schedule.parse({"second": "0", "minute": "30", "hour": "2"})
    assert daily.next_after(at("2026-12-07 02:29:59.999")) == at("2026-12-07 02:30:00")
    assert daily.next_after(at("2026-12-07 02:30:00.5")) == at("2026-12-08 02:30:00")
    weekdays = Schedule.parse({"second": "0", "minute": "0", "dayOfWeek": "[1-5]"})
    # 2026-12-11 is a Friday: after its last hour comes Monday's first
    assert weekdays.next_after(at("2026-12-11 23:30:00")) == at("2026-12-14 00:00:00")
    every_second = Schedule.parse({"hour": "2"})  # omitting finer fields: every second of 2 h
    assert every_second.next_after(at("2026-12-07 02:10:10")) == at("2026-12-07 02:10:11")
    assert every_second.next_after(at("2026-12-07 02:59:59")) == at("2026-12-08 02:00:00")


def test_zone_lists_ranges_and_year_ends() -> None:
    schedule = Schedule.parse({"second": "0", "minute": "0,15,[30-31]", "hour": "[8-9]"})
    utc_moment = datetime(2026, 12, 7, 0, 20, tzinfo=UTC)  # 08:20 in Beijing
    found = schedule.next_after(utc_moment)
    assert found == at("2026-12-07 08:30:00") and found.tzinfo == SERVICE_ZONE
    assert schedule.next_after(at("2026-12-07 09:31:00")) == at("2026-12-08 08:00:00")
    new_year = Schedule.parse(
        {"second": "0", "minute": "0", "hour": "0", "dayOfMonth": "1", "month": "1"}
    )
    assert new_year.next_after(at("2026-12-07 00:00:00")) == at("2027-01-01 00:00:00")
    leap_monday = Schedule.parse(
        {"second": "0", "minute": "0", "hour": "0", "dayOfMonth": 29, "month": 2, "dayOfWeek": 1}
    )
    assert leap_monday.next_after(at("2026-12-07 00:00:00")) == at("2044-02-29 00:00:00")
    assert leap_monday.to_dict()["dayOfMonth"] == "29"  # numbers are read as their digits


@pytest.mark.parametrize(
    ("schedule", "place", "reason"),
    [
        ({"minute": "1-5"}, "/schedule/minute", "neither a number nor a range"),
        ({"minute": "[1-5"}, "/schedule/minute", "neither a number nor a range"),
        ({"minute": "0, 30"}, "/schedule/minute", "no spaces"),
        ({"minute": ""}, "/schedule/minute", "neither a number nor a range"),
        ({"minute": "0,,30"}, "/schedule/minute", "neither a number nor a range"),
        ({"minute": "-1"}, "/schedule/minute", "neither a number nor a range"),
        ({"second": "60"}, "/schedule/second", "60 is outside 0–59"),
        ({"hour": "[20-24]"}, "/schedule/hour", "24 is outside 0–23"),
        ({"dayOfMonth": "0"}, "/schedule/dayOfMonth", "0 is outside 1–31"),
        ({"dayOfWeek": "[5-1]"}, "/schedule/dayOfWeek", "runs backwards"),
        ({"month": True}, "/schedule/month", "is a string"),
        ({"month": ["1"]}, "/schedule/month", "is a string"),
        ({"weekday": "1"}, "/schedule/weekday", "unknown schedule field"),
        ({"dayOfMonth": "30", "month": "2"}, "/schedule", "no date meets this schedule"),
        ({"dayOfMonth": "31", "month": "4,6,9,11"}, "/schedule", "no date meets"),
        ("hourly", "/schedule", "schedule is an object"),
    ],
)
def test_bad_schedules_are_refused(schedule: object, place: str, reason: str) -> None:
    with pytest.raises(SubscriptionControlsError) as refused:
        Schedule.parse(schedule)
    assert refused.value.place == place
    assert reason in refused.value.reason
    assert refused.value.exception_type == "SubscriptionControlsException"


def _matches(schedule: Schedule, t: datetime) -> bool:
    values = {
        "second": t.second,
        "minute": t.minute,
        "hour": t.hour,
        "dayOfMonth": t.day,
        "month": t.month,
        "dayOfWeek": t.isoweekday(),
    }
    return all(values[name] in schedule.allowed[name] for name in FIELDS)


def _search(schedule: Schedule, after: datetime, limit: datetime) -> datetime | None:
    """The first matching second after ``after`` found by stepping: a day, hour or minute at a
    time while that much cannot match, else a second (``None`` past ``limit``)."""
    t = after.astimezone(SERVICE_ZONE).replace(microsecond=0) + timedelta(seconds=1)
    a = schedule.allowed
    while t <= limit:
        if (
            t.month not in a["month"]
            or t.day not in a["dayOfMonth"]
            or (t.isoweekday() not in a["dayOfWeek"])
        ):
            t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        elif t.hour not in a["hour"]:
            t = (t + timedelta(hours=1)).replace(minute=0, second=0)
        elif t.minute not in a["minute"]:
            t = (t + timedelta(minutes=1)).replace(second=0)
        elif _matches(schedule, t):
            return t
        else:
            t += timedelta(seconds=1)
    return None


def _field(name: str) -> st.SearchStrategy[str | None]:
    low, high = FIELDS[name]
    number = st.integers(low, high)
    element = st.one_of(
        number.map(str),
        st.tuples(number, number).map(lambda p: f"[{min(p)}-{max(p)}]"),
    )
    return st.one_of(st.none(), st.lists(element, min_size=1, max_size=3).map(",".join))


_schedules = st.fixed_dictionaries({name: _field(name) for name in FIELDS}).map(
    lambda fields: {k: v for k, v in fields.items() if v is not None}
)


@settings(max_examples=150, deadline=None)
@given(
    fields=_schedules,
    start=st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)),
)
def test_next_query_time_is_the_first_matching_second(
    fields: dict[str, str], start: datetime
) -> None:
    try:
        schedule = Schedule.parse(fields)
    except SubscriptionControlsError as exc:  # only when no date can ever meet it
        assert exc.place == "/schedule"
        return
    moment = start.replace(tzinfo=CST)
    found = schedule.next_after(moment)
    assert found is not None and found > moment and found.microsecond == 0
    assert _matches(schedule, found)
    assert _search(schedule, moment, found) == found  # nothing matches in between
