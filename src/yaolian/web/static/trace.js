// Trace graph page: GET /trace/{code} drawn with Cytoscape.js, node details and the events.
"use strict";

const KINDS = {  // node kind → [colour, 中文]
  code: ["#1d5fa8", "追溯码"],
  lot: ["#6a3fa0", "批次"],
  class: ["#6a3fa0", "品种"],
  enterprise: ["#1e7d3a", "企业"],
  party: ["#7b8794", "参与方"],
  site: ["#b26a00", "场所"],
};
const EDGE_NAMES = {
  commissioned: "赋码", inside: "装入", handed_over: "交接", dispensed: "售出",
  transformed_into: "加工为", batch_of: "批次", held_by: "持有", dispensed_at: "售出于",
};
const STATUS_NAMES = {
  commissioned: "已赋码", active: "在库", in_transit: "在途", dispensed: "已售出",
  decommissioned: "已注销", destroyed: "已销毁", recalled: "已召回", expired: "已过期",
};
const FIELD_NAMES = {  // node facts and summary entries: 中文 and the JSON name
  key: "码 key", uri: "URI", status: "状态 status", product: "药品标识码 product", lot: "批号 lot",
  expiry: "有效期至 expiry", generic_name: "通用名 generic name", holder: "上市许可持有人 holder",
  manufacturer: "生产企业 manufacturer", approval_no: "批准文号 approval no.", name: "名称 name",
  role: "角色 role", owner: "所属企业 owner", handovers: "交接次数 hand-overs",
  containers: "所在容器 containers", codes: "追溯码数 codes", by_status: "按状态 by status",
  holders: "持有者 holders", dispensed_codes: "已售出码数 dispensed",
  dispensed_units: "拆零售出数 units sold split",
};
const BIG_GRAPH = 400;  // above this many nodes a cheaper layout than breadthfirst
const FEW_NODES = 12;  // a graph this small keeps its tiers top-down, every edge labelled

function nodeLabel(n) {
  switch (n.kind) {
    case "code": {
      const key = (n.key || n.id).replace(/^[a-z]:/, "");
      return n.generic_name ? `${n.generic_name}\n${key}` : key;
    }
    case "lot": return `批号 ${n.lot || ""}\n${n.product || ""}`;
    case "enterprise": return n.name || n.id;
    case "site": return n.name || n.uri || n.id;
    default: return n.name || n.key || n.uri || n.id;
  }
}

function edgeLabel(e) {
  const name = EDGE_NAMES[e.kind] || e.kind;
  if (e.kind === "handed_over") {
    if (e.count !== undefined) return `${name} ×${e.count}` + (e.first ? ` ${e.first}起` : "");
    return `${name} ${e.shipped || ""}` + (e.in_transit ? " 在途" : "");
  }
  if (e.kind === "inside") return `${name} ${e.since || ""}–${e.until || ""}`;
  if (e.kind === "held_by") return `${name} ${e.count}`;
  if (e.kind === "dispensed_at") return `${name} ${e.codes}码`;
  return `${name} ${e.date || e.first || ""}`.trim();
}

/** Dashed links from an edge's enterprise (or party) to the site the edge names in its
 * ``site`` fact (where a holder keeps the packs, where a batch was made). */
function siteLinks(graph, kinds) {
  const links = new Map();
  for (const e of graph.edges) {
    if (!e.site || !kinds.has(e.site)) continue;
    const owner = [e.to, e.from].find((id) => ["enterprise", "party"].includes(kinds.get(id)));
    if (owner && !links.has(`${owner} ${e.site}`)) {
      links.set(`${owner} ${e.site}`, { source: owner, target: e.site, kind: "at", label: "" });
    }
  }
  return [...links.values()];
}

