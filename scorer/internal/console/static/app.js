// The operator console: four views over the scorer's HTTP API, chosen by
// the URL's fragment (#fleet, #asset/<id>, #alerts, #models). Alerts come
// from the server-sent event stream GET /v1/alerts/events and are kept in
// one map for every view; the fleet, asset and models views poll their
// endpoints. Every request sends the operator's token, when typed, as a
// bearer token: writes need the write token, and reads the read token on a
// scorer configured with one (http.read_token). The page
// first reads config.json, which names the trainer when its training
// plots are to be shown.
"use strict";

const POLL_MS = 3000;
// consoleConfig is what the scorer tells the page (config.json): the
// trainer's address, when its plots are to be shown.
let consoleConfig = {};
const alerts = new Map(); // id -> latest event
let timer = null;
let fleetSort = { key: "score", dir: -1 };
const fleetFilter = { site: "", state: "" };
const alertFilter = { severity: "", site: "", state: "open" };

// h builds an element; text children are text nodes, so nothing from the
// API is ever parsed as HTML.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

const fmtScore = (x) => (typeof x === "number" ? x.toFixed(3) : "");
const fmtTime = (s) => (s ? new Date(s).toLocaleString() : "");
function fmtAgo(s) {
  if (!s) return "";
  const d = (Date.now() - new Date(s).getTime()) / 1000;
  if (d < 60) return `${Math.max(0, Math.round(d))} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}
function fmtDuration(sec) {
  if (!(sec >= 0)) return "";
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.round(sec / 60)} min`;
  if (sec < 172800) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} d`;
}

function say(text, isError) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
  m.hidden = !text;
}

// authHeaders adds the operator's token, when typed, to headers.
function authHeaders(headers) {
  const token = document.getElementById("token").value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  return headers;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: authHeaders({ Accept: "application/json" }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${path}: ${r.status}`);
  return body;
}

// write sends a write request with the operator's bearer token.
async function write(path, body) {
  const token = document.getElementById("token").value.trim();
  if (!token) {
    document.getElementById("token").focus();
    throw new Error("this action needs the write token (PDM_API_TOKEN): type it in the header");
  }
  const r = await fetch(path, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify(body || {}),
  });
  const out = await r.json().catch(() => ({}));
  if (r.status === 401) throw new Error("the scorer refused the write token");
  if (!r.ok) throw new Error(out.error || `${path}: ${r.status}`);
  return out;
}

function operator() {
  const by = document.getElementById("operator").value.trim();
  if (!by) {
    document.getElementById("operator").focus();
    throw new Error("type your name as operator first: acknowledgements say who");
  }
  return by;
}

async function ack(id, newNormal) {
  try {
    const body = { by: operator() };
    if (newNormal) body.reason = "new_normal";
    const a = await write(`/v1/alerts/${encodeURIComponent(id)}/ack`, body);
    if (a && a.id) remember(a);
    say(newNormal ? `alert ${id} resolved as the new normal` : `alert ${id} acknowledged`);
    render();
  } catch (e) {
    say(e.message, true);
  }
}

// ---------------------------------------------------------------- alerts

function remember(a) {
  const old = alerts.get(a.id);
  if (!old || old.revision <= a.revision) alerts.set(a.id, a);
}

function updateCount() {
  let n = 0;
  for (const a of alerts.values()) if (a.state !== "resolved" && !a.acked) n++;
  document.getElementById("open-count").textContent = n ? String(n) : "";
}

// connect follows the alert event stream for as long as the page is open.
// It reads the stream with fetch rather than EventSource so the request
// can carry the token, and reconnects a second after the stream ends or
// fails (with a token typed meanwhile, if any).
async function connect() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      const r = await fetch("/v1/alerts/events", { headers: authHeaders({ Accept: "text/event-stream" }) });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        throw new Error(`alert stream: ${body.error || r.status}`);
      }
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r/g, "");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          dispatch(buf.slice(0, end), live);
          buf = buf.slice(end + 2);
        }
      }
    } catch (e) {
      say(e.message, true);
    }
    live.textContent = "reconnecting";
    live.className = "live off";
    await new Promise((done) => setTimeout(done, 1000));
  }
}

