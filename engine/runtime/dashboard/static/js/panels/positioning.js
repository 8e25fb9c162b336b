// Open interest and dealer gamma per underlying (risk:positioning:snapshot): a card per
// underlying with its figures over every expiry (key {underlying}:all), open interest by strike
// (calls and puts as bars), the dealer gamma profile over spot levels with the spot and the
// zero-gamma level marked, and a row per expiry; each chart with the table of its data.

import {h, fig, head, stamp, num, usd, axis, compact, int, text} from '../dom.js';
import {Charts, join} from '../chart.js';

export const id = 'positioning';
export const families = ['positioning'];

let root;
const charts = new Charts(); // "oi:BTC" / "gex:BTC"

export function init(el) {
  root = el;
}

const day = (e) => (e === 'all' ? 'all' : e.slice(0, 10));
const dash = () => h('span', {class: 'muted'}, '-');

function byStrike(key, field, und, p) {
  const s = p.strikes;
  const c = charts.get(`oi:${und}`, {
    label: `${und} open interest by strike, calls and puts; the table below holds the data`,
    series: [{label: 'calls', bars: true}, {label: 'puts', bars: true}],
    x: {label: 'strike (USD)', fmt: axis},
    y: {label: `open interest (${p.units.oi})`, fmt: compact},
    height: 200,
  });
  c.set([s.strike, s.call_oi, s.put_oi]);
  const f = (path, fmt = num) => h('td', {class: 'num'}, fig(key, field, p, path, fmt));
  const table = () => h('table', {class: 'data small'},
    h('thead', {}, h('tr', {}, head('strike', 'USD', {class: 'num'}),
      head('call OI', p.units.oi, {class: 'num'}), head('put OI', p.units.oi, {class: 'num'}),
      head('call vol.', p.units.volume, {class: 'num'}), head('put vol.', p.units.volume, {class: 'num'}),
      head('GEX', p.units.gex, {class: 'num'}), head('OI change', 'since the session start', {class: 'num'}))),
    h('tbody', {}, s.strike.map((_, i) => h('tr', {},
      f(`strikes.strike.${i}`, axis), f(`strikes.call_oi.${i}`), f(`strikes.put_oi.${i}`),
      f(`strikes.call_volume.${i}`), f(`strikes.put_volume.${i}`), f(`strikes.gex.${i}`, usd),
      f(`strikes.oi_change_session.${i}`)))));
  return [h('h4', {}, 'Open interest by strike'), c.el, charts.table(`oi:${und}`, 'data: open interest, volume and GEX by strike', table)];
}

function profile(key, field, und, p) {
  const pr = p.profile;
  const c = charts.get(`gex:${und}`, {
    label: `${und} dealer gamma profile over spot levels, zero-gamma level marked; the table below holds the data`,
    series: [{label: 'dealer GEX'}, {label: 'spot', points: true}, {label: 'zero gamma', points: true}],
    x: {label: 'spot (USD)', fmt: axis},
    y: {label: p.units.gex, fmt: compact},
    height: 200,
  });
  const tables = [[pr.level, pr.gex]];
  const i0 = pr.level.reduce((b, x, i) => (Math.abs(x - p.spot) < Math.abs(pr.level[b] - p.spot) ? i : b), 0);
  tables.push(p.spot === null ? [[pr.level[0]], [null]] : [[p.spot], [pr.gex[i0]]]);
  tables.push(p.zero_gamma === null ? [[pr.level[0]], [null]] : [[p.zero_gamma], [0]]);
  c.set(join(tables));
  const table = () => h('table', {class: 'data small'},
    h('caption', {}, 'dealer gamma exposure with the spot at each level (vols, strikes, times held)'),
    h('thead', {}, h('tr', {}, head('spot level', 'USD', {class: 'num'}), head('GEX', p.units.gex, {class: 'num'}))),
    h('tbody', {}, pr.level.map((_, i) => h('tr', {},
      h('td', {class: 'num'}, fig(key, field, p, `profile.level.${i}`, axis)),
      h('td', {class: 'num'}, fig(key, field, p, `profile.gex.${i}`, usd))))));
  return [h('h4', {}, 'Dealer gamma profile'), c.el, charts.table(`gex:${und}`, 'data: gamma profile', table)];
}

