// A scanner's list of codes verified at once with POST /verify, problems first, codes scanned
// twice flagged — at receiving (扫码验收, /web/check: then 确认收货) or at the counter
// (扫码销售, /web/sell, the same page: then 确认销售).
"use strict";

const SELLING = window.location.pathname === "/web/sell";

/** The page as 扫码销售: its words, the settlement field, no deliveries on the way. */
function asSalePage() {
  document.title = "扫码销售 · yaolian";
  show(document.getElementById("title"), "扫码销售 ",
    el("span", { class: "muted", style: "color:#cfe0f5" }, "Sale at the counter"));
  show(document.getElementById("codes-label"), "售出药品的追溯码：逐盒扫描，每行一个");
  show(document.getElementById("key-label"), "API key（本企业密钥：核对是否本单位库存并确认销售）");
  show(document.getElementById("act-site-label"), "销售地点 site");
  document.getElementById("settlement-field").hidden = false;
  document.getElementById("arrivals-card").remove();
}

const MAX_PER_CALL = 1000;  // POST /verify takes at most this many codes

/** Verdicts for every code, in order, in calls of at most MAX_PER_CALL codes. */
async function verifyAll(codes) {
  const verdicts = [];
  for (let start = 0; start < codes.length; start += MAX_PER_CALL) {
    const body = JSON.stringify({ codes: codes.slice(start, start + MAX_PER_CALL) });
    const answer = await apiPost("/verify", body, "application/json");
    verdicts.push(...answer.results);
  }
  return verdicts;
}

let me = null;  // whose key (GET /me): an enterprise key with sites may record what it does

/** How the page reads a verdict: [中文, class ok / warn / bad, actionable]. At receiving, a pack
 * in transit to this enterprise is what an arrival should be; a genuine one already in its
 * stock, or a case or pallet code that holds nothing now (unpacked upstream: scan its packs one
 * by one), is not received again. At the counter, a pack is sold from this enterprise's own
 * stock only: one it never received (or still on its way) is received first, and a case or
 * pallet code is not a pack to sell. */
function checkVerdict(v) {
  const detail = v.detail || {};
  const shipment = detail.shipment || {};
  const returned = shipment.to_you && shipment.kind === "returning"  // 召回退货, not a sold one
    && ["in_transit", "recalled", "expired"].includes(v.status);
  const toUs = shipment.to_you && (v.status === "in_transit" || returned);
  const keyed = Boolean(me && me.enterprise);
  const mine = keyed && detail.custodian && detail.custodian.uscc === me.enterprise.uscc;
  const genuine = v.status === "genuine";
  if (SELLING) {
    if (toUs) return ["在途 · 请先确认收货", "warn", false];
    if (genuine && v.contents !== undefined) return ["物流单元 · 请扫单盒", "warn", false];
    if (genuine && keyed && !mine) return ["本单位无收货记录", "warn", false];
  } else {
    if (toUs) return [returned ? "退货 · 发往本单位" : "在途 · 发往本单位", "ok", true];
    if (genuine && v.contents === 0) return ["物流单元已拆空", "warn", false];
    if (genuine && mine) return ["已在本单位库存", "warn", false];
  }
  const [name, style] = verdictOf(v);
  return [name, style, genuine];
}

/** For a pack on its way to this enterprise: who sent (or returned) it and when, and what it
 * is when not simply in transit (a recalled pack coming back). */
function arrivalNote(v) {
  const shipment = v.detail && v.detail.shipment;
  if (!shipment || !shipment.to_you) return null;
  const sent = shipment.kind === "returning" ? "退回" : "发货";
  const state = v.status === "in_transit" ? "" : `（${v.reason_zh}）`;  // a recalled return
  return `${shipment.from || "供货方"} 于 ${shipment.shipped} ${sent}，待本单位收货${state}`;
}

function actionable(v) {
  return checkVerdict(v)[2];
}

function summary(verdicts, repeated) {
  const counts = {};
  for (const v of verdicts) {
    const name = checkVerdict(v)[0];
    counts[name] = (counts[name] || 0) + 1;
  }
  const parts = Object.entries(counts).map(([name, n]) => `${name} ${n}`);
  if (repeated) parts.push(`重复扫描 ${repeated}`);
  const bad = verdicts.filter((v) => !actionable(v)).length;
  const [cannot, all] = SELLING ? ["不可销售", "全部可销售"] : ["不可入库", "全部可入库"];
  return `共 ${verdicts.length} 个码：${parts.join("，")}。` + (bad ? `${bad} 个${cannot}。` : `${all}。`);
}

