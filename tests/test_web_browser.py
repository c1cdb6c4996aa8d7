"""The web pages in a real browser (Playwright driving Debian's Chromium) against a live
``uvicorn`` server on loopback, on the tiny demo world.

Every page is checked for what a user sees, and for what it must not do: load anything from
another origin, log a script error, or run markup that came in as data. No ``/usr/bin/chromium``
→ skipped, unless ``YAOLIAN_REQUIRE_BROWSER=1`` (CI), then failed.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import uvicorn
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

from conftest import DemoStore
from yaolian.api.app import ApiSettings, create_app
from yaolian.codes.barcode import render_to_file
from yaolian.codes.nmpa import nmpa_code_uri
from yaolian.epcis.model import CHINA_TIME
from yaolian.store import schema
from yaolian.store.access import create_key
from yaolian.store.engine import open_engine
from yaolian.store.ingest import capture_document
from yaolian.store.masterdata import (
    upsert_enterprise,
    upsert_product,
    upsert_site,
    uscc_check_char,
)
from yaolian.trace.builders import document, object_event

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.timeout(300)


@contextmanager
def _serving(url: str) -> Iterator[str]:
    """``yaolian serve``'s app on the store ``url``, on a free loopback port, in a thread of
    this process; yields its base URL."""
    app = create_app(url, ApiSettings(webhooks=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    live = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=live.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not live.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    live.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def server(demo_store: DemoStore) -> Iterator[str]:
    """The pages and API on the tiny demo world."""
    with _serving(demo_store.url) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("YAOLIAN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@dataclass
class Watch:
    """What a page did that it should not: script errors, requests to other origins, failed
    requests (other than the statuses a test expects in ``allowed``)."""

    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)

    def console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)  # failed loads are judged by their response

    def response(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.allowed:
            self.failed.append(f"{response.status} {response.url}")

    def request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)


@pytest.fixture
def watch(server: str) -> Watch:
    return Watch(server)


@contextmanager
def _tab(browser: Any, base: str, watch: Watch) -> Iterator[Any]:
    """A browser tab on ``base`` watched by ``watch``, which must have seen nothing wrong."""
    context = browser.new_context(base_url=base, locale="zh-CN")
    tab = context.new_page()
    tab.on("console", watch.console)
    tab.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    tab.on("request", watch.request)
    tab.on("response", watch.response)
    tab.set_default_timeout(20_000)
    yield tab
    context.close()
    assert not watch.errors, watch.errors
    assert not watch.foreign, watch.foreign
    assert not watch.failed, watch.failed


@pytest.fixture
def page(browser: Any, server: str, watch: Watch) -> Iterator[Any]:
    with _tab(browser, server, watch) as tab:
        yield tab


def _api(server: str, path: str, key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key else {}
    return httpx.get(f"{server}{path}", headers=headers, timeout=30).json()


def test_consumer_page_shows_a_genuine_pack(page: Any, server: str, demo_store: DemoStore) -> None:
    code = demo_store.truth["samples"]["genuine"]["raw"]
    expected = _api(server, f"/verify/{code}")
    page.goto("/web/scan")
    page.fill("#code", code)
    page.click("#submit")
    banner = page.locator(".verdict").first
    assert banner.get_attribute("data-status") == expected["status"]
    product = page.locator(".product").first.inner_text()
    assert product.count(expected["product"]["generic_name"]) == 1
    assert expected["batch"]["lot"] in page.locator(".batch").inner_text()
    assert page.locator(".circulation li").count() == len(expected["circulation"]) > 0
    assert expected["circulation"][-1]["to"] in page.locator(".circulation").inner_text()
    assert f"code={code}" in page.url  # the answer can be bookmarked or shared
    assert page.locator("nav a").all_inner_texts() == [
        "查询",
        "验收",
        "销售",
        "追溯图谱",
        "监管看板",
        "供需对接",
        "赋码",
        "密钥",
    ]
    assert page.locator("nav a[aria-current=page]").inner_text() == "查询"
    page.locator("nav a", has_text="验收").click()
    page.locator("#codes").wait_for()
    assert urlsplit(page.url).path == "/web/check"
    # a key another page of this tab keeps (here one revoked or mistyped) is not the public's:
    # the consumer page answers as before
    page.evaluate("sessionStorage.setItem('yaolian-api-key', 'yl_0000000000_revoked')")
    page.goto(f"/web/scan?code={code}")
    assert page.locator(".verdict").first.get_attribute("data-status") == expected["status"]


@pytest.mark.parametrize(
    ("incident", "status", "words"),
    [("counterfeit", "unknown", "查无此码"), ("resale", "dispensed", "已销售")],
)
def test_consumer_page_warns(
    page: Any, server: str, demo_store: DemoStore, incident: str, status: str, words: str
) -> None:
    code = demo_store.incident_code(incident, prefix="8")
    assert _api(server, f"/verify/{code}")["status"] == status
    page.goto(f"/web/scan?code={code}")
    assert page.locator(".verdict").first.get_attribute("data-status") == status
    assert words in page.locator("#result").inner_text()


def test_consumer_page_tells_an_unreported_issued_code_from_a_fake(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    from yaolian.codes.issue import IssueRequest, issue_codes
    from yaolian.codes.registry import CodeRegistry

    product = demo_store.truth["samples"]["genuine"]["raw"][:7]  # its 药品标识码
    engine = open_engine(demo_store.url)
    request = IssueRequest("browser-unreported", product, 1)
    code = issue_codes(engine, CodeRegistry.for_store(engine), request).codes[0].code
    engine.dispose()
    page.goto(f"/web/scan?code={code}")
    banner = page.locator(".verdict").first
    assert banner.get_attribute("data-status") == "unknown"
    assert "已赋码 · 企业未上报生产" in banner.inner_text()
    assert "疑似假冒" not in page.locator("#result").inner_text()


def test_consumer_page_shows_a_pallet_as_a_logistics_unit(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    """A pallet's SSCC scanned at the dock: a known logistics unit with its packs, not 查无此码."""
    engine = open_engine(demo_store.url)
    with engine.connect() as conn:
        key = conn.execute(
            select(schema.code.c.key)
            .join(schema.code_state, schema.code_state.c.code_id == schema.code.c.id)
            .where(schema.code.c.key.like("00/%"), schema.code_state.c.has_children.is_(True))
            .order_by(schema.code.c.id)
        ).scalar()
    engine.dispose()
    sscc = f"(00){key.removeprefix('00/')}"
    answer = _api(server, f"/verify/{quote(sscc)}")
    assert answer["status"] != "unknown" and "logistics unit" in answer["reason"]
    page.goto(f"/web/scan?code={quote(sscc)}")
    assert page.locator(".verdict").first.get_attribute("data-status") == answer["status"]
    shown = page.locator(".card.contents").inner_text()
    assert (f"内含 {answer['contents']} 盒" if answer["contents"] else "已拆空") in shown
    assert "查无此码" not in page.locator("#result").inner_text()


def _codes_page(page: Any, key: str) -> set[str | None]:
    """Open the 赋码 page with ``key``; the product codes its product field offers."""
    page.goto("/web/codes")
    page.fill("#key", key)
    page.click("#load")
    page.locator("body[data-loaded=true]").wait_for()
    offered = page.locator("#products option")
    return {offered.nth(i).get_attribute("value") for i in range(offered.count())}