function elementsOf(graph) {
  const kinds = new Map(graph.nodes.map((n) => [n.id, n.kind]));
  const nodes = graph.nodes.map((n) => ({
    group: "nodes",
    data: { ...n, label: nodeLabel(n), colour: (KINDS[n.kind] || KINDS.party)[0] },
    classes: n.id === graph.root ? "root" : "",
  }));
  const edges = graph.edges
    .filter((e) => kinds.has(e.from) && kinds.has(e.to))
    .map((e) => ({ ...e, source: e.from, target: e.to, label: edgeLabel(e) }));
  const links = siteLinks(graph, kinds).map((l) => ({ ...l, classes: "at" }));
  // a site just left of the enterprise that keeps it (the layout keeps this order in the tier
  // of holders), so that a hand-over drawn from that enterprise to the next misses the site
  const rank = new Map(nodes.map((n, i) => [n.data.id, 2 * i]));
  for (const l of links) rank.set(l.target, rank.get(l.source) - 1);
  nodes.sort((a, b) => rank.get(a.data.id) - rank.get(b.data.id));
  return [
    ...nodes,
    ...[...edges, ...links].map(({ classes, ...data }, i) => ({
      group: "edges", data: { ...data, id: `e${i}` }, classes: classes || "",
    })),
  ];
}

/** Whether any two nodes' labels lie over each other. */
function labelsOverlap(cy) {
  const boxes = cy.nodes().map(
    (n) => n.boundingBox({ includeNodes: false, includeEdges: false, includeLabels: true }));
  return boxes.some((a, i) => boxes.slice(i + 1).some(
    (b) => a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2));
}

/** A tier too wide to label side by side (a batch's many holders): the tiers run left to right,
 * each a column with its labels beside the nodes, and an edge's label shows only while the
 * pointer is on the edge or on one of its ends. */
function widen(cy, tiers) {
  cy.elements().addClass("wide");
  cy.layout({ ...tiers, transform: (node, p) => ({ x: p.y * 2, y: p.x / 2 }) }).run();
  const hover = (on) => (event) => {
    const edges = event.target.isNode() ? event.target.connectedEdges() : event.target;
    if (on) edges.addClass("shown");
    else edges.removeClass("shown");
  };
  cy.on("mouseover", "node, edge", hover(true));
  cy.on("mouseout", "node, edge", hover(false));
}

function draw(graph) {
  const big = graph.nodes.length > BIG_GRAPH;
  // a small graph is spaced by its labels, so that names side by side in a tier stay apart
  const few = graph.nodes.length <= FEW_NODES;
  const tiers = { name: "breadthfirst", directed: true, roots: [graph.root], spacingFactor: 1.1,
    nodeDimensionsIncludeLabels: few };
  const cy = cytoscape({
    container: document.getElementById("graph"),
    elements: elementsOf(graph),
    style: [
      { selector: "node", style: {
        "background-color": "data(colour)", label: "data(label)", "font-size": 10,
        "text-wrap": "wrap", "text-max-width": 160, "text-valign": "bottom", "text-margin-y": 4,
        "text-background-color": "#fff", "text-background-opacity": 0.85,
        "text-background-padding": 1, width: 18, height: 18 } },
      { selector: "node.wide", style: { "text-wrap": "none", "text-valign": "center",
        "text-halign": "right", "text-margin-x": 4, "text-margin-y": 0 } },
      { selector: "node.root", style: { "border-width": 4, "border-color": "#f2b705",
        width: 26, height: 26 } },
      { selector: "edge", style: { width: 1.5, "line-color": "#9aa5b1",
        "target-arrow-color": "#9aa5b1", "target-arrow-shape": "triangle",
        "curve-style": "bezier", label: big ? "" : "data(label)", "font-size": 9,
        "text-rotation": "none", "text-background-color": "#fff",
        "text-background-opacity": 0.85, "text-background-padding": 1 } },
      { selector: "edge[kind = 'handed_over']", style: { "line-color": "#1e7d3a",
        "target-arrow-color": "#1e7d3a", width: 2.5 } },
      { selector: "edge.at", style: { "line-style": "dashed", width: 1,
        "target-arrow-shape": "none", "line-color": "#c9a26b" } },
      { selector: "edge.wide", style: { label: "" } },
      { selector: "edge.wide.shown", style: { label: "data(label)", "z-index": 10 } },
      { selector: ":selected", style: { "border-width": 3, "border-color": "#c62828" } },
    ],
    layout: big
      ? { name: "concentric", concentric: (n) => (n.id() === graph.root ? 2 : 1), minNodeSpacing: 4 }
      : tiers,
  });
  if (!big && !few && labelsOverlap(cy)) widen(cy, tiers);
  cy.on("tap", "node", (event) => showNode(event.target.data()));
  window.yaolianGraph = cy;  // for the browser tests and the curious
  return cy;
}

