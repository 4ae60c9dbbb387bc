// lanthorn studio: the page. Plain JS; uPlot (vendored) draws the plots.
// Everything the object says arrives over one websocket (/api/live); changes go through the
// JSON API with the session token and this page's id (the server lets one page hold the
// object at a time). Text from the object or the dataset is only ever set as textContent.
"use strict";

const TOKEN = document.querySelector('meta[name="lanthorn-token"]').content;
const CLIENT = Math.random().toString(16).slice(2, 10);
const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid != null) e.append(kid);
  return e;
};

const S = {  // what the page knows
  params: [], presets: [], locked: false, holder: null, connected: false, labels: [],
  model: null, models: [], busy: null, plots: {}, history: [], sessions: [],
};

// ------------------------------------------------------------------ API
async function api(path, body) {
  const opts = { headers: { "X-Lanthorn-Token": TOKEN, "X-Studio-Client": CLIENT } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let out;
  try { out = await res.json(); } catch (e) { out = { ok: false, error: `${res.status} ${res.statusText}` }; }
  if (res.status === 403) {
    out.error = "the studio refused this page (it restarted with a new token?): open the address 'lanthorn studio' printed";
  }
  out.status = res.status;
  return out;
}

function banner(text) {
  const b = $("#banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// ------------------------------------------------------------------ tabs
for (const t of document.querySelectorAll("button.tab")) {
  t.addEventListener("click", () => show(t.dataset.view));
}
function show(view) {
  for (const t of document.querySelectorAll("button.tab")) t.classList.toggle("active", t.dataset.view === view);
  for (const v of document.querySelectorAll("section.view")) v.hidden = v.id !== `view-${view}`;
  if (view === "teach") loadSessions();
  if (view === "voice") loadVoice();
  for (const p of Object.values(S.plots)) p.setSize(plotSize(p.root.parentElement));
}

// ------------------------------------------------------------------ See: ring
const N_PADS = 12;
function buildRing(svg, nLeds) {
  svg.textContent = "";
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const defs = mk("defs", {});
  const f = mk("filter", { id: "glow", x: "-50%", y: "-50%", width: "200%", height: "200%" });
  f.append(mk("feGaussianBlur", { stdDeviation: "5" }));
  defs.append(f);
  svg.append(defs);
  svg.append(mk("circle", { r: 98, fill: "#0c0c10" }));
  const pads = [];
  for (let i = 0; i < N_PADS; i++) {
    const a0 = (i * 30 - 12 - 90) * Math.PI / 180, a1 = (i * 30 + 12 - 90) * Math.PI / 180;
    const r0 = 34, r1 = 60;
    const d = `M ${r0 * Math.cos(a0)} ${r0 * Math.sin(a0)} L ${r1 * Math.cos(a0)} ${r1 * Math.sin(a0)} ` +
      `A ${r1} ${r1} 0 0 1 ${r1 * Math.cos(a1)} ${r1 * Math.sin(a1)} L ${r0 * Math.cos(a1)} ${r0 * Math.sin(a1)} ` +
      `A ${r0} ${r0} 0 0 0 ${r0 * Math.cos(a0)} ${r0 * Math.sin(a0)} Z`;
    const p = mk("path", { d, fill: "#34343e" });
    pads.push(p);
    svg.append(p);
  }
  const glows = [], chips = [];
  for (let j = 0; j < nLeds; j++) {
    const a = (j * 360 / nLeds - 90) * Math.PI / 180;
    const x = 80 * Math.cos(a), y = 80 * Math.sin(a);
    const g = mk("circle", { cx: x, cy: y, r: 9, fill: "#000", filter: "url(#glow)" });
    const c = mk("circle", { cx: x, cy: y, r: 3.5, fill: "#222" });
    glows.push(g); chips.push(c);
    svg.append(g); svg.append(c);
  }
  return { pads, glows, chips, n: nLeds };
}

// the ring on See, and a small one on Tune (a slider's effect is seen while it moves)
const RINGS = ["#ring", "#ring-tune"];

function drawRing(data) {
  const raw = data.leds || "";
  const hex = /^[0-9a-f]*$/i.test(raw) ? raw : "";
  const n = Math.floor(hex.length / 6);
  const v = data.values || {};
  S.rings = S.rings || {};
  for (const sel of RINGS) {
    let ring = S.rings[sel];
    if (!ring || ring.n !== (n || 24)) ring = S.rings[sel] = buildRing($(sel), n || 24);
    for (let j = 0; j < n; j++) {
      const r = parseInt(hex.slice(6 * j, 6 * j + 2), 16), g = parseInt(hex.slice(6 * j + 2, 6 * j + 4), 16),
        b = parseInt(hex.slice(6 * j + 4, 6 * j + 6), 16);
      ring.glows[j].setAttribute("fill", `rgb(${r},${g},${b})`);
      ring.chips[j].setAttribute("fill", `rgb(${Math.max(r, 30)},${Math.max(g, 30)},${Math.max(b, 30)})`);
    }
    for (let i = 0; i < N_PADS; i++) {
      ring.pads[i].setAttribute("fill", (v[`pad${i}`] || 0) > 0.15 ? "#ebebf5" : "#34343e");
    }
  }
}

// ------------------------------------------------------------------ See: bars and plots
function drawBars(container, probs, gesture) {
  const box = $(container);
  const names = Object.keys(probs || {});
  if (box.dataset.names !== names.join(",")) {
    box.textContent = "";
    for (const n of names) {
      box.append(el("div", { class: "bar", "data-label": n }, el("span", { text: n }),
        el("div", { class: "track" }, el("div", { class: "fill" })), el("span", { class: "val" })));
    }
    box.dataset.names = names.join(",");
  }
  const top = names.reduce((a, b) => (probs[a] >= probs[b] ? a : b), names[0]);
  for (const row of box.children) {
    const p = probs[row.dataset.label] || 0;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".val").textContent = `${(100 * p).toFixed(0)}%`;
    row.classList.toggle("top", row.dataset.label === top);
  }
}

function plotSize(container) {
  return { width: Math.max(300, (container.clientWidth || 800) - 10), height: 170 };
}

const PALETTE = ["#f0a24a", "#6fcf8f", "#6fa8ef", "#ef6f6f", "#c38fef", "#efe36f", "#4fd6d6",
  "#ef8fc3", "#a3a3a3", "#8fef6f", "#ffb37a", "#7a9cff", "#ffffff", "#ff5fa0"];

function makePlot(target, names, title, yRange) {
  const box = $(target);
  box.textContent = "";
  const series = [{}].concat(names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 1.2 })));
  const opts = {
    title, ...plotSize(box), series,
    scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
    axes: [{ stroke: "#9a9aa8", grid: { stroke: "#2a2c35" } }, { stroke: "#9a9aa8", grid: { stroke: "#2a2c35" } }],
    legend: { live: false },
    cursor: { show: false },
  };
  return new uPlot(opts, [[], ...names.map(() => [])], box);
}

