// Hedges per (book, underlying) (risk:hedge:snapshot): the contracts of the hedge future that
// flatten the delta (positive: buy), the delta before and after, the expected slippage of that
// trade against the future's order book (risk:slippage:snapshot, same field), the USD-flat
// alternative, and the option hedge with the Greeks it leaves.

import {h, fig, head, stamp, num, usd, int, text} from '../dom.js';
import {later} from '../store.js';

export const id = 'hedges';
export const families = ['hedge', 'slippage'];

let root;

export function init(el) {
  root = el;
}

// The hedge's expected slippage against the future's order book: its cost beside the mid
// (USD), the average price and how many levels it reaches; why not, when it cannot be priced.
function slippage(key, field, s) {
  if (!s) return h('td', {class: 'num slip'}, h('span', {class: 'muted'}, '-'));
  const f = (path, fmt = num, opts) => fig(key, field, s, path, fmt, opts);
  return h('td', {class: 'num slip'}, f('slippage_usd', usd, {class: 'loss'}),
    s.average_price !== null ? h('div', {class: 'small muted'}, 'avg ', f('average_price', usd)) : null,
    s.average_price !== null ? h('div', {class: 'small muted'}, f('levels', int), ' of ', f('book_levels', int), ' levels') : null,
    s.status !== 'ok' ? h('div', {class: 'small'}, f('status', text, {class: 'warn'})) : null);
}

function row(key, field, p, flat, sKey, s) {
  const f = (path, fmt = num, opts) => fig(key, field, p, path, fmt, opts);
  const o = p.option_hedge;
  return h('tr', {dataset: {tsNs: String(p.ts_ns), family: 'hedge'}},
    h('th', {scope: 'row'}, f('book', text), ' ', h('span', {class: 'muted'}, '/'), ' ', f('underlying', text),
      h('div', {class: 'small muted'}, 'in ', f('future', text))),
    h('td', {class: 'num'}, f('delta')),
    h('td', {class: 'num strong'}, p.delta_hedge ? f('delta_hedge.contracts', num, {class: 'signed'}) : f('hedge_contracts'),
      p.delta_hedge ? h('div', {class: 'small muted'}, 'qty ', f('delta_hedge.quantity')) : null),
    h('td', {class: 'num'}, f('hedge_residual_delta')),
    slippage(sKey, field, s),
    flat ? h('td', {class: 'num'}, p.usd_flat ? f('usd_flat.contracts') : h('span', {class: 'muted'}, '-')) : null,
    h('td', {class: 'small wrap'}, o
      ? h('span', {},
        ...p.options.map((_, i) => h('span', {class: 'leg'}, f(`option_hedge.quantity_rounded.${i}`), ' × ', f(`options.${i}`, text))),
        o.future ? h('span', {class: 'leg'}, f('option_hedge.future.contracts', num), ' × ', f('future', text)) : null,
        h('span', {class: 'muted'}, '(', ...o.targets.map((_, i) => f(`option_hedge.targets.${i}`, text)), ' neutral)'),
        h('div', {class: 'muted'}, 'left: Δ ', f('option_hedge.residual_rounded.delta'), ', Γ ', f('option_hedge.residual_rounded.gamma'),
          ', vega ', f('option_hedge.residual_rounded.vega')))
      : h('span', {class: 'muted'}, 'none configured')),
    h('td', {class: 'small'}, f('status', text, {class: p.status === 'ok' ? 'muted' : 'warn'})));
}

export function render(store) {
  const key = store.hashKey('hedge');
  const items = store.fields(key);
  if (!items.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no hedge published ([risk] hedge_future names none)'));
    return;
  }
  const sKey = store.hashKey('slippage');
  const slip = new Map(store.fields(sKey));
  const units = items[0][1].units;
  const flat = items.some(([, p]) => p.usd_flat); // the USD-flat column only where there is one
  const [newestField, newest] = items.reduce((a, b) => (later(b[1].ts_ns, a[1].ts_ns) ? b : a));
  root.replaceChildren(h('div', {class: 'card'},
    stamp(key, newestField, 'hedge', newest),
    h('div', {class: 'scroll'}, h('table', {class: 'data hedges'},
      h('thead', {}, h('tr', {}, head('book / underlying', 'hedged in'),
        head('delta', 'underlying units', {class: 'num', title: units.delta}),
        head('contracts', 'to trade (+ buy); position qty', {class: 'num', title: `${units.contracts}; qty: ${units.quantity}`}),
        head('delta left', units.residual_delta, {class: 'num'}),
        head('slippage', 'USD vs mid; avg price USD', {class: 'num', title: 'the contracts to trade walked through the future\'s order book: cost beside the mid, USD'}),
        flat ? head('USD-flat', 'contracts', {class: 'num'}) : null,
        head('option hedge', 'Δ, Γ, vega left', {title: units.residual}), head('status'))),
      h('tbody', {}, items.map(([field, p]) => row(key, field, p, flat, sKey, slip.get(field))))))));
}