// dispatch handles one server-sent event: its event and data fields.
function dispatch(block, live) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue; // a comment
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (event === "alert") {
    remember(JSON.parse(data.join("\n")));
    updateCount();
    if (route().view === "alerts") renderAlerts();
  } else if (event === "ready") {
    live.textContent = "live";
    live.className = "live on";
    updateCount();
    if (route().view === "alerts") renderAlerts();
  }
}

function severityBadge(a) {
  if (a.state === "resolved") return h("span", { class: "badge resolved" }, "resolved");
  return h("span", { class: "badge " + a.severity }, a.severity);
}

function alertActions(a) {
  if (a.state === "resolved") return [];
  return [
    a.acked ? null : h("button", { class: "ack", "data-id": a.id, onclick: () => ack(a.id, false) }, "Acknowledge"),
    " ",
    h("button", { class: "newnormal", "data-id": a.id, onclick: () => ack(a.id, true), title: "resolve: the asset's current behaviour is normal" }, "New normal"),
  ];
}

function alertRows(list, withAsset) {
  return list.map((a) =>
    h("tr", { class: "alert-row", "data-id": a.id, "data-asset": a.asset, "data-state": a.state, "data-acked": String(a.acked) },
      withAsset ? h("td", {}, h("a", { href: "#asset/" + encodeURIComponent(a.asset) }, a.asset)) : null,
      withAsset ? h("td", {}, a.site) : null,
      h("td", {}, severityBadge(a)),
      h("td", { class: "num" }, fmtScore(a.score)),
      h("td", { class: "num" }, fmtScore(a.peak)),
      h("td", {}, (a.top_sensors || []).slice(0, 2).map((s) => `${s.name} ${Math.round(s.share * 100)}%`).join(", ")),
      h("td", {}, a.forecast ? fmtDuration(a.forecast.ttf_seconds) : ""),
      h("td", {}, fmtTime(a.first_reading_time)),
      h("td", { class: "acked-by" }, a.acked ? `${a.acked_by} ${fmtTime(a.acked_at)}` : ""),
      h("td", {}, a.state === "resolved" ? `${a.resolution || ""} ${fmtTime(a.resolved_at)}` : a.state),
      h("td", {}, `${a.model} ${a.version}`),
      h("td", {}, alertActions(a))));
}

function alertHead(withAsset) {
  return h("tr", {},
    withAsset ? [h("th", {}, "Asset"), h("th", {}, "Site")] : null,
    ["Severity", "Score", "Peak", "Top sensors", "Time to failure", "Since", "Acknowledged", "State", "Model", ""].map((t) => h("th", {}, t)));
}