def test_codes_page_issues_a_batch_and_downloads_its_print_lines(
    page: Any, demo_store: DemoStore
) -> None:
    product = demo_store.truth["samples"]["genuine"]["raw"][:7]  # its 药品标识码
    engine = open_engine(demo_store.url)
    admin = create_key(engine, None, "admin", "browser 赋码")
    engine.dispose()
    assert product in _codes_page(page, admin)  # the products to choose from, by name
    request_id = page.input_value("#issue-form [name=requestId]")
    assert request_id.startswith("web-")
    page.fill("#issue-form [name=product]", product)
    page.fill("#issue-form [name=quantity]", "3")
    page.fill("#issue-form [name=lot]", "B2612")
    page.fill("#issue-form [name=expiry]", "2028-11-30")
    page.click("#issue-form button[type=submit]")
    box = page.locator("#issued-box")
    box.wait_for()
    assert "已赋码 3 个" in box.inner_text() and "B2612" in box.inner_text()
    page.locator("#requests-table tbody tr", has_text=request_id).wait_for()
    with page.expect_download() as download:
        box.locator("[data-download]").click()
    assert download.value.suggested_filename == f"{request_id}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert len(rows) == 3 and {r["lot"] for r in rows} == {"B2612"}
    page.fill("#issue-form [name=requestId]", request_id)  # the same request again: same codes
    page.click("#issue-form button[type=submit]")
    page.locator("#issued-box", has_text="未重复赋码").wait_for()
    assert rows[0]["code"] in page.inner_text("#issued-box")


def test_codes_page_offers_a_holder_its_own_products(page: Any, demo_store: DemoStore) -> None:
    """An enterprise key chooses among the products it holds or makes; a regulator's key is
    told who issues codes instead of being shown an empty page."""
    product = demo_store.truth["samples"]["genuine"]["raw"][:7]
    engine = open_engine(demo_store.url)
    with engine.connect() as conn:
        holder = conn.execute(
            select(schema.enterprise.c.uscc)
            .join(schema.product, schema.product.c.holder_id == schema.enterprise.c.id)
            .where(schema.product.c.product_code == product)
        ).scalar_one()
        theirs = set(
            conn.execute(
                select(schema.product.c.product_code)
                .join(schema.enterprise, schema.enterprise.c.id == schema.product.c.holder_id)
                .where(schema.enterprise.c.uscc == holder)
            ).scalars()
        )
        every = len(conn.execute(select(schema.product.c.product_code)).all())
    key = create_key(engine, holder, "enterprise", "browser 赋码 holder")
    engine.dispose()
    values = _codes_page(page, key)
    assert product in values and theirs <= values and len(values) < every  # not every product
    page.fill("#key", demo_store.regulator_key)
    page.click("#load")
    page.locator("#whoami", has_text="赋码由上市许可持有人或生产企业的密钥办理").wait_for()
    assert page.locator("#issue-card").is_hidden()


def test_consumer_page_keeps_markup_as_text(page: Any) -> None:
    hostile = '<img src=x onerror="window.pwned=1">'
    page.goto(f"/web/scan?code={quote(hostile)}")
    page.locator(".verdict").first.wait_for()
    assert hostile in page.locator("#result").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.locator("#result img").count() == 0


def test_consumer_page_reads_a_photo_of_the_pack(
    page: Any, server: str, demo_store: DemoStore, tmp_path: Path
) -> None:
    element = demo_store.incident_code("diversion", prefix="01")  # a GS1 DataMatrix on the pack
    bracketed = f"(01){element[2:16]}(21){element[18:]}"  # as printed under the symbol
    photo = render_to_file(bracketed, tmp_path / "pack.png")
    page.goto("/web/scan")
    page.set_input_files("#photo", str(photo))
    expected = _api(server, f"/verify/{element}")
    assert page.locator(".verdict").first.get_attribute("data-status") == expected["status"]
    assert "DataMatrix (GS1)" in page.locator("#result").inner_text()
    assert page.input_value("#code") == element  # what the scanner would have typed
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    page.set_input_files("#photo", str(blank))
    page.locator("#no-barcode").wait_for()


def _emptied_unit(demo_store: DemoStore) -> str:
    """The element string of a logistics unit (SSCC) that once held packs and holds none now."""
    engine = open_engine(demo_store.url)
    code, state = schema.code, schema.code_state
    child = state.alias("child")
    inside = select(child.c.code_id).where(child.c.parent_id == code.c.id).exists()
    with engine.connect() as conn:
        key = conn.execute(
            select(code.c.key)
            .join(state, state.c.code_id == code.c.id)
            .where(code.c.key.like("00/%"), state.c.has_children.is_(True), ~inside)
            .order_by(code.c.id)
        ).scalar()
    engine.dispose()
    assert key is not None
    return f"(00){key.removeprefix('00/')}"


