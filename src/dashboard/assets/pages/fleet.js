// Fleet energy: energy per hour (last 48 hours) and per day (last 30 days) of the whole fleet or
// one group (GET /api/v1/fleet/energy), the top 10 consumers over the 30 days
// (GET /api/v1/fleet/top), and the transactions started in the 30 days (GET /api/v1/transactions,
// oldest start first, paged with "More") with their CSV export (GET /api/v1/transactions.csv).
//
// The numbers come from the fleet roll-up, which lags the live readings by up to the roll-up
// interval (`lag_secs` of the answers); the page re-reads the charts and the top list every
// minute and whenever the live stream reopens.
//
// The CSV link: the admin API takes the token only in the Authorization header (never in a URL),
// and a plain link cannot send a header. So the link's href is the real export URL with the
// current filters (usable as is on a server without tokens, and what a test reads), and a click
// fetches it with the header, then saves the answer through a Blob object URL and a temporary
// `a[download]`. The whole file passes through memory, which is fine for a month of a fleet's
// transactions (a few MB per ten thousand).

import { api, ApiError, fetchBlob, query } from "../api.js";
import { TimeChart } from "../charts.js";
import { h, replace, setText } from "../dom.js";
import * as fmt from "../format.js";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
/** Consumers listed in table#fleet-top. */
const TOP_LIMIT = 10;
/** Transactions per page of table#fleet-transactions. */
const TX_PAGE = 50;
/** The charts are re-read this often while the page is open (the top list: TOP_REFRESH_MS). */
const REFRESH_MS = 60 * 1000;
/** The top 10 over 30 days moves slowly and costs the server most (a fleet-wide top reads every
 * charge point's field of ~30 daily buckets: about a second for 20,000 charge points), so the
 * minute's refresh re-reads it only this often. */
const TOP_REFRESH_MS = 10 * 60 * 1000;

/** The ranges shown, from `now` (ms): whole UTC hours and days, the current one included. */
function ranges(now) {
  const hourEnd = Math.floor(now / HOUR) * HOUR + HOUR;
  const dayEnd = Math.floor(now / DAY) * DAY + DAY;
  return {
    hours: { from: hourEnd - 48 * HOUR, to: hourEnd },
    days: { from: dayEnd - 30 * DAY, to: dayEnd },
  };
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.000Z$/, "Z");

function errorText(error) {
  return error instanceof ApiError ? error.message : String((error && error.message) || error);
}

