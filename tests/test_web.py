"""The web pages over HTTP (no browser): served with their policy, self-contained, and the
GS1 Digital Link resolver; ``by_rule`` of ``GET /alerts``. Browser tests: test_web_browser."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import DemoStore
from yaolian.api.app import ApiSettings, create_app
from yaolian.codes.barcode import render
from yaolian.verify.anomalies import RULES
from yaolian.web.pages import PAGES

REFERENCE = re.compile(r'(?:src|href)="([^"]*)"')


@pytest.fixture(scope="module")
def client(demo_store: DemoStore) -> TestClient:
    return TestClient(create_app(demo_store.url, ApiSettings(webhooks=False)))


def _page_url(name: str) -> str:
    return "/web" if name == "index" else f"/web/{name}"


@pytest.mark.parametrize("name", PAGES)
def test_pages_are_served_with_a_same_origin_policy(client: TestClient, name: str) -> None:
    page = client.get(_page_url(name))
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    references = REFERENCE.findall(page.text)
    assert references
    for ref in references:
        # every script, style and link stays on this server (no CDN, no other host)
        assert not urlsplit(ref).scheme or ref == "data:,", ref
        if ref.startswith(("data:", "docs", "openapi")):
            continue
        target = f"/{ref}" if name == "index" else f"/web/{ref}"
        assert client.get(target).status_code == 200, target


def test_a_browser_at_the_root_is_sent_to_the_pages(client: TestClient) -> None:
    browser = client.get("/", headers={"Accept": "text/html,*/*"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"] == "/web"
    assert "events" in client.get("/", headers={"Accept": "application/json"}).json()


def test_vendored_libraries_are_served(client: TestClient) -> None:
    for lib, marker in (("cytoscape.min.js", "cytoscape"), ("echarts.common.min.js", "echarts")):
        asset = client.get(f"/web/static/vendor/{lib}")
        assert asset.status_code == 200 and marker in asset.text[:20_000]
        assert asset.headers["content-type"].startswith("text/javascript")


def test_unknown_page_is_a_problem(client: TestClient) -> None:
    missing = client.get("/web/admin")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "no page 'admin'" in missing.json()["detail"]
    assert client.get("/web/static/nothing.js").status_code == 404


def test_digital_link_resolver(client: TestClient, demo_store: DemoStore) -> None:
    """A pack's QR code (GS1 Digital Link on this server): browsers go to the consumer page
    for it, other clients get the same verdict as ``GET /verify``."""
    element = demo_store.incident_code("diversion", prefix="01")  # (01) GTIN-14 (21) serial
    gtin, serial = element[2:16], element[18:]
    path = f"/01/{gtin}/21/{serial}"
    browser = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    target = urlsplit(browser.headers["location"])
    assert target.path == "/web/scan"
    assert parse_qs(target.query)["code"] == [f"http://testserver{path}"]
    verdict = client.get(path, headers={"Accept": "application/json"}).json()
    direct = client.get(f"/verify/{element}").json()
    assert verdict["status"] == direct["status"] != "unknown"
    assert verdict["product"]["gtin"] == gtin
    assert client.get("/01/0000/21/x").json()["status"] == "unknown"


def test_verify_a_photo_of_the_pack(client: TestClient, demo_store: DemoStore) -> None:
    """``POST /verify/image``: every barcode in the photo read and verified; bad images are
    400/413 problems naming why, never a 500."""
    genuine = demo_store.truth["samples"]["genuine"]["raw"]
    fake = demo_store.incident_code("counterfeit", prefix="8")
    photo = Image.new("L", (280, 200), 255)  # two packs, one above the other
    for y, code in ((20, genuine), (120, fake)):
        photo.paste(Image.open(io.BytesIO(render(code, scale=6))), (30, y))
    body = io.BytesIO()
    photo.save(body, format="JPEG", quality=95)
    found = client.post(
        "/verify/image", content=body.getvalue(), headers={"Content-Type": "image/jpeg"}
    ).json()["codes"]
    assert {c["text"]: c["verdict"]["status"] for c in found} == {
        genuine: "genuine",
        fake: "unknown",
    }
    assert all(c["format"] == "DataMatrix" and not c["gs1"] for c in found)
    assert "detail" not in found[0]["verdict"]  # the public view
    blank = io.BytesIO()
    Image.new("L", (100, 100), 255).save(blank, format="PNG")
    assert client.post("/verify/image", content=blank.getvalue()).json() == {"codes": []}
    for content, status, words in (
        (b"", 400, "no image"),
        (b"%PDF-1.7", 400, "not an image format"),
        (b"\x89PNG" + b"0" * (13 * 1024 * 1024), 413, "exceeds the limit"),
    ):
        refused = client.post("/verify/image", content=content)
        assert refused.status_code == status
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert words in refused.json()["detail"]


def test_alerts_count_every_rule(client: TestClient, demo_store: DemoStore) -> None:
    headers = {"X-API-Key": demo_store.regulator_key}
    every = client.get("/alerts", headers=headers, params={"limit": 1}).json()
    assert set(every["by_rule"]) == set(RULES)
    assert sum(every["by_rule"].values()) == every["total"] > 0
    rule = max(every["by_rule"], key=every["by_rule"].get)
    one = client.get("/alerts", headers=headers, params={"rule": rule}).json()
    assert one["total"] == every["by_rule"][rule] == len(one["alerts"])
    assert one["by_rule"] == every["by_rule"]  # counts ignore the rule filter
    # every alert names its code as a URI the API reads back (a GS1 key alone is not one)
    listed = client.get("/alerts", headers=headers, params={"limit": 1000}).json()["alerts"]
    assert any(a["code"][:2].isdigit() for a in listed)  # GS1 packs among them
    for alert in listed:
        traced = client.get(f"/trace/{quote(alert['uri'], safe='')}", headers=headers)
        assert traced.status_code == 200, alert
        assert traced.json()["root"] == f"code:{alert['code_id']}"
