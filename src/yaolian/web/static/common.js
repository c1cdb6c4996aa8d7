// Shared helpers of the yaolian pages: API calls with problem+json errors, the API key kept
// for this browser tab, and DOM building that only ever sets text (never HTML from data).
"use strict";

const KEY_STORE = "yaolian-api-key";

const PAGES = [  // the pages' navigation: path, 中文
  ["/web/scan", "查询"],
  ["/web/check", "验收"],
  ["/web/sell", "销售"],
  ["/web/trace", "追溯图谱"],
  ["/web/dashboard", "监管看板"],
  ["/web/supply", "供需对接"],
  ["/web/codes", "赋码"],
  ["/web/keys", "密钥"],
];

/** Fill the page's ``<nav id="nav">`` with the pages, the current one marked. */
function fillNav() {
  const nav = document.getElementById("nav");
  if (!nav) return;
  show(nav, PAGES.map(([path, name]) =>
    el("a", { href: path, "aria-current": path === window.location.pathname ? "page" : null }, name)));
}
document.addEventListener("DOMContentLoaded", fillNav);

const ROLE_NAMES = { enterprise: "企业", regulator: "监管", admin: "管理员" };

/** Whose key ``/me`` describes: the enterprise and the key's role, in words. */
function keyHolder(me) {
  const role = `${ROLE_NAMES[me.role] || me.role}密钥`;
  return me.enterprise ? `本企业：${me.enterprise.name}（${me.enterprise.uscc}）· ${role}` : role;
}

/** Load whose key this is (``GET /me``) and say it in ``#whoami``; the page is marked as
 * loading until the caller's refresh is done. */
async function loadHolder() {
  document.body.dataset.loaded = "false";
  const me = await apiGet("/me");
  show(document.getElementById("whoami"), keyHolder(me));
  return me;
}

/** Verdict statuses of ``/verify``: [中文, severity class ok / warn / bad]. */
const VERDICTS = {
  genuine: ["正品 · 可销售", "ok"],
  unknown: ["查无此码 · 疑似假冒", "bad"],
  recalled: ["已召回 · 请勿使用", "bad"],
  expired: ["已过期", "bad"],
  destroyed: ["已销毁", "bad"],
  decommissioned: ["已注销", "warn"],
  dispensed: ["已售出", "warn"],
  in_transit: ["在途", "warn"],
};

/** [中文, class] of a verdict (``/verify`` answer): by its status — an unknown one shown as
 * itself, as a warning — but a text that is no code at all is a misread, not a fake. */
function verdictOf(v) {
  if (v.malformed) return ["码有误 · 请核对", "bad"];
  return VERDICTS[v.status] || [v.status, "warn"];
}

/** The products (master data) an enterprise holds (上市许可持有人) or makes, by its USCC. */
function productsMadeBy(products, uscc) {
  return products.filter((p) => uscc && (p.holder_uscc === uscc || p.manufacturer_uscc === uscc));
}

/** A product as an option of a product field: its code, named by 通用名, strength and pack. */
function productOption(p) {
  return el("option", { value: p.product_code },
    [p.generic_name, p.strength, p.pack_spec].filter(Boolean).join(" "));
}

/** The calendar day in Beijing (UTC+8) of an ISO 8601 time, as YYYY-MM-DD. */
function beijingDay(iso) {
  return new Date(Date.parse(iso) + 8 * 3600e3).toISOString().slice(0, 10);
}

/** The API key typed into this tab (sessionStorage), or "". */
function storedKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

/** Keep (or forget, when empty) the API key for this tab. */
function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

/** What an HTTP status means to the person at the page (the API's own words follow). */
const STATUS_ZH = {
  0: "连不上服务器", 400: "请求有误", 401: "密钥无效、已吊销或未填写", 403: "此密钥无权进行该操作",
  404: "未找到", 406: "不支持所请求的格式", 409: "与已有记录冲突", 413: "内容过大",
  415: "不支持的文件格式", 422: "输入有误", 429: "请求过于频繁，请稍后再试",
  503: "服务繁忙，请稍后再试",
};

