// Charge point detail: identity and connectors, live charts per phase (power, current, voltage,
// temperature) fed by the live stream, history with a range picker, hourly and daily energy,
// its transactions (GET /charge-points/{id}/transactions) with their energy, and its alerts.

import { api, ApiError, cpPath, query } from "../api.js";
import { LiveWindow, TimeChart } from "../charts.js";
import { debounce, h, replace, setText, throttle } from "../dom.js";
import * as fmt from "../format.js";
import { energyPerBucket, PowerState } from "../power.js";
import { alertHead, alertRow, updateAlertRow } from "./alert_rows.js";

const ENERGY = "Energy.Active.Import.Register";
const LIVE_WINDOW_MS = 10 * 60 * 1000;
const HOUR = 3600 * 1000;
/** Transactions listed in #transactions: the newest by start time. */
const TX_LIMIT = 50;
/** The header figures (samples last minute, power now, last seen) are re-read at most this often. */
const STATS_EVERY_MS = 5000;

/** The live charts: measurand, chart name (data-chart="live-<name>"), title, formatting. */
const LIVE = [
  { measurand: "Power.Active.Import", name: "power", title: "Power", format: fmt.power, axis: (v) => `${(v / 1000).toFixed(1)} kW` },
  { measurand: "Current.Import", name: "current", title: "Current", format: (v) => fmt.value(v, "A"), axis: (v) => `${v.toFixed(0)} A` },
  { measurand: "Voltage", name: "voltage", title: "Voltage", format: (v) => fmt.value(v, "V"), axis: (v) => `${v.toFixed(0)} V` },
  { measurand: "Temperature", name: "temperature", title: "Temperature", format: (v) => fmt.value(v, "Celsius"), axis: (v) => `${v.toFixed(0)} °C` },
];

/** History ranges of select#history-range: raw samples up to a day, hourly averages beyond. */
const RANGES = [
  { value: "1h", label: "Last hour", ms: HOUR, hourly: false },
  { value: "6h", label: "Last 6 hours", ms: 6 * HOUR, hourly: false },
  { value: "24h", label: "Last 24 hours", ms: 24 * HOUR, hourly: false },
  { value: "7d", label: "Last 7 days", ms: 7 * 24 * HOUR, hourly: true },
];

const HISTORY_MEASURANDS = [
  ...LIVE.map((l) => ({ measurand: l.measurand, title: l.title, format: l.format, axis: l.axis })),
  { measurand: ENERGY, title: "Energy register", format: fmt.energy, axis: (v) => `${(v / 1000).toFixed(0)} kWh` },
];

/** Pages of 10,000 raw samples read at most for one history view. */
const MAX_PAGES = 6;

/** Series key and label of a sample: connector, phase (or total) and, when not the outlet, location. */
function seriesOf(sample, multiConnector) {
  const phase = sample.phase || "total";
  const where = sample.location && sample.location !== "Outlet" ? ` ${sample.location}` : "";
  const connector = multiConnector ? `#${sample.connector_id} ` : "";
  const order = sample.phase ? `1${sample.phase}` : "0";
  return {
    key: `${String(sample.connector_id).padStart(3, "0")}|${order}|${sample.location || ""}`,
    label: `${connector}${phase}${where}`,
  };
}

function section(title, ...children) {
  return h("section", { class: "block" }, h("h2", {}, title), ...children);
}