const NEAR_EXPIRY_DAYS = 180;  // 近效期: under six months of shelf life left

/** Days from today (the browser's calendar day) to a YYYY-MM-DD date. */
function daysUntil(day) {
  const now = new Date();
  const today = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate());
  return Math.round((Date.parse(`${day}T00:00:00Z`) - today) / 86_400_000);
}

/** The expiry date, flagged 近效期 when a pack that can still be received (or sold) has under
 * six months left — receiving rules commonly ask for more. */
function expiryCell(v) {
  const expiry = v.batch && v.batch.expiry;
  if (!expiry) return "";
  const left = daysUntil(expiry);
  if (!actionable(v) || left >= NEAR_EXPIRY_DAYS) return expiry;
  return el("span", {}, `${expiry} `, el("span", { class: "status warn" }, `近效期 · 剩 ${left} 天`));
}

/** What makes two scans the same pack: the code's canonical key (the same pack typed in
 * full-width digits or scanned as another form of its code), else the text as scanned. */
function identity(code, verdict) {
  return verdict.key || code;
}

function resultTable(codes, verdicts) {
  const seen = new Map();
  const rows = verdicts.map((v, i) => {
    const same = identity(codes[i], v);
    const first = seen.has(same) ? seen.get(same) : null;
    if (first === null) seen.set(same, i + 1);
    const p = v.product || {};
    const b = v.batch || {};
    const holder = v.detail && v.detail.custodian ? v.detail.custodian.name : "";
    return { ok: actionable(v) && first === null, cells: [
      i + 1, el("span", { class: "code" }, codes[i]),
      el("span", { class: `status ${checkVerdict(v)[1]}`, "data-status": v.status },
        checkVerdict(v)[0]),
      first === null ? "" : `重复（第 ${first} 行）`,
      p.generic_name || "", b.lot || "", expiryCell(v), holder,
      el("span", {}, arrivalNote(v) || v.reason_zh || v.reason),  // a node: wraps, however short
    ] };
  });
  rows.sort((a, b) => Number(a.ok) - Number(b.ok));  // problems first, otherwise in scan order
  return table("check-table", ["#", "追溯码", "状态", "重复", "通用名称", "批号", "有效期至", "当前持有", "说明"],
    rows.map((r) => r.cells));
}

/** The deliveries on their way to this enterprise (GET /arrivals), those this scan found
 * first, each with 应到 (packs shipped, not yet received), 本次扫码 (a case or pallet counts by
 * what it holds) and 短少 (what the scan did not find of a delivery it found). */
function arrivalsTable(arrivals, codes, verdicts) {
  const scanned = new Map();
  const seen = new Set();
  verdicts.forEach((v, i) => {
    const shipment = v.detail && v.detail.shipment;
    const same = identity(codes[i], v);
    if (!shipment || !shipment.to_you || seen.has(same)) return;
    seen.add(same);
    scanned.set(shipment.event_id, (scanned.get(shipment.event_id) || 0) + (v.contents ?? 1));
  });
  const found = (a) => Number(scanned.has(a.shipment));
  const rows = [...arrivals].sort((a, b) => found(b) - found(a)).map((a) => {
    const n = scanned.get(a.shipment);
    const short = n === undefined ? ""
      : a.packs > n ? el("span", { class: "status warn" }, `短少 ${a.packs - n}`)
        : el("span", { class: "status ok" }, "齐全");
    const lines = a.lines.map((l) => `${l.generic_name || l.product} ${l.lot || ""} × ${l.packs}`);
    return [a.shipped, a.from, a.to_site_name || a.to_site || a.to, lines.join("；"), a.packs,
      n === undefined ? "" : n, short];
  });
  return rows.length
    ? table("arrivals-table", ["发货日期", "发货方", "收货地点", "品种 批号 × 盒", "应到", "本次扫码", "核对"], rows)
    : el("p", { class: "muted" }, "暂无在途待收的货品");
}

