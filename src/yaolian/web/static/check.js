// Receiving check (扫码验收): a scanner's list of codes verified at once with POST /verify,
// problems first, codes scanned twice flagged.
"use strict";

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

/** Whether a scan can be received: genuine and sellable, and not a case or pallet code that
 * holds nothing now (its packs were unpacked upstream: they are scanned one by one). */
function receivable(v) {
  return v.status === "genuine" && v.contents !== 0;
}

/** The verdict's name and style as the receiving check shows it. */
function checkVerdict(v) {
  return v.status === "genuine" && v.contents === 0 ? ["物流单元已拆空", "warn"] : verdictOf(v);
}

function summary(verdicts, repeated) {
  const counts = {};
  for (const v of verdicts) {
    const name = checkVerdict(v)[0];
    counts[name] = (counts[name] || 0) + 1;
  }
  const parts = Object.entries(counts).map(([name, n]) => `${name} ${n}`);
  if (repeated) parts.push(`重复扫描 ${repeated}`);
  const bad = verdicts.filter((v) => !receivable(v)).length;
  return `共 ${verdicts.length} 个码：${parts.join("，")}。` + (bad ? `${bad} 个不可入库。` : "全部可入库。");
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
    return { ok: receivable(v) && first === null, cells: [
      i + 1, el("span", { class: "code" }, codes[i]),
      el("span", { class: `status ${checkVerdict(v)[1]}`, "data-status": v.status },
        checkVerdict(v)[0]),
      first === null ? "" : `重复（第 ${first} 行）`,
      p.generic_name || "", b.lot || "", b.expiry || "", holder,
      el("span", {}, v.reason_zh || v.reason),  // a node: wraps, however short
    ] };
  });
  rows.sort((a, b) => Number(a.ok) - Number(b.ok));  // problems first, otherwise in scan order
  return table("check-table", ["#", "追溯码", "状态", "重复", "通用名称", "批号", "有效期至", "当前持有", "说明"],
    rows.map((r) => r.cells));
}

async function check() {
  const form = document.getElementById("check-form");
  const codes = lines(form.elements.codes.value);
  const button = document.getElementById("submit");
  storeKey(form.elements.key.value.trim());
  button.disabled = true;
  show(document.getElementById("message"));
  try {
    const verdicts = await verifyAll(codes);
    const repeated = codes.length - new Set(codes.map((c, i) => identity(c, verdicts[i]))).size;
    document.getElementById("result-card").hidden = false;
    show(document.getElementById("summary"), summary(verdicts, repeated));
    show(document.getElementById("result"), resultTable(codes, verdicts));
  } catch (err) {
    document.getElementById("result-card").hidden = true;
    show(document.getElementById("message"), problemBox(err));
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  bindKeyField(document.getElementById("key"));
  document.getElementById("check-form").addEventListener("submit", (event) => {
    event.preventDefault();
    check();
  });
});
