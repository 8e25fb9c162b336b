// Exposures by book, underlying or expiry: the figures of the exposure payloads
// (risk:snapshot), sortable by any column, with totals of the figures that add up (USD).

import {h, at, fig, head, sum, ref, stamp, num, usd, int} from '../dom.js';

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

// The rows at the chosen level: {book, underlying, expiry, field, payload, path(metric), ts}.
function rows(store, key) {
  const out = [];
  for (const [field, p] of store.fields(key)) {
    if (level === 'book' && p.scope === 'book') {
      out.push({book: p.book, underlying: '', expiry: '', field, p, path: (m) => m});
    } else if (level === 'underlying' && p.scope === 'underlying') {
      out.push({book: p.book, underlying: p.underlying, expiry: '', field, p, path: (m) => m});
    } else if (level === 'expiry' && p.scope === 'underlying') {
      p.expiries.expiry.forEach((expiry, i) => {
        out.push({book: p.book, underlying: p.underlying, expiry, field, p, path: (m) => `expiries.${m}.${i}`});
      });
    }
  }
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

function toolbar() {
  return h('div', {class: 'toolbar', role: 'group', 'aria-label': 'group exposures by'},
    'by ',
    ...LEVELS.map((l) => h('button', {
      type: 'button', class: l === level ? 'on' : '', 'aria-pressed': String(l === level),
      onclick: () => { level = l; render(lastStore); },
    }, l)));
}

let lastStore = null;

export function render(store) {
  lastStore = store;
  const key = store.hashKey('exposure');
  const all = store.fields(key);
  if (!all.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no exposure published yet'));
    return;
  }
  const units = all[0][1].units;
  const rs = rows(store, key);
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
  const thead = h('thead', {}, h('tr', {},
    nameHead('book'), nameHead('underlying'), level === 'expiry' ? nameHead('expiry') : null,
    ...METRICS.map(sortHead),
    head('positions', 'count', {class: 'num'}), head('stale', 'count', {class: 'num'})));
  const tbody = h('tbody', {}, rs.map((r) => {
    const tr = h('tr', {dataset: {tsNs: String(r.p.ts_ns), family: 'exposure'}},
      h('th', {scope: 'row'}, fig(key, r.field, r.p, 'book', String)),
      h('td', {}, r.p.scope === 'underlying' ? fig(key, r.field, r.p, 'underlying', String) : h('span', {class: 'muted'}, 'all')),
      level === 'expiry' ? h('td', {}, fig(key, r.field, r.p, r.path('expiry'), (e) => e.replace('T08:00:00Z', ''))) : null,
      ...METRICS.map((m) => h('td', {class: 'num'}, fig(key, r.field, r.p, r.path(m), isUsd(units[m]) ? usd : num))),
      h('td', {class: 'num'}, fig(key, r.field, r.p, r.path('n_positions'), int)),
      h('td', {class: 'num'}, fig(key, r.field, r.p, r.path('n_stale'), int, {class: 'stale-count'})));
    const stale = r.p.n_stale;
    if (stale) tr.classList.add('has-stale');
    return tr;
  }));
  const totals = h('tr', {class: 'total'},
    h('th', {scope: 'row'}, 'total'), h('td', {}), level === 'expiry' ? h('td', {}) : null,
    ...METRICS.map((m) => {
      if (!isUsd(units[m])) return h('td', {class: 'num muted', title: `${NAMES[m]} does not add across underlyings`}, '');
      return h('td', {class: 'num'}, sum(rs.map((r) => ref(key, r.field, r.path(m))),
        rs.map((r) => at(r.p, r.path(m)) ?? null), usd));
    }),
    h('td', {class: 'num'}, sum(rs.map((r) => ref(key, r.field, r.path('n_positions'))),
      rs.map((r) => at(r.p, r.path('n_positions'))), int)),
    h('td', {}));
  const [newestField, newest] = all.reduce((a, b) => (b[1].ts_ns > a[1].ts_ns ? b : a));
  root.replaceChildren(
    h('div', {class: 'panel-head card'}, toolbar(), stamp(key, newestField, 'exposure', newest)),
    h('div', {class: 'scroll'}, h('table', {class: 'data exposures'}, thead, tbody, h('tfoot', {}, totals))));
}
