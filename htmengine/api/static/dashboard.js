// htmengine dashboard: overview of every metric (#/) and one metric's chart (#/metric/NAME).
// Plain script, no build step; uPlot (vendor/) draws the chart. Render times are kept in
// window.dashboard.timings (milliseconds) for bench/dashboard_render.py; <body
// data-pending> counts the API requests in flight.
"use strict";

const API = "/api/v1";
const REFRESH_MS = 10000;
const RANGES = { hour: 3600, day: 86400, week: 604800, all: null };
const SPARK_W = 140, SPARK_H = 28;
const $ = (id) => document.getElementById(id);

const dashboard = {
  timings: {},
  overview: null,
  sparks: {},
  threshold: null,
  timer: null,
  chart: null,
  metric: null,
  series: null,
  range: "all",
};
window.dashboard = dashboard;

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(x, digits = 4) {
  if (x === null || x === undefined) return "";
  return Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3)
    ? x.toExponential(2) : String(+x.toFixed(digits));
}

function utc(epoch) {
  return epoch === null ? "" : new Date(epoch * 1000).toISOString().slice(0, 19).replace("T", " ");
}

function isoToEpoch(iso) {
  if (!iso) return null;
  return Math.round(Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z") / 1000);
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const flags = document.body.dataset;
  flags.pending = String(+(flags.pending || 0) + 1);
  let response, text;
  try {
    response = await fetch(API + path, init);
    text = await response.text();
  } finally {
    flags.pending = String(+flags.pending - 1);
  }
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new Error((data && data.error) || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}

// ------------------------------------------------------------------------- overview

function sparkline(spark, threshold) {
  const n = spark.v.length;
  let lo = Infinity, hi = -Infinity;
  for (const v of spark.v) { if (v !== null) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  if (lo === Infinity) return "";
  const dy = hi > lo ? hi - lo : 1;
  const x = (i) => ((i / Math.max(1, n - 1)) * (SPARK_W - 4) + 2).toFixed(1);
  const y = (v) => (SPARK_H - 3 - ((v - lo) / dy) * (SPARK_H - 6)).toFixed(1);
  const points = [];
  let dots = "";
  for (let i = 0; i < n; i++) {
    const v = spark.v[i];
    if (v === null) continue;
    points.push(`${x(i)},${y(v)}`);
    if (spark.a[i] !== null && spark.a[i] >= threshold) {
      dots += `<circle cx="${x(i)}" cy="${y(v)}" r="2.5"/>`;
    }
  }
  return `<svg class="spark" width="${SPARK_W}" height="${SPARK_H}"><polyline points="${points.join(" ")}"/>${dots}</svg>`;
}

function sparkCell(uid, threshold) {
  const spark = dashboard.sparks[uid];
  return spark ? sparkline(spark, threshold) : "";
}

function overviewRow(m, threshold) {
  const likelihood = m.lastAnomalyLikelihood;
  const hot = likelihood !== null && likelihood >= threshold ? " hot" : "";
  const reason = m.status === "ACTIVE" ? "" : `<span class="reason">${esc(m.reason)}</span>`;
  return `<tr data-name="${esc(m.name)}" data-status="${m.status}">` +
    `<td><a href="#/metric/${encodeURIComponent(m.name)}">${esc(m.name)}</a></td>` +
    `<td><span class="badge ${m.status}">${m.status}</span>${reason}</td>` +
    `<td class="num">${num(m.lastValue)}</td>` +
    `<td class="num likelihood${hot}">${num(likelihood, 5)}</td>` +
    `<td class="spark" data-uid="${m.uid}">${sparkCell(m.uid, threshold)}</td>` +
    `<td>${esc((m.lastTimestamp || "").replace("T", " ").replace("Z", ""))}</td></tr>`;
}

function byAnomaly(a, b) {
  const la = a.lastAnomalyLikelihood === null ? -1 : a.lastAnomalyLikelihood;
  const lb = b.lastAnomalyLikelihood === null ? -1 : b.lastAnomalyLikelihood;
  if (la !== lb) return lb - la;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function renderOverview() {
  const data = dashboard.overview;
  if (!data) return;
  const started = performance.now();
  const needle = $("filter").value.trim().toLowerCase();
  const shown = data.metrics.filter((m) => !needle || m.name.toLowerCase().includes(needle));
  shown.sort(byAnomaly);
  const tbody = document.querySelector("#overview tbody");
  tbody.innerHTML = shown.map((m) => overviewRow(m, data.threshold)).join("");
  $("overview-count").textContent = needle
    ? `${shown.length} of ${data.total} metrics` : `${data.total} metrics`;
  $("overview-empty").hidden = data.total > 0;
  dashboard.timings.overviewRender = performance.now() - started;
}

async function loadOverview() {
  const started = performance.now();
  // both requested at once: the table shows first, the sparklines are drawn into it
  const sparks = api("GET", "/dashboard/sparklines");
  sparks.catch(() => {});
  try {
    dashboard.overview = await api("GET", "/dashboard/overview");
    dashboard.threshold = dashboard.threshold ?? dashboard.overview.threshold;
    const fetched = performance.now();
    renderOverview();
    $("overview-updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    showError("");
    dashboard.timings.overviewFetch = fetched - started;
    dashboard.timings.overview = performance.now() - started;
    document.body.dataset.overviewLoads = String(+(document.body.dataset.overviewLoads || 0) + 1);
    dashboard.sparks = (await sparks).lines;
    for (const cell of document.querySelectorAll("#overview td.spark")) {
      cell.innerHTML = sparkCell(cell.dataset.uid, dashboard.overview.threshold);
    }
    dashboard.timings.sparklines = performance.now() - started;
    document.body.dataset.sparkLoads = String(+(document.body.dataset.sparkLoads || 0) + 1);
  } catch (error) {
    showError(`Could not load the metrics: ${error.message}`);
  }
}

function scheduleRefresh() {
  clearInterval(dashboard.timer);
  dashboard.timer = null;
  if ($("auto-refresh").checked && !$("overview-view").hidden) {
    dashboard.timer = setInterval(loadOverview, REFRESH_MS);
  }
}

// ----------------------------------------------------------------------- metric page

function renderDetail(detail) {
  $("metric-name").textContent = detail.name;
  const badge = $("metric-badge");
  badge.textContent = detail.status;
  badge.className = `badge ${detail.status}`;
  $("metric-reason").textContent = detail.reason;
  $("metric-rows").textContent = detail.rowsStored;
  $("metric-scored").textContent = detail.rowsScored;
  $("metric-last").textContent = (detail.lastTimestamp || "none").replace("T", " ").replace("Z", " UTC");
  const range = detail.modelRange;
  $("metric-range").textContent = range
    ? `${num(range.min)} to ${num(range.max)}` +
      (range.minResolution ? ` (resolution ${num(range.minResolution)})` : "")
    : "not known yet";
  const monitored = detail.status !== "UNMONITORED";
  $("monitor").hidden = monitored;
  $("model-min").parentElement.hidden = monitored;
  $("model-max").parentElement.hidden = monitored;
  $("unmonitor").hidden = !monitored;
}

function markColumn(series, threshold) {
  return series.lik.map((a, i) => (a !== null && a >= threshold ? series.v[i] : null));
}

function renderMarks(series, threshold) {
  const items = [];
  let count = 0;
  for (let i = 0; i < series.t.length; i++) {
    const a = series.lik[i];
    if (a === null || a < threshold) continue;
    count += 1;
    if (items.length < 500) {
      items.push(`<li data-ts="${series.t[i]}">${utc(series.t[i])} value ${num(series.v[i])}` +
        ` likelihood ${num(a, 6)}</li>`);
    }
  }
  $("marks-title").textContent = `${count} point${count === 1 ? "" : "s"} at or above ` +
    `${threshold}` + (count > items.length ? ` (first ${items.length} listed)` : "");
  $("marks").innerHTML = items.join("");
}

function chartSize() {
  return { width: Math.max(400, $("chart").clientWidth - 2), height: 420 };
}

function renderChart() {
  const series = dashboard.series;
  const threshold = dashboard.threshold;
  const started = performance.now();
  if (dashboard.chart) { dashboard.chart.destroy(); dashboard.chart = null; }
  document.body.dataset.chartReady = "0";
  const data = [series.t, series.v, series.lik, markColumn(series, threshold), series.raw];
  const options = {
    ...chartSize(),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true }, a: { range: [0, 1] } },
    series: [
      { label: "time (UTC)" },
      { label: "value", scale: "v", stroke: "#2563eb", width: 1, points: { show: false } },
      { label: "anomaly likelihood", scale: "a", stroke: "#d97706", width: 1,
        points: { show: false } },
      { label: `likelihood ≥ ${threshold}`, scale: "v", stroke: "#dc2626", paths: () => null,
        points: { show: true, size: 8, stroke: "#dc2626", fill: "#dc2626" } },
      { label: "raw anomaly score", scale: "a", stroke: "#9ca3af", width: 1,
        show: $("show-raw").checked, points: { show: false } },
    ],
    axes: [
      {},
      { scale: "v", label: "value" },
      { scale: "a", side: 1, label: "likelihood", grid: { show: false } },
    ],
    hooks: {
      draw: [() => {
        if (document.body.dataset.chartReady !== "1") {
          dashboard.timings.chartRender = performance.now() - started;
          document.body.dataset.chartReady = "1";
        }
      }],
    },
  };
  dashboard.chart = new uPlot(options, data, $("chart"));
  renderMarks(series, threshold);
}

function seriesPath(name, lastTimestamp) {
  const span = RANGES[dashboard.range];
  const last = isoToEpoch(lastTimestamp);
  const query = span !== null && last !== null ? `?since=${last - span}` : "";
  return `/dashboard/series/${encodeURIComponent(name)}${query}`;
}

async function loadSeries(request) {
  const detail = dashboard.metric;
  for (const button of document.querySelectorAll("#range-picker [data-range]")) {
    button.classList.toggle("selected", button.dataset.range === dashboard.range);
  }
  const started = request ? request.started : performance.now();
  dashboard.series = await (request ? request.series
    : api("GET", seriesPath(detail.name, detail.lastTimestamp)));
  dashboard.timings.seriesFetch = performance.now() - started;
  dashboard.threshold = dashboard.threshold ?? dashboard.series.threshold;
  $("threshold").value = dashboard.threshold;
  renderChart();
  dashboard.timings.chart = performance.now() - started;
}

async function loadMetric(name) {
  try {
    const started = performance.now();
    // every row needs no range: ask for the rows together with the metric
    const request = dashboard.range === "all"
      ? { started, series: api("GET", seriesPath(name, null)) } : null;
    if (request) request.series.catch(() => {});
    const detail = await api("GET", `/metrics/${encodeURIComponent(name)}`);
    dashboard.metric = detail;
    renderDetail(detail);
    await loadSeries(request);
    dashboard.timings.metricPage = performance.now() - started;
    showError("");
  } catch (error) {
    showError(`Could not load ${name}: ${error.message}`);
  }
}

async function act(what, request) {
  const result = $("action-result");
  result.textContent = `${what}...`;
  try {
    const answer = await request();
    result.textContent = `${what}: ${answer.reason || "done"}`;
    return answer;
  } catch (error) {
    result.textContent = `${what} failed: ${error.message}`;
    return null;
  }
}

function modelParams() {
  const params = {};
  for (const [key, id] of [["min", "model-min"], ["max", "model-max"]]) {
    const text = $(id).value.trim();
    if (text !== "") params[key] = Number(text);
  }
  return Object.keys(params).length ? params : undefined;
}

function path(name, tail = "") {
  return `/metrics/${encodeURIComponent(name)}${tail}`;
}

async function monitor(event) {
  event.preventDefault();
  const name = dashboard.metric.name;
  if (await act("Start monitoring", () => api("PUT", path(name, "/model"), modelParams()))) {
    await loadMetric(name);
  }
}

async function unmonitor() {
  const name = dashboard.metric.name;
  if (!confirm(`Stop monitoring ${name}? Its model and anomaly scores are deleted; the data stays.`)) return;
  if (await act("Stop monitoring", () => api("DELETE", path(name, "/model")))) {
    await loadMetric(name);
  }
}

async function deleteMetric() {
  const name = dashboard.metric.name;
  if (!confirm(`Delete ${name} with all its data and its model? This cannot be undone.`)) return;
  if (await act("Delete", () => api("DELETE", path(name)))) {
    location.hash = "#/";
  }
}

// ---------------------------------------------------------------------------- routing

function route() {
  const match = location.hash.match(/^#\/metric\/(.+)$/);
  $("overview-view").hidden = !!match;
  $("metric-view").hidden = !match;
  $("action-result").textContent = "";
  if (match) {
    dashboard.range = "all";
    loadMetric(decodeURIComponent(match[1]));
  } else {
    if (dashboard.chart) { dashboard.chart.destroy(); dashboard.chart = null; }
    loadOverview();
  }
  scheduleRefresh();
}

function setUp() {
  $("filter").addEventListener("input", renderOverview);
  $("auto-refresh").addEventListener("change", scheduleRefresh);
  document.querySelector("#overview tbody").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (row && !event.target.closest("a")) {
      location.hash = `#/metric/${encodeURIComponent(row.dataset.name)}`;
    }
  });
  $("range-picker").addEventListener("click", (event) => {
    const range = event.target.dataset && event.target.dataset.range;
    if (range && dashboard.metric) { dashboard.range = range; loadSeries(null); }
  });
  $("reset-zoom").addEventListener("click", () => {
    const t = dashboard.series && dashboard.series.t;
    if (dashboard.chart && t.length) dashboard.chart.setScale("x", { min: t[0], max: t[t.length - 1] });
  });
  $("threshold").addEventListener("change", () => {
    const value = Number($("threshold").value);
    if (value >= 0 && value <= 1 && dashboard.series) { dashboard.threshold = value; renderChart(); }
  });
  $("show-raw").addEventListener("change", () => {
    if (dashboard.chart) dashboard.chart.setSeries(4, { show: $("show-raw").checked });
  });
  $("marks").addEventListener("click", (event) => {
    const item = event.target.closest("li");
    if (item && dashboard.chart) {
      const ts = Number(item.dataset.ts);
      dashboard.chart.setScale("x", { min: ts - 6 * 3600, max: ts + 6 * 3600 });
    }
  });
  $("monitor-form").addEventListener("submit", monitor);
  $("unmonitor").addEventListener("click", unmonitor);
  $("delete").addEventListener("click", deleteMetric);
  window.addEventListener("resize", () => { if (dashboard.chart) dashboard.chart.setSize(chartSize()); });
  window.addEventListener("hashchange", route);
  route();
}

setUp();
