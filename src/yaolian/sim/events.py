"""Builders of the simulator's EPCIS events (JSON-LD compact dicts, :mod:`yaolian.epcis.model`).

Times are Beijing time (+08:00). A :class:`Clock` turns (simulation day, second of day) into the
ISO 8601 string quickly; identifiers come from the codes layer's URI builders, with the
per-product URI prefix computed once so hot paths only append a serial.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from yaolian.codes.epc import sgtin_uri
from yaolian.codes.nmpa import NMPA_CODE, nmpa_code_uri
from yaolian.epcis.extensions import SALE_LINE_KEY, YAOLIAN_NS
from yaolian.epcis.jsonld import EPCIS_CONTEXT
from yaolian.epcis.model import Event
from yaolian.verify.dispense import SETTLEMENT_TX_TYPE

TZ = "+08:00"
CONTEXT: list[Any] = [EPCIS_CONTEXT, {"yaolian": YAOLIAN_NS}]  # cbvmda: the EPCIS context's
SETTLEMENT_PREFIX = "urn:yaolian:nhsa:setl:"  # as verify.dispense writes settlement ids
HMS = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]


class Clock:
    """Simulation day (0 = first reported day; negative = warm-up) → calendar date and times."""

    def __init__(self, start: date, first_day: int, last_day: int) -> None:
        self.start = start
        self.first_day = first_day
        self._dates = [
            (start + timedelta(days=d)).isoformat() for d in range(first_day, last_day + 1)
        ]

    def date(self, day: int) -> date:
        """Calendar date of a simulation day."""
        return self.start + timedelta(days=day)

    def iso_date(self, day: int) -> str:
        """``YYYY-MM-DD`` of a simulation day."""
        return self._dates[day - self.first_day]

    def at(self, day: int, second: int) -> str:
        """ISO 8601 time with offset of a second of a simulation day (clamped to the day)."""
        second = min(max(second, 0), 86_399)
        return f"{self._dates[day - self.first_day]}T{HMS[second]}{TZ}"


class CodeFormat:
    """How one packaging level of a product spells its codes: URI prefix and raw prefix.

    NMPA products (rule a): ``药品标识码 + 13-digit serial`` as ``urn:nmpa:code:…``; GS1 products
    (rule b): ``urn:epc:id:sgtin:…`` and the element string ``01{GTIN}21{serial}`` in sale lines.
    """

    def __init__(self, product_code: str, gtin: str | None) -> None:
        if gtin:
            probe = "0" * 13
            self.uri_prefix = sgtin_uri(gtin, probe)[: -len(probe)]
            self.raw_prefix = f"01{gtin}21"
        else:
            probe = product_code + "0" * 13
            self.uri_prefix = nmpa_code_uri(probe)[:-13]
            assert self.uri_prefix == NMPA_CODE + product_code
            self.raw_prefix = product_code

    def uri(self, serial: int) -> str:
        """EPC URI of the code with this serial."""
        return f"{self.uri_prefix}{serial:013d}"

    def raw(self, serial: int) -> str:
        """The code as printed and scanned (NMPA 20 characters or GS1 element string)."""
        return f"{self.raw_prefix}{serial:013d}"


def loc(uri: str) -> dict[str, str]:
    """A readPoint / bizLocation value."""
    return {"id": uri}


def object_event(
    time: str,
    epcs: list[str],
    action: str,
    biz_step: str,
    disposition: str | None,
    location: str,
    **extra: Any,
) -> Event:
    """An ObjectEvent at a site (readPoint = bizLocation), extra fields appended in order."""
    ev: Event = {
        "type": "ObjectEvent",
        "eventTime": time,
        "eventTimeZoneOffset": TZ,
        "epcList": epcs,
        "action": action,
        "bizStep": biz_step,
    }
    if disposition:
        ev["disposition"] = disposition
    ev["readPoint"] = {"id": location}
    if action != "DELETE":
        ev["bizLocation"] = {"id": location}
    ev.update(extra)
    return ev


def aggregation_event(
    time: str, parent: str, children: list[str], action: str, location: str
) -> Event:
    """Packing (ADD) or unpacking (DELETE) of a case or pallet at a site."""
    ev: Event = {
        "type": "AggregationEvent",
        "eventTime": time,
        "eventTimeZoneOffset": TZ,
        "parentID": parent,
        "childEPCs": children,
        "action": action,
        "bizStep": "packing" if action == "ADD" else "unpacking",
    }
    if action == "ADD":
        ev["disposition"] = "in_progress"
    ev["readPoint"] = {"id": location}
    if action == "ADD":
        ev["bizLocation"] = {"id": location}
    return ev


def parties(
    seller_party: str, seller_site: str, buyer_party: str, buyer_site: str
) -> dict[str, list[dict[str, str]]]:
    """sourceList / destinationList with owning parties and locations."""
    return {
        "sourceList": [
            {"type": "owning_party", "source": seller_party},
            {"type": "location", "source": seller_site},
        ],
        "destinationList": [
            {"type": "owning_party", "destination": buyer_party},
            {"type": "location", "destination": buyer_site},
        ],
    }


def biz_tx(kind: str, gln: str, number: str) -> dict[str, str]:
    """A CBV business transaction ``urn:epcglobal:cbv:bt:{GLN}:{number}``."""
    return {"type": kind, "bizTransaction": f"urn:epcglobal:cbv:bt:{gln}:{number}"}


def temperature_report(
    start: str, end: str, device: str, low: float, high: float, mean: float
) -> list[dict[str, Any]]:
    """A sensorElementList with one logger's temperature summary over a transit (°C)."""
    return [
        {
            "sensorMetadata": {"startTime": start, "endTime": end, "deviceID": device},
            "sensorReport": [
                {
                    "type": "Temperature",
                    "minValue": low,
                    "maxValue": high,
                    "meanValue": mean,
                    "uom": "CEL",
                },
            ],
        }
    ]


def sale_event(
    prototype: Event, time: str, codes: list[str], settlement: str, quantity: float, split: bool
) -> Event:
    """One NHSA sale line from a site's prototype built by :class:`verify.dispense.SaleLine`.

    Sets exactly what ``SaleLine.event`` sets per line (time, codes, settlement transaction and
    the ``yaolian:saleLine`` facts); ``tests/test_sim.py`` proves the two agree.
    """
    line: dict[str, Any] = {"splitSale": split, "quantity": quantity}
    if split:
        line["units"] = quantity / len(codes)
    line["settlementId"] = settlement
    ev = prototype.copy()
    ev["eventTime"] = time
    ev["epcList"] = codes
    ev["bizTransactionList"] = [
        {"type": SETTLEMENT_TX_TYPE, "bizTransaction": SETTLEMENT_PREFIX + settlement}
    ]
    ev[SALE_LINE_KEY] = line
    return ev
