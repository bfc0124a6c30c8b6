// Alert table rows, shared by the alerts page and the charge point detail page, so both carry
// the same attributes: tr[data-alert-id] with [data-field="state"], [data-field="acknowledged"]
// and, until acknowledged, button[data-action="ack"].

import { api, ApiError } from "../api.js";
import { h, setText } from "../dom.js";
import * as fmt from "../format.js";

/** The header row of an alert table. */
export function alertHead({ showChargePoint = true } = {}) {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      h("th", {}, "State"),
      h("th", {}, "Severity"),
      h("th", {}, "Rule"),
      showChargePoint ? h("th", {}, "Charge point") : null,
      h("th", {}, "Connector / phase"),
      h("th", { class: "num" }, "Value"),
      h("th", { class: "num" }, "Threshold"),
      h("th", {}, "Raised"),
      h("th", {}, "Cleared"),
      h("th", {}, "Acknowledged"),
      h("th", {}, ""),
    ),
  );
}

/** A row for `alert`; `onChange(alert)` gets the acknowledged alert. */
export function alertRow(alert, { showChargePoint = true, onChange } = {}) {
  const cell = (field, cls) => h("td", { "data-field": field, class: cls });
  const tr = h(
    "tr",
    { "data-alert-id": alert.id },
    cell("state", "state"),
    cell("severity"),
    cell("rule"),
    showChargePoint ? cell("charge-point") : null,
    cell("where"),
    cell("value", "num"),
    cell("threshold", "num"),
    cell("raised-at"),
    cell("cleared-at"),
    cell("acknowledged"),
    cell("actions"),
  );
  tr._onChange = onChange;
  updateAlertRow(tr, alert);
  return tr;
}

/** Brings an existing row up to date with `alert`. */
export function updateAlertRow(tr, alert) {
  tr._alert = alert;
  const get = (field) => tr.querySelector(`[data-field="${field}"]`);
  const state = get("state");
  setText(state, alert.state);
  state.className = `state ${alert.state}`;
  const severity = get("severity");
  setText(severity, alert.severity);
  severity.className = `sev-${alert.severity}`;
  setText(get("rule"), fmt.rule(alert.rule));
  const cp = get("charge-point");
  if (cp && !cp.firstChild) {
    cp.append(h("a", { href: `#/cp/${encodeURIComponent(alert.charge_point_id)}` }, alert.charge_point_id));
  }
  const where = [`#${alert.connector_id}`];
  if (alert.phase) where.push(alert.phase);
  if (alert.measurand) where.push(alert.measurand);
  setText(get("where"), where.join(" "));
  setText(get("value"), fmt.value(alert.value, alert.unit));
  setText(get("threshold"), fmt.value(alert.threshold, alert.unit));
  fmt.setTime(get("raised-at"), alert.raised_at);
  fmt.setTime(get("cleared-at"), alert.cleared_at);
  const acked = get("acknowledged");
  setText(acked, alert.acknowledged_at ? "yes" : "no");
  acked.title = alert.acknowledged_at ? `acknowledged ${fmt.utc(new Date(alert.acknowledged_at))}` : "";
  const actions = get("actions");
  const button = actions.querySelector('button[data-action="ack"]');
  if (alert.acknowledged_at) {
    if (button) button.remove();
  } else if (!button) {
    actions.append(
      h("button", { type: "button", "data-action": "ack", onclick: () => acknowledge(tr) }, "Acknowledge"),
    );
  }
}

async function acknowledge(tr) {
  const button = tr.querySelector('button[data-action="ack"]');
  if (!button || button.disabled) return;
  button.disabled = true;
  const id = tr.getAttribute("data-alert-id");
  try {
    const alert = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    updateAlertRow(tr, alert);
    if (tr._onChange) tr._onChange(alert);
  } catch (error) {
    button.disabled = false;
    button.title = error instanceof ApiError ? error.message : String(error);
    setText(button, "Retry acknowledge");
  }
}