const HISTORY_S = 10;
function pushSample(data) {
  const v = data.values || {};
  S.history.push([data.t || 0, v]);
  while (S.history.length && S.history[S.history.length - 1][0] - S.history[0][0] > HISTORY_S) S.history.shift();
  if ($("#view-see").hidden) return;
  // the plots follow the body's own channels (its profile's layout, as 'latest' names them)
  const groups = plotGroups(v);
  const key = JSON.stringify(groups.map((g) => g[0]));
  if (!S.plots.pads || S.plotKey !== key) {
    S.plotKey = key;
    S.plotNames = groups.map((g) => g[0]);
    S.plots.pads = makePlot("#plot-pads", ...groups[0]);
    S.plots.env = makePlot("#plot-env", ...groups[1]);
  }
  const t = S.history.map((h) => h[0]);
  const column = (n) => S.history.map((h) => h[1][n] ?? null);
  S.plots.pads.setData([t, ...S.plotNames[0].map(column)]);
  S.plots.env.setData([t, ...S.plotNames[1].map(column)]);
}

function plotGroups(values) {
  // [names, title, y range] for the two plots: a ring's pads, then distance, light and any
  // other channel; a body without pads (an IMU, a knob...): its channels, then the rest
  const names = Object.keys(values);
  const pads = names.filter((n) => /^pad\d+$/.test(n));
  const env = names.filter((n) => n === "distance" || n === "light");
  const other = names.filter((n) => !pads.includes(n) && !env.includes(n));
  if (pads.length) return [[pads, "touch pads", [0, 1.2]], [env.concat(other), other.length ? "approach, light and more" : "approach and light", other.length ? null : [0, 1]]];
  return [[other, "the body's channels", [-1, 1]], [env, "approach and light", [0, 1]]];
}

