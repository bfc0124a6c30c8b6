// Fleet overview: one row per charge point with its online state, connector status, current
// power, active alert count, last contact and the server instance holding its session; kept
// current by the live stream.

import { api, ApiError, cpPath, mapLimit } from "../api.js";
import { debounce, h, replace, setText } from "../dom.js";
import * as fmt from "../format.js";
import { PowerState } from "../power.js";

/** Concurrent stats requests when loading a fleet. */
const STATS_CONCURRENCY = 6;
/**
 * Online charge points whose statistics are read at load (one request each: the API has no
 * bulk form). Beyond this, a row's power appears with its next MeterValues on the live stream.
 */
const STATS_AT_LOAD = 300;

export function mount(view) {
  const charges = new Map(); // id -> entry
  let alive = true;
  let loaded = false;

  const search = h("input", {
    id: "fleet-search",
    type: "search",
    placeholder: "Search charge point id",
    "aria-label": "Search charge point id",
    autocomplete: "off",
  });
  const stateFilter = h(
    "select",
    { id: "fleet-state", "aria-label": "Show" },
    h("option", { value: "all" }, "All"),
    h("option", { value: "online" }, "Online"),
    h("option", { value: "offline" }, "Offline"),
    h("option", { value: "alerts" }, "With active alerts"),
  );
  const summary = h("span", { class: "summary" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { id: "fleet" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Charge point"),
        h("th", {}, "State"),
        h("th", {}, "Connectors"),
        h("th", { class: "num" }, "Power"),
        h("th", { class: "num" }, "Active alerts"),
        h("th", {}, "Last seen"),
        h("th", { title: "The ocpp-meter instance holding the charge point's session" }, "Instance"),
        h("th", {}, "Model"),
      ),
    ),
    tbody,
  );
  const wrap = h("div", { class: "table-wrap" }, table);
  const host = location.hostname || "HOST";
  const empty = h(
    "div",
    { class: "card empty", "data-empty-state": "", hidden: true },
    h("h2", {}, "No charge point yet"),
    h(
      "p",
      {},
      "Point a charge point (or the simulator) at ",
      h("code", {}, `ws://${host}:8080/ocpp/{chargePointId}`),
      " with the WebSocket subprotocol ",
      h("code", {}, "ocpp1.6"),
      " (the port is server.ws_addr, 8080 by default). It appears here as soon as it connects.",
    ),
    h(
      "p",
      { class: "muted" },
      "Try it: ",
      h("code", {}, `python3 scripts/simulate_meter_values.py ws://${host}:8080 TEST-CP-1`),
    ),
  );
  const banner = h("div", { class: "banner error", hidden: true, role: "alert" });
  const section = h(
    "section",
    {},
    h("h1", {}, "Fleet"),
    banner,
    h("div", { class: "toolbar" }, search, stateFilter, summary),
    wrap,
    empty,
  );
  replace(view, section);

  search.addEventListener("input", applyFilter);
  stateFilter.addEventListener("change", applyFilter);

  function entry(cp) {
    const e = {
      id: cp.id,
      online: Boolean(cp.connected),
      instance: cp.instance || null,
      lastSeen: cp.last_seen || null,
      model: [cp.vendor, cp.model].filter(Boolean).join(" "),
      connectors: new Map((cp.connectors || []).map((c) => [c.connector_id, c])),
      power: new PowerState(),
      alerts: new Set(),
      row: null,
    };
    e.row = row(e);
    return e;
  }

  function row(e) {
    const cell = (field, cls) => h("td", { "data-field": field, class: cls });
    const link = h("a", { href: `#/cp/${encodeURIComponent(e.id)}` }, e.id);
    const tr = h(
      "tr",
      { "data-cp-id": e.id },
      h("td", { "data-field": "id" }, link),
      cell("online", "state"),
      cell("connectors"),
      cell("power", "num"),
      cell("alerts", "num count"),
      cell("last-seen"),
      cell("instance"),
      cell("model"),
    );
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      location.hash = `#/cp/${encodeURIComponent(e.id)}`;
    });
    return tr;
  }

  function paint(e) {
    const get = (field) => e.row.querySelector(`[data-field="${field}"]`);
    const online = get("online");
    setText(online, e.online ? "online" : "offline");
    online.className = `state ${e.online ? "online" : "offline"}`;
    const connectors = [...e.connectors.values()].sort((a, b) => a.connector_id - b.connector_id);
    const chips = connectors.map((c) =>
      h(
        "span",
        { class: `chip ${c.status}`, title: [c.error_code, c.info].filter((x) => x && x !== "NoError").join(" ") || null },
        `${c.connector_id === 0 ? "CP" : c.connector_id} ${c.status}`,
      ),
    );
    const connectorsCell = get("connectors");
    const key = connectors.map((c) => `${c.connector_id}:${c.status}:${c.error_code}`).join(",");
    if (connectorsCell.dataset.key !== key) {
      connectorsCell.dataset.key = key;
      replace(connectorsCell, chips.length ? h("span", { class: "chips" }, chips) : h("span", { class: "muted" }, fmt.DASH));
    }
    setText(get("power"), e.online ? fmt.power(e.power.total()) : fmt.DASH);
    const alerts = get("alerts");
    setText(alerts, String(e.alerts.size));
    alerts.classList.toggle("nonzero", e.alerts.size > 0);
    fmt.setTime(get("last-seen"), e.lastSeen);
    setText(get("instance"), (e.online && e.instance) || fmt.DASH);
    setText(get("model"), e.model || fmt.DASH);
  }

  function matches(e) {
    const needle = search.value.trim().toLowerCase();
    if (needle && !e.id.toLowerCase().includes(needle)) return false;
    switch (stateFilter.value) {
      case "online": return e.online;
      case "offline": return !e.online;
      case "alerts": return e.alerts.size > 0;
      default: return true;
    }
  }

  function applyFilter() {
    for (const e of charges.values()) e.row.hidden = !matches(e);
    updateSummary();
  }

  function updateSummary() {
    let online = 0;
    let alerts = 0;
    let watts = 0;
    let anyPower = false;
    for (const e of charges.values()) {
      if (e.online) online += 1;
      alerts += e.alerts.size;
      const p = e.online ? e.power.total() : null;
      if (p !== null) {
        watts += p;
        anyPower = true;
      }
    }
    setText(
      summary,
      `${online} of ${charges.size} online · ${alerts} active alert${alerts === 1 ? "" : "s"} · ${anyPower ? fmt.power(watts) : fmt.DASH} now`,
    );
    const none = loaded && charges.size === 0;
    empty.hidden = !none;
    wrap.hidden = none;
  }

  function showError(error) {
    if (error instanceof ApiError && error.status === 401) {
      setText(banner, "Waiting for an admin token.");
    } else {
      setText(banner, `Could not load the fleet: ${error.message || error}`);
    }
    banner.hidden = false;
  }

  async function load() {
    try {
      const [list, active] = await Promise.all([
        api("/api/v1/charge-points"),
        api("/api/v1/alerts?state=active&limit=1000"),
      ]);
      if (!alive) return;
      banner.hidden = true;
      const ids = new Set(list.map((cp) => cp.id));
      for (const [id, e] of charges) {
        if (!ids.has(id)) {
          e.row.remove();
          charges.delete(id);
        }
      }
      for (const cp of list) {
        const old = charges.get(cp.id);
        const e = entry(cp);
        if (old) {
          old.online = e.online;
          old.instance = e.instance;
          old.lastSeen = e.lastSeen;
          old.model = e.model;
          old.connectors = e.connectors;
          old.alerts = new Set();
        } else {
          charges.set(cp.id, e);
        }
      }
      for (const alert of active.alerts || []) {
        const e = charges.get(alert.charge_point_id);
        if (e && alert.state === "active") e.alerts.add(alert.id);
      }
      const sorted = [...charges.values()].sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
      tbody.replaceChildren(...sorted.map((e) => e.row));
      for (const e of sorted) paint(e);
      loaded = true;
      applyFilter();
      // Current power from each online charge point's latest readings.
      const online = sorted.filter((e) => e.online).slice(0, STATS_AT_LOAD);
      await mapLimit(online, STATS_CONCURRENCY, async (e) => {
        try {
          const stats = await api(cpPath(e.id, "/stats"));
          if (!alive) return;
          e.power.add(stats.latest || []);
          paint(e);
        } catch (_) {
          // One charge point's statistics missing leaves its power blank, nothing else.
        }
      });
      if (alive) updateSummary();
    } catch (error) {
      if (alive) showError(error);
    }
  }

  const reload = debounce(() => load(), 300);

  function onEvent(name, data) {
    const e = charges.get(data.charge_point_id);
    if (!e) {
      // A charge point never seen before: its vendor, model and connectors come from the API.
      if (name === "connected" || name === "sample" || name === "status") reload();
      return;
    }
    const now = new Date().toISOString();
    switch (name) {
      case "connected":
        e.online = true;
        if (data.instance) e.instance = data.instance;
        e.lastSeen = data.at || now;
        break;
      case "disconnected":
        // A session that moved to another instance ends after the new one began: only the
        // instance holding it can take it offline.
        if (data.instance && e.instance && data.instance !== e.instance) return;
        e.online = false;
        e.instance = null;
        e.lastSeen = data.at || now;
        break;
      case "status":
        e.connectors.set(data.connector_id, {
          connector_id: data.connector_id,
          status: data.status,
          error_code: data.error_code,
          info: data.info,
          timestamp: data.timestamp,
        });
        e.online = true;
        e.lastSeen = data.at || now;
        break;
      case "sample":
        e.power.add(data.samples);
        e.online = true;
        e.lastSeen = now;
        break;
      case "alert":
        if (data.state === "active") e.alerts.add(data.id);
        break;
      case "alert_cleared":
        e.alerts.delete(data.id);
        break;
      default:
        return;
    }
    paint(e);
    e.row.hidden = !matches(e);
    updateSummary();
  }

  const ready = load();
  return {
    ready,
    filter: null,
    onEvent,
    resync: reload,
    unmount() {
      alive = false;
      reload.cancel();
    },
  };
}
