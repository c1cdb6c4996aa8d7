"""CBV 2.0 vocabularies (核心业务词汇) and the mapping between their spellings.

A standard value is stored as its bare word (``shipping``); the same value written as an
EPCIS 1.x URN (``urn:epcglobal:cbv:bizstep:shipping``), a CBV 2.0 web URI
(``https://ref.gs1.org/cbv/BizStep-shipping``) or a GS1 web-vocabulary CURIE
(``gs1:MT-Temperature``) is read as that word. A value outside the vocabulary must be a URI
(a custom, company-defined value) and is kept as written.
"""

from __future__ import annotations

from dataclasses import dataclass


def _words(text: str) -> frozenset[str]:
    """A vocabulary written as space-separated words (reads best as text)."""
    return frozenset(text.split())


BIZ_STEPS = _words(
    "accepting arriving assembling collecting commissioning consigning "
    "creating_class_instance cycle_counting decommissioning departing destroying "
    "disassembling dispensing encoding entering_exiting holding inspecting installing killing "
    "loading other packing picking receiving removing repackaging repairing replacing "
    "reserving retail_selling sampling sensor_reporting shipping staging_outbound "
    "stock_taking stocking storing transporting unloading unpacking void_shipping"
)
DISPOSITIONS = _words(
    "active available completeness_inferred completeness_verified conformant container_closed "
    "container_open damaged destroyed dispensed disposed encoded expired in_progress "
    "in_transit inactive mismatch_class mismatch_instance mismatch_quantity needs_replacement "
    "no_pedigree_match non_conformant non_sellable_other partially_dispensed recalled "
    "reserved retail_sold returned sellable_accessible sellable_not_accessible stolen "
    "unavailable unknown"
)
BIZ_STEP_NAMES_ZH = {  # 业务步骤, as 药品追溯 users say them
    "accepting": "验收",
    "arriving": "到达",
    "assembling": "组装",
    "collecting": "回收",
    "commissioning": "赋码激活",
    "consigning": "寄售",
    "creating_class_instance": "生产（批次）",
    "cycle_counting": "循环盘点",
    "decommissioning": "注销",
    "departing": "离开",
    "destroying": "销毁",
    "disassembling": "拆解",
    "dispensing": "发药",
    "encoding": "编码",
    "entering_exiting": "进出",
    "holding": "暂扣",
    "inspecting": "检查",
    "installing": "安装",
    "killing": "标签失效",
    "loading": "装车",
    "other": "其他",
    "packing": "装箱",
    "picking": "拣货",
    "receiving": "收货",
    "removing": "移除",
    "repackaging": "重新包装",
    "repairing": "维修",
    "replacing": "更换",
    "reserving": "预留",
    "retail_selling": "零售",
    "sampling": "抽样",
    "sensor_reporting": "传感器上报",
    "shipping": "发货",
    "staging_outbound": "备货待发",
    "stock_taking": "盘点",
    "stocking": "上架",
    "storing": "储存",
    "transporting": "运输",
    "unloading": "卸货",
    "unpacking": "拆箱",
    "void_shipping": "撤销发货",
}
DISPOSITION_NAMES_ZH = {  # 处置状态
    "active": "有效",
    "available": "可用",
    "completeness_inferred": "完整（推断）",
    "completeness_verified": "完整（核实）",
    "conformant": "合格",
    "container_closed": "已封箱",
    "container_open": "已开箱",
    "damaged": "破损",
    "destroyed": "已销毁",
    "dispensed": "已发药",
    "disposed": "已处置",
    "encoded": "已编码",
    "expired": "已过期",
    "in_progress": "处理中",
    "in_transit": "在途",
    "inactive": "未激活",
    "mismatch_class": "品种不符",
    "mismatch_instance": "实例不符",
    "mismatch_quantity": "数量不符",
    "needs_replacement": "需更换",
    "no_pedigree_match": "来源不符",
    "non_conformant": "不合格",
    "non_sellable_other": "不可售",
    "partially_dispensed": "部分发药",
    "recalled": "已召回",
    "reserved": "已预留",
    "retail_sold": "已零售",
    "returned": "退货",
    "sellable_accessible": "可售",
    "sellable_not_accessible": "可售（不可取用）",
    "stolen": "被盗",
    "unavailable": "不可用",
    "unknown": "未知",
}
BIZ_TRANSACTION_TYPES = _words(
    "bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres"
)
SOURCE_DEST_TYPES = frozenset(("owning_party", "possessing_party", "location"))
ERROR_REASONS = frozenset(("did_not_occur", "incorrect_data"))
SENSOR_ALERT_TYPES = frozenset(("ALARM_CONDITION", "ERROR_CONDITION"))
COMPONENTS = _words(
    "x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle easting "
    "northing latitude longitude altitude geocoordinate"
)
MEASUREMENT_TYPES = _words(
    "AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Activity Altitude "
    "AmountOfSubstance AmountOfSubstancePerUnitVolume Angle AngularAcceleration "
    "AngularMomentum AngularVelocity Area Capacitance Conductance Conductivity Count Density "
    "Dimensionless DoseEquivalent DoseEquivalentRate DynamicViscosity ElectricCharge "
    "ElectricCurrent ElectricCurrentDensity ElectricFieldStrength Energy Exposure Force "
    "Frequency Illuminance Inductance Irradiance KinematicViscosity Length LinearMomentum "
    "Luminance LuminousFlux LuminousIntensity MagneticFlux MagneticFluxDensity "
    "MagneticVectorPotential Mass MassConcentration MassFlowRate MassPerAreaTime "
    "MemoryCapacity MolalityOfSolute MolarEnergy MolarMass MolarVolume Power Pressure "
    "RadiantFlux RadiantIntensity RelativeHumidity Resistance Resistivity SolidAngle "
    "SpecificVolume Speed SurfaceDensity SurfaceTension Temperature Time Torque Voltage "
    "Volume VolumeFlowRate VolumeFraction VolumetricFlux Wavenumber"
)

