"""Master data documents (主数据): enterprises, sites and products in one JSON file or XLSX
workbook, checked whole and then loaded in one transaction.

* JSON: ``{"enterprises": […], "sites": […], "products": […]}`` — the shape ``yaolian sim``
  writes to ``masterdata.json``; any of the three lists may be left out.
* XLSX: sheets named ``enterprises``, ``sites``, ``products``; the first row holds the field
  names, each later row one record (empty rows are skipped).

A row updates the stored record by its key (USCC, location id, product code): fields it leaves
out (or empty cells) keep their stored value, an explicit JSON ``null`` clears one.

Fields are those of :class:`EnterpriseRow`, :class:`SiteRow` and :class:`ProductRow`. Every
fault of a document is reported at once, each with its place (``sites[3].lat``, or ``sites row
5 lat`` with the sheet's row number for workbooks), and nothing is written unless all rows are
good. An enterprise key may register only itself, its own sites and products it holds or
makes; regulator and admin keys may register anything. Changes the anomaly rules read (owners,
coordinates, unit counts, storage ranges) recompute the codes concerned once per document.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError
from sqlalchemy import Connection, Engine, select

from yaolian.codes.gs1 import normalize_gtin
from yaolian.errors import (
    CodeError,
    ForbiddenError,
    Problem,
    ValidationError,
    YaolianError,
    refuse_nul,
)
from yaolian.store.access import Viewer
from yaolian.store.masterdata import MasterDataWriter, validate_uscc
from yaolian.store.schema import enterprise, product, site
from yaolian.store.tx import read_tx, write_tx
from yaolian.tables import open_workbook, sheet_records

SECTIONS = ("enterprises", "sites", "products")


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _uscc(value: str) -> str:
    try:
        return validate_uscc(value)
    except ValidationError as exc:
        raise ValueError(exc.reason) from None


Region = Field(default=None, pattern=r"^[0-9]{6}$", description="行政区划代码 (6 digits)")


class EnterpriseRow(_Row):
    """An enterprise: 统一社会信用代码, name, role (holder, manufacturer, distributor, hospital,
    pharmacy, regulator, herb_base …), region and EPCIS party identifier (PGLN URI)."""

    uscc: str
    name: str = Field(min_length=1, max_length=200)
    role: str | None = Field(default=None, min_length=1, max_length=20)  # needed when new
    region: str | None = Region
    party_id: str | None = Field(default=None, min_length=1, max_length=200)

    _check_uscc = field_validator("uscc")(_uscc)


class SiteRow(_Row):
    """A site (read point / business location) and the enterprise that owns it."""

    location_id: str = Field(min_length=1, max_length=200, description="SGLN or location URI")
    enterprise_uscc: str
    name: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, max_length=20)
    region: str | None = Region
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    _check_uscc = field_validator("enterprise_uscc")(_uscc)


class ProductRow(_Row):
    """A product by its 药品标识码 or GTIN: names, form, packaging, 拆零 units per pack, holder
    (上市许可持有人) and manufacturer, 批准文号 and storage range (°C)."""

    product_code: str = Field(pattern=r"^[0-9A-Za-z]{1,20}$")
    generic_name: str = Field(min_length=1, max_length=200)
    gtin: str | None = None
    trade_name: str | None = None
    dosage_form: str | None = None
    strength: str | None = None
    pack_spec: str | None = None
    packaging_level: int = Field(default=1, ge=1, le=3)
    units_per_pack: int = Field(default=1, ge=1, le=100_000)
    holder_uscc: str | None = None
    manufacturer_uscc: str | None = None
    approval_no: str | None = None
    approval_valid_until: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    temp_min: float | None = Field(default=None, ge=-100, le=100)
    temp_max: float | None = Field(default=None, ge=-100, le=100)

    @field_validator("gtin")
    @classmethod
    def _gtin14(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_gtin(value)
        except CodeError as exc:
            raise ValueError(exc.reason) from None

    _check_usccs = field_validator("holder_uscc", "manufacturer_uscc")(
        lambda v: None if v is None else _uscc(v)
    )

    @model_validator(mode="after")
    def _range(self) -> Self:
        low, high = self.temp_min, self.temp_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"temp_min {self.temp_min} is above temp_max {self.temp_max}")
        return self


class MasterData(_Row):
    """A master data document."""

    enterprises: list[EnterpriseRow] = Field(default_factory=list)
    sites: list[SiteRow] = Field(default_factory=list)
    products: list[ProductRow] = Field(default_factory=list)


def _place(loc: tuple[int | str, ...], source: str, rows: dict[str, list[int]] | None) -> str:
    """``sites[3].lat``; for a workbook ``sites row 5 lat`` (the sheet's own row number)."""
    if len(loc) >= 2 and isinstance(loc[1], int) and rows is not None:
        section, index, rest = str(loc[0]), loc[1], loc[2:]
        where = f"{section} row {rows[section][index]}"
        return f"{source}: {where}" + (f" {'.'.join(map(str, rest))}" if rest else "")
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{source}: {text}" if text else source


def parse_master_data(
    obj: Any, source: str = "<master data>", rows: dict[str, list[int]] | None = None
) -> MasterData:
    """Check a decoded document; every fault in one :class:`ValidationError`."""
    if not isinstance(obj, dict):
        raise ValidationError(
            "a master data document is an object with enterprises, sites and products",
            place=source,
        )
    refuse_nul(obj, f"{source}: ")
    try:
        return MasterData.model_validate(obj)
    except PydanticError as exc:
        problems = [
            Problem(
                reason=str(err["msg"]).removeprefix("Value error, "),
                place=_place(tuple(err["loc"]), source, rows),
            )
            for err in exc.errors()
        ]
        first = problems[0]
        raise ValidationError(
            f"{len(problems)} fault(s) in master data; first: {first.reason}",
            place=first.place,
            problems=problems,
        ) from None


_NUMERIC_FIELDS = frozenset(
    {"lat", "lon", "temp_min", "temp_max", "units_per_pack", "packaging_level"}
)


def _cell(name: str, value: Any) -> Any:
    """A cell as the document field wants it: Excel turns codes typed into text columns into
    numbers (a GTIN loses its leading zero), so those become text again."""
    if isinstance(value, str):
        return value.strip()
    if name in _NUMERIC_FIELDS or not isinstance(value, int | float):
        return value
    text = str(int(value)) if float(value).is_integer() else str(value)
    return text.zfill(14) if name == "gtin" else text


def read_workbook(path: Path) -> MasterData:
    """A master data XLSX workbook (sheets ``enterprises``, ``sites``, ``products``)."""
    with open_workbook(path, str(path)) as workbook:
        names = {name.strip().lower(): name for name in workbook.sheetnames}
        if not names.keys() & set(SECTIONS):
            raise ValidationError(
                f"no sheet named {', '.join(SECTIONS)}; sheets: {', '.join(workbook.sheetnames)}",
                place=str(path),
            )
        doc: dict[str, Any] = {}
        rows: dict[str, list[int]] = {}
        for section in SECTIONS:
            if section in names:
                doc[section], rows[section] = sheet_records(workbook[names[section]], _cell)
    return parse_master_data(doc, str(path), rows)


def read_master_data(path: str | Path) -> MasterData:
    """Read a master data file chosen by extension (``.json`` or ``.xlsx``)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        if not file.is_file():
            raise ValidationError("no such file", place=str(file))
        return read_workbook(file)
    if suffix != ".json":
        raise ValidationError(
            f"unknown master data file type {suffix!r}; use .json or .xlsx", place=str(file)
        )
    try:
        obj = orjson.loads(file.read_bytes())
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror}", place=str(file)) from exc
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"not JSON: {exc}", place=str(file)) from exc
    return parse_master_data(obj, str(file))


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load wrote, and how many codes' trace rows it recomputed."""

    enterprises: int
    sites: int
    products: int
    codes_recomputed: int

    def as_dict(self) -> dict[str, int]:
        """JSON shape."""
        return {
            "enterprises": self.enterprises,
            "sites": self.sites,
            "products": self.products,
            "codesRecomputed": self.codes_recomputed,
        }


def _refuse_foreign(conn: Connection, data: MasterData, enterprise_id: int) -> None:
    """ForbiddenError naming the first row an enterprise key may not write."""
    own = conn.execute(select(enterprise.c.uscc).where(enterprise.c.id == enterprise_id)).scalar()
    for i, ent in enumerate(data.enterprises):
        if ent.uscc != own:
            raise ForbiddenError(
                "an enterprise key registers only its own enterprise", place=f"enterprises[{i}]"
            )
    for i, st in enumerate(data.sites):
        owner = conn.execute(
            select(site.c.enterprise_id).where(site.c.location_id == st.location_id)
        ).scalar()
        if st.enterprise_uscc != own or owner not in (None, enterprise_id):
            raise ForbiddenError(
                "an enterprise key registers only its own sites", place=f"sites[{i}]"
            )
    holder, maker = enterprise.alias("holder"), enterprise.alias("maker")
    p = product.c
    for i, prod in enumerate(data.products):
        stored = conn.execute(
            select(holder.c.uscc, maker.c.uscc)
            .select_from(product)
            .outerjoin(holder, holder.c.id == p.holder_id)
            .outerjoin(maker, maker.c.id == p.manufacturer_id)
            .where(p.product_code == prod.product_code)
        ).first()
        was_ours = stored is None or own in tuple(stored)
        given = prod.model_dump(exclude_unset=True)
        after = [
            given[field] if field in given else (stored[n] if stored is not None else None)
            for n, field in enumerate(("holder_uscc", "manufacturer_uscc"))
        ]
        if not was_ours or own not in after:
            raise ForbiddenError(
                "an enterprise key registers only products it holds or makes",
                place=f"products[{i}]",
            )


@contextmanager
def _at(row: str) -> Iterator[None]:
    """Prefix the place of a store-side refusal (unknown holder, taken GTIN …) with the row."""
    try:
        yield
    except YaolianError as exc:
        exc.place = f"{row}.{exc.place}" if exc.place else row
        exc.args = (f"{exc.place}: {exc.reason}",)
        raise


def load_master_data(
    bind: Engine | Connection, data: MasterData, viewer: Viewer | None = None
) -> Loaded:
    """Upsert every row of ``data`` in one transaction (enterprises, then sites, then
    products) and recompute once the projections that read what changed. ``viewer``: the key
    asking (``None``: the operator, unrestricted)."""
    with write_tx(bind) as conn:
        if viewer is not None and not viewer.sees_all:
            if viewer.enterprise_id is None:
                raise ForbiddenError(
                    "master data needs an enterprise or regulator key", place="Authorization"
                )
            _refuse_foreign(conn, data, viewer.enterprise_id)
        with MasterDataWriter(conn) as writer:
            for i, ent in enumerate(data.enterprises):
                with _at(f"enterprises[{i}]"):
                    writer.enterprise(**ent.model_dump(exclude_unset=True))
            for i, st in enumerate(data.sites):
                with _at(f"sites[{i}]"):
                    writer.site(**st.model_dump(exclude_unset=True))
            for i, prod in enumerate(data.products):
                with _at(f"products[{i}]"):
                    writer.product(**prod.model_dump(exclude_unset=True))
        return Loaded(len(data.enterprises), len(data.sites), len(data.products), writer.recomputed)


def export_master_data(
    bind: Engine | Connection, sections: Sequence[str] = SECTIONS
) -> dict[str, list[dict[str, Any]]]:
    """Every enterprise, site and product as a master data document (what
    :func:`load_master_data` reads back), or only the given ``sections``; empty fields left
    out."""
    e, st, p = enterprise.c, site.c, product.c
    owner, holder, maker = (
        enterprise.alias("owner"),
        enterprise.alias("holder"),
        enterprise.alias("maker"),
    )
    queries = {
        "enterprises": select(e.uscc, e.name, e.role, e.region, e.party_id).order_by(e.uscc),
        "sites": select(
            st.location_id,
            owner.c.uscc.label("enterprise_uscc"),
            st.name,
            st.kind,
            st.region,
            st.lat,
            st.lon,
        )
        .join(owner, owner.c.id == st.enterprise_id)
        .order_by(st.location_id),
        "products": select(
            *(c for c in product.c if c.name not in ("id", "holder_id", "manufacturer_id")),
            holder.c.uscc.label("holder_uscc"),
            maker.c.uscc.label("manufacturer_uscc"),
        )
        .outerjoin(holder, holder.c.id == p.holder_id)
        .outerjoin(maker, maker.c.id == p.manufacturer_id)
        .order_by(p.product_code),
    }
    with read_tx(bind) as conn:
        return {
            section: [
                {str(k): v for k, v in row._mapping.items() if v is not None}
                for row in conn.execute(query)
            ]
            for section, query in queries.items()
            if section in sections
        }