/** An error from the API: what its status means in Chinese, then the problem+json title,
 * detail and place of the fault. */
class ApiProblem extends Error {
  constructor(status, problem) {
    const place = problem.place ? ` (${problem.place})` : "";
    const zh = STATUS_ZH[status] || (status >= 500 ? "服务器出错" : "");
    super(`${zh ? zh + " · " : ""}${problem.title || "HTTP " + status}: ${problem.detail || ""}${place}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Call this server's API (with the stored key when there is one, unless ``keyed`` is false);
 * the answer as ``read`` gives it (JSON unless told: ``(r) => r.text()`` for CSV). */
async function apiCall(url, init = {}, read = (response) => response.json(), { keyed = true } = {}) {
  const headers = { Accept: "application/json", ...(init.headers || {}) };
  const key = keyed ? storedKey() : "";
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(url, { ...init, headers });
  } catch (err) {
    throw new ApiProblem(0, { title: "No answer from the server", detail: String(err) });
  }
  const body = await (response.ok ? read(response) : response.json()).catch(() => ({}));
  if (!response.ok) throw new ApiProblem(response.status, body);
  return body;
}

/** This server's URL of ``path`` with query parameters (empty ones left out; a list repeats
 * one). */
function apiUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") url.searchParams.append(name, one);
    }
  }
  return url;
}

/** GET a JSON resource with query parameters (as apiUrl takes them); ``options.keyed`` false
 * asks as the public, without this tab's key. */
function apiGet(path, params = {}, options = {}) {
  return apiCall(apiUrl(path, params), {}, undefined, options);
}

/** POST a body (a file, a string) of the given media type; ``options`` as for apiGet. */
function apiPost(path, body, mediaType, options = {}) {
  return apiCall(new URL(path, window.location.origin), {
    method: "POST", body, headers: { "Content-Type": mediaType },
  }, undefined, options);
}

/** Save what ``path`` answers (fetched with the key; ``params`` as apiUrl takes them) as a
 * file. */
async function downloadFile(path, params, filename, mediaType) {
  const blob = await apiCall(apiUrl(path, params), { headers: { Accept: mediaType } }, (r) => r.blob());
  const link = el("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** The lines of a text (a scanner's list, a textarea): trimmed, empty ones left out, in order. */
function lines(text) {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line);
}

/** A new element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the contents of ``target`` with ``nodes``. */
function show(target, ...nodes) {
  target.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
}

/** A problem box for a failed call. */
function problemBox(err) {
  return el("div", { class: "problem", role: "alert" }, err.message || String(err));
}

/** Run ``work``; a failure shows as a problem box in ``#message``, success clears it. */
async function guarded(work) {
  const message = document.getElementById("message");
  try {
    await work();
    show(message);
  } catch (err) {
    show(message, problemBox(err));
  }
}

/** A table: header texts, rows of cells (text or nodes); short text cells do not wrap. Each
 * cell carries its header (``data-label``): on a phone's or a handheld scanner's narrow screen
 * a row reads as a card of labelled lines (yaolian.css). */
function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c, i) =>
      el("td", { class: c instanceof Node || String(c).length > 24 ? null : "nowrap",
        "data-label": headers[i] || null }, c))))));
}

/** A definition list of [label, value] pairs, leaving out empty values. */
function facts(pairs) {
  const list = el("dl", { class: "facts" });
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(el("dt", {}, label), el("dd", {}, value));
  }
  return list;
}

/** Wire a page's key form (``#key-form`` with ``#key``): on submit the key is kept for this
 * tab and ``load`` runs (a failure shown in ``#message``); at once when the tab has a key. */
function wireKeyForm(load) {
  const key = document.getElementById("key");
  bindKeyField(key);
  const run = () => guarded(async () => {
    storeKey(key.value.trim());
    await load();
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  if (key.value) run();
}

/** Wire the API-key field of a page: filled from and saved to this tab's storage. */
function bindKeyField(input) {
  input.value = storedKey();
  input.addEventListener("change", () => storeKey(input.value.trim()));
}