GS1_VOC = "https://gs1.org/voc/"
CBV_WEB = "https://ref.gs1.org/cbv/"


@dataclass(frozen=True)
class Vocabulary:
    """One CBV vocabulary: its words, the canonical URI prefix and every accepted spelling."""

    name: str
    words: frozenset[str]
    canonical: str  # prefix of the canonical web URI (used by the event hash and XML writer)
    prefixes: tuple[str, ...]  # every prefix that, followed by a word, means that word

    def word(self, value: str) -> str:
        """The bare word for any spelling of a standard value; other values unchanged."""
        if value in self.words:
            return value
        for prefix in self.prefixes:
            if value.startswith(prefix) and value[len(prefix) :] in self.words:
                return value[len(prefix) :]
        return value

    def uri(self, value: str) -> str:
        """The canonical web URI of a bare word; URIs (custom values) unchanged."""
        return self.canonical + value if value in self.words else value

    def is_valid(self, value: object) -> bool:
        """A known word, or a URI for a custom value outside GS1's own namespaces."""
        return self.problem(value) is None

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not acceptable here, or None if it is."""
        if isinstance(value, str) and value in self.words:
            return None
        if not isinstance(value, str) or not _looks_like_uri(value):
            return f"{value!r} is not a CBV 2.0 {self.name} nor a URI for a custom value"
        for prefix in self.prefixes:
            if value.startswith(prefix):
                return (
                    f"{value!r} is in GS1's namespace but {value[len(prefix) :]!r} is not a "
                    f"CBV 2.0 {self.name}"
                )
        return None


def _web(cbv_name: str, urn: str) -> tuple[str, ...]:
    return (
        f"{CBV_WEB}{cbv_name}-",
        f"https://gs1.org/voc/{cbv_name}-",
        f"cbv:{cbv_name}-",
        f"gs1:{cbv_name}-",
        f"urn:epcglobal:cbv:{urn}:",
    )


BIZ_STEP = Vocabulary("bizStep", BIZ_STEPS, f"{CBV_WEB}BizStep-", _web("BizStep", "bizstep"))
DISPOSITION = Vocabulary("disposition", DISPOSITIONS, f"{CBV_WEB}Disp-", _web("Disp", "disp"))
BIZ_TRANSACTION_TYPE = Vocabulary(
    "bizTransaction type", BIZ_TRANSACTION_TYPES, f"{CBV_WEB}BTT-", _web("BTT", "btt")
)
SOURCE_DEST_TYPE = Vocabulary(
    "source/destination type", SOURCE_DEST_TYPES, f"{CBV_WEB}SDT-", _web("SDT", "sdt")
)
ERROR_REASON = Vocabulary("error reason", ERROR_REASONS, f"{CBV_WEB}ER-", _web("ER", "er"))
MEASUREMENT_TYPE = Vocabulary(
    "sensor measurement type",
    MEASUREMENT_TYPES,
    GS1_VOC,  # the EPCIS 2.0 JSON-LD context expands "Temperature" to gs1:Temperature
    (f"{GS1_VOC}MT-", "gs1:MT-", "gs1:", GS1_VOC),
)
SENSOR_ALERT_TYPE = Vocabulary(
    "sensor alert type",
    SENSOR_ALERT_TYPES,
    GS1_VOC,
    (f"{GS1_VOC}SensorAlertType-", "gs1:SensorAlertType-", "gs1:", GS1_VOC),
)
COMPONENT = Vocabulary(
    "sensor component",
    COMPONENTS,
    f"{CBV_WEB}Comp-",
    (f"{CBV_WEB}Comp-", "cbv:Comp-", f"{GS1_VOC}Component-", "gs1:Component-"),
)


def _looks_like_uri(value: str) -> bool:
    """True for an absolute URI (``scheme:rest``), the form custom CBV values must take."""
    scheme, sep, rest = value.partition(":")
    return bool(
        sep
        and rest
        and scheme[:1].isalpha()
        and all(c.isalnum() or c in "+-." for c in scheme)
        and " " not in value
    )


def normalise_event(event: dict[str, object]) -> None:
    """Rewrite every CBV value of one event (in place) to its bare word where it has one."""
    if (v := event.get("bizStep")) and isinstance(v, str):
        event["bizStep"] = BIZ_STEP.word(v)
    if (v := event.get("disposition")) and isinstance(v, str):
        event["disposition"] = DISPOSITION.word(v)
    pd = event.get("persistentDisposition")
    if isinstance(pd, dict):
        for key in ("set", "unset"):
            if isinstance(pd.get(key), list):
                pd[key] = [DISPOSITION.word(x) if isinstance(x, str) else x for x in pd[key]]
    _normalise_typed(event.get("bizTransactionList"), BIZ_TRANSACTION_TYPE)
    _normalise_typed(event.get("sourceList"), SOURCE_DEST_TYPE)
    _normalise_typed(event.get("destinationList"), SOURCE_DEST_TYPE)
    err = event.get("errorDeclaration")
    if isinstance(err, dict) and isinstance(err.get("reason"), str):
        err["reason"] = ERROR_REASON.word(err["reason"])
    sensors = event.get("sensorElementList")
    if isinstance(sensors, list):
        for element in sensors:
            reports = element.get("sensorReport") if isinstance(element, dict) else None
            if isinstance(reports, list):
                for report in reports:
                    if isinstance(report, dict):
                        _normalise_report(report)


def _normalise_typed(items: object, vocab: Vocabulary) -> None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                item["type"] = vocab.word(item["type"])


def _normalise_report(report: dict[str, object]) -> None:
    for key, vocab in (
        ("type", MEASUREMENT_TYPE),
        ("exception", SENSOR_ALERT_TYPE),
        ("component", COMPONENT),
    ):
        value = report.get(key)
        if isinstance(value, str):
            report[key] = vocab.word(value)
