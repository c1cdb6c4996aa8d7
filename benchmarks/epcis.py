"""EPCIS layer throughput: read, validate and hash N ObjectEvents × 10 EPCs (``--mix``: a
realistic supply-chain mix of commissioning with ilmd, packing, shipping / receiving with
parties and cold-chain sensor reports, dispensing with an extension).

Prints events/s for each step and its ratio to the floor measured in the same run — parsing
the same bytes with ``orjson.loads`` alone. Also times the official JSON schema without the
fast path, and the XML reader/writer. Times are the CPU time of this process
(``time.process_time``), so other load on a shared machine distorts them less.

    .venv/bin/python benchmarks/epcis.py --events 100000 [--mix]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from yaolian.epcis import jsonld, xml
from yaolian.epcis.hash import event_hash
from yaolian.epcis.model import Document, Event
from yaolian.epcis.validate import _compiled, validate_event

STEPS = ("shipping", "receiving", "dispensing")


def make_document(n: int, epcs_per_event: int = 10) -> bytes:
    """A capture document of ``n`` ObjectEvents, each with its own ``epcs_per_event`` SGTINs."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for i in range(n):
        t = (start + timedelta(seconds=i)).astimezone().isoformat(timespec="milliseconds")
        events.append(
            {
                "type": "ObjectEvent",
                "eventTime": t,
                "eventTimeZoneOffset": t[-6:],
                "epcList": [
                    f"urn:epc:id:sgtin:6901234.{i % 200:06d}.{i * epcs_per_event + j}"
                    for j in range(epcs_per_event)
                ],
                "action": "OBSERVE",
                "bizStep": STEPS[i % 3],
                "disposition": "in_transit",
                "readPoint": {"id": f"urn:epc:id:sgln:6901234.{i % 50:05d}.0"},
                "bizLocation": {"id": f"urn:epc:id:sgln:6901234.{i % 50:05d}.0"},
                "bizTransactionList": [
                    {"type": "po", "bizTransaction": f"urn:epcglobal:cbv:bt:6901234000019:{i}"}
                ],
            }
        )
    return jsonld.write_document(Document(events=events, context=[jsonld.EPCIS_CONTEXT]))


YAOLIAN_NS = "https://yaolian.org/ns/epcis/"


def _mixed_event(i: int, t: str, epcs: list[str]) -> Event:
    """Event ``i`` of a realistic chain, cycling: commissioning with ilmd, packing,
    shipping and receiving with bizTransaction/source/destination (receiving with cold-chain
    sensor reports), dispensing with the ``yaolian:saleLine`` extension."""
    site = f"urn:epc:id:sgln:6901234.{i % 50:05d}.0"
    other = f"urn:epc:id:sgln:6901234.{(i + 1) % 50:05d}.0"
    base: Event = {"eventTime": t, "eventTimeZoneOffset": t[-6:], "readPoint": {"id": site}}
    base["bizLocation"] = {"id": site}
    kind = i % 5
    if kind == 1:
        return {
            "type": "AggregationEvent",
            **base,
            "parentID": f"urn:epc:id:sscc:6901234.{i:010d}",
            "childEPCs": epcs,
            "action": "ADD",
            "bizStep": "packing",
            "disposition": "in_progress",
        }
    event: Event = {"type": "ObjectEvent", **base, "epcList": epcs}
    parties = {
        "sourceList": [
            {"type": "owning_party", "source": "urn:epc:id:pgln:6901234.00000"},
            {"type": "location", "source": site},
        ],
        "destinationList": [
            {"type": "owning_party", "destination": "urn:epc:id:pgln:6901235.00000"},
            {"type": "location", "destination": other},
        ],
    }
    if kind == 0:
        event.update(action="ADD", bizStep="commissioning", disposition="active")
        event["ilmd"] = {
            "cbvmda:lotNumber": f"L{i // 1000:05d}",
            "cbvmda:itemExpirationDate": "2027-06-30",
            "cbvmda:productionDate": "2025-01-01",
        }
    elif kind == 2:
        event.update(action="OBSERVE", bizStep="shipping", disposition="in_transit", **parties)
        event["bizTransactionList"] = [{"type": "desadv", "bizTransaction": f"urn:x:desadv:{i}"}]
    elif kind == 3:
        event.update(action="OBSERVE", bizStep="receiving", disposition="in_progress", **parties)
        event["bizTransactionList"] = [{"type": "recadv", "bizTransaction": f"urn:x:recadv:{i}"}]
        event["sensorElementList"] = [
            {
                "sensorMetadata": {"time": t, "deviceID": "urn:epc:id:giai:6901234.1"},
                "sensorReport": [
                    {"type": "Temperature", "value": 4.0 + j / 10, "uom": "CEL", "time": t}
                    for j in range(3)
                ],
            }
        ]
    else:
        event.update(action="OBSERVE", bizStep="dispensing", disposition="dispensed")
        event["bizTransactionList"] = [{"type": "inv", "bizTransaction": f"urn:x:inv:{i}"}]
        event["yaolian:saleLine"] = {"yaolian:splitSale": False, "yaolian:units": 1}
    return event


