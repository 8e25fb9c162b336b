// Implied forwards and dividends per option chain (risk:forwards:snapshot): for each expiry the
// forward put-call parity implies over the chain's quotes, beside the spot, the dividend yield
// and the PV of dividends it implies, the rate that discounts it, and how many strikes it rests
// on. A chain on a future (ESH7) implies the future's price and no dividends.

import {h, fig, head, stamp, num, usd, pct, int, text} from '../dom.js';

export const id = 'forwards';
export const families = ['forwards'];

let root;

export function init(el) {
  root = el;
}

const days = (t) => (Number(t) * 365).toFixed(2);

function card(key, name, p) {
  const f = (path, fmt = num, opts) => fig(key, name, p, path, fmt, opts);
  const rows = p.expiries.map((_, i) => h('tr', {},
    h('th', {scope: 'row'}, f(`expiries.${i}`, (e) => e.replace('T', ' ').replace(':00Z', 'Z'))),
    h('td', {class: 'num'}, f(`tte_years.${i}`, days)),
    h('td', {class: 'num strong'}, f(`forward.${i}`, usd)),
    h('td', {class: 'num'}, f(`dividend_yield.${i}`, pct)),
    h('td', {class: 'num'}, f(`dividend_pv.${i}`, usd)),
    h('td', {class: 'num'}, f(`rate.${i}`, pct)),
    h('td', {class: 'num'}, f(`residual.${i}`)),
    h('td', {class: 'num'}, f(`strikes_used.${i}`, int))));
  return h('div', {class: 'card'},
    h('h3', {}, f('underlying', text), ' ', h('span', {class: 'muted small'}, f('exercise', text)),
      p.status.startsWith('ok') ? null : h('span', {class: 'badge warn'}, p.status)),
    stamp(key, name, 'forwards', p),
    h('p', {class: 'small muted'}, f('spot_index', text), ' ', f('spot', usd), ' USD · ', f('method', text),
      p.exercise === 'american' ? ' · American: the parity forward is approximate' : null),
    h('div', {class: 'scroll-x'}, h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('expiry'), head('T', 'days', {class: 'num'}), head('forward', 'USD', {class: 'num'}),
        head('q', 'yield, cont.', {class: 'num', title: 'dividend yield of F = S exp((r - q) T)'}),
        head('PV div', 'USD', {class: 'num', title: 'S - DF F'}), head('r', 'cont.', {class: 'num'}),
        head('resid.', 'USD', {class: 'num', title: 'weighted RMS of the strikes\' parity forwards about F'}),
        head('strikes', '', {class: 'num'}))),
      h('tbody', {}, rows))));
}

export function render(store) {
  const key = store.hashKey('forwards');
  const chains = store.fields(key);
  if (!chains.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no implied forwards published ([risk.forwards])'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards wide'}, chains.map(([name, p]) => card(key, name, p))));
}
