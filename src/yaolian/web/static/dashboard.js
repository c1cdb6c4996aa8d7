// Regulator dashboard (监管看板): shortage warnings, alerts, trace coverage, discontinuation
// reports, recalls and the audit log, each read from the JSON API with the key typed in; a
// panel whose call fails says why.
"use strict";

// GB/T 2260 provincial-level divisions, by the first two digits of a 6-digit area code
const PROVINCES = {
  11: "北京市", 12: "天津市", 13: "河北省", 14: "山西省", 15: "内蒙古自治区", 21: "辽宁省",
  22: "吉林省", 23: "黑龙江省", 31: "上海市", 32: "江苏省", 33: "浙江省", 34: "安徽省",
  35: "福建省", 36: "江西省", 37: "山东省", 41: "河南省", 42: "湖北省", 43: "湖南省",
  44: "广东省", 45: "广西壮族自治区", 46: "海南省", 50: "重庆市", 51: "四川省", 52: "贵州省",
  53: "云南省", 54: "西藏自治区", 61: "陕西省", 62: "甘肃省", 63: "青海省",
  64: "宁夏回族自治区", 65: "新疆维吾尔自治区", 71: "台湾省", 81: "香港特别行政区",
  82: "澳门特别行政区",
};
const SEVERITIES = ["high", "medium", "low"]; // most urgent first
const XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const ALERTS_PAGE = 12;
// whether this key records findings on alerts (a regulator's) or accounts (an enterprise's), the
// alert list's filters and page, the review statuses' Chinese names (from GET /alerts)
const state = { reviews: false, responds: false, alerts: { rule: "", review: "", offset: 0 }, reviewNames: {} };
const LEVEL_NAMES = { red: "红色", orange: "橙色", yellow: "黄色", green: "绿色" };
const ACTION_NAMES = {
  capture: "事件上报", dispense: "销售出库上报", receive: "收货入库", "masterdata.load": "主数据登记",
  "masterdata.enterprise": "企业登记",
  "query.save": "保存查询", "query.delete": "删除查询", "subscription.create": "订阅",
  "subscription.delete": "取消订阅", "recall.create": "发起召回", "recall.close": "结束召回",
  "supply.discontinuation": "停产报告", "supply.discontinuation.withdraw": "撤回停产报告",
  "supply.stocktake": "盘点", "supply.demand": "发布需求",
  "supply.offer": "发布供应", "supply.demand.close": "关闭需求", "supply.offer.close": "关闭供应",
  "reserve.plan": "储备计划", "reserve.dispatch": "储备调度", "key.create": "创建密钥",
  "key.revoke": "吊销密钥", "codes.issue": "赋码", "alert.review": "预警核查",
  "alert.response": "情况说明",
};
const BEIJING = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const charts = {};

function regionName(code) {
  if (!code) return "（未登记地区）";
  const province = PROVINCES[String(code).slice(0, 2)];
  if (!province) return code;
  return String(code).endsWith("0000") ? province : `${province} ${code}`;
}

function chart(id, option) {
  charts[id] = charts[id] || echarts.init(document.getElementById(id));
  charts[id].setOption(option, true);
  return charts[id];
}

function warningsPanel(body, names) {
  if (!body.warnings.length) return el("p", { class: "muted", id: "no-warnings" }, "无预警 No warnings.");
  return table("warnings-table", ["级别", "药品", "地区", "预计断供", "提前天数", "可供天数", "原因"],
    body.warnings.map((w) => [
      el("span", { class: `level ${w.level}` }, LEVEL_NAMES[w.level] || w.level),
      names[w.product] || w.product,
      regionName(w.region),
      w.expected_stockout || "—",
      w.lead_days ?? "—",
      w.days_of_supply ?? "—",
      el("ul", {}, (w.reasons_zh && w.reasons_zh.length ? w.reasons_zh : w.reasons)
        .map((r) => el("li", {}, r))),
    ]));
}

