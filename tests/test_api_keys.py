"""API keys over HTTP on both databases: an admin manages every key, an enterprise the keys of
its own enterprise (one per system that reports for it), a regulator reads the list; each key
made or revoked is an audit entry of the key that did it, and a revoked key is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from test_api_epcis import A, Api, B, assert_problem, serving
from yaolian.store.access import create_key


@pytest.fixture
def keyed(db_url: str, engine: Engine) -> Iterator[tuple[Api, str]]:
    """The two enterprises' and the regulator's keys (:func:`serving`) and an admin's."""
    admin = create_key(engine, None, "admin", "运维")
    with serving(db_url, engine) as api:
        yield api, admin


def _prefix(key: str) -> str:
    return key.split("_", 2)[1]


def _keys(api: Api, key: str) -> list[dict[str, Any]]:
    response = api.client.get("/keys", headers=api.headers(key))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["keys"]
    return found


def test_an_enterprise_manages_its_own_keys(keyed: tuple[Api, str]) -> None:
    api, _admin = keyed
    assert [(k["prefix"], k["enterprise"]) for k in _keys(api, api.key_a)] == [
        (_prefix(api.key_a), A)
    ]
    made = api.client.post("/keys", json={"label": "WMS"}, headers=api.headers(api.key_a))
    assert made.status_code == 201, made.text
    wms = made.json()
    assert (wms["role"], wms["enterprise"], wms["prefix"]) == ("enterprise", A, _prefix(wms["key"]))
    me = api.client.get("/me", headers=api.headers(wms["key"])).json()
    assert me["role"] == "enterprise" and me["enterprise"]["uscc"] == A
    listed = _keys(api, api.key_a)
    assert [k["label"] for k in listed] == ["WMS", None]
    assert all(
        set(k) == {"prefix", "role", "enterprise", "enterprise_name", "label", "created", "revoked"}
        for k in listed
    )
    assert {k["enterprise_name"] for k in listed} == {"甲医药有限公司"}
    assert wms["key"].split("_", 2)[2] not in str(listed)  # never the secret again
    for body, place in (
        ({"role": "regulator"}, "/role"),
        ({"enterprise": B}, "/enterprise"),
    ):
        refused = api.client.post("/keys", json=body, headers=api.headers(api.key_a))
        assert assert_problem(refused, 403, "SecurityException")["detail"].startswith(place)
    other = api.client.delete(f"/keys/{_prefix(api.key_b)}", headers=api.headers(api.key_a))
    assert_problem(other, 404, "NoSuchResourceException", _prefix(api.key_b))
    assert api.client.get("/me", headers=api.headers(api.key_b)).status_code == 200
    gone = api.client.delete(f"/keys/{wms['prefix']}", headers=api.headers(api.key_a))
    assert gone.status_code == 204
    refused = api.client.get("/me", headers=api.headers(wms["key"]))
    assert_problem(refused, 401, "SecurityException", "revoked")
    assert [k["revoked"] for k in _keys(api, api.key_a)] == [True, False]
    entries = api.client.get("/audit", params={"action": "key"}, headers=api.headers()).json()
    revoke, create = entries["entries"][:2]
    assert (revoke["action"], revoke["target"]) == ("key.revoke", wms["prefix"])
    assert (create["action"], create["target"]) == ("key.create", wms["prefix"])
    assert revoke["actor"]["prefix"] == create["actor"]["prefix"] == _prefix(api.key_a)
    assert create["detail"] == {"role": "enterprise", "enterprise": A, "label": "WMS"}


def test_an_admin_manages_every_key_a_regulator_reads_them(keyed: tuple[Api, str]) -> None:
    api, admin = keyed
    every = _keys(api, api.regulator)
    assert len(every) == 4 and _keys(api, admin) == every
    assert {k["role"] for k in every} == {"admin", "regulator", "enterprise"}
    refused = api.client.post("/keys", json={"enterprise": A}, headers=api.headers())
    assert_problem(refused, 403, "SecurityException", "admin")
    made = api.client.post(
        "/keys", json={"role": "regulator", "label": "市局"}, headers=api.headers(admin)
    )
    assert made.status_code == 201 and made.json()["enterprise"] is None
    inspector = made.json()["key"]
    assert api.client.get("/keys", headers=api.headers(inspector)).status_code == 200
    no_uscc = api.client.post("/keys", json={"role": "enterprise"}, headers=api.headers(admin))
    assert_problem(no_uscc, 400, "ValidationException", "USCC")
    unknown = api.client.post(
        "/keys", json={"enterprise": "91110000000000001X"}, headers=api.headers(admin)
    )
    assert_problem(unknown, 404, "NoSuchResourceException", "91110000000000001X")
    extra = api.client.post("/keys", json={"secret": "x"}, headers=api.headers(admin))
    assert extra.status_code == 400
    gone = api.client.delete(f"/keys/{_prefix(api.key_b)}", headers=api.headers(admin))
    assert gone.status_code == 204
    assert api.client.get("/me", headers=api.headers(api.key_b)).status_code == 401
    assert api.client.delete("/keys/not-a-prefix", headers=api.headers(admin)).status_code == 400
    missing = api.client.delete("/keys/0123456789", headers=api.headers(admin))
    assert_problem(missing, 404, "NoSuchResourceException")
    (entry,) = api.client.get(
        "/audit", params={"action": "key.revoke"}, headers=api.headers()
    ).json()["entries"]
    assert entry["actor"]["role"] == "admin" and entry["actor"]["label"] == "运维"
