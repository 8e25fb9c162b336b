// The page's copy of what the daemon holds, kept from the WebSocket's messages
// (docs/dashboard.md "Protocol"): every Redis hash field by (key, field), the alert transition
// log, each book's VaR history, the daemon's state.

export const PROTOCOL = 1;
export const LOG_SIZE = 200;
const HISTORY_MAX = 36000;

// Integers beyond 2^53 (the ns timestamps) would lose digits as JSON numbers: they are quoted
// before parsing and stay strings of their digits (BigInt() of one is exact; dom.js shows them
// as numbers). Plain JSON.parse, about ten times faster than one with a reviver.
const BIG_INT = /([:[,])(-?\d{16,})(?=[,\]}])/g;
export const isBigInt = (v) => typeof v === 'string' && /^-?\d{16,}$/.test(v);

export function parse(text) {
  return JSON.parse(text.replace(BIG_INT, '$1"$2"'));
}

// Whether ns timestamp a is later than b (numbers or strings of digits).
export const later = (a, b) => BigInt(a) > BigInt(b);

export class Store {
  constructor() {
    this.prefix = null;
    this.reset();
  }

  reset() {
    this.entries = new Map(); // key -> Map(field -> payload)
    this.alertLog = []; // oldest first
    this.varHistory = new Map(); // book -> {method, ts_ns: [digits], var: [], es: []}
    this.health = null;
    this.staleAfterS = 10;
    this.periodsS = {};
    this.connected = false;
  }

  hashKey(family) {
    return family === 'exposure' ? `${this.prefix}:snapshot` : `${this.prefix}:${family}:snapshot`;
  }

  get activeKey() {
    return `${this.prefix}:alerts:active`;
  }

  familyOf(key) {
    if (key === this.activeKey) return 'alerts';
    if (key === `${this.prefix}:snapshot`) return 'exposure';
    const m = key.slice(this.prefix.length + 1).match(/^([a-z]+):snapshot$/);
    return m ? m[1] : null;
  }

  // The fields of one hash, sorted by field: [[field, payload], ...].
  fields(key) {
    const m = this.entries.get(key);
    return m ? [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) : [];
  }

  // Apply one message; returns the set of what changed: families, 'alerts', 'health', 'all'.
  apply(msg) {
    const changed = new Set();
    if (msg.type === 'snapshot') {
      this.reset();
      this.prefix = msg.prefix;
      this.staleAfterS = msg.stale_after_s;
      this.periodsS = msg.periods_s;
      for (const [book, h] of Object.entries(msg.var_history)) {
        this.varHistory.set(book, {method: h.method, ts_ns: h.ts_ns, var: h.var, es: h.es});
      }
      changed.add('all');
    }
    this.connected = true;
    for (const e of msg.entries) {
      let m = this.entries.get(e.key);
      if (!m) this.entries.set(e.key, (m = new Map()));
      if (e.payload === null) m.delete(e.field);
      else m.set(e.field, e.payload);
      const family = this.familyOf(e.key);
      if (family) changed.add(family);
      if (family === 'var' && e.payload !== null && msg.type === 'update') this.addVarPoint(e.field, e.payload);
    }
    if (msg.alerts.length) {
      this.alertLog.push(...msg.alerts);
      this.alertLog.splice(0, Math.max(0, this.alertLog.length - LOG_SIZE));
      changed.add('alerts');
    }
    if (msg.health) {
      this.health = msg.health;
      changed.add('health');
    }
    return changed;
  }

  addVarPoint(book, p) {
    let h = this.varHistory.get(book);
    if (!h) this.varHistory.set(book, (h = {method: p.method, ts_ns: [], var: [], es: []}));
    const last = h.ts_ns.length ? h.ts_ns[h.ts_ns.length - 1] : null;
    if (last !== null && !later(p.ts_ns, last)) return;
    h.method = p.method;
    h.ts_ns.push(p.ts_ns);
    h.var.push(p.var);
    h.es.push(p.es);
    if (h.ts_ns.length > HISTORY_MAX) {
      for (const k of ['ts_ns', 'var', 'es']) h[k].splice(0, h[k].length - HISTORY_MAX);
    }
  }

  // Seconds between the payload's time and the daemon's clock now (null before any health).
  ageS(tsNs) {
    if (!this.health || tsNs === null || tsNs === undefined) return null;
    return Number(BigInt(this.health.now_ns) - BigInt(tsNs)) / 1e9;
  }

  staleLimitS(family) {
    return this.staleAfterS + 2 * (this.periodsS[family] ?? 0);
  }
}
