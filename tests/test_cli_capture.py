"""``yaolian capture | events | keys | db | rebuild`` through typer's CliRunner on real stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree
from sqlalchemy import Engine

from cli_run import run, run_main
from yaolian.cli.common import console
from yaolian.store.access import authenticate
from yaolian.store.masterdata import enterprise_id_for, upsert_enterprise, upsert_site

DATA = Path(__file__).parent / "data" / "nmpa"
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
USCC = "91310000MA00000025"


def epcis_file(tmp_path: Path, events: list[dict[str, Any]], name: str = "doc.json") -> Path:
    doc = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-03-07T00:00:00Z",
        "epcisBody": {"eventList": events},
    }
    path = tmp_path / name
    path.write_bytes(orjson.dumps(doc))
    return path


def object_event(serial: str, step: str = "inspecting", **extra: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2025-04-01T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "epcList": [f"urn:epc:id:sgtin:6901234.056789.{serial}"],
        "bizStep": step,
        **extra,
    }


def test_capture_files_then_query(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = epcis_file(tmp_path, [object_event("X1"), object_event("X2", "shipping")])
    code, out = run("capture", str(DATA / "chain.csv"), str(doc), "--db", db_url)
    assert code == 0, out
    assert "chain.csv" in out and "15" in out and "doc.json" in out
    code, out = run("capture", str(DATA / "chain.csv"), "--db", db_url, "--json")
    assert code == 0
    [row] = orjson.loads(out)
    assert (row["accepted"], row["duplicates"], row["rejected"]) == (0, 15, 0)

    code, out = run("events", "--db", db_url, "--json", "--limit", "100")
    events = orjson.loads(out)["epcisBody"]["eventList"]
    assert code == 0 and len(events) == 17
    code, out = run("events", "--db", db_url, "--type", "AggregationEvent", "--json")
    assert [e["bizStep"] for e in orjson.loads(out)["epcisBody"]["eventList"]] == [
        "packing",
        "unpacking",
    ]
    code, out = run(
        "events", "--db", db_url, "--any-epc", "86000020000000000001", "--format", "jsonld"
    )
    assert len(orjson.loads(out)["epcisBody"]["eventList"]) == 4  # pack, ship, receive, unpack
    code, out = run(
        "events",
        "--db",
        db_url,
        "--biz-step",
        "shipping",
        "--since",
        "2025-03-04",
        "--until",
        "2025-03-05",
        "--json",
    )
    assert len(orjson.loads(out)["epcisBody"]["eventList"]) == 2
    code, out = run(
        "events", "--db", db_url, "--epc", "urn:epc:id:sgtin:6901234.056789.X2", "--format", "xml"
    )
    root = etree.fromstring(out.encode())
    steps = [el.text for el in root.iter("bizStep")]
    assert steps == ["https://ref.gs1.org/cbv/BizStep-shipping"]
    code, out = run(
        "events", "--db", db_url, "--param", "EQ_disposition=partially_dispensed", "--json"
    )
    assert len(orjson.loads(out)["epcisBody"]["eventList"]) == 1
    monkeypatch.setattr(console, "width", 250)  # a wide terminal: no cell cut short
    code, out = run("events", "--db", db_url, "--limit", "3")
    assert code == 0 and "3 event(s)" in out and "commissioning" in out
    assert "6901234.00001.0" in out  # a site nobody registered shows as its URI …
    upsert_enterprise(engine, "91110000MA0000001L", "甲制药", "holder")
    upsert_site(engine, "urn:epc:id:sgln:6901234.00001.0", "91110000MA0000001L", "甲制药一车间")
    code, out = run("events", "--db", db_url, "--limit", "3")
    assert "甲制药一车间" in out and "6901234.00001.0" not in out  # … a registered one by name


def test_rollback_and_proceed_exit_1_with_reasons(sqlite_url: str, tmp_path: Path) -> None:
    bad = object_event("X3")
    bad["eventTime"] = "2025-04-01T10:00:00"  # no offset
    path = epcis_file(tmp_path, [object_event("X1"), bad])
    code, out = run("capture", str(path), "--db", sqlite_url, "--json")
    assert code == 1
    [row] = orjson.loads(out)
    assert row["errors"][0]["place"] == "/epcisBody/eventList/1/eventTime"
    code, out = run("events", "--db", sqlite_url, "--json")
    assert orjson.loads(out)["epcisBody"]["eventList"] == []
    code, out = run("capture", str(path), "--db", sqlite_url, "--proceed", "--json")
    assert code == 1
    [row] = orjson.loads(out)
    assert (row["accepted"], row["rejected"]) == (1, 1)


def test_unreadable_file_exit_2_names_rows(sqlite_url: str, tmp_path: Path) -> None:
    code, out = run("capture", str(DATA / "bad.csv"), "--db", sqlite_url, "--json")
    assert code == 2
    [row] = orjson.loads(out)
    assert row["readable"] is False
    assert row["errors"][0]["place"].endswith("bad.csv:3 column 业务类型")
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "EPCISDocument",', "utf-8")
    code, out = run("capture", str(broken), "--db", sqlite_url)
    assert code == 2 and "broken.json" in out


def test_expected_errors_exit_2_without_traceback(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_main(monkeypatch, capsys, "events", "--db", sqlite_url, "--since", "soon")
    assert code == 2
    assert "--since" in out and "'soon' is not a time" in out and "Traceback" not in out
    code, out = run_main(
        monkeypatch, capsys, "events", "--db", sqlite_url, "--param", "EQ_colour=red"
    )
    assert code == 2 and "EQ_colour" in out
    code, out = run_main(
        monkeypatch, capsys, "keys", "create", "--role", "enterprise", "--db", sqlite_url
    )
    assert code == 2 and "USCC" in out
    code, out = run_main(
        monkeypatch,
        capsys,
        "capture",
        str(DATA / "chain.csv"),
        "--enterprise",
        USCC,
        "--db",
        sqlite_url,
    )
    assert code == 2 and "--enterprise" in out
    code, out = run_main(
        monkeypatch, capsys, "events", "--db", "postgresql://nobody@127.0.0.1:1/none"
    )
    assert code == 2 and "--db: cannot open the database" in out and "Traceback" not in out


def test_keys_create_list_revoke(sqlite_url: str, sqlite_engine: Any) -> None:
    code, out = run(
        "keys",
        "create",
        "--enterprise",
        USCC,
        "--name",
        "甲医药有限公司",
        "--role",
        "enterprise",
        "--label",
        "ERP",
        "--db",
        sqlite_url,
        "--json",
    )
    assert code == 0
    key = orjson.loads(out)["key"]
    viewer = authenticate(sqlite_engine, key)
    assert viewer.role == "enterprise" and viewer.enterprise_id is not None
    code, out = run("keys", "create", "--role", "regulator", "--db", sqlite_url)
    assert code == 0 and out.startswith("yl_")
    code, out = run("keys", "list", "--db", sqlite_url, "--json")
    listed = orjson.loads(out)
    assert [k["role"] for k in listed] == ["regulator", "enterprise"]
    assert listed[1]["label"] == "ERP" and key not in out
    code, out = run("keys", "revoke", listed[1]["prefix"], "--db", sqlite_url)
    assert code == 0
    code, out = run("keys", "list", "--db", sqlite_url, "--json")
    assert orjson.loads(out)[1]["revoked"] is True
    # the enterprise now exists: capture on its behalf works
    code, out = run("capture", str(DATA / "chain.csv"), "--enterprise", USCC, "--db", sqlite_url)
    assert code == 0
    code, out = run(
        "audit", "list", "--action", "masterdata.enterprise", "--db", sqlite_url, "--json"
    )
    (entry,) = orjson.loads(out)["entries"]
    assert entry["target"] == USCC and entry["detail"]["name"] == "甲医药有限公司"


def test_keys_create_writes_its_enterprise_only_with_the_key(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_url: str,
    sqlite_engine: Any,
) -> None:
    other = "91440101MA5CXXXX08"
    code, out = run_main(
        monkeypatch, capsys, "keys", "create", "--enterprise", other, "--name", "乙",
        "--role", "bogus", "--db", sqlite_url,
    )  # fmt: skip
    assert code == 2 and "role must be one of" in out
    with sqlite_engine.connect() as conn:
        assert enterprise_id_for(conn, other) is None  # no key, so no enterprise either


def test_events_table_shows_class_quantities(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event with only class-level quantities (a herb lot's kilograms) shows its class and
    amount (and unit, when given) in the table's codes column, not an empty cell."""
    lot = "urn:epc:class:lgtin:6901234.013594.H1"
    harvest = object_event("unused", "commissioning", action="ADD")
    del harvest["epcList"]
    harvest["quantityList"] = [{"epcClass": lot, "quantity": 7.9, "uom": "KGM"}]
    counted = {**harvest, "quantityList": [{"epcClass": lot, "quantity": 3}], "bizStep": "sampling"}
    code, out = run("capture", str(epcis_file(tmp_path, [harvest, counted])), "--db", sqlite_url)
    assert code == 0, out
    monkeypatch.setattr(console, "width", 250)  # a wide terminal: no cell cut short
    code, out = run("events", "--db", sqlite_url)
    assert code == 0 and f"{lot} 7.9 KGM" in out and f"{lot} 3 " in out, out