def test_receiving_check_of_a_scanned_list(page: Any, server: str, demo_store: DemoStore) -> None:
    """扫码验收: a scanner's list verified at once — problems first, a code scanned twice
    flagged, the counts per status; a party's key adds who holds each pack now."""
    genuine = demo_store.truth["samples"]["genuine"]["raw"]
    fake = demo_store.incident_code("counterfeit", prefix="8")
    resold = demo_store.incident_code("resale", prefix="8")
    gs1 = demo_store.incident_code("diversion", prefix="01")
    wide = genuine.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})  # 全角 digits
    emptied = _emptied_unit(demo_store)  # a case code whose packs were unpacked upstream
    # the genuine pack scanned again, typed again in full width; the last one a mistyped code
    scans = [genuine, fake, gs1, resold, genuine, wide, emptied, "12345"]
    expected = [_api(server, f"/verify/{code}")["status"] for code in scans]
    page.goto("/web/check")
    page.fill("#codes", "\n".join(scans) + "\n\n")  # a scanner ends each code with Enter
    page.fill("#key", demo_store.regulator_key)
    page.click("#submit")
    rows = page.locator("#check-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(scans)
    shown = {
        int(rows.nth(i).locator("td").first.inner_text()): rows.nth(i)
        .locator("[data-status]")
        .get_attribute("data-status")
        for i in range(len(scans))
    }
    assert shown == {i + 1: status for i, status in enumerate(expected)}
    order = [int(rows.nth(i).locator("td").first.inner_text()) for i in range(len(scans))]
    fine = [i + 1 for i, status in enumerate(expected) if status == "genuine" and i < 4]
    assert order[-len(fine) :] == fine  # the sellable ones last, problems first
    again = rows.filter(has_text="重复")
    assert again.count() == 2  # the same pack, however it was typed
    assert all("重复（第 1 行）" in text for text in again.all_inner_texts())
    summary = page.locator("#summary").inner_text()
    assert f"共 {len(scans)} 个码" in summary and "重复扫描 2" in summary
    assert "查无此码 · 疑似假冒 1" in summary and "码有误 · 请核对 1" in summary
    unit = rows.filter(has_text=emptied).first.inner_text()  # nothing in it to receive
    assert "物流单元已拆空" in unit and "逐盒扫码" in unit and "正品" not in unit
    assert "物流单元已拆空 1" in summary
    typo = rows.filter(has_text="12345").first.inner_text()
    assert "码有误" in typo and "不是有效的追溯码" in typo  # said in Chinese, not a fake
    detail = _api(server, f"/verify/{genuine}", demo_store.regulator_key)["detail"]
    holder = detail["custodian"]["name"]  # a party's (here the regulator's) key shows who
    mine = rows.filter(has_text=genuine)
    assert mine.count() == 2 and all(holder in t for t in mine.all_inner_texts())
    fits = "(t => t.scrollWidth <= t.parentElement.clientWidth)(document.querySelector('table'))"
    assert page.evaluate(fits)  # long codes and reasons wrap: no column cut off at the edge
    page.set_viewport_size({"width": 390, "height": 844})  # a phone, a handheld scanner
    assert page.evaluate(fits) and page.evaluate("document.body.scrollWidth <= innerWidth")
    label = "getComputedStyle(document.querySelector('#check-table td + td'), '::before').content"
    assert page.evaluate(label) == '"追溯码："'  # each row a card of labelled lines


def _copy_of(demo_store: DemoStore, copy: Path) -> str:
    """The URL of a copy of the demo store at ``copy``, for a test that changes it."""
    src, dst = sqlite3.connect(demo_store.url.removeprefix("sqlite:///")), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{copy}"


@pytest.fixture(scope="module")
def arrival_server(
    demo_store: DemoStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, list[str]]]:
    """A copy of the demo store (this test records a receipt): the server on it, the key of an
    enterprise with a shipment on the road to it, and two packs of that shipment."""
    url = _copy_of(demo_store, tmp_path_factory.mktemp("arrival") / "arrival.db")
    engine = open_engine(url)
    cs, c, e, k = schema.code_state.c, schema.custody.c, schema.enterprise.c, schema.code.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.uscc, k.key)
            .select_from(schema.code_state)
            .join(schema.code, k.id == cs.code_id)
            .join(
                schema.custody,
                (c.code_id == cs.code_id) & (c.ship_event_id == cs.open_ship_event_id),
            )
            .join(schema.enterprise, e.party_id == c.to_party)
            .where(cs.status == "in_transit", cs.has_children.is_(False), k.key.like("n:%"))
            .order_by(c.ship_event_id, k.key)
        ).all()
    uscc = rows[0][0]
    packs = [key.removeprefix("n:") for who, key in rows if who == uscc][:2]
    # and one more, just made, with two months of shelf life left (近效期), at its factory
    with engine.connect() as conn:
        factory = conn.execute(
            select(schema.site.c.location_id).where(schema.site.c.kind == "factory")
        ).scalar()
    near = f"{packs[0][:7]}9999999999999"
    made = object_event(
        [nmpa_code_uri(near)],
        datetime.now(CHINA_TIME) - timedelta(hours=1),
        "commissioning",
        "active",
        action="ADD",
        site=factory,
        read_point=factory,
        lot="NEAR1",
        expiry=(date.today() + timedelta(days=60)).isoformat(),
    )
    assert capture_document(engine, document([made])).accepted == 1
    key = create_key(engine, uscc, "enterprise", "receiving web test")
    engine.dispose()
    with _serving(url) as base:
        yield base, key, [*packs, near]


def test_receiving_check_records_the_receipt(
    browser: Any, arrival_server: tuple[str, str, list[str]], demo_store: DemoStore
) -> None:
    """收货入库: with the receiver's key, packs on the road to it read as expected arrivals, a
    problem is set aside, a pack near its expiry is flagged, and 确认收货 records the rest at
    its site — they then read as in its stock, and there is nothing left to receive."""
    base, key, [*packs, near] = arrival_server
    resold = demo_store.incident_code("resale", prefix="8")
    with _tab(browser, base, Watch(base)) as tab:
        tab.goto("/web/check")
        tab.fill("#codes", "\n".join([*packs, resold, packs[0], near]))
        tab.fill("#key", key)
        tab.click("#submit")
        rows = tab.locator("#check-table tbody tr")
        rows.first.wait_for()
        for pack in packs:
            row = rows.filter(has_text=pack).first.inner_text()
            assert "在途 · 发往本单位" in row and "发货，待本单位收货" in row
        # the delivery they came on, checked against the scan: 应到, 本次扫码 2, 短少 the rest
        (delivery,) = [
            a
            for a in httpx.get(f"{base}/arrivals", headers={"X-API-Key": key}).json()["arrivals"]
            if a["shipment"]
            == _api(base, f"/verify/{packs[0]}", key)["detail"]["shipment"]["event_id"]
        ]
        first = tab.locator("#arrivals-table tbody tr").first.locator("td")
        assert first.nth(4).inner_text() == str(delivery["packs"])
        assert first.nth(5).inner_text() == "2"
        missing = delivery["packs"] - 2
        assert first.nth(6).inner_text() == (f"短少 {missing}" if missing else "齐全")
        # the new pack: genuine at its maker, which never reported shipping it; 近效期 flagged
        made = rows.filter(has_text=near).first.locator("td")
        assert made.nth(2).inner_text() == "正品 · 可销售"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d 近效期 · 剩 (59|60) 天", made.nth(6).inner_text())
        button = tab.locator("#act-go")
        assert button.inner_text() == "确认收货（3 个码）"  # each pack once, the problem left out
        site = tab.locator("#act-site").input_value()
        button.click()
        note = tab.locator("#act-note")
        note.filter(has_text="已收货入库").wait_for()
        assert "已收货入库 3 个码" in note.inner_text()
        assert "其中 1 个供货方未上报发货" in note.inner_text()
        for pack in [*packs, near]:
            assert "已在本单位库存" in rows.filter(has_text=pack).first.inner_text()
        assert tab.locator("#act").is_hidden()
    for pack in [*packs, near]:
        verdict = _api(base, f"/verify/{pack}", key)
        assert verdict["status"] == "genuine" and verdict["detail"]["site"] == site


@pytest.fixture(scope="module")
def shelf_server(
    demo_store: DemoStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, list[str], str]]:
    """A copy of the demo store (this test records a sale): the server on it, the key of a
    pharmacy chain, two packs in stock at one of its shops, and a pack in stock elsewhere."""
    url = _copy_of(demo_store, tmp_path_factory.mktemp("shelf") / "shelf.db")
    engine = open_engine(url)
    cs, k, e, st = schema.code_state.c, schema.code.c, schema.enterprise.c, schema.site.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.uscc, e.role, k.key)
            .select_from(schema.code_state)
            .join(schema.code, k.id == cs.code_id)
            .join(schema.site, st.location_id == cs.site)
            .join(schema.enterprise, e.id == st.enterprise_id)
            .where(cs.status == "active", cs.has_children.is_(False), k.key.like("n:%"))
            .where(cs.custodian == e.party_id)
            .order_by(k.key)
        ).all()
    uscc = next(who for who, role, _ in rows if role == "pharmacy")
    mine = [key.removeprefix("n:") for who, _, key in rows if who == uscc][:2]
    theirs = next(key.removeprefix("n:") for who, _, key in rows if who != uscc)
    key = create_key(engine, uscc, "enterprise", "counter web test")
    engine.dispose()
    with _serving(url) as base:
        yield base, key, mine, theirs


