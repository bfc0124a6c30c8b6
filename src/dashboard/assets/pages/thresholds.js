// Thresholds editor: the global document (GET/PUT /api/v1/thresholds) and per charge point
// overrides (GET/PUT/DELETE /api/v1/charge-points/{id}/thresholds). The inputs are built from
// the fields the API answers, so a new threshold appears here without a change.

import { api, ApiError, cpPath } from "../api.js";
import { h, replace, setText } from "../dom.js";

const LABELS = {
  power_max_w: "Maximum power (W)",
  temperature_max_c: "Maximum temperature (°C)",
  temperature_min_c: "Minimum temperature (°C)",
  voltage_min_v: "Minimum voltage (V, line to neutral)",
  voltage_max_v: "Maximum voltage (V, line to neutral)",
  current_max_a: "Maximum current per phase (A)",
  hysteresis_pct: "Hysteresis (% of the threshold)",
};

/** The fields of a thresholds document (everything numeric but `source`). */
function fields(doc) {
  const known = Object.keys(LABELS);
  const rank = (k) => (known.includes(k) ? known.indexOf(k) : known.length);
  return Object.keys(doc)
    .filter((k) => k !== "source" && typeof doc[k] === "number")
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Inputs for `doc` inside `form`, before its actions row. */
function fillForm(form, doc, actions) {
  for (const old of form.querySelectorAll("label[data-threshold]")) old.remove();
  for (const field of fields(doc)) {
    const input = h("input", { name: field, type: "number", step: "any", required: true, value: doc[field] });
    form.insertBefore(h("label", { "data-threshold": field }, LABELS[field] || field, input), actions);
  }
}

/** The document typed into `form`, numbers as numbers. */
function readForm(form) {
  const doc = {};
  for (const input of form.querySelectorAll("input[name]")) {
    doc[input.name] = input.value.trim() === "" ? null : Number(input.value);
  }
  return doc;
}

function status(el, text, isError) {
  setText(el, text);
  el.classList.toggle("error", Boolean(isError));
}

function errorText(error) {
  return error instanceof ApiError ? error.message : String(error.message || error);
}

export function mount(view, { params }) {
  let alive = true;
  const banner = h("div", { class: "banner error", hidden: true, role: "alert" });

  // Global document.
  const globalStatus = h("span", { "data-save-status": "", role: "status" });
  const globalActions = h(
    "div",
    { class: "actions" },
    h("button", { type: "submit", class: "primary", "data-action": "save-thresholds" }, "Save"),
    globalStatus,
  );
  const globalForm = h("form", { id: "thresholds-global", class: "thresholds card" }, globalActions);
  globalForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    status(globalStatus, "saving…");
    try {
      const doc = await api("/api/v1/thresholds", { method: "PUT", body: readForm(globalForm) });
      fillForm(globalForm, doc, globalActions);
      status(globalStatus, "saved");
    } catch (error) {
      status(globalStatus, errorText(error), true);
    }
  });

  // Per charge point.
  const cpInput = h("input", {
    id: "thresholds-cp",
    type: "text",
    placeholder: "Charge point id",
    "aria-label": "Charge point id",
    list: "thresholds-cp-ids",
    autocomplete: "off",
    value: params[0] || "",
  });
  const ids = h("datalist", { id: "thresholds-cp-ids" });
  const loadButton = h("button", { type: "button", "data-action": "load-cp-thresholds" }, "Load");
  const cpArea = h("div");
  let cpForm = null;

  async function loadCp() {
    const id = cpInput.value.trim();
    if (!id) return;
    cpArea.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const doc = await api(cpPath(id, "/thresholds"));
      if (!alive) return;
      showCp(id, doc);
    } catch (error) {
      if (!alive) return;
      cpArea.replaceChildren(h("p", { class: "error" }, `Could not load the thresholds of ${id}: ${errorText(error)}`));
    }
  }

  function showCp(id, doc) {
    const source = h("p", { class: "muted", "data-threshold-source": doc.source || "" });
    const setSource = (s) => {
      source.dataset.thresholdSource = s || "";
      setText(source, s === "charge_point" ? `${id} has its own thresholds (override).` : `${id} follows the global thresholds (no override).`);
    };
    setSource(doc.source);
    const cpStatus = h("span", { "data-save-status": "", role: "status" });
    const actions = h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary", "data-action": "save-cp-thresholds" }, "Save override"),
      h("button", { type: "button", class: "danger", "data-action": "delete-cp-thresholds" }, "Delete override"),
      cpStatus,
    );
    cpForm = h("form", { id: "thresholds-cp-form", class: "thresholds card", "data-cp-id": id }, actions);
    fillForm(cpForm, doc, actions);
    cpForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      status(cpStatus, "saving…");
      try {
        const saved = await api(cpPath(id, "/thresholds"), { method: "PUT", body: readForm(cpForm) });
        fillForm(cpForm, saved, actions);
        setSource(saved.source || "charge_point");
        status(cpStatus, "saved");
      } catch (error) {
        status(cpStatus, errorText(error), true);
      }
    });
    actions.querySelector('[data-action="delete-cp-thresholds"]').addEventListener("click", async () => {
      status(cpStatus, "deleting…");
      try {
        const global = await api(cpPath(id, "/thresholds"), { method: "DELETE" });
        fillForm(cpForm, global, actions);
        setSource(global.source || "global");
        status(cpStatus, "deleted");
      } catch (error) {
        status(cpStatus, errorText(error), true);
      }
    });
    cpArea.replaceChildren(h("h3", {}, `Thresholds in force for ${id}`), source, cpForm);
  }

  loadButton.addEventListener("click", loadCp);
  cpInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      loadCp();
    }
  });

  replace(
    view,
    h(
      "section",
      {},
      h("h1", {}, "Thresholds"),
      banner,
      h("p", { class: "muted" }, "Alerts fire when a reading crosses these limits and clear once it is back inside by the hysteresis. A charge point override wins over the global document."),
      h("h2", {}, "Global"),
      globalForm,
      h("h2", {}, "Per charge point"),
      h("div", { class: "toolbar" }, cpInput, ids, loadButton),
      cpArea,
    ),
  );

  async function load() {
    try {
      const doc = await api("/api/v1/thresholds");
      if (!alive) return;
      banner.hidden = true;
      fillForm(globalForm, doc, globalActions);
    } catch (error) {
      if (!alive) return;
      setText(banner, error instanceof ApiError && error.status === 401 ? "Waiting for an admin token." : `Could not load the thresholds: ${errorText(error)}`);
      banner.hidden = false;
      return;
    }
    api("/api/v1/charge-points")
      .then((list) => {
        if (alive) ids.replaceChildren(...list.map((cp) => h("option", { value: cp.id })));
      })
      .catch(() => {});
    if (params[0]) await loadCp();
  }

  return {
    ready: load(),
    filter: null,
    unmount() {
      alive = false;
    },
  };
}
