// Liquidity per book (risk:liquidity:snapshot): what getting out costs beside what the mid
// says. The liquidity-adjusted VaR and ES beside the plain ones, the Bangia et al. (1999) add-on
// between them as a bar and its table, the exit cost at the current quotes, every method's
// adjusted figures, and per position its spread and its share of the add-on. The expected
// slippage of each suggested hedge is in the hedges panel, beside the hedge.

import {h, fig, head, stamp, lazyDetails, num, usd, int, text} from '../dom.js';

export const id = 'liquidity';
export const families = ['liquidity'];

const METHODS = ['delta_normal', 'delta_gamma', 'historical', 'monte_carlo'];
let root;

export function init(el) {
  root = el;
}

// A spread, a fraction of the mid, as percent with two decimals (4 bp: 0.04%).
const spread = (x) => `${(Number(x) * 100).toFixed(2)}%`;
const unit = (u) => h('span', {class: 'unit'}, u);
const name = (m) => m.replace('_', ' ');

// The configured method's VaR, then the add-on, as one bar (its length: the adjusted VaR);
// the table under it holds the same figures.
function bar(p) {
  const total = p.lvar ?? 0;
  const share = total > 0 ? Math.min(Math.max((p.var ?? 0) / total, 0), 1) : 0;
  return h('div', {class: 'lvar-bar', role: 'img',
    'aria-label': 'VaR and the liquidity add-on that make the liquidity-adjusted VaR; the table below holds the data'},
  h('span', {class: 'lvar-var', style: {width: `${(100 * share).toFixed(1)}%`}}),
  h('span', {class: 'lvar-add', style: {width: `${(100 * (1 - share)).toFixed(1)}%`}}));
}

const legend = () => h('div', {class: 'small muted lvar-legend', 'aria-hidden': 'true'},
  h('span', {class: 'swatch lvar-var'}), ' VaR ', h('span', {class: 'swatch lvar-add'}), ' liquidity add-on');

function adjusted(key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  const row = (label, plain, adj) => h('tr', {},
    h('th', {scope: 'row'}, label),
    h('td', {class: 'num'}, f(plain, usd, {class: 'loss'})),
    h('td', {class: 'num'}, f('liquidity_cost_usd', usd, {class: 'loss'})),
    h('td', {class: 'num strong'}, f(adj, usd, {class: 'loss'})));
  return h('table', {class: 'data small'},
    h('caption', {}, 'VaR + liquidity add-on = liquidity-adjusted VaR (', f('method', name), ')'),
    h('thead', {}, h('tr', {}, head('figure'), head('plain', 'USD', {class: 'num'}),
      head('add-on', 'USD', {class: 'num', title: p.units.liquidity_cost_usd}),
      head('adjusted', 'USD', {class: 'num'}))),
    h('tbody', {}, row('VaR', 'var', 'lvar'), row('ES', 'es', 'les')));
}

function methods(key, book, p) {
  return h('table', {class: 'data small'},
    h('thead', {}, h('tr', {}, head('method'), head('LVaR', 'USD', {class: 'num'}), head('LES', 'USD', {class: 'num'}))),
    h('tbody', {}, METHODS.map((m) => h('tr', {},
      h('th', {scope: 'row'}, name(m)),
      h('td', {class: 'num'}, fig(key, book, p, `lvar_${m}`, usd, {class: 'loss'})),
      h('td', {class: 'num'}, fig(key, book, p, `les_${m}`, usd, {class: 'loss'}))))));
}

// The books whose positions table is open: it is built only while open (a large book's
// tables would otherwise cost every redraw), and stays open across redraws.
const open = new Set();

function positions(store, key, book, p) {
  return lazyDetails(open, book,
    `positions (the ${p.positions.length} largest add-ons of ${p.n_positions}): spreads and their share of the add-on`,
    () => positionsTable(key, book, p), () => render(store));
}

function positionsTable(key, book, p) {
  const f = (path, fmt = num, opts) => fig(key, book, p, path, fmt, opts);
  return [
    h('div', {class: 'scroll short'}, h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('instrument'), head('qty', 'position units', {class: 'num'}),
        head('value', 'USD at mid', {class: 'num'}), head('spread', 'of mid', {class: 'num'}),
        head('exit cost', 'USD', {class: 'num'}), head('mean', 'of mid', {class: 'num'}),
        head('σ', 'of mid', {class: 'num'}), head('samples', '', {class: 'num'}),
        head('add-on', 'USD', {class: 'num'}))),
      h('tbody', {}, p.positions.map((_, i) => h('tr', {},
        h('th', {scope: 'row'}, f(`positions.${i}.instrument`, text)),
        h('td', {class: 'num'}, f(`positions.${i}.quantity`)),
        h('td', {class: 'num'}, f(`positions.${i}.value_usd`, usd)),
        h('td', {class: 'num'}, f(`positions.${i}.relative_spread`, spread)),
        h('td', {class: 'num'}, f(`positions.${i}.exit_cost_usd`, usd)),
        h('td', {class: 'num'}, f(`positions.${i}.spread_mean`, spread)),
        h('td', {class: 'num'}, f(`positions.${i}.spread_std`, spread)),
        h('td', {class: 'num'}, f(`positions.${i}.samples`, int)),
        h('td', {class: 'num'}, f(`positions.${i}.cost_usd`, usd)))),
      p.other_positions ? h('tfoot', {}, h('tr', {},
        h('th', {scope: 'row'}, 'the other ', f('other_positions', int)),
        h('td', {colspan: 3}), h('td', {class: 'num'}, f('other_exit_cost_usd', usd)),
        h('td', {colspan: 3}), h('td', {class: 'num'}, f('other_cost_usd', usd)))) : null))),
    p.unquoted.length ? h('p', {class: 'small muted'}, 'no two-sided quote (count for nothing): ',
      p.unquoted.map((_, i) => [i ? ', ' : '', f(`unquoted.${i}`, text)])) : ''];
}

function card(store, key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  return h('div', {class: 'card'},
    h('h3', {}, f('book', text), p.status !== 'ok' ? h('span', {class: 'badge warn'}, f('status', text)) : null),
    stamp(key, book, 'liquidity', p),
    h('div', {class: 'headline-figures'},
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'LVaR'), f('lvar', usd, {class: 'loss'}), unit('USD')),
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'exit cost'), f('exit_cost_usd', usd, {class: 'loss'}), unit('USD'))),
    h('p', {class: 'small muted params'}, 'exit cost: half the quoted spread of every position, at the touch; add-on: ½ Σ value × (mean spread + ',
      f('a', num), ' σ) over up to ', f('window', int), ' samples (Bangia et al. 1999)'),
    bar(p),
    legend(),
    adjusted(key, book, p),
    methods(key, book, p),
    positions(store, key, book, p));
}

export function render(store) {
  const key = store.hashKey('liquidity');
  const books = store.fields(key);
  if (!books.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no liquidity published yet ([risk.liquidity])'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards'}, books.map(([book, p]) => card(store, key, book, p))));
}