def test_db_init_info_and_rebuild(tmp_path: Path) -> None:
    db = str(tmp_path / "fresh.db")
    code, out = run("db", "init", "--db", db)
    assert code == 0 and "database ready" in out
    run("capture", str(DATA / "chain.csv"), "--db", db)
    code, out = run("db", "info", "--db", db, "--json")
    info = orjson.loads(out)
    assert info["backend"] == "sqlite" and info["revision"] == info["head"]
    assert info["events"] == 15 and info["codes"] >= 4
    code, out = run("rebuild", "--db", db)
    assert code == 0 and "15 event(s)" in out


@pytest.mark.parametrize(
    "command",
    [
        ("events",),
        ("trace", "86000010000000000123"),
        ("verify", "86000010000000000123"),
        ("alerts",),
        ("rebuild",),
        ("db", "info"),
        ("keys", "list"),
        ("supply", "stock"),
    ],
)
def test_commands_that_read_refuse_a_missing_database(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: tuple[str, ...],
) -> None:
    """A mistyped ``--db`` path is an error naming the path, and no empty store appears there;
    ``db init`` (like a first capture) creates it, after which the command answers."""
    db = tmp_path / "typo" / "store.db"
    code, out = run_main(monkeypatch, capsys, *command, "--db", str(db))
    assert code == 2 and "no database at" in out and str(db) in out.replace("\n", "")
    assert not db.exists() and not db.parent.exists()
    assert run("db", "init", "--db", str(db))[0] == 0
    code, out = run_main(monkeypatch, capsys, *command, "--db", str(db))
    assert "no database at" not in out


def test_a_key_for_a_registered_enterprise_renames_it_only(
    sqlite_url: str, sqlite_engine: Any
) -> None:
    """`keys create --name` on an enterprise registered with its PGLN used to reset it to a
    distributor named by urn:yaolian:uscc:… (its events at other parties' sites vanished from
    its view)."""
    from yaolian.store.masterfile import export_master_data

    upsert_enterprise(
        sqlite_engine, USCC, "甲制药", "holder", region="310000", party_id="urn:epc:id:pgln:1.0"
    )
    code, _ = run(
        "keys",
        "create",
        "--enterprise",
        USCC,
        "--name",
        "甲制药股份",
        "--role",
        "enterprise",
        "--db",
        sqlite_url,
    )
    assert code == 0
    assert export_master_data(sqlite_engine, ["enterprises"])["enterprises"] == [
        {
            "uscc": USCC,
            "name": "甲制药股份",
            "role": "holder",
            "region": "310000",
            "party_id": "urn:epc:id:pgln:1.0",
        }
    ]