function select(id, value, options, onchange) {
  return h("select", { id, onchange: (e) => onchange(e.target.value) },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

function renderAlerts() {
  const view = document.getElementById("view");
  const sites = [...new Set([...alerts.values()].map((a) => a.site))].sort();
  const list = [...alerts.values()]
    .filter((a) => (alertFilter.state !== "open" || a.state !== "resolved") &&
      (!alertFilter.severity || a.severity === alertFilter.severity) && (!alertFilter.site || a.site === alertFilter.site))
    .sort((a, b) => (b.last_reading_time || "").localeCompare(a.last_reading_time || ""));
  view.replaceChildren(
    h("h2", {}, "Alerts"),
    h("div", { class: "toolbar" },
      h("label", {}, "State ", select("alert-state", alertFilter.state, [["open", "open"], ["all", "all"]], (v) => { alertFilter.state = v; renderAlerts(); })),
      h("label", {}, "Severity ", select("alert-severity", alertFilter.severity, [["", "any"], ["warning", "warning"], ["major", "major"], ["critical", "critical"]], (v) => { alertFilter.severity = v; renderAlerts(); })),
      h("label", {}, "Site ", select("alert-site", alertFilter.site, [["", "any"], ...sites.map((s) => [s, s])], (v) => { alertFilter.site = v; renderAlerts(); })),
      h("span", { class: "muted" }, `${list.length} shown, live from the scorer's alert stream`)),
    h("table", { id: "alerts" }, h("thead", {}, alertHead(true)), h("tbody", {}, alertRows(list, true))));
}

// ----------------------------------------------------------------- fleet

const stateOrder = { alert: 0, stale: 1, warming_up: 2, normal: 3 };

function stateLabel(x) {
  if (x.stale_reason === "gateway_offline") return "gateway offline";
  return x.state.replace("_", " ");
}

function sortFleet(list) {
  const { key, dir } = fleetSort;
  const val = (x) => (key === "state" ? stateOrder[x.state] : key === "model" ? `${x.model} ${x.version}` : x[key]);
  return list.sort((a, b) => {
    const va = val(a), vb = val(b);
    return (va < vb ? -1 : va > vb ? 1 : 0) * dir || a.asset.localeCompare(b.asset);
  });
}

async function renderFleet() {
  const all = await getJSON("/v1/assets");
  const sites = [...new Set(all.assets.map((x) => x.site))].sort();
  const list = sortFleet(all.assets.filter((x) => (!fleetFilter.site || x.site === fleetFilter.site) && (!fleetFilter.state || x.state === fleetFilter.state)));
  const col = (key, label) => h("th", {
    class: "sort" + (fleetSort.key === key ? (fleetSort.dir > 0 ? " asc" : " desc") : ""), "data-key": key,
    onclick: () => { fleetSort = { key, dir: fleetSort.key === key ? -fleetSort.dir : key === "score" ? -1 : 1 }; renderFleet().catch(showError); },
  }, label);
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Fleet"),
    h("div", { class: "toolbar" },
      h("label", {}, "Site ", select("fleet-site", fleetFilter.site, [["", "any"], ...sites.map((s) => [s, s])], (v) => { fleetFilter.site = v; renderFleet().catch(showError); })),
      h("label", {}, "State ", select("fleet-state", fleetFilter.state, [["", "any"], ["alert", "alert"], ["stale", "stale"], ["warming_up", "warming up"], ["normal", "normal"]], (v) => { fleetFilter.state = v; renderFleet().catch(showError); })),
      h("span", { class: "muted" }, `${list.length} of ${all.assets.length} assets; stale after ${fmtDuration(all.stale_after_seconds)} without a reading`)),
    h("table", { id: "fleet" },
      h("thead", {}, h("tr", {}, col("asset", "Asset"), col("site", "Site"), col("state", "State"), col("score", "Score"),
        col("last_reading", "Last reading"), col("last_seen", "Scored"), col("model", "Model"), h("th", {}, "Top sensor"))),
      h("tbody", {}, list.map((x) => h("tr", { class: "asset-row" + (x.stale ? " stale" : ""), "data-asset": x.asset, "data-state": x.state },
        h("td", {}, h("a", { href: "#asset/" + encodeURIComponent(x.asset) }, x.asset)),
        h("td", {}, x.site),
        h("td", {}, h("span", { class: "badge " + x.state, title: x.stale_reason || "" }, stateLabel(x)),
          x.open_alert ? [" ", h("span", { class: "badge " + x.open_alert.severity }, x.open_alert.severity)] : null),
        h("td", { class: "num" }, fmtScore(x.score)),
        h("td", {}, fmtTime(x.last_reading)),
        h("td", {}, fmtAgo(x.last_seen)),
        h("td", {}, `${x.model} ${x.version}`),
        h("td", {}, x.contributions && x.contributions.length ? x.contributions[0].name : ""))))));
}

// ----------------------------------------------------------------- asset

// chart draws points over time as an SVG line: the score on a fixed 0..1
// axis so assets compare at a glance, readings in an alert as red dots;
// a sensor (opt.sensor) on the range of its own values, smaller.
function chart(points, opt) {
  const sensor = opt && opt.sensor;
  const W = sensor ? 320 : 640, H = sensor ? 120 : 200, L = 44, R = 8, T = 8, B = 22;
  const el = svg("svg", sensor ? { class: "chart small", viewBox: `0 0 ${W} ${H}`, "data-sensor": sensor } : { class: "chart", viewBox: `0 0 ${W} ${H}`, id: "score-chart" });
  const val = sensor ? (p) => p.sensors && p.sensors[sensor] : (p) => p.score;
  points = points.filter((p) => typeof val(p) === "number");
  if (!points.length) return el;
  let lo = 0, hi = 1;
  if (sensor) {
    lo = Math.min(...points.map(val));
    hi = Math.max(...points.map(val));
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  }
  const t0 = new Date(points[0].ts).getTime(), t1 = new Date(points[points.length - 1].ts).getTime();
  const x = (p) => L + ((new Date(p.ts).getTime() - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - Math.min(1, Math.max(0, (v - lo) / (hi - lo)))) * (H - T - B);
  const tick = (v) => (sensor ? Number(v.toPrecision(4)) : v.toFixed(1));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    el.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    el.append(svg("text", { class: "tick", x: 4, y: y(v) + 3 }, tick(v)));
  }
  el.append(svg("text", { class: "tick", x: L, y: H - 6 }, new Date(t0).toLocaleTimeString()));
  el.append(svg("text", { class: "tick", x: W - R - 60, y: H - 6 }, new Date(t1).toLocaleTimeString()));
  el.append(svg("polyline", { class: "line", points: points.map((p) => `${x(p).toFixed(1)},${y(val(p)).toFixed(1)}`).join(" ") }));
  for (const p of points) if (p.alert) el.append(svg("circle", { class: "hot", cx: x(p).toFixed(1), cy: y(val(p)).toFixed(1), r: 2 }));
  return el;
}

// sensorCharts draws one small chart per sensor in the history, by name.
function sensorCharts(history) {
  const names = [...new Set(history.flatMap((p) => Object.keys(p.sensors || {})))].sort();
  if (!names.length) return h("p", { class: "muted" }, "no readings kept");
  return h("div", { class: "sensors", id: "sensor-charts" }, names.map((n) => {
    const last = history.filter((p) => p.sensors && typeof p.sensors[n] === "number").pop();
    return h("figure", { class: "sensor" }, h("figcaption", {}, n, " ", h("span", { class: "muted" }, last ? Number(last.sensors[n].toPrecision(6)) : "")), chart(history, { sensor: n }));
  }));
}

async function renderAsset(id) {
  const a = await getJSON("/v1/assets/" + encodeURIComponent(id));
  for (const al of a.alerts) remember(al);
  const open = a.alerts.find((x) => x.state !== "resolved");
  const fc = a.forecast;
  document.getElementById("view").replaceChildren(
    h("h2", {}, h("a", { href: "#fleet" }, "Fleet"), " / ", a.asset, " ",
      h("span", { class: "badge " + a.state, id: "asset-state" }, stateLabel(a))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", {}, "Score, last ", a.history.length, " readings"), chart(a.history),
        h("h3", {}, "Sensors behind the current score"),
        h("table", { class: "bars", id: "contributions" }, h("tbody", {}, (a.contributions || []).map((c) =>
          h("tr", {}, h("td", {}, c.name), h("td", { class: "w" }, h("div", { class: "bar" })), h("td", { class: "num" }, `${Math.round(c.share * 100)}%`))))),
        h("h3", {}, "Sensor readings"), sensorCharts(a.history)),
      h("div", { class: "card" },
        h("dl", { class: "kv" },
          h("dt", {}, "Site"), h("dd", {}, a.site),
          h("dt", {}, "Score"), h("dd", {}, fmtScore(a.score)),
          h("dt", {}, "Last reading"), h("dd", {}, `${fmtTime(a.last_reading)} (seq ${a.seq})`),
          h("dt", {}, "Scored"), h("dd", {}, fmtAgo(a.last_seen)),
          a.gateway ? [h("dt", {}, "Gateway"), h("dd", { id: "gateway" }, `${a.gateway} ${a.gateway_status}${a.gateway_since ? ` since ${fmtTime(a.gateway_since)}` : ""}`)] : null,
          h("dt", {}, "Scored by"), h("dd", { id: "asset-model" }, `${a.model} ${a.version}`),
          h("dt", {}, "Bound now"), h("dd", {}, a.binding.model ? `${a.binding.model} ${a.binding.version}${a.binding.pinned ? " (pinned)" : ""}${a.binding.shadow_version ? `, shadow ${a.binding.shadow_version}` : ""}` : "online learner"),
          h("dt", {}, "Time to failure"), h("dd", { id: "forecast" }, fc ? `${fmtDuration(fc.ttf_seconds)} (${fmtDuration(fc.ttf_low_seconds)} – ${fmtDuration(fc.ttf_high_seconds)})` : "no forecast"),
          a.error ? [h("dt", {}, "Error"), h("dd", {}, a.error)] : null),
        h("h3", {}, "Operator"),
        open ? h("div", { id: "asset-actions" }, `${open.severity} alert since ${fmtTime(open.first_reading_time)}${open.acked ? `, acknowledged by ${open.acked_by}` : ""} `, alertActions(open))
          : h("div", { class: "muted" }, "no open alert"))),
    h("div", { class: "card wide" }, h("h3", {}, "Alert history"),
      h("table", { id: "asset-alerts" }, h("thead", {}, alertHead(false)), h("tbody", {}, alertRows(a.alerts, false)))));
  // Widths are set through the DOM: the content security policy allows
  // no inline style attributes.
  document.querySelectorAll("#contributions .bar").forEach((el, i) => { el.style.width = `${Math.max(1, a.contributions[i].share * 100)}%`; });
}