def make_mixed_document(n: int, epcs_per_event: int = 10) -> bytes:
    """A capture document of ``n`` events of a realistic supply chain (see _mixed_event)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for i in range(n):
        t = (start + timedelta(seconds=i)).astimezone().isoformat(timespec="milliseconds")
        epcs = [
            f"urn:epc:id:sgtin:6901234.{i % 200:06d}.{i * epcs_per_event + j}"
            for j in range(epcs_per_event)
        ]
        events.append(_mixed_event(i, t, epcs))
    context = [jsonld.EPCIS_CONTEXT, {"yaolian": YAOLIAN_NS}]
    return jsonld.write_document(Document(events=events, context=context))


def timed(label: str, n: int, floor: float | None, run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    seconds = time.process_time() - started
    rate = n / seconds
    ratio = f"{floor / rate:6.2f}× floor time" if floor else "  (floor)"
    print(f"{label:<44} {rate:>12,.0f} events/s  {seconds * 1e6 / n:8.2f} µs/event  {ratio}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--schema-sample", type=int, default=5_000)
    parser.add_argument(
        "--mix",
        action="store_true",
        help="a realistic mix (ilmd, aggregation, parties, sensors, extensions) instead of "
        "plain shipping ObjectEvents",
    )
    args = parser.parse_args()
    n = args.events
    data = make_mixed_document(n) if args.mix else make_document(n)
    shape = "mixed events (see _mixed_event)" if args.mix else "ObjectEvents"
    print(f"{n:,} {shape} × 10 EPCs, {len(data) / 1e6:.1f} MB JSON-LD")

    def floor_parse() -> None:
        gc.disable()  # the floor at its best: jsonld.read_document pauses the GC too
        try:
            orjson.loads(data)
        finally:
            gc.enable()

    floor = timed("orjson.loads, GC paused (floor)", n, None, floor_parse)
    doc = jsonld.read_document(data)
    timed("read: jsonld.read_document", n, floor, lambda: jsonld.read_document(data))
    events = doc.events
    places = doc.places
    timed(
        "validate: validate_event (schema fast path)",
        n,
        floor,
        lambda: [validate_event(e, p) for e, p in zip(events, places, strict=True)],
    )
    ns = doc.namespaces()
    timed("hash: event_hash", n, floor, lambda: [event_hash(e, ns) for e in events])

    def pipeline() -> None:
        fresh = jsonld.read_document(data)
        names = fresh.namespaces()
        for place, event in zip(fresh.places, fresh.events, strict=True):
            validate_event(event, place)
            event_hash(event, names)

    total = timed("read + validate + hash", n, floor, pipeline)
    sample = events[: args.schema_sample]
    schema = _compiled("EPCIS-Document-Event")
    timed(
        f"(official schema alone, {len(sample):,} events)",
        len(sample),
        floor,
        lambda: [schema(e) for e in sample],
    )
    xml_doc = Document(events=events[: max(1, n // 10)], context=doc.context)
    xml_bytes = xml.write_document(xml_doc)
    m = len(xml_doc.events)
    timed(f"xml.write_document ({m:,} events)", m, floor, lambda: xml.write_document(xml_doc))
    timed(f"xml.read_document ({m:,} events)", m, floor, lambda: xml.read_document(xml_bytes))
    print(
        f"read + validate + hash uses {1e6 / total:.1f} µs of the 20 µs/event a 50k events/s "
        "capture allows"
    )


if __name__ == "__main__":
    main()