function alertsPanels(body) {
  const rules = Object.keys(body.by_rule);
  chart("alerts-chart", {
    tooltip: {},
    grid: { left: 110, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: rules.map((r) => body.rules_zh[r] || r) },
    series: [{ type: "bar", name: "alerts", data: rules.map((r) => body.by_rule[r]),
      itemStyle: { color: "#c62828" }, label: { show: true, position: "right" } }],
  });
  fillOptions(document.querySelector("#alerts-form [name=rule]"), body.rules_zh);
  fillOptions(document.querySelector("#alerts-form [name=review]"), body.reviews_zh);
  state.reviewNames = body.reviews_zh;
  const counts = el("p", { class: "muted", id: "alerts-review" }, "核查：",
    Object.entries(body.reviews_zh).map(([status, name]) => `${name} ${body.by_review[status] ?? 0}`).join(" · "));
  if (!body.alerts.length) return [counts, el("p", { class: "muted" }, "无告警 No alerts.")];
  return [counts, table("alerts-table", ["日期", "规则", "级别", "追溯码", "原因", "核查"], byOccurrence(body.alerts).map((group) => {
    const a = group[0];
    const shown = (a.uri || a.code || "").replace(/^urn:nmpa:code:/, "");
    const severity = SEVERITIES.find((s) => group.some((g) => g.severity === s)) || a.severity;
    const codes = new Set(group.map((g) => g.code_id)).size;
    return [a.time, unique(group.map((g) => g.rule_zh)).join("、"), group.find((g) => g.severity === severity).severity_zh,
      [a.uri ? el("a", { href: `trace?code=${encodeURIComponent(a.uri)}` }, shown) : shown,
        codes > 1 ? el("span", { class: "muted" }, ` 等 ${codes} 个码`) : null],
      unique(group.map((g) => g.reason_zh || g.evidence.reason || "").filter((r) => r)).join("；"),
      reviewCell(group)];
  })), pager(body)];
}

/** Which alerts of how many this page shows, and the buttons to the pages before and after. */
function pager(body) {
  const { offset } = state.alerts;
  return el("p", { class: "bar", id: "alerts-pages" },
    el("button", { type: "button", class: "link", "data-alerts-page": -1, disabled: offset === 0 }, "上一页"),
    el("span", { id: "alerts-range" }, `第 ${offset + 1}–${offset + body.alerts.length} 条，共 ${body.total} 条`),
    el("button", { type: "button", class: "link", "data-alerts-page": 1,
      disabled: offset + body.alerts.length >= body.total }, "下一页"));
}

/** Add the options a filter lacks (value → Chinese name), keeping the one chosen. */
function fillOptions(select, names) {
  const known = new Set([...select.options].map((o) => o.value));
  for (const [value, name] of Object.entries(names)) {
    if (!known.has(value)) select.append(el("option", { value }, name));
  }
}

/** The alerts under the chosen filters, one page (GET /alerts). */
function alertQuery(extra = {}) {
  const { rule, review, offset } = state.alerts;
  return { rule, review, offset, limit: ALERTS_PAGE, ...extra };
}

/** Load the chosen page; past the end (its last alerts were just reviewed away), the last one. */
function loadAlerts() {
  return panel("alerts", async () => {
    let body = await apiGet("/alerts", alertQuery());
    if (!body.alerts.length && state.alerts.offset > 0) {
      state.alerts.offset = Math.max(0, Math.floor((body.total - 1) / ALERTS_PAGE) * ALERTS_PAGE);
      body = await apiGet("/alerts", alertQuery());
    }
    return alertsPanels(body);
  });
}

/** Save the alerts under the chosen filters (up to 10,000) as 告警清单.xlsx. */
function exportAlerts() {
  return downloadFile("/alerts", alertQuery({ offset: 0, limit: 10000, format: "xlsx" }),
    "告警清单.xlsx", XLSX);
}

/** An alert row's finding (预警核查) and the accounts (情况说明) on it; a regulator's key gets
 * a button to record a finding, an enterprise's a button to give its account (the row's
 * alerts together). */
function reviewCell(group) {
  const { review, responses } = group[0];
  const text = review ? `${review.status_zh}${review.note ? `：${review.note}` : ""}` : state.reviewNames.open;
  const ids = group.map((g) => g.id).join(",");
  return el("span", { class: "review" }, el("span", { class: review ? `review-${review.status}` : "muted" }, text),
    responses.map((r) => el("span", { class: "response muted" }, `${r.enterprise}说明：${r.note}`)),
    state.reviews ? [" ", el("button", { type: "button", class: "link", "data-review": ids,
      "data-status": review ? review.status : "open" }, "核查")] : null,
    state.responds ? [" ", el("button", { type: "button", class: "link", "data-respond": ids }, "说明")] : null);
}

