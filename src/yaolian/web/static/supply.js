// 供需对接: hospitals post what they need, distributors and manufacturers what they can supply;
// the board, the optimal matches and each party's own posts (closed when met).
"use strict";

// made: the products this key's enterprise holds (上市许可持有人) or makes, whose 停产报告 it files
const state = { me: null, products: new Map(), sites: new Map(), own: new Set(), made: [] };
const LOW_DAYS = 30; // days of supply below which a line offers to post a demand
const asOf = new URLSearchParams(window.location.search).get("as_of") || "";

/** A product code with its generic name when master data knows it. */
function productText(code) {
  const name = state.products.get(code);
  return name ? `${name}（${code}）` : code;
}

/** A site id with its registered name. */
function siteText(id) {
  return state.sites.get(id) || id;
}

/** Whether this key may close a post (its own site's, or any for a regulator). */
function mayClose(post) {
  return state.me.sees_all || state.own.has(post.site);
}

async function loadKey() {
  const me = await apiGet("/me");
  const master = await apiGet("/masterdata", { section: ["products", "sites"] });
  state.me = me;
  state.own = new Set(me.sites.map((s) => s.location_id));
  state.products = new Map();
  state.units = new Map();  // product → units per pack (粒, 片, 支 in a 盒)
  for (const p of master.products || []) {
    for (const code of [p.product_code, p.gtin]) {
      if (!code) continue;
      state.products.set(code, p.generic_name);
      if (p.units_per_pack > 1) state.units.set(code, p.units_per_pack);
    }
  }
  state.sites = new Map((master.sites || []).map((s) => [s.location_id, s.name]));
  state.made = productsMadeBy(master.products || [], me.enterprise ? me.enterprise.uscc : null);
  const choices = me.sees_all ? master.sites || [] : me.sites;
  for (const select of document.querySelectorAll("select.sites")) {
    show(select, choices.map((s) => el("option", { value: s.location_id }, s.name || s.location_id)));
  }
  show(document.getElementById("products"), [...state.products].map(([code, name]) =>
    el("option", { value: code }, name)));
  const who = me.enterprise
    ? `本企业：${me.enterprise.name}（${me.enterprise.uscc}），可为 ${me.sites.length} 个站点发布`
    : "监管密钥：可代任一站点发布，可关闭任一条";
  show(document.getElementById("whoami"), who);
  document.getElementById("forms").hidden = choices.length === 0;
  loadDiscontinueForm();
}

/** The 停产报告 form, for a key whose enterprise holds or makes products: those products, the
 * report dated today unless told. */
function loadDiscontinueForm() {
  const card = document.getElementById("discontinue-card");
  card.hidden = state.made.length === 0;
  if (card.hidden) return;
  const form = document.getElementById("discontinue-form");
  show(form.elements.product, state.made.map(productOption));
  form.elements.filed_on.value = dayAfter("", 0);
}

/** This enterprise's discontinuation reports (its own filings, withdrawn ones too), newest
 * first; one in force can be withdrawn as of today when production resumes (恢复生产). */
async function loadDiscontinuations() {
  if (document.getElementById("discontinue-card").hidden) return;
  const { discontinuations } = await apiGet("/supply/discontinuations", { withdrawn: true });
  const mine = discontinuations.filter((d) => d.holder === state.me.enterprise.uscc);
  show(document.getElementById("discontinuations"), mine.length
    ? table("discontinuation-table",
      ["#", "药品", "停产日期", "剩余库存（盒）", "原因", "报告日期", "状态"],
      mine.map((d) => [d.id, productText(d.product), d.stop_date, d.remaining_packs, d.reason,
        d.filed_at.slice(0, 10),
        d.withdrawn ? `已撤回（${d.withdrawn_at.slice(0, 10)} 恢复生产）`
          : el("button", { class: "link", type: "button", "data-withdraw": d.id }, "撤回（恢复生产）")]))
    : el("p", { class: "muted" }, "本企业尚无停产报告"));
}

function postTable(id, kind, posts, columns) {
  if (!posts.length) return el("p", { class: "muted" }, "暂无");
  return table(id, ["#", "站点", "药品", "数量", ...columns.map(([title]) => title), ""],
    posts.map((p) => [
      p.id, siteText(p.site), productText(p.product), p.quantity,
      ...columns.map(([, name]) => p[name] || ""),
      mayClose(p)
        ? el("button", { class: "link", type: "button", "data-close": `${kind}/${p.id}` }, "关闭")
        : "",
    ]));
}

function matchTable(answer, demands, offers) {
  const where = new Map([
    ...demands.map((d) => [`demand:${d.id}`, d.site]),
    ...offers.map((o) => [`offer:${o.id}`, o.site]),
  ]);
  const name = (ref) => (where.has(ref) ? siteText(where.get(ref)) : ref);
  const parts = [];
  parts.push(answer.matches.length
    ? table("match-table", ["供给方", "需求方", "药品", "数量", "预计到货", "在途天数", "有效期至"],
      answer.matches.map((m) => [name(m.source), name(m.sink), productText(m.product), m.quantity,
        m.arrives, m.lead_days, m.expiry || ""]))
    : el("p", { class: "muted" }, "暂无可匹配的供需"));
  const unmet = Object.entries(answer.unmet || {}).filter(([, n]) => n > 0);
  if (unmet.length) {
    parts.push(el("h3", {}, "未满足 Unmet"),
      table("unmet-table", ["需求方", "缺口（盒）"], unmet.map(([ref, n]) => [name(ref), n])));
  }
  return parts;
}

/** Packs on hand as a pharmacy counts them: whole packs, and what is left of an opened one
 * (拆零) in units — 11（另拆零 14/24）, not 11.58. */