// ---------------------------------------------------------------- models

async function rollback(name) {
  try {
    const c = await write(`/v1/models/${encodeURIComponent(name)}/rollback`);
    say(`model ${name} rolled back: ${c.active[name]} is active`);
    render();
  } catch (e) {
    say(e.message, true);
  }
}

function fmtMetrics(m) {
  return Object.entries(m || {}).sort().map(([k, v]) => `${k} ${Math.abs(v) < 1000 ? Number(v.toPrecision(4)) : Math.round(v)}`).join(", ");
}

function lineage(v) {
  const t = v.training || {};
  const parts = [];
  if (v.parent_version) parts.push(`from ${v.parent_version}`);
  if (t.rows) parts.push(`${t.rows} rows`);
  if (t.from && !t.from.startsWith("0001")) parts.push(`${fmtTime(t.from)} – ${fmtTime(t.to)}`);
  if (t.assets && t.assets.length) parts.push(`assets ${t.assets.join(", ")}`);
  if (t.job) parts.push(`job ${t.job}`);
  if (t.data_hash) parts.push(`data ${t.data_hash.slice(0, 8)}`);
  return parts.join("; ");
}

// plotCache keeps each training plot's element across the view's polls,
// so an image is fetched from the trainer once, not every few seconds.
const plotCache = new Map();