function showNode(n) {
  const pairs = [["类型 kind", (KINDS[n.kind] || [null, n.kind])[1]]];
  for (const [name, value] of Object.entries(n)) {
    if (["id", "kind", "label", "colour"].includes(name) || value === null) continue;
    const shown = name === "status" ? `${STATUS_NAMES[value] || value} (${value})` : value;
    pairs.push([FIELD_NAMES[name] || name, typeof shown === "object" ? JSON.stringify(shown) : shown]);
  }
  show(document.getElementById("detail"), facts(pairs));
}

/** A summary value as text: counts by name read "name 3；other 5". */
function summaryText(name, value) {
  if (name === "status" && value) return `${STATUS_NAMES[value] || value} (${value})`;
  if (name === "status") return "尚无记录 (none on record)";  // not made yet (as of then)
  if (value === null || typeof value !== "object") return value;
  return Object.entries(value).map(([name, n]) => `${STATUS_NAMES[name] || name} ${n}`).join("；");
}

function summaryOf(graph) {
  const pairs = Object.entries(graph.summary || {}).map(([name, value]) => [
    FIELD_NAMES[name] || name, summaryText(name, value),
  ]);
  pairs.push(["节点 / 连线 / 事件 nodes / edges / events",
    `${graph.nodes.length} / ${graph.edges.length} / ${graph.events.length}`]);
  return facts(pairs);
}

function eventsTable(events, graph) {
  if (!events.length) {
    const batch = graph.root.startsWith("batch:");
    return el("p", { class: "muted" }, batch
      ? "批次追溯按企业和地点汇总，不逐条列出事件；查询单个追溯码可见其事件。A batch trace is summarised by holder and site; trace one code for its events."
      : "此密钥可见的事件为空。No events visible to this key.");
  }
  // names in Chinese, the CBV word or the location's URI on hover
  const named = (name, raw) => (raw ? el("span", { title: raw }, name || raw) : "");
  return table("events-table", ["#", "日期", "类型", "业务步骤", "处置状态", "地点"],
    events.map((e) => [e.id, e.date, e.type, named(e.biz_step_zh, e.biz_step),
      named(e.disposition_zh, e.disposition),
      named(e.site_name, e.biz_location || e.read_point)]));
}

function legend() {
  return Object.entries(KINDS).filter(([k]) => k !== "class").map(([, [colour, name]]) =>
    el("span", {}, el("i", { style: `background:${colour}` }), name));
}

async function run() {
  const form = document.getElementById("trace-form");
  const params = Object.fromEntries(new FormData(form));
  const message = document.getElementById("message");
  const button = document.getElementById("submit");
  storeKey(params.key.trim());
  const query = { direction: params.direction, lot: params.lot.trim() };
  if (params.at) query.at = new Date(params.at).toISOString();
  const url = new URL(window.location.href);
  const shown = { code: params.code.trim(), direction: query.direction, lot: query.lot };
  if (params.at) shown.at = params.at;  // the field's own local-time value
  url.search = new URLSearchParams(shown).toString();
  history.replaceState(null, "", url);
  const box = document.getElementById("graph");
  box.dataset.state = "loading";  // "done" once drawn or refused (the tests wait for it)
  button.disabled = true;
  show(message);
  try {
    const graph = await apiGet(`/trace/${encodeURIComponent(params.code.trim())}`, query);
    document.getElementById("summary-card").hidden = false;
    show(document.getElementById("summary"), summaryOf(graph));
    show(document.getElementById("legend"), legend());
    show(document.getElementById("events"), eventsTable(graph.events, graph));
    draw(graph);
    const root = graph.nodes.find((n) => n.id === graph.root);
    if (root) showNode(root);
  } catch (err) {
    // a refusal leaves no earlier answer on screen to be taken for this one
    if (window.yaolianGraph) window.yaolianGraph.destroy();
    window.yaolianGraph = null;
    document.getElementById("summary-card").hidden = true;
    show(document.getElementById("events"), el("p", { class: "muted" }, "—"));
    show(document.getElementById("detail"));
    show(message, problemBox(err));
  } finally {
    button.disabled = false;
    box.dataset.state = "done";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  bindKeyField(document.getElementById("key"));
  const form = document.getElementById("trace-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  const given = new URLSearchParams(window.location.search);
  for (const name of ["code", "lot", "direction", "at"]) {
    if (given.get(name)) form.elements[name].value = given.get(name);
  }
  if (given.get("code") && storedKey()) run();
});