function onSample(data) {
  drawRing(data);
  drawBars("#probs", data.probs, data.gesture);
  drawBars("#probs-teach", data.probs, data.gesture);
  $("#mood").textContent = data.mood || "–";
  $("#gesture").textContent = data.gesture || "–";
  pushSample(data);
}

// ------------------------------------------------------------------ link, control, model
function setLink(ev) {
  const pill = $("#link");
  pill.className = `pill ${ev.state}`;
  pill.textContent = ev.detail || ev.state;
  const was = S.connected;
  S.connected = ev.state === "connected";
  if (S.connected && !was) refresh();
  updateEnabled();
}

function setControl(ev) {
  S.holder = ev.holder;
  const mine = !ev.holder || ev.holder === CLIENT;
  const pill = $("#control");
  if (mine) {
    pill.textContent = ev.pages > 1 ? `this page holds the object (${ev.pages} pages open)` : "this page holds the object";
    pill.className = "pill connected";
  } else {
    const since = ev.since ? new Date(ev.since * 1000).toLocaleTimeString() : "?";
    pill.textContent = `another studio page holds the object (since ${since}); this one only watches`;
    pill.className = "pill lost";
  }
  $("#take-over").hidden = mine;
  updateEnabled();
}

function setModel(model) {
  S.model = model;
  $("#model-name").textContent = (model && model.name) || "none (idle animation)";
}

function mayChange() { return S.connected && (!S.holder || S.holder === CLIENT); }

function updateEnabled() {
  const can = mayChange();
  const tune = can && !S.locked;
  for (const e of document.querySelectorAll("#params input, #params select, #params textarea, #params button"))
    e.disabled = !tune;
  for (const id of ["#preset-load", "#preset-delete", "#preset-save", "#save-startup", "#reset-all", "#preset-name", "#preset-list"])
    $(id).disabled = !tune;
  $("#lock-btn").disabled = !can || S.locked;
  $("#unlock-btn").disabled = !can || !S.locked;
  $("#pin").disabled = !can;
  $("#view-tune").classList.toggle("locked", S.locked);
  const idle = can && !S.busy;
  $("#record-btn").disabled = !idle;
  const holder = !S.holder || S.holder === CLIENT;  // training needs no object, only the right page
  $("#train-btn").disabled = !holder || !!S.busy;
  for (const e of document.querySelectorAll("#add-label, #new-label, .relabel-btn, .delete-btn")) e.disabled = !holder;
  for (const b of document.querySelectorAll(".push-btn")) b.disabled = !idle;
  $("#voice-train-btn").disabled = !holder || !!S.busy || !S.voiceCorpus;
  $("#voice-push-btn").disabled = !idle || !S.voice;
  for (const e of document.querySelectorAll(".weight-slider")) e.disabled = !holder || !!S.busy;
}

$("#take-over").addEventListener("click", async () => {
  const r = await api("/api/control", {});
  if (!r.ok) banner(r.error);
});