// plot is one of the trainer's plots of a training job (GET
// /v1/jobs/{id}/{plot} on the trainer), linked to the full-size image.
function plot(job, name) {
  const src = `${consoleConfig.trainer_url}/v1/jobs/${encodeURIComponent(job)}/${name}.png`;
  let el = plotCache.get(src);
  if (!el) {
    const img = h("img", { src, alt: `${name} plot of job ${job}`, "data-plot": name, "data-job": job });
    el = h("a", { class: "plot", href: src, target: "_blank", rel: "noopener" }, img);
    img.addEventListener("error", () => el.replaceChildren(h("span", { class: "muted" }, `no ${name}.png for job ${job} from the trainer`)));
    plotCache.set(src, el);
  }
  return el;
}

function plotRow(v) {
  const job = v.training && v.training.job;
  if (!job || !consoleConfig.trainer_url) return null;
  return h("tr", { class: "plots", "data-version": v.version },
    h("td", { colspan: 6 }, h("span", { class: "muted" }, `training job ${job}: `), plot(job, "loss"), plot(job, "scores")));
}

// shadowReport is the comparison of a shadow version with the active one
// over the readings both scored (GET /v1/models/{name}/shadow).
function shadowReport(name, st) {
  if (!st) return null;
  const n = (x) => (typeof x === "number" ? Number(x.toPrecision(3)) : "");
  return h("div", { class: "shadow-report", "data-model": name, "data-count": String(st.count) },
    h("h4", {}, `Shadow ${st.shadow_version} beside active ${st.active_version || "none"}`),
    st.count ? h("dl", { class: "kv" },
      h("dt", {}, "Readings scored by both"), h("dd", { class: "compared" }, st.count),
      h("dt", {}, "Mean |score difference|"), h("dd", { class: "mean" }, n(st.mean_abs_diff)),
      h("dt", {}, "Largest |score difference|"), h("dd", {}, n(st.max_abs_diff)),
      h("dt", {}, "Alert disagreements"), h("dd", { class: "disagree" }, `${st.alert_disagreements} (${n((100 * st.alert_disagreements) / st.count)}% of readings)`))
      : h("p", { class: "muted" }, "no reading scored by both yet"));
}

