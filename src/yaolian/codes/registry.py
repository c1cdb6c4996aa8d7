"""The code registry: issuer rules (码制规则) and registered products (药品标识码 → product), as
data — loaded from the bundled CSV files or from the store's ``code_rule`` / ``product`` tables,
so a new issuing organisation (发码机构) or product is a row, not code.

The bundled ``data/products.csv`` holds fictional sample products (marked "sample") for the
demo and tests; real deployments load their registry from the database.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from yaolian.codes.nmpa import CodeRule, TraceCode, parse_trace_code
from yaolian.errors import CodeError
from yaolian.tables import read_text, reading_csv

PACKAGING_LEVELS = {1: "最小销售包装 (pack)", 2: "中/大包装 (case)", 3: "托盘 (pallet)"}


@dataclass(frozen=True)
class Product:
    """A registered product at one packaging level, found by its 药品标识码 (or GTIN-14)."""

    product_code: str  # 药品标识码
    generic_name: str  # 通用名
    gtin: str | None = None
    trade_name: str | None = None  # 商品名
    dosage_form: str | None = None  # 剂型
    strength: str | None = None  # 制剂规格
    pack_spec: str | None = None  # 包装规格
    packaging_level: int = 1  # 1 pack, 2 case, 3 pallet
    units_per_pack: int = 1
    holder: str | None = None  # 上市许可持有人
    approval_no: str | None = None  # 批准文号

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view."""
        return asdict(self)