export function mount(view, { params }) {
  const id = params[0];
  let alive = true;
  const connectorsSeen = new Set();
  const power = new PowerState();
  const txDocs = new Map(); // transaction id -> document, as last listed by the API
  const txAsked = new Set(); // ids seen in samples or stats that made the list be read again
  const openEnergy = new Map(); // transaction id -> energy_wh from stats
  const alertRows = new Map();

  // Header.
  const banner = h("div", { class: "banner error", hidden: true, role: "alert" });
  const stateEl = h("span", { class: "state", "data-field": "online" }, "…");
  const facts = {
    power: h("dd", { class: "big", "data-field": "power" }, fmt.DASH),
    connectors: h("dd", { "data-field": "connectors" }, fmt.DASH),
    model: h("dd", {}, fmt.DASH),
    firmware: h("dd", {}, fmt.DASH),
    lastSeen: h("dd", { "data-field": "last-seen" }, fmt.DASH),
    rate: h("dd", { "data-field": "samples-last-minute" }, fmt.DASH),
  };
  const fact = (label, dd) => h("div", {}, h("dt", {}, label), dd);

  // Live charts.
  const liveWindows = new Map();
  const liveCharts = new Map();
  const liveEls = LIVE.map((l) => {
    const el = h("div", { class: "chart card", "data-chart": `live-${l.name}`, "data-points": "0" }, h("h3", {}, l.title));
    liveWindows.set(l.measurand, new LiveWindow({ windowMs: LIVE_WINDOW_MS, maxPoints: 600 }));
    liveCharts.set(l.measurand, { el, chart: new TimeChart(el, { format: l.format, axis: l.axis, empty: "Waiting for readings" }) });
    return el;
  });

  // History.
  const range = h("select", { id: "history-range", "aria-label": "Range" }, RANGES.map((r) => h("option", { value: r.value }, r.label)));
  const measurand = h(
    "select",
    { id: "history-measurand", "aria-label": "Measurand" },
    HISTORY_MEASURANDS.map((m) => h("option", { value: m.measurand }, m.title)),
  );
  const historyNote = h("span", { class: "muted" });
  const historyEl = h("div", { class: "chart card", "data-chart": "history" });
  let historyChart = null;

  // Energy.
  const hourlyEl = h("div", { class: "chart card", "data-chart": "energy-hourly" }, h("h3", {}, "Energy per hour, last 48 hours"));
  const dailyEl = h("div", { class: "chart card", "data-chart": "energy-daily" }, h("h3", {}, "Energy per day, last 30 days"));
  const energyFormat = (v) => fmt.energy(v);
  const energyAxis = (v) => `${(v / 1000).toFixed(v < 10000 ? 1 : 0)} kWh`;
  const hourlyChart = new TimeChart(hourlyEl, { format: energyFormat, axis: energyAxis, bars: true, step: 3600, empty: "No energy readings" });
  const dailyChart = new TimeChart(dailyEl, { format: energyFormat, axis: energyAxis, bars: true, step: 86400, empty: "No energy readings" });
  const energyTotals = h("p", { class: "muted" });

  // Transactions and alerts.
  const txBody = h("tbody");
  const txEmpty = h("p", { class: "muted", hidden: true }, "No transaction recorded for this charge point.");
  const alertBody = h("tbody");
  const alertEmpty = h("p", { class: "muted" }, "No alert for this charge point.");

  const container = h(
    "section",
    { "data-cp-detail": id },
    h("p", {}, h("a", { href: "#/" }, "← Fleet")),
    h("h1", {}, id, " ", stateEl),
    banner,
    h(
      "dl",
      { class: "facts" },
      fact("Power now", facts.power),
      fact("Connectors", facts.connectors),
      fact("Model", facts.model),
      fact("Firmware", facts.firmware),
      fact("Last seen", facts.lastSeen),
      fact("Samples last minute", facts.rate),
    ),
    h("p", {}, h("a", { href: `#/thresholds/${encodeURIComponent(id)}` }, "Thresholds for this charge point")),
    section("Live (last 10 minutes)", h("div", { class: "charts" }, liveEls)),
    section(
      "History",
      h("div", { class: "toolbar" }, range, measurand, historyNote),
      historyEl,
    ),
    section("Energy", energyTotals, h("div", { class: "charts" }, hourlyEl, dailyEl)),
    section(
      "Transactions",
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { id: "transactions" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "Id"),
              h("th", {}, "Connector"),
              h("th", {}, "State"),
              h("th", {}, "Id tag"),
              h("th", {}, "Started"),
              h("th", {}, "Stopped"),
              h("th", { class: "num" }, "Energy"),
              h("th", {}, "Stop reason"),
            ),
          ),
          txBody,
        ),
      ),
      txEmpty,
    ),
    section(
      "Alerts",
      h("div", { class: "table-wrap" }, h("table", { id: "cp-alerts" }, alertHead({ showChargePoint: false }), alertBody)),
      alertEmpty,
    ),
  );
  replace(view, container);
  historyChart = new TimeChart(historyEl, { format: fmt.power, axis: LIVE[0].axis, empty: "No readings in this range" });

  function showError(error) {
    if (!alive) return;
    setText(
      banner,
      error instanceof ApiError && error.status === 401
        ? "Waiting for an admin token."
        : error instanceof ApiError && error.status === 404
          ? `Charge point ${id} has not been seen by this server.`
          : `Could not load ${id}: ${error.message || error}`,
    );
    banner.hidden = false;
  }

  // ---- identity, connectors, power ----

  function paintConnectors(connectors) {
    const list = [...connectors].sort((a, b) => a.connector_id - b.connector_id);
    replace(
      facts.connectors,
      list.length
        ? h("span", { class: "chips" }, list.map((c) => h("span", { class: `chip ${c.status}` }, `${c.connector_id === 0 ? "CP" : c.connector_id} ${c.status}`)))
        : fmt.DASH,
    );
  }

  let connectorState = new Map();
  function setOnline(online) {
    setText(stateEl, online ? "online" : "offline");
    stateEl.className = `state ${online ? "online" : "offline"}`;
    if (!online) setText(facts.power, fmt.DASH);
  }

  async function loadIdentity() {
    const [cp, stats] = await Promise.all([api(cpPath(id)), api(cpPath(id, "/stats"))]);
    if (!alive) return;
    banner.hidden = true;
    setOnline(cp.connected);
    connectorState = new Map((cp.connectors || []).map((c) => [c.connector_id, c]));
    paintConnectors(connectorState.values());
    setText(facts.model, [cp.vendor, cp.model].filter(Boolean).join(" ") || fmt.DASH);
    setText(facts.firmware, cp.firmware_version || fmt.DASH);
    fmt.setTime(facts.lastSeen, cp.last_seen);
    power.add(stats.latest || []);
    for (const s of stats.latest || []) connectorsSeen.add(s.connector_id);
    paintStats(stats, cp.connected);
  }

  /** The header figures and the open transactions' energy from a stats answer. */
  function paintStats(stats, connected) {
    setText(facts.rate, String(stats.samples_last_minute ?? fmt.DASH));
    if (connected) setText(facts.power, fmt.power(stats.active_power_w ?? power.total()));
    // Never move "last seen" back: live events may already have shown a newer time.
    const shown = Date.parse(facts.lastSeen.dataset.time || "") || 0;
    if (Date.parse(stats.last_meter_values_at || "") > shown) fmt.setTime(facts.lastSeen, stats.last_meter_values_at);
    openEnergy.clear();
    for (const t of stats.open_transactions || []) {
      openEnergy.set(t.transaction_id, t.energy_wh);
      noteTransaction(t.transaction_id);
    }
  }

  // ---- live charts ----

  function addLive(samples) {
    const touched = new Set();
    for (const s of samples) connectorsSeen.add(s.connector_id);
    const multi = connectorsSeen.size > 1;
    for (const s of samples) {
      const window = liveWindows.get(s.measurand);
      if (!window || typeof s.value !== "number") continue;
      const t = Date.parse(s.timestamp);
      if (Number.isNaN(t)) continue;
      const { key, label } = seriesOf(s, multi);
      if (window.add(t, key, label, s.value)) touched.add(s.measurand);
    }
    for (const m of touched) {
      const { el } = liveCharts.get(m);
      el.dataset.points = String(liveWindows.get(m).size);
      scheduleDraw(m);
    }
  }

  const pendingDraw = new Set();
  let drawTimer = null;
  function scheduleDraw(m) {
    pendingDraw.add(m);
    if (drawTimer) return;
    drawTimer = setTimeout(() => {
      drawTimer = null;
      for (const one of pendingDraw) {
        const [series, data] = liveWindows.get(one).toChart();
        liveCharts.get(one).chart.set(series, data);
      }
      pendingDraw.clear();
    }, 150);
  }

  /** Fills the live windows from the API (at start, and after a reconnection to cover the gap). */
  async function seedLive() {
    const from = new Date(Date.now() - LIVE_WINDOW_MS).toISOString();
    await Promise.all(
      LIVE.map(async (l) => {
        const answer = await api(cpPath(id, `/meter-values${query({ measurand: l.measurand, from, limit: 10000 })}`));
        if (alive) addLive(answer.samples || []);
      }),
    );
    if (!alive) return;
    for (const l of LIVE) {
      liveCharts.get(l.measurand).el.dataset.points = String(liveWindows.get(l.measurand).size);
      scheduleDraw(l.measurand);
    }
  }

  // ---- history ----

  let historyRun = 0;
  async function loadHistory() {
    const run = ++historyRun;
    const r = RANGES.find((x) => x.value === range.value) || RANGES[0];
    const m = HISTORY_MEASURANDS.find((x) => x.measurand === measurand.value) || HISTORY_MEASURANDS[0];
    const to = new Date();
    const from = new Date(to.getTime() - r.ms);
    setText(historyNote, "loading…");
    const window = new LiveWindow({ windowMs: r.ms + HOUR, maxPoints: Infinity });
    const multi = connectorsSeen.size > 1;
    const transactionIds = new Set();
    let note = "";
    if (r.hourly) {
      const answer = await api(cpPath(id, `/aggregates${query({ period: "hour", measurand: m.measurand, from: from.toISOString(), to: to.toISOString() })}`));
      for (const b of answer.buckets || []) {
        if (typeof b.avg !== "number" || b.count === 0) continue;
        const { key, label } = seriesOf(b, multi);
        window.add(Date.parse(b.start), key, `${label} (hourly avg)`, b.avg);
      }
      note = "hourly averages";
    } else {
      let cursor = from.toISOString();
      let pages = 0;
      for (;;) {
        const answer = await api(cpPath(id, `/meter-values${query({ measurand: m.measurand, from: cursor, to: to.toISOString(), limit: 10000 })}`));
        const samples = answer.samples || [];
        for (const s of samples) {
          if (s.transaction_id !== null && s.transaction_id !== undefined) transactionIds.add(s.transaction_id);
          if (typeof s.value !== "number") continue;
          const { key, label } = seriesOf(s, multi);
          window.add(Date.parse(s.timestamp), key, label, s.value);
        }
        pages += 1;
        const last = samples.length ? samples[samples.length - 1].timestamp : null;
        if (samples.length < 10000 || !last || last === cursor) break;
        if (pages >= MAX_PAGES) {
          note = `first ${pages * 10000} readings of the range; choose a shorter one for the rest`;
          break;
        }
        cursor = last;
      }
      note = note || `${window.size} instants`;
    }
    if (!alive || run !== historyRun) return;
    historyChart.options.format = m.format;
    historyChart.options.axis = m.axis;
    historyChart.signature = null; // formats changed: rebuild
    const [series, data] = window.toChart();
    historyChart.set(series, data);
    setText(historyNote, note);
    for (const t of transactionIds) noteTransaction(t);
  }

  // ---- energy ----

  async function loadEnergy() {
    const now = Date.now();
    const [hourly, daily] = await Promise.all([
      api(cpPath(id, `/aggregates${query({ period: "hour", measurand: ENERGY, from: new Date(now - 48 * HOUR).toISOString() })}`)),
      api(cpPath(id, `/aggregates${query({ period: "day", measurand: ENERGY, from: new Date(now - 30 * 24 * HOUR).toISOString() })}`)),
    ]);
    if (!alive) return;
    const hours = energyPerBucket(hourly.buckets);
    const days = energyPerBucket(daily.buckets);
    const series = [{ key: "energy", label: "Energy" }];
    const hourStart = Math.floor(now / HOUR) * HOUR;
    hourlyChart.xRange = [(hourStart - 47 * HOUR) / 1000, (hourStart + HOUR) / 1000];
    const dayStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
    dailyChart.xRange = [(dayStart - 29 * 24 * HOUR) / 1000, (dayStart + 24 * HOUR) / 1000];
    hourlyChart.set(series, [hours.map(([t]) => t / 1000), hours.map(([, wh]) => wh)]);
    dailyChart.set(series, [days.map(([t]) => t / 1000), days.map(([, wh]) => wh)]);
    const last24 = hours.filter(([t]) => t >= now - 24 * HOUR).reduce((a, [, wh]) => a + wh, 0);
    const last30 = days.reduce((a, [, wh]) => a + wh, 0);
    setText(energyTotals, `Last 24 hours: ${fmt.energy(last24)} · last 30 days: ${fmt.energy(last30)}`);
  }
  const refreshEnergy = debounce(() => loadEnergy().catch(() => {}), 10000);

  // ---- transactions ----

  const txRows = new Map(); // transaction id -> tr
  let txLagRetries = 0;

  /**
   * A transaction id met in a sample, the stats or the history: read the list again when it is
   * not listed yet (once per id, so an id older than the list's limit cannot loop).
   */
  function noteTransaction(txId) {
    const doc = txDocs.get(txId);
    if (doc) {
      if (doc.state === "active") paintTransaction(doc); // its live energy may have moved
      return;
    }
    if (txAsked.has(txId)) return;
    txAsked.add(txId);
    refreshTransactions();
  }

  async function loadTransactions() {
    const answer = await api(cpPath(id, `/transactions${query({ state: "all", limit: TX_LIMIT })}`));
    if (!alive) return;
    const list = answer.transactions || [];
    txDocs.clear();
    for (const t of list) txDocs.set(t.transaction_id, t);
    for (const [txId, tr] of txRows) {
      if (!txDocs.has(txId)) {
        tr.remove();
        txRows.delete(txId);
      }
    }
    txBody.replaceChildren(...list.map(paintTransaction)); // newest start first, as listed
    txEmpty.hidden = list.length > 0;
    // The writer stores StartTransaction a moment after the charge point got its answer, so a
    // sample can name a transaction the list does not have yet: read again shortly, a few times.
    const oldest = list.length ? Math.min(...list.map((t) => t.transaction_id)) : -Infinity;
    const lagging = [...txAsked].some((t) => !txDocs.has(t) && (list.length < TX_LIMIT || t > oldest));
    if (lagging && txLagRetries < 5) {
      txLagRetries += 1;
      refreshTransactionsLater();
    } else if (!lagging) {
      txLagRetries = 0;
    }
  }

  const refreshTransactions = debounce(() => loadTransactions().catch(() => {}), 300);
  // StopTransaction and its status change arrive close together; a second read a little later
  // catches a stop the writer stored after the first read.
  const refreshTransactionsLater = debounce(() => loadTransactions().catch(() => {}), 1500);

  function paintTransaction(t) {
    let tr = txRows.get(t.transaction_id);
    if (!tr) {
      const cell = (field, cls) => h("td", { "data-field": field, class: cls });
      tr = h(
        "tr",
        { "data-transaction-id": t.transaction_id },
        cell("id"), cell("connector"), cell("state", "state"), cell("id-tag"), cell("start"), cell("stop"), cell("energy", "num"), cell("stop-reason"),
      );
      txRows.set(t.transaction_id, tr);
    }
    const get = (f) => tr.querySelector(`[data-field="${f}"]`);
    setText(get("id"), String(t.transaction_id));
    setText(get("connector"), t.connector_id === null || t.connector_id === undefined ? fmt.DASH : String(t.connector_id));
    setText(get("state"), t.state);
    get("state").className = `state ${t.state === "active" ? "active" : "offline"}`;
    setText(get("id-tag"), t.id_tag || fmt.DASH);
    fmt.setTime(get("start"), t.start_time);
    fmt.setTime(get("stop"), t.stop_time);
    const wh = t.state === "stopped" ? t.energy_wh : openEnergy.get(t.transaction_id);
    setText(get("energy"), fmt.energy(wh ?? null));
    setText(get("stop-reason"), t.stop_reason || fmt.DASH);
    return tr;
  }

  // ---- alerts ----

  async function loadAlerts() {
    const answer = await api(`/api/v1/alerts${query({ charge_point: id, state: "all", limit: 200 })}`);
    if (!alive) return;
    alertRows.clear();
    for (const alert of answer.alerts || []) alertRows.set(alert.id, alertRow(alert, { showChargePoint: false }));
    alertBody.replaceChildren(...alertRows.values());
    alertEmpty.hidden = alertRows.size > 0;
  }

  // ---- live events ----

  // Throttled, not debounced: readings arriving every second must not postpone it forever.
  const refreshStats = throttle(async () => {
    try {
      const stats = await api(cpPath(id, "/stats"));
      if (!alive) return;
      paintStats(stats, stats.connected);
    } catch (_) {
      // Figures stay as they were until the next reading.
    }
  }, STATS_EVERY_MS);

  function onEvent(name, data) {
    if (data.charge_point_id !== id) return;
    const now = new Date().toISOString();
    switch (name) {
      case "sample": {
        const samples = data.samples || [];
        addLive(samples);
        if (power.add(samples)) setText(facts.power, fmt.power(power.total()));
        setOnline(true);
        fmt.setTime(facts.lastSeen, now);
        let energy = false;
        for (const s of samples) {
          if (s.transaction_id !== null && s.transaction_id !== undefined) noteTransaction(s.transaction_id);
          if (s.measurand === ENERGY) energy = true;
        }
        if (energy) refreshEnergy();
        refreshStats();
        break;
      }
      case "connected":
      case "disconnected":
        setOnline(name === "connected");
        fmt.setTime(facts.lastSeen, data.at || now);
        if (name === "disconnected") {
          refreshTransactions();
          refreshTransactionsLater();
        }
        break;
      case "status":
        connectorState.set(data.connector_id, data);
        paintConnectors(connectorState.values());
        fmt.setTime(facts.lastSeen, data.at || now);
        // Transactions are not on the event stream; StartTransaction and StopTransaction come
        // with a connector status change (Preparing, Charging, Finishing...), so list again.
        refreshTransactions();
        refreshTransactionsLater();
        break;
      case "alert":
      case "alert_cleared": {
        const tr = alertRows.get(data.id);
        if (tr) {
          updateAlertRow(tr, data);
        } else {
          const fresh = alertRow(data, { showChargePoint: false });
          alertRows.set(data.id, fresh);
          alertBody.prepend(fresh);
          alertEmpty.hidden = true;
        }
        break;
      }
      default:
    }
  }

  // ---- loading ----

  async function load() {
    try {
      await loadIdentity();
    } catch (error) {
      showError(error);
      return;
    }
    const parts = [seedLive(), loadHistory(), loadEnergy(), loadAlerts(), loadTransactions()];
    const results = await Promise.allSettled(parts);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) showError(failed.reason);
  }

  const resync = debounce(async () => {
    try {
      await loadIdentity();
      await Promise.all([seedLive(), loadAlerts(), loadTransactions()]);
      refreshEnergy();
    } catch (error) {
      showError(error);
    }
  }, 300);

  range.addEventListener("change", () => loadHistory().catch(showError));
  measurand.addEventListener("change", () => loadHistory().catch(showError));

  return {
    ready: load(),
    filter: id,
    onEvent,
    resync,
    unmount() {
      alive = false;
      resync.cancel();
      refreshEnergy.cancel();
      refreshStats.cancel();
      refreshTransactions.cancel();
      refreshTransactionsLater.cancel();
      clearTimeout(drawTimer);
      for (const { chart } of liveCharts.values()) chart.destroy();
      historyChart.destroy();
      hourlyChart.destroy();
      dailyChart.destroy();
    },
  };
}