async function renderModels() {
  const [m, fleet] = await Promise.all([getJSON("/v1/models"), getJSON("/v1/assets")]);
  // A shadow ended between the two requests answers 404: no report.
  const shadows = await Promise.all(m.models.map((model) => (model.shadow ? getJSON(`/v1/models/${encodeURIComponent(model.name)}/shadow`).catch(() => null) : null)));
  const cards = m.models.map((model, i) => {
    const prev = (model.history || [])[model.history ? model.history.length - 1 : 0];
    return h("div", { class: "card model", "data-model": model.name },
      h("h3", {}, model.name, " ", model.default ? h("span", { class: "badge acked" }, "default") : null, " ",
        h("span", { class: "muted" }, `active ${model.active || "none"}${model.shadow ? `, shadow ${model.shadow}` : ""}`), " ",
        prev ? h("button", { class: "rollback", "data-model": model.name, onclick: () => rollback(model.name) }, `Roll back to ${prev}`) : null),
      shadowReport(model.name, shadows[i]),
      h("table", {}, h("thead", {}, h("tr", {}, ["Version", "Kind", "Registered", "Metrics", "Lineage", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, model.versions.slice().reverse().flatMap((v) => [h("tr", { class: "version", "data-version": v.version },
          h("td", {}, v.version), h("td", {}, v.kind), h("td", {}, fmtTime(v.registered)),
          h("td", { class: "wrap" }, fmtMetrics(v.metrics)), h("td", { class: "wrap" }, lineage(v)),
          h("td", {}, v.version === model.active ? h("span", { class: "badge normal" }, "active") :
            v.version === model.shadow ? h("span", { class: "badge warming_up" }, "shadow") :
            model.refused && model.refused[v.version] ? h("span", { class: "badge critical" }, "refused") : "")), plotRow(v)]))));
  });
  document.getElementById("view").replaceChildren(
    h("h2", {}, "Models"),
    ...(m.models.length ? cards : [h("p", { class: "muted" }, "No model is registered: every asset is scored by the online learner.")]),
    h("h3", {}, "Active version per asset"),
    h("table", { id: "bindings" }, h("thead", {}, h("tr", {}, ["Asset", "Site", "Bound now", "Latest score by"].map((t) => h("th", {}, t)))),
      h("tbody", {}, fleet.assets.map((x) => h("tr", { "data-asset": x.asset },
        h("td", {}, h("a", { href: "#asset/" + encodeURIComponent(x.asset) }, x.asset)), h("td", {}, x.site),
        h("td", { class: "bound" }, x.binding.model ? `${x.binding.model} ${x.binding.version}${x.binding.pinned ? " (pinned)" : ""}` : "online learner"),
        h("td", {}, `${x.model} ${x.version}`))))));
}

// ---------------------------------------------------------------- router

function route() {
  const [view, ...rest] = (location.hash.replace(/^#/, "") || "fleet").split("/");
  return { view, arg: decodeURIComponent(rest.join("/")) };
}

function showError(e) { say(e.message, true); }

function render() {
  const { view, arg } = route();
  for (const n of ["fleet", "alerts", "models"]) document.getElementById("nav-" + n).classList.toggle("active", n === view || (n === "fleet" && view === "asset"));
  clearTimeout(timer);
  const poll = (fn) => {
    fn().then(() => { document.body.dataset.rendered = view; }).catch(showError)
      .finally(() => { if (route().view === view) timer = setTimeout(() => poll(fn), POLL_MS); });
  };
  switch (view) {
    case "alerts": renderAlerts(); document.body.dataset.rendered = view; break;
    case "asset": poll(() => renderAsset(arg)); break;
    case "models": poll(renderModels); break;
    default: poll(renderFleet);
  }
}

for (const id of ["operator", "token"]) {
  const el = document.getElementById(id);
  const store = id === "token" ? sessionStorage : localStorage;
  el.value = store.getItem("pdm-" + id) || "";
  el.addEventListener("change", () => store.setItem("pdm-" + id, el.value.trim()));
}
document.getElementById("who").addEventListener("submit", (e) => e.preventDefault());
window.addEventListener("hashchange", () => { say(""); render(); });
connect();
getJSON("config.json").then((c) => { consoleConfig = c; }).catch(showError).finally(render);