export function mount(view, { params }) {
  let alive = true;
  let topReadAt = 0; // when the top 10 was last asked for (see TOP_REFRESH_MS)
  let generation = 0; // a newer load (another group, a refresh) makes older answers stale
  let group = params[0] || "";
  let window30 = null; // {from, to} of the top list and the transactions, as last loaded
  let txCursor = null;

  const banner = h("div", { class: "banner error", hidden: true, role: "alert" });
  const groupSelect = h(
    "select",
    { id: "fleet-group", "aria-label": "Group" },
    h("option", { value: "" }, "Whole fleet"),
  );
  const summary = h("span", { class: "summary" });
  const lagNote = h("p", { class: "muted" });

  // Charts.
  const energyFormat = (v) => fmt.energy(v);
  const energyAxis = (v) => `${(v / 1000).toFixed(v < 10000 ? 1 : 0)} kWh`;
  const chartEl = (name, title) =>
    h("div", { class: "chart card", "data-chart": name, "data-state": "loading" }, h("h3", {}, title));
  const hourlyEl = chartEl("fleet-energy-hourly", "Energy per hour, last 48 hours");
  const dailyEl = chartEl("fleet-energy-daily", "Energy per day, last 30 days");
  const hourlyChart = new TimeChart(hourlyEl, { format: energyFormat, axis: energyAxis, bars: true, step: 3600, empty: "No energy in the last 48 hours" });
  const dailyChart = new TimeChart(dailyEl, { format: energyFormat, axis: energyAxis, bars: true, step: 86400, empty: "No energy in the last 30 days" });

  // Top consumers.
  const topBody = h("tbody");
  const topTable = h(
    "table",
    { id: "fleet-top", "data-state": "loading" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "Charge point"), h("th", { class: "num" }, "Energy"))),
    topBody,
  );
  const topEmpty = h("p", { class: "muted", "data-empty": "fleet-top", hidden: true }, "No charge point delivered energy in the last 30 days.");

  // Transactions.
  const txBody = h("tbody");
  const txTable = h(
    "table",
    { id: "fleet-transactions", "data-state": "loading" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Id"),
        h("th", {}, "Charge point"),
        h("th", {}, "Connector"),
        h("th", {}, "Id tag"),
        h("th", {}, "Started"),
        h("th", {}, "Stopped"),
        h("th", { class: "num" }, "Energy"),
        h("th", { class: "num" }, "Duration"),
        h("th", { class: "num" }, "Max power"),
      ),
    ),
    txBody,
  );
  const txEmpty = h("p", { class: "muted", "data-empty": "fleet-transactions", hidden: true }, "No transaction started in the last 30 days.");
  const more = h("button", { type: "button", "data-more": "", hidden: true }, "More");
  const csv = h(
    "a",
    { "data-download": "transactions-csv", href: "/api/v1/transactions.csv", download: "transactions.csv" },
    "Download CSV",
  );
  const csvStatus = h("span", { class: "muted", role: "status" });

  replace(
    view,
    h(
      "section",
      { "data-fleet": "", "data-state": "loading" },
      h("h1", {}, "Fleet energy"),
      banner,
      h("div", { class: "toolbar" }, h("label", {}, "Group ", groupSelect), summary),
      lagNote,
      h("div", { class: "charts" }, hourlyEl, dailyEl),
      h("h2", {}, `Top ${TOP_LIMIT} consumers, last 30 days`),
      h("div", { class: "table-wrap" }, topTable),
      topEmpty,
      h("h2", {}, "Transactions started in the last 30 days"),
      h("div", { class: "toolbar" }, csv, csvStatus),
      h("div", { class: "table-wrap" }, txTable),
      txEmpty,
      h("p", {}, more),
    ),
  );
  const root = view.querySelector("[data-fleet]");

  function showError(error) {
    setText(
      banner,
      error instanceof ApiError && error.status === 401
        ? "Waiting for an admin token."
        : `Could not load the fleet's energy: ${errorText(error)}`,
    );
    banner.hidden = false;
  }

  /** Marks `el` as showing `group`'s data of `range` (the attributes the tests read). */
  function stamp(el, range, extra) {
    el.dataset.group = group;
    el.dataset.from = iso(range.from);
    el.dataset.to = iso(range.to);
    for (const [k, v] of Object.entries(extra)) el.dataset[k] = String(v);
    el.dataset.state = "ready";
  }

  function drawEnergy(chart, el, answer, range, step) {
    const buckets = answer.buckets || [];
    let total = 0;
    for (const b of buckets) total += Number(b.energy_wh) || 0;
    const any = buckets.some((b) => (b.charge_points || 0) > 0 || b.energy_wh);
    const xs = [];
    const ys = [];
    if (any) {
      for (const b of buckets) {
        xs.push(Date.parse(b.start) / 1000);
        ys.push(Number(b.energy_wh) || 0);
      }
    }
    chart.xRange = [range.from / 1000, range.to / 1000];
    chart.set([{ key: "energy", label: "Energy" }], [xs, ys]);
    el.title = `${fmt.energy(total)} in ${buckets.length} ${step}s`;
    stamp(el, range, { buckets: buckets.length, points: xs.length, totalWh: total });
    return total;
  }

  async function loadEnergy(number, r) {
    const filters = { group: group || undefined };
    const [hourly, daily] = await Promise.all([
      api(`/api/v1/fleet/energy${query({ period: "hour", from: iso(r.hours.from), to: iso(r.hours.to), ...filters })}`),
      api(`/api/v1/fleet/energy${query({ period: "day", from: iso(r.days.from), to: iso(r.days.to), ...filters })}`),
    ]);
    if (!alive || number !== generation) return;
    const last48 = drawEnergy(hourlyChart, hourlyEl, hourly, r.hours, "hour");
    const last30 = drawEnergy(dailyChart, dailyEl, daily, r.days, "day");
    setText(summary, `Last 48 hours: ${fmt.energy(last48)} · last 30 days: ${fmt.energy(last30)}`);
    const lag = Number(hourly.lag_secs);
    setText(lagNote, Number.isFinite(lag) && lag > 0 ? `Figures lag the live readings by up to ${lag} s (the roll-up interval).` : "");
  }

  async function loadTop(number, r) {
    const answer = await api(
      `/api/v1/fleet/top${query({ metric: "energy_wh", from: iso(r.from), to: iso(r.to), group: group || undefined, limit: TOP_LIMIT })}`,
    );
    if (!alive || number !== generation) return;
    const items = answer.items || [];
    topBody.replaceChildren(
      ...items.map((item, i) => {
        const href = `#/cp/${encodeURIComponent(item.charge_point_id)}`;
        const tr = h(
          "tr",
          { "data-cp-id": item.charge_point_id },
          h("td", { class: "num" }, String(i + 1)),
          h("td", { "data-field": "id" }, h("a", { href }, item.charge_point_id)),
          h("td", { class: "num", "data-field": "energy", "data-wh": item.value }, h("a", { href }, fmt.energy(item.value))),
        );
        return tr;
      }),
    );
    topEmpty.hidden = items.length > 0;
    stamp(topTable, r, { rows: items.length });
  }

  function txRow(t) {
    const cell = (field, cls, ...children) => h("td", { "data-field": field, class: cls }, ...children);
    const href = `#/cp/${encodeURIComponent(t.charge_point_id)}`;
    const known = (v) => v !== null && v !== undefined;
    return h(
      "tr",
      { "data-transaction-id": t.transaction_id, "data-cp-id": t.charge_point_id },
      cell("id", null, String(t.transaction_id)),
      cell("charge-point", null, h("a", { href }, t.charge_point_id)),
      cell("connector", null, known(t.connector_id) ? String(t.connector_id) : fmt.DASH),
      cell("id-tag", null, t.id_tag || fmt.DASH),
      cell("start", null, fmt.time(t.start_time)),
      cell("stop", null, t.stop_time ? fmt.time(t.stop_time) : h("span", { class: "state active" }, "active")),
      h("td", { "data-field": "energy", class: "num", "data-wh": known(t.energy_wh) ? t.energy_wh : null }, fmt.energy(known(t.energy_wh) ? t.energy_wh : null)),
      h("td", { "data-field": "duration", class: "num", "data-seconds": known(t.duration_s) ? t.duration_s : null }, fmt.duration(t.duration_s)),
      cell("max-power", "num", fmt.power(known(t.max_power_w) ? t.max_power_w : null)),
    );
  }

  function csvFilters(r) {
    return { from: iso(r.from), to: iso(r.to), group: group || undefined };
  }

  /** Reads a page of transactions: the first one (`cursor` null) replaces the table. */
  async function loadTransactions(number, r, cursor) {
    const answer = await api(`/api/v1/transactions${query({ ...csvFilters(r), limit: TX_PAGE, cursor })}`);
    if (!alive || number !== generation) return;
    const items = answer.items || [];
    const rows = items.map(txRow);
    if (cursor) txBody.append(...rows);
    else txBody.replaceChildren(...rows);
    txCursor = answer.next_cursor || null;
    more.hidden = !txCursor;
    more.disabled = false;
    const count = txBody.children.length;
    txEmpty.hidden = count > 0;
    stamp(txTable, r, { rows: count });
  }

  async function load() {
    const number = ++generation;
    const r = ranges(Date.now());
    window30 = r.days;
    root.dataset.state = "loading";
    csv.href = `/api/v1/transactions.csv${query(csvFilters(window30))}`;
    csv.download = `transactions-${iso(window30.from).slice(0, 10)}-${iso(window30.to - DAY).slice(0, 10)}${group ? `-${group}` : ""}.csv`;
    try {
      topReadAt = Date.now();
      await Promise.all([loadEnergy(number, r), loadTop(number, r.days), loadTransactions(number, r.days, null)]);
      if (!alive || number !== generation) return;
      banner.hidden = true;
      root.dataset.group = group;
      root.dataset.state = "ready";
    } catch (error) {
      if (!alive || number !== generation) return;
      root.dataset.state = "error";
      showError(error);
    }
  }

  /** Re-reads the charts and the top list only: the transactions keep their pages. */
  async function refresh() {
    const number = generation;
    const r = ranges(Date.now());
    if (r.days.from !== window30.from) {
      await load(); // a new day: every range moved
      return;
    }
    const reads = [loadEnergy(number, r)];
    if (Date.now() - topReadAt >= TOP_REFRESH_MS) {
      topReadAt = Date.now();
      reads.push(loadTop(number, r.days));
    }
    try {
      await Promise.all(reads);
    } catch (error) {
      if (alive && number === generation) showError(error);
    }
  }

  async function loadGroups() {
    const answer = await api("/api/v1/groups");
    if (!alive) return;
    const groups = [...(answer.groups || [])].sort((a, b) => (a.name || a.group_id).localeCompare(b.name || b.group_id));
    groupSelect.replaceChildren(
      h("option", { value: "" }, "Whole fleet"),
      ...groups.map((g) =>
        h("option", { value: g.group_id }, `${g.name || g.group_id} (${(g.charge_points || []).length})`),
      ),
    );
    if (group && !groups.some((g) => g.group_id === group)) {
      groupSelect.append(h("option", { value: group }, `${group} (unknown group)`));
    }
    groupSelect.value = group;
  }

  groupSelect.addEventListener("change", () => {
    group = groupSelect.value;
    // The group is kept in the address (bookmarkable) without re-mounting the page.
    history.replaceState(null, "", group ? `#/fleet/${encodeURIComponent(group)}` : "#/fleet");
    load();
  });

  more.addEventListener("click", async () => {
    if (!txCursor || more.disabled) return;
    more.disabled = true;
    const number = generation;
    try {
      await loadTransactions(number, window30, txCursor);
    } catch (error) {
      more.disabled = false;
      if (alive && number === generation) showError(error);
    }
  });

  csv.addEventListener("click", async (event) => {
    event.preventDefault();
    if (csv.dataset.downloadState === "downloading") return;
    csv.dataset.downloadState = "downloading";
    setText(csvStatus, "downloading…");
    try {
      const blob = await fetchBlob(csv.getAttribute("href"), "text/csv");
      const url = URL.createObjectURL(blob);
      const save = h("a", { href: url, download: csv.download, hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60 * 1000);
      csv.dataset.downloadBytes = String(blob.size);
      csv.dataset.downloadState = "done";
      setText(csvStatus, `saved ${csv.download} (${blob.size} bytes)`);
    } catch (error) {
      csv.dataset.downloadState = "error";
      setText(csvStatus, `could not download: ${errorText(error)}`);
    }
  });

  const timer = setInterval(() => {
    if (document.visibilityState === "visible" && window30) refresh();
  }, REFRESH_MS);

  const ready = (async () => {
    try {
      await loadGroups();
    } catch (error) {
      if (!alive) return;
      showError(error);
      if (error instanceof ApiError && error.status === 401) return;
    }
    await load();
  })();

  return {
    ready,
    filter: null,
    resync: () => {
      if (window30) refresh();
    },
    unmount() {
      alive = false;
      clearInterval(timer);
      hourlyChart.destroy();
      dailyChart.destroy();
    },
  };
}
