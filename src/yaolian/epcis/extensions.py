"""Facts carried outside the standard event fields, read alike from every binding.

Two kinds: the CBV master-data attributes of ILMD (批号 ``lotNumber``, 有效期
``itemExpirationDate``, 生产日期 ``productionDate``), and yaolian's NHSA sale line
(``yaolian:saleLine``). JSON gives typed values (``true``, ``2.5``) where XML gives text
(``"true"``, ``"2.5"``). Documents spell the CBV master-data namespace three ways
(``urn:epcglobal:cbv:mda`` in most XML, with a trailing ``:`` in GS1's own hash examples, with
``#`` in master-data attribute ids); the XML reader keeps the spelling the document used (the
event hash depends on it) under a prefix of its own, so these readers look the attributes up
by namespace, not by prefix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from yaolian.epcis.context import event_namespaces
from yaolian.epcis.model import Event

YAOLIAN_NS = "https://yaolian.org/ns/epcis/"
SALE_LINE_KEY = "yaolian:saleLine"  # NHSA sale-line facts on a dispensing event (verify.dispense)
LOT_KEY = "yaolian:lotNumber"  # 批号 of a non-commissioning event (NMPA data-set rows)
CBV_MDA_NAMESPACES = frozenset(
    ("urn:epcglobal:cbv:mda", "urn:epcglobal:cbv:mda:", "urn:epcglobal:cbv:mda#")
)
_LOT, _EXPIRY, _PRODUCED = "lotNumber", "itemExpirationDate", "productionDate"
_ILMD_NAMES = (_LOT, _EXPIRY, _PRODUCED)
_CBVMDA_KEYS = tuple(f"cbvmda:{name}" for name in _ILMD_NAMES)


@dataclass(frozen=True, slots=True)
class Ilmd:
    """Batch facts of commissioned codes (text as written; dates YYYY-MM-DD)."""

    lot: str | None
    expiry: str | None
    produced: str | None

    def __bool__(self) -> bool:
        """Whether any of the three is known."""
        return bool(self.lot or self.expiry or self.produced)


NO_ILMD = Ilmd(None, None, None)


def ilmd_facts(event: Event) -> Ilmd:
    """Lot, expiry and production date from the event's ILMD (see :func:`ilmd_as_written`);
    the dates as YYYY-MM-DD, ``None`` when not an ``xsd:date`` (validation refuses those)."""
    raw = ilmd_as_written(event)
    if raw.expiry is None and raw.produced is None:
        return raw
    return Ilmd(raw.lot, xsd_date(raw.expiry), xsd_date(raw.produced))


_XSD_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)


def xsd_date(value: str | None) -> str | None:
    """The YYYY-MM-DD of an ``xsd:date`` (a time-zone suffix dropped), else ``None``."""
    if value is None:
        return None
    day = value
    if len(value) != 10:  # the usual spelling skips the pattern
        found = _XSD_DATE.fullmatch(value)
        if found is None:
            return None
        day = found[1]
    elif not (value[4] == value[7] == "-" and (value[:4] + value[5:7] + value[8:]).isdigit()):
        return None
    try:
        date.fromisoformat(day)
    except ValueError:
        return None
    return day


def ilmd_as_written(event: Event) -> Ilmd:
    """Lot, expiry and production date of the event's ILMD as written: ``cbvmda:`` names, names
    under any prefix the event declares for a CBV master-data namespace, full IRIs in one, or
    bare names."""
    ilmd = event.get("ilmd")
    if not ilmd or not isinstance(ilmd, dict):
        return NO_ILMD
    lot, expiry, produced = map(ilmd.get, _CBVMDA_KEYS)
    if lot.__class__ is expiry.__class__ is produced.__class__ is str and lot and expiry:
        return Ilmd(lot, expiry, produced or None)  # the usual spelling, all text
    values = [as_text(lot), as_text(expiry), as_text(produced)]
    if values == [None, None, None]:  # not the usual spelling: look at every name
        heads = {"", *CBV_MDA_NAMESPACES}
        heads.update(f"{p}:" for p, uri in event_namespaces(event).items() if uri in heads)
        for key, value in ilmd.items():
            for i, name in enumerate(_ILMD_NAMES):
                if key.endswith(name) and key[: -len(name)] in heads:
                    values[i] = as_text(value)
    return Ilmd(*values)


def as_text(value: Any) -> str | None:
    """A scalar attribute as text (a lot written as a JSON number is the same lot)."""
    if value is None or value == "" or isinstance(value, dict | list | bool):
        return None
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class SaleLine:
    """What a dispensing event's sale line says."""

    split: bool  # 拆零: units sold from opened packs
    units: float | None  # units per listed code of a split sale; None for whole packs
    settlement: str | None  # NHSA settlement id (结算号)


def sale_line(event: Event) -> SaleLine | None:
    """The event's ``yaolian:saleLine`` (``None`` without one). A split sale's units per code
    are its ``units``, else its ``quantity`` shared by the listed codes, else one."""
    line = event.get(SALE_LINE_KEY)
    if not isinstance(line, dict):
        return None
    settlement = as_text(line.get("settlementId"))
    if not _boolean(line.get("splitSale")):
        return SaleLine(False, None, settlement)
    units = _positive(line.get("units"))
    if units is None:
        quantity = _positive(line.get("quantity"))
        codes = len(event.get("epcList") or ()) or 1
        units = quantity / codes if quantity is not None else 1.0
    return SaleLine(True, units, settlement)


def _boolean(value: Any) -> bool:
    """JSON true/false, or XML Schema boolean text (``true``, ``false``, ``1``, ``0``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return value is True or (isinstance(value, int | float) and value == 1)


def _positive(value: Any) -> float | None:
    """A positive finite number, from JSON or XML text; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None