/** The finding form in place of a row's review cell. */
function reviewForm(button) {
  const select = el("select", { name: "status", "aria-label": "核查结论" },
    Object.entries(state.reviewNames).map(([status, name]) =>
      el("option", { value: status, selected: status === button.dataset.status }, name)));
  return el("form", { class: "review-form", "data-ids": button.dataset.review }, select,
    el("input", { name: "note", maxlength: 2000, placeholder: "核查情况", "aria-label": "核查情况" }),
    el("button", { type: "submit" }, "保存"));
}

/** The account form (情况说明) in place of a row's review cell. */
function responseForm(button) {
  return el("form", { class: "review-form", "data-ids": button.dataset.respond, "data-kind": "response" },
    el("input", { name: "note", maxlength: 2000, required: true, placeholder: "情况说明", "aria-label": "情况说明" }),
    el("button", { type: "submit" }, "提交"));
}

/** Record the finding (POST /alerts/{id}/review) or the account (…/response) on each alert of
 * the row, then reload. */
async function saveReview(form) {
  const note = form.elements.note.value.trim() || null;
  const [path, body] = form.dataset.kind === "response"
    ? ["response", { note }] : ["review", { status: form.elements.status.value, note }];
  await Promise.all(form.dataset.ids.split(",").map((id) =>
    apiPost(`/alerts/${id}/${path}`, JSON.stringify(body), "application/json")));
  await Promise.all([loadAlerts(), loadAudit()]);
}

/** Alerts in their order, those of one code at one event (a sale, a sighting) together — a
 * cloned pack sold far away fires 克隆码, 回流药 and 流向异常 on the same sale: one row — and
 * the codes one event flagged alike together too: a case's temperature excursion fires
 * 冷链超温 on every pack inside it, one row "等 N 个码". */
function byOccurrence(alerts) {
  const byCode = groupBy(alerts, (a) => `${a.code_id}:${a.event_id}`);
  return groupBy(byCode, (g) => `${g[0].event_id}:${unique(g.map((a) => a.rule)).sort()}`)
    .map((groups) => groups.flat());
}

