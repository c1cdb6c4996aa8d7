"""The audit log (审计日志) end to end on both databases: every change over HTTP and every key
made or revoked is an entry, written in the change's own transaction; ``GET /audit`` and
``yaolian audit`` read them back (an enterprise only its own keys' entries); ``GET /audit/verify``
and ``yaolian audit verify`` find an altered or missing entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select, update

from cli_run import run, run_main
from test_api_epcis import (
    SITE_B,
    A,
    Api,
    B,
    assert_problem,
    chain_events,
    document,
    serving,
    sgtin,
)
from yaolian.api.app import create_app
from yaolian.store.access import list_keys, revoke_key
from yaolian.store.schema import audit_log, named_query


@pytest.fixture
def audited(db_url: str, engine: Engine) -> Iterator[Api]:
    """Two enterprises and a regulator (:func:`serving`); A and B each save a query, the
    regulator captures the chain and B records a sale: entries from every kind of key."""
    with serving(db_url, engine) as api:
        for key, name in ((api.key_a, "a-shipped"), (api.key_b, "b-received")):
            saved = api.client.post(
                "/queries",
                json={"name": name, "query": {"EQ_bizStep": "shipping"}},
                headers=api.headers(key),
            )
            assert saved.status_code == 201, saved.text
        api.capture(document(chain_events()))
        line = {"drug_trac_codg": [sgtin("S1")], "sel_retn_cnt": 1, "site": SITE_B}
        line |= {"sel_retn_time": "2025-03-08T10:00:00+08:00", "setl_id": "J001"}
        sold = api.client.post(
            "/dispense",
            content=orjson.dumps([line]),
            headers=api.headers(api.key_b, **{"Content-Type": "application/json"}),
        )
        assert sold.status_code == 200, sold.text
        yield api


def _audit(api: Api, as_key: str | None = None, **params: Any) -> dict[str, Any]:
    """GET /audit with ``as_key`` (default: the regulator's)."""
    response = api.client.get("/audit", params=params, headers=api.headers(as_key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _prefix(key: str) -> str:
    return key.split("_", 2)[1]


def test_every_change_is_an_entry_with_its_key(audited: Api) -> None:
    body = _audit(audited)
    entries = body["entries"]
    assert body["total"] == len(entries) == 7
    assert [e["action"] for e in entries] == [
        "dispense",
        "capture",
        "query.save",
        "query.save",
        "key.create",
        "key.create",
        "key.create",
    ]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    dispense, capture, saved_b, saved_a, *made = entries
    assert dispense["detail"] == {"lines": 1, "recorded": 1, "duplicates": 0}
    assert dispense["actor"] == {
        "prefix": _prefix(audited.key_b),
        "role": "enterprise",
        "label": None,
        "enterprise": B,
        "enterpriseName": "乙大药房",
    }
    assert capture["target"].startswith("/capture/") and capture["detail"]["events"] == 7
    assert capture["actor"]["role"] == "regulator" and capture["actor"]["label"] == "省局"
    assert (saved_a["target"], saved_a["actor"]["enterprise"]) == ("a-shipped", A)
    assert (saved_b["target"], saved_b["actor"]["enterprise"]) == ("b-received", B)
    # keys are made on the command line: a local operator, the prefix, never the secret
    assert [e["actor"] for e in made] == [None, None, None]
    made_keys = (audited.key_b, audited.key_a, audited.regulator)
    assert [e["target"] for e in made] == [_prefix(k) for k in made_keys]
    assert made[1]["detail"] == {"role": "enterprise", "enterprise": A, "label": None}
    text = orjson.dumps(body).decode()
    assert not any(key.split("_", 2)[2] in text for key in made_keys)  # no secret anywhere
    assert all(e["time"].endswith("Z") and len(e["hash"]) == 64 for e in entries)


def test_filters_and_pages(audited: Api) -> None:
    assert [e["target"] for e in _audit(audited, action="query")["entries"]] == [
        "b-received",
        "a-shipped",
    ]
    assert _audit(audited, action="query.save")["total"] == 2
    assert _audit(audited, action="quer")["total"] == 0  # a family is a dotted prefix
    assert _audit(audited, action="%")["total"] == 0  # LIKE characters are plain text
    assert _audit(audited, action="key")["total"] == 3
    by_key = _audit(audited, key=_prefix(audited.key_a))["entries"]
    assert [(e["action"], e["target"]) for e in by_key] == [("query.save", "a-shipped")]
    of_b = _audit(audited, enterprise=B)["entries"]
    assert [e["action"] for e in of_b] == ["dispense", "query.save"]
    page = _audit(audited, limit=2, offset=1)
    assert page["total"] == 7
    assert [e["action"] for e in page["entries"]] == ["capture", "query.save"]
    first = _audit(audited)["entries"]
    since = first[1]["time"]  # the capture's time: it and what came after
    assert {e["id"] for e in _audit(audited, since=since)["entries"]} >= {
        e["id"] for e in first[:2]
    }
    assert _audit(audited, until="2000-01-01T00:00:00+08:00")["total"] == 0
    bad = audited.client.get("/audit", params={"since": "yesterday"}, headers=audited.headers())
    assert_problem(bad, 400, "QueryParameterException", "yesterday")
    unknown = audited.client.get(
        "/audit", params={"enterprise": "91110000000000001X"}, headers=audited.headers()
    )
    assert_problem(unknown, 404, "NoSuchResourceException", "91110000000000001X")
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        assert (
            audited.client.get("/audit", params=params, headers=audited.headers()).status_code
            == 400
        )


def test_an_enterprise_reads_its_own_keys_entries(audited: Api) -> None:
    own = _audit(audited, audited.key_a)
    assert own["total"] == 1 and own["entries"][0]["target"] == "a-shipped"
    assert _audit(audited, audited.key_a, enterprise=A)["total"] == 1
    other = audited.client.get(
        "/audit", params={"enterprise": B}, headers=audited.headers(audited.key_a)
    )
    assert_problem(other, 403, "SecurityException", "its own enterprise")
    assert _audit(audited, audited.key_a, key=_prefix(audited.key_b))["total"] == 0
    assert audited.client.get("/audit").status_code == 401
    refused = audited.client.get("/audit/verify", headers=audited.headers(audited.key_a))
    assert_problem(refused, 403, "SecurityException")


def test_verify_finds_an_altered_or_missing_entry(audited: Api) -> None:
    def verify() -> dict[str, Any]:
        response = audited.client.get("/audit/verify", headers=audited.headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert verify() == {"intact": True, "entries": 7, "breaks": []}
    with audited.engine.begin() as conn:
        ids = conn.execute(select(audit_log.c.id).order_by(audit_log.c.id)).scalars().all()
        conn.execute(update(audit_log).where(audit_log.c.id == ids[3]).values(target="x"))
    altered = verify()
    assert altered["intact"] is False and altered["entries"] == 7
    assert altered["breaks"] == [
        {
            "place": f"audit_log[{ids[3]}]",
            "reason": "content does not match its hash (entry altered)",
        }
    ]
    with audited.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[3]).values(target="a-shipped"))
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[5]))
    missing = verify()
    assert missing["entries"] == 6
    assert [b["place"] for b in missing["breaks"]] == [f"audit_log[{ids[6]}]"]
    assert "link broken" in missing["breaks"][0]["reason"]


