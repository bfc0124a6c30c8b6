// Charts: a thin wrapper over uPlot that follows its container's width, and the sliding window
// the live charts keep (10 minutes or 600 instants, whichever is shorter).

import uPlot from "./vendor/uPlot.esm.js";
import { h } from "./dom.js";

const PHASE_COLORS = { L1: "#d9480f", L2: "#2b8a3e", L3: "#1c7ed6" };
const PALETTE = ["#1f2328", "#d9480f", "#2b8a3e", "#1c7ed6", "#9c36b5", "#e8590c", "#0c8599", "#5c940d"];

/** A stable colour per series label: phases keep theirs across charts. */
function color(label, i) {
  for (const [phase, c] of Object.entries(PHASE_COLORS)) {
    if (label === phase || label.endsWith(` ${phase}`) || label.startsWith(`${phase}-`) || label.includes(` ${phase}-`)) return c;
  }
  return PALETTE[i % PALETTE.length];
}

/** Local time tick labels that stay short on a phone: time of day, with the date over long spans. */
function timeTicks(u, splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  const clock = span < 10 * 60
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
    : { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const day = d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    if (span > 4 * 86400) return day;
    if (span > 20 * 3600) return `${day}\n${d.toLocaleTimeString(undefined, clock)}`;
    return d.toLocaleTimeString(undefined, clock);
  });
}

/** A uPlot time chart inside `container`; `set()` replaces its series and data. */
export class TimeChart {
  /**
   * `format(v)` for the legend, `axis(v)` for the y axis ticks, `bars` with `step` seconds for
   * bar charts (bucket width), `empty` the text shown without data.
   */
  constructor(container, { format, axis, bars = false, step = 0, empty = "No data yet" }) {
    this.container = container;
    this.options = { format, axis: axis || format, bars, step };
    this.plotEl = h("div", { class: "plot" });
    this.emptyEl = h("div", { class: "nodata" }, empty);
    container.append(this.plotEl, this.emptyEl);
    this.signature = null;
    this.plot = null;
    /** Fixed x range [min, max] in seconds (bar charts show their whole period), or null. */
    this.xRange = null;
    this.width = 0;
    this.resizeTimer = null;
    // Resizing inside the observer callback would grow the container within the same frame
    // (a "ResizeObserver loop" error); the resize runs just after instead.
    this.observer = new ResizeObserver(() => {
      clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => this.resize(), 30);
    });
    this.observer.observe(container);
  }

  height() {
    return window.innerWidth < 600 ? 170 : 210;
  }

  /** `series`: [{key, label}]; `data`: [xs (seconds), ...ys] aligned with it. */
  set(series, data) {
    const signature = series.map((s) => s.key).join("\u0000");
    const points = data[0] ? data[0].length : 0;
    this.emptyEl.hidden = points > 0;
    if (signature !== this.signature || !this.plot) {
      this.build(series, data);
      this.signature = signature;
    } else {
      this.plot.setData(data);
    }
  }

  build(series, data) {
    if (this.plot) this.plot.destroy();
    const { format, axis, bars, step } = this.options;
    const opts = {
      width: this.plotWidth(),
      height: this.height(),
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [
        {
          stroke: "#5f6b7a",
          grid: { stroke: "#eceff2" },
          ticks: { stroke: "#d8dde3" },
          space: 80,
          values: timeTicks,
        },
        {
          stroke: "#5f6b7a",
          grid: { stroke: "#eceff2" },
          ticks: { stroke: "#d8dde3" },
          size: 74,
          values: (u, splits) => splits.map((v) => axis(v)),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => {
          const c = color(s.label, i);
          const one = {
            label: s.label,
            stroke: c,
            width: bars ? 0 : 1.5,
            spanGaps: true,
            value: (u, v) => (v === null || v === undefined ? "—" : format(v)),
          };
          if (bars) {
            one.fill = `${c}cc`;
            one.points = { show: false };
            one.paths = uPlot.paths.bars({ size: [0.7, 48], align: 1 });
          }
          return one;
        }),
      ],
    };
    if (bars) {
      opts.scales.x.range = (u, min, max) => this.xRange || [min, max + step];
      opts.scales.y = { range: (u, min, max) => [0, Math.max(max, 0) * 1.1 || 1] };
    }
    this.plot = new uPlot(opts, data, this.plotEl);
    this.width = this.plotEl.clientWidth;
  }

  /** The content width available (the card's padding excluded), so the canvas never overflows. */
  plotWidth() {
    return Math.max(this.plotEl.clientWidth, 150);
  }

  resize() {
    const width = this.plotEl.clientWidth;
    if (!this.plot || width <= 0 || width === this.width) return;
    this.width = width;
    this.plot.setSize({ width: this.plotWidth(), height: this.height() });
  }

  destroy() {
    this.observer.disconnect();
    clearTimeout(this.resizeTimer);
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** The series order every chart uses: totals first, then phases, by connector. */
export function compareKeys(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

/**
 * Points of several series on a shared time axis, keeping the newest `windowMs` (measured back
 * from the newest point, so a charge point with a wrong clock still shows) and at most
 * `maxPoints` instants.
 */
export class LiveWindow {
  constructor({ windowMs = 10 * 60 * 1000, maxPoints = 600 } = {}) {
    this.windowMs = windowMs;
    this.maxPoints = maxPoints;
    this.times = [];
    this.rows = new Map();
    this.labels = new Map();
  }

  /** Adds one value; false when that series already had a value at that instant. */
  add(ms, key, label, value) {
    let row = this.rows.get(ms);
    if (!row) {
      const newest = this.times.length ? this.times[this.times.length - 1] : -Infinity;
      if (ms < newest - this.windowMs) return false;
      row = new Map();
      this.rows.set(ms, row);
      if (ms > newest) {
        this.times.push(ms);
      } else {
        let lo = 0;
        let hi = this.times.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (this.times[mid] < ms) lo = mid + 1;
          else hi = mid;
        }
        this.times.splice(lo, 0, ms);
      }
    }
    if (row.has(key)) return false;
    row.set(key, value);
    this.labels.set(key, label);
    this.prune();
    return true;
  }

  prune() {
    const newest = this.times[this.times.length - 1];
    let drop = 0;
    while (drop < this.times.length && (this.times[drop] < newest - this.windowMs || this.times.length - drop > this.maxPoints)) {
      this.rows.delete(this.times[drop]);
      drop += 1;
    }
    if (drop) this.times.splice(0, drop);
  }

  /** Instants held. */
  get size() {
    return this.times.length;
  }

  /** The newest instant, ms, or null. */
  get newest() {
    return this.times.length ? this.times[this.times.length - 1] : null;
  }

  /** [series, data] for TimeChart.set(). */
  toChart() {
    const present = new Set();
    for (const row of this.rows.values()) for (const key of row.keys()) present.add(key);
    const keys = [...present].sort(compareKeys);
    const series = keys.map((key) => ({ key, label: this.labels.get(key) }));
    const xs = this.times.map((t) => t / 1000);
    const ys = keys.map((key) => this.times.map((t) => {
      const v = this.rows.get(t).get(key);
      return v === undefined ? null : v;
    }));
    return [series, [xs, ...ys]];
  }
}
