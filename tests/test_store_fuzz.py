"""Generated events through the whole capture path on both stores: whatever the validator
accepts is stored, whatever it refuses is reported, never an exception, and SQLite and
PostgreSQL answer alike. (Found: an extension event type — valid EPCIS 2.0 — broke capture
with a KeyError; a time with no UTC year with an OverflowError; long identifiers, NUL
characters and dateTime expiries only on PostgreSQL.)"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from conftest import table_rows
from yaolian.epcis.read import read_document
from yaolian.errors import YaolianError
from yaolian.store.ingest import capture_document
from yaolian.store.projections import rebuild
from yaolian.store.schema import code, event, metadata

BASE: dict[str, Any] = {
    "@context": [{"yl": "https://yaolian.org/ns/epcis/"}],
    "type": "ObjectEvent",
    "eventTime": "2025-01-02T03:04:05.000+08:00",
    "eventTimeZoneOffset": "+08:00",
    "epcList": ["urn:epc:id:sgtin:6901234.067890.1"],
    "action": "OBSERVE",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
}
FIELDS = sorted(
    {
        *BASE,
        "parentID",
        "childEPCs",
        "quantityList",
        "childQuantityList",
        "inputEPCList",
        "outputEPCList",
        "transformationID",
        "recordTime",
        "eventID",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "ilmd",
        "sensorElementList",
        "errorDeclaration",
        "yl:x",
    }
    - {"@context"}
)
_text = st.text(max_size=30)
_uri = st.sampled_from(
    [
        "urn:epc:id:sgtin:6901234.067890.7",
        "urn:epc:id:sscc:6901234.0000000017",
        "urn:epc:id:sgln:6901234.00001.0",
        "https://id.gs1.org/01/06901234567892/21/X1",
        "urn:nmpa:code:86000010000000000011",
        "urn:epc:class:lgtin:6901234.067890.L1",
        "urn:epc:id:pgln:6901234.00000",
        "urn:x:1",
    ]
) | _text.map(lambda t: "urn:x:" + t)
_time = st.sampled_from(
    [
        "2025-01-02T03:04:05Z",
        "2025-01-02T03:04:05.123456+08:00",
        "0001-01-01T00:00:00-14:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
    ]
)
_number = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
_value = st.one_of(
    st.none(),
    st.booleans(),
    _number,
    _text,
    _uri,
    _time,
    st.lists(_uri, max_size=3),
    st.builds(lambda c, q: [{"epcClass": c, "quantity": q}], _uri, _number),
    st.builds(lambda t, v: [{"type": t, "bizTransaction": v}], st.sampled_from(["po", "x"]), _uri),
    st.builds(lambda v: [{"type": "owning_party", "source": v}], _uri),
    st.builds(lambda v: [{"type": "location", "destination": v}], _uri),
    st.builds(lambda v: {"id": v}, _uri),
    st.builds(
        lambda lot, expiry: {"cbvmda:lotNumber": lot, "cbvmda:itemExpirationDate": expiry},
        _text | _number,
        _text | _time | st.sampled_from(["2027-01-01", "2027-01-01+08:00"]),
    ),
    st.builds(
        lambda v, t, u: [
            {"sensorReport": [{"type": "Temperature", "value": v, "time": t, "uom": u}]}
        ],
        _number,
        _time,
        st.sampled_from(["CEL", "FAR", "KEL"]),
    ),
    st.builds(lambda t: {"declarationTime": t, "reason": "incorrect_data"}, _time),
    st.sampled_from(["ADD", "DELETE", "commissioning", "dispensing", "AggregationEvent"]),
    st.sampled_from(["TransformationEvent", "urn:x:CustomEvent"]),
)
TABLES = ("code_state", "aggregation", "custody", "dispense", "code_sensor", "alert")
_CODE_ID_COLUMNS = frozenset(("code_id", "parent_id", "child_id", "via_id"))


def _lookup(column: str, keys: dict[Any, Any], hashes: dict[Any, Any]) -> dict[Any, Any]:
    """What a column's values stand for: codes by key, events by hash, the rest as they are."""
    if column in _CODE_ID_COLUMNS:
        return keys
    return hashes if column.endswith("event_id") else {}


def _by_identity(engine: Engine) -> dict[str, list[str]]:
    """:func:`table_rows` of ``TABLES`` with each code id as the code's key and each event id as
    the event's hash, less row ids and record times: what two stores must agree on. Their own
    ids may differ — a PostgreSQL sequence keeps the numbers a rolled-back capture drew, where
    SQLite hands them out again."""
    with engine.connect() as conn:
        keys: dict[Any, Any] = dict(conn.execute(select(code.c.id, code.c.key)).all())
        hashes: dict[Any, Any] = dict(conn.execute(select(event.c.id, event.c.hash)).all())
        found: dict[str, list[str]] = {}
        for name in TABLES:
            columns = [c for c in metadata.tables[name].c if c.name not in ("id", "record_us")]
            lookups = [_lookup(c.name, keys, hashes) for c in columns]
            found[name] = sorted(
                repr(tuple(lookup.get(v, v) for lookup, v in zip(lookups, row, strict=True)))
                for row in conn.execute(select(*columns))
            )
    return found


def _outcome(engine: Engine, data: bytes) -> tuple[Any, ...]:
    try:
        result = capture_document(engine, read_document(data), behaviour="proceed")
    except YaolianError as exc:
        return ("refused", exc.place, exc.reason)
    return ("captured", result.accepted + result.duplicates, [e.place for e in result.errors])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    st.dictionaries(st.sampled_from([*FIELDS, "type"]), _value, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_generated_events_capture_alike_on_both_stores(
    sqlite_engine: Engine, pg_engine: Engine, changes: dict[str, Any], drop: set[str]
) -> None:
    event = copy.deepcopy(BASE)
    for key in drop:
        event.pop(key, None)
    event.update({k: v for k, v in changes.items() if v is not None})
    try:
        data = orjson.dumps(event)
    except TypeError:  # an integer JSON cannot hold
        return
    assert _outcome(sqlite_engine, data) == _outcome(pg_engine, data)


def test_the_generated_stores_rebuild_to_what_capture_left(
    sqlite_engine: Engine, pg_engine: Engine
) -> None:
    """The same generation, then a rebuild: the projections capture left are a rebuild's, and
    the two stores' alike but for when each recorded the events (an alert's ``record_us`` is
    the store's own record time of the event that raised it) and for their own row ids."""
    captured: dict[str, dict[str, list[str]]] = {}
    alike: dict[str, dict[str, list[str]]] = {}

    @settings(max_examples=80, deadline=None, database=None)
    @given(st.dictionaries(st.sampled_from([*FIELDS, "type"]), _value, max_size=3))
    def feed(changes: dict[str, Any]) -> None:
        event = {**copy.deepcopy(BASE), **{k: v for k, v in changes.items() if v is not None}}
        try:
            data = orjson.dumps(event)
        except TypeError:
            return
        for engine in (sqlite_engine, pg_engine):
            _outcome(engine, data)

    feed()
    for name, engine in (("sqlite", sqlite_engine), ("postgresql", pg_engine)):
        captured[name] = table_rows(engine, TABLES)
        alike[name] = _by_identity(engine)
        rebuild(engine)
        assert table_rows(engine, TABLES) == captured[name], name
    assert alike["sqlite"] == alike["postgresql"]
