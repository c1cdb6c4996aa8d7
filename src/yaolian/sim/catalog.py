"""Static facts the simulator draws its world from: provinces and cities (行政区划代码, lat/lon),
enterprise name parts, and a product catalogue of real generic drugs with invented holders.

Enterprises are fictional (no real company is named, since the simulator injects counterfeits
and recalls); product facts (通用名, 剂型, 制剂规格, 包装规格, storage ranges) follow real labels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class City:
    """A prefecture-level city: 行政区划代码 (6 digits), name, centre coordinates."""

    code: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Province:
    """A province with its short name (简称) and the cities the simulator uses."""

    code: str
    name: str
    short: str
    cities: tuple[City, ...]


PROVINCES: tuple[Province, ...] = (
    Province(
        "440000",
        "广东省",
        "粤",
        (
            City("440100", "广州市", 23.13, 113.26),
            City("440300", "深圳市", 22.54, 114.06),
            City("440600", "佛山市", 23.02, 113.12),
        ),
    ),
    Province(
        "330000",
        "浙江省",
        "浙",
        (
            City("330100", "杭州市", 30.27, 120.16),
            City("330200", "宁波市", 29.87, 121.54),
            City("330300", "温州市", 28.00, 120.70),
        ),
    ),
    Province(
        "510000",
        "四川省",
        "川",
        (
            City("510100", "成都市", 30.57, 104.07),
            City("510700", "绵阳市", 31.47, 104.68),
            City("511300", "南充市", 30.84, 106.11),
        ),
    ),
    Province(
        "230000",
        "黑龙江省",
        "黑",
        (
            City("230100", "哈尔滨市", 45.80, 126.53),
            City("230200", "齐齐哈尔市", 47.35, 123.92),
            City("230600", "大庆市", 46.59, 125.10),
        ),
    ),
    Province(
        "420000",
        "湖北省",
        "鄂",
        (
            City("420100", "武汉市", 30.59, 114.31),
            City("420500", "宜昌市", 30.69, 111.29),
            City("420600", "襄阳市", 32.01, 112.12),
        ),
    ),
    Province(
        "360000",
        "江西省",
        "赣",
        (
            City("360100", "南昌市", 28.68, 115.86),
            City("360700", "赣州市", 25.83, 114.93),
            City("360400", "九江市", 29.71, 116.00),
        ),
    ),
    Province(
        "370000",
        "山东省",
        "鲁",
        (
            City("370100", "济南市", 36.65, 117.12),
            City("371300", "临沂市", 35.10, 118.36),
            City("370200", "青岛市", 36.07, 120.38),
        ),
    ),
    Province(
        "530000",
        "云南省",
        "滇",
        (
            City("530100", "昆明市", 25.04, 102.71),
            City("530300", "曲靖市", 25.49, 103.80),
            City("532500", "红河哈尼族彝族自治州", 23.36, 103.37),
        ),
    ),
    Province("110000", "北京市", "京", (City("110100", "北京市", 39.90, 116.40),)),
    Province("310000", "上海市", "沪", (City("310100", "上海市", 31.23, 121.47),)),
    Province(
        "620000",
        "甘肃省",
        "甘",
        (
            City("620100", "兰州市", 36.06, 103.83),
            City("620500", "天水市", 34.58, 105.72),
        ),
    ),
    Province(
        "410000",
        "河南省",
        "豫",
        (
            City("410100", "郑州市", 34.75, 113.62),
            City("410300", "洛阳市", 34.62, 112.45),
            City("410700", "新乡市", 35.30, 113.93),
        ),
    ),
)

# Name parts for fictional enterprises.
DISTRIBUTOR_WORDS = ("众康", "华信", "康达", "普济", "瑞和", "安泰", "同德", "长宁", "嘉禾", "泰和")
PHARMACY_WORDS = ("益民", "仁心", "百姓", "康泰", "济世", "惠民", "福寿", "健安", "善德", "和顺")
HOSPITAL_KINDS = (
    "第一人民医院",
    "中医院",
    "第二人民医院",
    "妇幼保健院",
    "中心医院",
    "第三人民医院",
    "人民医院",
    "骨科医院",
    "儿童医院",
    "第四人民医院",
)


@dataclass(frozen=True)
class Maker:
    """A fictional holder/manufacturer (上市许可持有人/生产企业) and where its factory is."""

    key: str
    name: str
    province: str  # province code of the factory


MAKERS: tuple[Maker, ...] = (
    Maker("kangning", "华东康宁制药股份有限公司", "330000"),
    Maker("nanyue", "南粤生物制药有限公司", "440000"),
    Maker("shuzhong", "蜀中药业集团股份有限公司", "510000"),
    Maker("chutian", "楚天制药有限公司", "420000"),
    Maker("jinghua", "京华生物疫苗有限公司", "110000"),
    Maker("kangyuan", "沪康元生物技术有限公司", "310000"),
)


@dataclass(frozen=True)
class ProductSpec:
    """One drug product as registered: label facts, logistics and the demand it meets.

    ``demand`` is mean whole-pack sale lines per day at a typical pharmacy (hospitals see
    ``hospital_factor`` times that); ``season`` names a seasonal profile; ``split_share`` is the
    share of hospital lines sold by the unit (拆零). ``gs1`` products carry GS1 codes (rule b).
    """

    key: str
    generic_name: str
    trade_name: str
    dosage_form: str
    strength: str
    pack_spec: str
    units_per_pack: int
    approval_class: str  # H chemical, Z TCM, S biological
    maker: str
    demand: float
    season: str = "flat"  # flat, flu, summer, winter
    trend: float = 0.0  # relative change per year
    hospital_factor: float = 2.0
    pharmacy: bool = True  # sold in retail pharmacies (vaccines are not)
    split_share: float = 0.0
    case_size: int = 40
    shelf_life_days: int = 730
    temp_min: float | None = None
    temp_max: float | None = None
    gs1: bool = False
    tcm: bool = False


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec(
        "oseltamivir",
        "磷酸奥司他韦胶囊",
        "可威康",
        "胶囊剂",
        "75mg（按C16H28N2O4计）",
        "10粒/盒",
        10,
        "H",
        "nanyue",
        0.9,
        season="flu",
        split_share=0.3,
    ),
    ProductSpec(
        "amoxicillin",
        "阿莫西林胶囊",
        "阿莫仙宁",
        "胶囊剂",
        "0.25g",
        "24粒/盒",
        24,
        "H",
        "kangning",
        1.4,
        season="winter",
        split_share=0.4,
    ),
    ProductSpec(
        "metformin",
        "盐酸二甲双胍片",
        "格康",
        "片剂",
        "0.5g",
        "48片/盒",
        48,
        "H",
        "kangning",
        1.6,
        trend=0.05,
        split_share=0.2,
    ),
    ProductSpec(
        "amlodipine",
        "苯磺酸氨氯地平片",
        "络安",
        "片剂",
        "5mg",
        "28片/盒",
        28,
        "H",
        "chutian",
        1.5,
        trend=0.04,
        split_share=0.2,
    ),
    ProductSpec(
        "insulin",
        "门冬胰岛素注射液",
        "康元速秀",
        "注射剂",
        "3ml:300单位（笔芯）",
        "1支/盒",
        1,
        "S",
        "kangyuan",
        0.5,
        case_size=20,
        shelf_life_days=900,
        temp_min=2.0,
        temp_max=8.0,
        gs1=True,
    ),
    ProductSpec(
        "flu_vaccine",
        "四价流感病毒裂解疫苗",
        "京华流宁",
        "注射剂",
        "0.5ml/支",
        "1支/盒",
        1,
        "S",
        "jinghua",
        0.8,
        season="flu",
        pharmacy=False,
        hospital_factor=2.5,
        case_size=20,
        shelf_life_days=365,
        temp_min=2.0,
        temp_max=8.0,
    ),
    ProductSpec(
        "lianhua",
        "连花清瘟胶囊",
        "蜀连清",
        "胶囊剂",
        "每粒装0.35g",
        "24粒/盒",
        24,
        "Z",
        "shuzhong",
        1.0,
        season="flu",
        split_share=0.2,
        tcm=True,
    ),
    ProductSpec(
        "ibuprofen",
        "布洛芬缓释胶囊",
        "楚芬",
        "胶囊剂",
        "0.3g",
        "20粒/盒",
        20,
        "H",
        "chutian",
        1.2,
        season="winter",
        split_share=0.2,
    ),
    ProductSpec(
        "atorvastatin",
        "阿托伐他汀钙片",
        "康立脂",
        "片剂",
        "20mg",
        "7片/盒",
        7,
        "H",
        "kangning",
        1.3,
        trend=0.06,
    ),
    ProductSpec(
        "smectite",
        "蒙脱石散",
        "粤肠宁",
        "散剂",
        "3g",
        "10袋/盒",
        10,
        "H",
        "nanyue",
        0.8,
        season="summer",
        split_share=0.3,
    ),
    ProductSpec(
        "ceftriaxone",
        "注射用头孢曲松钠",
        "楚曲松",
        "注射剂",
        "1.0g",
        "1瓶/盒",
        1,
        "H",
        "chutian",
        0.6,
        pharmacy=False,
        hospital_factor=3.0,
        case_size=50,
    ),
    ProductSpec(
        "nifedipine",
        "硝苯地平控释片",
        "南粤平",
        "片剂",
        "30mg",
        "7片/盒",
        7,
        "H",
        "nanyue",
        1.1,
        trend=0.02,
    ),
    ProductSpec(
        "cefuroxime",
        "头孢呋辛酯片",
        "康呋欣",
        "片剂",
        "0.25g",
        "12片/盒",
        12,
        "H",
        "kangning",
        0.9,
        season="winter",
        split_share=0.3,
    ),
    ProductSpec(
        "salbutamol",
        "硫酸沙丁胺醇吸入气雾剂",
        "蜀畅",
        "气雾剂",
        "每瓶200揿，每揿100μg",
        "1瓶/盒",
        1,
        "H",
        "shuzhong",
        0.5,
        season="winter",
    ),
)

# The TCM chain behind the 中成药 product: herb base → harvest lot → primary processing →
# 饮片 batch → 中成药 batch (two herbs feed the formula, kilograms per 1,000 packs).
HERB_BASE = ("沂蒙金银花规范化种植基地", "370000", "371300")
HERB_PROCESSOR = ("赣江中药饮片有限公司", "360000", "360100")
HERBS: tuple[tuple[str, str, float], ...] = (
    ("金银花", "金银花饮片", 2.5),  # (herb, 饮片 name, kg per 1,000 packs)
    ("连翘", "连翘饮片", 2.0),
)
