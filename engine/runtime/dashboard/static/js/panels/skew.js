// Skew per underlying (risk:skew:snapshot): each expiry's fitted SVI smile with the market
// quotes it was fitted to as points, the ATM term structure, and per expiry the 25-delta risk
// reversal and butterfly; each chart with the table of its data.

import {h, fig, head, stamp, num, axis, volPct, int, text, yesNo} from '../dom.js';
import {Charts, COLOURS, join} from '../chart.js';

export const id = 'skew';
export const families = ['skew'];

let root;
const charts = new Charts(); // "smile:BTC" / "term:BTC"

export function init(el) {
  root = el;
}

const day = (e) => e.slice(0, 10);

function smiles(key, und, list) {
  const fitted = list.filter(([, p]) => p.fit_strikes && p.fit_strikes.length);
  const series = fitted.flatMap(([, p], i) => [
    {label: `${day(p.expiry)} fit`, colour: COLOURS[i % COLOURS.length]},
    {label: `${day(p.expiry)} quotes`, colour: COLOURS[i % COLOURS.length], points: true}]);
  const c = charts.get(`smile:${und}`, {
    label: `${und} implied vol smiles by strike; the tables below hold the data`,
    series,
    x: {label: 'strike (USD)', fmt: axis},
    y: {label: 'vol (points)', fmt: (v) => volPct(v)},
  });
  c.setSeries(series);
  if (fitted.length) {
    c.set(join(fitted.flatMap(([, p]) => [[p.fit_strikes, p.fit_vols], [p.quote_strikes, p.quote_vols]])));
  }
  const table = () => h('div', {}, fitted.map(([field, p]) => h('table', {class: 'data small'},
    h('caption', {}, `${day(p.expiry)}: market quotes (implied vol) and the fit at the same strikes`),
    h('thead', {}, h('tr', {}, head('strike', 'USD', {class: 'num'}), head('market vol', 'vol points', {class: 'num'}))),
    h('tbody', {}, p.quote_strikes.map((_, i) => h('tr', {},
      h('td', {class: 'num'}, fig(key, field, p, `quote_strikes.${i}`, num)),
      h('td', {class: 'num'}, fig(key, field, p, `quote_vols.${i}`, volPct))))),
    h('tbody', {class: 'fit'}, p.fit_strikes.map((_, i) => h('tr', {class: 'muted'},
      h('td', {class: 'num'}, 'fit ', fig(key, field, p, `fit_strikes.${i}`, num)),
      h('td', {class: 'num'}, fig(key, field, p, `fit_vols.${i}`, volPct))))))));
  return [c.el, charts.table(`smile:${und}`, 'data: quotes and fitted smile', table)];
}

function term(key, und, p) {
  if (!p) return [];
  const c = charts.get(`term:${und}`, {
    label: `${und} ATM vol term structure; the table below holds the data`,
    series: [{label: 'ATM vol'}, {label: 'forward vol', dash: true}],
    x: {label: 'years to expiry', fmt: (v) => num(v)},
    y: {label: 'vol (points)', fmt: (v) => volPct(v)},
    height: 180,
  });
  c.set([p.T, p.atm_vol, p.forward_vol]);
  const table = () => h('table', {class: 'data small'},
    h('thead', {}, h('tr', {}, head('expiry'), head('T', p.units.T, {class: 'num'}),
      head('ATM vol', 'vol points', {class: 'num'}), head('forward vol', 'vol points', {class: 'num'}))),
    h('tbody', {}, p.expiries.map((_, i) => h('tr', {},
      h('td', {}, fig(key, und, p, `expiries.${i}`, day)),
      h('td', {class: 'num'}, fig(key, und, p, `T.${i}`, num)),
      h('td', {class: 'num'}, fig(key, und, p, `atm_vol.${i}`, volPct)),
      h('td', {class: 'num'}, fig(key, und, p, `forward_vol.${i}`, volPct))))));
  return [h('h4', {}, 'ATM term structure'), c.el, charts.table(`term:${und}`, 'data: term structure', table)];
}

function expiries(key, list) {
  return h('table', {class: 'data small'},
    h('thead', {}, h('tr', {}, head('expiry'), head('forward', 'USD', {class: 'num'}), head('quotes', 'count', {class: 'num'}),
      head('ATM vol', 'vol points', {class: 'num'}), head('25d RR', 'vol points', {class: 'num'}),
      head('25d fly', 'vol points', {class: 'num'}), head('fit error', 'vol points (RMSE)', {class: 'num'}),
      head('arbitrage-free'), head('status'))),
    h('tbody', {}, list.map(([field, p]) => h('tr', {dataset: {tsNs: String(p.ts_ns), family: 'skew'}},
      h('th', {scope: 'row'}, fig(key, field, p, 'expiry', day)),
      h('td', {class: 'num'}, fig(key, field, p, 'forward', num)),
      h('td', {class: 'num'}, fig(key, field, p, 'n_quotes', int)),
      h('td', {class: 'num'}, fig(key, field, p, 'atm_vol', volPct)),
      h('td', {class: 'num'}, fig(key, field, p, 'rr25', volPct)),
      h('td', {class: 'num'}, fig(key, field, p, 'bf25', volPct)),
      h('td', {class: 'num'}, fig(key, field, p, 'rmse_vol_points', num)),
      h('td', {}, p.butterfly ? fig(key, field, p, 'butterfly.arbitrage_free', yesNo) : '-'),
      h('td', {class: 'small'}, fig(key, field, p, 'status', text, {class: p.status === 'ok' ? 'muted' : 'warn'}))))));
}

export function render(store) {
  const key = store.hashKey('skew');
  const all = store.fields(key);
  if (!all.length) {
    charts.clear();
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no skew published yet (fits need 5 quoted strikes an expiry)'));
    return;
  }
  const byUnd = new Map();
  for (const [field, p] of all) {
    const und = p.underlying;
    if (!byUnd.has(und)) byUnd.set(und, {term: null, smiles: []});
    if (field === und) byUnd.get(und).term = p;
    else byUnd.get(und).smiles.push([field, p]);
  }
  root.replaceChildren(h('div', {class: 'cards'}, [...byUnd.entries()].map(([und, s]) => {
    const first = s.term ?? s.smiles[0]?.[1];
    const firstField = s.term ? und : s.smiles[0][0];
    return h('div', {class: 'card wide'},
      h('h3', {}, und),
      stamp(key, firstField, 'skew', first),
      h('div', {class: 'cols'},
        h('div', {}, h('h4', {}, 'Smiles'), ...smiles(key, und, s.smiles)),
        h('div', {}, ...term(key, und, s.term))),
      h('div', {class: 'scroll-x'}, expiries(key, s.smiles)));
  })));
}
