"""Issuing trace codes (赋码): serials for a product × packaging level × batch that are unique
forever, not guessable and idempotent per request id.

* Serials come from the operating system's CSPRNG (:mod:`secrets`), uniformly over the rule's
  serial space — never sequential, so a counterfeiter who sees codes cannot derive others
  (rule a: 13 random digits per 药品标识码; GS1: 12 random characters of 0-9A-Z, ~62 bits).
* Uniqueness is enforced by the ``issued_code.code`` unique index; a collision with a code
  issued before is drawn again.
* The same ``request_id`` returns the same codes (stored in ``code_issue_request`` /
  ``issued_code``); reusing it with different parameters is an error. Request ids are each
  issuer's own: an enterprise issuing over HTTP (its USCC) or the platform operator ("").
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from yaolian.codes.digital_link import digital_link
from yaolian.codes.gs1 import AIS, Pairs, build_element_string, check_ai_value, gs1_date_text
from yaolian.codes.nmpa import CodeRule, nmpa_code_uri
from yaolian.codes.registry import CodeRegistry, Product
from yaolian.errors import CodeError, NotFoundError
from yaolian.store import schema
from yaolian.store.tx import read_tx, write_tx
from yaolian.tables import csv_text

MAX_QUANTITY = 1_000_000
GS1_SERIAL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GS1_SERIAL_LENGTH = 12
_CHUNK = 500  # codes per IN (...) lookup


@dataclass(frozen=True)
class IssueRequest:
    """What to issue: ``quantity`` codes of one product (its 药品标识码 fixes the packaging level)
    in one batch."""

    request_id: str
    product_code: str
    quantity: int
    lot: str | None = None
    expiry: date | None = None
    issuer: str = ""  # USCC of the enterprise asking; "" for the platform operator


@dataclass(frozen=True)
class IssuedCode:
    """One issued code: print position, the code, its serial."""

    seq: int
    code: str
    serial: str


@dataclass(frozen=True)
class IssueResult:
    """The codes of one request, in print order; ``reused`` when the request id was known."""

    request: IssueRequest
    product: Product
    rule: str
    codes: list[IssuedCode]
    reused: bool

    def print_lines(self) -> list[dict[str, str]]:
        """One record per code for a printing line: the code, the data to encode in the
        DataMatrix (GS1: the bracketed element string, which GS1-aware printers encode with
        FNC1) and the URI."""
        return [self._line(c) for c in self.codes]

    def _line(self, c: IssuedCode) -> dict[str, str]:
        req = self.request
        base = {
            "seq": str(c.seq),
            "code": c.code,
            "serial": c.serial,
            "lot": req.lot or "",
            "expiry": req.expiry.isoformat() if req.expiry else "",
        }
        if self.rule != "GS1":
            return {**base, "barcode_data": c.code, "uri": nmpa_code_uri(c.code)}
        pairs = _gs1_pairs(self.product.product_code, c.serial, req.lot, req.expiry)
        return {
            **base,
            "barcode_data": build_element_string(pairs, bracketed=True),
            "uri": digital_link(
                self.product.product_code,
                serial=c.serial,
                lot=req.lot,
                expiry=gs1_date_text(req.expiry) if req.expiry else None,
            ),
        }


def _gs1_pairs(gtin: str, serial: str, lot: str | None, expiry: date | None) -> Pairs:
    pairs: Pairs = [("01", gtin)]
    if expiry is not None:
        pairs.append(("17", gs1_date_text(expiry)))
    if lot is not None:
        pairs.append(("10", lot))
    pairs.append(("21", serial))
    return pairs


def _expand_charset(charset: str) -> str:
    """Characters of a regular-expression class body such as ``0-9A-Z``."""
    out: list[str] = []
    for m in re.finditer(r"(.)-(.)|(.)", charset):
        if m.group(3) is not None:
            out.append(m.group(3))
        else:
            out.extend(chr(c) for c in range(ord(m.group(1)), ord(m.group(2)) + 1))
    return "".join(dict.fromkeys(out))


def _rule_for(registry: CodeRegistry, product: Product) -> CodeRule | None:
    """The issuer rule for a 药品标识码; ``None`` for a GTIN (GS1, rule b)."""
    code = product.product_code
    if len(code) == 14 and code.isascii() and code.isdigit():
        return None
    for rule in registry.rules:
        if rule.product_code_length == len(code) and rule.matches_prefix(code):
            return rule
    raise CodeError(f"药品标识码 {code}: no issuer rule has this prefix and length")


def _gs1_issued(gtin: str, serial: str) -> str:
    """A GS1 code as ``issued_code`` keeps it: ``(01){gtin}(21){serial}``."""
    return f"(01){gtin}(21){serial}"


class _SerialSource:
    """Random serials of one rule for one product."""

    def __init__(self, product_code: str, rule: CodeRule | None) -> None:
        self.product_code = product_code
        if rule is None:
            self.alphabet, self.length, self.name = GS1_SERIAL_ALPHABET, GS1_SERIAL_LENGTH, "GS1"
        else:
            self.alphabet = _expand_charset(rule.charset)
            self.length = rule.total_length - rule.product_code_length
            self.name = rule.issuer
        if not self.alphabet:
            raise CodeError(f"code rule {self.name!r}: empty character set")
        self.space = len(self.alphabet) ** self.length

    def draw(self) -> tuple[str, str]:
        """A fresh random ``(code, serial)``."""
        base, n = len(self.alphabet), secrets.randbelow(self.space)
        chars = []
        for _ in range(self.length):
            n, digit = divmod(n, base)
            chars.append(self.alphabet[digit])
        serial = "".join(chars)
        if self.name == "GS1":
            return _gs1_issued(self.product_code, serial), serial
        return self.product_code + serial, serial


def issue_codes(
    bind: sa.Engine | sa.Connection, registry: CodeRegistry, request: IssueRequest
) -> IssueResult:
    """Issue (or, for a known request id, return) the codes of ``request``, in one transaction."""
    _check_request(request)
    product = registry.product(request.product_code)
    rule = _rule_for(registry, product)
    source = _SerialSource(product.product_code, rule)
    with write_tx(bind) as conn:
        known = _load(conn, request, product)
        if known is not None:
            return known
        req_id = conn.execute(
            sa.insert(schema.code_issue_request).returning(schema.code_issue_request.c.id),
            {
                "request_id": request.request_id,
                "issuer": request.issuer,
                "product_code": product.product_code,
                "packaging_level": product.packaging_level,
                "lot": request.lot,
                "expiry": request.expiry.isoformat() if request.expiry else None,
                "quantity": request.quantity,
                "rule": source.name,
                "created_us": time.time_ns() // 1000,
            },
        ).scalar_one()
        codes = _fresh_codes(conn, source, request.quantity)
        conn.execute(
            sa.insert(schema.issued_code),
            [
                {"request_id": req_id, "seq": c.seq, "code": c.code, "serial": c.serial}
                for c in codes
            ],
        )
    return IssueResult(request, product, source.name, codes, reused=False)


def _check_request(request: IssueRequest) -> None:
    if not request.request_id or len(request.request_id) > 100:
        raise CodeError("request id must have 1–100 characters", place="request_id")
    if not 1 <= request.quantity <= MAX_QUANTITY:
        raise CodeError(f"quantity must be 1–{MAX_QUANTITY}", place="quantity")
    if request.lot is not None:
        try:
            check_ai_value(AIS["10"], request.lot)
        except CodeError as exc:
            raise CodeError(exc.reason, place="lot") from exc


def _fresh_codes(conn: sa.Connection, source: _SerialSource, quantity: int) -> list[IssuedCode]:
    chosen: dict[str, str] = {}
    while len(chosen) < quantity:
        batch = dict(source.draw() for _ in range(quantity - len(chosen)))
        batch = {k: v for k, v in batch.items() if k not in chosen}
        taken = _existing(conn, batch)
        chosen.update((k, v) for k, v in batch.items() if k not in taken)
    return [IssuedCode(i, code, serial) for i, (code, serial) in enumerate(chosen.items(), 1)]


def _existing(conn: sa.Connection, codes: Iterable[str]) -> set[str]:
    col = schema.issued_code.c.code
    found: set[str] = set()
    items = list(codes)
    for i in range(0, len(items), _CHUNK):
        chunk = items[i : i + _CHUNK]
        found.update(conn.execute(sa.select(col).where(col.in_(chunk))).scalars())
    return found


def _load(conn: sa.Connection, request: IssueRequest, product: Product) -> IssueResult | None:
    r = schema.code_issue_request
    mine = (r.c.issuer == request.issuer) & (r.c.request_id == request.request_id)
    row = conn.execute(sa.select(r).where(mine)).mappings().first()
    if row is None:
        return None
    expiry = request.expiry.isoformat() if request.expiry else None
    stored = (row["product_code"], row["lot"], row["expiry"], row["quantity"])
    if stored != (product.product_code, request.lot, expiry, request.quantity):
        raise CodeError(
            f"request id {request.request_id!r} was already used for product {stored[0]}, "
            f"lot {stored[1]}, expiry {stored[2]}, quantity {stored[3]}",
            place="request_id",
        )
    c = schema.issued_code
    rows = conn.execute(
        sa.select(c.c.seq, c.c.code, c.c.serial)
        .where(c.c.request_id == row["id"])
        .order_by(c.c.seq)
    ).all()
    codes = [IssuedCode(seq, code, serial) for seq, code, serial in rows]
    return IssueResult(request, product, row["rule"], codes, reused=True)


def load_request(
    bind: sa.Engine | sa.Connection, registry: CodeRegistry, request_id: str, issuer: str = ""
) -> IssueResult:
    """The codes ``issuer`` had issued under ``request_id`` (for re-printing)."""
    r = schema.code_issue_request
    mine = (r.c.issuer == issuer) & (r.c.request_id == request_id)
    with read_tx(bind) as conn:
        row = conn.execute(sa.select(r).where(mine)).mappings().first()
        if row is None:
            raise NotFoundError(f"no issue request {request_id!r}", place="request_id")
        request = IssueRequest(
            request_id,
            row["product_code"],
            row["quantity"],
            row["lot"],
            date.fromisoformat(row["expiry"]) if row["expiry"] else None,
            issuer,
        )
        found = _load(conn, request, registry.product(row["product_code"]))
    assert found is not None
    return found


def list_requests(
    bind: sa.Engine | sa.Connection, issuer: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """Issue requests, newest first: ``issuer``'s (a USCC, "" the operator's), or everyone's
    when None — request id, issuer, product, lot, expiry, quantity, rule, ``created_us``."""
    r = schema.code_issue_request
    query = sa.select(r).order_by(r.c.id.desc()).limit(limit)
    if issuer is not None:
        query = query.where(r.c.issuer == issuer)
    with read_tx(bind) as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {
            "requestId": row["request_id"],
            "issuer": row["issuer"] or None,
            "product": row["product_code"],
            "lot": row["lot"],
            "expiry": row["expiry"],
            "quantity": row["quantity"],
            "rule": row["rule"],
            "created_us": row["created_us"],
        }
        for row in rows
    ]


def issued_at(conn: sa.Connection, key: str) -> int | None:
    """When the code with canonical ``key`` was issued here (microseconds), or None: an NMPA
    code (``n:…``) or a GS1 ``01/…/21/…`` key as :func:`issue_codes` records them."""
    if key.startswith("n:"):
        issued = key[2:]
    else:
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != "01" or parts[2] != "21":
            return None
        issued = _gs1_issued(parts[1], parts[3])
    c, r = schema.issued_code, schema.code_issue_request
    found = conn.execute(
        sa.select(r.c.created_us)
        .select_from(c.join(r, r.c.id == c.c.request_id))
        .where(c.c.code == issued)
    ).scalar()
    return None if found is None else int(found)


def export_csv(result: IssueResult) -> str:
    """The print lines as CSV (UTF-8 text, header row)."""
    lines = result.print_lines()
    header = list(lines[0]) if lines else ["seq", "code"]
    return csv_text(header, ([line[k] for k in header] for line in lines))


def export_text(result: IssueResult) -> str:
    """The codes as plain text, one per line, in print order."""
    return "".join(c.code + "\n" for c in result.codes)
