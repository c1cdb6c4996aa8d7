"""API keys, viewers, master data and the audit chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from yaolian.errors import AuthError, NotFoundError, ValidationError
from yaolian.store.access import authenticate, create_key, list_keys, revoke_key
from yaolian.store.audit import append_audit, verify_audit_chain
from yaolian.store.masterdata import (
    upsert_enterprise,
    upsert_product,
    upsert_site,
    uscc_check_char,
    validate_uscc,
)
from yaolian.store.schema import api_key, audit_log, enterprise, product

USCC_A = "91350100M000100Y43"  # a well-formed code (check character 3)


def _uscc(body: str) -> str:
    return body + uscc_check_char(body)


def test_uscc_validation() -> None:
    assert validate_uscc(USCC_A.lower()) == USCC_A
    with pytest.raises(ValidationError, match="check character"):
        validate_uscc(USCC_A[:-1] + "4")
    with pytest.raises(ValidationError, match="18 characters"):
        validate_uscc("9135")
    with pytest.raises(ValidationError, match="outside GB 32100"):
        validate_uscc("91350100M000100YI3")


def test_enterprise_key_round_trip(engine: Engine) -> None:
    ent = upsert_enterprise(engine, USCC_A, "福州某药业", "distributor", region="350100")
    key = create_key(engine, USCC_A, "enterprise", "warehouse scanner")
    viewer = authenticate(engine, key)
    assert (viewer.enterprise_id, viewer.role, viewer.sees_all) == (ent, "enterprise", False)
    # cached: same answer without another scrypt check
    assert authenticate(engine, key) == viewer
    with engine.connect() as conn:
        stored = conn.execute(select(api_key.c.secret_hash, api_key.c.prefix)).one()
    secret = key.split("_", 2)[2]
    assert secret not in stored.secret_hash and stored.secret_hash.startswith("scrypt$")
    assert [k.prefix for k in list_keys(engine)] == [stored.prefix]


def test_regulator_sees_all_and_bad_keys_are_refused(engine: Engine) -> None:
    key = create_key(engine, None, "regulator", "NMPA")
    assert authenticate(engine, key).sees_all
    with pytest.raises(AuthError, match="required"):
        authenticate(engine, None)
    with pytest.raises(AuthError, match="malformed"):
        authenticate(engine, "not-a-key")
    prefix = key.split("_")[1]
    with pytest.raises(AuthError, match="unknown or revoked"):
        authenticate(engine, f"yl_{prefix}_wrongsecret")
    with pytest.raises(AuthError, match="unknown or revoked"):
        authenticate(engine, "yl_0000000000_x")


def test_revoked_key_is_refused(engine: Engine) -> None:
    key = create_key(engine, None, "admin", "ops")
    authenticate(engine, key)
    revoke_key(engine, key.split("_")[1])
    with pytest.raises(AuthError):
        authenticate(engine, key)
    with pytest.raises(NotFoundError):
        revoke_key(engine, "nosuchprefix")


def test_key_creation_checks_role_and_enterprise(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="role"):
        create_key(engine, None, "superuser", None)
    with pytest.raises(ValidationError, match="USCC"):
        create_key(engine, None, "enterprise", None)
    with pytest.raises(NotFoundError, match="no enterprise"):
        create_key(engine, _uscc("91110000000000001"), "enterprise", None)


def test_master_data_upserts(engine: Engine) -> None:
    holder = upsert_enterprise(
        engine, USCC_A, "甲药业", "holder", party_id="urn:epc:id:pgln:6901234.00000"
    )
    again = upsert_enterprise(engine, USCC_A, "甲药业股份", "holder")
    assert again == holder
    site_id = upsert_site(
        engine, "urn:epc:id:sgln:6901234.00001.0", USCC_A, "一号仓", kind="warehouse"
    )
    assert upsert_site(engine, "urn:epc:id:sgln:6901234.00001.0", USCC_A, "一号仓库") == site_id
    pid = upsert_product(
        engine, "8385793", "阿莫西林胶囊", holder_uscc=USCC_A, strength="0.25g", units_per_pack=24
    )
    assert upsert_product(engine, "8385793", "阿莫西林胶囊", dosage_form="胶囊剂") == pid
    with engine.connect() as conn:
        assert conn.execute(select(enterprise.c.name)).scalar() == "甲药业股份"
        row = conn.execute(select(product)).one()
    # an update touches only the given fields
    assert (row.units_per_pack, row.strength, row.dosage_form, row.holder_id) == (
        24,
        "0.25g",
        "胶囊剂",
        holder,
    )
    with pytest.raises(ValidationError, match="unknown product field"):
        upsert_product(engine, "8385793", "x", colour="red")
    with pytest.raises(NotFoundError):
        upsert_site(engine, "urn:epc:id:sgln:6901234.00002.0", _uscc("91110000000000001"), "x")


def test_audit_chain_detects_tampering(engine: Engine) -> None:
    with engine.begin() as conn:
        for i in range(5):
            append_audit(conn, None, "capture", f"job/{i}", {"accepted": i, "名称": "测试"})
    with engine.connect() as conn:
        report = verify_audit_chain(conn)
    assert (report.ok, report.problems) == (5, [])

    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 3).values(target="job/999"))
    with engine.connect() as conn:
        report = verify_audit_chain(conn)
    assert report.ok == 4
    assert [p.place for p in report.problems] == ["audit_log[3]"]

    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == 3).values(target="job/2"))
        conn.execute(audit_log.delete().where(audit_log.c.id == 2))
    with engine.connect() as conn:
        report = verify_audit_chain(conn)
    assert [p.place for p in report.problems] == ["audit_log[3]"]
    assert "link broken" in report.problems[0].reason


def test_master_data_registered_after_the_events_shows_them(engine: Engine) -> None:
    """A pharmacy registers its site, a distributor its party identifier, after events naming
    them were captured: each then sees those events (and only those); registering again adds
    nothing twice."""
    from yaolian.epcis.model import parse_time
    from yaolian.store.access import Viewer
    from yaolian.store.ingest import capture_document
    from yaolian.store.query import query_events
    from yaolian.trace.builders import document, object_event

    site, other, party = (
        "urn:epc:id:sgln:6901234.10001.0",
        "urn:epc:id:sgln:6901234.10002.0",
        "urn:epc:id:pgln:6901234.00009",
    )
    when = parse_time("2026-03-01T10:00:00+08:00")
    pack = "urn:epc:id:sgtin:6901234.067890.1"
    result = capture_document(
        engine,
        document(
            [
                object_event([pack], when, "commissioning", "active", action="ADD", site=other),
                object_event(
                    [pack], when, "shipping", "in_transit", read_point=other, destination=party
                ),
                object_event([pack], when, "receiving", "active", site=site),
            ]
        ),
    )
    assert result.accepted == 3
    pharmacy = upsert_enterprise(engine, _uscc("91350100M00020000"), "某大药房", "pharmacy")
    distributor = upsert_enterprise(engine, _uscc("91350100M00030000"), "某医药", "distributor")

    def steps(enterprise_id: int) -> list[str]:
        with engine.connect() as conn:
            page = query_events(conn, {}, viewer=Viewer(enterprise_id, "enterprise"))
        return sorted(ev["bizStep"] for ev in page.events)

    assert steps(pharmacy) == [] and steps(distributor) == []
    for _ in range(2):
        upsert_site(engine, site, _uscc("91350100M00020000"), "门店")
        upsert_enterprise(
            engine, _uscc("91350100M00030000"), "某医药", "distributor", party_id=party
        )
    assert steps(pharmacy) == ["receiving"]
    assert steps(distributor) == ["shipping"]
