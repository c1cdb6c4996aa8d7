"""The simulated world: enterprises, sites and products (master data) and the demand they meet.

Built deterministically from a :class:`Size` and a seed. Enterprises get a 统一社会信用代码 with a
valid GB 32100-2015 check character and an organisation code with a valid GB 11714 check
character, a GS1 China company prefix (690…) and GLNs for their sites; products get 药品标识码
(7 digits, issuer rule starting ``8``) for the pack and case levels, a 批准文号 and storage ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.epc import pgln_uri, sgln_uri
from yaolian.sim.catalog import (
    DISTRIBUTOR_WORDS,
    HERB_BASE,
    HERB_PROCESSOR,
    HERBS,
    HOSPITAL_KINDS,
    MAKERS,
    PHARMACY_WORDS,
    PRODUCTS,
    PROVINCES,
    City,
    ProductSpec,
    Province,
)
from yaolian.store.masterdata import USCC_CHARSET, uscc_check_char

# Tiers of the distribution network, upstream first.
FACTORY, PROVINCIAL_DC, REGIONAL_DC, RETAIL = 0, 1, 2, 3
# Products every size includes first (so the smallest world still has flu, cold chain and TCM).
PRODUCT_PRIORITY = (
    "oseltamivir",
    "amoxicillin",
    "metformin",
    "insulin",
    "flu_vaccine",
    "lianhua",
    "nifedipine",
    "cefuroxime",
    "amlodipine",
    "ibuprofen",
    "atorvastatin",
    "smectite",
    "ceftriaxone",
    "salbutamol",
)
_ORG_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class Size:
    """How big a world to simulate and for how long (``days`` after ``warmup_days``)."""

    name: str
    provinces: int
    cities_per_province: int
    hospitals_per_city: int
    pharmacies_per_city: int
    products: int
    days: int
    warmup_days: int = 21
    demand_scale: float = 1.0
    start: date = date(2025, 10, 1)
    incidents_scale: int = 1  # multiplies the number of code-level incidents


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", 2, 1, 1, 2, 6, 60, warmup_days=21, demand_scale=0.8),
    "demo": Size("demo", 4, 1, 2, 3, 10, 150, demand_scale=0.45),
    "small": Size("small", 6, 2, 2, 4, 14, 240, incidents_scale=3),
    "benchmark": Size("benchmark", 12, 3, 10, 35, 14, 365, incidents_scale=20),
}


def size_named(name: str) -> Size:
    """The preset size called ``name`` (tiny, demo, small, benchmark)."""
    from yaolian.errors import ValidationError

    try:
        return SIZES[name]
    except KeyError:
        raise ValidationError(
            f"unknown size {name!r}; choose one of {', '.join(SIZES)}", place="--size"
        ) from None


@dataclass
class Enterprise:
    """A legal entity: 统一社会信用代码, name, role, region, GS1 company prefix, PGLN."""

    index: int
    uscc: str
    name: str
    role: str
    region: str
    company_prefix: str
    party_id: str
    sites: list[int] = field(default_factory=list)


@dataclass
class Site:
    """A physical location (read point / business location) of an enterprise."""

    index: int
    enterprise: int
    name: str
    kind: str  # factory, warehouse, hospital, pharmacy, herb_base, processing
    tier: int
    region: str  # city 行政区划代码
    province: str
    lat: float
    lon: float
    gln: str
    location_id: str
    parent: int = -1  # the distributor this site orders from (retail, regional DC)


@dataclass
class Product:
    """A registered drug product with its codes and logistics facts."""

    index: int
    spec: ProductSpec
    product_code: str  # 药品标识码 of the pack level (or GTIN-14 for GS1 products)
    case_code: str  # 药品标识码 of the case level
    holder: int  # enterprise index
    factory: int  # site index
    approval_no: str
    gtin: str | None = None

    @property
    def cold(self) -> bool:
        """Cold-chain product (a storage range is registered)."""
        return self.spec.temp_max is not None


@dataclass
class World:
    """Everything static about a simulation run."""

    size: Size
    seed: int
    enterprises: list[Enterprise]
    sites: list[Site]
    products: list[Product]
    herb_base: int  # site index
    herb_processor: int  # site index
    herb_gtins: dict[str, str]  # herb / 饮片 name → GTIN-14 of its lot class
    base_demand: np.ndarray  # (sites, products) mean lines/day, zero off retail

    def retail_sites(self) -> list[int]:
        """Indexes of hospitals and pharmacies."""
        return [s.index for s in self.sites if s.tier == RETAIL]

    def site_by_location(self) -> dict[str, Site]:
        """Sites keyed by their location URI."""
        return {s.location_id: s for s in self.sites}


def org_code(body8: str) -> str:
    """A 组织机构代码 (GB 11714): 8 characters plus its check character."""
    total = sum(_ORG_CHARS.index(ch) * w for ch, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body8 + ("X" if check == 10 else "0" if check == 11 else str(check))


def make_uscc(rng: np.random.Generator, kind: str, region: str) -> str:
    """A 统一社会信用代码: registration authority + type, region, organisation code, check char.

    ``kind`` ``"91"`` = 工商 企业, ``"12"`` = 机构编制 事业单位 (public hospitals).
    """
    body8 = "".join(_ORG_CHARS[int(v)] for v in rng.integers(0, 10, size=8))
    body17 = kind + region + org_code(body8)
    assert all(ch in USCC_CHARSET for ch in body17)
    return body17 + uscc_check_char(body17)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(a))


class _Builder:
    def __init__(self, size: Size, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng([seed, 1])
        self.enterprises: list[Enterprise] = []
        self.sites: list[Site] = []
        self._prefixes: set[str] = set()
        self._usccs: set[str] = set()

    def enterprise(self, name: str, role: str, region: str, kind: str = "91") -> Enterprise:
        while True:
            uscc = make_uscc(self.rng, kind, region)
            if uscc not in self._usccs:
                break
        while True:
            prefix = "690" + f"{int(self.rng.integers(0, 10_000)):04d}"
            if prefix not in self._prefixes:
                break
        self._usccs.add(uscc)
        self._prefixes.add(prefix)
        gln = prefix + "00000"
        ent = Enterprise(
            len(self.enterprises),
            uscc,
            name,
            role,
            region,
            prefix,
            pgln_uri(gln + gs1_check_digit(gln)),
        )
        self.enterprises.append(ent)
        return ent

    def site(
        self, ent: Enterprise, name: str, kind: str, tier: int, city: City, province: str
    ) -> Site:
        ref = f"{len(ent.sites) + 1:05d}"
        gln = ent.company_prefix + ref
        gln += gs1_check_digit(gln)
        jitter = self.rng.normal(0.0, 0.05, size=2)
        site = Site(
            len(self.sites),
            ent.index,
            name,
            kind,
            tier,
            city.code,
            province,
            round(city.lat + float(jitter[0]), 5),
            round(city.lon + float(jitter[1]), 5),
            gln,
            sgln_uri(gln),
        )
        ent.sites.append(site.index)
        self.sites.append(site)
        return site


def _city(province: Province) -> City:
    return province.cities[0]


def build_world(size: Size, seed: int) -> World:
    """Build the master data and demand parameters of a world (deterministic per seed)."""
    b = _Builder(size, seed)
    rng = b.rng
    provinces = PROVINCES[: size.provinces]
    by_code = {p.code: p for p in PROVINCES}
    specs = {p.key: p for p in PRODUCTS}
    chosen = [specs[k] for k in PRODUCT_PRIORITY[: size.products]]

    # Holders / manufacturers with one factory each.
    maker_site: dict[str, Site] = {}
    maker_ent: dict[str, Enterprise] = {}
    for maker in MAKERS:
        if not any(s.maker == maker.key for s in chosen):
            continue
        prov = by_code[maker.province]
        ent = b.enterprise(maker.name, "holder", _city(prov).code)
        maker_ent[maker.key] = ent
        maker_site[maker.key] = b.site(
            ent, f"{maker.name}生产基地", "factory", FACTORY, _city(prov), prov.code
        )

    # Herb base and 饮片 processor (TCM chain).
    base_prov, proc_prov = by_code[HERB_BASE[1]], by_code[HERB_PROCESSOR[1]]
    base_city = next(c for c in base_prov.cities if c.code == HERB_BASE[2])
    base_ent = b.enterprise(
        HERB_BASE[0].replace("基地", "合作社"), "herb_base", base_city.code, "93"
    )
    herb_base = b.site(base_ent, HERB_BASE[0], "herb_base", FACTORY, base_city, base_prov.code)
    proc_ent = b.enterprise(HERB_PROCESSOR[0], "manufacturer", _city(proc_prov).code)
    herb_proc = b.site(
        proc_ent,
        f"{HERB_PROCESSOR[0]}炮制车间",
        "processing",
        FACTORY,
        _city(proc_prov),
        proc_prov.code,
    )

    # Distribution: one provincial DC per province, a regional DC and users per city.
    for pi, prov in enumerate(provinces):
        word = DISTRIBUTOR_WORDS[pi % len(DISTRIBUTOR_WORDS)]
        cities = prov.cities[: size.cities_per_province]
        dc_ent = b.enterprise(
            f"{prov.short}{word}医药集团有限公司", "distributor", _city(prov).code
        )
        dc = b.site(
            dc_ent,
            f"{prov.name}{word}医药物流中心",
            "warehouse",
            PROVINCIAL_DC,
            _city(prov),
            prov.code,
        )
        for ci, city in enumerate(cities):
            short = city.name.removesuffix("市")
            rword = DISTRIBUTOR_WORDS[(pi + ci + 3) % len(DISTRIBUTOR_WORDS)]
            r_ent = b.enterprise(f"{short}{rword}医药有限公司", "distributor", city.code)
            rdc = b.site(
                r_ent, f"{short}{rword}医药配送中心", "warehouse", REGIONAL_DC, city, prov.code
            )
            rdc.parent = dc.index
            for h in range(size.hospitals_per_city):
                kind = HOSPITAL_KINDS[h % len(HOSPITAL_KINDS)]
                suffix = "" if h < len(HOSPITAL_KINDS) else f"{h // len(HOSPITAL_KINDS) + 1}院区"
                name = f"{short}{kind}{suffix}"
                ent = b.enterprise(name, "hospital", city.code, "12")
                b.site(ent, name, "hospital", RETAIL, city, prov.code).parent = rdc.index
            pword = PHARMACY_WORDS[(pi * 3 + ci) % len(PHARMACY_WORDS)]
            chain = b.enterprise(f"{short}{pword}大药房连锁有限公司", "pharmacy", city.code)
            for k in range(size.pharmacies_per_city):
                site = b.site(
                    chain, f"{short}{pword}大药房第{k + 1}分店", "pharmacy", RETAIL, city, prov.code
                )
                site.parent = rdc.index

    # Products: 药品标识码 for pack and case levels, 批准文号, holder and factory.
    products: list[Product] = []
    used_codes: set[str] = set()

    def product_code() -> str:
        while True:
            code = "8" + f"{int(rng.integers(0, 1_000_000)):06d}"
            if code not in used_codes:
                used_codes.add(code)
                return code

    for i, spec in enumerate(chosen):
        ent, fac = maker_ent[spec.maker], maker_site[spec.maker]
        year = int(rng.integers(2003, 2022))
        approval = f"国药准字{spec.approval_class}{year}{int(rng.integers(0, 10_000)):04d}"
        gtin = None
        if spec.gs1:
            body = "0" + ent.company_prefix + f"{int(rng.integers(0, 100_000)):05d}"
            gtin = body + gs1_check_digit(body)
        code = gtin if gtin else product_code()
        products.append(
            Product(i, spec, code, product_code(), ent.index, fac.index, approval, gtin)
        )

    herb_gtins: dict[str, str] = {}
    for herb, piece, _kg in HERBS:
        for name, ent in ((herb, base_ent), (piece, proc_ent)):
            body = "0" + ent.company_prefix + f"{int(rng.integers(0, 100_000)):05d}"
            herb_gtins[name] = body + gs1_check_digit(body)

    base = np.zeros((len(b.sites), len(products)))
    for site in b.sites:
        if site.tier != RETAIL:
            continue
        scale = float(rng.lognormal(0.0, 0.35)) * size.demand_scale
        for p in products:
            if site.kind == "hospital":
                base[site.index, p.index] = p.spec.demand * p.spec.hospital_factor * scale
            elif p.spec.pharmacy:
                base[site.index, p.index] = p.spec.demand * scale
    return World(
        size,
        seed,
        b.enterprises,
        b.sites,
        products,
        herb_base.index,
        herb_proc.index,
        herb_gtins,
        base,
    )


def season_factor(season: str, day: date) -> float:
    """Seasonal demand multiplier for a profile on a calendar day (flu peaks in mid-January)."""
    doy = day.timetuple().tm_yday
    if season == "flu":
        dist = min(abs(doy - 15), 365 - abs(doy - 15))
        return 0.6 + 2.4 * math.exp(-((dist / 32.0) ** 2))
    if season == "winter":
        return 1.0 + 0.35 * math.cos(2 * math.pi * (doy - 15) / 365)
    if season == "summer":
        return 1.0 + 0.45 * math.cos(2 * math.pi * (doy - 200) / 365)
    return 1.0
