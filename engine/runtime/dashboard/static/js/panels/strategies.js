// Strategies per (book, strategy) (risk:strategy:snapshot): legs, value, P&L against cost,
// Greeks and margin, and the payoff diagram: P&L at the first expiry and now, over the
// underlying's price, with the table of its data.

import {h, fig, head, stamp, usd, num, axis, text} from '../dom.js';
import {Chart} from '../chart.js';

export const id = 'strategies';
export const families = ['strategy'];

let root;
const charts = new Map();
const open = new Set();

export function init(el) {
  root = el;
}

function payoff(key, field, p) {
  const po = p.payoff;
  if (!po || !po.S) return [h('p', {class: 'small muted'}, 'payoff: ', po ? fig(key, field, p, 'payoff.status', text) : 'none')];
  let c = charts.get(field);
  const series = [{label: 'at expiry'}];
  if (po.pnl_now) series.push({label: 'now', dash: true});
  if (!c) {
    c = new Chart(h('div', {class: 'chart', role: 'img', 'aria-label': `payoff of ${p.strategy} in ${p.book}; the table below holds the data`}), {
      series, x: {label: `${p.underlying} price (USD)`, fmt: axis}, y: {label: 'P&L (USD)', fmt: usd}, height: 200,
    });
    charts.set(field, c);
  }
  c.setSeries(series);
  c.set(po.pnl_now ? [po.S, po.pnl, po.pnl_now] : [po.S, po.pnl]);
  const d = h('details', {class: 'table-of-chart', open: open.has(field),
    ontoggle: (e) => { if (e.target.open) open.add(field); else open.delete(field); }},
  h('summary', {}, `data: ${po.S.length} prices`),
  h('table', {class: 'data small'},
    h('thead', {}, h('tr', {}, head(`${p.underlying} price`, 'USD', {class: 'num'}), head('P&L at expiry', 'USD', {class: 'num'}),
      po.pnl_now ? head('P&L now', 'USD', {class: 'num'}) : null)),
    h('tbody', {}, po.S.map((_, i) => h('tr', {},
      h('td', {class: 'num'}, fig(key, field, p, `payoff.S.${i}`, num)),
      h('td', {class: 'num'}, fig(key, field, p, `payoff.pnl.${i}`, usd)),
      po.pnl_now ? h('td', {class: 'num'}, fig(key, field, p, `payoff.pnl_now.${i}`, usd)) : null)))));
  return [
    c.el,
    h('p', {class: 'small'}, 'breakevens ', ...(po.breakevens ?? []).map((_, i) => [fig(key, field, p, `payoff.breakevens.${i}`, num), ' ']),
      ' · max profit ', fig(key, field, p, 'payoff.max_profit', usd), ' · max loss ', fig(key, field, p, 'payoff.max_loss', usd),
      h('span', {class: 'unit'}, 'USD (- : unbounded)')),
    d,
  ];
}

function card(key, field, p) {
  const f = (path, fmt = num, opts) => fig(key, field, p, path, fmt, opts);
  const u = p.units;
  const greek = (name, path) => [h('dt', {}, name), h('dd', {}, f(path), h('span', {class: 'unit'}, u[path] ?? ''))];
  return h('div', {class: 'card'},
    h('h3', {}, f('book', text), ' · ', f('kind', text), p.status !== 'ok' ? h('span', {class: 'badge warn'}, p.status) : null),
    h('div', {class: 'small mono'}, f('strategy', text)),
    stamp(key, field, 'strategy', p),
    h('p', {class: 'small'}, 'quantity ', f('quantity'), ' · legs ',
      ...p.legs.map((_, i) => h('span', {class: 'leg'}, f(`legs.${i}.ratio`), ' × ', f(`legs.${i}.instrument`, text)))),
    h('dl', {class: 'kv'},
      h('dt', {}, 'value'), h('dd', {}, f('market_value', usd), h('span', {class: 'unit'}, u.market_value ?? 'USD')),
      h('dt', {}, 'P&L'), h('dd', {}, f('pnl', usd, {class: 'signed'}), h('span', {class: 'unit'}, 'USD')),
      h('dt', {}, 'cost'), h('dd', {}, f('cost'), h('span', {class: 'unit'}, f('cost_currency', text))),
      ...greek('delta', 'delta'), ...greek('gamma', 'gamma'), ...greek('vega', 'vega'), ...greek('theta', 'theta'),
      h('dt', {}, 'margin'), h('dd', {}, f('margin_im', usd), ' / ', f('margin_mm', usd), h('span', {class: 'unit'}, 'USD initial / maintenance'))),
    ...payoff(key, field, p));
}

export function render(store) {
  const key = store.hashKey('strategy');
  const items = store.fields(key);
  for (const field of charts.keys()) {
    if (!items.some(([f]) => f === field)) { charts.get(field).destroy(); charts.delete(field); }
  }
  if (!items.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no strategy held (a positions row or fill whose instrument is a strategy\'s text form)'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards'}, items.map(([field, p]) => card(key, field, p))));
}
