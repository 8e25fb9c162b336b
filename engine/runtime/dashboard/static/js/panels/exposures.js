// Exposures by book, underlying or expiry: the figures of the exposure payloads
// (risk:snapshot), sortable by any column, with totals of the figures that add up (USD).

import {h, at, fig, head, sum, ref, stamp, refreshAll, num, usd, int} from '../dom.js';
import {later} from '../store.js';

export const id = 'exposures';
export const families = ['exposure'];

const METRICS = ['delta', 'delta_usd', 'delta_adj', 'cash_gamma', 'vega', 'theta', 'market_value', 'pnl'];
const NAMES = {
  delta: 'delta', delta_usd: 'delta $', delta_adj: 'delta adj', cash_gamma: 'cash gamma',
  vega: 'vega', theta: 'theta', market_value: 'value', pnl: 'P&L',
};
const LEVELS = ['book', 'underlying', 'expiry'];

let root;
let level = 'underlying';
let sortBy = null; // a metric, or null: by name
let descending = true;

export function init(el, store) {
  root = el;
}

function isUsd(unit) {
  return typeof unit === 'string' && unit.startsWith('USD');
}

// The rows at the chosen level: {field, p, path(metric), tr}. A payload's rows (and their
// elements, built once) are kept until a newer payload replaces it: a redraw builds only the
// rows of the keys that changed.
let rowCache = new Map(); // `${level}|${field}` -> {p, rows}

function rowsOf(field, p) {
  if (level === 'expiry') {
    return p.scope === 'underlying'
      ? p.expiries.expiry.map((_, i) => ({field, p, path: (m) => `expiries.${m}.${i}`, tr: null}))
      : [];
  }
  return p.scope === level ? [{field, p, path: (m) => m, tr: null}] : [];
}

function sameRows(a, b) {
  if (a.scope !== b.scope) return false;
  if (level !== 'expiry' || a.scope !== 'underlying') return true;
  const x = a.expiries.expiry;
  const y = b.expiries.expiry;
  return x.length === y.length && x.every((e, i) => e === y[i]);
}

function refreshRow(tr, p) {
  refreshAll(tr, p);
  tr.classList.toggle('has-stale', Boolean(p.n_stale));
}

// Rows in (or near) the table's scroll box take a newer payload at once; the others keep it
// for when they scroll in: a book of a thousand rows costs the frames of the rows on screen.
let onScreen = null; // the IntersectionObserver of the rows, rooted at the scroll box

function watch(scroll) {
  onScreen?.disconnect();
  onScreen = new IntersectionObserver((seen) => {
    for (const e of seen) {
      const tr = e.target;
      tr.onScreen = e.isIntersecting;
      if (tr.onScreen && tr.behind) {
        refreshRow(tr, tr.behind);
        tr.behind = null;
      }
    }
  }, {root: scroll, rootMargin: '200px 0px'});
}

function offer(tr, p) {
  if (tr.onScreen) refreshRow(tr, p);
  else tr.behind = p;
}

function rows(store, key) {
  const out = [];
  const cache = new Map();
  for (const [field, p] of store.fields(key)) {
    const k = `${level}|${field}`;
    let c = rowCache.get(k);
    if (!c || !sameRows(c.p, p)) {
      c = {p, rows: rowsOf(field, p)};
    } else if (c.p !== p) { // a newer payload, the same rows: their figures updated in place
      c.p = p;
      for (const r of c.rows) {
        r.p = p;
        if (r.tr) offer(r.tr, p);
      }
    }
    cache.set(k, c);
    out.push(...c.rows);
  }
  rowCache = cache;
  const value = (r) => {
    const v = at(r.p, r.path(sortBy));
    return v === null || v === undefined ? null : Number(v);
  };
  if (sortBy) {
    out.sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === null) return y === null ? 0 : 1;
      if (y === null) return -1;
      return descending ? y - x : x - y;
    });
  }
  return out;
}

function row(key, r, units) {
  const tr = h('tr', {dataset: {tsNs: String(r.p.ts_ns), family: 'exposure'}},
    h('th', {scope: 'row'}, fig(key, r.field, r.p, 'book', String)),
    h('td', {}, r.p.scope === 'underlying' ? fig(key, r.field, r.p, 'underlying', String) : h('span', {class: 'muted'}, 'all')),
    level === 'expiry' ? h('td', {}, fig(key, r.field, r.p, r.path('expiry'), (e) => e.replace('T08:00:00Z', ''))) : null,
    ...METRICS.map((m) => h('td', {class: 'num'}, fig(key, r.field, r.p, r.path(m), isUsd(units[m]) ? usd : num))),
    h('td', {class: 'num'}, fig(key, r.field, r.p, r.path('n_positions'), int)),
    h('td', {class: 'num'}, fig(key, r.field, r.p, r.path('n_stale'), int, {class: 'stale-count'})));
  if (r.p.n_stale) tr.classList.add('has-stale');
  onScreen.observe(tr);
  return tr;
}