function packsText(packs, product) {
  if (packs < 0) return String(+packs.toFixed(2));  // a book short of what was reported in
  const whole = Math.floor(packs + 1e-9);
  const per = state.units.get(product);
  const left = per ? Math.round((packs - whole) * per) : 0;
  if (!per || left === 0 || left === per) return String(left === per ? whole + 1 : whole);
  return `${whole}（另拆零 ${left}/${per}）`;
}

/** The day ``days`` after ``start`` (YYYY-MM-DD; today when empty), as YYYY-MM-DD. */
function dayAfter(start, days) {
  const now = new Date(); // today is the browser's calendar day
  const day = start ? new Date(`${start}T00:00:00Z`)
    : new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()));
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}

/** Fill the demand form for a low line: its site and product, a month's use less what is
 * there or coming, needed by the day stock runs out. */
function askFor(line) {
  const form = document.getElementById("demand-form");
  form.elements.site.value = line.where;
  form.elements.product.value = line.product;
  const short = Math.ceil(line.amc - line.on_hand - line.in_transit);
  form.elements.quantity.value = Math.max(1, short);
  form.elements.needed_by.value = dayAfter(asOf, Math.max(0, Math.floor(line.days_of_supply)));
  form.elements.quantity.focus();
}

/** An enterprise's own sites: stock, use and days of supply; a low line can become a demand. */
async function loadStock() {
  const card = document.getElementById("stock-card");
  card.hidden = state.me.sees_all; // a regulator has the dashboard for every site
  if (card.hidden) return;
  const answer = await apiGet("/supply/days-of-supply", { level: "site", as_of: asOf });
  show(document.getElementById("stock-note"),
    `截至 ${asOf || "今天"}：库存、在途与近三个月月均用量（AMC），可供天数低于 ${LOW_DAYS} 天的品种可直接发布需求。`);
  const rows = answer.lines.filter((x) => x.on_hand || x.in_transit || x.amc);
  if (!rows.length) {
    show(document.getElementById("stock"), el("p", { class: "muted" }, "本单位站点暂无库存记录"));
    return;
  }
  rows.sort((a, b) => (a.days_of_supply ?? Infinity) - (b.days_of_supply ?? Infinity));
  show(document.getElementById("stock"), table("stock-table",
    ["站点", "药品", "库存（盒）", "在途", "月均用量", "可供天数", ""],
    rows.map((x, index) => {
      const low = x.days_of_supply !== null && x.days_of_supply < LOW_DAYS;
      return [
        siteText(x.where), productText(x.product), packsText(x.on_hand, x.product), x.in_transit,
        +x.amc.toFixed(1),
        x.days_of_supply === null ? "—"
          : el("span", { class: low ? "status warn" : "status ok" }, x.days_of_supply.toFixed(0)),
        low ? el("button", { class: "link", type: "button", "data-ask": index }, "发布需求")
          : "",
      ];
    })));
  document.getElementById("stock").onclick = (event) => {
    const index = event.target.dataset && event.target.dataset.ask;
    if (index !== undefined) askFor(rows[Number(index)]);
  };
}

async function refresh() {
  const [demands, offers, matches] = await Promise.all([
    apiGet("/supply/demands"), apiGet("/supply/offers"), apiGet("/supply/matches"),
  ]);
  show(document.getElementById("demands"),
    postTable("demand-table", "demands", demands.demands, [["需要日期", "needed_by"]]));
  show(document.getElementById("offers"), postTable("offer-table", "offers", offers.offers,
    [["可供日期", "available_from"], ["有效期至", "expiry"], ["批号", "lot"]]));
  show(document.getElementById("matches"), matchTable(matches, demands.demands, offers.offers));
  document.getElementById("boards").hidden = false;
  document.getElementById("matches-card").hidden = false;
  document.body.dataset.loaded = "true";
}

/** The form's filled fields as a JSON body (number fields as numbers, empty ones left out). */
function formBody(form) {
  const body = {};
  for (const [name, value] of new FormData(form)) {
    if (value === "") continue;
    body[name] = form.elements[name].type === "number" ? Number(value) : value;
  }
  return body;
}

function wirePostForm(id, path) {
  const form = document.getElementById(id);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      await apiPost(path, JSON.stringify(formBody(form)), "application/json");
      form.reset();
      await refresh();
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wirePostForm("demand-form", "/supply/demands");
  wirePostForm("offer-form", "/supply/offers");
  document.getElementById("boards").addEventListener("click", (event) => {
    const target = event.target.closest("[data-close]");
    if (!target) return;
    guarded(async () => {
      await apiPost(`/supply/${target.dataset.close}/close`, "", "application/json");
      await refresh();
    });
  });
  document.getElementById("discontinuations").addEventListener("click", (event) => {
    const target = event.target.closest("[data-withdraw]");
    if (!target) return;
    guarded(async () => {
      await apiPost(`/supply/discontinuations/${target.dataset.withdraw}/withdraw`,
        JSON.stringify({ withdrawn_on: dayAfter("", 0) }), "application/json");
      await loadDiscontinuations();
    });
  });
  const discontinue = document.getElementById("discontinue-form");
  discontinue.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const body = { ...formBody(discontinue), holder: state.me.enterprise.uscc };
      await apiPost("/supply/discontinuations", JSON.stringify(body), "application/json");
      discontinue.reset();
      loadDiscontinueForm();
      await loadDiscontinuations();
    });
  });
  wireKeyForm(async () => {
    await loadKey();
    await Promise.all([loadStock(), refresh(), loadDiscontinuations()]);
  });
});
