"""Builders for the EPCIS 2.0 events the trace layer writes (sale lines, tests, benchmarks).

Each returns the normalised JSON-LD compact dict of ``epcis.model``; :func:`document` wraps
events with the ``@context`` that declares yaolian's extension prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from yaolian.epcis.extensions import YAOLIAN_NS
from yaolian.epcis.jsonld import EPCIS_CONTEXT
from yaolian.epcis.model import Document, Event


def iso(when: datetime) -> str:
    """An aware datetime as an EPCIS time string."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat()


def _offset(when: datetime) -> str:
    text = when.strftime("%z") or "+0000"
    return f"{text[:3]}:{text[3:]}"


def _base(kind: str, when: datetime, **fields: Any) -> Event:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    event: Event = {"type": kind, "eventTime": iso(when), "eventTimeZoneOffset": _offset(when)}
    for key, value in fields.items():
        if value is not None:
            event[key] = value
    return event


def _parties(kind: str, owner: str | None, site: str | None = None) -> list[dict[str, str]] | None:
    items = []
    if owner:
        items.append({"type": "owning_party", kind: owner})
    if site:
        items.append({"type": "location", kind: site})
    return items or None


def object_event(
    epcs: Sequence[str],
    when: datetime,
    biz_step: str,
    disposition: str | None = None,
    *,
    action: str = "OBSERVE",
    site: str | None = None,
    read_point: str | None = None,
    source: str | None = None,
    destination: str | None = None,
    destination_site: str | None = None,
    lot: str | None = None,
    expiry: str | None = None,
    produced: str | None = None,
    biz_transactions: Sequence[tuple[str, str]] = (),
    temperatures: Sequence[float] = (),
    extra: dict[str, Any] | None = None,
) -> Event:
    """An ObjectEvent (commissioning, shipping, receiving, dispensing, destroying …)."""
    ilmd = {
        k: v
        for k, v in (
            ("cbvmda:lotNumber", lot),
            ("cbvmda:itemExpirationDate", expiry),
            ("cbvmda:productionDate", produced),
        )
        if v
    }
    event = _base(
        "ObjectEvent",
        when,
        epcList=list(epcs),
        action=action,
        bizStep=biz_step,
        disposition=disposition,
        readPoint={"id": read_point} if read_point else None,
        bizLocation={"id": site} if site else None,
        bizTransactionList=[{"type": t, "bizTransaction": v} for t, v in biz_transactions] or None,
        sourceList=_parties("source", source),
        destinationList=_parties("destination", destination, destination_site),
        ilmd=ilmd or None,
    )
    if temperatures:
        event["sensorElementList"] = [
            {
                "sensorReport": [
                    {"type": "Temperature", "value": float(v), "uom": "CEL"} for v in temperatures
                ]
            }
        ]
    if extra:
        event.update(extra)
    return event


def aggregation_event(
    parent: str,
    children: Sequence[str],
    when: datetime,
    action: str = "ADD",
    *,
    biz_step: str | None = None,
    site: str | None = None,
) -> Event:
    """An AggregationEvent: packing (ADD) or unpacking (DELETE; no children = everything)."""
    step = biz_step or ("packing" if action == "ADD" else "unpacking")
    return _base(
        "AggregationEvent",
        when,
        parentID=parent,
        childEPCs=list(children),
        action=action,
        bizStep=step,
        bizLocation={"id": site} if site else None,
    )


def transformation_event(
    inputs: Sequence[str],
    outputs: Sequence[str],
    when: datetime,
    *,
    input_classes: Sequence[tuple[str, float, str | None]] = (),
    output_classes: Sequence[tuple[str, float, str | None]] = (),
    site: str | None = None,
    lot: str | None = None,
    expiry: str | None = None,
) -> Event:
    """A TransformationEvent (herb lot → 饮片 → 中成药): instance and class inputs/outputs.

    CBV 2.0 has no ``transforming`` step. The bizStep names what comes into being:
    ``commissioning`` when there are instance-level outputs (serialised units get their
    identifiers), else ``creating_class_instance`` (a lot or quantity of a class is produced,
    with no unique identifiers — e.g. a 饮片 processing lot, 炮制批).
    """

    def qty(items: Sequence[tuple[str, float, str | None]]) -> list[dict[str, Any]] | None:
        out = [{"epcClass": c, "quantity": q, **({"uom": u} if u else {})} for c, q, u in items]
        return out or None

    ilmd = {
        k: v for k, v in (("cbvmda:lotNumber", lot), ("cbvmda:itemExpirationDate", expiry)) if v
    }
    return _base(
        "TransformationEvent",
        when,
        inputEPCList=list(inputs) or None,
        outputEPCList=list(outputs) or None,
        inputQuantityList=qty(input_classes),
        outputQuantityList=qty(output_classes),
        bizStep="commissioning" if outputs else "creating_class_instance",
        bizLocation={"id": site} if site else None,
        ilmd=ilmd or None,
    )


def document(events: list[Event]) -> Document:
    """A capture document with the EPCIS context and yaolian's extension prefix."""
    return Document(events=events, context=[EPCIS_CONTEXT, {"yaolian": YAOLIAN_NS}])