/** Items in groups of equal ``keyOf``, in the order each key first appears. */
function groupBy(items, keyOf) {
  const groups = new Map();
  for (const item of items) {
    const key = keyOf(item);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  return [...groups.values()];
}

/** The distinct values, in order. */
function unique(values) {
  return [...new Set(values)];
}

function coveragePanel(body) {
  const rows = body.rows;
  const holder = document.getElementById("coverage-chart");
  holder.hidden = !rows.length;
  if (!rows.length) return el("p", { class: "muted", id: "coverage-total" }, "此密钥无可统计的药品：企业密钥统计本企业持有或生产的品种的追溯覆盖率。No packs of this key's products in view.");
  chart("coverage-chart", {
    tooltip: { valueFormatter: (v) => `${v}%` },
    grid: { left: 110, right: 56, top: 10, bottom: 30 },
    xAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    yAxis: { type: "category", data: rows.map((r) => regionName(r.region)) },
    series: [{ type: "bar", name: "complete", itemStyle: { color: "#1e7d3a" },
      data: rows.map((r) => Math.round((r.complete_share ?? 0) * 1000) / 10),
      label: { show: true, position: "right", formatter: "{c}%" } }],
  });
  const t = body.total;
  return el("p", { class: "muted", id: "coverage-total" },
    `全部 ${t.packs} 盒，全程可追溯 ${t.complete}（${((t.complete_share ?? 0) * 100).toFixed(1)}%），`
    + `无来源 ${t.no_origin}，在途超期 ${t.overdue_in_transit}，有告警 ${t.flagged}。`);
}

function recallsPanel(body) {
  if (!body.recalls.length) return el("p", { class: "muted" }, "无召回 No recalls.");
  return table("recalls-table", ["#", "级别", "原因", "发布", "批次", "状态"], body.recalls.map((r) => [
    el("button", { type: "button", class: "link", "data-recall": r.id, title: "召回进度" }, `#${r.id}`),
    `${r.class}级`, r.reason, r.created, (r.batches || []).join("、") || `${r.codes} 个码`,
    (r.closed_us ? "已关闭" : "进行中") + (r.may_close ? "" : " · 涉及本企业"),
  ]));
}

/** The reports in force (GET /supply/discontinuations leaves withdrawn ones out). */
function discontinuationsPanel(body, names) {
  const filed = body.discontinuations;
  if (!filed.length) return el("p", { class: "muted" }, "无停产报告 No discontinuation reports.");
  return table("discontinuations-table", ["药品", "上市许可持有人", "停产日期", "剩余库存（盒）", "原因", "报告时间"],
    filed.map((d) => [names[d.product] || d.product, d.holder, d.stop_date, d.remaining_packs,
      d.reason, d.filed_at.slice(0, 10)]));
}

/** The latest audit entries and, for a regulator's key, whether the hash chain is intact
 * (``chain`` null: this key may not check it). */
function auditPanel(body, chain) {
  const parts = [];
  if (chain) {
    parts.push(chain.intact
      ? el("p", { id: "audit-chain", class: "status ok" }, `审计链完整：${chain.entries} 条记录均未被篡改。`)
      : el("div", { id: "audit-chain", class: "problem", role: "alert" },
        `审计链断裂 Audit chain broken：${chain.breaks.map((b) => `${b.place} ${b.reason}`).join("；")}`));
  }
  if (!body.entries.length) return [...parts, el("p", { class: "muted" }, "无记录 No entries.")];
  const actor = (a) => (a ? `${a.enterpriseName || a.label || a.role}（${a.prefix}）` : "本地操作员");
  parts.push(table("audit-table", ["时间（北京）", "操作", "对象", "操作者"], body.entries.map((e) => [
    BEIJING.format(new Date(e.time)), ACTION_NAMES[e.action] || e.action, e.target || "", actor(e.actor),
  ])));
  parts.push(el("p", { class: "muted" }, `共 ${body.total} 条，显示最近 ${body.entries.length} 条。`));
  return parts;
}

/** (Re)load the audit panel. */
function loadAudit() {
  return panel("audit", async () => {
    const [entries, me] = await Promise.all([apiGet("/audit", { limit: 15 }), apiGet("/me")]);
    return auditPanel(entries, me.sees_all ? await apiGet("/audit/verify") : null);
  });
}

/** One recall's scope and progress (召回进度): who still holds how much, what is in transit,
 * where it was already dispensed. */
function recallDetail(r) {
  const p = r.progress;
  const parts = [
    el("h3", {}, `#${r.id} ${r.class_name || ""} · ${r.batches.map((b) => `${b.generic_name || b.product} ${b.lot}${b.codes ? "" : "（无记录）"}`).join("、")}`),
    el("p", { id: "recall-progress" },
      `范围 ${r.total} 个码；已退回 ${p.returned}，已销毁 ${p.destroyed}，未完成 ${p.outstanding}，`
      + (p.percent_complete === null ? "尚无可追回的码。" : `完成 ${p.percent_complete}%。`),
      r.closed_us ? " 已关闭。" : " ",
      r.closed_us || !r.may_close ? null
        : el("button", { type: "button", class: "link", "data-close-recall": r.id }, "结束召回 close"),
      " ",
      el("button", { type: "button", class: "link", "data-notice": r.id, title: "每个需通知的企业和场所：数量与处置要求" },
        "下载通知清单 Excel")),
  ];
  if (r.holders.length) {
    parts.push(el("h4", {}, "仍在持有 Still held"), table("recall-holders", ["持有者", "数量", "场所"],
      r.holders.map((h) => [h.holder, h.count,
        Object.entries(h.sites).map(([site, n]) => `${site} ${n}`).join("；")])));
  }
  if (r.in_transit.length) {
    parts.push(el("h4", {}, "在途 In transit"), table("recall-transit", ["发货方", "收货方", "数量", "发货日期"],
      r.in_transit.map((t) => [t.from, t.to, t.count, t.shipped])));
  }
  if (r.dispensed.length) {
    parts.push(el("h4", {}, "已售出 Dispensed"), table("recall-dispensed", ["机构", "码数", "销售次数", "最早", "最近"],
      r.dispensed.map((d) => [d.holder || d.site_name || d.site, d.codes, d.sales, d.first, d.last])));
  }
  return parts;
}

async function panel(id, load) {
  const target = document.getElementById(id);
  try {
    show(target, await load());
  } catch (err) {
    show(target, problemBox(err));
  }
}

async function refresh() {
  const form = document.getElementById("dash-form");
  storeKey(form.elements.key.value.trim());
  const asOf = form.elements.as_of.value;
  const url = new URL(window.location.href);
  if (asOf) url.searchParams.set("as_of", asOf);
  else url.searchParams.delete("as_of");
  history.replaceState(null, "", url);
  const button = document.getElementById("submit");
  button.disabled = true;
  document.body.dataset.loaded = "false";
  show(document.getElementById("message"));
  let names = {};
  try {
    const [master, me] = await Promise.all([apiGet("/masterdata", { section: "products" }), apiGet("/me")]);
    names = Object.fromEntries(master.products.map((p) => [p.product_code, p.generic_name]));
    state.reviews = me.role === "regulator" || me.role === "admin";
    state.responds = me.role === "enterprise";
  } catch (err) {
    show(document.getElementById("message"), problemBox(err));
    button.disabled = false;
    document.body.dataset.loaded = "true";
    return;
  }
  await Promise.all([
    panel("warnings", async () => warningsPanel(await apiGet("/supply/warnings", { as_of: asOf }), names)),
    loadAlerts(),
    panel("coverage", async () => coveragePanel(await apiGet("/coverage", { by: "province" }))),
    panel("recalls", async () => recallsPanel(await apiGet("/recalls"))),
    panel("discontinuations", async () =>
      discontinuationsPanel(await apiGet("/supply/discontinuations"), names)),
    loadAudit(),
  ]);
  document.body.dataset.loaded = "true";
  button.disabled = false;
}

/** Create a recall from the form (POST /recalls); its scope opens below the list. */
async function createRecall(form) {
  const message = document.getElementById("recall-message");
  try {
    const body = {
      class: Number(form.elements.class.value),
      reason: form.elements.reason.value.trim(),
      batches: lines(form.elements.batches.value),
      codes: lines(form.elements.codes.value),
    };
    const made = await apiPost("/recalls", JSON.stringify(body), "application/json");
    show(message);
    form.reset();
    show(document.getElementById("recall-detail"), recallDetail(made));
    await Promise.all([panel("recalls", async () => recallsPanel(await apiGet("/recalls"))), loadAudit()]);
  } catch (err) {
    show(message, problemBox(err));
  }
}

/** End a recall (POST /recalls/{id}/close) and show it closed. */
async function closeRecall(id) {
  await panel("recall-detail", async () =>
    recallDetail(await apiPost(`/recalls/${id}/close`, "", "application/json")));
  await Promise.all([panel("recalls", async () => recallsPanel(await apiGet("/recalls"))), loadAudit()]);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("dash-form");
  bindKeyField(form.elements.key);
  const given = new URLSearchParams(window.location.search).get("as_of");
  if (given) form.elements.as_of.value = given;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  document.getElementById("recalls").addEventListener("click", (event) => {
    const id = event.target.dataset && event.target.dataset.recall;
    if (id) panel("recall-detail", async () => recallDetail(await apiGet(`/recalls/${id}`)));
  });
  const alerts = document.getElementById("alerts");
  alerts.addEventListener("click", (event) => {
    const button = event.target.closest("[data-review]");
    if (button) button.closest("td").replaceChildren(reviewForm(button));
    const respond = event.target.closest("[data-respond]");
    if (respond) respond.closest("td").replaceChildren(responseForm(respond));
    const page = event.target.closest("[data-alerts-page]");
    if (page) {
      state.alerts.offset = Math.max(0, state.alerts.offset + Number(page.dataset.alertsPage) * ALERTS_PAGE);
      loadAlerts();
    }
  });
  const filters = document.getElementById("alerts-form");
  filters.addEventListener("change", () => {
    Object.assign(state.alerts, { rule: filters.elements.rule.value, review: filters.elements.review.value, offset: 0 });
    loadAlerts();
  });
  document.getElementById("alerts-export").addEventListener("click", () => guarded(exportAlerts));
  alerts.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(() => saveReview(event.target));
  });
  document.getElementById("recall-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createRecall(event.target);
  });
  document.getElementById("recall-detail").addEventListener("click", (event) => {
    const data = event.target.dataset || {};
    if (data.closeRecall) closeRecall(data.closeRecall);
    if (data.notice) {
      guarded(() => downloadFile(`/recalls/${data.notice}`, { format: "xlsx" },
        `召回${data.notice}通知清单.xlsx`, XLSX));
    }
  });
  if (storedKey()) refresh();
});