/** The codes to act on: each receivable (sellable) pack once, as first scanned. */
function toActOn(codes, verdicts) {
  const seen = new Set();
  return codes.filter((code, i) => {
    const same = identity(code, verdicts[i]);
    if (!actionable(verdicts[i]) || seen.has(same)) return false;
    seen.add(same);
    return true;
  });
}

/** The 确认收货 / 确认销售 bar: for an enterprise key with sites, when there is something to do. */
function offerAction(codes) {
  const bar = document.getElementById("act");
  const sites = me && me.enterprise ? me.sites : [];
  bar.hidden = sites.length === 0 || codes.length === 0;
  if (bar.hidden) return;
  const select = document.getElementById("act-site");
  const chosen = select.value;
  show(select, sites.map((s) => el("option", { value: s.location_id }, s.name || s.location_id)));
  if (sites.some((s) => s.location_id === chosen)) select.value = chosen;
  const button = document.getElementById("act-go");
  button.textContent = SELLING ? `确认销售（${codes.length} 盒）` : `确认收货（${codes.length} 个码）`;
  button.onclick = () => act(codes, select.value);
}

/** Record the receipt (POST /receive); what to say when done. */
async function receive(codes, site) {
  const done = await apiPost("/receive", JSON.stringify({ site, codes }), "application/json");
  const unreported = done.unreported_shipping
    ? `；其中 ${done.unreported_shipping} 个供货方未上报发货` : "";
  return `已收货入库 ${done.codes} 个码，来自 ${done.senders.join("、")}${unreported}。`;
}

/** Record the sale (POST /dispense): one sale line of whole packs — 零售 at a pharmacy, 使用
 * elsewhere — with the settlement number when given; what to say when done. */
async function sell(codes, site) {
  const kind = me.sites.find((s) => s.location_id === site).kind === "pharmacy"
    ? "retail_selling" : "dispensing";
  const line = { drug_trac_codg: codes, trdn_flag: "0", sel_retn_cnt: codes.length,
    sel_retn_time: new Date().toISOString(), site, kind };
  const settlement = document.getElementById("settlement").value.trim();
  if (settlement) line.setl_id = settlement;
  await apiPost("/dispense", JSON.stringify({ lines: [line] }), "application/json");
  return `已销售出库 ${codes.length} 盒（${kind === "retail_selling" ? "零售" : "使用"}）。`;
}

/** Do it, then check the list again: received packs now read as in stock, sold ones as sold. */
async function act(codes, site) {
  const button = document.getElementById("act-go");
  button.disabled = true;
  const note = document.getElementById("act-note");
  try {
    const said = SELLING ? await sell(codes, site) : await receive(codes, site);
    await check();
    show(note, said);
  } catch (err) {
    show(note, problemBox(err));
  } finally {
    button.disabled = false;
  }
}

async function check() {
  const form = document.getElementById("check-form");
  const codes = lines(form.elements.codes.value);
  const button = document.getElementById("submit");
  storeKey(form.elements.key.value.trim());
  button.disabled = true;
  show(document.getElementById("message"));
  show(document.getElementById("act-note"));
  const arrivalsCard = document.getElementById("arrivals-card");  // at receiving only
  try {
    const verdicts = await verifyAll(codes);
    me = storedKey() ? await apiGet("/me") : null;
    const arrivals = arrivalsCard && me && me.enterprise
      ? (await apiGet("/arrivals")).arrivals : null;
    const repeated = codes.length - new Set(codes.map((c, i) => identity(c, verdicts[i]))).size;
    document.getElementById("result-card").hidden = false;
    show(document.getElementById("summary"), summary(verdicts, repeated));
    show(document.getElementById("result"), resultTable(codes, verdicts));
    offerAction(toActOn(codes, verdicts));
    if (arrivalsCard) arrivalsCard.hidden = arrivals === null;
    if (arrivals) show(document.getElementById("arrivals"), arrivalsTable(arrivals, codes, verdicts));
  } catch (err) {
    document.getElementById("result-card").hidden = true;
    if (arrivalsCard) arrivalsCard.hidden = true;
    show(document.getElementById("message"), problemBox(err));
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (SELLING) asSalePage();
  bindKeyField(document.getElementById("key"));
  document.getElementById("check-form").addEventListener("submit", (event) => {
    event.preventDefault();
    check();
  });
});