function summary(key, field, p) {
  const f = (path, fmt = num, opts) => fig(key, field, p, path, fmt, opts);
  const zero = p.zero_gamma === null ? dash() : f('zero_gamma', axis, {class: 'strong'});
  return h('dl', {class: 'kv'},
    h('dt', {}, 'spot'), h('dd', {}, f('spot', axis), ' USD'),
    h('dt', {}, 'zero gamma'), h('dd', {}, zero, ' USD (spot - zero: ', f('spot_minus_zero_gamma', usd, {class: 'signed'}), ')'),
    h('dt', {}, 'dealer GEX'), h('dd', {}, f('gex_total', usd, {class: 'signed strong'}), ` ${p.units.gex} (calls `,
      f('gex_calls', usd), ', puts ', f('gex_puts', usd), ')'),
    h('dt', {}, 'open interest'), h('dd', {}, f('oi_total'), ` ${p.units.oi} (calls `, f('call_oi'), ', puts ', f('put_oi'), ')'),
    h('dt', {}, 'put/call'), h('dd', {}, 'OI ', f('put_call_oi'), ', volume ', f('put_call_volume')),
    h('dt', {}, 'session'), h('dd', {}, 'OI ', f('oi_change_session', num, {class: 'signed'}), ', GEX ',
      f('gex_change_session', usd, {class: 'signed'}), ', zero gamma ', f('zero_gamma_move_session', usd, {class: 'signed'}),
      ' · last window: OI ', f('oi_change_window', num, {class: 'signed'}), ', GEX ', f('gex_change_window', usd, {class: 'signed'})),
    h('dt', {}, 'dealers'), h('dd', {}, f('dealer', text), ' · ', f('options', int), ' options, ', f('unpriced', int), ' without a vol'));
}

function expiries(key, list) {
  return h('div', {class: 'scroll-x'}, h('table', {class: 'data small positioning'},
    h('thead', {}, h('tr', {}, head('expiry'), head('OI', 'underlying units', {class: 'num'}),
      head('put/call OI', 'ratio', {class: 'num'}), head('put/call vol.', 'ratio', {class: 'num'}),
      head('max pain', 'USD', {class: 'num'}), head('GEX', 'USD per 1% move', {class: 'num'}),
      head('zero gamma', 'USD', {class: 'num'}), head('status'))),
    h('tbody', {}, list.map(([field, p]) => {
      const f = (path, fmt = num, opts) => h('td', {class: 'num'}, fig(key, field, p, path, fmt, opts));
      return h('tr', {},
        h('th', {scope: 'row'}, fig(key, field, p, 'expiry', day)),
        f('oi_total'), f('put_call_oi'), f('put_call_volume'), f('max_pain', axis),
        f('gex_total', usd, {class: 'signed'}), f('zero_gamma', axis),
        h('td', {class: 'small'}, fig(key, field, p, 'status', text, {class: p.status === 'ok' ? 'muted' : 'warn'})));
    }))));
}

export function render(store) {
  const key = store.hashKey('positioning');
  const all = store.fields(key);
  if (!all.length) {
    charts.clear();
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no open interest published ([risk.positioning]; a feed must carry open interest)'));
    return;
  }
  const byUnd = new Map();
  for (const [field, p] of all) {
    if (!byUnd.has(p.underlying)) byUnd.set(p.underlying, {all: null, expiries: []});
    if (p.expiry === 'all') byUnd.get(p.underlying).all = [field, p];
    else byUnd.get(p.underlying).expiries.push([field, p]);
  }
  root.replaceChildren(h('div', {class: 'cards'}, [...byUnd.entries()].filter(([, u]) => u.all).map(([und, u]) => {
    const [field, p] = u.all;
    u.expiries.sort((a, b) => a[1].expiry.localeCompare(b[1].expiry));
    return h('div', {class: 'card wide'},
      h('h3', {}, und, h('span', {class: 'muted'}, ' · every expiry')),
      stamp(key, field, 'positioning', p),
      summary(key, field, p),
      h('div', {class: 'cols'}, h('div', {}, ...byStrike(key, field, und, p)), h('div', {}, ...profile(key, field, und, p))),
      expiries(key, u.expiries));
  })));
}