// ------------------------------------------------------------------ Tune
function paramControl(p) {
  const box = el("div", { class: "param", "data-name": p.name });
  box.append(el("div", { class: "name", text: p.name + (p.unit ? ` (${p.unit})` : "") }));
  box.append(el("div", { class: "help", text: `${p.description} — ${p.range}` }));
  const ctl = el("div", { class: "ctl" });
  const readback = el("span", { class: "readback", "data-readback": p.name });
  const err = el("div", { class: "err" });
  let input;
  const send = async (value) => {
    err.textContent = "";
    const r = await api("/api/set", { name: p.name, value });
    if (r.ok) {
      showValue(p, r.data.value);
    } else {
      err.textContent = r.error;
      showValue(p, p.value);  // the object kept its value
    }
  };
  if (p.type === "int" || p.type === "float") {
    const step = p.type === "int" ? 1 : ((p.max - p.min) / 200);
    input = el("input", { type: "range", min: p.min, max: p.max, step, "data-param": p.name });
    let timer = null;
    input.addEventListener("input", () => {
      readback.textContent = `→ ${fmt(p, Number(input.value))}`;
      clearTimeout(timer);
      timer = setTimeout(() => send(p.type === "int" ? parseInt(input.value, 10) : Number(input.value)), 120);
    });
  } else if (p.type === "bool") {
    input = el("input", { type: "checkbox", "data-param": p.name });
    input.addEventListener("change", () => send(input.checked));
  } else if (p.type === "choice") {
    input = el("select", { "data-param": p.name }, ...p.choices.map((c) => el("option", { value: c, text: c })));
    input.addEventListener("change", () => send(input.value));
  } else if (p.type === "phrases") {
    input = el("textarea", { "data-param": p.name, title: "one phrase a line" });
    input.addEventListener("change", () => send(input.value.split("\n").map((s) => s.trim()).filter(Boolean)));
  } else {
    input = el("input", { type: "text", "data-param": p.name });
    input.addEventListener("change", () => send(input.value));
  }
  ctl.append(input, readback);
  box.append(ctl, err);
  return box;
}

function fmt(p, v) {
  if (p.type === "float") return Number(v).toFixed(2).replace(/\.?0+$/, "") + (p.unit ? ` ${p.unit}` : "");
  if (p.type === "int") return `${v}${p.unit ? " " + p.unit : ""}`;
  if (p.type === "bool") return v ? "on" : "off";
  return "";
}

function showValue(p, value) {
  p.value = value;
  const input = document.querySelector(`[data-param="${p.name}"]`);
  const rb = document.querySelector(`[data-readback="${p.name}"]`);
  if (!input) return;
  if (p.type === "bool") input.checked = !!value;
  else if (p.type === "phrases") input.value = (value || []).join("\n");
  else input.value = value;
  rb.textContent = p.type === "int" || p.type === "float" || p.type === "bool" ? fmt(p, value) : "";
  rb.title = "as the object reports it";
}

function renderParams(params) {
  const box = $("#params");
  if (box.dataset.names !== params.map((p) => p.name).join(",")) {
    box.textContent = "";
    for (const p of params) box.append(paramControl(p));
    box.dataset.names = params.map((p) => p.name).join(",");
  }
  S.params = params;
  for (const p of params) showValue(p, p.value);
}

function renderPresets(names) {
  const sel = $("#preset-list");
  sel.textContent = "";
  for (const n of names) sel.append(el("option", { value: n, text: n }));
  if (!names.length) sel.append(el("option", { value: "", text: "(no presets saved)" }));
}

function renderLock(locked) {
  S.locked = !!locked;
  $("#lock-state").textContent = S.locked
    ? "Locked: the object refuses every change; the controls are read-only until it is unlocked with its PIN."
    : "Unlocked: changes apply live. Lock it with a PIN before the opening.";
  $("#lock-state").className = S.locked ? "bad" : "good";
  updateEnabled();
}