// Made once and kept: a redraw only marks the level chosen, so a click (or the keyboard's
// focus) never meets a button that a redraw has just replaced.
function toolbar() {
  const buttons = LEVELS.map((l) => h('button', {
    type: 'button', onclick: () => { level = l; render(lastStore); },
  }, l));
  const bar = h('div', {class: 'toolbar', role: 'group', 'aria-label': 'group exposures by'},
    'by ', ...buttons);
  bar.mark = () => buttons.forEach((b, i) => {
    b.className = LEVELS[i] === level ? 'on' : '';
    b.setAttribute('aria-pressed', String(LEVELS[i] === level));
  });
  return bar;
}

let lastStore = null;

// The table's parts, kept between redraws: the rows move, the head is made again only when the
// level, the sort or the units change.
const parts = {table: null, tbody: null, tfoot: null, head: null, toolbar: null, stamp: null, headFor: '', order: []};

function thead(store, units) {
  const sortHead = (m) => {
    const th = head(NAMES[m], units[m], {class: 'num sortable'});
    th.setAttribute('aria-sort', sortBy === m ? (descending ? 'descending' : 'ascending') : 'none');
    th.tabIndex = 0;
    const flip = () => {
      if (sortBy === m) descending = !descending;
      else { sortBy = m; descending = true; }
      render(store);
    };
    th.addEventListener('click', flip);
    th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); flip(); } });
    return th;
  };
  const nameHead = (n) => {
    const th = head(n, null, {class: 'sortable'});
    th.setAttribute('aria-sort', sortBy === null ? 'ascending' : 'none');
    th.tabIndex = 0;
    th.addEventListener('click', () => { sortBy = null; render(store); });
    return th;
  };
  return h('thead', {}, h('tr', {},
    nameHead('book'), nameHead('underlying'), level === 'expiry' ? nameHead('expiry') : null,
    ...METRICS.map(sortHead),
    head('positions', 'count', {class: 'num'}), head('stale', 'count', {class: 'num'})));
}

function totals(key, rs, units) {
  return h('tr', {class: 'total'},
    h('th', {scope: 'row'}, 'total'), h('td', {}), level === 'expiry' ? h('td', {}) : null,
    ...METRICS.map((m) => {
      if (!isUsd(units[m])) return h('td', {class: 'num muted', title: `${NAMES[m]} does not add across underlyings`}, '');
      return h('td', {class: 'num'}, sum(rs.map((r) => ref(key, r.field, r.path(m))),
        rs.map((r) => at(r.p, r.path(m)) ?? null), usd));
    }),
    h('td', {class: 'num'}, sum(rs.map((r) => ref(key, r.field, r.path('n_positions'))),
      rs.map((r) => at(r.p, r.path('n_positions'))), int)),
    h('td', {}));
}

export function render(store) {
  lastStore = store;
  const key = store.hashKey('exposure');
  const all = store.fields(key);
  if (!all.length) {
    parts.table = null;
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no exposure published yet'));
    return;
  }
  const units = all[0][1].units;
  if (!parts.table) {
    parts.tbody = h('tbody', {});
    parts.tfoot = h('tfoot', {});
    parts.table = h('table', {class: 'data exposures'}, h('thead', {}), parts.tbody, parts.tfoot);
    parts.toolbar = toolbar();
    parts.stamp = h('span', {});
    parts.head = h('div', {class: 'panel-head card'}, parts.toolbar, parts.stamp);
    parts.headFor = '';
    parts.order = [];
    const scroll = h('div', {class: 'scroll'}, parts.table);
    watch(scroll);
    rowCache = new Map(); // rows watched by an observer of an older table are made again
    root.replaceChildren(parts.head, scroll);
  }
  const rs = rows(store, key);
  const trs = rs.map((r) => (r.tr ??= row(key, r, units)));
  const headFor = `${level}|${sortBy}|${descending}|${JSON.stringify(units)}`;
  if (parts.headFor !== headFor) {
    parts.table.tHead.replaceWith(thead(store, units));
    parts.headFor = headFor;
  }
  if (trs.length !== parts.order.length || trs.some((tr, i) => tr !== parts.order[i])) {
    const kept = new Set(trs);
    for (const tr of parts.order) if (!kept.has(tr)) onScreen.unobserve(tr);
    parts.tbody.replaceChildren(...trs);
    parts.order = trs;
  }
  parts.tfoot.replaceChildren(totals(key, rs, units));
  const [newestField, newest] = all.reduce((a, b) => (later(b[1].ts_ns, a[1].ts_ns) ? b : a));
  parts.toolbar.mark();
  parts.stamp.replaceChildren(stamp(key, newestField, 'exposure', newest));
}
