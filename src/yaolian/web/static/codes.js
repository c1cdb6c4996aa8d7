// 赋码: a holder or manufacturer issues the trace codes of a batch and downloads the print
// lines (CSV) for its packaging line; the requests made so far can be downloaded again.
"use strict";

const state = { me: null };

/** A fresh request id for the form: the page, the day and the time. */
function newRequestId() {
  return `web-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "")}`;
}

/** Save the print lines of request ``id`` as ``{id}.csv``. */
function downloadCsv(id) {
  return downloadFile(`/codes/issue/${encodeURIComponent(id)}`, { format: "csv" },
    `${id.replace(/[^\w.-]+/g, "_")}.csv`, "text/csv");
}

function downloadButton(id) {
  return el("button", { type: "button", class: "link", "data-download": id }, "下载 CSV");
}

function issuedBox(result) {
  const codes = result.codes;
  return el("div", { class: "verdict ok", id: "issued-box" },
    el("strong", {}, result.reused
      ? `请求号 ${result.requestId} 已赋码：${codes.length} 个（原码，未重复赋码）`
      : `已赋码 ${codes.length} 个`),
    el("span", {}, `${result.product.generic_name} · ${result.product.product_code}`
      + (result.lot ? ` · 批号 ${result.lot}` : "")
      + (result.expiry ? ` · 有效期至 ${result.expiry}` : "")),
    el("p", { class: "muted" }, `首码 ${codes[0].code} · 末码 ${codes[codes.length - 1].code}`),
    downloadButton(result.requestId));
}

function requestsTable(requests) {
  if (!requests.length) return el("p", { class: "muted" }, "暂无赋码记录");
  return table("requests-table", ["请求号", "产品", "批号", "有效期至", "数量", "时间", ""],
    requests.map((r) => [r.requestId, r.product, r.lot || "", r.expiry || "", r.quantity,
      r.created.slice(0, 16).replace("T", " "), downloadButton(r.requestId)]));
}

async function refresh() {
  show(document.getElementById("requests"),
    requestsTable((await apiGet("/codes/issue", { limit: 50 })).requests));
  document.getElementById("requests-card").hidden = false;
  document.body.dataset.loaded = "true";
}

/** The products this key may issue codes for — its enterprise holds (上市许可持有人) or makes
 * them; an admin's every product — offered by code with their names as the field is typed. */
async function loadProducts(me) {
  const { products = [] } = await apiGet("/masterdata", { section: "products" });
  const mine = me.role === "admin" ? products
    : productsMadeBy(products, me.enterprise ? me.enterprise.uscc : null);
  show(document.getElementById("products"), mine.map(productOption));
}

async function loadKey() {
  const me = await loadHolder();
  state.me = me;
  const issues = ["enterprise", "admin"].includes(me.role);
  document.getElementById("issue-card").hidden = !issues;
  if (issues) await loadProducts(me);
  else show(document.getElementById("whoami"),
    `${keyHolder(me)}：可查看全部赋码记录；赋码由上市许可持有人或生产企业的密钥办理。`);
  document.getElementById("issue-form").elements.requestId.value = newRequestId();
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("issue-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const f = form.elements;
      const body = { requestId: f.requestId.value.trim(), product: f.product.value.trim(),
        quantity: Number(f.quantity.value) };
      if (f.lot.value.trim()) body.lot = f.lot.value.trim();
      if (f.expiry.value) body.expiry = f.expiry.value;
      const result = await apiPost("/codes/issue", JSON.stringify(body), "application/json");
      show(document.getElementById("issued"), issuedBox(result));
      f.requestId.value = newRequestId();
      await refresh();
    });
  });
  document.querySelector("main").addEventListener("click", (event) => {
    const button = event.target.closest("[data-download]");
    if (button) guarded(() => downloadCsv(button.dataset.download));
  });
  wireKeyForm(loadKey);
});