@dataclass(frozen=True)
class Validated:
    """A valid trace code with its registered product."""

    trace: TraceCode
    product: Product

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON output)."""
        return {**self.trace.as_dict(), "product": self.product.as_dict()}


def _read_csv(text: str, place: str) -> list[dict[str, str]]:
    with reading_csv(place):
        rows = list(csv.DictReader(io.StringIO(text)))
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise CodeError("wrong number of fields", place=f"{place} line {n}")
    return rows


def _rule_from_row(row: dict[str, Any], place: str) -> CodeRule:
    try:
        return CodeRule(
            issuer=str(row["issuer"]),
            total_length=int(row["total_length"]),
            product_code_length=int(row["product_code_length"]),
            prefix_pattern=str(row["prefix_pattern"]),
            charset=str(row["charset"]),
        )
    except (KeyError, ValueError) as exc:
        raise CodeError(f"bad code rule: {exc}", place=place) from exc


def _product_from_row(row: dict[str, Any], place: str) -> Product:
    def opt(name: str) -> str | None:
        value = row.get(name)
        return str(value) if value not in (None, "") else None

    try:
        return Product(
            product_code=str(row["product_code"]),
            generic_name=str(row["generic_name"]),
            gtin=opt("gtin"),
            trade_name=opt("trade_name"),
            dosage_form=opt("dosage_form"),
            strength=opt("strength"),
            pack_spec=opt("pack_spec"),
            packaging_level=int(row.get("packaging_level") or 1),
            units_per_pack=int(row.get("units_per_pack") or 1),
            holder=opt("holder"),
            approval_no=opt("approval_no"),
        )
    except (KeyError, ValueError) as exc:
        raise CodeError(f"bad product row: {exc}", place=place) from exc


def _bundled(name: str) -> str:
    return resources.files("yaolian.codes").joinpath(f"data/{name}").read_text("utf-8")


@functools.cache
def default_rules() -> tuple[CodeRule, ...]:
    """The bundled issuer rules (``data/code_rules.csv``)."""
    return tuple(
        _rule_from_row(row, f"code_rules.csv line {n}")
        for n, row in enumerate(_read_csv(_bundled("code_rules.csv"), "code_rules.csv"), start=2)
    )


class CodeRegistry:
    """Issuer rules + registered products; parses and validates trace codes."""

    def __init__(self, rules: Iterable[CodeRule], products: Iterable[Product] = ()) -> None:
        self.rules: list[CodeRule] = list(rules)
        self.products: dict[str, Product] = {}
        self._by_gtin: dict[str, Product] = {}
        for product in products:
            self.add_product(product)

    # ── loading ────────────────────────────────────────────────────────────────────────────
    @classmethod
    def bundled(cls) -> CodeRegistry:
        """The registry from the bundled files (default rules + sample products)."""
        rows = _read_csv(_bundled("products.csv"), "products.csv")
        products = [_product_from_row(r, f"products.csv line {n}") for n, r in enumerate(rows, 2)]
        return cls(default_rules(), products)

    @classmethod
    def from_files(
        cls, rules_csv: Path | None = None, products_csv: Path | None = None
    ) -> CodeRegistry:
        """Rules and products from CSV files (columns as the bundled ones); missing → bundled."""
        base = cls.bundled()
        rules: list[CodeRule] = base.rules
        if rules_csv is not None:
            rows = _read_csv(read_text(rules_csv), str(rules_csv))
            rules = [_rule_from_row(r, f"{rules_csv} line {n}") for n, r in enumerate(rows, 2)]
        products = list(base.products.values())
        if products_csv is not None:
            rows = _read_csv(read_text(products_csv), str(products_csv))
            products = [
                _product_from_row(r, f"{products_csv} line {n}") for n, r in enumerate(rows, 2)
            ]
        return cls(rules, products)

    @classmethod
    def from_db(cls, bind: sa.Engine | sa.Connection) -> CodeRegistry:
        """Rules from table ``code_rule`` and products from ``product`` (holder name from
        ``enterprise``). With no rule rows, the bundled default rules apply."""
        from yaolian.store import schema

        p, e = schema.product, schema.enterprise
        query = sa.select(p, e.c.name.label("holder")).select_from(
            p.outerjoin(e, p.c.holder_id == e.c.id)
        )
        with _connection(bind) as conn:
            rule_rows = conn.execute(sa.select(schema.code_rule)).mappings().all()
            product_rows = conn.execute(query).mappings().all()
        rules = [_rule_from_row(dict(r), f"code_rule id {r['id']}") for r in rule_rows]
        products = [_product_from_row(dict(r), f"product id {r['id']}") for r in product_rows]
        return cls(rules or default_rules(), products)

    @classmethod
    def for_store(cls, bind: sa.Engine | sa.Connection) -> CodeRegistry:
        """:meth:`from_db`, with the bundled sample products when the store has none yet (a
        fresh install, the demo)."""
        registry = cls.from_db(bind)
        if not registry.products:
            registry = cls(registry.rules, cls.bundled().products.values())
        return registry

    def save_rules(self, bind: sa.Engine | sa.Connection) -> int:
        """Insert this registry's rules into ``code_rule`` (issuers already there are kept)."""
        from yaolian.store import schema

        with _connection(bind) as conn:
            have = set(conn.execute(sa.select(schema.code_rule.c.issuer)).scalars())
            rows = [
                {
                    "issuer": r.issuer,
                    "total_length": r.total_length,
                    "product_code_length": r.product_code_length,
                    "prefix_pattern": r.prefix_pattern,
                    "charset": r.charset,
                }
                for r in self.rules
                if r.issuer not in have
            ]
            if rows:
                conn.execute(sa.insert(schema.code_rule), rows)
            if isinstance(bind, sa.Engine):
                conn.commit()
        return len(rows)

    def add_product(self, product: Product) -> None:
        """Register (or replace) a product."""
        self.products[product.product_code] = product
        if product.gtin:
            self._by_gtin[product.gtin.zfill(14)] = product

    # ── lookups ────────────────────────────────────────────────────────────────────────────
    def product(self, product_code: str) -> Product:
        """The product of a 药品标识码 or GTIN; :class:`CodeError` when not registered."""
        found = self.products.get(product_code) or self._by_gtin.get(product_code.zfill(14))
        if found is None:
            raise CodeError(f"unknown 药品标识码 {product_code}: no registered product")
        return found

    def gtins(self) -> set[str]:
        """GTIN-14s of the registered products."""
        return set(self._by_gtin)

    def parse(self, code: str) -> TraceCode:
        """Split a trace code into 药品标识码 + serial by the issuer rules (no product check)."""
        return parse_trace_code(code, self.rules)

    def validate(self, code: str) -> Validated:
        """A fully valid trace code: issuer rule, characters, length, registered product."""
        trace = self.parse(code)
        try:
            product = self.product(trace.product_code)
        except CodeError as exc:
            what = "GTIN" if trace.rule == "b" else "药品标识码"
            raise CodeError(
                f"trace code {code!r}: unknown {what} {trace.product_code} (not registered)"
            ) from exc
        return Validated(trace, product)


class _connection:
    """``with`` over an engine (opens a connection) or an existing connection (uses it)."""

    def __init__(self, bind: sa.Engine | sa.Connection) -> None:
        self.bind = bind
        self.conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            return self.bind
        self.conn = self.bind.connect()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