def test_sale_at_the_counter(
    browser: Any, shelf_server: tuple[str, str, list[str], str], demo_store: DemoStore
) -> None:
    """扫码销售: a pharmacy's key sells packs of its own stock; a pack it never received and a
    resold one are stopped at the counter; 确认销售 records one retail sale of the rest, which
    then read as sold."""
    base, key, mine, theirs = shelf_server
    resold = demo_store.incident_code("resale", prefix="8")
    with _tab(browser, base, Watch(base)) as tab:
        tab.goto("/web/sell")
        tab.fill("#codes", "\n".join([*mine, theirs, resold, mine[1]]))
        tab.fill("#key", key)
        tab.click("#submit")
        rows = tab.locator("#check-table tbody tr")
        rows.first.wait_for()
        assert "本单位无收货记录" in rows.filter(has_text=theirs).first.inner_text()
        assert "已售出" in rows.filter(has_text=resold).first.inner_text()
        assert "2 个不可销售" in tab.locator("#summary").inner_text()
        button = tab.locator("#act-go")
        assert button.inner_text() == "确认销售（2 盒）"  # each pack once, the problems left out
        tab.fill("#settlement", "YB-TEST-0001")
        button.click()
        note = tab.locator("#act-note")
        note.filter(has_text="已销售出库").wait_for()
        assert "已销售出库 2 盒（零售）" in note.inner_text()
        for pack in mine:
            assert "已售出" in rows.filter(has_text=pack).first.inner_text()
    for pack in mine:
        verdict = _api(base, f"/verify/{pack}")
        assert verdict["status"] == "dispensed" and verdict["sale_count"] == 1


