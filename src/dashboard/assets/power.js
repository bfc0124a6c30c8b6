// Current power of a charge point from its latest Power.Active.Import readings, by the rule the
// server's statistics use (README, Real-time statistics): per connector the total reading, or
// the sum of its line-to-neutral phases when it reports only phases; connector 0 (the charge
// point's own meter) when it reports power, else the connectors added up.

const POWER = "Power.Active.Import";
const LINE_TO_NEUTRAL = new Set(["L1", "L2", "L3", "L1-N", "L2-N", "L3-N"]);

/** Latest power readings of one charge point, fed sample by sample. */
export class PowerState {
  constructor() {
    /** connector -> phase ("" = total) -> {t, v} */
    this.readings = new Map();
  }

  /** Takes the power readings among `samples`; true when one changed the state. */
  add(samples) {
    let changed = false;
    for (const s of samples || []) {
      if (s.measurand !== POWER || typeof s.value !== "number") continue;
      const phase = s.phase || "";
      if (phase && !LINE_TO_NEUTRAL.has(phase)) continue;
      const t = Date.parse(s.timestamp) || 0;
      let byPhase = this.readings.get(s.connector_id);
      if (!byPhase) this.readings.set(s.connector_id, (byPhase = new Map()));
      const old = byPhase.get(phase);
      if (old && old.t > t) continue;
      // Phases reported at an older instant than the newest total no longer count.
      byPhase.set(phase, { t, v: s.value });
      changed = true;
    }
    return changed;
  }

  /** Watts, or null when no power was reported. */
  total() {
    const perConnector = new Map();
    for (const [connector, byPhase] of this.readings) {
      const total = byPhase.get("");
      const phases = [...byPhase.entries()].filter(([p]) => p !== "");
      const newestPhase = Math.max(-Infinity, ...phases.map(([, r]) => r.t));
      if (total && (phases.length === 0 || total.t >= newestPhase)) {
        perConnector.set(connector, total.v);
      } else if (phases.length) {
        const recent = phases.filter(([, r]) => r.t === newestPhase);
        perConnector.set(connector, recent.reduce((sum, [, r]) => sum + r.v, 0));
      }
    }
    if (perConnector.size === 0) return null;
    if (perConnector.has(0)) return perConnector.get(0);
    let sum = 0;
    for (const v of perConnector.values()) sum += v;
    return sum;
  }
}

/**
 * Energy per bucket start from roll-up buckets of an energy register: per connector the total
 * series (no phase) or else its phases added up; connector 0 when present, else the connectors
 * added up. Returns [[startMs, wh], ...] sorted by start.
 */
export function energyPerBucket(buckets) {
  const byStart = new Map();
  for (const b of buckets || []) {
    if (typeof b.energy_wh !== "number") continue;
    const start = Date.parse(b.start);
    let connectors = byStart.get(start);
    if (!connectors) byStart.set(start, (connectors = new Map()));
    let c = connectors.get(b.connector_id);
    if (!c) connectors.set(b.connector_id, (c = { total: null, phases: 0 }));
    if (b.phase) c.phases += b.energy_wh;
    else c.total = (c.total || 0) + b.energy_wh;
  }
  const out = [];
  for (const [start, connectors] of byStart) {
    const per = new Map([...connectors].map(([id, c]) => [id, c.total ?? c.phases]));
    const wh = per.has(0) ? per.get(0) : [...per.values()].reduce((a, b) => a + b, 0);
    out.push([start, wh]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}