// A refresh starts on the websocket's open and again when the link connects; the first
// one's answer (taken while the object was still connecting: no model, no params) can
// arrive after the live "model" event and would paint stale state over it. Only the
// newest refresh's answer is applied.
let refreshes = 0;
async function refresh() {
  const mine = ++refreshes;
  const r = await api("/api/state");
  if (mine !== refreshes) return;
  if (!r.ok) { banner(r.error); return; }
  const d = r.data;
  setLink({ type: "link", ...d.link });
  setModel(d.model);
  setControl(d.control);
  if (d.params) renderParams(d.params);
  if (d.presets) renderPresets(d.presets);
  if (d.status) renderLock(d.status.locked);
  if (d.device_error) banner(d.device_error);
  renderData(d.data);
  renderModels(d.models);
  S.busy = d.busy;
  updateEnabled();
}

async function deviceAction(path, body, after) {
  const r = await api(path, body);
  if (!r.ok) banner(r.error); else banner("");
  if (after) await after(r);
  await refresh();
  return r;
}

$("#lock-btn").addEventListener("click", () => deviceAction("/api/lock", { pin: $("#pin").value }, () => { $("#pin").value = ""; }));
$("#unlock-btn").addEventListener("click", () => deviceAction("/api/lock", { pin: $("#pin").value, unlock: true }, () => { $("#pin").value = ""; }));
$("#preset-load").addEventListener("click", () => deviceAction("/api/preset", { action: "load", name: $("#preset-list").value }));
$("#preset-delete").addEventListener("click", () => deviceAction("/api/preset", { action: "delete", name: $("#preset-list").value }));
$("#preset-save").addEventListener("click", () => deviceAction("/api/preset", { action: "save", name: $("#preset-name").value.trim() }));
$("#save-startup").addEventListener("click", () => deviceAction("/api/save", {}));
$("#reset-all").addEventListener("click", () => deviceAction("/api/reset", { name: "all" }));

// ------------------------------------------------------------------ Teach: data
function renderData(d) {
  if (!d) return;
  S.labels = d.labels || [];
  $("#data-path").textContent = `in ${d.path}` + (d.exists ? "" : " (created by the first take)");
  $("#data-error").textContent = d.error || "";
  const sel = $("#record-label");
  const keep = sel.value;
  sel.textContent = "";
  for (const l of S.labels) sel.append(el("option", { value: l, text: l }));
  if (S.labels.includes(keep)) sel.value = keep;
}

async function loadSessions() {
  const r = await api("/api/sessions");
  const body = $("#sessions tbody");
  body.textContent = "";
  if (!r.ok) { $("#data-error").textContent = r.error; return; }
  $("#data-error").textContent = "";
  S.sessions = r.data;
  for (const s of r.data) {
    const p = s.provenance || {};
    const prov = [p.author && `by ${p.author}`, p.synthetic ? "synthetic" : (p.consent ? `consent: ${p.consent}` : "NO CONSENT RECORDED"),
      p.licence && `licence ${p.licence}`, p.date, p.device].filter(Boolean).join(" · ");
    const relabel = el("select", { class: "relabel" }, ...S.labels.map((l) => el("option", { value: l, text: l })));
    relabel.value = s.label;
    const row = el("tr", { "data-session": `${s.source}/${s.session}` },
      el("td", { text: s.source }), el("td", { text: s.session }), el("td", { text: s.label }),
      el("td", { text: String(s.seconds) }), el("td", { class: "prov", text: prov }),
      el("td", {},
        el("button", { text: "play", onclick: () => playSession(s) }), " ",
        relabel,
        el("button", { text: "relabel", class: "relabel-btn", onclick: () => editSession(s, { action: "relabel", label: relabel.value, old: s.label === relabel.value ? undefined : s.label }) }), " ",
        el("button", { text: "delete", class: "delete-btn", onclick: () => { if (confirm(`Delete ${s.source}/${s.session}? Its frames are removed from the dataset.`)) editSession(s, { action: "delete" }); } })));
    body.append(row);
  }
}

