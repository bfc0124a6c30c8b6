// Alerts: active and past alerts of the whole fleet, filtered by state and charge point,
// acknowledged from the table; new and cleared alerts arrive live.

import { api, ApiError, query } from "../api.js";
import { debounce, h, replace, setText } from "../dom.js";
import { alertHead, alertRow, updateAlertRow } from "./alert_rows.js";

/** Alerts read per load (the API's maximum is 1000). */
const LIMIT = 500;

export function mount(view) {
  let alive = true;
  const rows = new Map(); // alert id -> tr
  const state = h(
    "select",
    { id: "alert-state", "aria-label": "State" },
    h("option", { value: "all" }, "All"),
    h("option", { value: "active" }, "Active"),
    h("option", { value: "cleared" }, "Cleared"),
  );
  const cp = h("input", {
    id: "alert-cp",
    type: "search",
    placeholder: "Charge point id",
    "aria-label": "Charge point id",
    autocomplete: "off",
  });
  const summary = h("span", { class: "summary" });
  const banner = h("div", { class: "banner error", hidden: true, role: "alert" });
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true }, "No alert matches.");
  replace(
    view,
    h(
      "section",
      {},
      h("h1", {}, "Alerts"),
      banner,
      h("div", { class: "toolbar" }, h("label", {}, "State ", state), cp, summary),
      h("div", { class: "table-wrap" }, h("table", { id: "alerts" }, alertHead(), tbody)),
      empty,
    ),
  );

  function passes(alert) {
    const needle = cp.value.trim().toLowerCase();
    if (needle && !alert.charge_point_id.toLowerCase().includes(needle)) return false;
    return state.value === "all" || alert.state === state.value;
  }

  function refreshSummary() {
    let active = 0;
    let unacked = 0;
    for (const tr of rows.values()) {
      if (tr._alert.state === "active") active += 1;
      if (!tr._alert.acknowledged_at) unacked += 1;
    }
    setText(summary, `${rows.size} shown · ${active} active · ${unacked} not acknowledged`);
    empty.hidden = rows.size > 0;
  }

  async function load() {
    try {
      const answer = await api(`/api/v1/alerts${query({ state: state.value, limit: LIMIT })}`);
      if (!alive) return;
      banner.hidden = true;
      rows.clear();
      const list = (answer.alerts || []).filter(passes);
      for (const alert of list) rows.set(alert.id, alertRow(alert, { onChange: refreshSummary }));
      tbody.replaceChildren(...rows.values());
      refreshSummary();
    } catch (error) {
      if (!alive) return;
      setText(
        banner,
        error instanceof ApiError && error.status === 401
          ? "Waiting for an admin token."
          : `Could not load the alerts: ${error.message || error}`,
      );
      banner.hidden = false;
    }
  }

  const reload = debounce(load, 250);
  state.addEventListener("change", load);
  cp.addEventListener("input", reload);

  function onEvent(name, alert) {
    if (name !== "alert" && name !== "alert_cleared") return;
    const tr = rows.get(alert.id);
    if (!passes(alert)) {
      if (tr) {
        tr.remove();
        rows.delete(alert.id);
      }
    } else if (tr) {
      updateAlertRow(tr, alert);
    } else {
      const fresh = alertRow(alert, { onChange: refreshSummary });
      rows.set(alert.id, fresh);
      tbody.prepend(fresh);
    }
    refreshSummary();
  }

  return {
    ready: load(),
    filter: null,
    onEvent,
    resync: reload,
    unmount() {
      alive = false;
      reload.cancel();
    },
  };
}
