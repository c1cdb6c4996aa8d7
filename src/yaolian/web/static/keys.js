// 密钥管理: an enterprise makes a key per system that reports for it and revokes a leaked one;
// an admin manages every key; a regulator sees the list. The secret of a new key is shown once.
"use strict";

const state = { me: null };

/** Whether this key makes and revokes keys (an admin's, or an enterprise's for its own). */
function manages() {
  return state.me.role === "admin" || state.me.role === "enterprise";
}

function keysTable(keys) {
  if (!keys.length) return el("p", { class: "muted" }, "暂无密钥");
  return table("keys-table", ["前缀", "角色", "企业", "用途", "创建", "状态", ""], keys.map((k) => [
    k.prefix, ROLE_NAMES[k.role] || k.role,
    k.enterprise_name ? `${k.enterprise_name}（${k.enterprise}）` : k.enterprise || "",
    k.label || "", beijingDay(k.created),
    el("span", { class: `status ${k.revoked ? "bad" : "ok"}` }, k.revoked ? "已吊销" : "有效"),
    !k.revoked && manages()
      ? el("button", { type: "button", class: "link", "data-revoke": k.prefix }, "吊销")
      : "",
  ]));
}

async function refresh() {
  show(document.getElementById("keys"), keysTable((await apiGet("/keys")).keys));
  document.getElementById("keys-card").hidden = false;
  document.body.dataset.loaded = "true";
}

async function loadKey() {
  const me = await loadHolder();
  state.me = me;
  document.getElementById("create-card").hidden = !manages();
  for (const field of document.querySelectorAll(".admin-only")) field.hidden = me.role !== "admin";
  show(document.getElementById("new-key"));
  await refresh();
}

/** The new key, with the warning that it is shown only now. */
function newKeyBox(made) {
  return el("div", { class: "verdict ok", id: "made-key" },
    el("strong", {}, "新密钥（只显示这一次，请立即保存）"),
    el("code", { id: "made-key-text" }, made.key),
    el("p", { class: "muted" }, `前缀 ${made.prefix} · ${ROLE_NAMES[made.role] || made.role}`
      + (made.enterprise ? ` · ${made.enterprise}` : "")));
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("create-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const body = { label: form.elements.label.value.trim() };
      if (state.me.role === "admin") {
        body.role = form.elements.role.value;
        const uscc = form.elements.enterprise.value.trim();
        if (uscc) body.enterprise = uscc;
      }
      const made = await apiPost("/keys", JSON.stringify(body), "application/json");
      form.reset();
      show(document.getElementById("new-key"), newKeyBox(made));
      await refresh();
    });
  });
  // revoking takes a second click on the same button (确认吊销), no dialog
  document.getElementById("keys").addEventListener("click", (event) => {
    const button = event.target.closest("[data-revoke]");
    if (!button) return;
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "确认吊销？";
      return;
    }
    guarded(async () => {
      await apiCall(new URL(`/keys/${button.dataset.revoke}`, window.location.origin),
        { method: "DELETE" });
      await refresh();
    });
  });
  wireKeyForm(loadKey);
});