def test_digital_link_opens_the_consumer_page(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    element = demo_store.incident_code("diversion", prefix="01")
    page.goto(f"/01/{element[2:16]}/21/{element[18:]}")
    assert urlsplit(page.url).path == "/web/scan"
    expected = _api(server, f"/verify/{element}")
    assert page.locator(".verdict").first.get_attribute("data-status") == expected["status"]
    assert expected["product"]["generic_name"] in page.locator(".product").first.inner_text()


EDGES = "yaolianGraph.edges(\"[kind != 'at']\").length"  # the answer's edges, drawn
DRAWN = (  # nodes, the answer's edges, the root, nodes drawn without any edge
    f"[yaolianGraph.nodes().length, {EDGES},"
    " yaolianGraph.$('node.root').id(), yaolianGraph.nodes().filter(n => n.degree() === 0).length]"
)


def test_trace_page_draws_the_graph(page: Any, server: str, demo_store: DemoStore) -> None:
    code = demo_store.truth["samples"]["tcm"]["raw"]  # 中成药 made from herb lots
    graph = _api(server, f"/trace/{code}?direction=backward", demo_store.regulator_key)
    page.goto("/web/trace")
    page.fill("#code", code)
    page.fill("#key", demo_store.regulator_key)
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    assert page.evaluate(DRAWN) == [len(graph["nodes"]), len(graph["edges"]), graph["root"], 0]
    assert page.locator("#events-table tbody tr").count() == len(graph["events"])
    # steps, dispositions and places by their Chinese names; the CBV word or URI on hover
    at, named = next((n, e) for n, e in enumerate(graph["events"]) if e["site_name"])
    row = page.locator("#events-table tbody tr").nth(at)  # in the answer's order
    assert row.locator("td").first.inner_text() == str(named["id"])
    assert named["biz_step_zh"] in row.inner_text() and named["site_name"] in row.inner_text()
    assert row.locator(f"span[title='{named['biz_step']}']").count() == 1
    assert "urn:epc:id:sgln" not in page.locator("#events-table").inner_text()
    assert "状态 status" in page.locator("#summary").inner_text()
    assert code in page.locator("#detail").inner_text()  # the root's facts are shown
    assert "通用名 generic name" in page.locator("#detail").inner_text()
    kinds = {n["kind"] for n in graph["nodes"]}
    assert "enterprise" in kinds and "lot" in kinds  # hand-overs and the herb lots behind it
    page.select_option("#direction", "forward")
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    forward = _api(server, f"/trace/{code}?direction=forward", demo_store.regulator_key)
    assert page.evaluate(DRAWN) == [
        len(forward["nodes"]),
        len(forward["edges"]),
        forward["root"],
        0,
    ]
    assert "forward" in page.url
    # as of a moment before the pack existed: nothing reached yet, and the moment is kept
    page.fill("#at", "2020-01-01T08:00")
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    early = _api(
        server,
        f"/trace/{code}?direction=forward&at=2020-01-01T00:00:00%2B00:00",
        demo_store.regulator_key,
    )
    assert len(early["edges"]) < len(forward["edges"])
    assert page.evaluate(EDGES) == len(early["edges"])
    page.reload()
    assert page.input_value("#at") == "2020-01-01T08:00"


OVERLAPPING_LABELS = """(() => {
  const boxes = yaolianGraph.nodes().map(
    (n) => n.boundingBox({ includeNodes: false, includeEdges: false, includeLabels: true }));
  let overlaps = 0;
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
    if (a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2) overlaps += 1;
  }));
  return overlaps;
})()"""


NODES_ON_HAND_OVERS = """(() => {
  const near = (p, a, b) => {  // p within 12 px of the segment a–b, strictly between its ends
    const dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    const t = ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2;
    if (t <= 0.05 || t >= 0.95) return false;
    return Math.hypot(a.x + t * dx - p.x, a.y + t * dy - p.y) < 12;
  };
  return yaolianGraph.edges("[kind = 'handed_over']").map((e) => yaolianGraph.nodes()
    .filter((n) => n !== e.source() && n !== e.target()
      && near(n.position(), e.source().position(), e.target().position()))
    .map((n) => n.id())).flat();
})()"""


def test_trace_page_lays_out_a_pack_readably(page: Any, server: str, demo_store: DemoStore) -> None:
    """A pack's path (a few holders side by side, one with its site): every name is readable
    and no hand-over is drawn over a node it does not join."""
    code = demo_store.truth["samples"]["genuine"]["raw"]
    graph = _api(server, f"/trace/{code}?direction=backward", demo_store.regulator_key)
    assert len(graph["nodes"]) <= 12 and any(n["kind"] == "site" for n in graph["nodes"])
    page.goto(f"/web/trace?code={code}")
    page.fill("#key", demo_store.regulator_key)
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    assert page.evaluate(DRAWN) == [len(graph["nodes"]), len(graph["edges"]), graph["root"], 0]
    assert page.evaluate(OVERLAPPING_LABELS) == 0
    assert page.evaluate(NODES_ON_HAND_OVERS) == []


def test_trace_page_draws_a_batch(page: Any, server: str, demo_store: DemoStore) -> None:
    """Forward from a batch: the holders with their counts, every site placed by a link."""
    batch = demo_store.truth["recall"]  # the recalled batch, spread over several holders
    product, lot = batch["product_code"], batch["lot"]
    key = demo_store.regulator_key
    graph = _api(server, f"/trace/{product}?lot={lot}&direction=forward", key)
    page.goto(f"/web/trace?code={product}/{lot}&direction=forward")  # as recalls list it
    page.fill("#key", key)
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    assert page.evaluate(DRAWN) == [len(graph["nodes"]), len(graph["edges"]), graph["root"], 0]
    assert f"{graph['summary']['codes']}" in page.locator("#summary").inner_text()
    assert not graph["events"]  # summarised: the page says so, not "none visible to this key"
    assert "batch trace is summarised" in page.locator("#events").inner_text()
    # a batch's holders are too many to label side by side: the tiers run left to right, no
    # node's label lies over another's, and an edge's label shows while the pointer is on one
    # of its ends
    assert page.evaluate(OVERLAPPING_LABELS) == 0
    assert page.evaluate("yaolianGraph.edges('.shown').length") == 0
    page.evaluate("yaolianGraph.$id(yaolianGraph.$('node.root').id()).emit('mouseover')")
    shown = page.evaluate("yaolianGraph.edges('.shown').map(e => e.style('label'))")
    assert len(shown) == sum(graph["root"] in (e["from"], e["to"]) for e in graph["edges"])
    assert all(shown) and any("持有" in label for label in shown)


def test_trace_page_explains_a_refusal(page: Any, watch: Watch, demo_store: DemoStore) -> None:
    """A refused trace says why and leaves no earlier graph on screen to be taken for it."""
    watch.allowed.add(401)
    page.goto("/web/trace")
    page.fill("#code", demo_store.truth["samples"]["genuine"]["raw"])
    page.fill("#key", demo_store.regulator_key)
    page.click("#submit")
    page.locator("#graph[data-state=done]").wait_for()
    assert page.evaluate("yaolianGraph.nodes().length") > 0
    page.fill("#key", "yl_not_a_key")
    with page.expect_response(lambda r: "/trace/" in r.url) as answer:
        page.click("#submit")
    assert answer.value.status == 401
    page.locator("#graph[data-state=done]").wait_for()
    refusal = page.locator(".problem").inner_text()
    assert refusal.startswith("密钥无效、已吊销或未填写 · Unauthorized")  # said in Chinese first
    assert page.evaluate("window.yaolianGraph") is None
    assert page.locator("#summary-card").is_hidden()
    assert page.locator("#events-table").count() == 0


def _alert_rows(page: Any, alerts: list[dict[str, Any]]) -> dict[tuple[int, str], list[int]]:
    """Check the dashboard's alert rows against the API's page of ``alerts``: one row per code
    and event (the rules that fired on one sale together), and the codes one event flagged
    alike in one row too (every pack of a case too warm: "等 N 个码"). Returns the rows' codes
    by event and rules."""
    per_code: dict[tuple[int, int], set[str]] = {}
    for a in alerts:
        per_code.setdefault((a["code_id"], a["event_id"]), set()).add(a["rule"])
    occurrences: dict[tuple[int, str], list[int]] = {}
    for (code, event), fired in per_code.items():
        occurrences.setdefault((event, ",".join(sorted(fired))), []).append(code)
    rows = page.locator("#alerts-table tbody tr")
    assert rows.count() == len(occurrences) > 0
    for row, ((_, rules), codes) in zip(rows.all(), occurrences.items(), strict=True):
        assert len(row.locator("td").nth(1).inner_text().split("、")) == len(rules.split(","))
        reason = row.locator("td").nth(4).inner_text()  # said in Chinese, one per rule
        assert len(reason.split("；")) == len(rules.split(","))
        assert not re.search("[a-z]{4}", reason)
        assert (f"等 {len(codes)} 个码" in row.inner_text()) == (len(codes) > 1)
    return occurrences


def test_dashboard_for_a_regulator(page: Any, server: str, demo_store: DemoStore) -> None:
    key = demo_store.regulator_key
    start = date.fromisoformat(demo_store.truth["start"][:10])
    as_of = (start + timedelta(days=50)).isoformat()  # shortages are ahead by then
    page.goto(f"/web/dashboard?as_of={as_of}")
    page.fill("#key", key)
    page.click("#submit")
    page.locator("body[data-loaded=true]").wait_for()
    alerts = _api(server, "/alerts?limit=12", key)
    occurrences = _alert_rows(page, alerts["alerts"])
    page.click("[data-alerts-page='1']")
    page.locator("#alerts-range", has_text="第 13–").wait_for()
    later = _alert_rows(page, _api(server, "/alerts?limit=12&offset=12", key)["alerts"])
    assert any(len(codes) > 1 for codes in later.values())  # a case too warm: one row
    page.click("[data-alerts-page='-1']")
    page.locator("#alerts-range", has_text="第 1–").wait_for()
    assert page.locator("#alerts-chart canvas").count() == 1
    bars = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('alerts-chart'))"
        ".getOption().series[0].data"
    )
    assert bars == list(alerts["by_rule"].values())
    coverage = _api(server, "/coverage?by=province", key)
    assert str(coverage["total"]["packs"]) in page.locator("#coverage-total").inner_text()
    recalls = _api(server, "/recalls", key)["recalls"]
    assert page.locator("#recalls-table tbody tr").count() == len(recalls) > 0
    warnings = _api(server, f"/supply/warnings?as_of={as_of}", key)["warnings"]
    shown = page.locator("#warnings-table tbody tr")
    assert shown.count() == len(warnings) > 0
    for row, warning in zip(shown.all(), warnings, strict=True):  # reasons in Chinese
        assert all(reason in row.inner_text() for reason in warning["reasons_zh"])
    reports = _api(server, "/supply/discontinuations", key)["discontinuations"]
    filed = [d for d in reports if not d["withdrawn"]]
    assert page.locator("#discontinuations-table tbody tr").count() == len(filed) > 0
    assert filed[0]["holder"] in page.locator("#discontinuations-table").inner_text()
    # a recall's progress: who still holds it, what is in transit, where it was dispensed
    scope = _api(server, f"/recalls/{recalls[0]['id']}", key)
    page.click(f"button[data-recall='{recalls[0]['id']}']")
    progress = page.locator("#recall-progress").inner_text()
    assert f"范围 {scope['total']} 个码" in progress
    assert f"完成 {scope['progress']['percent_complete']:g}%" in progress
    for part, rows in (
        ("holders", "#recall-holders"),
        ("in_transit", "#recall-transit"),
        ("dispensed", "#recall-dispensed"),
    ):  # a part with nothing in it has no table
        assert page.locator(f"{rows} tbody tr").count() == len(scope[part])
    assert scope["dispensed"]  # by the end of the run the recalled batch was all sold or returned
    # its notice list (召回通知清单) downloads as a workbook: one row per site to notify
    rid = recalls[0]["id"]
    with page.expect_download() as download:
        page.click(f"button[data-notice='{rid}']")
    assert download.value.suggested_filename == f"召回{rid}通知清单.xlsx"
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    assert sheet is not None
    notified = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(notified) == sum(len(h["sites"]) for h in scope["holders"]) + len(
        scope["in_transit"]
    ) + len(scope["dispensed"])
    assert {row[2] for row in notified} >= {d["uscc"] for d in scope["dispensed"]}
    assert page.locator("#message .problem").count() == 0
    # the audit log: the latest entries, and the chain checked (a regulator's key)
    audit = _api(server, "/audit?limit=15", key)
    assert page.locator("#audit-table tbody tr").count() == len(audit["entries"]) > 0
    chain = _api(server, "/audit/verify", key)
    assert chain["intact"]
    assert f"审计链完整：{chain['entries']} 条" in page.inner_text("#audit-chain")
    # the key stays in this tab: a reload refreshes without asking again
    page.reload()
    page.locator("body[data-loaded=true]").wait_for()
    assert page.locator("#alerts-table tbody tr").count() == len(occurrences)
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone: nothing off the side
    assert page.evaluate("document.body.scrollWidth <= innerWidth")
    # an alert's code opens its trace graph, with the key of this tab
    page.locator("#alerts-table a").first.click()
    page.locator("#graph[data-state=done]").wait_for()
    assert page.input_value("#code") == alerts["alerts"][0]["uri"]
    assert page.evaluate("yaolianGraph.nodes().length") > 0