async function editSession(s, what) {
  const r = await api("/api/session", { source: s.source, session: s.session, ...what });
  if (!r.ok) banner(r.error); else banner("");
  await loadSessions();
}

async function playSession(s) {
  const r = await api(`/api/session?source=${encodeURIComponent(s.source)}&session=${encodeURIComponent(s.session)}`);
  if (!r.ok) { banner(r.error); return; }
  const d = r.data;
  const t = d.rows.map((_, i) => +(i / d.rate_hz).toFixed(3));
  const counts = {};
  for (const l of d.labels) counts[l] = (counts[l] || 0) + 1;
  $("#session-title").textContent = `${s.source}/${s.session}: ${d.rows.length} frames at ${d.rate_hz} Hz; labels ` +
    Object.entries(counts).map(([k, v]) => `${k} ×${v}`).join(", ");
  if (S.plots.session) S.plots.session.destroy();
  S.plots.session = makePlot("#plot-session", d.channels, `${s.session}`, null);
  const cols = d.channels.map((_, c) => []);
  S.plots.session.setData([t, ...d.channels.map((_, c) => d.rows.map((row) => row[c]))]);
  // play it back: reveal the take at its own speed
  const total = t[t.length - 1] || 0, t0 = performance.now();
  const step = () => {
    const now = (performance.now() - t0) / 1000;
    S.plots.session.setScale("x", { min: 0, max: Math.max(0.5, Math.min(now, total)) });
    if (now < total) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

$("#add-label").addEventListener("click", async () => {
  const label = $("#new-label").value.trim();
  const r = await api("/api/label", { label });
  if (!r.ok) { banner(r.error); return; }
  banner("");
  $("#new-label").value = "";
  await refresh();
  $("#record-label").value = label;
});

$("#record-btn").addEventListener("click", async () => {
  const label = $("#record-label").value, seconds = Number($("#record-seconds").value);
  const cd = $("#countdown");
  S.busy = "record";
  updateEnabled();
  cd.hidden = false;
  for (const n of [3, 2, 1]) { cd.textContent = String(n); await new Promise((res) => setTimeout(res, 700)); }
  cd.textContent = `perform "${label}" now`;
  $("#record-msg").textContent = "recording…";
  const r = await api("/api/record", { label, seconds, author: $("#record-author").value, consent: $("#record-consent").value });
  cd.hidden = true;
  S.busy = null;
  if (!r.ok) { $("#record-msg").textContent = r.error; $("#record-msg").className = "msg bad"; }
  else {
    $("#record-msg").textContent = `saved ${r.data.frames} frames as ${r.data.source}/${r.data.session}`;
    $("#record-msg").className = "msg good";
  }
  await refresh();
  await loadSessions();
});

// ------------------------------------------------------------------ Teach: train, push
$("#train-btn").addEventListener("click", async () => {
  $("#train-progress").value = 0;
  $("#quantize-progress").value = 0;
  const e = $("#train-epochs").value.trim();
  const r = await api("/api/train", { epochs: e ? Number(e) : null });
  if (!r.ok) { $("#train-msg").textContent = r.error; $("#train-msg").className = "msg bad"; return; }
  S.busy = "train";
  updateEnabled();
});

function renderModels(models) {
  S.models = models || [];
  const body = $("#models tbody");
  body.textContent = "";
  for (const m of S.models) {
    const quality = m.flags.length ? el("span", { class: "flag", text: "below the quality gates: " + m.flags.join("; ") })
      : el("span", { class: "good", text: "passes the quality gates" });
    const report = m.report ? el("a", { href: `/report?token=${encodeURIComponent(TOKEN)}&name=${encodeURIComponent(m.name)}`, target: "_blank", text: "report" }) : null;
    body.append(el("tr", { "data-model": m.name }, el("td", { text: m.name }), el("td", {}, quality),
      el("td", {}, report, " ", el("button", { class: "push-btn", "data-model": m.name, text: "push", onclick: () => pushModel(m.name, false) }))));
  }
  updateEnabled();
}

async function pushModel(name, force) {
  $("#push-flags").hidden = true;
  $("#push-progress").value = 0;
  const r = await api("/api/push", { name, force });
  if (r.status === 409 && r.flagged) {
    const box = $("#push-flags");
    box.textContent = "";
    box.append(el("div", { text: `${name} is below the quality gates:` }),
      el("ul", {}, ...r.flags.map((f) => el("li", { text: f }))),
      el("button", { id: "push-anyway", text: "push anyway", onclick: () => pushModel(name, true) }));
    box.hidden = false;
    return;
  }
  if (!r.ok) { $("#push-msg").textContent = r.error; $("#push-msg").className = "msg bad"; return; }
  S.busy = "push";
  updateEnabled();
}

function onJob(job) {
  if (job.kind === "train") {
    const bar = job.stage === "quantize" ? "#quantize-progress" : "#train-progress";
    if (job.stage === "quantize") $("#train-progress").value = 1;
    $(bar).value = job.progress || 0;
    const m = $("#train-msg");
    if (job.state === "failed") { m.textContent = job.error; m.className = "msg bad"; }
    else if (job.state === "done") {
      m.textContent = "";
      m.className = "msg good";
      m.append(`${job.message} — `, el("a", { href: `/report?token=${encodeURIComponent(TOKEN)}&name=${encodeURIComponent(job.result.name)}`, target: "_blank", id: "report-link", text: "open the report" }));
      if (job.result.flags.length) m.append(el("div", { class: "flag", text: "below the quality gates: " + job.result.flags.join("; ") }));
    } else { m.textContent = `${job.stage}: ${job.message}`; m.className = "msg"; }
  } else if (job.kind === "push") {
    $("#push-progress").value = job.progress || 0;
    const m = $("#push-msg");
    m.textContent = job.state === "failed" ? job.error : job.message;
    m.className = job.state === "failed" ? "msg bad" : job.state === "done" ? "msg good" : "msg";
    if (job.state === "done") $("#push-flags").hidden = true;
  } else if (job.kind === "voice" || job.kind === "voice-push") {
    onVoiceJob(job);
  } else if (job.kind === "record") {
    $("#record-progress").value = job.progress || 0;
  }
  if (job.state !== "running") {
    S.busy = null;
    updateEnabled();
    refresh();
  } else {
    S.busy = job.kind;
    updateEnabled();
  }
}

// ------------------------------------------------------------------ Voice
async function loadVoice() {
  const r = await api("/api/voice");
  if (!r.ok) { $("#voice-hint").textContent = r.error; return; }
  renderVoice(r.data);
  if (r.data.last) renderSamples(r.data.last);
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

function renderVoice(v) {
  S.voiceCorpus = v.exists && !v.error;
  $("#voice-path").textContent = v.path ? `(${v.path})` : "";
  $("#voice-hint").textContent = v.error || v.hint || `${v.lines} lines, ${v.chars} characters`;
  $("#voice-hint").className = v.error ? "msg bad" : "msg";
  const body = $("#voice-sources tbody");
  body.textContent = "";
  for (const [name, s] of Object.entries(v.sources || {})) {
    const out = el("output", { text: s.weight.toFixed(2) });
    const slider = el("input", { type: "range", class: "weight-slider", "data-source": name, min: 0, max: Math.max(3, s.weight), step: 0.05,
      value: s.weight, title: "how strongly this source flavours the voice, per character" });
    slider.addEventListener("input", () => { out.textContent = Number(slider.value).toFixed(2); });
    slider.addEventListener("change", () => setWeight(name, Number(slider.value)));
    body.append(el("tr", { "data-source": name }, el("td", { text: name }), el("td", { text: s.author || "–" }),
      el("td", { text: s.licence || "NONE", class: s.licence ? "" : "flag" }),
      el("td", { text: s.consent || "NONE", class: s.consent ? "" : "flag" }),
      el("td", { text: `${s.chars} (${pct(s.share_chars)})` }), el("td", {}, slider, " ", out),
      el("td", { class: "share", text: pct(s.share_effective) })));
  }
  const warn = $("#voice-warnings");
  warn.textContent = "";
  for (const w of v.warnings || []) warn.append(el("li", { text: w }));
  updateEnabled();
}

async function setWeight(source, weight) {
  const r = await api("/api/voice/weight", { source, weight });
  if (!r.ok) { $("#voice-hint").textContent = r.error; $("#voice-hint").className = "msg bad"; await loadVoice(); return; }
  renderVoice(r.data);
}

function renderSamples(result) {
  S.voice = result.name;
  $("#voice-name").textContent = `(${result.name})`;
  const body = $("#voice-samples tbody");
  body.textContent = "";
  for (const [mood, rows] of Object.entries(result.samples))
    for (const s of rows)
      body.append(el("tr", {}, el("td", { text: mood }), el("td", { text: String(s.seed) }),
        el("td", { class: "phrase", text: s.text }), el("td", { text: s.nearest_source || "–" })));
  updateEnabled();
}

$("#voice-train-btn").addEventListener("click", async () => {
  $("#voice-train-progress").value = 0;
  $("#voice-quantize-progress").value = 0;
  const e = $("#voice-epochs").value.trim();
  const r = await api("/api/voice/train", { epochs: e ? Number(e) : null });
  if (!r.ok) { $("#voice-msg").textContent = r.error; $("#voice-msg").className = "msg bad"; return; }
  S.busy = "voice";
  updateEnabled();
});

$("#voice-push-btn").addEventListener("click", async () => {
  $("#voice-push-progress").value = 0;
  const r = await api("/api/voice/push", { name: S.voice });
  if (!r.ok) { $("#voice-push-msg").textContent = r.error; $("#voice-push-msg").className = "msg bad"; return; }
  S.busy = "voice-push";
  updateEnabled();
});

function onVoiceJob(job) {
  if (job.kind === "voice") {
    const bar = job.stage === "quantize" ? "#voice-quantize-progress" : "#voice-train-progress";
    if (job.stage === "quantize") $("#voice-train-progress").value = 1;
    $(bar).value = job.progress || 0;
    const m = $("#voice-msg");
    m.textContent = job.state === "failed" ? job.error : job.state === "done" ? job.message : `${job.stage}: ${job.message}`;
    m.className = job.state === "failed" ? "msg bad" : job.state === "done" ? "msg good" : "msg";
    if (job.state === "done") renderSamples(job.result);
  } else {
    $("#voice-push-progress").value = job.progress || 0;
    const m = $("#voice-push-msg");
    m.textContent = job.state === "failed" ? job.error : job.message;
    m.className = job.state === "failed" ? "msg bad" : job.state === "done" ? "msg good" : "msg";
  }
}

// ------------------------------------------------------------------ live
function connectLive() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/live?token=${encodeURIComponent(TOKEN)}&client=${CLIENT}`);
  ws.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "watch") onSample(ev.data);
    else if (ev.type === "oled") { $("#oled").src = ev.png; $("#oled-tune").src = ev.png; }
    else if (ev.type === "link") setLink(ev);
    else if (ev.type === "control") setControl(ev);
    else if (ev.type === "model") setModel(ev.model);
    else if (ev.type === "job") onJob(ev.job);
    else if (ev.type === "notice") banner(ev.text);
  };
  ws.onclose = () => {
    setLink({ state: "lost", detail: "the studio server is gone (stopped?); retrying" });
    setTimeout(connectLive, 1500);
  };
  ws.onopen = () => refresh();
}

drawRing({});
connectLive();
