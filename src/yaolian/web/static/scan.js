// Consumer query page (药品追溯消费者查询): one code in, the public verdict out.
"use strict";

// the public's query: a key another page of this tab keeps (revoked, mistyped) is not sent
const PUBLIC = { keyed: false };
const RECALL_CLASS = { 1: "一级召回", 2: "二级召回", 3: "三级召回" };

function verdictBanner(v) {
  // a code issued here whose production was never reported is a data gap, not a fake
  const [zh, cls] = v.issued ? ["已赋码 · 企业未上报生产", "warn"] : verdictOf(v);
  return el("div", { class: `verdict ${cls}`, "data-status": v.status },
    el("strong", {}, zh), el("span", {}, v.reason_zh || v.reason));
}

function productCard(p) {
  return el("section", { class: "card product" }, el("h2", {}, "药品信息"), facts([
    ["通用名称", p.generic_name],
    ["商品名称", p.trade_name],
    ["剂型", p.dosage_form],
    ["制剂规格", p.strength],
    ["包装规格", p.pack_spec],
    ["批准文号", p.approval_no],
    ["上市许可持有人", p.holder],
    ["生产企业", p.manufacturer],
    ["药品标识码 / GTIN", p.product_code || p.gtin],
  ]));
}

function batchCard(b) {
  return el("section", { class: "card batch" }, el("h2", {}, "批次信息"), facts([
    ["生产批号", b.lot],
    ["生产日期", b.production_date],
    ["有效期至", b.expiry],
  ]));
}

function circulationCard(path) {
  const body = path.length
    ? el("ol", { class: "path" }, path.map((h) => el("li", {},
        `${h.from || "（未登记）"} → ${h.to || "（未登记）"}`,
        el("span", { class: "muted" },
          `　发货 ${h.shipped || "—"} · 收货 ${h.received || "在途"}`
          + (h.kind === "returning" ? " · 退货" : "")))))
    : el("p", { class: "muted" }, "暂无流通记录（尚未离开上市许可持有人）");
  return el("section", { class: "card circulation" }, el("h2", {}, "流通环节"), body);
}

function salesCard(v) {
  let summary;
  if (!v.sale_count) summary = "无销售记录";
  else if (v.sale_count === 1) summary = "已销售 1 次";
  else summary = `已销售 ${v.sale_count} 次（最近记录如下）`;
  const rows = v.sales.map((s) => el("li", {},
    `${s.date} · ${s.where || "—"}` + (s.units != null ? ` · 拆零 ${s.units}` : "")));
  return el("section", { class: "card sales" }, el("h2", {}, "销售记录"),
    el("p", {}, summary), rows.length ? el("ol", { class: "path" }, rows) : null);
}

function recallCard(r) {
  return el("section", { class: "card recall" }, el("h2", {}, "召回信息"), facts([
    ["召回级别", RECALL_CLASS[r.class] || r.class],
    ["召回原因", r.reason],
    ["发布日期", r.date],
  ]));
}

function render(v) {
  const parts = [verdictBanner(v)];
  if (v.recall) parts.push(recallCard(v.recall));
  if (v.contents != null) {
    parts.push(el("section", { class: "card contents" }, el("h2", {}, "物流单元"),
      el("p", {}, v.contents ? `内含 ${v.contents} 盒（含下级包装内）` : "已拆空")));
  }
  if (v.product) parts.push(productCard(v.product));
  if (v.batch && (v.batch.lot || v.batch.expiry)) parts.push(batchCard(v.batch));
  if (v.status !== "unknown") parts.push(circulationCard(v.circulation), salesCard(v));
  parts.push(el("p", { class: "muted" }, `查询码：${v.code}`));
  return parts;
}

/** Run ``work`` with the form's buttons disabled; its nodes (or the problem) become the result. */
async function answer(work) {
  const result = document.getElementById("result");
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    show(result, await work());
  } catch (err) {
    show(result, problemBox(err));
  } finally {
    button.disabled = false;
  }
}

function query(code) {
  // the code travels as one path segment: slashes of a Digital Link are escaped
  return answer(async () => render(await apiGet(`/verify/${encodeURIComponent(code)}`, {}, PUBLIC)));
}

/** A photo of the pack: the server reads every barcode in it and verifies each code. */
function queryPhoto(file) {
  return answer(async () => {
    const found = await apiPost(
      "/verify/image", file, file.type || "application/octet-stream", PUBLIC);
    if (!found.codes.length) {
      return el("div", { class: "problem", id: "no-barcode", role: "alert" },
        "未识别到条码：请对准包装上的追溯码，靠近、对焦后重拍。No barcode found in the photo.");
    }
    document.getElementById("code").value = found.codes[0].text;
    return found.codes.map((c) => el("section", { class: "read" },
      el("p", { class: "muted" }, `识别到 ${c.format}${c.gs1 ? " (GS1)" : ""}`),
      render(c.verdict)));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("scan-form");
  const input = document.getElementById("code");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const code = input.value.trim();
    if (!code) return;
    const url = new URL(window.location.href);
    url.searchParams.set("code", code);
    history.replaceState(null, "", url);
    query(code);
  });
  document.getElementById("photo").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) queryPhoto(file);
  });
  const given = new URLSearchParams(window.location.search).get("code");
  if (given) {
    input.value = given;
    query(given);
  }
});
