// Units and times as an operator reads them: W -> kW, Wh -> kWh, local time with UTC on hover.

import { h } from "./dom.js";

const DASH = "—";

/** Power in W: "7.4 kW" from 1 kW up, "640 W" below. */
export function power(w) {
  if (w === null || w === undefined || !Number.isFinite(w)) return DASH;
  const abs = Math.abs(w);
  if (abs >= 1e6) return `${(w / 1e6).toFixed(2)} MW`;
  if (abs >= 1000) return `${(w / 1000).toFixed(1)} kW`;
  return `${Math.round(w)} W`;
}

/** Energy in Wh, always as kWh so columns compare at a glance. */
export function energy(wh) {
  if (wh === null || wh === undefined || !Number.isFinite(wh)) return DASH;
  const kwh = wh / 1000;
  return `${kwh.toFixed(Math.abs(kwh) >= 100 ? 1 : 2)} kWh`;
}

/** A duration in seconds: "45 s", "12 min 05 s", "1 h 05 min", "2 d 3 h". */
export function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s) || s < 0) return DASH;
  const total = Math.round(s);
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A value in a normalised unit of the API (W, Wh, V, A, Celsius, ...). */
export function value(v, unit) {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  switch (unit) {
    case "W": return power(v);
    case "Wh": return energy(v);
    case "V": return `${v.toFixed(1)} V`;
    case "A": return `${v.toFixed(1)} A`;
    case "Celsius": return `${v.toFixed(1)} °C`;
    case "Percent": return `${v.toFixed(0)} %`;
    case "Hz": return `${v.toFixed(2)} Hz`;
    case "s": return `${Math.round(v)} s`;
    case "var": case "VA": return v >= 1000 ? `${(v / 1000).toFixed(1)} k${unit}` : `${Math.round(v)} ${unit}`;
    case "varh": return `${(v / 1000).toFixed(2)} kvarh`;
    default: return unit ? `${v} ${unit}` : String(v);
  }
}

/** "2025-01-01 10:20:00 UTC", the hover text of every time shown. */
export function utc(date) {
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Local time, the date left out when it is today. */
export function local(date) {
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString()
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** A <time> element: local time as text, UTC in the title. */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, DASH);
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, String(iso));
  return h("time", { datetime: date.toISOString(), title: utc(date) }, local(date));
}

/** Fills an existing cell with a <time>, untouched when the time did not change. */
export function setTime(cell, iso) {
  const date = iso ? new Date(iso) : null;
  const key = date && !Number.isNaN(date.getTime()) ? date.toISOString() : String(iso);
  if (cell.dataset.time === key) return;
  cell.dataset.time = key;
  cell.replaceChildren(time(iso));
}

/** "high_power" -> "High power". */
export function rule(name) {
  const text = String(name || "").replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export { DASH };
