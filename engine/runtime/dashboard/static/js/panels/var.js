// VaR and ES per book (risk:var:snapshot): the headline method's figures with their
// confidence, horizon and window, every method side by side, and the last hour as a chart
// (from the VaR stream, kept by the daemon and the page: data-derived), with its table.

import {h, fig, derived, head, stamp, lazyDetails, usd, pct, text, int, num} from '../dom.js';
import {Chart} from '../chart.js';

export const id = 'var';
export const families = ['var'];

const METHODS = ['delta_normal', 'delta_gamma', 'historical', 'monte_carlo'];
let root;
const charts = new Map(); // book -> Chart
const open = new Set(); // books whose history table is shown

export function init(el) {
  root = el;
}

const seconds = (ns) => Number(BigInt(ns) / 1000000n) / 1000;
const clock = (s) => new Date(s * 1000).toISOString().slice(11, 19);

function history(store, book, p) {
  const hist = store.varHistory.get(book) ?? {ts_ns: [], var: [], es: []};
  let chart = charts.get(book);
  if (!chart) {
    chart = new Chart(h('div', {class: 'chart', role: 'img', 'aria-label': `VaR and ES of ${book} over the last hour; the table below holds the data`}), {
      series: [{label: 'VaR'}, {label: 'ES', dash: true}],
      x: {time: true, label: 'daemon time (UTC)'},
      y: {label: 'USD', fmt: (v) => usd(v)},
    });
    charts.set(book, chart);
  }
  chart.set([hist.ts_ns.map(seconds), hist.var, hist.es]);
  const src = (col) => `stream(${store.prefix}:var:stream|${book}|${col})`;
  const details = lazyDetails(open, book,
    `data: ${hist.ts_ns.length} points (VaR and ES, ${p.method.replace('_', ' ')})`,
    () => h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('time', 'UTC'), head('VaR', 'USD', {class: 'num'}), head('ES', 'USD', {class: 'num'}))),
      h('tbody', {}, hist.ts_ns.map((t, i) => h('tr', {},
        h('td', {}, derived(src('ts_ns'), t, (v) => clock(seconds(v)))),
        h('td', {class: 'num'}, derived(src('var'), hist.var[i], usd)),
        h('td', {class: 'num'}, derived(src('es'), hist.es[i], usd)))))),
    () => render(store));
  return [chart.el, details];
}

function card(store, key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  const methods = h('table', {class: 'data methods'},
    h('thead', {}, h('tr', {}, head('method'), head('VaR', p.units.var, {class: 'num'}), head('ES', p.units.es, {class: 'num'}), head('status'))),
    h('tbody', {}, METHODS.map((m) => h('tr', {class: m === p.method ? 'headline' : ''},
      h('th', {scope: 'row'}, m.replace('_', ' ')),
      h('td', {class: 'num'}, f(`var_${m}`)),
      h('td', {class: 'num'}, f(`es_${m}`)),
      h('td', {class: 'small'}, f(`status.${m}`, text, {class: p.status[m] === 'ok' ? 'muted' : 'warn'}))))));
  return h('div', {class: 'card'},
    h('h3', {}, f('book', text)),
    stamp(key, book, 'var', p),
    h('div', {class: 'headline-figures'},
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'VaR'), f('var', usd, {class: 'loss'}), h('span', {class: 'unit'}, p.units.var)),
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'ES'), f('es', usd, {class: 'loss'}), h('span', {class: 'unit'}, p.units.es))),
    h('p', {class: 'small muted params'},
      'VaR at ', f('confidence', pct), ', ES at ', f('es_confidence', pct), ', horizon ', f('horizon_days', num), ' day(s), method ',
      f('method', (m) => m.replace('_', ' ')), ', window ', f('history_days', int), ' days of moves, ',
      f('mc_scenarios', int), ' Monte Carlo scenarios, ', f('positions', int), ' positions'),
    methods,
    ...history(store, book, p));
}

export function render(store) {
  const key = store.hashKey('var');
  const books = store.fields(key);
  for (const book of charts.keys()) {
    if (!books.some(([b]) => b === book)) { charts.get(book).destroy(); charts.delete(book); }
  }
  if (!books.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no VaR published yet (risk enabled, history of moves?)'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards'}, books.map(([book, p]) => card(store, key, book, p))));
}