def test_a_change_and_its_entry_commit_together(
    audited: Api, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry cannot be written: the change it records is not made either."""

    def broken(*_args: Any) -> int:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr("yaolian.api.auth.append_audit", broken)
    with TestClient(create_app(db_url), raise_server_exceptions=False) as client:
        response = client.post(
            "/queries",
            json={"name": "lost", "query": {}},
            headers=audited.headers(audited.key_a),
        )
        assert response.status_code == 500
        recall = client.post(
            "/recalls",
            json={"class": 2, "reason": "溶出度不合格", "codes": [sgtin("S2")]},
            headers=audited.headers(),
        )
        assert recall.status_code == 500
    with audited.engine.connect() as conn:
        names = conn.execute(select(named_query.c.name)).scalars().all()
    assert "lost" not in names
    assert audited.client.get("/recalls", headers=audited.headers()).json()["recalls"] == []
    assert _audit(audited)["total"] == 7


def test_cli_lists_and_verifies(
    audited: Api,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    revoke_key(audited.engine, _prefix(audited.key_b))
    assert [k.revoked for k in list_keys(audited.engine)].count(True) == 1
    code, out = run("audit", "list", "--action", "key", "--json", "--db", db_url)
    assert code == 0, out
    assert [e["action"] for e in orjson.loads(out)["entries"]] == ["key.revoke"] + [
        "key.create"
    ] * 3
    code, out = run("audit", "list", "--enterprise", B, "--db", db_url)
    assert code == 0 and "dispense" in out and "乙大药房" in out
    assert run("audit", "verify", "--db", db_url) == (0, "audit chain intact: 8 entries\n")
    with audited.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.action == "dispense").values(detail={}))
    code, out = run("audit", "verify", "--db", db_url)
    assert code == 1 and "entry altered" in out
    code, out = run_main(
        monkeypatch, capsys, "audit", "list", "--since", "yesterday", "--db", db_url
    )
    assert code == 2 and "--since" in out and "yesterday" in out


def test_command_line_changes_are_entries_of_the_local_operator(sqlite_url: str) -> None:
    """Files captured and a recall made on the command line: entries with no key (``actor``
    null), the file and its counts in them; a file whose events were refused writes none."""
    data = Path(__file__).parent / "data"
    good, bad = data / "epcis" / "all_event_types.jsonld", data / "epcis" / "bad_events.jsonld"
    code, out = run("capture", str(good), str(bad), "--db", sqlite_url)
    assert code == 1, out  # the bad file's events are rejected: nothing of it stored
    pack = "urn:epc:id:sgtin:6901234.067890.1001"  # commissioned in the good file
    recall_args = ("recall", "create", "--class", "2", "--reason", "包装破损", "--code", pack)
    code, out = run(*recall_args, "--db", sqlite_url)
    assert code == 0, out
    code, out = run("audit", "list", "--json", "--db", sqlite_url)
    entries = orjson.loads(out)["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("recall.create", None),
        ("capture", None),
    ]
    recall, capture = entries
    assert recall["detail"]["codes"] == [pack] and recall["detail"]["class"] == 2
    assert capture["target"] == str(good) and capture["detail"]["rejected"] == 0
    assert capture["detail"]["accepted"] > 0 and capture["detail"]["behaviour"] == "rollback"
    assert run("audit", "verify", "--db", sqlite_url)[0] == 0
