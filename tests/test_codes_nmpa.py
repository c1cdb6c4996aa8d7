"""NMPA trace codes: issuer rules as data, registry from files and from the store, precise
reasons, the 药品本位码 kept apart, and ``describe`` over every kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.codes.checkdigit import bwm_check_digit
from yaolian.codes.inspect import describe, validate_code
from yaolian.codes.nmpa import CodeRule, nmpa_code_uri, parse_nmpa_uri, parse_trace_code
from yaolian.codes.registry import CodeRegistry, Product, default_rules
from yaolian.errors import CodeError
from yaolian.store import schema

RULE = default_rules()[0]
REG = CodeRegistry.bundled()


@settings(deadline=None)
@given(
    st.sampled_from(sorted(REG.products)).filter(lambda p: len(p) == 7),
    st.text("0123456789", min_size=13, max_size=13),
)
def test_rule_a_round_trip(product_code: str, serial: str) -> None:
    code = product_code + serial
    trace = REG.validate(code).trace
    assert (trace.rule, trace.product_code, trace.serial) == ("a", product_code, serial)
    assert trace.product_code + trace.serial == code
    assert parse_nmpa_uri(nmpa_code_uri(code)) == ("code", code, None)


def test_field_example() -> None:
    # 药品标识码：8385793 序列号：0000879766660 as printed on packs
    trace = parse_trace_code("83857930000879766660", list(default_rules()))
    assert (trace.product_code, trace.serial) == ("8385793", "0000879766660")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("8600001000087976666", "wrong length 19, expected 20"),
        ("860000100008797666601", "wrong length 21, expected 20"),
        ("86000010000879766X60", "character 'X' not allowed"),
        ("96000010000879766660", "unknown issuer prefix '9'"),
        ("86000990000879766660", "unknown 药品标识码 8600099"),
        ("(01)06901234567892(21)X1(17)281399", "not a date: month 13"),
        ("(01)09999999999994(21)X1", "unknown GTIN 09999999999994"),
        ("(01)06901234567892(10)L1", "needs AI (21) serial number"),
        ("", "empty trace code"),
        ("8" * 101, "too long"),
    ],
)
def test_precise_reasons(code: str, reason: str) -> None:
    with pytest.raises(CodeError, match=re.escape(reason)):
        REG.validate(code)


def test_gs1_trace_code_rule_b() -> None:
    valid = REG.validate("(01)06901234567892(17)281031(10)L1(21)X1")
    assert valid.trace.rule == "b"
    assert (valid.trace.product_code, valid.trace.serial, valid.trace.lot) == (
        "06901234567892",
        "X1",
        "L1",
    )
    assert valid.trace.expiry is not None and valid.trace.expiry.isoformat() == "2028-10-31"
    assert valid.product.generic_name == "布洛芬缓释胶囊"


def test_new_issuer_is_data(tmp_path: Path) -> None:
    rules = tmp_path / "rules.csv"
    rules.write_text(
        "issuer,total_length,product_code_length,prefix_pattern,charset\n"
        "示例发码机构,24,9,9[0-9],0-9A-Z\n",
        "utf-8",
    )
    products = tmp_path / "products.csv"
    products.write_text("product_code,generic_name,packaging_level\n912345678,示例药,2\n", "utf-8")
    registry = CodeRegistry.from_files(rules, products)
    valid = registry.validate("912345678ABCDEF012345678")
    assert valid.trace.issuer == "示例发码机构"
    assert valid.product.packaging_level == 2
    with pytest.raises(CodeError, match="character 'a' not allowed"):
        registry.validate("912345678abcdef012345678")
    with pytest.raises(CodeError, match="unknown issuer prefix '8'"):
        registry.validate("86000010000879766660")


def test_bad_rule_data() -> None:
    with pytest.raises(CodeError, match="must be between 1 and the total length"):
        CodeRule("x", 10, 10, "8", "0-9")
    with pytest.raises(CodeError, match="bad pattern"):
        CodeRule("x", 20, 7, "8(", "0-9")


def test_registry_from_store(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.begin() as conn:
        holder = conn.execute(
            sa.insert(schema.enterprise).returning(schema.enterprise.c.id),
            {"uscc": "91110000000000000X", "name": "示例药业", "role": "holder"},
        ).scalar_one()
        conn.execute(
            sa.insert(schema.product),
            [
                {
                    "product_code": "7000001",
                    "generic_name": "示例注射液",
                    "dosage_form": "注射剂",
                    "packaging_level": 1,
                    "units_per_pack": 10,
                    "holder_id": holder,
                }
            ],
        )
        conn.execute(
            sa.insert(schema.code_rule),
            [
                {
                    "issuer": "示例7开头",
                    "total_length": 18,
                    "product_code_length": 7,
                    "prefix_pattern": "7",
                    "charset": "0-9",
                }
            ],
        )
    registry = CodeRegistry.from_db(sqlite_engine)
    valid = registry.validate("700000112345678901")
    assert valid.product.holder == "示例药业"
    assert valid.trace.issuer == "示例7开头"
    # the bundled default rule is not in this database: an 8… code has an unknown prefix
    with pytest.raises(CodeError, match="unknown issuer prefix"):
        registry.validate("86000010000879766660")
    assert REG.save_rules(sqlite_engine) == 1
    assert REG.save_rules(sqlite_engine) == 0  # idempotent
    assert len(CodeRegistry.from_db(sqlite_engine).rules) == 2


def test_registry_defaults_for_empty_store(sqlite_engine: sa.Engine) -> None:
    registry = CodeRegistry.for_store(sqlite_engine)
    assert registry.rules == list(default_rules())
    assert "8600001" in registry.products


def test_product_lookup() -> None:
    product = REG.product("8600001")
    assert isinstance(product, Product)
    assert (product.generic_name, product.dosage_form, product.packaging_level) == (
        "阿莫西林胶囊",
        "胶囊剂",
        1,
    )
    assert REG.product("6901234567892").product_code == "06901234567892"
    with pytest.raises(CodeError, match="unknown 药品标识码 1234567"):
        REG.product("1234567")


def test_describe_kinds() -> None:
    bwm = "8690000100001"
    bwm += bwm_check_digit(bwm)
    kinds = {
        "86000010000879766660": "nmpa",
        "(01)06901234567892(21)X1": "gs1",
        "urn:epc:id:sgtin:6901234.056789.X1": "epc",
        "https://id.gs1.org/01/06901234567892/21/X1": "digital-link",
        "urn:nmpa:code:86000010000879766660": "nmpa-uri",
        bwm: "bwm",
        "6901234567892": "gtin",
        "069012340000000016": "sscc",
        "urn:uuid:1": "uri",
    }
    for code, kind in kinds.items():
        assert describe(code, REG)["kind"] == kind, code
    info = describe("(01)06901234567892(17)281031(10)L1(21)X1", REG)
    assert info["key"] == "01/06901234567892/21/X1"
    assert info["epc_uri"] == "urn:epc:id:sgtin:6901234.056789.X1"
    assert [f["ai"] for f in info["fields"]] == ["01", "17", "10", "21"]
    assert info["fields"][1]["date"] == "2028-10-31"


def test_bwm_is_not_a_trace_code() -> None:
    with pytest.raises(CodeError, match="药品本位码 86900001000018: bad check digit"):
        validate_code("86900001000018", REG)
    with pytest.raises(CodeError, match="not a trace code"):
        validate_code("(01)06901234567892(10)L1", REG)