def test_supply_page_shows_own_stock_and_asks_for_a_low_line(
    page: Any, server: str, demo_store: DemoStore
) -> None:
    """An enterprise's key sees its own sites' stock, use and days of supply, fewest days
    first; a line under 30 days fills the demand form with its site, product, a month's use
    less what is there, and the day the stock runs out."""
    engine = open_engine(demo_store.url)
    with engine.connect() as conn:
        uscc = conn.execute(
            select(schema.enterprise.c.uscc)
            .join(schema.site, schema.site.c.enterprise_id == schema.enterprise.c.id)
            .where(schema.site.c.kind == "hospital")
            .order_by(schema.enterprise.c.uscc)
        ).scalar()
    key = create_key(engine, uscc, "enterprise", "stock web test")
    engine.dispose()
    truth = demo_store.truth
    as_of = date.fromisoformat(truth["start"]) + timedelta(days=int(truth["days"]) // 2)  # mid-run
    lines = _api(server, f"/supply/days-of-supply?level=site&as_of={as_of}", key)["lines"]
    held = [x for x in lines if x["on_hand"] or x["in_transit"] or x["amc"]]
    page.goto(f"/web/supply?as_of={as_of}")
    page.fill("#key", key)
    page.click("#load")
    page.locator("#stock-table").wait_for()
    assert page.locator("#stock-table tbody tr").count() == len(held) > 0
    dated = sorted((x for x in held if x["days_of_supply"] is not None),
                   key=lambda x: x["days_of_supply"])  # fmt: skip
    first = dated[0]
    assert first["days_of_supply"] < 30  # the tiny world's hospitals run low mid-run
    assert page.locator("#stock-table tbody tr").first.locator("td").nth(5).inner_text() == (
        f"{first['days_of_supply']:.0f}"
    )
    # an opened pack (拆零) counted as a pharmacy counts it: whole packs and the units left
    master = _api(server, "/masterdata?section=products", key)["products"]
    per = {p["product_code"]: p["units_per_pack"] for p in master}
    opened = next(x for x in held if x["on_hand"] % 1 and per.get(x["product"], 1) > 1)
    whole = math.floor(opened["on_hand"])
    left = round((opened["on_hand"] - whole) * per[opened["product"]])
    row = page.locator("#stock-table tbody tr").filter(has_text=f"（{opened['product']}）").first
    assert row.locator("td").nth(2).inner_text() == (
        f"{whole}（另拆零 {left}/{per[opened['product']]}）"
    )
    page.locator("#stock-table tbody tr").first.locator("button").click()
    form = page.locator("#demand-form")
    assert form.locator("[name=site]").input_value() == first["where"]
    assert form.locator("[name=product]").input_value() == first["product"]
    month = math.ceil(first["amc"] - first["on_hand"] - first["in_transit"])
    assert form.locator("[name=quantity]").input_value() == str(max(1, month))
    runs_out = as_of + timedelta(days=math.floor(first["days_of_supply"]))
    assert form.locator("[name=needed_by]").input_value() == runs_out.isoformat()


HOSPITAL = (f"12440100000000001{uscc_check_char('12440100000000001')}",
            "urn:epc:id:sgln:6901234.10001.0", "示例市第一人民医院")  # fmt: skip
DISTRIBUTOR = (f"91440100000000002{uscc_check_char('91440100000000002')}",
               "urn:epc:id:sgln:6901234.20001.0", "示例医药有限公司")  # fmt: skip
MAKER = (f"91440100000000003{uscc_check_char('91440100000000003')}",
         "urn:epc:id:sgln:6901234.30001.0", "示例制药有限公司")  # fmt: skip
METFORMIN = "8193216"  # the maker's own product
AMOXICILLIN = "8819499"


@pytest.fixture(scope="module")
def supply_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A store of its own (the 供需对接 and recall tests post and close): a hospital and a
    distributor with a site each, one product, a key each and a regulator's; the server on it
    and the keys."""
    url = f"sqlite:///{tmp_path_factory.mktemp('supply') / 'supply.db'}"
    engine = open_engine(url)
    keys = {}
    for who, (uscc, site, name) in (("hospital", HOSPITAL), ("distributor", DISTRIBUTOR)):
        upsert_enterprise(engine, uscc, name, who, region="440100")
        upsert_site(engine, site, uscc, name, kind=who, region="440100")
        keys[who] = create_key(engine, uscc, "enterprise", f"{who} web test")
    upsert_product(engine, AMOXICILLIN, "阿莫西林胶囊")
    upsert_enterprise(engine, MAKER[0], MAKER[2], "holder", region="440100")
    upsert_site(engine, MAKER[1], MAKER[0], MAKER[2], kind="factory", region="440100")
    upsert_product(engine, METFORMIN, "盐酸二甲双胍片", holder_uscc=MAKER[0])
    keys["maker"] = create_key(engine, MAKER[0], "enterprise", "maker web test")
    keys["regulator"] = create_key(engine, None, "regulator", "web test")
    engine.dispose()
    with _serving(url) as base:
        yield base, keys


def _load_supply(tab: Any, key: str) -> None:
    tab.goto("/web/supply")
    tab.fill("#key", key)
    tab.click("#load")
    tab.locator("body[data-loaded=true]").wait_for()


def _post(tab: Any, form: str, fields: dict[str, str]) -> None:
    rows = "#demand-table tbody tr, #offer-table tbody tr"
    shown = tab.locator(rows).count()
    for name, value in fields.items():
        tab.fill(f"{form} [name={name}]", value)
    tab.click(f"{form} button[type=submit]")
    tab.locator(rows).nth(shown).wait_for()  # one more row on the board


def test_a_maker_reports_a_discontinuation_the_dashboard_lists(
    browser: Any, supply_server: tuple[str, dict[str, str]]
) -> None:
    """停产报告 from the supply page: a holder's key offers its own products only, files the
    report as itself, lists it; the regulator's dashboard shows it; the maker withdraws it when
    production resumes; a hospital gets no form."""
    base, keys = supply_server
    with _tab(browser, base, Watch(base)) as tab:
        _load_supply(tab, keys["maker"])
        form = "#discontinue-form"
        tab.locator(f"{form} [name=product] option").first.wait_for(state="attached")
        assert tab.locator(f"{form} [name=product] option").evaluate_all(
            "options => options.map((o) => o.value)"
        ) == [METFORMIN]
        assert tab.input_value(f"{form} [name=filed_on]")  # dated today unless told
        tab.locator("#discontinuations p").wait_for()  # none filed yet
        for name, value in {
            "stop_date": "2027-06-30",
            "remaining_packs": "800",
            "reason": "原料药供应中断",
            "filed_on": "2026-12-01",
        }.items():
            tab.fill(f"{form} [name={name}]", value)
        tab.click(f"{form} button[type=submit]")
        row = tab.locator("#discontinuation-table tbody tr")
        row.wait_for()
        assert "2027-06-30" in row.inner_text() and "原料药供应中断" in row.inner_text()
        tab.fill("#key", keys["hospital"])
        tab.click("#load")
        tab.locator("#whoami", has_text=HOSPITAL[0]).wait_for()
        assert tab.locator("#discontinue-card").is_hidden()  # it makes nothing
        filed = _api(base, "/supply/discontinuations", keys["regulator"])["discontinuations"]
        assert [(d["product"], d["holder"], d["remaining_packs"], d["filed_at"][:10]) for d in
                filed] == [(METFORMIN, MAKER[0], 800, "2026-12-01")]  # fmt: skip
        tab.goto("/web/dashboard")
        tab.fill("#key", keys["regulator"])
        tab.click("#submit")
        tab.locator("#discontinuations-table tbody tr").wait_for()
        assert "原料药供应中断" in tab.inner_text("#discontinuations-table")
        # production resumes: the maker withdraws it as of today, and it leaves the dashboard
        _load_supply(tab, keys["maker"])
        tab.click("[data-withdraw]")
        tab.locator("#discontinuation-table", has_text="已撤回").wait_for()
        (report,) = _api(base, "/supply/discontinuations?withdrawn=true", keys["regulator"])[
            "discontinuations"
        ]
        assert report["withdrawn"] and report["withdrawn_at"][:10] >= "2026-12-01"
        assert _api(base, "/supply/discontinuations", keys["regulator"])["discontinuations"] == []


def test_supply_page_matches_a_demand_with_an_offer(
    browser: Any, supply_server: tuple[str, dict[str, str]]
) -> None:
    base, keys = supply_server
    watch = Watch(base, allowed={400})
    with _tab(browser, base, watch) as hospital:
        _load_supply(hospital, keys["hospital"])
        assert HOSPITAL[0] in hospital.inner_text("#whoami")
        sites = hospital.locator("#demand-form select[name=site] option")
        assert sites.all_inner_texts() == [HOSPITAL[2]]  # it posts for its own site only
        _post(hospital, "#demand-form", {"product": AMOXICILLIN, "quantity": "40",
                                         "needed_by": "2027-03-01"})  # fmt: skip
        row = hospital.locator("#demand-table tbody tr").first.inner_text()
        assert "阿莫西林胶囊" in row and HOSPITAL[2] in row and "40" in row
        assert hospital.locator("#match-table").count() == 0  # nothing offered yet
        # the API's refusal is shown as it came, nothing posted
        hospital.fill("#demand-form [name=product]", "9" * 21)
        hospital.fill("#demand-form [name=quantity]", "5")
        hospital.fill("#demand-form [name=needed_by]", "2027-03-01")
        hospital.click("#demand-form button[type=submit]")
        hospital.locator("#message .problem").wait_for()
        assert "product" in hospital.inner_text("#message .problem")
        assert hospital.locator("#demand-table tbody tr").count() == 1
    watch = Watch(base)
    with _tab(browser, base, watch) as distributor:
        _load_supply(distributor, keys["distributor"])
        _post(distributor, "#offer-form", {"product": AMOXICILLIN, "quantity": "25",
                                           "available_from": "2026-12-10",
                                           "expiry": "2028-01-31", "lot": "L77"})  # fmt: skip
        distributor.locator("#match-table").wait_for()
        matches = httpx.get(
            f"{base}/supply/matches", headers={"X-API-Key": keys["distributor"]}, timeout=30
        ).json()
        (match,) = matches["matches"]
        cells = distributor.locator("#match-table tbody tr td").all_inner_texts()
        assert cells[:4] == [DISTRIBUTOR[2], HOSPITAL[2], f"阿莫西林胶囊（{AMOXICILLIN}）", "25"]
        assert cells[4] == match["arrives"]
        assert distributor.locator("#unmet-table tbody td").all_inner_texts() == [HOSPITAL[2], "15"]
        # it may close its own offer, not the hospital's demand
        assert distributor.locator("#demand-table [data-close]").count() == 0
        distributor.click("#offer-table [data-close]")
        distributor.locator("#offers p.muted").wait_for()  # 暂无: the offer left the board
        assert distributor.locator("#match-table").count() == 0
        assert distributor.locator("#demand-table tbody tr").count() == 1


def test_dashboard_creates_and_closes_a_recall(
    browser: Any, supply_server: tuple[str, dict[str, str]]
) -> None:
    base, keys = supply_server
    watch = Watch(base, allowed={400})
    with _tab(browser, base, watch) as tab:
        tab.goto("/web/dashboard")
        tab.fill("#key", keys["regulator"])
        tab.click("#submit")
        tab.locator("body[data-loaded=true]").wait_for()
        assert "No recalls" in tab.inner_text("#recalls")
        tab.click("#new-recall summary")
        tab.fill("#recall-form [name=reason]", "溶出度不合格")
        tab.click("#recall-form button[type=submit]")  # no batch and no code: refused
        tab.locator("#recall-message .problem").wait_for()
        tab.select_option("#recall-form [name=class]", "1")
        tab.fill("#recall-form [name=reason]", "溶出度不合格")
        tab.fill("#recall-form [name=batches]", f"{AMOXICILLIN}/L2611\n")
        tab.click("#recall-form button[type=submit]")
        tab.locator("#recall-progress").wait_for()
        assert tab.locator("#recall-message .problem").count() == 0
        (made,) = httpx.get(
            f"{base}/recalls", headers={"X-API-Key": keys["regulator"]}, timeout=30
        ).json()["recalls"]
        assert (made["class"], made["reason"]) == (1, "溶出度不合格")
        assert f"#{made['id']}" in tab.inner_text("#recall-detail h3")
        assert "阿莫西林胶囊 L2611" in tab.inner_text("#recall-detail h3")
        assert tab.locator("#recalls-table tbody tr").all_inner_texts()[0].endswith("进行中")
        newest = tab.locator("#audit-table tbody tr:first-child", has_text="发起召回")
        newest.wait_for()  # the audit panel reloads after the recall is made
        assert str(made["id"]) in newest.inner_text() and "web test" in newest.inner_text()
        tab.click("[data-close-recall]")
        tab.locator("#recall-detail", has_text="已关闭").wait_for()
        tab.locator("#recalls-table", has_text="已关闭").wait_for()
        tab.locator("#audit-table tbody tr:first-child", has_text="结束召回").wait_for()
        # an enterprise's key: the entries of its own keys, no chain check (a regulator's)
        tab.fill("#key", keys["distributor"])
        tab.click("#submit")
        tab.locator("body[data-loaded=true]").wait_for()
        assert tab.locator("#audit-chain").count() == 0
        assert tab.locator("#audit .problem").count() == 0
        assert "结束召回" not in tab.inner_text("#audit")


def test_dashboard_records_a_finding_on_an_alert(
    browser: Any, demo_store: DemoStore, tmp_path: Path
) -> None:
    """预警核查: a regulator marks an alert row confirmed with a note; the row, the counts and
    the audit panel say so, and the API filters by it (on a copy of the demo store)."""
    url = _copy_of(demo_store, tmp_path / "review.db")
    key = demo_store.regulator_key
    with _serving(url) as base, _tab(browser, base, Watch(base)) as tab:
        tab.goto("/web/dashboard")
        tab.fill("#key", key)
        tab.click("#submit")
        tab.locator("body[data-loaded=true]").wait_for()
        before = _api(base, "/alerts?limit=12", key)
        assert f"待核查 {before['by_review']['open']}" in tab.inner_text("#alerts-review")
        row = tab.locator("#alerts-table tbody tr").first
        ids = [int(i) for i in row.locator("[data-review]").get_attribute("data-review").split(",")]
        assert ids[0] == before["alerts"][0]["id"]
        row.locator("[data-review]").click()
        row.locator("select[name=status]").select_option("confirmed")
        row.locator("input[name=note]").fill("现场核查属实，已立案")
        row.locator(".review-form button[type=submit]").click()
        tab.locator("#alerts-table tbody tr").first.locator(
            ".review-confirmed", has_text="属实：现场核查属实，已立案"
        ).wait_for()
        confirmed = _api(base, "/alerts?review=confirmed", key)
        assert sorted(a["id"] for a in confirmed["alerts"]) == sorted(ids)
        assert f"属实 {len(ids)}" in tab.inner_text("#alerts-review")
        tab.locator("#audit-table tbody tr:first-child", has_text="预警核查").wait_for()
        # the open ones, a page at a time; the confirmed ones alone; their workbook
        tab.select_option("#alerts-form [name=review]", "open")
        pending = before["by_review"]["open"] - len(ids)
        tab.locator("#alerts-range", has_text=f"共 {pending} 条").wait_for()
        assert pending > 12 and tab.inner_text("#alerts-range").startswith("第 1–12 条")
        assert tab.locator("#alerts-table .review-confirmed").count() == 0
        tab.click("[data-alerts-page='1']")
        tab.locator("#alerts-range", has_text="第 13–").wait_for()
        last = 12 * ((pending - 1) // 12)  # the last page of open alerts: dismiss all it shows
        while not tab.inner_text("#alerts-range").startswith(f"第 {last + 1}–"):
            shown = tab.inner_text("#alerts-range")
            tab.click("[data-alerts-page='1']")
            tab.wait_for_function(
                "t => document.getElementById('alerts-range').textContent !== t", arg=shown
            )
        rows = tab.locator("#alerts-table tbody tr")
        for _ in range(rows.count()):
            shown = tab.inner_text("#alerts-range")
            rows.first.locator("[data-review]").click()
            rows.first.locator("select[name=status]").select_option("dismissed")
            rows.first.locator(".review-form button[type=submit]").click()
            tab.wait_for_function(
                "t => document.getElementById('alerts-range').textContent !== t", arg=shown
            )
        # its last alerts reviewed away, the page steps back to the one before: never empty
        assert tab.inner_text("#alerts-range").startswith(f"第 {last - 11}–")
        tab.select_option("#alerts-form [name=review]", "confirmed")
        tab.locator("#alerts-range", has_text=f"共 {len(ids)} 条").wait_for()
        with tab.expect_download() as download:
            tab.click("#alerts-export")
        assert download.value.suggested_filename == "告警清单.xlsx"
        sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
        assert sheet is not None
        exported = list(sheet.iter_rows(min_row=2, values_only=True))
        assert sorted(r[0] for r in exported) == sorted(ids)
        assert {r[9] for r in exported} == {"属实"}


def test_dashboard_takes_an_enterprise_account_of_its_alert(
    browser: Any, demo_store: DemoStore, tmp_path: Path
) -> None:
    """情况说明: the enterprise where the newest alert happened explains it on the dashboard;
    the regulator's key reads the account beside the alert (on a copy of the demo store)."""
    url = _copy_of(demo_store, tmp_path / "account.db")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as target:
        newest = _newest_alert_site(target)
        (uscc,) = target.execute(
            "SELECT e.uscc FROM site s JOIN enterprise e ON e.id = s.enterprise_id "
            "WHERE s.location_id = ?",
            (newest,),
        ).fetchone()
    key = create_key(open_engine(url), uscc, "enterprise", "account test")
    with _serving(url) as base, _tab(browser, base, Watch(base)) as tab:
        tab.goto("/web/dashboard")
        tab.fill("#key", key)
        tab.click("#submit")
        tab.locator("body[data-loaded=true]").wait_for()
        row = tab.locator("#alerts-table tbody tr").first
        assert row.locator("[data-review]").count() == 0  # findings are the regulator's
        row.locator("[data-respond]").click()
        row.locator("input[name=note]").fill("系患者退药后误再次销售，已追回")
        row.locator(".review-form button[type=submit]").click()
        tab.locator("#alerts-table tbody tr").first.locator(
            ".response", has_text="说明：系患者退药后误再次销售，已追回"
        ).wait_for()
        seen = _api(base, "/alerts?limit=1", demo_store.regulator_key)["alerts"][0]
        assert [r["uscc"] for r in seen["responses"]] == [uscc]


def _newest_alert_site(conn: sqlite3.Connection) -> str:
    """The site of the newest alert (as GET /alerts orders them)."""
    (site,) = conn.execute(
        "SELECT site FROM alert ORDER BY time_us DESC, id DESC LIMIT 1"
    ).fetchone()
    return str(site)


def test_keys_page_makes_and_revokes_an_enterprise_key(
    browser: Any, supply_server: tuple[str, dict[str, str]]
) -> None:
    base, keys = supply_server
    with _tab(browser, base, Watch(base)) as tab:
        tab.goto("/web/keys")
        tab.fill("#key", keys["hospital"])
        tab.click("#load")
        tab.locator("body[data-loaded=true]").wait_for()
        assert HOSPITAL[0] in tab.inner_text("#whoami")
        assert tab.locator(".admin-only").first.is_hidden()  # an enterprise makes its own kind
        assert tab.locator("#keys-table tbody tr").count() == 1
        tab.fill("#create-form [name=label]", "HIS 收费")
        tab.click("#create-form button[type=submit]")
        made = tab.locator("#made-key-text")
        made.wait_for()
        new_key = made.inner_text()
        tab.locator("#keys-table tbody tr", has_text="HIS 收费").wait_for()
        me = httpx.get(f"{base}/me", headers={"X-API-Key": new_key}, timeout=30)
        assert me.status_code == 200 and me.json()["enterprise"]["uscc"] == HOSPITAL[0]
        prefix = new_key.split("_", 2)[1]
        row = tab.locator("#keys-table tbody tr", has_text="HIS 收费")
        assert "有效" in row.inner_text()
        made_at = next(k for k in _api(base, "/keys", new_key)["keys"] if k["prefix"] == prefix)
        beijing = datetime.fromisoformat(made_at["created"]).astimezone(CHINA_TIME)
        assert f"{made_at['enterprise_name']}（{HOSPITAL[0]}）" in row.inner_text()
        assert beijing.date().isoformat() in row.inner_text()  # the day in Beijing, not UTC
        tab.click(f"[data-revoke='{prefix}']")  # the first click only asks again
        assert tab.inner_text(f"[data-revoke='{prefix}']") == "确认吊销？"
        assert httpx.get(f"{base}/me", headers={"X-API-Key": new_key}, timeout=30).is_success
        tab.click(f"[data-revoke='{prefix}']")
        row.filter(has_text="已吊销").wait_for()
        refused = httpx.get(f"{base}/me", headers={"X-API-Key": new_key}, timeout=30)
        assert refused.status_code == 401
        # a regulator's key sees every key and makes or revokes none
        tab.fill("#key", keys["regulator"])
        tab.click("#load")
        tab.locator("body[data-loaded=true]").wait_for()
        assert tab.locator("#create-card").is_hidden()
        listed = httpx.get(f"{base}/keys", headers={"X-API-Key": keys["regulator"]}, timeout=30)
        assert tab.locator("#keys-table tbody tr").count() == len(listed.json()["keys"]) >= 4
        assert tab.locator("[data-revoke]").count() == 0
